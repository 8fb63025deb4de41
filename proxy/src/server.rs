//! Start and stop: put the first [`Snapshot`] of a [`Prepared`] config in force, bind every
//! listener (all or nothing), run the accept loops, and drain on request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

use crate::access_log::AccessLogger;
use crate::admission::{OpenGauge, Slot};
use crate::app::App;
use crate::conn;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::prepare::Prepared;
use crate::snapshot::{Snapshot, Writers};
use crate::tracker::Tracker;
use crate::workers::Workers;
use crate::{redirect, reload};
use certfront_certs::store::CertReader;

/// A started certfront: its bound addresses and the handle that drains it.
pub struct Running {
    pub tls_addrs: Vec<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub redirect_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    accept_loops: Vec<JoinHandle<()>>,
    /// The threads that serve the connections; they stop when this is dropped, after
    /// the drain.
    _workers: Arc<Workers>,
    reload: mpsc::UnboundedSender<reload::Request>,
    /// The ACME engine's tasks (stopped when dropped).
    _acme: Option<certfront_acme::Engine>,
    /// The admin listener's thread (stopped when dropped).
    _admin: Option<crate::admin_listener::AdminThread>,
}

impl Running {
    /// A reader of every host's certificate slot, in config order (only the reloader
    /// writes them).
    pub fn slots(&self) -> Vec<CertReader> {
        self.app
            .snapshot()
            .table
            .sites()
            .iter()
            .map(|s| s.cert.clone())
            .collect()
    }

    /// Reopens the access-log file (what SIGUSR1 does, after logrotate moved it away).
    pub fn reopen_logs(&self) {
        self.app.access_log.reopen();
    }

    /// Re-reads the configuration (when it changed) and every host's files now (what
    /// SIGHUP does).
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
        let drained = tokio::time::timeout(limit, self.app.tracker.wait_idle())
            .await
            .is_ok();
        // The last requests' lines, before the process exits.
        let app = self.app.clone();
        let _ = tokio::task::spawn_blocking(move || app.access_log.finish()).await;
        drained
    }
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
    let mut prepared = prepared;
    let acme_settings = prepared.acme.take();
    let built = Snapshot::build(prepared, None, &metrics)?;
    let config = built.snapshot.config.clone();
    let config = &config;
    let acme_state = Arc::new(crate::acme::AcmeState::new(config));

    // Before any bind: a log file that cannot be opened refuses the start.
    let access_log = AccessLogger::start(
        config.server.access_log_file.as_deref(),
        metrics.access_log_dropped.clone(),
    )?;
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

    // Every bind succeeded: the first snapshot goes in force.
    let mut writers = Writers::default();
    let (snapshot, _) = built.apply(&metrics, &mut writers);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(App::new(
        snapshot,
        shutdown_rx,
        Tracker::default(),
        metrics.clone(),
        acme_state.clone(),
        access_log,
    ));
    metrics.register(Box::new(crate::upstream_up::UpstreamUp::new(&app)));
    crate::dependents::refresh_snapshot(&metrics, &app.ca_inputs, &app.snapshot());
    let reload_tx = start_reloader(&app, metrics.clone(), writers);
    // After every bind: the CA validates by connecting to the listeners.
    let acme_engine = acme_settings.map(|settings| {
        let reload = reload_tx.clone();
        crate::acme::start(
            config,
            settings,
            app.snapshot().trust.clone(),
            &acme_state,
            &metrics,
            Arc::new(move |_host: &str| {
                let _ = reload.send(reload::Request::All);
            }),
        )
    });
    let permits = Arc::new(Semaphore::new(config.limits.max_connections));
    let workers = Arc::new(Workers::start().map_err(ProxyError::Workers)?);

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
        let gauge = metrics
            .connections_open
            .with_label_values(&[&configured.to_string()]);
        let admit = Admit {
            app: app.clone(),
            permits: permits.clone(),
            gauge,
        };
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            admit,
            workers.clone(),
            move |tcp, peer, slot| conn::serve_tls(app.clone(), tcp, peer, slot),
        )));
    }

    let redirect_addr = redirect
        .as_ref()
        .map(|l| local(l, config.server.http_redirect.expect("bound")));
    if let Some(listener) = redirect {
        let https_port = tls_addrs.first().map(|a| a.port()).unwrap_or(443);
        let redirect_at = redirect_addr.expect("bound");
        info!("listening for plain HTTP (redirect to https) on {redirect_at}");
        let app = app.clone();
        let admit = Admit {
            app: app.clone(),
            // Its own limit: idle port-80 clients never take a TLS client's place.
            permits: Arc::new(Semaphore::new(config.limits.redirect_max_connections)),
            gauge: metrics.connections_open.with_label_values(&[&config
                .server
                .http_redirect
                .expect("bound")
                .to_string()]),
        };
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            admit,
            workers.clone(),
            move |tcp, peer, slot: Slot| {
                let app = app.clone();
                async move {
                    let _slot = slot;
                    let svc = service_fn(|req| redirect::handle(req, app.clone(), https_port));
                    // One answer per connection: a redirect needs no keep-alive.
                    serve_plain(tcp, peer, svc, false).await;
                }
            },
        )));
    }

    let admin_addr = admin
        .as_ref()
        .map(|l| local(l, config.server.admin.expect("bound")));
    let admin_thread = match admin {
        Some(listener) => {
            let addr = admin_addr.expect("bound");
            info!("admin listener (/healthz /readyz /metrics /certs) on {addr}");
            // The admin listener stays up during a drain so that /readyz can say 503, and
            // runs on its own thread, with its own limits.
            let thread = crate::admin_listener::spawn(listener, app.clone())
                .map_err(|source| ProxyError::Bind { addr, source })?;
            Some(thread)
        }
        None => None,
    };

    tokio::spawn(crate::crlfetch::refresh(app.clone()));

    Ok(Running {
        tls_addrs,
        admin_addr,
        redirect_addr,
        app,
        shutdown: shutdown_tx,
        accept_loops,
        _workers: workers,
        reload: reload_tx,
        _acme: acme_engine,
        _admin: admin_thread,
    })
}

