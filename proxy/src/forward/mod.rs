//! Requests on an accepted connection: check that the Host belongs to the SNI's host
//! (else 421), then answer directly (`respond`) or forward to the upstreams.

pub mod headers;
pub mod upstream;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tracing::{debug, info};

use crate::conn::ConnCtx;
use crate::sites::Route;
use upstream::{ConnectError, UpstreamLabel, Upstreams};

/// A response body: the upstream's, streamed, or a short one of ours.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Builds a short plain-text response; error bodies never name an internal address.
pub fn short(status: StatusCode, text: &'static str) -> Response<Body> {
    plain(status, Bytes::from_static(text.as_bytes())).map(Either::Right)
}

/// A plain-text response: every answer certfront writes itself (errors, `respond`,
/// the admin and redirect listeners) goes through here.
pub fn plain(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The name the request asks for: the URI's authority (HTTP/2 `:authority`, or an
/// absolute-form HTTP/1.1 target, which RFC 9112 3.2.2 puts before Host), else Host.
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(authority) = req.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).ok();
    }
    req.headers().get(header::HOST).cloned()
}

/// Handles one request; never fails (errors become short responses).
pub async fn handle(req: Request<Incoming>, ctx: Arc<ConnCtx>) -> Response<Body> {
    let started = Instant::now();
    // Kept for the request log only; a `Uri` clone shares the parsed bytes, no copy.
    let logged = ctx
        .app
        .access_log
        .then(|| (req.method().clone(), req.uri().clone()));
    let host = request_host(&req);
    let (resp, upstream) = match &host {
        None => (
            short(StatusCode::BAD_REQUEST, "400 Bad Request: no Host\n"),
            None,
        ),
        Some(h) if !h.to_str().is_ok_and(|h| ctx.site.accepts(h)) => (
            short(
                StatusCode::MISDIRECTED_REQUEST,
                "421 Misdirected Request: this connection does not serve that host\n",
            ),
            None,
        ),
        Some(h) => match &ctx.site.route {
            Route::Respond { status, body } => {
                (plain(*status, body.clone()).map(Either::Right), None)
            }
            Route::Upstream(ups) => {
                let host = h.clone();
                let resp = forward(req, host, &ctx, ups).await;
                let label = resp.extensions().get::<UpstreamLabel>().cloned();
                (resp, label)
            }
        },
    };
    let site = &ctx.site;
    ctx.app
        .metrics
        .http_requests
        .with_label_values(&[site.fqdn.as_str(), resp.status().as_str()])
        .inc();
    site.duration.observe(started.elapsed().as_secs_f64());
    if let Some((method, uri)) = logged {
        info!(
            target: "certfront::access",
            peer = %ctx.peer.ip(),
            method = %method,
            host = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
            path = uri.path(),
            status = resp.status().as_u16(),
            upstream = upstream.as_ref().map(|u| &*u.0).unwrap_or("-"),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
    }
    resp
}

/// Whether the client asks for a WebSocket (the only upgrade that passes; never h2c).
fn is_websocket(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.method() == Method::GET
        && headers::connection_has(req.headers(), "upgrade")
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

async fn forward(
    mut req: Request<Incoming>,
    host: HeaderValue,
    ctx: &ConnCtx,
    ups: &Upstreams,
) -> Response<Body> {
    if ups.all_down() {
        return short(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable\n");
    }
    let websocket = is_websocket(&req);
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

    let sent_host = ctx
        .site
        .upstream_host
        .clone()
        .unwrap_or_else(|| host.clone());
    let Some(uri) = upstream_uri(req.uri(), &sent_host) else {
        return short(StatusCode::BAD_REQUEST, "400 Bad Request\n");
    };
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    headers::strip_hop_by_hop(headers);
    headers::strip_client_cert(headers);
    if let Some(cert) = &ctx.client_cert {
        headers.insert(&headers::X_CLIENT_CERT, cert.der_b64.clone());
        headers.insert(&headers::X_CLIENT_CERT_THUMBPRINT, cert.thumbprint.clone());
    }
    headers::add_forwarded(headers, &ctx.peer_ip, &host);
    headers.insert(header::HOST, sent_host);
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }

    let limit = ctx.app.limits.upstream_response_timeout;
    let mut resp = match tokio::time::timeout(limit, ups.client.request(req)).await {
        Err(_) => {
            upstream_failed(ctx, "timeout");
            return short(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n");
        }
        Ok(Err(e)) => return upstream_error(&e, ctx),
        Ok(Ok(resp)) => resp,
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let guard = ctx.app.tracker.track();
            tokio::spawn(async move {
                let _live = guard;
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        if let Err(e) =
                            tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                        {
                            debug!("websocket tunnel ended: {e}");
                        }
                    }
                    Err(e) => debug!("websocket upgrade failed: {e}"),
                }
            });
            let (mut parts, body) = resp.into_parts();
            parts.headers.remove(header::TRANSFER_ENCODING);
            return Response::from_parts(parts, Either::Left(body));
        }
        // An upgrade the client did not ask for cannot be relayed.
        return short(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
    }
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Either::Left(body))
}

/// `http://<host we send>/<path?query>`: the authority keys the connection pool and is the
/// HTTP/2 `:authority`; the connector ignores it and dials the host's upstreams.
fn upstream_uri(original: &Uri, host: &HeaderValue) -> Option<Uri> {
    let authority = Authority::try_from(host.as_bytes()).ok()?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(
        original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).ok()
}

/// Maps a failed upstream exchange to 502/503/504 and logs the cause (with the address,
/// which the client never sees).
fn upstream_error(err: &hyper_util::client::legacy::Error, ctx: &ConnCtx) -> Response<Body> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(ce) = cause.downcast_ref::<ConnectError>() {
            tracing::warn!(host = %ctx.site.fqdn, "upstream: {ce}");
            upstream_failed(
                ctx,
                match ce {
                    ConnectError::Timeout { .. } => "timeout",
                    ConnectError::Tls { .. } => "tls",
                    ConnectError::AllDown | ConnectError::Connect { .. } => "connect",
                },
            );
            return match ce {
                ConnectError::AllDown => {
                    short(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable\n")
                }
                ConnectError::Timeout { .. } => {
                    short(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n")
                }
                _ => short(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n"),
            };
        }
        source = cause.source();
    }
    tracing::warn!(host = %ctx.site.fqdn, "upstream: {err}: {:?}", err.source());
    upstream_failed(ctx, "protocol");
    short(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
}

fn upstream_failed(ctx: &ConnCtx, kind: &str) {
    ctx.app
        .metrics
        .upstream_errors
        .with_label_values(&[ctx.site.fqdn.as_str(), kind])
        .inc();
}
