//! The plain-HTTP listener that sends every request for a served name to https (308 keeps
//! the method and body, so a SOAP POST is not turned into a GET).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::authority::parse_host;
use crate::conn::App;
use crate::sites::SiteTable;

/// `https://host[:port]path?query` for a request naming a served host, else `None`. The
/// host is checked for syntax and looked up exactly as TLS requests are, and goes into
/// `Location` normalized (lower case, no port), never as the client wrote it.
pub fn location(
    table: &SiteTable,
    host: Option<&HeaderValue>,
    path: &str,
    https_port: u16,
) -> Option<String> {
    let host = parse_host(host?.as_bytes()).ok()?;
    if host.ip {
        return None;
    }
    table.by_name(host.name)?;
    let name = certfront_certs::names::normalize(host.name);
    // A request target that is not origin-form (`*`, or absolute) redirects to the root.
    let path = if path.starts_with('/') { path } else { "/" };
    Some(if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    })
}

pub async fn handle(
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
    let target = location(
        &app.table,
        req.headers().get(header::HOST),
        path,
        https_port,
    );
    let Some(target) = target.and_then(|t| HeaderValue::try_from(t).ok()) else {
        return Ok(crate::forward::plain(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"unknown host\n"),
        ));
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, target);
    Ok(resp)
}
