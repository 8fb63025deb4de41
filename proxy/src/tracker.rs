//! Counts live connections and tunnels so that shutdown can wait for them to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Shared counter of tasks that a drain must wait for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tracker {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by a tracked task; dropping it marks the task finished.
#[derive(Debug)]
pub(crate) struct TrackGuard {
    inner: Arc<Inner>,
}

impl Tracker {
    pub(crate) fn track(&self) -> TrackGuard {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        TrackGuard {
            inner: self.inner.clone(),
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Resolves once no tracked task is left.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}
