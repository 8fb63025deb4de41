//! The send timeout (`limits.send_timeout_seconds`, nginx's `send_timeout`): a client that
//! takes nothing for that long loses its connection, so a reader that stopped cannot pin
//! the connection, its buffers and the upstream connection behind its response.
//!
//! Two ways a client can stop taking data, three checks:
//! - it stops reading the socket: a write stays blocked ([`SendTimed`], under hyper, so it
//!   covers responses, HTTP/2 frames and WebSocket tunnels alike);
//! - over HTTP/2 it keeps reading (and answering PINGs) but never opens its flow-control
//!   window: no write blocks, yet no response body is asked for its next frame. The
//!   connection's [`Sending`] count says when every request in flight is in that state;
//!   `conn::drive` closes such a connection after the timeout;
//! - over HTTP/2 it keeps one stream's window shut while other streams stay busy: the
//!   connection is active, but that stream's response holds its upstream connection and
//!   buffers. hyper's task for the stream waits on h2 for window and never polls the body,
//!   and certfront has no handle on the h2 stream, so the check lives in the vendored h2
//!   (`h2::stall`, vendor/h2/README.md): [`StreamStalls`] runs each poll of the
//!   connection in its scope, h2 resets (RST_STREAM CANCEL) a stream that had no window
//!   for the timeout, hyper's task then drops the body, which closes the upstream
//!   connection mid-body instead of pooling it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::progress::ProgressTimer;

/// This host's `certfront_send_timeouts_total` series, resolved once per site.
#[derive(Clone)]
pub(crate) struct SendTimeouts {
    pub write: IntCounter,
    pub flow_control: IntCounter,
    /// One HTTP/2 stream reset, its connection kept.
    pub stream: IntCounter,
}

impl SendTimeouts {
    pub(crate) fn new(vec: &prometheus::IntCounterVec, host: &str) -> Self {
        SendTimeouts {
            write: vec.with_label_values(&[host, "write"]),
            flow_control: vec.with_label_values(&[host, "flow_control"]),
            stream: vec.with_label_values(&[host, "stream"]),
        }
    }
}

pin_project_lite::pin_project! {
    /// An HTTP/2 server connection whose streams are reset, and counted, once one has
    /// waited `timeout` for the client to open its flow-control window. The check runs in
    /// the connection's poll; [`stall_wait`]'s wake-ups (every quarter of the timeout at
    /// most) make sure a poll comes while a stream waits.
    pub(crate) struct StreamStalls<C> {
        #[pin]
        conn: C,
        timeout: Duration,
        counter: IntCounter,
    }
}

impl<C> StreamStalls<C> {
    pub(crate) fn new(conn: C, timeout: Duration, counter: IntCounter) -> Self {
        StreamStalls {
            conn,
            timeout,
            counter,
        }
    }

    pub(crate) fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.project().conn
    }
}

impl<C: Future> Future for StreamStalls<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.project();
        // Two thread-local writes per poll; h2 reads the timeout only while a stream
        // waits for window.
        let (out, resets) = h2::stall::scope(Some(*this.timeout), || this.conn.poll(cx));
        if resets > 0 {
            this.counter.inc_by(resets as u64);
        }
        out
    }
}

/// A client stream whose writes fail once one has been blocked for the timeout.
pub(crate) struct SendTimed<T> {
    io: T,
    /// Runs while a write is blocked; each write that goes through stops it.
    timer: ProgressTimer,
    timed_out: bool,
    counter: IntCounter,
}

impl<T> SendTimed<T> {
    pub(crate) fn new(io: T, timeout: Duration, counter: IntCounter) -> Self {
        SendTimed {
            io,
            timer: ProgressTimer::new(timeout),
            timed_out: false,
            counter,
        }
    }

