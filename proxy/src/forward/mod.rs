//! Requests on an accepted connection: refuse what no host should see (bad Host, a Host
//! that belongs to another host, CONNECT/TRACE), then answer directly (`respond`) or
//! forward to the upstreams.

pub(crate) mod headers;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tracing::{info, warn};

use crate::access_log::{Entry, Text, Texts};
use crate::authority::{HostError, parse_host};
use crate::context::ConnCtx;
use crate::request_id::X_REQUEST_ID;
use crate::respond::plain;
use crate::sites::{Route, Site, SiteTable};
use crate::upstream::{PooledBody, Timed, UpstreamError, Upstreams};

/// A response body: the upstream's, streamed under an inactivity timeout, or a short one
/// of ours.
pub(crate) type Body = Either<Timed<PooledBody>, Full<Bytes>>;

/// Builds a short plain-text error page naming the request id (so that a user's
/// screenshot names the access-log line); error bodies never name an internal address.
pub(crate) fn short(status: StatusCode, text: &'static str, id: &HeaderValue) -> Response<Body> {
    const LABEL: &[u8] = b"request id: ";
    let mut body = Vec::with_capacity(text.len() + LABEL.len() + id.len() + 1);
    body.extend_from_slice(text.as_bytes());
    body.extend_from_slice(LABEL);
    body.extend_from_slice(id.as_bytes());
    body.push(b'\n');
    plain(status, Bytes::from(body)).map(Either::Right)
}

/// Why certfront answers a request itself instead of passing it to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// CONNECT (a tunnel to anywhere) or TRACE (reflects headers, cookies included).
    Method,
    NoHost,
    BadHost(HostError),
    /// Two Host headers, or a Host that names another host than `:authority` / the
    /// absolute-form target (RFC 9113 8.3.1, RFC 9112 3.2).
    ConflictingHost,
    /// The name resolves to another host than the one this connection's SNI chose, or
    /// to none.
    Misdirected,
}

impl Refusal {
    fn response(self, id: &HeaderValue) -> Response<Body> {
        match self {
            Refusal::Method => {
                let mut resp = short(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "405 Method Not Allowed\n",
                    id,
                );
                resp.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"),
                );
                resp
            }
            Refusal::NoHost => short(StatusCode::BAD_REQUEST, "400 Bad Request: no Host\n", id),
            Refusal::BadHost(_) => {
                short(StatusCode::BAD_REQUEST, "400 Bad Request: bad Host\n", id)
            }
            Refusal::ConflictingHost => short(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: conflicting Host\n",
                id,
            ),
            Refusal::Misdirected => short(
                StatusCode::MISDIRECTED_REQUEST,
                "421 Misdirected Request: this connection does not serve that host\n",
                id,
            ),
        }
    }
}

/// The raw bytes naming the requested host: the URI's authority (HTTP/2 `:authority`, or
/// an absolute-form HTTP/1.1 target), else the one Host header. HTTP/1.1 ignores Host
/// beside an absolute-form target (RFC 9112 3.2.2); HTTP/2 refuses a Host that names
/// another host than `:authority` (RFC 9113 8.3.1).
fn named_host<'a>(
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<&'a [u8], Refusal> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::ConflictingHost);
    }
    match (uri.authority(), header) {
        (Some(authority), Some(header)) if version == Version::HTTP_2 => {
            let a = parse_host(authority.as_str().as_bytes()).map_err(Refusal::BadHost)?;
            let h = parse_host(header.as_bytes()).map_err(Refusal::BadHost)?;
            let trim = |n: &'a str| n.strip_suffix('.').unwrap_or(n);
            if !trim(a.name).eq_ignore_ascii_case(trim(h.name)) {
                return Err(Refusal::ConflictingHost);
            }
            Ok(authority.as_str().as_bytes())
        }
        (Some(authority), _) => Ok(authority.as_str().as_bytes()),
        (None, Some(header)) => Ok(header.as_bytes()),
        (None, None) => Err(Refusal::NoHost),
    }
}

/// Decides whether a request may reach `site`: its method is one a proxy passes, its Host
/// is well formed, and the site table routes that name to `site`, exactly as SNI routing
/// would. A wildcard host never receives a request for a name that an exact host serves
/// (that host may demand a client certificate this connection never showed).
///
/// Returns the Host as the client wrote it (port included), to send upstream.
pub fn admit<'a>(
    table: &SiteTable,
    site: &Arc<Site>,
    method: &Method,
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<&'a [u8], Refusal> {
    if method == Method::CONNECT || method == Method::TRACE {
        return Err(Refusal::Method);
    }
    let raw = named_host(version, uri, headers)?;
    let host = parse_host(raw).map_err(Refusal::BadHost)?;
    match table.by_name(host.name) {
        Some(found) if Arc::ptr_eq(found, site) => Ok(raw),
        _ => Err(Refusal::Misdirected),
    }
}

