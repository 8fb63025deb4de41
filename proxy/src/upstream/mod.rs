//! A host's upstreams: round robin over the list, skipping one that failed (marked down
//! for a cool-down), TLS verified against system roots plus `upstream_ca`, pooled
//! keep-alive connections per configured upstream, and HTTP/2 when a TLS upstream offers
//! it by ALPN.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use certfront_config::Upstream;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tracing::{debug, warn};

use pool::{Discard, H1, Lease, Pool};

mod connect;
mod error;
mod io;
mod pool;
mod rate;
mod timed;

pub(crate) use pool::{Discards, PooledBody};
pub(crate) use timed::Timed;

use error::stalled;
pub(crate) use error::{UpstreamError, blames_upstream};

/// How long an upstream that failed a connection is skipped.
const COOL_DOWN: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection to an upstream is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pooled connections tried before a fresh one (an idle one may have been closed by the
/// upstream a moment ago; such a request was never sent and is safe to try again).
const POOLED_ATTEMPTS: usize = 3;

/// A request body as it goes upstream: the client's, with an inactivity timeout.
pub(crate) type ReqBody = Timed<Incoming>;

/// The TLS client settings for one host's https upstreams.
struct UpstreamTls {
    /// Offers h2 and http/1.1.
    any: TlsConnector,
    /// http/1.1 only: a WebSocket upgrade needs HTTP/1.1 on the upstream too.
    h1: TlsConnector,
}

pub(crate) struct Target {
    upstream: Upstream,
    /// The upstream as configured, for logs.
    label: Arc<str>,
    server_name: ServerName<'static>,
    /// Milliseconds since `Upstreams::epoch` until which this upstream is skipped.
    down_until: AtomicU64,
    /// When and why it was last marked down (written on that failure path only, read by
    /// the inventory page).
    last_error: Mutex<Option<(SystemTime, String)>>,
    pool: Arc<Pool>,
    /// New connections per second (see `rate`).
    rate: rate::ConnectRate,
}

/// What opening a connection needs, shared with the task that opens it.
struct Dial {
    tls: Option<UpstreamTls>,
    connect_timeout: Duration,
    max_connections: usize,
}

/// The upstreams of one host.
pub(crate) struct Upstreams {
    targets: Box<[Arc<Target>]>,
    next: AtomicUsize,
    dial: Arc<Dial>,
    epoch: Instant,
}

/// A response from an upstream, and which upstream gave it.
pub(crate) struct Upstreamed {
    pub response: Response<PooledBody>,
    pub label: Arc<str>,
}

/// Limits that apply to each upstream's connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolLimits {
    pub connect_timeout: Duration,
    pub max_connections: usize,
    pub max_idle: usize,
}

