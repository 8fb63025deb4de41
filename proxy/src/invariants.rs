//! What must hold for any request head, checked by the `host` fuzz target (nightly,
//! `fuzz/`) and by the property tests (stable, in CI): one copy of the reference router,
//! the sample site table and the checks. Each check panics on the first property that
//! fails. Built for tests and with the `fuzzing` feature only.

use std::sync::{Arc, LazyLock};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri, Version};

use crate::forward::admit;
use crate::forward::headers::{is_identity_header, sanitize_request};
use crate::metrics::Metrics;
use crate::sites::SiteTable;
use crate::snapshot::Snapshot;

/// A deployment with an exact host under a wildcard one (the case of the client-auth
/// bypass) and a host with an alias, in config order.
pub const SITES: [&[&str]; 3] = [
    &["admin.wild.test"],
    &["*.wild.test"],
    &["app.example.org", "app.internal.example.org"],
];

/// The headers that describe one hop, by name.
pub const HOP_BY_HOP_NAMES: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The table start builds for [`SITES`] (config, internal CA, certificates). The CA's
/// directory is removed once the table is built: a static is never dropped, and the
/// table reads no file afterwards.
static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
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
    let config = certfront_config::parse(&text, state.path()).expect("sample config");
    let prepared = crate::prepare::prepare(config).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = Snapshot::build(prepared, None, &Arc::new(Metrics::new()))
        .expect("snapshot")
        .snapshot;
    for (site, names) in snapshot.table.sites().iter().zip(SITES) {
        assert_eq!(site.fqdn, names[0], "sites out of order");
    }
    snapshot
});

/// The site table of [`SITES`].
pub fn table() -> &'static SiteTable {
    &SNAPSHOT.table
}

/// The reference router: which of [`SITES`] serves `name` (no port).
pub fn reference_route(name: &str) -> Option<usize> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Some(i) = SITES
        .iter()
        .position(|names| names.contains(&name.as_str()))
    {
        return Some(i);
    }
    match name.split_once('.') {
        Some((label, "wild.test")) if !label.is_empty() => Some(1),
        _ => None,
    }
}

/// A request is admitted to a host only when the reference router sends its name there,
/// only for a name the request carries, and never for CONNECT or TRACE.
pub fn check_admission(method: &Method, version: Version, uri: &Uri, headers: &HeaderMap) {
    let table = table();
    for (i, site) in table.sites().iter().enumerate() {
        let Ok(raw) = admit(table, site, method, version, uri, headers) else {
            continue;
        };
        assert!(
            method != Method::CONNECT && method != Method::TRACE,
            "{method} admitted"
        );
        let host = crate::authority::parse_host(raw).expect("admitted an unparsable host");
        assert_eq!(
            reference_route(host.name),
            Some(i),
            "{:?} admitted to {}",
            host.name,
            site.fqdn
        );
        let from_uri = uri.authority().map(|a| a.as_str().as_bytes());
        let from_header = headers.get(header::HOST).map(HeaderValue::as_bytes);
        assert!(
            from_uri == Some(raw) || (from_uri.is_none() && from_header == Some(raw)),
            "admitted a host the request does not name"
        );
    }
}

/// Sanitising removes every identity and hop-by-hop header and every header `Connection`
/// names, and keeps everything else as it was. Returns the sanitised headers.
pub fn check_sanitize(original: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = original
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let goes = |n: &str| {
        is_identity_header(n) || HOP_BY_HOP_NAMES.contains(&n) || named.iter().any(|t| t == n)
    };
    let mut headers = original.clone();
    sanitize_request(&mut headers);
    for name in headers.keys() {
        assert!(!goes(name.as_str()), "{name} kept");
    }
    for name in original.keys() {
        if goes(name.as_str()) {
            continue;
        }
        let before: Vec<_> = original.get_all(name).iter().collect();
        let after: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(before, after, "{name} changed by sanitising");
    }
    headers
}

/// A parsed Host is the input split, nothing added or decoded: `name`, `[name]` for
/// IPv6, then nothing or `:` and the port's digits; the name has only name characters.
pub fn check_split(data: &[u8], name: &str, port: Option<u16>, ip: bool) {
    let rest = if let Some(inside) = data.strip_prefix(b"[") {
        assert!(ip && name.parse::<std::net::Ipv6Addr>().is_ok(), "[{name}]");
        assert!(inside.starts_with(name.as_bytes()) && inside[name.len()..].starts_with(b"]"));
        &inside[name.len() + 1..]
    } else {
        assert!(
            data.starts_with(name.as_bytes()),
            "{name:?} is not the input's start"
        );
        assert_eq!(
            ip,
            name.parse::<std::net::Ipv4Addr>().is_ok(),
            "ip flag of {name:?}"
        );
        let bare = name.strip_suffix('.').unwrap_or(name);
        assert!(!bare.is_empty() && bare.len() <= 253, "{name:?}");
        assert!(
            bare.split('.').all(|label| !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
            "{name:?} accepted"
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