/// Starts the one writer: file watches on everything the snapshot depends on, debounced
/// reloads, the periodic re-scan, and a channel for SIGHUP.
fn start_reloader(
    app: &Arc<App>,
    metrics: Arc<Metrics>,
    writers: Writers,
) -> mpsc::UnboundedSender<reload::Request> {
    // SIGHUP requests: one per signal, and tokio coalesces signals. Watcher events go
    // through `Changes`, which is bounded by the number of watched files.
    let (tx, rx) = mpsc::unbounded_channel();
    let changes = Arc::new(reload::Changes::default());
    let watcher = reload::watch(&app.snapshot(), &changes);
    let reloader = reload::Reloader {
        app: app.clone(),
        metrics,
        changes,
        requests: rx,
        watcher,
        writers,
    };
    tokio::spawn(reloader.run());
    tx
}

async fn serve_plain<S>(tcp: TcpStream, peer: SocketAddr, svc: S, keep_alive: bool)
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
        .keep_alive(keep_alive)
        .header_read_timeout(Duration::from_secs(10));
    if let Err(e) = builder.serve_connection(TokioIo::new(tcp), svc).await {
        debug!(%peer, "plain HTTP connection ended: {e}");
    }
}

/// What a listener needs to admit a connection.
struct Admit {
    app: Arc<App>,
    permits: Arc<Semaphore>,
    gauge: prometheus::IntGauge,
}

impl Admit {
    /// A slot for a connection just accepted: a per-address slot now (or none: the
    /// connection is closed), then a place under the listener's limit, waited for (the
    /// listener stops accepting meanwhile, as a full backlog would).
    async fn slot(&self, peer: SocketAddr) -> Option<Slot> {
        let limit = self
            .app
            .snapshot
            .load()
            .config
            .limits
            .max_connections_per_ip;
        let Some(ip) = self.app.per_ip.take(peer.ip(), limit) else {
            debug!(%peer, "connection refused: {limit} connections from this address already (limits.max_connections_per_ip)");
            return None;
        };
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        Some(Slot {
            permit,
            ip,
            open: OpenGauge::new(self.gauge.clone()),
            live: self.app.tracker.track(),
        })
    }
}

/// Accepts until shutdown; each connection runs in its own task on a worker, holding its
/// slot. Accept errors (e.g. out of file descriptors) are logged and retried after a pause.
async fn accept_loop<F, Fut>(listener: TcpListener, admit: Admit, workers: Arc<Workers>, serve: F)
where
    F: Fn(TcpStream, SocketAddr, Slot) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut shutdown = admit.app.shutdown.clone();
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
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
        let slot = tokio::select! {
            slot = admit.slot(peer) => slot,
            _ = shutdown.changed() => return,
        };
        let Some(slot) = slot else { continue };
        let serve = serve.clone();
        workers.spawn(tcp, move |tcp| serve(tcp, peer, slot));
    }
}
