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
//! The sample table, the reference router and the shared checks are `certfront::invariants`,
//! which the property tests run on stable too.
#![no_main]

use certfront::invariants::{check_admission, check_sanitize, check_split, reference_route, table};
use certfront::{add_forwarded, location, parse_host};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri, Version};
use libfuzzer_sys::fuzz_target;

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

/// Sanitising (the shared check), then the forwarding headers on what is left.
fn check_forwarding(original: &HeaderMap) {
    let headers = check_sanitize(original);
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

fuzz_target!(|data: &[u8]| {
    // The whole input as one Host value.
    if let Ok(host) = parse_host(data) {
        check_split(data, host.name, host.port, host.ip);
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, value.clone());
        check_admission(
            &Method::GET,
            Version::HTTP_11,
            &Uri::from_static("/"),
            &headers,
        );
        check_location(&value, "/");
    }

    // The input as a request head.
    let Some(head) = read_head(data) else {
        return;
    };
    check_admission(&head.method, head.version, &head.uri, &head.headers);
    if let Some(host) = head.headers.get(header::HOST) {
        let path = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        check_location(host, path);
    }
    check_forwarding(&head.headers);
});
