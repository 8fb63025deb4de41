//! Wall-clock times as certfront prints them (RFC 3339 UTC in logs, `check`, `/certs` and
//! the ACME status): one helper that the command line, the reloader, ACME and the admin
//! listener all use without importing each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC, e.g. `2027-01-31T12:00:00Z`; out-of-range values print as the number.
pub(crate) fn fmt_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Whole seconds since the Unix epoch; 0 for a time before it.
pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
