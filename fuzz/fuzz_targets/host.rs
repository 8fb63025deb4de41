//! Fuzzes what a request's first bytes meet: Host / `:authority` parsing, the admission
//! decision built on it (which host a request may reach), the redirect listener's
//! `Location`, and header sanitising.
//!
//! The input is the whole of a Host value (seeds: `app.example.org:8443`, `[::1]`) and is
//! also read as a small request head, one header per line:
//!
//! ```text
//! GET https://app.example.org/x HTTP/2
//! Host: admin.wild.test
//! Connection: x-secret
//! X_Client_Cert: forged
//! ```
//!
//! Checked against simple references: routing by exact name first, then a one-label
//! wildcard (a wildcard host never gets a request naming an exact host); sanitising
//! removes every identity and hop-by-hop header and keeps everything else as it was.
#![no_main]

use std::sync::{Arc, LazyLock};

use certfront::{
    Metrics, Runtime, SiteTable, add_forwarded, admit, is_identity_header, location, parse_host,
    sanitize_request,
};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use libfuzzer_sys::fuzz_target;

/// The site table of a deployment with an exact host under a wildcard one (the case of
/// the client-auth bypass) and a host with an alias.
const SITES: [&[&str]; 3] = [
    &["admin.wild.test"],
    &["*.wild.test"],
    &["app.example.org", "app.internal.example.org"],
];

/// The table start builds for [`SITES`] (config, internal CA, certificates). The CA's
/// directory is removed once the table is built: a static is never dropped, and the
/// table reads no file afterwards.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let state = tempfile::tempdir().expect("temp dir");
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = {:?}\n",
        state.path().display().to_string()
    );
    for names in SITES {
        text.push_str(&format!(
            "[[host]]\nfqdn = {:?}\naliases = {:?}\ninternal = true\nrespond = {{ status = 200 }}\n",
            names[0],
            &names[1..]
        ));
    }
    let config = certfront_config::parse(&text, state.path()).expect("fuzz config");
    let prepared = certfront::prepare(config).unwrap_or_else(|e| panic!("{e}"));
    let runtime = Runtime::build(prepared, None, &Arc::new(Metrics::new()))
        .expect("runtime")
        .runtime;
    for (site, names) in runtime.table.sites().iter().zip(SITES) {
        assert_eq!(site.fqdn, names[0], "sites out of order");
    }
    runtime
});

fn table() -> &'static SiteTable {
    &RUNTIME.table
}

/// The reference router: which of [`SITES`] serves `name` (no port).
fn reference_route(name: &str) -> Option<usize> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Some(i) = SITES
        .iter()
        .position(|names| names.iter().any(|n| *n == name))
    {
        return Some(i);
    }
    match name.split_once('.') {
        Some((label, "wild.test")) if !label.is_empty() => Some(1),
        _ => None,
    }
}

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A request head read from the input: request line, then `Name: value` lines.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

fn read_head(data: &[u8]) -> Option<Head> {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next()?;
    let mut parts = first.split(|b| *b == b' ');
    let method = Method::from_bytes(parts.next()?).ok()?;
    let uri = Uri::try_from(parts.next()?).ok()?;
    let version = match parts.next() {
        Some(b"HTTP/2" | b"HTTP/2.0") => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii_start();
        // Pairs `http` refuses never reach certfront: hyper refuses them first.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    Some(Head {
        method,
        uri,
        version,
        headers,
    })
}

fn check_admission(head: &Head) {
    let table = table();
    for (i, site) in table.sites().iter().enumerate() {
        let Ok(raw) = admit(
            table,
            site,
            &head.method,
            head.version,
            &head.uri,
            &head.headers,
        ) else {
            continue;
        };
        assert!(
            head.method != Method::CONNECT && head.method != Method::TRACE,
            "{} admitted",
            head.method
        );
        let host = parse_host(raw).expect("admitted an unparsable host");
        assert_eq!(
            reference_route(host.name),
            Some(i),
            "{:?} admitted to {}",
            host.name,
            site.fqdn
        );
        let from_uri = head.uri.authority().map(|a| a.as_str().as_bytes());
        let from_header = head.headers.get(header::HOST).map(|h| h.as_bytes());
        assert!(
            from_uri == Some(raw) || (from_uri.is_none() && from_header == Some(raw)),
            "admitted a host the request does not name"
        );
    }
}

