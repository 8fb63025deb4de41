//! The plain-HTTP listener that sends every request for a served name to https (308 keeps
//! the method and body, so a SOAP POST is not turned into a GET).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::app::App;
use crate::authority::parse_host;

/// `https://host[:port]path?query` for a request naming a served host, else `None`. The
/// host is checked for syntax and looked up exactly as TLS requests are, and goes into
/// `Location` normalized (lower case, no port), never as the client wrote it.
pub fn location(
    serves: impl Fn(&str) -> bool,
    host: Option<&HeaderValue>,
    path: &str,
    https_port: u16,
) -> Option<String> {
    let host = parse_host(host?.as_bytes()).ok()?;
    if host.ip || !serves(host.name) {
        return None;
    }
    let name = certfront_certs::names::normalize(host.name);
    // A request target that is not origin-form (`*`, or absolute) redirects to the root.
    let path = if path.starts_with('/') { path } else { "/" };
    Some(if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    })
}

pub(crate) async fn handle(
    req: Request<Incoming>,
    app: Arc<App>,
    https_port: u16,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(answer) = crate::acme::http_01(&app.acme, req.uri().path()) {
        return Ok(answer);
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let rt = app.snapshot.load();
    let target = location(
        |name| rt.table.by_name(name).is_some(),
        req.headers().get(header::HOST),
        path,
        https_port,
    );
    let Some(target) = target.and_then(|t| HeaderValue::try_from(t).ok()) else {
        return Ok(crate::respond::plain(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"unknown host\n"),
        ));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, target);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(name: &str) -> bool {
        name.eq_ignore_ascii_case("app.example.org")
            || name.eq_ignore_ascii_case("app.example.org.")
    }

    fn at(host: &'static str, path: &str, port: u16) -> Option<String> {
        location(served, Some(&HeaderValue::from_static(host)), path, port)
    }

    #[test]
    fn a_served_name_goes_to_https_normalized() {
        assert_eq!(
            at("APP.example.org.:80", "/Mobile/Login.aspx?x=1", 443).as_deref(),
            Some("https://app.example.org/Mobile/Login.aspx?x=1")
        );
        assert_eq!(
            at("app.example.org", "/", 8443).as_deref(),
            Some("https://app.example.org:8443/")
        );
        // A target that is not origin-form goes to the root, never to another host.
        assert_eq!(
            at("app.example.org", "http://evil.example/", 443).as_deref(),
            Some("https://app.example.org/")
        );
    }

    #[test]
    fn unserved_malformed_or_address_hosts_get_no_location() {
        for host in [
            "evil.example",
            "app.example.org@evil.example",
            "10.0.0.5",
            "[::1]",
            "app..example.org",
        ] {
            assert_eq!(at(host, "/", 443), None, "{host}");
        }
        assert_eq!(location(served, None, "/", 443), None);
    }
}
