//! One client connection: TLS accept, then HTTP/1.1 or HTTP/2 as ALPN chose, until the
//! client leaves, is idle too long, reaches its maximum age, loses its client certificate
//! to the deny list, or a drain asks it to finish its requests and close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::admission::{PerIp, Slot};
use crate::forward;
use crate::gated::Gated;
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
    last_end_ms: AtomicU64,
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

    /// Resolves once a drain has started and `drain_seconds` have passed since.
    pub(crate) async fn drain_deadline(&self) {
        let mut shutdown = self.app.shutdown.clone();
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            if shutdown.changed().await.is_err() {
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
pub(crate) struct InFlight(Arc<ConnCtx>);

impl InFlight {
    fn new(ctx: Arc<ConnCtx>) -> Self {
        ctx.activity.active.fetch_add(1, Ordering::AcqRel);
        InFlight(ctx)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0.activity;
        activity
            .last_end_ms
            .store(self.0.app.now_ms(), Ordering::Relaxed);
        activity.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until it is sent.
    pub struct Counted<B> {
        #[pin]
        body: B,
        _in_flight: InFlight,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A hyper server connection that can be asked to finish its requests and close.
trait Graceful: Future<Output = hyper::Result<()>> {
    fn begin_drain(self: Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S, B, E> Graceful for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn begin_drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn begin_drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Why a connection is asked to finish its requests and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    Drain,
    Idle,
    MaxAge,
    /// A newer configuration serves this host differently, or not at all.
    Retired,
}

impl Close {
    fn as_str(self) -> &'static str {
        match self {
            Close::Drain => "drain",
            Close::Idle => "idle",
            Close::MaxAge => "max_connection_age",
            Close::Retired => "retired",
        }
    }
}

/// Drives a hyper connection to its end. A drain, the idle timeout or the maximum age ask
/// it to finish in-flight requests and close (HTTP/2 GOAWAY); a revoked client
/// certificate closes it at once.
///
/// The watchers are [`Gated`]: a wake-up by the sockets polls the connection only.
async fn drive<C: Graceful>(conn: C, ctx: &ConnCtx) {
    tokio::pin!(conn);
    let revoked = Gated::new(ctx.revoked());
    tokio::pin!(revoked);
    let close = Gated::new(async {
        let mut shutdown = ctx.app.shutdown.clone();
        let drain = async {
            // A drain that started before this connection was served counts at once.
            let _ = shutdown.wait_for(|draining| *draining).await;
        };
        let age = async {
            match ctx.rt.config.limits.max_connection_age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = drain => Close::Drain,
            _ = ctx.site.retirement() => Close::Retired,
            _ = ctx.idle() => Close::Idle,
            _ = age => Close::MaxAge,
        }
    });
    tokio::pin!(close);
    let why = tokio::select! {
        biased;
        why = &mut close => why,
        _ = &mut revoked => return revoked_close(ctx),
        res = conn.as_mut() => return ended(res, ctx),
    };
    if why == Close::Retired {
        // Finish what is in flight (HTTP/1.1 answers carry `Connection: close` from now
        // on), then close, at the latest `drain_seconds` from now. HTTP/2: GOAWAY tells
        // the client which requests were taken, so none is lost. HTTP/1.1 has no such
        // signal: closing an idle connection races a request the client may be sending,
        // so the close rides on the next answer.
        if ctx.h2 {
            conn.as_mut().begin_drain();
        }
        let deadline = tokio::time::sleep(crate::runtime::drain(&ctx.rt.config));
        tokio::select! {
            res = conn.as_mut() => ended(res, ctx),
            _ = deadline => {
                debug!(peer = %ctx.peer, "closing connection: its host was reconfigured and drain_seconds passed");
            }
            _ = &mut revoked => revoked_close(ctx),
        }
        return;
    }
    debug!(peer = %ctx.peer, "closing connection ({})", why.as_str());
    conn.as_mut().begin_drain();
    tokio::select! {
        res = conn.as_mut() => ended(res, ctx),
        _ = &mut revoked => revoked_close(ctx),
    }
}

fn ended(res: hyper::Result<()>, ctx: &ConnCtx) {
    if let Err(e) = res {
        debug!(peer = %ctx.peer, "connection ended: {e}");
    }
}

fn revoked_close(ctx: &ConnCtx) {
    info!(
        peer = %ctx.peer,
        host = %ctx.site.fqdn,
        "closing connection: its client certificate is now on the deny list"
    );
}

/// Serves one TLS client connection to its end. `slot` is what admission gave it.
pub(crate) async fn serve_tls(app: Arc<App>, tcp: TcpStream, peer: SocketAddr, slot: Slot) {
    let _ = tcp.set_nodelay(true);
    let rt = app.runtime();
    let accepted = match tls::accept(
        tcp,
        &rt.table,
        &app.acme.challenges,
        rt.config.limits.handshake_timeout,
    )
    .await
    {
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
            return;
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
        return;
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
            last_end_ms: AtomicU64::new(app.now_ms()),
        },
        app: app.clone(),
        rt: rt.clone(),
        h2: accepted.h2,
        site: accepted.site,
        peer,
        _slot: slot,
    });
    let service = {
        let ctx = ctx.clone();
        service_fn(move |req| {
            let in_flight = InFlight::new(ctx.clone());
            let ctx = ctx.clone();
            async move {
                // Boxed: hyper moves this future into the connection (HTTP/1.1) or into a
                // task per stream (HTTP/2); a pointer moves cheaper than the ~1.5 KiB
                // handler (memcpy was 17% of the instructions per HTTP/2 request).
                let mut resp = Box::pin(forward::handle(req, ctx.clone())).await;
                if !ctx.h2 && ctx.site.is_retired() {
                    // Reconfigured host: this is the connection's last answer.
                    resp.headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(resp.map(|body| Counted {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let io = TokioIo::new(accepted.stream);
    if accepted.h2 {
        drive(rt.http2.serve_connection(io, service), &ctx).await;
    } else {
        drive(rt.http1.serve_connection(io, service).with_upgrades(), &ctx).await;
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
