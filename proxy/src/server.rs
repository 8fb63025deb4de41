//! Start and stop: build the sites from a [`Prepared`] config, bind every listener (all or
//! nothing), run the accept loops, and drain on request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use certfront_config::{Action, Host};
use http::{HeaderValue, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::conn::{self, App};
use crate::error::ProxyError;
use crate::forward::upstream::Upstreams;
use crate::metrics::Metrics;
use crate::prepare::Prepared;
use crate::sites::{Route, Site, SiteTable};
use crate::tls::TlsShared;
use crate::tracker::Tracker;
use crate::{admin, redirect, reload};
use certfront_certs::store::CertSlot;

/// A started certfront: its bound addresses and the handle that drains it.
pub struct Running {
    pub tls_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub redirect_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    accept_loops: Vec<JoinHandle<()>>,
    reload: mpsc::UnboundedSender<reload::Request>,
    /// Keeps the file watches alive (None when the OS refused them; the re-scan still runs).
    _watcher: Option<certfront_certs::watch::Watcher>,
}

impl Running {
    /// Every host's certificate slot, in config order (what reloads write to).
    pub fn slots(&self) -> Vec<Arc<CertSlot>> {
        self.app
            .table
            .sites()
            .iter()
            .map(|s| s.cert.clone())
            .collect()
    }

    /// Re-reads every host's certificate files now (what SIGHUP does).
    pub fn reload_all(&self) {
        let _ = self.reload.send(reload::Request::All);
    }

    /// Stops accepting, lets open requests and tunnels finish for up to `limit`.
    /// Returns `true` when everything finished in time.
    pub async fn drain(self, limit: Duration) -> bool {
        let _ = self.shutdown.send(true);
        for task in self.accept_loops {
            let _ = task.await;
        }
        let live = self.app.tracker.live();
        if live > 0 {
            info!("draining {live} connection(s), up to {}s", limit.as_secs());
        }
        tokio::time::timeout(limit, self.app.tracker.wait_idle())
            .await
            .is_ok()
    }
}

fn upstream_tls(roots: &RootCertStore, host: &Host) -> Result<Arc<ClientConfig>, ProxyError> {
    let mut roots = roots.clone();
    if let Some(ca) = &host.upstream_ca {
        let anchors = certfront_certs::TrustAnchors::new(false, std::slice::from_ref(ca), &[])?;
        for anchor in anchors.roots().roots.iter() {
            roots.roots.push(anchor.clone());
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn build_sites(
    prepared: Prepared,
    metrics: &Arc<Metrics>,
) -> Result<(SiteTable, Prepared), ProxyError> {
    let mut prepared = prepared;
    let config = &prepared.config;
    let shared = TlsShared::new(config)?;
    let roots = prepared.trust.roots();
    let served = std::mem::take(&mut prepared.served);
    let mut sites = Vec::with_capacity(config.hosts.len());
    for (host, served) in config.hosts.iter().zip(served) {
        metrics.host(&host.fqdn);
        metrics.cert_served(&host.fqdn, &served.info, served.loaded_at);
        let slot = Arc::new(CertSlot::new(
            host.fqdn.clone(),
            host.names(),
            host.source.clone(),
            served,
        ));
        let (verifier, client_auth) = match &host.client_auth {
            Some(auth) => {
                let (v, state) = crate::mtls::build(&host.fqdn, auth, metrics.clone())
                    .map_err(ProxyError::ClientAuth)?;
                (Some(v), Some(state))
            }
            None => (None, None),
        };
        let tls = shared.host_config(slot.clone(), verifier)?;
        let route = match &host.action {
            Action::Respond { status, body } => Route::Respond {
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                body: Bytes::from(body.clone()),
            },
            Action::Upstream(list) => {
                let tls = if list.iter().any(|u| u.tls) {
                    Some(upstream_tls(&roots, host)?)
                } else {
                    None
                };
                Route::Upstream(Box::new(Upstreams::new(
                    list,
                    tls,
                    config.limits.upstream_connect_timeout,
                )))
            }
        };
        let upstream_host = host
            .upstream_host
            .as_deref()
            .and_then(|h| HeaderValue::from_str(h).ok());
        sites.push(Arc::new(Site {
            fqdn: host.fqdn.clone(),
            names: host.names().into_boxed_slice(),
            cert: slot,
            tls,
            route,
            upstream_host,
            client_auth,
            duration: metrics
                .http_request_duration
                .with_label_values(&[host.fqdn.as_str()]),
        }));
    }
    let table = SiteTable::new(
        sites,
        config.tls.default_host.as_deref(),
        config.tls.unknown_sni,
    );
    Ok((table, prepared))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { addr, source })
}

fn local(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// Binds every listener and starts serving. Nothing is served unless all binds succeed.
pub async fn start(prepared: Prepared, metrics: Arc<Metrics>) -> Result<Running, ProxyError> {
    let (table, prepared) = build_sites(prepared, &metrics)?;
    let config = &prepared.config;

    let mut tls_listeners = Vec::new();
    for addr in &config.server.listen {
        tls_listeners.push(bind(*addr).await?);
    }
    let admin = match config.server.admin {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let redirect = match config.server.http_redirect {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(App::new(
        table,
        config.limits.clone(),
        config.server.access_log,
        shutdown_rx,
        Tracker::default(),
        metrics.clone(),
    ));
    let (reload_tx, watcher) = start_reloader(&prepared, &app, metrics);
    let permits = Arc::new(Semaphore::new(config.limits.max_connections));

    let tls_addrs: Vec<SocketAddr> = tls_listeners
        .iter()
        .zip(&config.server.listen)
        .map(|(l, a)| local(l, *a))
        .collect();
    let mut accept_loops = Vec::new();
    for ((listener, addr), configured) in tls_listeners
        .into_iter()
        .zip(&tls_addrs)
        .zip(&config.server.listen)
    {
        info!("listening for TLS on {addr}");
        let app = app.clone();
        let permits = permits.clone();
        let label: Arc<str> = Arc::from(configured.to_string());
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            app.shutdown.clone(),
            permits,
            move |tcp, peer| {
                let app = app.clone();
                let label = label.clone();
                async move { conn::serve_tls(app, tcp, peer, label).await }
            },
        )));
    }

    let redirect_addr = redirect
        .as_ref()
        .map(|l| local(l, config.server.http_redirect.expect("bound")));
    if let Some(listener) = redirect {
        let https_port = tls_addrs.first().map(|a| a.port()).unwrap_or(443);
        info!(
            "listening for plain HTTP (redirect to https) on {}",
            redirect_addr.expect("bound")
        );
        let app = app.clone();
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            app.shutdown.clone(),
            permits.clone(),
            move |tcp, peer| {
                let app = app.clone();
                async move {
                    let _live = app.tracker.track();
                    let svc = service_fn(|req| redirect::handle(req, app.clone(), https_port));
                    serve_plain(tcp, peer, svc).await;
                }
            },
        )));
    }

    let admin_addr = admin
        .as_ref()
        .map(|l| local(l, config.server.admin.expect("bound")));
    if let Some(listener) = admin {
        info!(
            "admin listener (/healthz /readyz /metrics /certs) on {}",
            admin_addr.expect("bound")
        );
        let app = app.clone();
        // The admin listener stays up during a drain so that /readyz can say 503.
        let (_never_tx, never) = watch::channel(false);
        tokio::spawn(async move {
            let _keep = _never_tx;
            accept_loop(
                listener,
                never,
                Arc::new(Semaphore::new(256)),
                move |tcp, peer| {
                    let app = app.clone();
                    async move {
                        let svc = service_fn(|req| admin::handle(req, app.clone()));
                        serve_plain(tcp, peer, svc).await;
                    }
                },
            )
            .await
        });
    }

    Ok(Running {
        tls_addrs,
        admin_addr,
        redirect_addr,
        app,
        shutdown: shutdown_tx,
        accept_loops,
        reload: reload_tx,
        _watcher: watcher,
    })
}

