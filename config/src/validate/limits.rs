//! The numbers of `[limits]` and `[server]`: each has a documented range (the table in
//! `docs/configuration.md` is [`RANGES`]), so that no value can reach the proxy that
//! makes `Instant + Duration` overflow, a timer never fire, or a pool grow without end.

use std::time::Duration;

use super::Validator;
use crate::model::Limits;
use crate::raw::RawLimits;

/// One number's rule: its allowed range, unit and default, for the check and its message.
pub(crate) struct Range {
    pub min: u64,
    pub max: u64,
    /// " seconds", " bytes" or "".
    pub unit: &'static str,
    pub default: u64,
    /// What the smallest value means when it is special ("0 turns it off").
    pub zero_means: Option<&'static str>,
}

const fn seconds(min: u64, max: u64, default: u64) -> Range {
    Range {
        min,
        max,
        unit: " seconds",
        default,
        zero_means: None,
    }
}

const fn count(min: u64, max: u64, default: u64) -> Range {
    Range {
        min,
        max,
        unit: "",
        default,
        zero_means: None,
    }
}

/// A day: the longest any timeout may be. Longer "timeouts" are a way to never time out,
/// which holds memory and connection slots for ever.
const DAY: u64 = 86_400;
/// The most connections any one limit may allow: far above what one process serves, far
/// below what makes a semaphore or a pool size overflow.
const MANY: u64 = 1_000_000;

pub(crate) const DRAIN: Range = seconds(0, 3_600, 30);
pub(crate) const RESCAN: Range = Range {
    zero_means: Some("0 turns the re-scan off"),
    ..seconds(0, DAY, 60)
};
const HANDSHAKE: Range = seconds(1, 300, 10);
const HEADER_READ: Range = seconds(1, 3_600, 30);
const IDLE: Range = seconds(1, DAY, 60);
const MAX_HEADER_BYTES: Range = Range {
    unit: " bytes",
    ..count(1_024, 1_048_576, 65_536)
};
const MAX_CONNECTIONS: Range = count(1, MANY, 10_000);
const UPSTREAM_CONNECT: Range = seconds(1, 300, 5);
const UPSTREAM_RESPONSE: Range = seconds(1, DAY, 120);
const H2_STREAMS: Range = count(1, 1_000, 100);
const TUNNEL_IDLE: Range = seconds(1, DAY, 900);
/// Thirty days: long enough for any "recycle connections now and then" policy.
const MAX_AGE: Range = seconds(1, 30 * DAY, 0);
const PER_IP: Range = count(1, MANY, 256);
const REDIRECT_CONNECTIONS: Range = count(1, MANY, 1_024);
const UPSTREAM_CONNECTIONS: Range = count(1, MANY, 1_024);
/// 0 keeps no idle connection (a new one per request). Absent, it is
/// `upstream_max_connections` (whose default this default is): keep what the load needed,
/// which the idle timeout then prunes, as HAProxy and Envoy do. A fixed small pool made
/// every request beyond it open and close a backend connection (issue 18).
const UPSTREAM_IDLE: Range = Range {
    zero_means: Some("0 keeps none"),
    ..count(0, MANY, 1_024)
};
const BODY: Range = seconds(1, DAY, 60);
/// nginx's `send_timeout` default.
const SEND: Range = seconds(1, DAY, 60);

