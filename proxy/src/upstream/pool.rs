//! Keep-alive connections to one upstream: idle HTTP/1.1 connections (bounded in number
//! and age), one shared HTTP/2 sender when the upstream speaks h2, and a cap on open
//! connections.
//!
//! An HTTP/1.1 upstream connection has no task of its own: the request that holds it
//! drives its I/O (while waiting for the response, then while its body is read), so a
//! request costs no hop to another task and no cross-thread wake-up. An idle connection
//! is not polled, so whatever the upstream sends while it sits here (bytes past the
//! last response's end, a close) is still unread when the next request takes it: that
//! request would read those bytes as its own response. So a connection is checked when it
//! is taken out (see [`H1::idle_check`]) and closed, and counted in
//! `certfront_upstream_connections_discarded_total`, if anything arrived; a response
//! followed by more bytes fails its own connection (hyper's idle read), never the next.
//!
//! One pool per configured upstream, never per request Host: what the client writes in
//! `Host` cannot open connections (hyper-util's legacy client keys its pool by the URI's
//! authority, which is why certfront does not use it).
//!
//! Idle connections and the HTTP/2 sender are kept per worker thread (`crate::workers`):
//! a connection is registered with the reactor of the worker that opened it and is only
//! used there, so its I/O never wakes another thread. The connection cap is shared.
//!
//! How many stay idle: by default as many as the load needed, bounded by the connection
//! cap (HAProxy's and Envoy's way), so a busy proxy never opens a backend connection per
//! request; those unused for the idle timeout are closed by a sweeper each worker runs
//! while it holds any. Reuse is last-in first-out, so a connection the load no longer
//! needs sinks to the front and ages out. When the cap is reached and a worker needs a
//! connection while another worker holds idle ones, the oldest idle one is closed for it
//! ([`Pool::evict_idle`]).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::TokioIo;
use prometheus::{IntCounter, IntCounterVec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ReqBody;
use super::io::UpstreamIo;

/// An HTTP/1.1 upstream connection, driven by whoever holds it.
pub(crate) struct H1 {
    tx: http1::SendRequest<ReqBody>,
    /// Boxed once per connection: it is large, and an `H1` moves in and out of the pool.
    conn: Box<http1::Connection<TokioIo<UpstreamIo>, ReqBody>>,
    /// The connection future has finished (closed or failed): never poll it again.
    ended: bool,
    /// It finished with an error (e.g. bytes after a response's end).
    failed: bool,
    /// Taken from the pool (not fresh): a failure before sending is counted as a discard.
    pub(crate) reused: bool,
    /// A second handle on the TCP socket (a `dup` made once per connection), only ever
    /// peeked: see [`H1::idle_check`].
    probe: std::net::TcpStream,
    _permit: OwnedSemaphorePermit,
}

/// Why an idle upstream connection was closed instead of reused: the `reason` label of
/// `certfront_upstream_connections_discarded_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Discard {
    /// The upstream sent bytes no request asked for.
    UnreadBytes,
    /// The upstream closed (or reset) it.
    Closed,
    /// The connection failed after its last response (hyper found bytes past the
    /// response's end in its buffer, or an I/O error).
    Error,
}

impl Discard {
    const ALL: [Discard; 3] = [Discard::UnreadBytes, Discard::Closed, Discard::Error];

    fn label(self) -> &'static str {
        match self {
            Discard::UnreadBytes => "unread_bytes",
            Discard::Closed => "closed",
            Discard::Error => "error",
        }
    }
}

/// One host's discard counters, resolved once so a discard takes no label lookup.
#[derive(Clone)]
pub(crate) struct Discards([IntCounter; 3]);

impl Discards {
    pub(crate) fn new(vec: &IntCounterVec, host: &str) -> Self {
        Discards(Discard::ALL.map(|d| vec.with_label_values(&[host, d.label()])))
    }

