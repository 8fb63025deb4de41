//! Limits that protect the proxy from clients: header size, slow headers, connection count.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{client_config, connect};
use crate::support::pki::TestCa;
use crate::support::start;

async fn setup(limits: &str) -> (tempfile::TempDir, TestCa, certfront::Running) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("limits root");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(dir.path(), "app");
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n[limits]\n{limits}\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nrespond = {{ body = \"ok\" }}\n"
    );
    let running = start(&toml, dir.path()).await;
    (dir, ca, running)
}

/// Reads until the peer closes (or `limit` passes); returns what arrived.
async fn read_to_close<R: AsyncReadExt + Unpin>(r: &mut R, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|_| out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let (_dir, ca, running) = setup("max_header_bytes = 8192").await;
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let mut tls = connect(running.tls_addrs[0], "app.test", cfg)
        .await
        .expect("tls");
    let big = "a".repeat(20_000);
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let reply = read_to_close(&mut tls, Duration::from_secs(10))
        .await
        .expect("closed");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let (_dir, ca, running) = setup("header_read_timeout_seconds = 1").await;
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let mut tls = connect(running.tls_addrs[0], "app.test", cfg)
        .await
        .expect("tls");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: app")
        .await
        .expect("write");
    // The header never completes; the proxy closes the connection (bounded wait).
    assert!(
        read_to_close(&mut tls, Duration::from_secs(10))
            .await
            .is_some(),
        "still open"
    );
}

/// An HTTP/1.1 connection holds no HTTP state until its client sends something (idle
/// memory); the header deadline still runs from the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_header_deadline() {
    let (_dir, ca, running) = setup("header_read_timeout_seconds = 1").await;
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let mut tls = connect(running.tls_addrs[0], "app.test", cfg)
        .await
        .expect("tls");
    let reply = read_to_close(&mut tls, Duration::from_secs(10)).await;
    assert_eq!(
        reply.as_deref(),
        Some(&b""[..]),
        "a connection that never sent a byte was not closed (or was answered)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_a_silent_pause_is_served() {
    let (_dir, ca, running) = setup("header_read_timeout_seconds = 5").await;
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let mut tls = connect(running.tls_addrs[0], "app.test", cfg)
        .await
        .expect("tls");
    for round in 0..2 {
        // Silent first (the connection waits without HTTP state), then a request; the
        // second round is a keep-alive pause between requests.
        tokio::time::sleep(Duration::from_millis(300)).await;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let done = tokio::time::timeout(Duration::from_secs(10), async {
            while !got.ends_with(b"ok") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await;
        let reply = String::from_utf8_lossy(&got);
        assert_eq!(done, Ok(true), "round {round}: no answer: {reply}");
        assert!(reply.starts_with("HTTP/1.1 200"), "round {round}: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_wait_for_a_free_slot() {
    let (_dir, ca, running) = setup("max_connections = 2").await;
    let addr = running.tls_addrs[0];
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let first = connect(addr, "app.test", cfg.clone()).await.expect("first");
    let _second = connect(addr, "app.test", cfg.clone())
        .await
        .expect("second");
    // The third waits in the listen backlog: no handshake while both slots are taken.
    let third = tokio::spawn(connect(addr, "app.test", cfg));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond max_connections"
    );
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("served once a slot is free")
        .expect("join");
    assert!(third.is_ok());
}

/// A request body with a broken chunk size line is the client's fault: 400, not 502, and
/// nothing is counted against the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_gets_400() {
    let crate::support::OneHost {
        running,
        backend: _backend,
        ca,
        dir: _dir,
    } = crate::support::OneHost::start("chunked root", "").await;
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let mut tls = connect(running.tls_addrs[0], "app.test", cfg)
        .await
        .expect("tls");
    tls.write_all(
        b"POST /upload HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\nzz-not-a-size\r\nworld\r\n0\r\n\r\n",
    )
    .await
    .expect("write");
    let reply = read_to_close(&mut tls, Duration::from_secs(10))
        .await
        .expect("closed");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let metrics = String::from_utf8(running.app.metrics.render()).expect("utf-8");
    assert!(
        !metrics.contains("certfront_upstream_errors_total{host=\"app.test\""),
        "the client's broken body was counted as an upstream error:\n{metrics}"
    );
}

/// Stalled TLS handshakes from 50 addresses, each under `max_connections_per_ip`,
/// together more than `max_connections`: only a quarter of the house may be in its
/// handshake, the oldest unfinished one is dropped for a new one, and a good client
/// always gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_from_many_addresses_do_not_keep_a_client_out() {
    let (_dir, ca, running) =
        setup("max_connections = 100\nmax_connections_per_ip = 4\nhandshake_timeout_seconds = 120")
            .await;
    let addr = running.tls_addrs[0];
    // 50 addresses x 4 connections, each sending the start of a TLS record and no more.
    let mut stalled = Vec::new();
    for n in 2..52u8 {
        for _ in 0..4 {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind((std::net::Ipv4Addr::new(127, 0, 0, n), 0).into())
                .expect("bind 127.0.0.n");
            let Ok(Ok(mut tcp)) =
                tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await
            else {
                continue;
            };
            let _ = tcp.write_all(&[0x16, 0x03, 0x01]).await;
            stalled.push(tcp);
        }
    }
    assert!(
        stalled.len() > 100,
        "only {} stalled connections",
        stalled.len()
    );
    // The good client, from an address of its own: 12 tries, each must get an answer.
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let mut served = 0;
    for _ in 0..12 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind((std::net::Ipv4Addr::new(127, 0, 0, 200), 0).into())
            .expect("bind");
        let attempt = async {
            let tcp = socket.connect(addr).await.ok()?;
            let name = rustls_pki_types::ServerName::try_from("app.test").expect("name");
            let mut tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .ok()?;
            tls.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut reply = Vec::new();
            tls.read_to_end(&mut reply).await.ok()?;
            reply.starts_with(b"HTTP/1.1 200").then_some(())
        };
        if tokio::time::timeout(Duration::from_secs(10), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            served += 1;
        }
    }
    eprintln!(
        "stalled handshakes: {} stalled connections from 50 addresses; good client served {served} of 12",
        stalled.len()
    );
    assert_eq!(served, 12, "the good client was kept out");
    drop(stalled);
}

/// A header block that cannot be HPACK-decoded (an index past the static table, with an
/// empty dynamic table) ends the connection with COMPRESSION_ERROR (RFC 9113 4.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_header_block_is_a_compression_error() {
    use crate::support::h2raw::{frame, goaway, opening};

    let (_dir, ca, running) = setup("").await;
    let tls = connect(
        running.tls_addrs[0],
        "app.test",
        client_config(&[&ca.der], &[b"h2"]),
    )
    .await
    .expect("tls");
    let (mut read, mut write) = tokio::io::split(tls);
    let mut bytes = opening();
    // :method GET, then "indexed field 70": the static table has 61 entries.
    bytes.extend(frame(1, 0x4 | 0x1, 1, &[0x82, 0x80 | 70]));
    write.write_all(&bytes).await.expect("write");
    let code = tokio::time::timeout(Duration::from_secs(10), goaway(&mut read))
        .await
        .expect("the server answered in time");
    assert_eq!(code, Some(0x9), "GOAWAY code (COMPRESSION_ERROR is 0x9)");
}
