//! One client connection: TLS accept, then HTTP/1.1 or HTTP/2 as ALPN chose, until the
//! client leaves, is idle too long, reaches its maximum age, loses its client certificate
//! to the deny list, or a drain asks it to finish its requests and close.

mod drive;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::admission::{PerIp, Slot};
use crate::metrics::Metrics;
use crate::mtls::ClientCert;
use crate::runtime::Runtime;
use crate::sites::Site;
use crate::tls;
use crate::tracker::Tracker;

/// What every connection shares for the life of the process. What can change while it
/// runs is in [`Runtime`], one immutable snapshot behind one pointer.
pub struct App {
    pub(crate) runtime: ArcSwap<Runtime>,
    /// Flips to `true` when a drain starts.
    pub shutdown: watch::Receiver<bool>,
    pub(crate) tracker: Tracker,
    pub metrics: Arc<Metrics>,
    pub(crate) per_ip: Arc<PerIp>,
    /// The state of the configuration file, for `/certs` (written by the reloader only).
    pub(crate) config_status: Mutex<ConfigStatus>,
    /// Pending ACME challenge answers and each ACME host's status (issue 12).
    pub(crate) acme: Arc<crate::acme::AcmeState>,
    /// The zero of the millisecond clocks that connections keep.
    epoch: Instant,
}

/// What `/certs` says about the configuration file.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigStatus {
    pub loaded_at: Option<std::time::SystemTime>,
    pub last_attempt: Option<std::time::SystemTime>,
    pub last_error: Option<String>,
    /// Changed settings that only a restart applies (listener addresses, connection limits).
    pub restart_needed: Vec<String>,
}

impl App {
    pub(crate) fn new(
        runtime: Runtime,
        shutdown: watch::Receiver<bool>,
        tracker: Tracker,
        metrics: Arc<Metrics>,
        acme: Arc<crate::acme::AcmeState>,
    ) -> Self {
        App {
            acme,
            runtime: ArcSwap::from_pointee(runtime),
            shutdown,
            tracker,
            metrics,
            per_ip: Arc::new(PerIp::default()),
            config_status: Mutex::new(ConfigStatus {
                loaded_at: Some(std::time::SystemTime::now()),
                ..ConfigStatus::default()
            }),
            epoch: Instant::now(),
        }
    }

    /// The configuration file's status, for the reloader to write and `/certs` to read.
    pub(crate) fn config_status(&self) -> std::sync::MutexGuard<'_, ConfigStatus> {
        self.config_status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current snapshot (what a new connection takes).
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn version_label(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "none",
    }
}

/// Requests in flight on a connection and when the last one ended: what "idle" means.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    active: AtomicUsize,
    /// Whether a request has ever started: until then the first request's header deadline,
    /// counted from the handshake, applies.
    started: AtomicBool,
    last_end_ms: AtomicU64,
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
    pub rt: Arc<Runtime>,
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
    pub activity: Activity,
    /// When the handshake finished: what `max_connection_age` and the first request's
    /// header deadline count from.
    pub established: tokio::time::Instant,
    /// Released when the connection and its tunnel (if any) are gone.
    _slot: Slot,
}

