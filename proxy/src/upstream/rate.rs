//! How fast new connections to one upstream may be opened: a token bucket, so churn on
//! the client side (requests cancelled in a loop, resets, GOAWAYs) cannot become a storm
//! of TCP connections on the backend. Only the connect path takes its lock, never a
//! request that reuses a connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// New connections one upstream may open at once, before the rate applies (enough for a
/// cold start: each pooled connection then serves many requests).
pub(crate) const CONNECT_BURST: u32 = 64;
/// New connections per second to one upstream once the burst is spent.
pub(crate) const CONNECTS_PER_SECOND: u32 = 256;

pub(crate) struct ConnectRate {
    /// Tokens left, and when they were counted.
    bucket: Mutex<(f64, Instant)>,
    burst: f64,
    per_second: f64,
}

impl ConnectRate {
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        ConnectRate {
            bucket: Mutex::new((f64::from(burst), Instant::now())),
            burst: f64::from(burst),
            per_second: f64::from(per_second.max(1)),
        }
    }

    /// Takes a token for a new connection at `now`; when none is left, how long until
    /// the next one.
    pub(crate) fn take(&self, now: Instant) -> Option<Duration> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, since) = &mut *bucket;
        let refill = now.saturating_duration_since(*since).as_secs_f64() * self.per_second;
        *tokens = (*tokens + refill).min(self.burst);
        *since = now.max(*since);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_then_the_rate() {
        let rate = ConnectRate::new(3, 10);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rate.take(t0), None);
        }
        let wait = rate.take(t0).expect("burst spent");
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // 100 ms later one token has come back, not more.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(rate.take(t1), None);
        assert!(rate.take(t1).is_some());
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(rate.take(t2), None);
        }
        assert!(rate.take(t2).is_some());
    }
}
