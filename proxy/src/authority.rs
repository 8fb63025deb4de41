//! The host a request names (HTTP/1.1 `Host`, HTTP/2 `:authority`, or an absolute-form
//! target), checked for syntax before it is looked up in the site table.
//!
//! Written by hand rather than with `http::uri::Authority`: that type accepts user
//! information (`user@host`), empty ports and any reg-name character RFC 3986 allows
//! (`!$&'()*+,;=`, percent-encoding), none of which names a host certfront serves. Here a
//! host is a DNS-style name (letters, digits, `-`, `_`, dots) or an IP literal, with an
//! optional port, and anything else is refused before it reaches a lookup, a log line or
//! a `Location` header.

use std::net::Ipv6Addr;

/// A syntactically valid request host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHost<'a> {
    /// The name or address without port; IPv6 without its brackets. Case as sent.
    pub name: &'a str,
    pub port: Option<u16>,
    /// An IP literal (v4 or v6) rather than a name.
    pub ip: bool,
}

/// Why a Host value was refused (the client gets 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("host longer than 255 bytes")]
    TooLong,
    #[error("a character that no host name has")]
    BadChar,
    #[error("an empty label (\"..\" or a leading dot)")]
    EmptyLabel,
    #[error("a port that is not a number from 0 to 65535")]
    BadPort,
    #[error("a bracketed address that is not IPv6")]
    BadIpv6,
}

/// The longest host name with its trailing dot (RFC 1035: 253 + root), plus a port.
const MAX_LEN: usize = 255 + 6;

/// Parses `name[:port]` or `[v6]:port`.
pub fn parse_host(value: &[u8]) -> Result<RequestHost<'_>, HostError> {
    if value.is_empty() {
        return Err(HostError::Empty);
    }
    if value.len() > MAX_LEN {
        return Err(HostError::TooLong);
    }
    // Every accepted byte is ASCII, so the checks below make this UTF-8.
    if !value.is_ascii() {
        return Err(HostError::BadChar);
    }
    let text = std::str::from_utf8(value).map_err(|_| HostError::BadChar)?;
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(HostError::BadIpv6)?;
        inside.parse::<Ipv6Addr>().map_err(|_| HostError::BadIpv6)?;
        let port = match after {
            "" => None,
            _ => Some(port(after.strip_prefix(':').ok_or(HostError::BadPort)?)?),
        };
        return Ok(RequestHost {
            name: inside,
            port,
            ip: true,
        });
    }
    let (name, port) = match text.split_once(':') {
        Some((name, p)) => (name, Some(port(p)?)),
        None => (text, None),
    };
    check_name(name)?;
    let ip = name.parse::<std::net::Ipv4Addr>().is_ok();
    Ok(RequestHost { name, port, ip })
}

fn port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    text.parse().map_err(|_| HostError::BadPort)
}

fn check_name(name: &str) -> Result<(), HostError> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(HostError::Empty);
    }
    if trimmed.len() > 253 {
        return Err(HostError::TooLong);
    }
    let mut previous_dot = true;
    for b in trimmed.bytes() {
        match b {
            b'.' if previous_dot => return Err(HostError::EmptyLabel),
            b'.' => previous_dot = true,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => previous_dot = false,
            _ => return Err(HostError::BadChar),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: &str) -> (String, Option<u16>, bool) {
        let h = parse_host(v.as_bytes()).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        (h.name.to_owned(), h.port, h.ip)
    }

    #[test]
    fn accepts_names_addresses_and_ports() {
        assert_eq!(
            ok("app.example.org"),
            ("app.example.org".into(), None, false)
        );
        assert_eq!(
            ok("APP.Example.org.:8443"),
            ("APP.Example.org.".into(), Some(8443), false)
        );
        assert_eq!(
            ok("hc_app.corp.local"),
            ("hc_app.corp.local".into(), None, false)
        );
        assert_eq!(ok("10.0.0.5:443"), ("10.0.0.5".into(), Some(443), true));
        assert_eq!(ok("[::1]:8443"), ("::1".into(), Some(8443), true));
        assert_eq!(ok("[fd00::21]"), ("fd00::21".into(), None, true));
        assert_eq!(ok("localhost"), ("localhost".into(), None, false));
    }

    #[test]
    fn refuses_what_names_no_host() {
        for (v, e) in [
            ("", HostError::Empty),
            (":443", HostError::Empty),
            (".", HostError::Empty),
            ("a..b", HostError::EmptyLabel),
            (".a", HostError::EmptyLabel),
            ("user@app.example.org", HostError::BadChar),
            ("app.example.org:", HostError::BadPort),
            ("app.example.org:65536", HostError::BadPort),
            ("app.example.org:1:2", HostError::BadPort),
            ("app.example.org:+1", HostError::BadPort),
            ("app example.org", HostError::BadChar),
            ("app.example.org/x", HostError::BadChar),
            ("app\u{e9}.org", HostError::BadChar),
            ("*.example.org", HostError::BadChar),
            ("[::1", HostError::BadIpv6),
            ("[nope]", HostError::BadIpv6),
            ("[::1]8443", HostError::BadPort),
            ("app%2eexample.org", HostError::BadChar),
            ("a\r\nb", HostError::BadChar),
        ] {
            assert_eq!(parse_host(v.as_bytes()), Err(e), "{v:?}");
        }
        let long = format!("{}.org", "a".repeat(260));
        assert_eq!(parse_host(long.as_bytes()), Err(HostError::TooLong));
    }
}
