//! One client connection: TLS accept, then HTTP/1.1 or HTTP/2 as ALPN chose, until the
//! client leaves, a limit closes it, or a drain asks it to finish its requests and close.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use certfront_config::Limits;
use http::HeaderValue;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use crate::forward;
use crate::metrics::Metrics;
use crate::mtls::ClientCert;
use crate::sites::{Site, SiteTable};
use crate::tls;
use crate::tracker::Tracker;

/// What every connection shares; built once at start.
pub struct App {
    pub table: SiteTable,
    pub limits: Limits,
    pub access_log: bool,
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    /// Flips to `true` when a drain starts.
    pub shutdown: watch::Receiver<bool>,
    pub tracker: Tracker,
    pub metrics: Arc<Metrics>,
}

impl App {
    pub fn new(
        table: SiteTable,
        limits: Limits,
        access_log: bool,
        shutdown: watch::Receiver<bool>,
        tracker: Tracker,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(8192) + 8192);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.idle_timeout / 2)
            .keep_alive_timeout(limits.idle_timeout / 2);
        App {
            table,
            limits,
            access_log,
            http1: h1,
            http2: h2,
            shutdown,
            tracker,
            metrics,
        }
    }
}

/// Keeps `certfront_connections_open` right however a connection ends.
struct OpenConnection(prometheus::IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn version_label(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "none",
    }
}

/// Per connection: who the client is and which host its SNI chose.
pub struct ConnCtx {
    pub app: Arc<App>,
    pub site: Arc<Site>,
    pub peer: SocketAddr,
    /// The client's address as it goes into X-Forwarded-For, rendered once per connection.
    pub peer_ip: HeaderValue,
    /// The verified client certificate (mutual TLS hosts only).
    pub client_cert: Option<ClientCert>,
}

/// Drives a hyper connection until it ends; on drain, asks it to finish and close.
macro_rules! drive {
    ($conn:expr, $shutdown:expr, $revoked:expr, $peer:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let revoked = $revoked;
        tokio::pin!(revoked);
        let mut shutdown = $shutdown;
        let result = if *shutdown.borrow_and_update() {
            conn.as_mut().graceful_shutdown();
            conn.await
        } else {
            tokio::select! {
                res = conn.as_mut() => res,
                _ = shutdown.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
                _ = revoked.as_mut() => {
                    tracing::info!(
                        peer = %$peer,
                        "closing connection: its client certificate is now on the deny list"
                    );
                    return;
                }
            }
        };
        if let Err(e) = result {
            debug!(peer = %$peer, "connection ended: {e}");
        }
    }};
}

/// Serves one TLS client connection to its end.
pub async fn serve_tls(app: Arc<App>, tcp: TcpStream, peer: SocketAddr, listener: Arc<str>) {
    let _live = app.tracker.track();
    let gauge = app
        .metrics
        .connections_open
        .with_label_values(&[&*listener]);
    gauge.inc();
    let _open = OpenConnection(gauge);
    let _ = tcp.set_nodelay(true);
    let accepted = match tls::accept(tcp, &app.table, app.limits.handshake_timeout).await {
        Ok(accepted) => accepted,
        Err((site, e)) => {
            let host = site.as_ref().map(|s| s.fqdn.as_str()).unwrap_or("unknown");
            debug!(%peer, host, "TLS handshake failed: {e}");
            if let (Some(site), true) = (&site, e.no_client_cert()) {
                app.metrics
                    .client_cert_rejections
                    .with_label_values(&[site.fqdn.as_str(), "missing"])
                    .inc();
            }
            app.metrics
                .tls_handshakes
                .with_label_values(&[host, "none", e.reason()])
                .inc();
            return;
        }
    };
    app.metrics
        .tls_handshakes
        .with_label_values(&[
            accepted.site.fqdn.as_str(),
            version_label(accepted.version),
            "success",
        ])
        .inc();
    let client_cert = match &accepted.site.client_auth {
        Some(_) => accepted
            .stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(ClientCert::from_leaf),
        None => None,
    };
    let leaf = client_cert.as_ref().map(|c| c.leaf.clone());
    let auth = accepted.site.client_auth.clone();
    // A resumed session skips certificate verification, so the deny list is checked here too.
    if let (Some(auth), Some(leaf)) = (&auth, &leaf)
        && auth.is_denied(leaf)
    {
        debug!(%peer, host = %accepted.site.fqdn, "resumed session of a denied client certificate refused");
        app.metrics
            .client_cert_rejections
            .with_label_values(&[accepted.site.fqdn.as_str(), "denied"])
            .inc();
        return;
    }
    // Resolves when a reloaded deny list names this connection's certificate.
    let revoked = async move {
        match (auth, leaf) {
            (Some(auth), Some(leaf)) => auth.revoked(&leaf).await,
            _ => std::future::pending().await,
        }
    };
    let ctx = Arc::new(ConnCtx {
        client_cert,
        peer_ip: HeaderValue::try_from(peer.ip().to_string()).expect("an IP is a header value"),
        app: app.clone(),
        site: accepted.site,
        peer,
    });
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(forward::handle(req, ctx).await) }
    });
    let io = TokioIo::new(accepted.stream);
    let shutdown = app.shutdown.clone();
    if accepted.h2 {
        drive!(
            app.http2.serve_connection(io, service),
            shutdown,
            revoked,
            peer
        );
    } else {
        drive!(
            app.http1.serve_connection(io, service).with_upgrades(),
            shutdown,
            revoked,
            peer
        );
    }
}