    /// Counters registered nowhere (unit tests).
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        Discards(Discard::ALL.map(|d| IntCounter::new(d.label(), "unregistered").expect("name")))
    }

    pub(crate) fn count(&self, why: Discard) {
        self.0[why as usize].inc();
    }

    #[cfg(test)]
    pub(crate) fn get(&self, why: Discard) -> u64 {
        self.0[why as usize].get()
    }
}

impl H1 {
    pub(crate) fn new(
        tx: http1::SendRequest<ReqBody>,
        conn: http1::Connection<TokioIo<UpstreamIo>, ReqBody>,
        probe: std::net::TcpStream,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        H1 {
            tx,
            conn: Box::new(conn),
            ended: false,
            failed: false,
            reused: false,
            probe,
            _permit: permit,
        }
    }

    /// Moves the connection's bytes: writes the request, reads the response.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.ended
            && let Poll::Ready(done) = Pin::new(&mut *self.conn).poll(cx)
        {
            self.ended = true;
            self.failed = done.is_err();
        }
    }

    /// Whether anything arrived on the socket while the connection sat idle: one
    /// non-blocking `recv(MSG_PEEK)` of a byte, so the kernel's answer.
    ///
    /// Why a syscall and not the readiness tokio already holds: the reactor learns of new
    /// bytes only when it next turns (when the worker runs out of tasks, or every few
    /// dozen polls), so on a busy worker, exactly where connections are reused, a request
    /// taken out a moment after the upstream's stray bytes landed would see "not
    /// readable" and be written; the stray bytes would then be read as its response (what
    /// hyper's own idle check, which goes by that readiness, misses). One peek per reuse
    /// (well under a microsecond) is the price of never handing a client someone
    /// else's bytes. Bytes already inside hyper's or rustls' buffers are not in the socket:
    /// the first [`H1::ready`] after checkout finds those (hyper refuses unread bytes on
    /// an idle connection).
    fn idle_check(&self) -> Option<Discard> {
        let mut byte = [0u8; 1];
        match self.probe.peek(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Ok(0) => Some(Discard::Closed),
            Ok(_) => Some(Discard::UnreadBytes),
            Err(_) => Some(Discard::Closed),
        }
    }

    /// Resolves when the connection takes a request; fails when it was closed.
    pub(crate) async fn ready(&mut self) -> hyper::Result<()> {
        poll_fn(|cx| {
            self.drive(cx);
            self.tx.poll_ready(cx)
        })
        .await
    }

    /// Sends `req` and waits for the response head; a request that was not written
    /// comes back in the error.
    pub(crate) async fn send(
        &mut self,
        req: Request<ReqBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<ReqBody>>> {
        let mut response = std::pin::pin!(self.tx.try_send_request(req));
        poll_fn(|cx| {
            self.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
    }

    fn is_open(&self) -> bool {
        !self.ended && !self.tx.is_closed()
    }
}

/// An HTTP/1.1 connection that is not carrying a request.
struct Idle {
    h1: H1,
    since: Instant,
}

/// One worker's idle connections, oldest first.
#[derive(Default)]
struct IdleList {
    conns: VecDeque<Idle>,
    /// This worker runs a sweeper for them ([`Pool::sweep`]).
    sweeping: bool,
}

/// One worker's connections to the upstream. Its locks are taken by that worker, and by
/// another only when the connection cap is reached ([`Pool::evict_idle`]), so they are
/// not contended. Aligned to its own cache lines: the workers' shards sit side by side,
/// and one worker's lock must not bounce the line another worker's lock is on.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    idle: Mutex<IdleList>,
    h2: Mutex<Option<http2::SendRequest<ReqBody>>>,
}

/// The connections of one upstream.
pub(crate) struct Pool {
    shards: Box<[Shard]>,
    /// One permit per open connection (`limits.upstream_max_connections`).
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) discards: Discards,
    /// Idle connections kept in all, over every worker.
    max_idle: usize,
    /// Idle connections in all shards. Kept only when `max_idle` is below the connection
    /// cap (otherwise the cap bounds them): the default pays no shared counter.
    idle_count: Option<AtomicUsize>,
    idle_timeout: Duration,
    /// Handed to the sweepers, which must not keep a replaced pool alive.
    me: Weak<Pool>,
}

