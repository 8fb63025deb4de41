//! Mutual TLS per host: the client chain is verified against `client_auth.ca`, a
//! certificate on the deny list is refused, and a reloaded deny list closes connections
//! already authenticated with a certificate it now names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use certfront_certs::{TrustAnchors, sha1_hex, sha256_hex};
use certfront_config::{ClientAuth, ClientAuthMode};
use http::HeaderValue;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Fingerprints (SHA-1 or SHA-256, upper-case hex) of refused client certificates.
pub type DenyList = HashSet<String>;

/// Reads a deny list: one fingerprint a line, `#` comments, colons and spaces ignored.
pub fn read_deny_list(path: &Path) -> Result<DenyList, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the deny list: {e}", path.display()))?;
    let mut set = DenyList::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let hex: String = line
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect::<String>()
            .to_ascii_uppercase();
        if hex.is_empty() {
            continue;
        }
        if !(hex.len() == 40 || hex.len() == 64) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{}: line {}: {line:?} is not a SHA-1 (40 hex digits) or SHA-256 (64 hex digits) fingerprint",
                path.display(),
                n + 1
            ));
        }
        set.insert(hex);
    }
    Ok(set)
}

/// A host's client-certificate settings at run time; the deny list can be swapped.
#[derive(Debug)]
pub struct ClientAuthState {
    pub host: String,
    pub deny_path: Option<PathBuf>,
    deny: ArcSwap<DenyList>,
    /// Bumped at every deny-list change, so open connections re-check their certificate.
    changed: watch::Sender<u64>,
}

impl ClientAuthState {
    pub fn is_denied(&self, leaf: &[u8]) -> bool {
        let deny = self.deny.load();
        !deny.is_empty() && (deny.contains(&sha1_hex(leaf)) || deny.contains(&sha256_hex(leaf)))
    }

    /// Re-reads the deny list; on error the old list stays.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = &self.deny_path else {
            return Ok(false);
        };
        let new = read_deny_list(path)?;
        if **self.deny.load() == new {
            return Ok(false);
        }
        self.deny.store(Arc::new(new));
        self.changed.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// Resolves when `leaf` becomes denied by a reloaded list (never otherwise).
    pub async fn revoked(&self, leaf: &[u8]) {
        let mut rx = self.changed.subscribe();
        loop {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self.is_denied(leaf) {
                return;
            }
        }
    }
}

/// Builds a host's verifier and state from its `[host.client_auth]`.
pub fn build(
    host: &str,
    auth: &ClientAuth,
    metrics: Arc<Metrics>,
) -> Result<(Arc<dyn ClientCertVerifier>, Arc<ClientAuthState>), String> {
    let anchors = TrustAnchors::new(false, std::slice::from_ref(&auth.ca), &[])
        .map_err(|e| format!("host {host:?}: client_auth.ca: {e}"))?;
    let builder = WebPkiClientVerifier::builder_with_provider(
        anchors.roots(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    );
    let builder = match auth.mode {
        ClientAuthMode::Required => builder,
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
    };
    let inner = builder
        .build()
        .map_err(|e| format!("host {host:?}: client_auth.ca: {e}"))?;
    let deny = match &auth.deny {
        Some(path) => read_deny_list(path).map_err(|e| format!("host {host:?}: {e}"))?,
        None => DenyList::new(),
    };
    let state = Arc::new(ClientAuthState {
        host: host.to_owned(),
        deny_path: auth.deny.clone(),
        deny: ArcSwap::from_pointee(deny),
        changed: watch::channel(0).0,
    });
    let verifier = Arc::new(DenyingVerifier {
        inner,
        state: state.clone(),
        metrics,
    });
    Ok((verifier, state))
}

/// The CA check of rustls' WebPKI verifier, then the deny list.
struct DenyingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    state: Arc<ClientAuthState>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for DenyingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenyingVerifier")
            .field("host", &self.state.host)
            .finish()
    }
}

impl DenyingVerifier {
    fn reject(&self, reason: &str) {
        self.metrics
            .client_cert_rejections
            .with_label_values(&[self.state.host.as_str(), reason])
            .inc();
    }
}

impl ClientCertVerifier for DenyingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            self.reject("invalid");
            return Err(e);
        }
        if self.state.is_denied(end_entity) {
            self.reject("denied");
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What the upstream learns about an authenticated client, rendered once per connection.
pub struct ClientCert {
    pub leaf: Vec<u8>,
    /// `X-Client-Cert`: base64 DER of the leaf (what ASP.NET Core's certificate forwarding reads).
    pub der_b64: HeaderValue,
    /// `X-Client-Cert-Thumbprint`: SHA-1, upper-case hex.
    pub thumbprint: HeaderValue,
}

impl ClientCert {
    pub fn from_leaf(leaf: &CertificateDer<'_>) -> ClientCert {
        let b64 = base64::engine::general_purpose::STANDARD.encode(leaf.as_ref());
        ClientCert {
            leaf: leaf.to_vec(),
            der_b64: HeaderValue::try_from(b64).expect("base64 is a header value"),
            thumbprint: HeaderValue::try_from(sha1_hex(leaf.as_ref()))
                .expect("hex is a header value"),
        }
    }
}
