//! Keep-alive connections to one upstream: idle HTTP/1.1 senders (bounded in number and
//! age), one shared HTTP/2 sender when the upstream speaks h2, and a cap on open
//! connections.
//!
//! One pool per configured upstream, never per request Host: what the client writes in
//! `Host` cannot open connections (hyper-util's legacy client keys its pool by the URI's
//! authority, which is why certfront does not use it).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::upstream::ReqBody;

/// An HTTP/1.1 connection that is not carrying a request.
struct Idle {
    tx: http1::SendRequest<ReqBody>,
    since: Instant,
    permit: OwnedSemaphorePermit,
}

/// The connections of one upstream.
pub(crate) struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    h2: Mutex<Option<http2::SendRequest<ReqBody>>>,
    /// One permit per open connection (`limits.upstream_max_connections`).
    pub(crate) permits: Arc<Semaphore>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(max_connections: usize, max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(VecDeque::new()),
            h2: Mutex::new(None),
            permits: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            max_idle,
            idle_timeout,
        }
    }

    /// The shared HTTP/2 connection, while it is open.
    pub(crate) fn h2(&self) -> Option<http2::SendRequest<ReqBody>> {
        let mut slot = self.h2.lock().unwrap_or_else(|p| p.into_inner());
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
        *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// The most recently used idle connection that is still open and young enough. The
    /// caller awaits `ready()` on it: a connection whose last exchange just ended may need
    /// a moment before it takes the next request.
    pub(crate) fn checkout(&self) -> Option<(http1::SendRequest<ReqBody>, OwnedSemaphorePermit)> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(conn) = idle.pop_back() {
            if !conn.tx.is_closed() && conn.since.elapsed() < self.idle_timeout {
                return Some((conn.tx, conn.permit));
            }
        }
        None
    }

    /// Returns a connection whose exchange finished; drops it when the pool is full.
    fn checkin(&self, tx: http1::SendRequest<ReqBody>, permit: OwnedSemaphorePermit) {
        if tx.is_closed() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= self.idle_timeout || c.tx.is_closed())
        {
            idle.pop_front();
        }
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            tx,
            since: now,
            permit,
        });
    }

    /// Idle connections right now (for tests and `/certs`-style introspection).
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// An HTTP/1.1 connection lent to one exchange; it goes back to its pool when the response
/// body has been read to its end, and is closed if the exchange stops half-way.
pub(crate) struct Lease {
    pub(crate) pool: Arc<Pool>,
    pub(crate) tx: http1::SendRequest<ReqBody>,
    pub(crate) permit: OwnedSemaphorePermit,
}

impl Lease {
    fn release(self) {
        self.pool.checkin(self.tx, self.permit);
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
