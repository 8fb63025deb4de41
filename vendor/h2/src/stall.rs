//! certfront patch: streams that cannot send because the peer keeps their flow-control
//! window shut are reset after a timeout (the per-stream half of certfront's
//! `send_timeout_seconds`).
//!
//! A server stream whose response is waiting in `SendStream::poll_capacity` while the
//! stream's window is 0 is marked with the time it started waiting. The connection's own
//! poll (`proto::Connection::poll2`, already locking the streams there for the
//! reset-stream expiry) resets each stream marked longer than the timeout with
//! RST_STREAM CANCEL and wakes its send task, so the task (hyper's `PipeToSendStream`)
//! sees the reset and drops the response body it was holding. A WINDOW_UPDATE that opens
//! the stream's window clears the mark: a slow reader that keeps reading is never cut.
//!
//! Cost when no stream is blocked: one `bool` read per connection poll, under a lock the
//! poll takes anyway. While a stream is blocked: a clock read per poll, and one walk over
//! the connection's streams when the earliest mark is due.
//!
//! The timeout is per connection and comes from whoever polls it: hyper builds h2's
//! `server::Builder` itself and passes no new setting through, so the caller wraps each
//! poll of its connection in [`scope`]. Anything polled outside a scope (every client
//! connection, every server that does not opt in) has no timeout and is never reset.
//! A thread-local scope rather than a process-wide setting: two servers in one process
//! (certfront's tests run many) keep their own timeouts, and a connection keeps the one
//! it started with.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// The timeout of the connection being polled on this thread, if any.
    static TIMEOUT: Cell<Option<Duration>> = const { Cell::new(None) };
    /// Streams reset by the check during the current scope.
    static RESETS: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` (a poll of an HTTP/2 server connection) with streams stalled on their
/// flow-control window for `timeout` reset; returns what `f` returned and how many streams
/// were reset meanwhile (to be counted by the caller). `None` turns the check off.
pub fn scope<R>(timeout: Option<Duration>, f: impl FnOnce() -> R) -> (R, usize) {
    /// Restores the outer scope's values, even if `f` panics.
    struct Restore(Option<Duration>, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            TIMEOUT.with(|t| t.set(self.0));
            RESETS.with(|r| r.set(self.1));
        }
    }
    let outer = Restore(TIMEOUT.with(|t| t.replace(timeout)), RESETS.with(|r| r.replace(0)));
    let out = f();
    let resets = RESETS.with(|r| r.get());
    drop(outer);
    (out, resets)
}

/// The timeout of the connection being polled, if its poller set one.
pub(crate) fn timeout() -> Option<Duration> {
    TIMEOUT.with(|t| t.get())
}

/// One more stream reset in the current scope.
pub(crate) fn count_reset() {
    RESETS.with(|r| r.set(r.get() + 1));
}
