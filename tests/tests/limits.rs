//! Every route to holding a connection or memory has a limit: WebSocket tunnels count as
//! connections and end on idle, drain and deny; idle HTTP/2 clients that answer PINGs are
//! closed; one address cannot take every slot; a stalled body ends; HTTP/2 floods (rapid
//! reset, CONTINUATION) end the connection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{client_config, client_config_with_cert, connect};
use crate::support::h2raw::{self, GET_HEADERS, POST_EMPTY_HEADERS, frame, goaway, opening};
use crate::support::pki::{TestCa, thumbprint};
use crate::support::start;

struct Setup {
    _dir: tempfile::TempDir,
    ca: TestCa,
    clients: TestCa,
    backend: Backend,
    running: certfront::Running,
}

/// One host `app.test` forwarding to a backend, with `limits`, and `extra` host keys.
async fn setup(server: &str, limits: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("limits root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    let clients = TestCa::new("limits clients");
    std::fs::write(d.join("clients.pem"), &clients.pem).expect("clients");
    std::fs::write(d.join("deny.txt"), "").expect("deny");
    let backend = Backend::start("iis").await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{server}\n[tls]\ntrust = [\"root.pem\"]\n[limits]\n{limits}\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nupstream = \"{}\"\n{extra}\n",
        backend.url()
    );
    let running = start(&toml, d).await;
    Setup {
        _dir: dir,
        ca,
        clients,
        backend,
        running,
    }
}

/// Opens a WebSocket tunnel through certfront to the backend's echo.
async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) -> S {
    io.write_all(
        b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("upgrade request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "response head too long");
        io.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    echo(&mut io, b"ping").await;
    io
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, msg: &[u8]) {
    io.write_all(msg).await.expect("send");
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(back, msg);
}

/// Whether the peer closes within `limit` (EOF or error).
async fn closes<S: AsyncRead + Unpin>(io: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_hold_their_connection_slot_and_count() {
    let s = setup("", "max_connections = 2", "").await;
    let addr = s.running.tls_addrs[0];
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let first = tunnel(connect(addr, "app.test", cfg.clone()).await.expect("tls")).await;
    let mut second = tunnel(connect(addr, "app.test", cfg.clone()).await.expect("tls")).await;
    let open = s
        .running
        .app
        .metrics
        .connections_open
        .with_label_values(&["127.0.0.1:0"]);
    assert_eq!(open.get(), 2, "tunnels are open connections");
    let third = tokio::spawn(connect(addr, "app.test", cfg));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !third.is_finished(),
        "a third connection got past two tunnels"
    );
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a tunnel closed")
        .expect("join");
    assert!(third.is_ok());
    echo(&mut second, b"still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_not() {
    let s = setup("", "tunnel_idle_timeout_seconds = 1", "").await;
    let addr = s.running.tls_addrs[0];
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let mut busy = tunnel(connect(addr, "app.test", cfg.clone()).await.expect("tls")).await;
    let mut idle = tunnel(connect(addr, "app.test", cfg).await.expect("tls")).await;
    for i in 0..8u8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        echo(&mut busy, &[b'a' + i]).await;
    }
    assert!(
        closes(&mut idle, Duration::from_secs(5)).await,
        "idle tunnel still open"
    );
    echo(&mut busy, b"busy tunnel lives").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_tunnels_after_drain_seconds() {
    let s = setup("drain_seconds = 1", "", "").await;
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let mut t = tunnel(
        connect(s.running.tls_addrs[0], "app.test", cfg)
            .await
            .expect("tls"),
    )
    .await;
    let drained = tokio::spawn(s.running.drain(Duration::from_secs(10)));
    assert!(
        closes(&mut t, Duration::from_secs(8)).await,
        "tunnel outlived the drain"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .expect("drain returns")
            .expect("join"),
        "drain finished with everything closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_closes_when_its_client_certificate_is_denied() {
    let s = setup(
        "",
        "",
        "[host.client_auth]\nca = \"clients.pem\"\ndeny = \"deny.txt\"",
    )
    .await;
    let alice = s.clients.client("alice");
    let cfg = client_config_with_cert(&[&s.ca.der], &[b"http/1.1"], &alice);
    let mut t = tunnel(
        connect(s.running.tls_addrs[0], "app.test", cfg)
            .await
            .expect("mtls"),
    )
    .await;
    std::fs::write(
        s._dir.path().join("deny.txt"),
        thumbprint(&alice.der) + "\n",
    )
    .expect("deny");
    s.running.reload_all();
    assert!(
        closes(&mut t, Duration::from_secs(8)).await,
        "denied tunnel still open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_client_that_answers_pings_is_closed() {
    let s = setup("", "idle_timeout_seconds = 1", "").await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2");
    let conn = tokio::spawn(conn);
    // A request longer than the idle timeout is not cut: only no request in flight is idle.
    let req = crate::support::client::get("app.test", "/slow?ms=2500", true);
    let resp = send.send_request(req).await.expect("slow response");
    assert_eq!(resp.status(), 200);
    // hyper's client answers every PING; the server still closes it.
    let ended = tokio::time::timeout(Duration::from_secs(6), conn).await;
    assert!(ended.is_ok(), "idle HTTP/2 connection still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_are_closed_and_redirect_clients_take_no_tls_slot() {
    let s = setup(
        "http_redirect = \"127.0.0.1:0\"",
        "max_connections = 1\nmax_connection_age_seconds = 1",
        "",
    )
    .await;
    // Idle plain-HTTP clients on the redirect listener: the one TLS slot stays free.
    let redirect = s.running.redirect_addr.expect("redirect");
    let _idle_plain: Vec<_> = hold_open(redirect, 3).await;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        connect(
            s.running.tls_addrs[0],
            "app.test",
            client_config(&[&s.ca.der], &[b"http/1.1"]),
        ),
    )
    .await
    .expect("a TLS client waited behind idle redirect clients")
    .expect("tls");
    let mut sender = crate::support::client::Sender::over(tls).await;
    let resp = sender
        .send(crate::support::client::get("app.test", "/", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    // Past max_connection_age the keep-alive connection is closed.
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if sender
            .send(crate::support::client::get("app.test", "/", false))
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a connection outlived max_connection_age_seconds");
}

/// `n` plain TCP connections to `addr`, held open and silent.
async fn hold_open(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot() {
    let s = setup("", "max_connections_per_ip = 2", "").await;
    let addr = s.running.tls_addrs[0];
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let first = connect(addr, "app.test", cfg.clone()).await.expect("first");
    let _second = connect(addr, "app.test", cfg.clone())
        .await
        .expect("second");
    let third = tokio::time::timeout(
        Duration::from_secs(5),
        connect(addr, "app.test", cfg.clone()),
    )
    .await
    .expect("refused at once, not queued");
    assert!(
        third.is_err(),
        "a third connection from one address was served"
    );
    drop(first);
    // The slot comes back when the connection goes.
    let mut ok = false;
    for _ in 0..50 {
        if connect(addr, "app.test", cfg.clone()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the address never got its slot back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_is_ended() {
    let s = setup("", "body_timeout_seconds = 1", "").await;
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let mut tls = connect(s.running.tls_addrs[0], "app.test", cfg)
        .await
        .expect("tls");
    tls.write_all(
        b"POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await
    .expect("write");
    let mut reply = Vec::new();
    let done = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut reply)).await;
    assert!(
        done.is_ok(),
        "a stalled upload held its request past body_timeout"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 5"),
        "{reply}"
    );
    assert!(s.backend.hits.load(Ordering::SeqCst) <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_ends_the_connection() {
    let s = setup("", "", "").await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let mut burst = opening();
    for i in 0..2000u32 {
        let stream = 2 * i + 1;
        burst.extend(frame(1, 0x4 | 0x1, stream, GET_HEADERS));
        burst.extend(frame(3, 0, stream, &8u32.to_be_bytes()));
    }
    let (mut read, mut write) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&burst).await;
        write
    });
    let code = tokio::time::timeout(Duration::from_secs(15), goaway(&mut read))
        .await
        .expect("the server answered the flood in time");
    // ENHANCE_YOUR_CALM (0xb), or the connection simply closed.
    assert!(matches!(code, None | Some(0xb)), "GOAWAY code {code:?}");
    writer.abort();
    assert!(
        s.backend.hits.load(Ordering::SeqCst) < 2000,
        "every reset stream was forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_continuation_flood_ends_the_connection() {
    let s = setup("", "max_header_bytes = 8192", "").await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let (mut read, mut write) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        let mut start = opening();
        start.extend(frame(1, 0, 1, GET_HEADERS));
        write.write_all(&start).await?;
        // Whole literal header fields (without indexing, `x: aaa…`), ~16 KB a frame, never
        // END_HEADERS: a valid block that only grows.
        let field: Vec<u8> = [0x00, 1, b'x', 100]
            .into_iter()
            .chain(std::iter::repeat_n(b'a', 100))
            .collect();
        let block = field.repeat(150);
        let cont = frame(9, 0, 1, &block);
        let mut sent = 0usize;
        for _ in 0..1000 {
            write.write_all(&cont).await?;
            sent += cont.len();
        }
        Ok::<usize, std::io::Error>(sent)
    });
    let code = tokio::time::timeout(Duration::from_secs(20), goaway(&mut read))
        .await
        .expect("the server ended the flood in time");
    // ENHANCE_YOUR_CALM (0xb), or the connection simply closed.
    assert!(matches!(code, None | Some(0xb)), "GOAWAY code {code:?}");
    let sent = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("writer stopped")
        .expect("join");
    if let Ok(sent) = sent {
        panic!("the server read all {sent} bytes of an endless header block");
    }
}

/// MadeYouReset (CVE-2025-8671): valid requests, each followed by a frame that is an
/// error on its stream (DATA beyond the `content-length: 0` it announced), so that the
/// server resets them. After 32
/// such resets the connection gets GOAWAY ENHANCE_YOUR_CALM: the limit that keeps a good
/// client's latency within 2x while such connections run (`certfront-loadtest
/// made-you-reset`, docs/configuration.md "HTTP/2 protections").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_made_you_reset_ends_the_connection_after_32_resets() {
    let s = setup("", "", "").await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let burst = opening();
    // In rounds of 10, within the 100 concurrent streams, so that only the resets count.
    let (mut read, mut write) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&burst).await;
        for round in 0..100u32 {
            let mut batch = Vec::new();
            for i in 0..10 {
                let stream = 2 * (round * 10 + i) + 1;
                // END_HEADERS only: the request is taken, then made an error.
                batch.extend(frame(1, 0x4, stream, POST_EMPTY_HEADERS));
                batch.extend(frame(0, 0, stream, b"x"));
            }
            if write.write_all(&batch).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        write
    });
    // Count the server's RST_STREAMs until its GOAWAY.
    let mut resets = 0u32;
    let code = tokio::time::timeout(Duration::from_secs(15), async {
        let mut head = [0u8; 9];
        loop {
            read.read_exact(&mut head).await.ok()?;
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            read.read_exact(&mut payload).await.ok()?;
            match head[3] {
                3 => resets += 1,
                7 if payload.len() >= 8 => {
                    return Some(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]));
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the server answered in time");
    writer.abort();
    assert_eq!(
        code,
        Some(0xb),
        "GOAWAY ENHANCE_YOUR_CALM expected ({resets} resets)"
    );
    assert!(
        (1..=40).contains(&resets),
        "{resets} streams reset before the connection was closed (limit 32)"
    );
}