fn check_location(host: &HeaderValue, path: &str) {
    for https_port in [443, 8443] {
        let Some(loc) = location(
            |n| table().by_name(n).is_some(),
            Some(host),
            path,
            https_port,
        ) else {
            continue;
        };
        let parsed = parse_host(host.as_bytes()).expect("redirected an unparsable host");
        assert!(!parsed.ip, "redirected an IP literal");
        assert!(
            reference_route(parsed.name).is_some(),
            "redirected an unknown host"
        );
        let name = parsed
            .name
            .strip_suffix('.')
            .unwrap_or(parsed.name)
            .to_ascii_lowercase();
        let authority = if https_port == 443 {
            name
        } else {
            format!("{name}:{https_port}")
        };
        let rest = loc
            .strip_prefix("https://")
            .and_then(|r| r.strip_prefix(authority.as_str()))
            .unwrap_or_else(|| panic!("Location {loc:?} is not https://{authority}"));
        assert!(rest.starts_with('/'), "Location {loc:?} has no path");
        assert!(
            HeaderValue::from_str(&loc).is_ok() && !loc.contains(['\r', '\n', ' ']),
            "Location {loc:?} is not a header value"
        );
    }
}

fn check_sanitize(original: &HeaderMap) {
    let named: Vec<String> = original
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut headers = original.clone();
    sanitize_request(&mut headers);
    for name in headers.keys() {
        let name = name.as_str();
        assert!(!is_identity_header(name), "identity header {name} kept");
        assert!(!HOP_BY_HOP.contains(&name), "hop-by-hop header {name} kept");
        assert!(
            !named.iter().any(|n| n == name),
            "{name} kept though Connection names it"
        );
    }
    // Nothing else is lost or changed.
    for name in original.keys() {
        let s = name.as_str();
        if is_identity_header(s) || HOP_BY_HOP.contains(&s) || named.iter().any(|n| n == s) {
            continue;
        }
        let before: Vec<_> = original.get_all(name).iter().collect();
        let after: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(before, after, "{s} changed by sanitising");
    }

    let peer = HeaderValue::from_static("192.0.2.7");
    let host = HeaderValue::from_static("app.example.org");
    for trusted in [false, true] {
        let mut h = headers.clone();
        add_forwarded(&mut h, &peer, &host, trusted);
        let xff = h
            .get(header::HeaderName::from_static("x-forwarded-for"))
            .expect("X-Forwarded-For set");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        if trusted {
            assert!(xff.as_bytes().ends_with(b"192.0.2.7"), "{xff:?}");
        } else {
            assert_eq!(xff, &peer, "an untrusted X-Forwarded-For kept");
        }
        assert_eq!(
            h.get("x-forwarded-proto").map(|v| v.as_bytes()),
            Some(&b"https"[..])
        );
        assert_eq!(h.get("x-forwarded-host"), Some(&host));
    }
}

/// A parsed Host is the input split, nothing added or decoded: `name`, `[name]` for
/// IPv6, then nothing or `:` and the port's digits; the name has only name characters.
fn check_split(data: &[u8], name: &str, port: Option<u16>, ip: bool) {
    let rest = if data.starts_with(b"[") {
        let inside = &data[1..];
        assert!(ip, "bracketed but not an IP");
        assert!(
            name.parse::<std::net::Ipv6Addr>().is_ok(),
            "[{name}] is not IPv6"
        );
        assert!(inside.starts_with(name.as_bytes()) && inside[name.len()..].starts_with(b"]"));
        &inside[name.len() + 1..]
    } else {
        assert!(
            data.starts_with(name.as_bytes()),
            "name {name:?} is not the input's start"
        );
        assert_eq!(
            ip,
            name.parse::<std::net::Ipv4Addr>().is_ok(),
            "ip flag for {name:?}"
        );
        let bare = name.strip_suffix('.').unwrap_or(name);
        assert!(
            !bare.is_empty() && bare.len() <= 253,
            "name length {}",
            bare.len()
        );
        assert!(
            bare.split('.').all(|label| !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
            "name {name:?} accepted"
        );
        &data[name.len()..]
    };
    match port {
        None => assert!(rest.is_empty(), "bytes after the name but no port"),
        Some(p) => {
            let digits = rest.strip_prefix(b":").expect("a port without ':'");
            assert!(!digits.is_empty() && digits.iter().all(u8::is_ascii_digit));
            let text = std::str::from_utf8(digits).expect("ASCII digits");
            assert_eq!(text.parse::<u16>().ok(), Some(p), "port {text:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one Host value.
    if let Ok(host) = parse_host(data) {
        check_split(data, host.name, host.port, host.ip);
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value.clone());
        check_admission(&Head {
            method: Method::GET,
            uri: Uri::from_static("/"),
            version: Version::HTTP_11,
            headers,
        });
        check_location(&value, "/");
    }

    // The input as a request head.
    let Some(head) = read_head(data) else {
        return;
    };
    check_admission(&head);
    if let Some(host) = head.headers.get(header::HOST) {
        let path = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        check_location(host, path);
    }
    check_sanitize(&head.headers);
});
