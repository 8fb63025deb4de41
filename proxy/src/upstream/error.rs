//! Why an exchange with the upstreams failed, and which failures mark an upstream down.

use std::io;
use std::sync::Arc;

/// Why no response came from any upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("every upstream is marked down")]
    AllDown,
    #[error("cannot connect to {upstream}: {source}")]
    Connect {
        upstream: Arc<str>,
        #[source]
        source: io::Error,
    },
    /// A failure on our side (out of file descriptors, no local port): not the upstream's
    /// fault, so it is not marked down.
    #[error("cannot connect to {upstream}, local error: {source}")]
    Local {
        upstream: Arc<str>,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {upstream} timed out")]
    Timeout { upstream: Arc<str> },
    #[error("{upstream} has {limit} open connections (limits.upstream_max_connections)")]
    Busy { upstream: Arc<str>, limit: usize },
    #[error("TLS to {upstream} failed: {source}")]
    Tls {
        upstream: Arc<str>,
        #[source]
        source: io::Error,
    },
    #[error("{upstream}: {source}")]
    Protocol {
        upstream: Arc<str>,
        #[source]
        source: hyper::Error,
    },
}

impl UpstreamError {
    /// The `kind` label of `certfront_upstream_errors_total`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Tls { .. } => "tls",
            UpstreamError::Protocol { .. } => "protocol",
            UpstreamError::AllDown
            | UpstreamError::Connect { .. }
            | UpstreamError::Local { .. }
            | UpstreamError::Busy { .. } => "connect",
        }
    }
}

/// Whether a failed connect says something about the upstream (so it is skipped for a
/// while) rather than about this machine (EMFILE, no free local port, no memory).
pub(crate) fn blames_upstream(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | TimedOut
            | HostUnreachable
            | NetworkUnreachable
            | NotConnected
            | UnexpectedEof
            | BrokenPipe
            | NotFound // name resolution found no address
    )
}
