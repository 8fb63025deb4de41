//! `AcmeError`: why an order, the account or the storage failed, in an administrator's words.

use std::path::PathBuf;
use std::time::SystemTime;

use certfront_certs::CertError;

/// Why ACME work failed. Every variant names what was tried; causes are kept as sources.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error(
        "acme.eab_hmac_key_env: environment variable {var} is not set (it holds the HMAC key the CA gave with eab_kid)"
    )]
    EabKeyMissing { var: String },
    #[error("acme.eab_hmac_key_env: {var} does not hold a base64url key: {source}")]
    EabKeyInvalid {
        var: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("acme.ca: {source}")]
    Trust {
        #[source]
        source: CertError,
    },
    #[error("ACME server {directory}: {what}: {source}")]
    Server {
        directory: String,
        what: &'static str,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the CA offers no {kind} challenge for {name} (acme.challenge)")]
    NoChallenge { name: String, kind: &'static str },
    #[error("the CA did not validate {name}: {detail}")]
    Validation { name: String, detail: String },
    #[error("the order ended {status}: {detail}")]
    Order { status: String, detail: String },
    #[error("cannot make the key or the request: {source}")]
    Generate {
        #[source]
        source: rcgen::Error,
    },
    #[error("the CA's certificate cannot be read: {source}")]
    Issued {
        #[source]
        source: CertError,
    },
    #[error("the issued certificate breaks the policy, kept out: {}", violations.join("; "))]
    Policy { violations: Vec<String> },
    #[error("{}: {source}", path.display())]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source}")]
    Write {
        #[source]
        source: CertError,
    },
    #[error("{}: {source}", path.display())]
    Account {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("another certfront holds {} and is ordering this name; waiting for its result", path.display())]
    Locked { path: PathBuf },
}

impl AcmeError {
    /// The `result` label of `certfront_acme_orders_total`.
    pub fn result(&self) -> &'static str {
        match self {
            AcmeError::Policy { .. } => "policy",
            _ => "failure",
        }
    }

    /// When the server asked to be polled again, if it did.
    pub fn retry_after(&self) -> Option<SystemTime> {
        match self {
            AcmeError::Server {
                source: instant_acme::Error::Timeout(Some(at)),
                ..
            } => {
                let wait = at.saturating_duration_since(std::time::Instant::now());
                SystemTime::now().checked_add(wait)
            }
            _ => None,
        }
    }

    /// Whether the server no longer knows the stored account (a test CA restarted, an
    /// account deactivated): a new account is the fix.
    pub(crate) fn account_gone(&self) -> bool {
        matches!(
            self,
            AcmeError::Server { source: instant_acme::Error::Api(problem), .. }
                if problem.r#type.as_deref().is_some_and(|t| {
                    t.ends_with(":accountDoesNotExist") || t.ends_with(":unauthorized")
                })
        )
    }
}
