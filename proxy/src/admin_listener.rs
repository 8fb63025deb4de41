//! The admin listener's serving: its own thread and runtime, apart from the serving
//! workers and from the control runtime (reloads, ACME), so that `/healthz` and
//! `/readyz` answer whatever those are doing; limits on what clients may hold; and the
//! Host check against DNS rebinding.
//!
//! Limits: at most [`MAX_CONNECTIONS`] connections, [`MAX_PER_IP`] from one address, a
//! short header timeout and small header buffers. A new connection never waits: when
//! the limit is reached, the oldest connection (that address's oldest when it holds its
//! share) is closed to make room, so a flood of unfinished requests cannot keep a probe
//! out; it can only close its own connections faster.
//!
//! Making room is not enough against a client that reconnects as soon as it is closed:
//! each of its reconnections closes the next oldest, and a probe that took its place
//! before its request arrived is among the oldest after [`MAX_PER_IP`] of them
//! (`certfront-loadtest admin-abuse` from the prober's address: 235 of 413 probes failed
//! at ~9,000 reconnections a second). So a connection takes its place only once its first
//! bytes have arrived, and is served by hyper in the same poll: a probe's whole request
//! is then answered before anything can close it. Connections that have sent nothing yet
//! wait apart, at most [`MAX_ARRIVING`] (the oldest closed to make room) and for at most
//! [`HEADER_TIMEOUT`]; a probe is among them only until its request arrives.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tracing::{debug, error};

use crate::app::App;
use crate::authority::parse_host;

/// Probes and scrapers need few connections; more would only be a way to hold memory.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// One address's share: past it, that address's own oldest connection makes room.
pub(crate) const MAX_PER_IP: usize = 16;
/// A request's headers must arrive within this (also the keep-alive wait).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections that have sent nothing yet (each a task and a socket).
pub(crate) const MAX_ARRIVING: usize = 256;

/// The admin thread; dropping this stops it (its connections end with it).
pub(crate) struct AdminThread {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for AdminThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the admin listener on a thread of its own.
pub(crate) fn spawn(listener: TcpListener, app: Arc<App>) -> std::io::Result<AdminThread> {
    let listener = listener.into_std()?;
    let (stop, stopped) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("certfront-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return error!("admin listener: {e}"),
                };
                tokio::select! {
                    _ = accept_loop(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Open connections are dropped with the runtime, not waited for.
            runtime.shutdown_background();
        })?;
    Ok(AdminThread { stop: Some(stop) })
}

/// The open connections, oldest first, each with what closes it.
struct Open {
    next: u64,
    conns: VecDeque<(u64, IpAddr, oneshot::Sender<()>)>,
    max: usize,
    per_ip: usize,
}

impl Open {
    fn new(max: usize, per_ip: usize) -> Self {
        Open {
            next: 0,
            conns: VecDeque::new(),
            max,
            per_ip,
        }
    }

    /// Registers a new connection from `ip`, closing the one that must make room.
    fn admit(&mut self, ip: IpAddr) -> (u64, oneshot::Receiver<()>) {
        let same = self.conns.iter().filter(|c| c.1 == ip).count();
        let evict = if same >= self.per_ip {
            self.conns.iter().position(|c| c.1 == ip)
        } else if self.conns.len() >= self.max {
            Some(0)
        } else {
            None
        };
        if let Some(i) = evict
            && let Some((_, old_ip, close)) = self.conns.remove(i)
        {
            debug!(peer = %old_ip, "admin connection closed to make room for a new one");
            let _ = close.send(());
        }
        let (tx, rx) = oneshot::channel();
        let id = self.next;
        self.next += 1;
        self.conns.push_back((id, ip, tx));
        (id, rx)
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.conns.iter().position(|c| c.0 == id) {
            self.conns.remove(i);
        }
    }
}

async fn accept_loop(listener: TcpListener, app: Arc<App>) {
    let open = Arc::new(Mutex::new(Open::new(MAX_CONNECTIONS, MAX_PER_IP)));
    let arriving = Arc::new(Mutex::new(Open::new(MAX_ARRIVING, MAX_ARRIVING)));
    let renders = Arc::new(crate::admin::Renders::default());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                error!("admin accept failed: {e}; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (app, open, arriving, renders) =
            (app.clone(), open.clone(), arriving.clone(), renders.clone());
        tokio::spawn(async move {
            let (id, closed) = lock(&arriving).admit(peer.ip());
            let sent = tokio::select! {
                sent = first_bytes(&tcp) => sent,
                _ = closed => false,
                _ = tokio::time::sleep(HEADER_TIMEOUT) => false,
            };
            lock(&arriving).remove(id);
            if !sent {
                return;
            }
            // A place, then hyper at once, in this same poll: a whole request waiting in
            // the socket (a probe's) is answered before any other connection can be
            // accepted and close this one to make room.
            let (id, closed) = lock(&open).admit(peer.ip());
            tokio::select! {
                _ = serve(tcp, peer, app, renders) => {}
                _ = closed => {}
            }
            lock(&open).remove(id);
        });
    }
}

/// Resolves when the client has sent something (true) or closed (false); takes nothing.
async fn first_bytes(tcp: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tcp.peek(&mut byte).await, Ok(n) if n > 0)
}

fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    renders: Arc<crate::admin::Renders>,
) {
    // The address the client reached: with a wildcard bind, that is the name to expect.
    let Ok(local) = tcp.local_addr() else { return };
    let allowed = Arc::new(Allowed::new(local.ip(), &app));
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let (app, allowed, renders) = (app.clone(), allowed.clone(), renders.clone());
        async move {
            if !allowed.host_ok(req.headers().get(header::HOST).map(|h| h.as_bytes())) {
                return Ok(crate::respond::plain(
                    http::StatusCode::MISDIRECTED_REQUEST,
                    Bytes::from_static(
                        b"421 Misdirected Request: this Host is not a name of the admin listener (server.admin_hosts)\n",
                    ),
                ));
            }
            crate::admin::handle(req, app, renders).await
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024);
    if let Err(e) = builder.serve_connection(TokioIo::new(tcp), svc).await {
        debug!(%peer, "admin connection ended: {e}");
    }
}

/// What a request's Host may name on one admin connection.
struct Allowed {
    local: IpAddr,
    names: Vec<String>,
}

impl Allowed {
    fn new(local: IpAddr, app: &App) -> Self {
        let names = app.snapshot().config.server.admin_hosts.clone();
        Allowed { local, names }
    }

    /// The address the client connected to, `localhost` on a loopback address, or a name
    /// of `server.admin_hosts`; the port does not matter. No Host at all (HTTP/1.0) is no
    /// foreign name.
    fn host_ok(&self, host: Option<&[u8]>) -> bool {
        let Some(host) = host else { return true };
        let Ok(parsed) = parse_host(host) else {
            return false;
        };
        let name = parsed.name.strip_suffix('.').unwrap_or(parsed.name);
        let bare = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return ip == self.local
                || self.local.to_canonical() == ip.to_canonical()
                || self.names.iter().any(|n| n.parse::<IpAddr>() == Ok(ip));
        }
        (self.local.is_loopback() && name.eq_ignore_ascii_case("localhost"))
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(local: &str, names: &[&str]) -> Allowed {
        Allowed {
            local: local.parse().unwrap(),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn only_the_listeners_own_names_pass() {
        let a = allowed("127.0.0.1", &["admin.example.org"]);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:9443",
            "localhost:9443",
            "LOCALHOST",
            "admin.example.org",
            "Admin.Example.org.:443",
        ] {
            assert!(a.host_ok(Some(ok.as_bytes())), "{ok}");
        }
        assert!(a.host_ok(None));
        for bad in [
            "attacker.example",
            "127.0.0.2",
            "localhost.attacker.example",
            "admin.example.org.evil",
            "",
            "a b",
        ] {
            assert!(!a.host_ok(Some(bad.as_bytes())), "{bad}");
        }
        // `localhost` names a loopback listener only.
        assert!(!allowed("10.0.0.5", &[]).host_ok(Some(b"localhost")));
        assert!(allowed("10.0.0.5", &[]).host_ok(Some(b"10.0.0.5:9443")));
        assert!(allowed("::1", &[]).host_ok(Some(b"[::1]:9443")));
    }

    #[test]
    fn a_full_listener_closes_the_oldest_and_an_address_its_own_oldest() {
        let mut open = Open::new(MAX_CONNECTIONS, MAX_PER_IP);
        let hostile: IpAddr = "192.0.2.1".parse().unwrap();
        let mut closes = Vec::new();
        for _ in 0..MAX_PER_IP {
            closes.push(open.admit(hostile).1);
        }
        // The 17th from the same address closes that address's first.
        let _ = open.admit(hostile);
        assert!(closes[0].try_recv().is_ok(), "its own oldest is closed");
        assert!(closes[1].try_recv().is_err());
        assert_eq!(open.conns.len(), MAX_PER_IP);
        // Many addresses: the listener's oldest makes room.
        for i in 0..(MAX_CONNECTIONS - MAX_PER_IP) {
            let ip = IpAddr::from([198, 51, 100, i as u8]);
            let _ = open.admit(ip);
        }
        assert_eq!(open.conns.len(), MAX_CONNECTIONS);
        let _ = open.admit("203.0.113.9".parse().unwrap());
        assert_eq!(open.conns.len(), MAX_CONNECTIONS);
        assert!(
            closes[1].try_recv().is_ok(),
            "the listener's oldest is closed"
        );
    }
}
