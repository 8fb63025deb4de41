//! "No progress for this long": the timer behind the body timeout (`upstream::Timed`) and
//! the send timeout (`send_timeout::SendTimed`). It runs while an operation waits and
//! stops at the next progress; its `Sleep` is allocated the first time anything waits
//! (most bodies and connections never do) and then reused, reset rather than rebuilt.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub(crate) struct ProgressTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The timer runs: nothing progressed since it was set.
    armed: bool,
}

impl ProgressTimer {
    pub(crate) fn new(timeout: Duration) -> Self {
        ProgressTimer {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Something moved: the next wait starts a whole new timeout.
    pub(crate) fn progressed(&mut self) {
        self.armed = false;
    }

    /// The operation has to wait: starts the timer if it does not run yet, and is ready
    /// once the timeout has passed with no progress. Registers the task's waker with it.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + self.timeout;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        sleep.as_mut().poll(cx)
    }
}
