//! Mutual TLS per host: the client chain is verified against `client_auth.ca`, a
//! certificate on the deny list is refused, and a reloaded deny list closes connections
//! already authenticated with a certificate it now names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use base64::Engine;
use certfront_certs::store::ReloadResult;
use certfront_certs::{TrustAnchors, sha1_hex};
use certfront_config::{ClientAuth, ClientAuthMode};
use http::HeaderValue;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::watch;

use crate::error::ClientAuthError;
use crate::metrics::Metrics;

/// Fingerprints (SHA-1 or SHA-256) of refused client certificates; parsed by the certs crate.
pub(crate) use certfront_certs::deny::{DenyFileError, DenyList};

/// Reads a deny list (one fingerprint a line; see `certfront_certs::deny` for what a
/// pasted line may carry). A file with any bad line is refused whole.
pub(crate) fn read_deny_list(path: &Path) -> Result<DenyList, DenyFileError> {
    certfront_certs::deny::read(path)
}

/// What `/certs` shows about a host's deny list.
#[derive(Clone, Debug)]
pub(crate) struct DenyStatus {
    pub path: PathBuf,
    /// Fingerprints on the list in use.
    pub entries: usize,
    /// When the list in use was read.
    pub loaded_at: SystemTime,
    /// `None` before any reload was tried (the start-up read is not a reload).
    pub last_result: Option<ReloadResult>,
    pub last_attempt: Option<SystemTime>,
    /// Why the last reload was refused (the list in use is then the older one).
    pub last_error: Option<String>,
}

/// A host's client-certificate settings at run time; the deny list can be swapped.
#[derive(Debug)]
pub(crate) struct ClientAuthState {
    pub host: String,
    pub deny_path: Option<PathBuf>,
    deny: ArcSwap<DenyList>,
    /// Only the reloader writes it and only `/certs` reads it: never on a handshake.
    status: Mutex<Option<DenyStatus>>,
    /// Bumped at every deny-list change, so open connections re-check their certificate.
    changed: watch::Sender<u64>,
}

impl ClientAuthState {
    pub(crate) fn is_denied(&self, leaf: &[u8]) -> bool {
        self.deny.load().denies(leaf)
    }

    /// Re-reads the deny list: `Ok(true)` when it changed, `Ok(false)` when it is what is
    /// in use (or the host has none). On error the old list stays, and the status says why.
    pub(crate) fn reload(&self) -> Result<bool, DenyFileError> {
        let Some(path) = &self.deny_path else {
            return Ok(false);
        };
        let result = read_deny_list(path);
        let now = SystemTime::now();
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let status = status.get_or_insert_with(|| DenyStatus {
            path: path.clone(),
            entries: self.deny.load().len(),
            loaded_at: now,
            last_result: None,
            last_attempt: None,
            last_error: None,
        });
        status.last_attempt = Some(now);
        let new = match result {
            Ok(new) => new,
            Err(e) => {
                status.last_result = Some(ReloadResult::Failure);
                status.last_error = Some(e.to_string());
                return Err(e);
            }
        };
        status.last_result = Some(ReloadResult::Success);
        status.last_error = None;
        if **self.deny.load() == new {
            return Ok(false);
        }
        status.entries = new.len();
        status.loaded_at = now;
        self.deny.store(Arc::new(new));
        self.changed.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// The deny list's status for `/certs`; `None` when the host has no deny list.
    pub(crate) fn deny_status(&self) -> Option<DenyStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves when `leaf` becomes denied by a reloaded list (never otherwise).
    pub(crate) async fn revoked(&self, leaf: &[u8]) {
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

/// `[host.client_auth]`'s files as `prepare` read them: the CA and the deny list (empty
/// without one).
pub(crate) struct ClientAuthFiles {
    pub ca: TrustAnchors,
    pub deny: DenyList,
}

/// Builds a host's verifier and state from its `[host.client_auth]` and the CA and deny
/// list the pass read (`prepare`), without reading them again.
pub(crate) fn build(
    host: &str,
    auth: &ClientAuth,
    files: ClientAuthFiles,
    metrics: Arc<Metrics>,
) -> Result<(Arc<dyn ClientCertVerifier>, Arc<ClientAuthState>), ClientAuthError> {
    let ClientAuthFiles { ca: anchors, deny } = files;
    let builder = WebPkiClientVerifier::builder_with_provider(
        anchors.roots(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    );
    let builder = match auth.mode {
        ClientAuthMode::Required => builder,
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
    };
    let inner = builder.build().map_err(ClientAuthError::Verifier)?;
    // Its gauge is exported when the site is put in force (`Built::apply`).
    let status = auth.deny.as_ref().map(|path| DenyStatus {
        path: path.clone(),
        entries: deny.len(),
        loaded_at: SystemTime::now(),
        last_result: None,
        last_attempt: None,
        last_error: None,
    });
    let state = Arc::new(ClientAuthState {
        host: host.to_owned(),
        deny_path: auth.deny.clone(),
        deny: ArcSwap::from_pointee(deny),
        status: Mutex::new(status),
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
pub(crate) struct ClientCert {
    pub leaf: Vec<u8>,
    /// `X-Client-Cert`: base64 DER of the leaf (what ASP.NET Core's certificate forwarding reads).
    pub der_b64: HeaderValue,
    /// `X-Client-Cert-Thumbprint`: SHA-1, upper-case hex.
    pub thumbprint: HeaderValue,
}

impl ClientCert {
    pub(crate) fn from_leaf(leaf: &CertificateDer<'_>) -> ClientCert {
        let b64 = base64::engine::general_purpose::STANDARD.encode(leaf.as_ref());
        ClientCert {
            leaf: leaf.to_vec(),
            der_b64: HeaderValue::try_from(b64).expect("base64 is a header value"),
            thumbprint: HeaderValue::try_from(sha1_hex(leaf.as_ref()))
                .expect("hex is a header value"),
        }
    }
}