/// Every ranged key with its rule, in the order of `docs/configuration.md`; the tests
/// keep that document and this table in step, and try every bound.
#[cfg(test)]
pub(crate) const RANGES: &[(&str, &Range)] = &[
    ("server.drain_seconds", &DRAIN),
    ("server.rescan_seconds", &RESCAN),
    ("limits.handshake_timeout_seconds", &HANDSHAKE),
    ("limits.header_read_timeout_seconds", &HEADER_READ),
    ("limits.idle_timeout_seconds", &IDLE),
    ("limits.max_header_bytes", &MAX_HEADER_BYTES),
    ("limits.max_connections", &MAX_CONNECTIONS),
    ("limits.upstream_connect_timeout_seconds", &UPSTREAM_CONNECT),
    (
        "limits.upstream_response_timeout_seconds",
        &UPSTREAM_RESPONSE,
    ),
    ("limits.h2_max_concurrent_streams", &H2_STREAMS),
    ("limits.tunnel_idle_timeout_seconds", &TUNNEL_IDLE),
    ("limits.max_connection_age_seconds", &MAX_AGE),
    ("limits.max_connections_per_ip", &PER_IP),
    ("limits.redirect_max_connections", &REDIRECT_CONNECTIONS),
    ("limits.upstream_max_connections", &UPSTREAM_CONNECTIONS),
    ("limits.upstream_max_idle_connections", &UPSTREAM_IDLE),
    ("limits.body_timeout_seconds", &BODY),
    ("limits.send_timeout_seconds", &SEND),
];

impl Range {
    /// "1 to 300 seconds", "0 to 86400 seconds (0 turns the re-scan off)".
    pub(crate) fn describe(&self) -> String {
        let zero = self
            .zero_means
            .map(|z| format!("; {z}"))
            .unwrap_or_default();
        format!("{} to {}{}{zero}", self.min, self.max, self.unit)
    }
}