/// Handles one request; never fails (errors become short responses).
pub(crate) async fn handle(req: Request<Incoming>, ctx: Arc<ConnCtx>) -> Response<Body> {
    let started = Instant::now();
    let site = &ctx.site;
    let admitted = admit(
        &ctx.rt.table,
        site,
        req.method(),
        req.version(),
        req.uri(),
        req.headers(),
    )
    .map(|raw| {
        // The header's own bytes when it came from Host; `:authority` needs a copy.
        match req.headers().get(header::HOST) {
            Some(h) if h.as_bytes() == raw => Ok(h.clone()),
            _ => HeaderValue::from_bytes(raw),
        }
    });
    let request_id = ctx
        .app
        .request_ids
        .for_request(req.headers().get(&X_REQUEST_ID), ctx.trusted_peer);
    // For the access log only: what it names of the request, copied in one allocation.
    let logged = ctx.log_facts.as_ref().map(|facts| {
        let h = req.headers();
        let value = |name| h.get(name).map(HeaderValue::as_bytes).unwrap_or_default();
        let (path, query) = (req.uri().path(), req.uri().query().unwrap_or_default());
        let (agent, referer) = (value(header::USER_AGENT), value(header::REFERER));
        let mut texts = Texts::with_capacity(
            path.len() + query.len() + agent.len() + referer.len() + value(header::HOST).len() + 48,
        );
        texts.set(Text::Path, path.as_bytes());
        texts.set(Text::Query, query.as_bytes());
        texts.set(Text::UserAgent, agent);
        texts.set(Text::Referer, referer);
        (facts.clone(), req.method().clone(), texts)
    });
    let mut upstream = Forwarded::default();
    let (mut resp, host) = match admitted {
        Err(refusal) => (refusal.response(&request_id), None),
        Ok(Err(_)) => (Refusal::NoHost.response(&request_id), None),
        Ok(Ok(host)) => match &site.route {
            Route::Respond { status, body } => {
                (plain(*status, body.clone()).map(Either::Right), Some(host))
            }
            Route::Upstream(ups) => {
                let resp;
                (resp, upstream) = forward(req, host.clone(), &request_id, &ctx, ups).await;
                (resp, Some(host))
            }
        },
    };
    let elapsed = started.elapsed();
    site.requests.inc(resp.status());
    site.duration.observe(elapsed.as_secs_f64());
    if let Some((conn, method, mut texts)) = logged {
        texts.set(
            Text::Host,
            host.as_ref().map(HeaderValue::as_bytes).unwrap_or_default(),
        );
        texts.set(Text::RequestId, request_id.as_bytes());
        ctx.app.access_log.log(Entry {
            format: ctx.rt.config.server.access_log,
            at: SystemTime::now(),
            conn,
            peer: ctx.peer.ip(),
            method,
            texts,
            status: resp.status().as_u16(),
            time_taken_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            upstream: upstream.label,
            upstream_ms: upstream.took_ms,
        });
    }
    resp.headers_mut().insert(&X_REQUEST_ID, request_id);
    resp
}