enum Sender {
    /// Driven by the request (see `pool`).
    H1(H1),
    /// A connection task of its own, with upgrades: a WebSocket tunnel takes it over.
    Upgrade(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

impl Upstreams {
    pub(crate) fn new(
        upstreams: &[Upstream],
        tls: Option<Arc<ClientConfig>>,
        limits: PoolLimits,
        discards: Discards,
    ) -> Self {
        let targets = upstreams
            .iter()
            .map(|u| {
                Arc::new(Target {
                    // tls_name: what IIS's certificate names when the URL is an IP (SNI + verification)
                    server_name: ServerName::try_from(u.tls_name().to_owned()).unwrap_or_else(
                        |_| ServerName::try_from("invalid.invalid").expect("valid"),
                    ),
                    label: Arc::from(u.original.as_str()),
                    upstream: u.clone(),
                    down_until: AtomicU64::new(0),
                    last_error: Mutex::new(None),
                    pool: Pool::new(
                        limits.max_connections,
                        limits.max_idle,
                        IDLE_TIMEOUT,
                        crate::workers::count(),
                        discards.clone(),
                    ),
                    rate: rate::ConnectRate::new(rate::CONNECT_BURST, rate::CONNECTS_PER_SECOND),
                })
            })
            .collect();
        let tls = tls.map(|config| {
            let mut h1 = (*config).clone();
            h1.alpn_protocols = vec![b"http/1.1".to_vec()];
            UpstreamTls {
                any: TlsConnector::from(config),
                h1: TlsConnector::from(Arc::new(h1)),
            }
        });
        Upstreams {
            targets,
            next: AtomicUsize::new(0),
            dial: Arc::new(Dial {
                tls,
                connect_timeout: limits.connect_timeout,
                max_connections: limits.max_connections,
            }),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Each upstream as configured, and whether it takes requests now (not cooling down).
    pub(crate) fn states(&self) -> impl Iterator<Item = (&str, bool)> {
        let now = self.now_ms();
        self.targets
            .iter()
            .map(move |t| (&*t.label, !self.is_down(t, now)))
    }

    /// Each upstream's last failure that marked it down (time and error), in the order
    /// of [`Self::states`].
    pub(crate) fn last_errors(&self) -> impl Iterator<Item = Option<(SystemTime, String)>> {
        self.targets.iter().map(|t| {
            t.last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    fn is_down(&self, target: &Target, now: u64) -> bool {
        target.down_until.load(Ordering::Relaxed) > now
    }

    /// Sends `req` to the next upstream that takes a connection. A request that reached
    /// an upstream is never sent again; one that could not be sent moves on to the next
    /// upstream. When every upstream is in its cool-down, the one whose cool-down ends
    /// first is tried anyway, so a recovered backend is found without waiting.
    ///
    /// `host` is the Host sent upstream: HTTP/2 upstreams get it as `:authority`.
    pub(crate) async fn send(
        &self,
        mut req: Request<ReqBody>,
        upgrade: bool,
    ) -> Result<Upstreamed, UpstreamError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let down_until = |i: usize| self.targets[i].down_until.load(Ordering::Relaxed);
        let mut last = None;
        let mut tried = false;
        for i in turn(start, self.targets.len()) {
            if self.is_down(&self.targets[i], now) {
                continue;
            }
            tried = true;
            match self.send_to(&self.targets[i], req, upgrade).await {
                Ok(done) => return Ok(done),
                Err((e, Some(back))) => {
                    req = back;
                    last = Some(e);
                }
                Err((e, None)) => return Err(e),
            }
        }
        if !tried {
            // Every upstream is cooling down: try the one that comes back first.
            let target = &self.targets[first_back(self.targets.len(), down_until)];
            return match self.send_to(target, req, upgrade).await {
                Ok(done) => Ok(done),
                Err((
                    e @ (UpstreamError::Local { .. }
                    | UpstreamError::Busy { .. }
                    | UpstreamError::Throttled { .. }),
                    _,
                )) => Err(e),
                Err((_, Some(_))) => Err(UpstreamError::AllDown),
                Err((e, None)) => Err(e),
            };
        }
        Err(last.unwrap_or(UpstreamError::AllDown))
    }

    /// One upstream: a pooled connection, else a new one. On a failure before the request
    /// was sent, the request comes back for the next upstream.
    async fn send_to(
        &self,
        target: &Arc<Target>,
        mut req: Request<ReqBody>,
        upgrade: bool,
    ) -> Result<Upstreamed, (UpstreamError, Option<Request<ReqBody>>)> {
        let mut pooled_attempts = 0;
        let mut throttled = Duration::ZERO;
        loop {
            let pooled = pooled_attempts < POOLED_ATTEMPTS;
            let sender = match self.pooled(target, upgrade, pooled) {
                Some(sender) => sender,
                None => match self.connect(target, upgrade, &mut throttled).await {
                    // Over the connection rate: wait for the next token, then look in the
                    // pool again (a connection may have come back meanwhile).
                    Err(UpstreamError::Throttled { wait, .. })
                        if throttled < self.dial.connect_timeout =>
                    {
                        tokio::time::sleep(wait).await;
                        throttled += wait;
                        continue;
                    }
                    Ok(sender) => {
                        target.down_until.store(0, Ordering::Relaxed);
                        pooled_attempts = POOLED_ATTEMPTS;
                        sender
                    }
                    Err(e) => {
                        self.note_failure(target, &e);
                        return Err((e, Some(req)));
                    }
                },
            };
            let was_pooled = pooled_attempts < POOLED_ATTEMPTS;
            match self.exchange(target, sender, req).await {
                Ok(done) => return Ok(done),
                Err((e, Some(back))) if was_pooled => {
                    debug!(upstream = %target.label, "pooled connection was closed: {e}; retrying");
                    pooled_attempts += 1;
                    req = back;
                }
                // hyper calls a failure of the body it was sending a "user" error: that
                // body is the client's. (One that stalled keeps its 502 for now.)
                Err((e, back)) if e.is_user() && !stalled(&e) => {
                    return Err((UpstreamError::ClientBody { source: e }, back));
                }
                Err((e, back)) => {
                    let e = UpstreamError::Protocol {
                        upstream: target.label.clone(),
                        source: e,
                    };
                    return Err((e, back));
                }
            }
        }
    }

    fn note_failure(&self, target: &Target, e: &UpstreamError) {
        let blame = match e {
            UpstreamError::Connect { source, .. } => blames_upstream(source),
            UpstreamError::Timeout { .. } | UpstreamError::Tls { .. } => true,
            _ => false,
        };
        if blame {
            warn!(upstream = %target.label, "upstream marked down for {}s: {e}", COOL_DOWN.as_secs());
            let until = self.now_ms().saturating_add(COOL_DOWN.as_millis() as u64);
            target.down_until.store(until, Ordering::Relaxed);
            *target.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((SystemTime::now(), e.to_string()));
        }
    }

    fn pooled(&self, target: &Target, upgrade: bool, pooled: bool) -> Option<Sender> {
        // An upgrade always gets a connection of its own.
        if !pooled || upgrade {
            return None;
        }
        if let Some(tx) = target.pool.h2() {
            return Some(Sender::H2(tx));
        }
        target.pool.checkout().map(Sender::H1)
    }

    async fn exchange(
        &self,
        target: &Target,
        sender: Sender,
        mut req: Request<ReqBody>,
    ) -> Result<Upstreamed, (hyper::Error, Option<Request<ReqBody>>)> {
        match sender {
            Sender::H2(mut tx) => {
                to_absolute(&mut req);
                match tx.try_send_request(req).await {
                    Ok(resp) => Ok(Upstreamed {
                        response: resp.map(|b| PooledBody::new(b, None)),
                        label: target.label.clone(),
                    }),
                    Err(mut e) => {
                        let back = e.take_message().map(to_origin);
                        Err((e.into_error(), back))
                    }
                }
            }
            Sender::H1(h1) => {
                // Cancelled before the request is handed over, the connection is still
                // clean: back to the pool, not to the floor.
                let mut held = pool::Unsent::new(&target.pool, h1);
                let ready = held.h1().ready().await;
                let mut h1 = held.take();
                if let Err(e) = ready {
                    if h1.reused {
                        // hyper found bytes in its buffers, or the close, on a pooled one.
                        target.pool.discards.count(Discard::Error);
                    }
                    return Err((e, Some(req)));
                }
                match h1.send(req).await {
                    Ok(resp) => {
                        let lease = Lease {
                            pool: target.pool.clone(),
                            h1,
                        };
                        Ok(Upstreamed {
                            response: resp.map(|b| PooledBody::new(b, Some(lease))),
                            label: target.label.clone(),
                        })
                    }
                    Err(mut e) => {
                        let back = e.take_message();
                        Err((e.into_error(), back))
                    }
                }
            }
            Sender::Upgrade(mut tx) => {
                if let Err(e) = tx.ready().await {
                    return Err((e, Some(req)));
                }
                match tx.try_send_request(req).await {
                    Ok(resp) => Ok(Upstreamed {
                        response: resp.map(|b| PooledBody::new(b, None)),
                        label: target.label.clone(),
                    }),
                    Err(mut e) => {
                        let back = e.take_message();
                        Err((e.into_error(), back))
                    }
                }
            }
        }
    }
}

/// The order in which a request tries `n` upstreams: round robin, each request starting
/// one further than the last.
fn turn(start: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| start.wrapping_add(i) % n)
}

/// The upstream whose cool-down ends first (the one tried when all are cooling down).
fn first_back(n: usize, down_until: impl Fn(usize) -> u64) -> usize {
    (0..n).min_by_key(|&i| down_until(i)).unwrap_or(0)
}

/// HTTP/2 upstreams take the host as `:authority` and the scheme as `:scheme` (https:
/// h2 is only spoken over TLS here), not a Host header.
fn to_absolute(req: &mut Request<ReqBody>) {
    let Some(host) = req.headers_mut().remove(http::header::HOST) else {
        return;
    };
    let Ok(authority) = http::uri::Authority::try_from(host.as_bytes()) else {
        return;
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTPS);
    parts.authority = Some(authority);
    parts.path_and_query = req.uri().path_and_query().cloned();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// Back to origin form with a Host header, for a retry on an HTTP/1.1 connection.
fn to_origin(mut req: Request<ReqBody>) -> Request<ReqBody> {
    if let Some(authority) = req.uri().authority()
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(http::header::HOST, host);
    }
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = req.uri().path_and_query().cloned();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

#[cfg(test)]
mod tests;
