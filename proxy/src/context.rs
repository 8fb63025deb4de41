//! What one connection carries from its handshake to its end (who the client is, which
//! host its SNI chose, the snapshot it took) and when it counts as idle; the request
//! handler and the tunnel read it, the connection driver owns it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;

use crate::access_log::ConnFacts;
use crate::admission::Slot;
use crate::app::App;
use crate::mtls::ClientCert;
use crate::sites::Site;
use crate::snapshot::Snapshot;

/// Requests in flight on a connection and when the last one ended: what "idle" means.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    pub(crate) active: AtomicUsize,
    /// Whether a request has ever started: until then the first request's header deadline,
    /// counted from the handshake, applies.
    pub(crate) started: AtomicBool,
    pub(crate) last_end_ms: AtomicU64,
    /// HTTP/2: the responses waiting for the client's flow-control window.
    pub(crate) sending: crate::send_timeout::Sending,
}

/// How long to wait before a connection counts as idle: `None` when it is idle now.
/// PINGs and bytes of open streams do not matter; only whether a request is in flight.
pub(crate) fn idle_wait(
    active: usize,
    last_end_ms: u64,
    now_ms: u64,
    timeout: Duration,
) -> Option<Duration> {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    if active > 0 {
        return Some(timeout);
    }
    let idle_for = now_ms.saturating_sub(last_end_ms);
    if idle_for >= timeout_ms {
        None
    } else {
        Some(Duration::from_millis(timeout_ms - idle_for))
    }
}

/// Per connection: who the client is, which host its SNI chose, and what it holds.
pub(crate) struct ConnCtx {
    pub app: Arc<App>,
    /// The snapshot taken at accept, kept to the end of the connection.
    pub rt: Arc<Snapshot>,
    /// HTTP/2 (else HTTP/1.1), as ALPN chose.
    pub h2: bool,
    pub site: Arc<Site>,
    pub peer: SocketAddr,
    /// The client's address as it goes into X-Forwarded-For, rendered once per connection.
    pub peer_ip: HeaderValue,
    /// The peer is in `server.trusted_proxies`: its X-Forwarded-For is kept and appended to.
    pub trusted_peer: bool,
    /// The verified client certificate (mutual TLS hosts only).
    pub client_cert: Option<ClientCert>,
    /// What the access log says about this connection; `None` when it is off.
    pub(crate) log_facts: Option<Arc<ConnFacts>>,
    pub activity: Activity,
    /// When the handshake finished: what `max_connection_age` and the first request's
    /// header deadline count from.
    pub established: tokio::time::Instant,
    /// Released when the connection and its tunnel (if any) are gone.
    pub(crate) _slot: Slot,
}

impl ConnCtx {
    /// Resolves when a reloaded deny list or CRL names this connection's client certificate.
    pub(crate) async fn revoked(&self) {
        match (&self.site.client_auth, &self.client_cert) {
            (Some(auth), Some(cert)) => auth.revoked(cert).await,
            _ => std::future::pending().await,
        }
    }

    /// Resolves once a drain has started (at once if it started before), or certfront
    /// is stopping without one.
    pub(crate) async fn drain_started(&self) {
        let _ = self
            .app
            .shutdown
            .clone()
            .wait_for(|draining| *draining)
            .await;
    }

    /// Resolves once a drain has started and `drain_seconds` have passed since.
    pub(crate) async fn drain_deadline(&self) {
        if !*self.app.shutdown.borrow() {
            self.drain_started().await;
            if !*self.app.shutdown.borrow() {
                // Stopping without a drain: no deadline.
                return std::future::pending().await;
            }
        }
        tokio::time::sleep(crate::snapshot::drain(&self.rt.config)).await;
    }

    /// Resolves when no request has been in flight for `idle_timeout`.
    pub(crate) async fn idle(&self) {
        let activity = &self.activity;
        until_idle(
            &self.app,
            self.rt.config.limits.idle_timeout,
            || activity.active.load(Ordering::Acquire),
            || activity.last_end_ms.load(Ordering::Relaxed),
        )
        .await;
    }
}

/// Resolves once [`idle_wait`] says idle, sleeping only until it could be.
pub(crate) async fn until_idle(
    app: &App,
    timeout: Duration,
    active: impl Fn() -> usize,
    last_end_ms: impl Fn() -> u64,
) {
    while let Some(wait) = idle_wait(active(), last_end_ms(), app.now_ms(), timeout) {
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_no_request_in_flight() {
        let minute = Duration::from_secs(60);
        // A request in flight: never idle, look again in a full period.
        assert_eq!(idle_wait(1, 0, 3_600_000, minute), Some(minute));
        // Nothing in flight since 59 s: one more second.
        assert_eq!(
            idle_wait(0, 1_000, 60_000, minute),
            Some(Duration::from_secs(1))
        );
        assert_eq!(idle_wait(0, 1_000, 61_000, minute), None);
        // A clock that went backwards never makes a connection idle early.
        assert_eq!(idle_wait(0, 5_000, 1_000, minute), Some(minute));
    }
}
