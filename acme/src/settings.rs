//! What the engine needs from `[acme]`, resolved once at start: the EAB key read from the
//! environment, the trust anchors for the ACME server's own HTTPS, the state directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certfront_certs::{CsrKey, TrustAnchors};
use certfront_config::{Acme, AcmeChallenge};
use rustls::RootCertStore;
use zeroize::Zeroizing;

use crate::error::AcmeError;

/// `[acme]`, ready to use.
pub struct Settings {
    pub directory: String,
    /// `mailto:` + acme.email.
    pub contact: String,
    /// External Account Binding: key id and HMAC key.
    pub eab: Option<(String, Zeroizing<Vec<u8>>)>,
    /// Roots that the ACME server's HTTPS certificate must chain to: the system's,
    /// `tls.trust` and `acme.ca`.
    pub roots: Arc<RootCertStore>,
    pub challenge: AcmeChallenge,
    pub key: CsrKey,
    pub renew_before: Option<Duration>,
    /// `state_dir/acme`.
    pub dir: PathBuf,
}

impl Settings {
    /// Reads the EAB key from its environment variable and the CA files; fails, naming the
    /// key, when either is unusable (so `run` refuses to start rather than fail later).
    pub fn new(
        acme: &Acme,
        state_dir: &Path,
        tls_trust: &[PathBuf],
    ) -> Result<Settings, AcmeError> {
        let eab = match &acme.eab {
            None => None,
            Some(eab) => {
                let var = eab.hmac_key_env.clone();
                let text = std::env::var(&var)
                    .map(Zeroizing::new)
                    .map_err(|_| AcmeError::EabKeyMissing { var: var.clone() })?;
                // CAs show the key base64url without padding; some add padding.
                let key = URL_SAFE_NO_PAD
                    .decode(text.trim().trim_end_matches('='))
                    .map_err(|source| AcmeError::EabKeyInvalid { var, source })?;
                Some((eab.kid.clone(), Zeroizing::new(key)))
            }
        };
        let mut files: Vec<PathBuf> = tls_trust.to_vec();
        files.extend(acme.ca.iter().cloned());
        let anchors =
            TrustAnchors::new(true, &files, &[]).map_err(|source| AcmeError::Trust { source })?;
        Ok(Settings {
            directory: acme.directory.clone(),
            contact: format!("mailto:{}", acme.email),
            eab,
            roots: anchors.roots(),
            challenge: acme.challenge,
            key: acme.key,
            renew_before: acme.renew_before,
            dir: Acme::dir(state_dir),
        })
    }
}