impl Pool {
    /// `max_idle` is for the whole pool, whichever workers hold them.
    pub(crate) fn new(
        max_connections: usize,
        max_idle: usize,
        idle_timeout: Duration,
        workers: usize,
        discards: Discards,
    ) -> Arc<Self> {
        let workers = workers.max(1);
        let max_connections = max_connections.min(Semaphore::MAX_PERMITS);
        Arc::new_cyclic(|me| Pool {
            shards: (0..workers).map(|_| Shard::default()).collect(),
            permits: Arc::new(Semaphore::new(max_connections)),
            discards,
            max_idle,
            idle_count: (max_idle < max_connections).then(|| AtomicUsize::new(0)),
            idle_timeout,
            me: me.clone(),
        })
    }

    /// The calling worker's shard.
    fn shard(&self) -> &Shard {
        &self.shards[self.index()]
    }

    fn index(&self) -> usize {
        crate::workers::current() % self.shards.len()
    }

    /// One idle connection fewer (taken, closed or evicted).
    fn idle_removed(&self) {
        if let Some(count) = &self.idle_count {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// This worker's HTTP/2 connection, while it is open.
    pub(crate) fn h2(&self) -> Option<http2::SendRequest<ReqBody>> {
        let mut slot = self.shard().h2.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(tx) if !tx.is_closed() => Some(tx.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    pub(crate) fn set_h2(&self, tx: http2::SendRequest<ReqBody>) {
        *self.shard().h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// The most recently used idle connection that is still open, young enough, and
    /// received nothing while idle ([`H1::idle_check`]); the others are closed, and those
    /// the upstream wrote to or closed are counted. The caller awaits [`H1::ready`] on
    /// it, which also finds bytes already buffered above the socket.
    pub(crate) fn checkout(&self) -> Option<H1> {
        let mut idle = self.shard().idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut conn) = idle.conns.pop_back() {
            self.idle_removed();
            if !conn.h1.is_open() || conn.since.elapsed() >= self.idle_timeout {
                continue;
            }
            if let Some(why) = conn.h1.idle_check() {
                tracing::debug!(reason = why.label(), "idle upstream connection discarded");
                self.discards.count(why);
                continue;
            }
            conn.h1.reused = true;
            return Some(conn.h1);
        }
        None
    }

    /// Returns a connection whose exchange finished; drops it when the pool is full. One
    /// that failed after its response (bytes past the response's end) is counted.
    pub(crate) fn checkin(&self, h1: H1) {
        if h1.failed {
            self.discards.count(Discard::Error);
        }
        if !h1.is_open() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let index = self.index();
        let mut idle = self.shards[index]
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.prune(&mut idle, now);
        if let Some(count) = &self.idle_count {
            if count.load(Ordering::Relaxed) < self.max_idle {
                count.fetch_add(1, Ordering::Relaxed);
            } else if idle.conns.pop_front().is_none() {
                // Full, and this worker holds none to make room with: it keeps none.
                return;
            }
            // (Full: this worker's oldest made room; the count stays.)
        }
        idle.conns.push_back(Idle { h1, since: now });
        if !idle.sweeping {
            idle.sweeping = self.start_sweeper(index);
        }
    }

    /// Closes the connections at the front (the oldest) that are past the idle timeout
    /// or were closed.
    fn prune(&self, idle: &mut IdleList, now: Instant) {
        while idle
            .conns
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= self.idle_timeout || !c.h1.is_open())
        {
            idle.conns.pop_front();
            self.idle_removed();
        }
    }

    /// Starts this worker's sweeper: a task on this worker that closes its connections
    /// once they have been idle for the timeout, and stops when none is left (the next
    /// checkin starts another). Without it, connections a burst left behind would stay
    /// open, holding sockets on both sides, until the next request or the upstream's own
    /// keep-alive timeout. False outside a runtime (nothing to run it on).
    fn start_sweeper(&self, index: usize) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let pool = self.me.clone();
        // A connection is closed at most a quarter of the timeout late.
        let period = (self.idle_timeout / 4).max(Duration::from_millis(10));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match pool.upgrade() {
                    Some(pool) if pool.sweep(index) => {}
                    _ => return,
                }
            }
        });
        true
    }

    /// The sweeper's round on worker `index`'s shard (its own, except under the
    /// work-stealing measuring mode of `crate::workers`): false (and it stops) once the
    /// shard holds no idle connection.
    fn sweep(&self, index: usize) -> bool {
        let mut idle = self.shards[index]
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.prune(&mut idle, Instant::now());
        idle.sweeping = !idle.conns.is_empty();
        idle.sweeping
    }

    /// Closes one idle connection, the oldest of the first worker holding any, so that a
    /// new one fits under the connection cap: called only when every permit is taken.
    /// Takes other workers' locks, which only this does, and only at the cap. False when
    /// no worker holds an idle connection.
    pub(crate) fn evict_idle(&self) -> bool {
        let mut evicted = None;
        for shard in self.shards.iter() {
            let mut idle = shard.idle.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(conn) = idle.conns.pop_front() {
                self.idle_removed();
                evicted = Some(conn);
                break;
            }
        }
        // Closed outside the lock; its permit returns to the semaphore.
        evicted.is_some()
    }
}

