//! The plain-HTTP listener that sends every request for a served name to https (308 keeps
//! the method and body, so a SOAP POST is not turned into a GET).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::conn::App;
use crate::sites::strip_port;

/// Where to redirect: `https://host[:port]path?query`; `port` is the TLS listener's unless 443.
pub async fn handle(
    req: Request<Incoming>,
    app: Arc<App>,
    https_port: u16,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
        .unwrap_or("");
    let known = !host.is_empty() && app.table.sites().iter().any(|s| s.accepts(host));
    if !known {
        return Ok(crate::forward::plain(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"unknown host\n"),
        ));
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::try_from(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
