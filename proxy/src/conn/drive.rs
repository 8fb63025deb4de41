//! Driving a client connection after its handshake: waiting, without any HTTP state, for
//! an HTTP/1.1 client's first bytes, then running hyper's connection until the client
//! leaves or one of the connection's limits (idle, age, drain, retirement, revocation)
//! ends it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::HeaderValue;
use http_body::Body;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info};

use super::{Counted, InFlight};
use crate::context::ConnCtx;
use crate::forward;
use crate::gated::Gated;
use crate::send_timeout::{SendTimed, StreamStalls, stall_wait};

/// How the wait for an HTTP/1.1 client's first bytes ended.
pub(super) enum FirstBytes {
    /// Bytes are waiting (in the socket or already decrypted): time for HTTP.
    Arrived,
    /// The connection ends before any request, for this reason.
    Close(&'static str),
}

/// Waits until the client sends something, holding nothing but the TLS session: hyper
/// reserves its 8 KiB read buffer and a dispatcher sized for a whole request on its first
/// poll, which a connection that stays silent never needs. The limits that apply to a
/// connection with no request in flight apply here too: the header deadline of the first
/// request (counted from the handshake, as hyper counts it from its first read), the idle
/// timeout, the maximum age, a drain and a revoked client certificate. A retired host
/// goes on to HTTP, which finishes it as it does any connection (see [`drive`]).
pub(super) async fn first_bytes(stream: &mut TlsStream<TcpStream>, ctx: &ConnCtx) -> FirstBytes {
    // The handshake's last read can bring the first request along (or a close_notify).
    // Whatever whole records rustls holds are processed here; what they carry, or an
    // error, is hyper's to read: rustls then wants no more reads until it is consumed.
    let tls = stream.get_mut().1;
    if tls.process_new_packets().is_err() || !tls.wants_read() {
        return FirstBytes::Arrived;
    }
    let tcp = stream.get_ref().0;
    if *ctx.app.shutdown.borrow() {
        return FirstBytes::Close("drain");
    }
    // No request can start before the first bytes, so the timed limits are fixed
    // deadlines: one timer for the earliest (each timer is another 100 bytes to hold).
    let (deadline, why) = first_deadline(ctx);
    let mut byte = [0u8; 1];
    tokio::select! {
        // A TLS record arrived (a request, an alert, a key update): rustls and hyper
        // make sense of it. `peek` leaves it in the socket for them.
        res = tcp.peek(&mut byte) => match res {
            Ok(0) => FirstBytes::Close("client closed"),
            Ok(_) => FirstBytes::Arrived,
            Err(_) => FirstBytes::Close("read error"),
        },
        _ = tokio::time::sleep_until(deadline) => FirstBytes::Close(why),
        _ = ctx.drain_started() => FirstBytes::Close("drain"),
        _ = ctx.revoked() => FirstBytes::Close("client certificate denied"),
        _ = ctx.site.retirement() => FirstBytes::Arrived,
    }
}

/// The earliest limit of a connection that has had no request yet, and its name.
fn first_deadline(ctx: &ConnCtx) -> (Instant, &'static str) {
    let limits = &ctx.rt.config.limits;
    let mut earliest = (
        ctx.established + limits.header_read_timeout,
        "header_read_timeout",
    );
    let idle = ctx.established + limits.idle_timeout;
    if idle < earliest.0 {
        earliest = (idle, "idle");
    }
    if let Some(age) = limits.max_connection_age
        && ctx.established + age < earliest.0
    {
        earliest = (ctx.established + age, "max_connection_age");
    }
    earliest
}

/// Resolves when the connection reaches `max_connection_age` (never when unset).
async fn age(ctx: &ConnCtx) {
    match ctx.rt.config.limits.max_connection_age {
        Some(age) => tokio::time::sleep_until(ctx.established + age).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the first request's headers are not complete `header_read_timeout` after
/// the handshake. hyper starts its own header timer at its first read, which for an
/// HTTP/1.1 connection comes only once the first bytes arrived (see [`first_bytes`]); this
/// keeps the first request to the same bound it had when hyper started at the handshake.
async fn first_header_deadline(ctx: &ConnCtx) {
    if ctx.h2 {
        return std::future::pending().await;
    }
    tokio::time::sleep_until(ctx.established + ctx.rt.config.limits.header_read_timeout).await;
    if ctx.activity.started.load(Ordering::Acquire) {
        std::future::pending().await
    }
}

/// Runs HTTP/1.1 or HTTP/2 (as ALPN chose) on an established TLS stream to its end.
pub(super) async fn serve_http(stream: TlsStream<TcpStream>, ctx: Arc<ConnCtx>) {
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
                Ok::<_, Infallible>(resp.map(|body| Counted { body, in_flight }))
            }
        })
    };
    let io = TokioIo::new(SendTimed::new(
        stream,
        ctx.rt.config.limits.send_timeout,
        ctx.site.send_timeouts.write.clone(),
    ));
    if ctx.h2 {
        let conn = StreamStalls::new(
            ctx.rt.http2.serve_connection(io, service),
            ctx.rt.config.limits.send_timeout,
            ctx.site.send_timeouts.stream.clone(),
        );
        drive(conn, &ctx).await;
    } else {
        drive(
            ctx.rt.http1.serve_connection(io, service).with_upgrades(),
            &ctx,
        )
        .await;
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

impl<C: Graceful> Graceful for StreamStalls<C> {
    fn begin_drain(self: Pin<&mut Self>) {
        self.conn().begin_drain();
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

/// What ends a connection at once, without finishing its requests.
enum Abort {
    Revoked,
    FirstHeaderLate,
    /// HTTP/2: every request waited `send_timeout` for the client's flow-control window.
    Stalled,
}

/// Resolves when an HTTP/2 connection is stalled (see [`stall_wait`]); never on HTTP/1.1,
/// where a client that takes nothing blocks a write ([`SendTimed`]).
async fn stalled(ctx: &ConnCtx) {
    if !ctx.h2 {
        return std::future::pending().await;
    }
    let (activity, timeout) = (&ctx.activity, ctx.rt.config.limits.send_timeout);
    while let Some(wait) = stall_wait(
        activity.active.load(Ordering::Acquire),
        activity.sending.waiting.load(Ordering::Acquire),
        activity.sending.last_asked_ms.load(Ordering::Relaxed),
        ctx.app.now_ms(),
        timeout,
    ) {
        tokio::time::sleep(wait.max(std::time::Duration::from_millis(10))).await;
    }
}

/// Drives a hyper connection to its end. A drain, the idle timeout or the maximum age ask
/// it to finish in-flight requests and close (HTTP/2 GOAWAY); a revoked client
/// certificate, or a first request whose headers are late, closes it at once.
///
/// The watchers are [`Gated`]: a wake-up by the sockets polls the connection only.
async fn drive<C: Graceful>(conn: C, ctx: &ConnCtx) {
    tokio::pin!(conn);
    let abort = Gated::new(async {
        tokio::select! {
            _ = ctx.revoked() => Abort::Revoked,
            _ = first_header_deadline(ctx) => Abort::FirstHeaderLate,
            _ = stalled(ctx) => Abort::Stalled,
        }
    });
    tokio::pin!(abort);
    let close = Gated::new(async {
        tokio::select! {
            biased;
            // A drain that started before this connection was served counts at once.
            _ = ctx.drain_started() => Close::Drain,
            _ = ctx.site.retirement() => Close::Retired,
            _ = ctx.idle() => Close::Idle,
            _ = age(ctx) => Close::MaxAge,
        }
    });
    tokio::pin!(close);
    let why = tokio::select! {
        biased;
        why = &mut close => why,
        why = &mut abort => return aborted(why, ctx),
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
        let deadline = tokio::time::sleep(crate::snapshot::drain(&ctx.rt.config));
        tokio::select! {
            res = conn.as_mut() => ended(res, ctx),
            _ = deadline => {
                debug!(peer = %ctx.peer, "closing connection: its host was reconfigured and drain_seconds passed");
            }
            why = &mut abort => aborted(why, ctx),
        }
        return;
    }
    debug!(peer = %ctx.peer, "closing connection ({})", why.as_str());
    conn.as_mut().begin_drain();
    // Idle: no request is in flight, so all that is left is handing the client what is
    // buffered. A client that never opens its HTTP/2 window would hold that forever.
    let flushed = async {
        if why == Close::Idle {
            tokio::time::sleep(ctx.rt.config.limits.send_timeout).await;
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        res = conn.as_mut() => ended(res, ctx),
        why = &mut abort => aborted(why, ctx),
        _ = flushed => aborted(Abort::Stalled, ctx),
    }
}

fn ended(res: hyper::Result<()>, ctx: &ConnCtx) {
    if let Err(e) = res {
        debug!(peer = %ctx.peer, "connection ended: {e}");
    }
}

fn aborted(why: Abort, ctx: &ConnCtx) {
    match why {
        Abort::Revoked => info!(
            peer = %ctx.peer,
            host = %ctx.site.fqdn,
            "closing connection: its client certificate is now on the deny list"
        ),
        Abort::FirstHeaderLate => debug!(
            peer = %ctx.peer,
            "closing connection: its first request's headers did not arrive within header_read_timeout"
        ),
        Abort::Stalled => {
            ctx.site.send_timeouts.flow_control.inc();
            info!(
                peer = %ctx.peer,
                host = %ctx.site.fqdn,
                "closing connection: the client took no data for send_timeout"
            );
        }
    }
}