/// What forwarding to an upstream adds to the access log.
#[derive(Default)]
struct Forwarded {
    label: Option<Arc<str>>,
    took_ms: Option<u64>,
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
    id: &HeaderValue,
    ctx: &Arc<ConnCtx>,
    ups: &Upstreams,
) -> (Response<Body>, Forwarded) {
    let websocket = is_websocket(&req);
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    let sent_host = ctx
        .site
        .upstream_host
        .clone()
        .unwrap_or_else(|| host.clone());

    // Origin form; an HTTP/2 upstream gets `https://host` put back by the pool.
    if req.uri().authority().is_some() || req.uri().scheme().is_some() {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
    }
    let from_h2 = req.version() == Version::HTTP_2;
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    headers::sanitize_request(headers);
    if from_h2 {
        headers::join_cookies(headers);
    }
    if let Some(cert) = &ctx.client_cert {
        headers.insert(&headers::X_CLIENT_CERT, cert.der_b64.clone());
        headers.insert(&headers::X_CLIENT_CERT_THUMBPRINT, cert.thumbprint.clone());
        let arr = ctx.site.host.client_auth.as_ref();
        if arr.is_some_and(|a| a.arr_client_cert) {
            headers.insert(&headers::X_ARR_CLIENTCERT, cert.der_b64.clone());
        }
    }
    headers::add_forwarded(headers, &ctx.peer_ip, &host, ctx.trusted_peer);
    headers.insert(header::HOST, sent_host);
    headers.insert(&X_REQUEST_ID, id.clone());
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let limits = &ctx.rt.config.limits;
    let req = req.map(|body| Timed::new(limits.body_timeout, body));

    // One allocation per request keeps the request's own future small: hyper moves that
    // future at every step (into the connection, into a task per HTTP/2 stream), and
    // `send`'s nested futures are most of its size (memmove was ~10% of CPU per h2
    // request before).
    let sent_at = Instant::now();
    let sent = tokio::time::timeout(
        limits.upstream_response_timeout,
        Box::pin(ups.send(req, websocket)),
    );
    let upstreamed = match sent.await {
        Err(_) => {
            upstream_failed(ctx, "timeout");
            return (
                short(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n", id),
                Forwarded::default(),
            );
        }
        Ok(Err(e)) => return (upstream_error(&e, ctx, id), Forwarded::default()),
        Ok(Ok(done)) => done,
    };
    let label = Forwarded {
        label: Some(upstreamed.label),
        took_ms: Some(u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX)),
    };
    let mut resp = upstreamed.response;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // An upgrade the client did not ask for cannot be relayed.
            return (
                short(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n", id),
                label,
            );
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        crate::tunnel::spawn(ctx.clone(), client_upgrade, upstream_upgrade);
        let (mut parts, body) = resp.into_parts();
        parts.headers.remove(header::TRANSFER_ENCODING);
        let body = Timed::new(limits.body_timeout, body);
        return (Response::from_parts(parts, Either::Left(body)), label);
    }
    let (mut parts, body) = resp.into_parts();
    // RFC 9112 6.3: with Transfer-Encoding, Content-Length means nothing and must not
    // travel on (a downstream parser might believe it: request smuggling).
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    let body = Timed::new(limits.body_timeout, body);
    (Response::from_parts(parts, Either::Left(body)), label)
}

/// Maps a failed upstream exchange to 502/503/504 and logs the cause (with the address,
/// which the client never sees).
fn upstream_error(err: &UpstreamError, ctx: &ConnCtx, id: &HeaderValue) -> Response<Body> {
    if let UpstreamError::ClientBody { .. } = err {
        info!(host = %ctx.site.fqdn, "request refused: {err}");
        return short(StatusCode::BAD_REQUEST, "400 Bad Request\n", id);
    }
    warn!(host = %ctx.site.fqdn, "upstream: {err}");
    upstream_failed(ctx, err.kind());
    match err {
        UpstreamError::AllDown
        | UpstreamError::Local { .. }
        | UpstreamError::Busy { .. }
        | UpstreamError::Throttled { .. } => short(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable\n",
            id,
        ),
        UpstreamError::Timeout { .. } => {
            short(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n", id)
        }
        UpstreamError::Connect { .. }
        | UpstreamError::Tls { .. }
        | UpstreamError::Protocol { .. }
        | UpstreamError::ClientBody { .. } => {
            short(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n", id)
        }
    }
}

fn upstream_failed(ctx: &ConnCtx, kind: &str) {
    ctx.app
        .metrics
        .upstream_errors
        .with_label_values(&[ctx.site.fqdn.as_str(), kind])
        .inc();
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hosts: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_host_comes_from_the_authority_or_the_one_host_header() {
        let (h1, h2) = (Version::HTTP_11, Version::HTTP_2);
        let origin: Uri = "/x".parse().unwrap();
        let absolute: Uri = "https://app.example.org:8443/x".parse().unwrap();
        let host = headers(&["app.example.org"]);
        assert_eq!(named_host(h1, &origin, &host), Ok(&b"app.example.org"[..]));
        assert_eq!(
            named_host(h2, &absolute, &HeaderMap::new()),
            Ok(&b"app.example.org:8443"[..])
        );
        assert_eq!(
            named_host(h2, &absolute, &headers(&["APP.example.org."])),
            Ok(&b"app.example.org:8443"[..])
        );
        assert_eq!(
            named_host(h1, &origin, &HeaderMap::new()),
            Err(Refusal::NoHost)
        );
        assert_eq!(
            named_host(h1, &origin, &headers(&["a.example.org", "b.example.org"])),
            Err(Refusal::ConflictingHost)
        );
        // HTTP/2: a Host beside :authority must name the same host.
        assert_eq!(
            named_host(h2, &absolute, &headers(&["admin.example.org"])),
            Err(Refusal::ConflictingHost)
        );
        // HTTP/1.1 absolute form: the target wins, Host is ignored.
        assert_eq!(
            named_host(h1, &absolute, &headers(&["admin.example.org"])),
            Ok(&b"app.example.org:8443"[..])
        );
    }
}