    fn error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took no data for {:?} (limits.send_timeout_seconds)",
                self.timer.timeout()
            ),
        )
    }

    /// A write is blocked: starts the timer if it does not run yet; an error once it
    /// fired. Registers the task's waker with the timer.
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        ready!(self.timer.poll_expired(cx));
        if !self.timed_out {
            self.timed_out = true;
            self.counter.inc();
        }
        Poll::Ready(self.error())
    }

    /// What a write returned: progress stops the timer, a block runs it.
    fn outcome<R>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.timed_out {
            return Poll::Ready(Err(self.error()));
        }
        match res {
            Poll::Ready(res) => {
                self.timer.progressed();
                Poll::Ready(res)
            }
            Poll::Pending => self.blocked(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write(cx, buf);
        this.outcome(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.outcome(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_flush(cx);
        this.outcome(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.io).poll_shutdown(cx);
        this.outcome(cx, res)
    }
}

/// Per HTTP/2 connection: how many response bodies have handed hyper a frame and were
/// not asked for the next one yet (hyper asks only once the client's window has room),
/// and when any body was last asked.
#[derive(Debug, Default)]
pub(crate) struct Sending {
    pub waiting: AtomicUsize,
    pub last_asked_ms: AtomicU64,
}

/// How long before an HTTP/2 connection counts as stalled: `None` when it is stalled
/// now. Stalled means every request in flight waits for the client's window (none waits
/// for its upstream, none is still being handled) and none was asked for data for the
/// timeout. PINGs do not matter.
pub(crate) fn stall_wait(
    active: usize,
    waiting: usize,
    last_asked_ms: u64,
    now_ms: u64,
    timeout: Duration,
) -> Option<Duration> {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    // Looked at again a quarter of the timeout later: a stall is seen within 1.25x. These
    // wake-ups also poll the connection, which runs h2's per-stream check (StreamStalls).
    let again = Some((timeout / 4).max(Duration::from_millis(50)));
    if active == 0 || waiting < active {
        return again;
    }
    let stalled_for = now_ms.saturating_sub(last_asked_ms);
    if stalled_for >= timeout_ms {
        None
    } else {
        Some(Duration::from_millis(timeout_ms - stalled_for))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::time::Instant;

    #[test]
    fn a_connection_is_stalled_only_when_every_request_waits_for_the_client() {
        let minute = Duration::from_secs(60);
        let again = Some(Duration::from_secs(15));
        // Nothing in flight, or one request still waiting for its upstream: not stalled.
        assert_eq!(stall_wait(0, 0, 0, 3_600_000, minute), again);
        assert_eq!(stall_wait(2, 1, 0, 3_600_000, minute), again);
        // Every request waits for the client: stalled once the timeout has passed.
        assert_eq!(
            stall_wait(2, 2, 1_000, 31_000, minute),
            Some(Duration::from_secs(30))
        );
        assert_eq!(stall_wait(2, 2, 1_000, 61_000, minute), None);
        // A clock that went backwards never stalls a connection early.
        assert_eq!(stall_wait(1, 1, 5_000, 1_000, minute), Some(minute));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_for_the_timeout_fails_and_is_counted() {
        // A 64-byte pipe whose reader never reads.
        let (near, _far) = tokio::io::duplex(64);
        let counter = IntCounter::new("t", "t").unwrap();
        let mut io = SendTimed::new(near, Duration::from_secs(60), counter.clone());
        io.write_all(&[0; 64]).await.expect("room for 64 bytes");
        let started = Instant::now();
        let err = io.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        assert_eq!(counter.get(), 1);
        // Later writes fail at once and count nothing more.
        assert!(io.write_all(&[0; 1]).await.is_err());
        assert_eq!(counter.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_never_cut_off() {
        use tokio::io::AsyncReadExt;
        let (near, mut far) = tokio::io::duplex(64);
        let counter = IntCounter::new("t", "t").unwrap();
        let mut io = SendTimed::new(near, Duration::from_secs(60), counter.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 64 * 10 {
                // 50 s between reads: each write waits less than the timeout.
                tokio::time::sleep(Duration::from_secs(50)).await;
                total += far.read(&mut buf).await.unwrap();
            }
        });
        for _ in 0..10 {
            io.write_all(&[0; 64])
                .await
                .expect("progress resets the timer");
        }
        reader.await.unwrap();
        assert_eq!(counter.get(), 0);
    }
}
