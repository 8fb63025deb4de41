//! Mutual TLS per host: the client chain is verified against `client_auth.ca` and its CRLs,
//! a certificate on the deny list is refused, and a reloaded deny list or CRL closes
//! connections already authenticated with a certificate it now names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use base64::Engine;
use certfront_certs::crl::{CrlError, CrlSet, Revocation, Scope};
use certfront_certs::store::ReloadResult;
use certfront_certs::{TrustAnchors, sha1_hex};
use certfront_config::{ClientAuth, ClientAuthMode, CrlExpired, CrlScope};
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
    /// Bumped at every deny-list or CRL change, so open connections re-check their
    /// certificate.
    changed: watch::Sender<u64>,
    settings: ClientAuth,
    /// `client_auth.ca`'s certificates: a reloaded CRL must be signed by one of them.
    ca_ders: Vec<CertificateDer<'static>>,
    /// The CRLs in force; a handshake loads them lock-free, a CRL reload swaps them.
    crls: ArcSwap<CrlSet>,
    /// Only the reloader writes it and only `/certs` reads it.
    crl_status: Mutex<CrlStatus>,
    /// Refusal log lines, limited per host.
    pub(crate) refusal_log: crate::refusals::RateLimit,
}

/// What `/certs` shows about a host's CRLs.
#[derive(Clone, Debug, Default)]
pub(crate) struct CrlStatus {
    pub loaded_at: Option<SystemTime>,
    pub last_result: Option<ReloadResult>,
    pub last_attempt: Option<SystemTime>,
    /// Why the last reload was refused (the set in use is then the older one).
    pub last_error: Option<String>,
}

impl ClientAuthState {
    pub(crate) fn is_denied(&self, leaf: &[u8]) -> bool {
        self.deny.load().denies(leaf)
    }

    /// The CRLs' verdict on a verified chain, as the rustls error a refusal is.
    fn crl_check(
        &self,
        leaf: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let scope = match self.settings.crl_scope {
            CrlScope::Leaf => Scope::Leaf,
            CrlScope::Chain => Scope::Chain,
        };
        let accept_expired = self.settings.crl_expired == CrlExpired::Accept;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        self.crls
            .load()
            .check(
                leaf,
                intermediates,
                &self.ca_ders,
                scope,
                now,
                accept_expired,
            )
            .map_err(|r| {
                rustls::Error::InvalidCertificate(match r {
                    Revocation::Revoked => CertificateError::Revoked,
                    Revocation::Expired => CertificateError::ExpiredRevocationList,
                    Revocation::Unknown => CertificateError::UnknownRevocationStatus,
                })
            })
    }

