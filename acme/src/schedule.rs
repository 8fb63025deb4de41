//! When to renew and when to retry: plain functions of the certificate's dates, the
//! configured margin, a random fraction and the failures so far (unit-tested below).

use std::time::{Duration, SystemTime};

/// The first retry after a failure; doubled per further failure.
const BACKOFF_BASE: Duration = Duration::from_secs(60);
/// The longest wait between two attempts: a failing renewal is retried several times a
/// day, well inside the expiry alerts' margins.
const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);
/// The longest a server's Retry-After is followed before asking again.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);
/// The renewal time is spread by up to a tenth of the margin, at most this much, so that
/// many hosts (or many certfronts) issued together do not all renew in the same second.
const JITTER_MAX: Duration = Duration::from_secs(3600);

/// How long before notAfter to renew: the configured margin, else a third of the
/// lifetime; never more than half the lifetime (a 30-day margin on a 6-day certificate
/// would renew in a loop).
pub fn renew_before(lifetime: Duration, configured: Option<Duration>) -> Duration {
    match configured {
        Some(margin) => margin.min(lifetime / 2),
        None => lifetime / 3,
    }
}

/// When to renew a certificate valid from `not_before` to `not_after`; `jitter` in 0..1
/// moves it earlier by up to a tenth of the margin (at most an hour).
pub fn renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    configured: Option<Duration>,
    jitter: f64,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let margin = renew_before(lifetime, configured);
    let spread = (margin / 10)
        .min(JITTER_MAX)
        .mul_f64(jitter.clamp(0.0, 1.0));
    not_after
        .checked_sub(margin + spread)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// How long to wait after the `failures`-th failure in a row (1 = the first): exponential
/// from a minute up to six hours, but never sooner than the server's Retry-After.
pub fn backoff(failures: u32, retry_after: Option<SystemTime>, now: SystemTime) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let ours = BACKOFF_BASE
        .checked_mul(1u32 << exp)
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX);
    let theirs = retry_after
        .and_then(|at| at.duration_since(now).ok())
        .unwrap_or_default()
        .min(RETRY_AFTER_MAX);
    ours.max(theirs)
}

/// A random fraction in 0..1 for jitter (aws-lc-rs' generator; no extra crate).
pub(crate) fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// A time inside an ARI suggested window (RFC 9773 4.2: "a uniform random time within
/// the window").
pub(crate) fn in_window(start: SystemTime, end: SystemTime, fraction: f64) -> SystemTime {
    let width = end.duration_since(start).unwrap_or_default();
    start + width.mul_f64(fraction.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * 20_000 + DAY * days as u32
    }

    #[test]
    fn a_third_of_the_lifetime_by_default() {
        // a 90-day certificate renews 30 days before it expires (Let's Encrypt's advice)
        assert_eq!(renewal_time(at(0), at(90), None, 0.0), at(60));
        assert_eq!(renew_before(DAY * 90, None), DAY * 30);
    }

    #[test]
    fn the_configured_margin_but_never_more_than_half() {
        assert_eq!(renewal_time(at(0), at(365), Some(DAY * 30), 0.0), at(335));
        // six-day certificates with a 30-day margin: renew at half-life, not in a loop
        assert_eq!(renew_before(DAY * 6, Some(DAY * 30)), DAY * 3);
        assert_eq!(renewal_time(at(0), at(6), Some(DAY * 30), 0.0), at(3));
    }

    #[test]
    fn jitter_moves_it_earlier_by_at_most_an_hour_or_a_tenth_of_the_margin() {
        let early = renewal_time(at(0), at(90), None, 1.0);
        assert_eq!(
            at(60).duration_since(early).unwrap(),
            Duration::from_secs(3600)
        );
        // a 12-second test certificate: margin 4 s, spread at most 0.4 s
        let nb = at(0);
        let na = nb + Duration::from_secs(12);
        let t = renewal_time(nb, na, None, 1.0);
        assert_eq!(na.duration_since(t).unwrap(), Duration::from_millis(4400));
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }

    #[test]
    fn backoff_doubles_to_six_hours_and_honours_retry_after() {
        let now = at(0);
        assert_eq!(backoff(1, None, now), Duration::from_secs(60));
        assert_eq!(backoff(2, None, now), Duration::from_secs(120));
        assert_eq!(backoff(5, None, now), Duration::from_secs(960));
        assert_eq!(backoff(10, None, now), Duration::from_secs(6 * 3600));
        assert_eq!(backoff(u32::MAX, None, now), Duration::from_secs(6 * 3600));
        // the server asks for two hours: wait two hours, not a minute
        let later = now + Duration::from_secs(7200);
        assert_eq!(backoff(1, Some(later), now), Duration::from_secs(7200));
        // a Retry-After in the past or absurdly far away
        assert_eq!(backoff(1, Some(at(0) - DAY), now), Duration::from_secs(60));
        assert_eq!(backoff(1, Some(at(30)), now), DAY);
    }

    #[test]
    fn ari_window() {
        assert_eq!(in_window(at(10), at(12), 0.5), at(11));
        assert_eq!(in_window(at(10), at(9), 0.5), at(10));
    }
}