impl ConnCtx {
    /// Resolves when a reloaded deny list names this connection's client certificate.
    pub(crate) async fn revoked(&self) {
        match (&self.site.client_auth, &self.client_cert) {
            (Some(auth), Some(cert)) => auth.revoked(&cert.leaf).await,
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
        tokio::time::sleep(crate::runtime::drain(&self.rt.config)).await;
    }

    /// Resolves when no request has been in flight for `idle_timeout`.
    async fn idle(&self) {
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

/// Counts one request in flight until its response body is done (or dropped).
pub(crate) struct InFlight {
    ctx: Arc<ConnCtx>,
    /// HTTP/2: the body handed hyper a frame and was not asked for the next one yet
    /// (counted in `Activity::sending`).
    waiting: bool,
}

impl InFlight {
    fn new(ctx: Arc<ConnCtx>) -> Self {
        ctx.activity.active.fetch_add(1, Ordering::AcqRel);
        ctx.activity.started.store(true, Ordering::Release);
        InFlight {
            ctx,
            waiting: false,
        }
    }

    /// hyper asks the body for a frame: on HTTP/2 that means the client's window has
    /// room, so the connection is not stalled.
    fn asked(&mut self) {
        let sending = &self.ctx.activity.sending;
        sending
            .last_asked_ms
            .store(self.ctx.app.now_ms(), Ordering::Relaxed);
        if self.waiting {
            self.waiting = false;
            sending.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The body handed hyper a frame; until asked again it waits for the client.
    fn handed(&mut self) {
        self.waiting = true;
        self.ctx
            .activity
            .sending
            .waiting
            .fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.ctx.activity;
        if self.waiting {
            activity.sending.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        activity
            .last_end_ms
            .store(self.ctx.app.now_ms(), Ordering::Relaxed);
        activity.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is sent.
    pub struct Counted<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if !this.in_flight.ctx.h2 {
            // HTTP/1.1 has no flow control: a blocked write is `SendTimed`'s to see.
            return this.body.poll_frame(cx);
        }
        this.in_flight.asked();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &frame {
            this.in_flight.handed();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves one TLS client connection to its end. `slot` is what admission gave it.
///
/// Memory is what bounds how many idle connections a proxy can hold, so the task that
/// lives as long as the connection stays small: the handshake's state lives in its own
/// allocation, freed once the handshake ends, and the HTTP state (hyper's buffers and
/// dispatcher, several KiB) is made only once the client has sent its first bytes. An
/// HTTP/1.1 client that opens a connection and sends nothing costs its TLS session and
/// little more.
pub(crate) async fn serve_tls(app: Arc<App>, tcp: TcpStream, peer: SocketAddr, slot: Slot) {
    let _ = tcp.set_nodelay(true);
    let Some((mut stream, ctx)) = Box::pin(establish(app, tcp, peer, slot)).await else {
        return;
    };
    // HTTP/2 clients send their preface at once, so only HTTP/1.1 connections wait here.
    if !ctx.h2 {
        match drive::first_bytes(&mut stream, &ctx).await {
            drive::FirstBytes::Arrived => {}
            drive::FirstBytes::Close(why) => {
                debug!(%peer, "closing connection before its first request ({why})");
                // close_notify, as hyper sends when it closes an idle connection; bounded,
                // as a client that reads nothing must not hold the task.
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                return;
            }
        }
    }
    Box::pin(drive::serve_http(stream, ctx)).await;
}

/// The handshake and what follows from it: the host, the client certificate checks, the
/// connection's context. `None` when the connection ends here (counted and logged).
async fn establish(
    app: Arc<App>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
) -> Option<(TlsStream<TcpStream>, Arc<ConnCtx>)> {
    let rt = app.runtime();
    let accepted = tls::accept(
        tcp,
        &rt.table,
        &app.acme.challenges,
        rt.config.limits.handshake_timeout,
    )
    .await;
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err((site, e)) => {
            let host = site.as_ref().map(|s| s.fqdn.as_str()).unwrap_or("unknown");
            debug!(%peer, host, "TLS handshake failed: {e}");
            if let (Some(site), true) = (&site, e.no_client_cert()) {
                app.metrics
                    .client_cert_rejections
                    .with_label_values(&[site.fqdn.as_str(), "missing"])
                    .inc();
            }
            app.metrics
                .tls_handshakes
                .with_label_values(&[host, "none", e.reason()])
                .inc();
            return None;
        }
    };
    app.metrics
        .tls_handshakes
        .with_label_values(&[
            accepted.site.fqdn.as_str(),
            version_label(accepted.version),
            "success",
        ])
        .inc();
    let client_cert = match &accepted.site.client_auth {
        Some(_) => accepted
            .stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(ClientCert::from_leaf),
        None => None,
    };
    // A resumed session skips certificate verification, so the deny list is checked here too.
    if let (Some(auth), Some(cert)) = (&accepted.site.client_auth, &client_cert)
        && auth.is_denied(&cert.leaf)
    {
        debug!(%peer, host = %accepted.site.fqdn, "resumed session of a denied client certificate refused");
        app.metrics
            .client_cert_rejections
            .with_label_values(&[accepted.site.fqdn.as_str(), "denied"])
            .inc();
        return None;
    }
    let trusted_peer = rt
        .config
        .server
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer.ip()));
    let ctx = Arc::new(ConnCtx {
        client_cert,
        peer_ip: HeaderValue::try_from(peer.ip().to_string()).expect("an IP is a header value"),
        trusted_peer,
        activity: Activity {
            active: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_end_ms: AtomicU64::new(app.now_ms()),
            sending: Default::default(),
        },
        established: tokio::time::Instant::now(),
        app,
        rt,
        h2: accepted.h2,
        site: accepted.site,
        peer,
        _slot: slot,
    });
    Some((accepted.stream, ctx))
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
