//! Parsing `upstream = "http://10.0.0.31:8080"`: scheme, host and port, nothing else.
//!
//! Written by hand rather than with a general URL crate on purpose: we accept a
//! strict subset (`http[s]://HOST[:PORT][/]`), and a general parser would accept
//! and quietly normalize userinfo, paths, percent-encoding and IDNA that we
//! would then have to detect and refuse anyway, with worse messages.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::Upstream;
use crate::names::{check_upstream_host_name, normalize};

/// What an upstream looks like, appended to every refusal.
const EXPECTED: &str = "expected http://HOST[:PORT] or https://HOST[:PORT] \
                        (e.g. \"http://10.0.0.11:80\", \"https://[fd00::21]:443\"), with no path";

/// Parses one upstream URL; the error is the whole message for the problem.
pub(crate) fn parse_upstream(text: &str) -> Result<Upstream, String> {
    parse_inner(text).map_err(|why| format!("not a URL: {text:?} ({why}); {EXPECTED}"))
}

fn parse_inner(text: &str) -> Result<Upstream, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("no scheme".into());
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        other => return Err(format!("scheme \"{other}\" is not http or https")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(i) = authority.find(['/', '?', '#']) {
        return Err(format!(
            "a path, query or fragment \"{}\" is not allowed",
            &authority[i..]
        ));
    }
    if authority.contains('@') {
        return Err("user information (\"user@\") is not allowed".into());
    }
    let (host, port) = parse_authority(authority)?;
    Ok(Upstream {
        tls,
        host,
        port: port.unwrap_or(if tls { 443 } else { 80 }),
        tls_name: None,
        original: text.to_string(),
    })
}

/// Parses `HOST[:PORT]`, where HOST is an IPv4 address, a bracketed IPv6
/// address or a host name. Returns the host (IPv6 without brackets, names
/// lower-cased) and the port if one was written.
pub(crate) fn parse_authority(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.is_empty() {
        return Err("no host".into());
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err("\"[\" without a closing \"]\"".into());
        };
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| format!("\"{inside}\" is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(parse_port(port)?),
                None => return Err(format!("unexpected \"{after}\" after \"]\"")),
            },
        };
        return Ok((ip.to_string(), port));
    }
    if authority.matches(':').count() > 1 {
        return Err("an IPv6 address must be written in brackets, e.g. [fd00::1]:8080".into());
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok((ip.to_string(), port));
    }
    let host = normalize(host);
    check_upstream_host_name(&host).map_err(|why| format!("host \"{host}\": {why}"))?;
    Ok((host, port))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("port \"{port}\" is not a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (bool, String, u16) {
        let u = parse_upstream(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(u.original, text);
        (u.tls, u.host, u.port)
    }

    #[test]
    fn accepts_hosts_ports_and_default_ports() {
        assert_eq!(ok("http://10.0.0.11:80"), (false, "10.0.0.11".into(), 80));
        assert_eq!(ok("http://10.0.0.11"), (false, "10.0.0.11".into(), 80));
        assert_eq!(ok("https://10.0.0.21"), (true, "10.0.0.21".into(), 443));
        assert_eq!(
            ok("HTTPS://IIS01.corp.local:8443/"),
            (true, "iis01.corp.local".into(), 8443)
        );
        assert_eq!(
            ok("http://backend_1:8080"),
            (false, "backend_1".into(), 8080)
        );
        assert_eq!(
            ok("http://localhost:65535"),
            (false, "localhost".into(), 65535)
        );
    }

    #[test]
    fn accepts_bracketed_ipv6() {
        assert_eq!(ok("http://[::1]:8080"), (false, "::1".into(), 8080));
        assert_eq!(ok("https://[FD00::21]/"), (true, "fd00::21".into(), 443));
        let u = parse_upstream("https://[fd00::21]:8443").unwrap();
        assert_eq!(u.authority(), "[fd00::21]:8443");
        assert_eq!(u.to_string(), "https://[fd00::21]:8443");
    }

    #[test]
    fn refuses_everything_else() {
        let cases = [
            ("10.0.0.11:80", "no scheme"),
            ("ftp://10.0.0.11", "scheme \"ftp\""),
            ("http://", "no host"),
            ("http://:80", "no host"),
            ("http://10.0.0.11:0", "port \"0\""),
            ("http://10.0.0.11:65536", "port \"65536\""),
            ("http://10.0.0.11:", "port \"\""),
            ("http://10.0.0.11:+80", "port \"+80\""),
            ("http://10.0.0.11/api", "path, query or fragment \"/api\""),
            ("http://10.0.0.11//", "path, query or fragment \"/\""),
            ("http://10.0.0.11?x=1", "\"?x=1\""),
            ("http://10.0.0.11#top", "\"#top\""),
            ("http://user:pw@10.0.0.11", "user information"),
            ("http://::1:8080", "in brackets"),
            ("http://[::1", "closing"),
            ("http://[::1]8080", "after \"]\""),
            ("http://[10.0.0.1]:80", "not an IPv6 address"),
            ("http://10.0.0.999", "all digits"),
            ("http://bad host", "contains ' '"),
            ("http://*.example.org", "wildcard"),
        ];
        for (text, why) in cases {
            let err = parse_upstream(text).unwrap_err();
            assert!(err.starts_with(&format!("not a URL: {text:?} (")), "{err}");
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("expected http://HOST[:PORT]"), "{err}");
        }
    }

    #[test]
    fn authority_without_scheme() {
        assert_eq!(parse_authority("portal").unwrap(), ("portal".into(), None));
        assert_eq!(
            parse_authority("Portal:8080").unwrap(),
            ("portal".into(), Some(8080))
        );
        assert_eq!(parse_authority("[::1]").unwrap(), ("::1".into(), None));
        assert!(parse_authority("portal/x").is_err());
    }
}
