//! The admin listener stays answerable: `/healthz` answers while other clients hold every
//! connection with unfinished requests (reconnecting as soon as they are closed) and
//! hammer `/certs`; a request whose Host is not
//! a name of the listener gets 421 (DNS rebinding), except names in `server.admin_hosts`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::{body_bytes, plain_get};
use crate::support::pki::TestCa;
use crate::support::start;

async fn setup(server: &str) -> (tempfile::TempDir, certfront::Running) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("admin root");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(dir.path(), "app");
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n{server}\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nrespond = {{ body = \"ok\" }}\n"
    );
    let running = start(&toml, dir.path()).await;
    (dir, running)
}

/// One raw GET on a new connection; the status line's code, or `None` when the
/// connection ends first or `limit` passes.
async fn status(admin: SocketAddr, host: &str, path: &str, limit: Duration) -> Option<u16> {
    late_status(admin, host, path, Duration::ZERO, limit).await
}

/// [`status`], with the request sent `late` after the connection is made (as over a
/// network, where it comes a round trip after the handshake).
async fn late_status(
    admin: SocketAddr,
    host: &str,
    path: &str,
    late: Duration,
    limit: Duration,
) -> Option<u16> {
    tokio::time::timeout(limit, async {
        let mut tcp = TcpStream::connect(admin).await.ok()?;
        tokio::time::sleep(late).await;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    })
    .await
    .ok()
    .flatten()
}

/// Holds a request that never finishes; when the listener closes it (to make room),
/// opens the next at once, as a hostile client does. Counts the connections it opened.
async fn hold(admin: SocketAddr, stop: Arc<AtomicBool>, opened: Arc<AtomicUsize>) {
    // Bounded: the listener closes one of these per new connection it takes.
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut tcp) = TcpStream::connect(admin).await else {
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        if tcp
            .write_all(b"GET /certs HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .is_err()
        {
            continue;
        }
        let mut buf = [0u8; 256];
        // Until the listener closes it (or the header timeout, 2 s, passes).
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    }
}

/// How late a probe's request comes after its connection.
const LATE: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_others_hold_every_connection_and_loop_on_certs() {
    let (_dir, running) = setup("").await;
    let admin = running.admin_addr.expect("admin");
    let stop = Arc::new(AtomicBool::new(false));
    // 100 connections, from the probes' own address, each holding a request that never
    // finishes and reconnecting as soon as it is closed: more than the listener's 64
    // (16 per address), so each new connection closes one, whose holder reconnects and
    // closes the next. A probe that took a place among them would be closed within
    // milliseconds.
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        tasks.push(tokio::spawn(hold(admin, stop.clone(), opened.clone())));
    }
    // Four clients asking for /certs and /metrics as fast as they can.
    let mut loops = Vec::new();
    for i in 0..4 {
        let stop = stop.clone();
        let path = if i % 2 == 0 { "/certs" } else { "/metrics" };
        loops.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                let _ = status(admin, "localhost", path, Duration::from_secs(5)).await;
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let churn_before = opened.load(Ordering::Relaxed);
    // Every probe answers, each within 1 s: the header timeout (2 s) that frees a place
    // the old way is out of reach; a generous bound, machines are noisy (the issue's
    // target is 100 ms: `certfront-loadtest admin-abuse` measures it). Each probe's
    // request comes 50 ms after its connection: long enough for the churn to close it
    // if it had taken a place.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let path = if i % 2 == 0 { "/healthz" } else { "/readyz" };
        let started = Instant::now();
        let code = late_status(admin, "localhost", path, LATE, Duration::from_secs(5)).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(code, Some(200), "{path} under abuse (probe {i})");
    }
    let churn = opened.load(Ordering::Relaxed) - churn_before;
    stop.store(true, Ordering::Relaxed);
    let mut asked = 0;
    for l in loops {
        asked += l.await.expect("loop");
    }
    for t in tasks {
        t.abort();
    }
    assert!(
        slowest < Duration::from_secs(1) + LATE,
        "slowest probe took {slowest:?}"
    );
    assert!(asked > 0);
    // The abuse was on while the probes ran: the listener was full and closing held
    // connections to make room, and their holders were reconnecting.
    assert!(churn >= 100, "only {churn} reconnections during the probes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_gets_421_and_admin_hosts_pass() {
    let (_dir, running) = setup("admin_hosts = [\"certfront-admin.example.org\"]").await;
    let admin = running.admin_addr.expect("admin");
    for host in [
        "localhost".to_owned(),
        admin.to_string(),
        "127.0.0.1".to_owned(),
        "certfront-admin.example.org:9443".to_owned(),
    ] {
        let resp = plain_get(admin, &host, "/metrics").await;
        assert_eq!(resp.status(), 200, "Host {host}");
    }
    for host in [
        "attacker.example",
        "attacker.example:9443",
        "127.0.0.2",
        "admin",
    ] {
        for path in ["/certs", "/metrics", "/healthz"] {
            let resp = plain_get(admin, host, path).await;
            assert_eq!(resp.status(), 421, "Host {host} {path}");
            let body = body_bytes(resp).await;
            assert!(
                !String::from_utf8_lossy(&body).contains("app.test"),
                "a rebinding page read the inventory"
            );
        }
    }
}