/// Starts the reloader: file watches on every host's directories, debounced reloads,
/// the periodic re-scan, and a channel for SIGHUP.
fn start_reloader(
    prepared: &Prepared,
    app: &App,
    metrics: Arc<Metrics>,
) -> (
    mpsc::UnboundedSender<reload::Request>,
    Option<certfront_certs::watch::Watcher>,
) {
    let slots: Vec<Arc<CertSlot>> = app.table.sites().iter().map(|s| s.cert.clone()).collect();
    let deny: Vec<_> = app
        .table
        .sites()
        .iter()
        .map(|s| s.client_auth.clone())
        .collect();
    let (tx, rx) = mpsc::unbounded_channel();
    let files = reload::watched_files(&slots, &deny);
    let events = tx.clone();
    let watcher = if files.is_empty() {
        None
    } else {
        match certfront_certs::watch::watch(&files, move |ids| {
            let _ = events.send(reload::Request::Changed(ids.to_vec()));
        }) {
            Ok(w) => {
                info!(
                    "watching {} director(ies) for certificate changes",
                    w.dirs.len()
                );
                Some(w)
            }
            Err(e) => {
                warn!(
                    "{e}; certificate changes are picked up by the periodic re-scan and SIGHUP only"
                );
                None
            }
        }
    };
    let ctx = Arc::new(reload::ReloadCtx {
        policies: reload::policies(&prepared.config),
        trust: prepared.trust.clone(),
        ca: prepared.ca.clone(),
        metrics,
    });
    let rescan = match prepared.config.server.rescan_seconds {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    tokio::spawn(reload::run(slots, deny, ctx, rx, rescan));
    (tx, watcher)
}

async fn serve_plain<S>(tcp: TcpStream, peer: SocketAddr, svc: S)
where
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<http_body_util::Full<Bytes>>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    if let Err(e) = builder.serve_connection(TokioIo::new(tcp), svc).await {
        debug!(%peer, "plain HTTP connection ended: {e}");
    }
}

/// Accepts until shutdown; each connection runs in its own task holding a connection permit.
/// Accept errors (e.g. out of file descriptors) are logged and retried after a pause.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    error!("accept failed: {e}; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let fut = serve(tcp, peer);
        tokio::spawn(async move {
            let _permit = permit;
            fut.await;
        });
    }
}
