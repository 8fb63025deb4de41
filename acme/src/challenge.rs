//! The answers to pending ACME challenges, shared with the listeners.
//!
//! tls-alpn-01 (RFC 8737): a handshake offering ALPN `acme-tls/1` for a name with a pending
//! challenge gets a self-signed certificate carrying the acmeIdentifier extension, and the
//! connection ends after the handshake. http-01 (RFC 8555 8.3): `GET
//! /.well-known/acme-challenge/<token>` on the plain-HTTP listener gets the key
//! authorization. Entries live only while their order runs; the maps change rarely and are
//! read only for those requests, so a mutex is enough (no lock on the normal handshake path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::ServerConfig;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::AcmeError;

/// The ALPN protocol of tls-alpn-01 validation connections.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Where http-01 tokens are asked for.
const HTTP_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending challenge answers, by name (tls-alpn-01) and by token (http-01).
#[derive(Default)]
pub struct Challenges {
    tls_alpn: Mutex<HashMap<String, Arc<ServerConfig>>>,
    http: Mutex<HashMap<String, String>>,
}

impl Challenges {
    /// The TLS config that answers a tls-alpn-01 validation, when this ClientHello is one:
    /// it offers `acme-tls/1` and names a host with a pending challenge.
    pub fn tls_alpn<'a>(
        &self,
        server_name: Option<&str>,
        mut alpn: impl Iterator<Item = &'a [u8]>,
    ) -> Option<Arc<ServerConfig>> {
        if !alpn.any(|p| p == ACME_TLS_ALPN) {
            return None;
        }
        let name = certfront_certs::names::normalize(server_name?);
        lock(&self.tls_alpn).get(&name).cloned()
    }

    /// The body of an http-01 answer, when `path` asks for a pending token.
    pub fn http(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP_PREFIX)?;
        lock(&self.http).get(token).cloned()
    }

    /// Whether `path` is under `/.well-known/acme-challenge/` (answered 404 when unknown,
    /// never redirected).
    pub fn is_http_path(path: &str) -> bool {
        path.starts_with(HTTP_PREFIX)
    }

    /// Serves a tls-alpn-01 certificate for `name` until the returned guard is dropped.
    pub(crate) fn add_tls_alpn(
        self: &Arc<Self>,
        name: &str,
        digest: &[u8],
    ) -> Result<Pending, AcmeError> {
        let config = tls_alpn_config(name, digest)?;
        lock(&self.tls_alpn).insert(name.to_owned(), config);
        Ok(Pending {
            challenges: self.clone(),
            key: Key::TlsAlpn(name.to_owned()),
        })
    }

    /// Answers an http-01 token until the returned guard is dropped.
    pub(crate) fn add_http(self: &Arc<Self>, token: &str, key_authorization: &str) -> Pending {
        lock(&self.http).insert(token.to_owned(), key_authorization.to_owned());
        Pending {
            challenges: self.clone(),
            key: Key::Http(token.to_owned()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Key {
    TlsAlpn(String),
    Http(String),
}

/// A registered challenge answer; dropping it withdraws the answer.
pub(crate) struct Pending {
    challenges: Arc<Challenges>,
    key: Key,
}

impl Drop for Pending {
    fn drop(&mut self) {
        match &self.key {
            Key::TlsAlpn(name) => {
                lock(&self.challenges.tls_alpn).remove(name);
            }
            Key::Http(token) => {
                lock(&self.challenges.http).remove(token);
            }
        }
    }
}

/// RFC 8737 section 3: a self-signed certificate for exactly `name` with the critical
/// acmeIdentifier extension holding SHA-256(key authorization), offered only with ALPN
/// `acme-tls/1`.
fn tls_alpn_config(name: &str, digest: &[u8]) -> Result<Arc<ServerConfig>, AcmeError> {
    let (cert, key_der) = tls_alpn_cert(name, digest)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls_error = |e: rustls::Error| AcmeError::Order {
        status: "unanswerable".to_owned(),
        detail: format!("cannot build the tls-alpn-01 answer for {name}: {e}"),
    };
    // Not `with_single_cert`: it parses the certificate with webpki, which (rightly, for a
    // served certificate) refuses the unknown critical acmeIdentifier extension.
    let signer = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(tls_error)?;
    let key = CertifiedKey::new(vec![cert], signer);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    // A validation connection is used once; nothing to resume.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn tls_alpn_cert(
    name: &str,
    digest: &[u8],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), AcmeError> {
    let generate = |source| AcmeError::Generate { source };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(generate)?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(generate)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_pending_names_and_tokens_and_forgets_them() {
        let challenges = Arc::new(Challenges::default());
        let alpn = || [b"h2".as_slice(), ACME_TLS_ALPN].into_iter();
        assert!(
            challenges
                .tls_alpn(Some("app.example.org"), alpn())
                .is_none()
        );
        let tls = challenges
            .add_tls_alpn("app.example.org", &[7u8; 32])
            .unwrap();
        let http = challenges.add_http("tok-1", "tok-1.thumb");
        let config = challenges
            .tls_alpn(Some("App.Example.org."), alpn())
            .expect("pending name answered");
        assert_eq!(config.alpn_protocols, vec![ACME_TLS_ALPN.to_vec()]);
        // a normal client (no acme-tls/1) for the same name is not answered by it
        assert!(
            challenges
                .tls_alpn(Some("app.example.org"), [b"h2".as_slice()].into_iter())
                .is_none()
        );
        assert!(
            challenges
                .tls_alpn(Some("other.example.org"), alpn())
                .is_none()
        );
        assert_eq!(
            challenges
                .http("/.well-known/acme-challenge/tok-1")
                .as_deref(),
            Some("tok-1.thumb")
        );
        assert_eq!(challenges.http("/.well-known/acme-challenge/tok-2"), None);
        assert_eq!(challenges.http("/tok-1"), None);
        drop((tls, http));
        assert!(
            challenges
                .tls_alpn(Some("app.example.org"), alpn())
                .is_none()
        );
        assert_eq!(challenges.http("/.well-known/acme-challenge/tok-1"), None);
    }

    #[test]
    fn the_tls_alpn_certificate_carries_the_critical_acme_identifier() {
        let digest = [0xabu8; 32];
        let (cert, _) = tls_alpn_cert("app.example.org", &digest).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // an OCTET STRING (0x04) of 32 bytes holding the digest
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        let sans: Vec<String> = parsed
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(sans, ["DNSName(app.example.org)"]);
    }
}
