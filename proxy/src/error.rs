//! Errors of the proxy crate, one enum per concern; causes are kept (`#[source]`) and
//! turned into text only when printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use certfront_certs::{CertError, Violation};

use crate::tickets::TicketKeyError;
use certfront_certs::deny::DenyFileError;

/// What stops a start or a new configuration snapshot once the configuration was accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the worker threads: {0}")]
    Workers(#[source] std::io::Error),
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("host {host:?}: {source}")]
    ClientAuth {
        host: String,
        #[source]
        source: ClientAuthError,
    },
    #[error("tls.ticket_key_file: {0}")]
    TicketKeys(#[from] TicketKeyError),
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::AccessLogError),
}

/// What is wrong with a host's `[host.client_auth]` files.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    #[error("client_auth.ca: {0}")]
    Ca(#[source] CertError),
    #[error("{}: client_auth.ca holds no CA certificate", .path.display())]
    NoCa { path: PathBuf },
    #[error("client_auth.ca: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("client_auth.deny: {0}")]
    DenyList(#[source] DenyFileError),
    #[error("client_auth.crl: {0}")]
    Crl(#[source] certfront_certs::crl::CrlError),
}

/// One reason certfront refuses a configuration (at start, in `check`, on reload).
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("host {host:?}: {violation}")]
    Violation { host: String, violation: Violation },
    #[error("host {host:?}: {source}")]
    Cert {
        host: String,
        #[source]
        source: CertError,
    },
    #[error("host {host:?}: internal CA is not available")]
    NoInternalCa { host: String },
    #[error("host {host:?}: {source}")]
    ClientAuth {
        host: String,
        #[source]
        source: ClientAuthError,
    },
    #[error("host {host:?}: upstream_ca: {source}")]
    UpstreamCa {
        host: String,
        #[source]
        source: CertError,
    },
    #[error("internal CA: {0}")]
    InternalCa(#[source] CertError),
    #[error("tls.trust: {0}")]
    Trust(#[source] CertError),
    #[error("tls.ticket_key_file: {0}")]
    TicketKeys(#[source] TicketKeyError),
    #[error(
        "tls.ticket_key_file: {}: mode {mode:04o} lets group or others read it; whoever \
         reads it can decrypt session tickets: chmod 600",
        .path.display()
    )]
    TicketKeyMode { path: PathBuf, mode: u32 },
    /// The configuration file itself (syntax, unknown keys, values), already formatted
    /// with its TOML paths by the config crate.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Build(#[source] ProxyError),
    /// `[acme]` cannot be used as written (the EAB key's variable, `acme.ca`).
    #[error("{0}")]
    Acme(#[source] certfront_acme::AcmeError),
}

/// Every problem that refuses a configuration; printed one a line.
#[derive(Debug)]
pub struct Refused(pub Vec<Problem>);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

impl From<Problem> for Refused {
    fn from(p: Problem) -> Self {
        Refused(vec![p])
    }
}
