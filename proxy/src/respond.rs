//! Short plain-text answers that certfront writes itself: request errors, `respond`
//! hosts, the admin, redirect and ACME challenge listeners.

use bytes::Bytes;
use http::Response;
use http::StatusCode;
use http::header::{self, HeaderValue};
use http_body_util::Full;

/// A plain-text response: every answer certfront writes itself (errors, `respond`,
/// the admin and redirect listeners) goes through here.
pub(crate) fn plain(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// [`plain`] with a static body.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    plain(status, Bytes::from_static(body.as_bytes()))
}