/// A connection taken for a request that has not been handed to it yet: if the request
/// is cancelled now, the connection is still clean and goes back to the pool.
pub(crate) struct Unsent<'a> {
    pool: &'a Pool,
    h1: Option<H1>,
}

impl<'a> Unsent<'a> {
    pub(crate) fn new(pool: &'a Pool, h1: H1) -> Self {
        Unsent { pool, h1: Some(h1) }
    }

    pub(crate) fn h1(&mut self) -> &mut H1 {
        self.h1.as_mut().expect("taken only once")
    }

    /// The connection, now to carry the request.
    pub(crate) fn take(mut self) -> H1 {
        self.h1.take().expect("taken only once")
    }
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(h1) = self.h1.take() {
            self.pool.checkin(h1);
        }
    }
}

/// An HTTP/1.1 connection lent to one exchange; it goes back to its pool when the response
/// body has been read to its end, and is closed if the exchange stops half-way.
pub(crate) struct Lease {
    pub(crate) pool: Arc<Pool>,
    pub(crate) h1: H1,
}

impl Lease {
    fn release(self) {
        self.pool.checkin(self.h1);
    }
}

pin_project_lite::pin_project! {
    /// An upstream response body that hands its connection back at the end.
    pub struct PooledBody {
        #[pin]
        inner: Incoming,
        lease: Option<Lease>,
    }
}

impl PooledBody {
    /// An empty body is never polled by the server, so its connection goes back at once.
    pub(crate) fn new(inner: Incoming, lease: Option<Lease>) -> Self {
        let lease = match lease {
            Some(lease) if inner.is_end_stream() => {
                lease.release();
                None
            }
            other => other,
        };
        PooledBody { inner, lease }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        // The upstream connection reads the body's bytes only when polled: here.
        if let Some(lease) = this.lease.as_mut() {
            lease.h1.drive(cx);
        }
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        // A server that knows the length stops polling after the last byte, never asking
        // for the end: so the end is also "the body says nothing is left".
        if (frame.is_none() || this.inner.is_end_stream())
            && let Some(lease) = this.lease.take()
        {
            lease.release();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
