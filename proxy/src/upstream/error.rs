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
    /// New connections to this upstream are over their rate (churn protection, see
    /// `upstream::rate`) and none came free within the connect timeout.
    #[error(
        "{upstream}: no new connection allowed for {waited:?} (over {} new connections per second)",
        super::rate::CONNECTS_PER_SECOND
    )]
    Throttled {
        upstream: Arc<str>,
        /// Until the next new connection is allowed.
        wait: std::time::Duration,
        /// How long this request has waited already.
        waited: std::time::Duration,
    },
    #[error("TLS to {upstream} failed: {source}")]
    Tls {
        upstream: Arc<str>,
        #[source]
        source: io::Error,
    },
    /// The client's request body failed while it was being passed on (malformed chunked
    /// encoding): the client's fault, answered 400, not 502, and not counted against the
    /// upstream.
    #[error("the client's request body failed: {source}")]
    ClientBody {
        #[source]
        source: hyper::Error,
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
            UpstreamError::Protocol { .. } | UpstreamError::ClientBody { .. } => "protocol",
            UpstreamError::AllDown
            | UpstreamError::Connect { .. }
            | UpstreamError::Local { .. }
            | UpstreamError::Busy { .. }
            | UpstreamError::Throttled { .. } => "connect",
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

/// Whether the client's body failed by going silent (`limits.body_timeout_seconds`)
/// rather than by being malformed.
pub(super) fn stalled(e: &hyper::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<super::timed::BodyTimeout>())
}
