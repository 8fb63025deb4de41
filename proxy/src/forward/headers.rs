//! Header rewriting between client and upstream: hop-by-hop headers out (RFC 9110 7.6.1),
//! forwarding headers in, and identity headers (client address, client certificate) never
//! taken from the client.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert");
pub(crate) static X_CLIENT_CERT_THUMBPRINT: HeaderName =
    HeaderName::from_static("x-client-cert-thumbprint");
/// IIS ARR's name for the client certificate (base64 DER), for hosts that ask for it.
pub(crate) static X_ARR_CLIENTCERT: HeaderName = HeaderName::from_static("x-arr-clientcert");
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
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name)
}

/// Removes the hop-by-hop headers and every header that `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One look at the few names present instead of a hash lookup per hop-by-hop name:
    // most messages carry none.
    if headers.keys().any(is_hop_by_hop) {
        remove_hop_by_hop(headers);
    }
}

/// [`strip_hop_by_hop`] once a hop-by-hop name is known to be present.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
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
    // Only the names present: a `remove` of an absent name still hashes and probes, and
    // eight of them were ~1,100 instructions per response (most carry one, `Connection`).
    while let Some(name) = headers.keys().find(|n| is_hop_by_hop(n)).cloned() {
        headers.remove(name);
    }
}

/// Sets the X-Forwarded-* headers: the client's address in X-Forwarded-For (appended to
/// what a trusted proxy sent, replacing what anyone else sent), the scheme it used, and
/// the Host it asked for.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    peer_ip: &HeaderValue,
    host: &HeaderValue,
    peer_is_trusted_proxy: bool,
) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        Some(_) if peer_is_trusted_proxy => {
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
        _ => peer_ip.clone(),
    };
    headers.insert(&X_FORWARDED_FOR, xff);
    headers.insert(&X_FORWARDED_PROTO, HTTPS.clone());
    headers.insert(&X_FORWARDED_HOST, host.clone());
}

/// Whether a request header claims an identity that only certfront may state: the
/// client's address or certificate, or how it connected. Backends (ASP.NET, IIS with
/// ARR, Java and PHP frameworks) read these and believe them.
///
/// Every name with an underscore goes too: IIS and CGI map `_` and `-` to the same server
/// variable, so `X_Client_Cert` would reach ASP.NET as `HTTP_X_CLIENT_CERT`. nginx drops
/// such headers by default for the same reason (`underscores_in_headers off`).
pub fn is_identity_header(name: &str) -> bool {
    name.contains('_')
        || name.starts_with("x-client-cert")
        || matches!(
            name,
            "forwarded"
                | "x-real-ip"
                | "x-arr-clientcert"
                | "x-arr-ssl"
                | "x-forwarded-port"
                | "x-forwarded-server"
                | "x-forwarded-ssl"
                | "x-forwarded-scheme"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-client-ip"
                | "x-cluster-client-ip"
                | "true-client-ip"
                | "front-end-https"
        )
}

/// Removes hop-by-hop headers and every identity header a client sent. Allocates only
/// when there is something to remove.
pub fn sanitize_request(headers: &mut HeaderMap) {
    let (mut hop, mut identity) = (false, false);
    for name in headers.keys() {
        hop |= is_hop_by_hop(name);
        identity |= is_identity_header(name.as_str());
    }
    if hop {
        remove_hop_by_hop(headers);
    }
    if !identity {
        return;
    }
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_identity_header(k.as_str()))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// Joins several `cookie` fields into one with "; " (RFC 9113 8.2.3): HTTP/2 clients
/// split cookies into one field per crumb for HPACK, and an HTTP/1.1 request must carry
/// one `Cookie` line (some backends read only the first). Allocates only when a request
/// carries more than one field.
pub(crate) fn join_cookies(headers: &mut HeaderMap) {
    let mut fields = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (fields.next(), fields.next()) else {
        return;
    };
    let mut joined = Vec::with_capacity(first.len() * 4);
    for v in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // Every piece is a valid field value and "; " adds none of the bytes a value refuses.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

#[cfg(test)]
mod props;

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
        let host = HeaderValue::from_static("app.example.org");
        let mut untrusted = h.clone();
        add_forwarded(&mut untrusted, &peer, &host, false);
        assert_eq!(untrusted[&X_FORWARDED_FOR], "127.0.0.1");
        add_forwarded(&mut h, &peer, &host, true);
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example.org");
    }

    #[test]
    fn identity_headers_never_pass_whatever_the_spelling() {
        let mut h = HeaderMap::new();
        for name in [
            "forwarded",
            "x-real-ip",
            "x-arr-clientcert",
            "x-client-cert",
            "x-client-cert-thumbprint",
            "x-client-cert-chain",
            "x_client_cert",
            "x-client_cert",
            "x_forwarded_for",
            "true-client-ip",
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("forged"),
            );
        }
        h.insert("soapaction", HeaderValue::from_static("\"urn:x\""));
        h.insert("x-request-id", HeaderValue::from_static("1"));
        sanitize_request(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["soapaction", "x-request-id"]);
    }

    #[test]
    fn cookie_fields_are_joined_with_semicolons() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=3; d=4"));
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3; d=4"]);
        let mut one = HeaderMap::new();
        one.append(header::COOKIE, HeaderValue::from_static("only=1"));
        join_cookies(&mut one);
        assert_eq!(one[header::COOKIE], "only=1");
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
