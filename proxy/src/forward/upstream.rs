//! Connections to a host's upstreams: round robin over the list, skipping one that refused
//! (marked down for a cool-down), TLS verified against system roots plus `upstream_ca`,
//! pooled keep-alive connections, and HTTP/2 when a TLS upstream offers it by ALPN.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use certfront_config::Upstream;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::warn;

/// How long an upstream that refused a connection is skipped.
const COOL_DOWN: Duration = Duration::from_secs(10);

/// Why no connection to any upstream could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("every upstream is marked down")]
    AllDown,
    #[error("cannot connect to {upstream}: {source}")]
    Connect {
        upstream: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {upstream} timed out")]
    Timeout { upstream: String },
    #[error("TLS to {upstream} failed: {source}")]
    Tls {
        upstream: String,
        #[source]
        source: io::Error,
    },
}

struct Target {
    upstream: Upstream,
    /// The upstream as configured, shared into each connection for the request log.
    label: Arc<str>,
    server_name: ServerName<'static>,
    /// Milliseconds since `Group::epoch` until which this upstream is skipped.
    down_until: AtomicU64,
}

struct Group {
    targets: Box<[Target]>,
    next: AtomicUsize,
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
    epoch: Instant,
}

/// The upstreams of one host and the pooled client that reaches them.
pub struct Upstreams {
    pub client: Client<Connector, Incoming>,
    group: Arc<Group>,
}

/// Which upstream served a response (a response extension, for the request log).
#[derive(Clone, Debug)]
pub struct UpstreamLabel(pub Arc<str>);

impl Upstreams {
    pub fn new(
        upstreams: &[Upstream],
        tls: Option<Arc<ClientConfig>>,
        connect_timeout: Duration,
    ) -> Self {
        let targets = upstreams
            .iter()
            .map(|u| Target {
                // tls_name: what IIS's certificate names when the URL is an IP (SNI + verification)
                server_name: ServerName::try_from(u.tls_name().to_owned())
                    .unwrap_or_else(|_| ServerName::try_from("invalid.invalid").expect("valid")),
                label: Arc::from(u.original.as_str()),
                upstream: u.clone(),
                down_until: AtomicU64::new(0),
            })
            .collect();
        let group = Arc::new(Group {
            targets,
            next: AtomicUsize::new(0),
            tls: tls.map(TlsConnector::from),
            connect_timeout,
            epoch: Instant::now(),
        });
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .set_host(false)
            .build(Connector {
                group: group.clone(),
            });
        Upstreams { client, group }
    }

    /// Whether every upstream is in its cool-down.
    pub fn all_down(&self) -> bool {
        let now = self.group.now_ms();
        self.group
            .targets
            .iter()
            .all(|t| t.down_until.load(Ordering::Relaxed) > now)
    }
}

impl Group {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn connect(&self) -> Result<UpstreamIo, ConnectError> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for i in 0..n {
            let target = &self.targets[(start + i) % n];
            if target.down_until.load(Ordering::Relaxed) > self.now_ms() {
                continue;
            }
            match self.connect_one(target).await {
                Ok(io) => return Ok(io),
                Err(e @ ConnectError::Tls { .. }) => return Err(e),
                Err(e) => {
                    warn!(upstream = %target.upstream.original, "upstream marked down for {}s: {e}", COOL_DOWN.as_secs());
                    let until = self.now_ms() + COOL_DOWN.as_millis() as u64;
                    target.down_until.store(until, Ordering::Relaxed);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or(ConnectError::AllDown))
    }

    async fn connect_one(&self, target: &Target) -> Result<UpstreamIo, ConnectError> {
        let up = &target.upstream;
        let label = target.label.clone();
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((up.host.as_str(), up.port)),
        )
        .await
        .map_err(|_| ConnectError::Timeout {
            upstream: up.original.clone(),
        })?
        .map_err(|source| ConnectError::Connect {
            upstream: up.original.clone(),
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        if !up.tls {
            return Ok(UpstreamIo::Plain(tcp, label));
        }
        let connector = self.tls.as_ref().ok_or_else(|| ConnectError::Tls {
            upstream: up.original.clone(),
            source: io::Error::other("no TLS settings for this upstream"),
        })?;
        let tls = tokio::time::timeout(
            self.connect_timeout,
            connector.connect(target.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| ConnectError::Timeout {
            upstream: up.original.clone(),
        })?
        .map_err(|source| ConnectError::Tls {
            upstream: up.original.clone(),
            source,
        })?;
        Ok(UpstreamIo::Tls(Box::new(tls), label))
    }
}

/// The hyper-util connector: ignores the request URI and picks an upstream of its group.
#[derive(Clone)]
pub struct Connector {
    group: Arc<Group>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<UpstreamIo>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let group = self.group.clone();
        Box::pin(async move { group.connect().await.map(TokioIo::new) })
    }
}

/// A connection to an upstream, plain or TLS.
pub enum UpstreamIo {
    Plain(TcpStream, Arc<str>),
    Tls(Box<TlsStream<TcpStream>>, Arc<str>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Plain(_, label) => Connected::new().extra(UpstreamLabel(label.clone())),
            UpstreamIo::Tls(tls, label) => {
                let connected = Connected::new().extra(UpstreamLabel(label.clone()));
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s, _) => s.is_write_vectored(),
            UpstreamIo::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s, _) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
