//! Errors of the proxy crate: what stops a start or a listener.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cert(#[from] certfront_certs::CertError),
    #[error("{0}")]
    ClientAuth(String),
    #[error("tls.ticket_key_file: {0}")]
    TicketKeys(#[from] crate::tickets::TicketKeyError),
}
