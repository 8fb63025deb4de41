//! Header rewriting between client and upstream: hop-by-hop headers out (RFC 9110 7.6.1),
//! forwarding headers in, client-certificate headers never taken from the client.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert");
pub static X_CLIENT_CERT_THUMBPRINT: HeaderName =
    HeaderName::from_static("x-client-cert-thumbprint");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTPS: HeaderValue = HeaderValue::from_static("https");

/// Headers that describe one hop only and never travel through a proxy.
const HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Whether `Connection` lists `token` (comma-separated, case-insensitive).
pub fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes the hop-by-hop headers and every header that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Collected first because the names are removed from the map they live in; only
        // requests that carry `Connection` pay for it.
        let named: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        for value in &named {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',') {
                let token = token.trim();
                if !token.is_empty() {
                    headers.remove(token);
                }
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sets the X-Forwarded-* headers: the client's address appended to X-Forwarded-For,
/// the scheme it used, and the Host it asked for.
pub fn add_forwarded(headers: &mut HeaderMap, peer_ip: &HeaderValue, host: &HeaderValue) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => peer_ip.clone(),
        Some(_) => {
            let mut joined = Vec::with_capacity(64);
            for v in headers.get_all(&X_FORWARDED_FOR) {
                if !joined.is_empty() {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(v.as_bytes());
            }
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer_ip.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| peer_ip.clone())
        }
    };
    headers.insert(&X_FORWARDED_FOR, xff);
    headers.insert(&X_FORWARDED_PROTO, HTTPS.clone());
    headers.insert(&X_FORWARDED_HOST, host.clone());
}

/// Client-certificate headers are certfront's to set: whatever a client sent is dropped.
pub fn strip_client_cert(headers: &mut HeaderMap) {
    headers.remove(&X_CLIENT_CERT);
    headers.remove(&X_CLIENT_CERT_THUMBPRINT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_go_with_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("x-other"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("soapaction", HeaderValue::from_static("\"urn:x\""));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("soapaction"));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        h.insert(&X_FORWARDED_HOST, HeaderValue::from_static("forged"));
        let peer = HeaderValue::from_static("127.0.0.1");
        add_forwarded(&mut h, &peer, &HeaderValue::from_static("app.example.org"));
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example.org");
    }

    #[test]
    fn connection_token_match_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(connection_has(&h, "upgrade"));
        assert!(!connection_has(&h, "close"));
    }
}
