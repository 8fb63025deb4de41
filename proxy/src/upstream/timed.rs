//! An inactivity timeout on a streamed body: an error when no frame has come for the
//! timeout (`limits.body_timeout_seconds`), so a client or upstream that stops sending
//! half-way does not hold a request, its connection and its buffers forever.
//!
//! Written here rather than taken from tower-http: its `TimeoutBody` keeps the timer
//! inline and so is `!Unpin`, and hyper's HTTP/2 client only sends `Unpin` bodies, which
//! would mean a box per request. This one allocates its timer only the first time the
//! body has to wait, and reuses it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};

use crate::progress::ProgressTimer;

/// What a body that stalled says.
#[derive(Debug, thiserror::Error)]
#[error("no data for {0:?} (limits.body_timeout_seconds)")]
pub(super) struct BodyTimeout(Duration);

pub(crate) struct Timed<B> {
    body: B,
    /// Runs while the body waits; each frame stops it.
    timer: ProgressTimer,
}

impl<B> Timed<B> {
    pub(crate) fn new(timeout: Duration, body: B) -> Self {
        Timed {
            body,
            timer: ProgressTimer::new(timeout),
        }
    }
}

impl<B> Body for Timed<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.timer.progressed();
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.timer.poll_expired(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timer.timeout())))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    /// A body fed by a channel: frames arrive when the test sends them.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_after_the_timeout() {
        let (tx, rx) = mpsc::channel(1);
        let mut body = Timed::new(Duration::from_secs(60), Fed(rx));
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        // 59 s of silence, then data: still fine (the timer restarts per frame).
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(59)).await;
            tx.send(Bytes::from_static(b"b")).await.unwrap();
            tx
        });
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_data().unwrap(), "b");
        let _tx = sender.await.unwrap();
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimeout>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