impl Validator<'_> {
    /// The value, or the default when absent; a value outside the range is a problem
    /// naming what was found and the range (and gives the default, so checking goes on).
    pub(super) fn ranged(&mut self, at: &str, value: Option<u64>, range: &Range) -> u64 {
        match value {
            None => range.default,
            Some(v) if (range.min..=range.max).contains(&v) => v,
            Some(v) => {
                let message = format!(
                    "{v} is out of range: expected {} (the default is {})",
                    range.describe(),
                    range.default
                );
                self.problem(at, message);
                range.default
            }
        }
    }

    fn secs(&mut self, key: &str, value: Option<u64>, range: &Range) -> Duration {
        Duration::from_secs(self.ranged(&format!("limits.{key}"), value, range))
    }

    fn size(&mut self, key: &str, value: Option<u64>, range: &Range) -> usize {
        // Every range's maximum fits in 32 bits, so in usize on any target.
        usize::try_from(self.ranged(&format!("limits.{key}"), value, range)).unwrap_or(usize::MAX)
    }

    pub(super) fn limits(&mut self, raw: RawLimits) -> Limits {
        let max_connections = self.size("max_connections", raw.max_connections, &MAX_CONNECTIONS);
        let max_connections_per_ip = self.size(
            "max_connections_per_ip",
            raw.max_connections_per_ip,
            &PER_IP,
        );
        if raw.max_connections_per_ip.is_some() && max_connections_per_ip > max_connections {
            self.problem(
                "limits.max_connections_per_ip",
                format!(
                    "{max_connections_per_ip} is more than limits.max_connections \
                     ({max_connections}): one address could never reach it"
                ),
            );
        }
        let upstream_max_connections = self.size(
            "upstream_max_connections",
            raw.upstream_max_connections,
            &UPSTREAM_CONNECTIONS,
        );
        let upstream_max_idle_connections = match raw.upstream_max_idle_connections {
            None => upstream_max_connections,
            given => self.size("upstream_max_idle_connections", given, &UPSTREAM_IDLE),
        };
        if raw.upstream_max_idle_connections.is_some()
            && upstream_max_idle_connections > upstream_max_connections
        {
            self.problem(
                "limits.upstream_max_idle_connections",
                format!(
                    "{upstream_max_idle_connections} is more than \
                     limits.upstream_max_connections ({upstream_max_connections})"
                ),
            );
        }
        let streams = self.ranged(
            "limits.h2_max_concurrent_streams",
            raw.h2_max_concurrent_streams,
            &H2_STREAMS,
        );
        Limits {
            handshake_timeout: self.secs(
                "handshake_timeout_seconds",
                raw.handshake_timeout_seconds,
                &HANDSHAKE,
            ),
            header_read_timeout: self.secs(
                "header_read_timeout_seconds",
                raw.header_read_timeout_seconds,
                &HEADER_READ,
            ),
            idle_timeout: self.secs("idle_timeout_seconds", raw.idle_timeout_seconds, &IDLE),
            max_header_bytes: self.size(
                "max_header_bytes",
                raw.max_header_bytes,
                &MAX_HEADER_BYTES,
            ),
            max_connections,
            upstream_connect_timeout: self.secs(
                "upstream_connect_timeout_seconds",
                raw.upstream_connect_timeout_seconds,
                &UPSTREAM_CONNECT,
            ),
            upstream_response_timeout: self.secs(
                "upstream_response_timeout_seconds",
                raw.upstream_response_timeout_seconds,
                &UPSTREAM_RESPONSE,
            ),
            h2_max_concurrent_streams: u32::try_from(streams).unwrap_or(u32::MAX),
            tunnel_idle_timeout: self.secs(
                "tunnel_idle_timeout_seconds",
                raw.tunnel_idle_timeout_seconds,
                &TUNNEL_IDLE,
            ),
            max_connection_age: raw
                .max_connection_age_seconds
                .map(|s| self.secs("max_connection_age_seconds", Some(s), &MAX_AGE)),
            max_connections_per_ip,
            redirect_max_connections: self.size(
                "redirect_max_connections",
                raw.redirect_max_connections,
                &REDIRECT_CONNECTIONS,
            ),
            upstream_max_connections,
            upstream_max_idle_connections,
            body_timeout: self.secs("body_timeout_seconds", raw.body_timeout_seconds, &BODY),
            send_timeout: self.secs("send_timeout_seconds", raw.send_timeout_seconds, &SEND),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults of the table are the defaults of the model.
    #[test]
    fn range_defaults_are_the_model_defaults() {
        let d = Limits::default();
        assert_eq!(HANDSHAKE.default, d.handshake_timeout.as_secs());
        assert_eq!(HEADER_READ.default, d.header_read_timeout.as_secs());
        assert_eq!(IDLE.default, d.idle_timeout.as_secs());
        assert_eq!(MAX_HEADER_BYTES.default, d.max_header_bytes as u64);
        assert_eq!(MAX_CONNECTIONS.default, d.max_connections as u64);
        assert_eq!(
            UPSTREAM_CONNECT.default,
            d.upstream_connect_timeout.as_secs()
        );
        assert_eq!(
            UPSTREAM_RESPONSE.default,
            d.upstream_response_timeout.as_secs()
        );
        assert_eq!(H2_STREAMS.default, u64::from(d.h2_max_concurrent_streams));
        assert_eq!(TUNNEL_IDLE.default, d.tunnel_idle_timeout.as_secs());
        assert_eq!(d.max_connection_age, None);
        assert_eq!(PER_IP.default, d.max_connections_per_ip as u64);
        assert_eq!(
            REDIRECT_CONNECTIONS.default,
            d.redirect_max_connections as u64
        );
        assert_eq!(
            UPSTREAM_CONNECTIONS.default,
            d.upstream_max_connections as u64
        );
        assert_eq!(
            UPSTREAM_IDLE.default,
            d.upstream_max_idle_connections as u64
        );
        assert_eq!(BODY.default, d.body_timeout.as_secs());
        assert_eq!(SEND.default, d.send_timeout.as_secs());
        for (key, range) in RANGES {
            assert!(range.min <= range.max, "{key}");
            assert!(range.max <= u64::from(u32::MAX), "{key} fits in 32 bits");
            if !key.ends_with("max_connection_age_seconds") {
                assert!((range.min..=range.max).contains(&range.default), "{key}");
            }
        }
    }

    /// `docs/configuration.md` states every range exactly as the table has it.
    #[test]
    fn the_documented_ranges_are_the_checked_ones() {
        let doc = include_str!("../../../docs/configuration.md");
        for (key, range) in RANGES {
            let name = key.rsplit('.').next().unwrap();
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .unwrap_or_else(|| panic!("{key}: no row in docs/configuration.md"));
            let expected = format!("{} to {}", range.min, range.max);
            assert!(row.contains(&expected), "{key}: {row:?} lacks {expected:?}");
        }
    }
}