    /// Whether the CRLs in force revoke this certificate (an open connection's, after a
    /// CRL reload).
    pub(crate) fn crl_revokes(
        &self,
        leaf: &[u8],
        intermediates: &[CertificateDer<'static>],
    ) -> bool {
        matches!(
            self.crl_check(leaf, intermediates, UnixTime::now()),
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
        )
    }

    /// The CRL files named by the configuration.
    pub(crate) fn crl_paths(&self) -> &[PathBuf] {
        &self.settings.crl
    }

    /// The CRLs in use.
    /// The CRLs in force, shared (no copy of the lists).
    pub(crate) fn crl_set(&self) -> Arc<CrlSet> {
        self.crls.load_full()
    }

    pub(crate) fn crl_status(&self) -> CrlStatus {
        self.crl_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the CRL files: `Ok(true)` when the set changed. A refused set keeps the
    /// one in use (and the status says why).
    pub(crate) fn reload_crls(&self) -> Result<bool, CrlError> {
        if self.settings.crl.is_empty() {
            return Ok(false);
        }
        let now = SystemTime::now();
        let current = self.crls.load_full();
        let result = certfront_certs::crl::read_all(&self.settings.crl).and_then(|read| {
            if current.same_as(&read) {
                return Ok(None);
            }
            certfront_certs::crl::check_all(read, &self.ca_ders, Some(&current)).map(Some)
        });
        let mut status = self.crl_status.lock().unwrap_or_else(|e| e.into_inner());
        status.last_attempt = Some(now);
        match result {
            Err(e) => {
                status.last_result = Some(ReloadResult::Failure);
                status.last_error = Some(e.to_string());
                Err(e)
            }
            Ok(new) => {
                status.last_result = Some(ReloadResult::Success);
                status.last_error = None;
                let Some(new) = new else { return Ok(false) };
                status.loaded_at = Some(now);
                self.crls.store(Arc::new(new));
                self.changed.send_modify(|g| *g += 1);
                Ok(true)
            }
        }
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

    /// Resolves when the certificate becomes denied by a reloaded list or revoked by a
    /// reloaded CRL (never otherwise).
    pub(crate) async fn revoked(&self, cert: &ClientCert) {
        let mut rx = self.changed.subscribe();
        loop {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
            if self.is_denied(&cert.leaf) || self.crl_revokes(&cert.leaf, &cert.intermediates) {
                return;
            }
        }
    }
}

/// `[host.client_auth]`'s files as `prepare` read them: the CA (as anchors and as
/// certificates, which CRLs are checked against), the deny list (empty without one) and
/// the CRLs (empty without any).
pub(crate) struct ClientAuthFiles {
    pub ca: TrustAnchors,
    pub ca_ders: Vec<CertificateDer<'static>>,
    pub deny: DenyList,
    pub crls: CrlSet,
}

/// rustls' WebPKI client verifier: the chain to `client_auth.ca`. CRLs are not given to
/// it: it would verify a CRL's signature again on every handshake (a hash over the whole
/// list); `CrlSet::check` looks the chain up after it instead.
fn verifier(
    anchors: &TrustAnchors,
    auth: &ClientAuth,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::server::VerifierBuilderError> {
    let builder = WebPkiClientVerifier::builder_with_provider(
        anchors.roots(),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    );
    match auth.mode {
        ClientAuthMode::Required => builder,
        ClientAuthMode::Optional => builder.allow_unauthenticated(),
    }
    .build()
}

/// Builds a host's verifier and state from its `[host.client_auth]` and the CA and deny
/// list the pass read (`prepare`), without reading them again.
pub(crate) fn build(
    host: &str,
    auth: &ClientAuth,
    files: ClientAuthFiles,
    metrics: Arc<Metrics>,
) -> Result<(Arc<dyn ClientCertVerifier>, Arc<ClientAuthState>), ClientAuthError> {
    let ClientAuthFiles {
        ca: anchors,
        ca_ders,
        deny,
        crls,
    } = files;
    let inner = verifier(&anchors, auth).map_err(ClientAuthError::Verifier)?;
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
        settings: auth.clone(),
        ca_ders,
        crls: ArcSwap::from_pointee(crls),
        crl_status: Mutex::new(CrlStatus {
            loaded_at: Some(SystemTime::now()),
            ..CrlStatus::default()
        }),
        refusal_log: crate::refusals::RateLimit::default(),
    });
    let verifier = Arc::new(DenyingVerifier {
        inner,
        state: state.clone(),
        metrics,
    });
    Ok((verifier, state))
}

/// The CA check of rustls' WebPKI verifier, then the CRLs, then the deny list.
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
    fn reject(&self, end_entity: &CertificateDer<'_>, reason: &'static str) {
        self.metrics
            .client_cert_rejections
            .with_label_values(&[self.state.host.as_str(), reason])
            .inc();
        crate::refusals::note(end_entity, reason);
    }
}

/// The `reason` label of `certfront_client_cert_rejections_total` for a verifier error.
fn reason(e: &rustls::Error) -> &'static str {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Revoked) => "revoked",
        rustls::Error::InvalidCertificate(CertificateError::ExpiredRevocationList)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredRevocationListContext {
            ..
        }) => "crl_expired",
        rustls::Error::InvalidCertificate(CertificateError::UnknownRevocationStatus) => {
            "revocation_unknown"
        }
        _ => "invalid",
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
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .and_then(|_| self.state.crl_check(end_entity, intermediates, now));
        if let Err(e) = verified {
            self.reject(end_entity, reason(&e));
            return Err(e);
        }
        if self.state.is_denied(end_entity) {
            self.reject(end_entity, "denied");
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
    /// The chain the client sent after its leaf: a reloaded CRL with `crl_scope = "chain"`
    /// checks them too.
    pub intermediates: Vec<CertificateDer<'static>>,
    /// `X-Client-Cert`: base64 DER of the leaf (what ASP.NET Core's certificate forwarding reads).
    pub der_b64: HeaderValue,
    /// `X-Client-Cert-Thumbprint`: SHA-1, upper-case hex.
    pub thumbprint: HeaderValue,
}

impl ClientCert {
    pub(crate) fn from_chain(chain: &[CertificateDer<'_>]) -> Option<ClientCert> {
        let (leaf, intermediates) = chain.split_first()?;
        let mut cert = ClientCert::from_leaf(leaf);
        cert.intermediates = intermediates
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        Some(cert)
    }

    pub(crate) fn from_leaf(leaf: &CertificateDer<'_>) -> ClientCert {
        let b64 = base64::engine::general_purpose::STANDARD.encode(leaf.as_ref());
        ClientCert {
            leaf: leaf.to_vec(),
            intermediates: Vec::new(),
            der_b64: HeaderValue::try_from(b64).expect("base64 is a header value"),
            thumbprint: HeaderValue::try_from(sha1_hex(leaf.as_ref()))
                .expect("hex is a header value"),
        }
    }
}
