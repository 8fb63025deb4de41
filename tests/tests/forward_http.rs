//! Forwarding to HTTP backends as IIS/WCF sites need it: Host checks (421), forwarded
//! headers, hop-by-hop removal, HTTP/2 clients, large bodies, WebSockets, HTTPS upstreams,
//! failover and the 502/503/504 answers.

use std::path::Path;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backend::{Backend, PatternBody, pattern};
use crate::support::client::{self, Sender, body_json, client_config, connect, get};
use crate::support::pki::TestCa;
use crate::support::start;

/// Writes certificates for `names` (one host each) and returns the dir and CA.
fn certs(names: &[&str]) -> (TempDir, TestCa) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("forward test root");
    for name in names {
        ca.leaf(&[name]).write(dir.path(), name);
    }
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    (dir, ca)
}

fn host(name: &str, extra: &str) -> String {
    format!(
        "[[host]]\nfqdn = \"{name}\"\ncert = \"{name}.pem\"\nkey = \"{name}-key.pem\"\n{extra}\n\n"
    )
}

fn head(limits: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[tls]\ntrust = [\"root.pem\"]\n\n[limits]\n{limits}\n\n"
    )
}

async fn sender(addr: std::net::SocketAddr, sni: &str, ca: &TestCa, h2: bool) -> Sender {
    let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
    let tls = connect(addr, sni, client_config(&[&ca.der], alpn))
        .await
        .expect("handshake");
    Sender::over(tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_sees_forwarded_headers_and_no_hop_by_hop_headers() {
    let (dir, ca) = certs(&["app.test", "portal.test"]);
    let backend = Backend::start("iis").await;
    let toml = head("")
        + &host("app.test", &format!("upstream = \"{}\"", backend.url()))
        + &host(
            "portal.test",
            &format!(
                "upstream = \"{}\"\nupstream_host = \"portal\"",
                backend.url()
            ),
        );
    let running = start(&toml, dir.path()).await;
    let addr = running.tls_addrs[0];

    let mut s = sender(addr, "app.test", &ca, false).await;
    let req = Request::builder()
        .method("POST")
        .uri("/Service.svc?wsdl=1")
        .header("host", "app.test:443")
        .header("connection", "keep-alive, X-Hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "forged.example")
        .header("x-client-cert", "forged")
        .header("x-client-cert-thumbprint", "forged")
        .header("soapaction", "\"http://tempuri.org/IService/GetPatient\"")
        .header("content-type", "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from_static(b"<s:Envelope/>")))
        .expect("request");
    let resp = s.send(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("keep-alive").is_none(),
        "hop-by-hop header from the backend reached the client"
    );
    let echo = body_json(resp).await;
    let h = &echo["headers"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/Service.svc?wsdl=1");
    assert_eq!(echo["body_len"], 13);
    assert_eq!(
        h["host"][0], "app.test:443",
        "original Host kept for IIS bindings"
    );
    // The peer is no trusted proxy: what it claims in X-Forwarded-For is replaced.
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-forwarded-host"][0], "app.test:443");
    assert_eq!(
        h["soapaction"][0],
        "\"http://tempuri.org/IService/GetPatient\""
    );
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "x-client-cert",
        "x-client-cert-thumbprint",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the backend: {h}");
    }

    // upstream_host replaces the Host sent upstream; X-Forwarded-Host keeps the client's.
    let mut s = sender(addr, "portal.test", &ca, false).await;
    let echo = body_json(
        s.send(get("portal.test", "/", false))
            .await
            .expect("response"),
    )
    .await;
    assert_eq!(echo["headers"]["host"][0], "portal");
    assert_eq!(echo["headers"]["x-forwarded-host"][0], "portal.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_of_another_site_is_misdirected_over_http1_and_http2() {
    let (dir, ca) = certs(&["app.test", "tablet.test"]);
    let backend = Backend::start("iis").await;
    let up = format!("upstream = \"{}\"", backend.url());
    let toml = head("") + &host("app.test", &up) + &host("tablet.test", &up);
    let running = start(&toml, dir.path()).await;
    let addr = running.tls_addrs[0];

    let mut h1 = sender(addr, "app.test", &ca, false).await;
    let resp = h1
        .send(get("tablet.test", "/", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    // Absolute-form target naming another host, with a matching Host header.
    let req = Request::builder()
        .uri("https://tablet.test/")
        .header("host", "app.test")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(
        h1.send(req).await.expect("response").status(),
        StatusCode::MISDIRECTED_REQUEST
    );
    // The same connection still serves its own host.
    assert_eq!(
        h1.send(get("APP.test", "/", false))
            .await
            .expect("response")
            .status(),
        200
    );

    let mut h2 = sender(addr, "app.test", &ca, true).await;
    let resp = h2
        .send(get("tablet.test", "/", true))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    let resp = h2
        .send(get("app.test", "/x", true))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let echo = body_json(resp).await;
    assert_eq!(
        echo["version"], "HTTP/1.1",
        "HTTP/2 clients are forwarded over HTTP/1.1"
    );
    assert_eq!(echo["headers"]["host"][0], "app.test");
    assert_eq!(
        backend.hits.load(Ordering::SeqCst),
        2,
        "misdirected requests never reach the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_up_and_down_arrive_intact() {
    const SIZE: u64 = 50 * 1024 * 1024;
    let (dir, ca) = certs(&["app.test"]);
    let backend = Backend::start("iis").await;
    let toml = head("") + &host("app.test", &format!("upstream = \"{}\"", backend.url()));
    let running = start(&toml, dir.path()).await;
    let addr = running.tls_addrs[0];

    for h2 in [false, true] {
        // Download: count and check every byte as it streams.
        let mut s = sender(addr, "app.test", &ca, h2).await;
        let resp = s
            .send(get("app.test", &format!("/big?bytes={SIZE}"), h2))
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut seen: u64 = 0;
        use http_body_util::BodyExt;
        while let Some(frame) = body.frame().await {
            let data = frame.expect("frame").into_data().unwrap_or_default();
            for (i, b) in data.iter().enumerate() {
                assert_eq!(
                    *b,
                    pattern(seen + i as u64),
                    "byte {} differs",
                    seen + i as u64
                );
            }
            seen += data.len() as u64;
        }
        assert_eq!(seen, SIZE, "h2={h2}");
    }

    // Upload: a streamed 50 MB body reaches the backend byte for byte.
    let tls = connect(addr, "app.test", client_config(&[&ca.der], &[b"http/1.1"]))
        .await
        .expect("tls");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = Request::builder()
        .method("POST")
        .uri("/upload")
        .header("host", "app.test")
        .header("content-length", SIZE.to_string())
        .body(PatternBody {
            sent: 0,
            total: SIZE,
        })
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let echo = body_json(resp).await;
    assert_eq!(echo["body_len"], SIZE);
    assert_eq!(echo["pattern_ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_then_bytes_both_ways() {
    let (dir, ca) = certs(&["app.test"]);
    let backend = Backend::start("signalr").await;
    let toml = head("") + &host("app.test", &format!("upstream = \"{}\"", backend.url()));
    let running = start(&toml, dir.path()).await;
    let mut tls = connect(
        running.tls_addrs[0],
        "app.test",
        client_config(&[&ca.der], &[b"http/1.1"]),
    )
    .await
    .expect("tls");
    tls.write_all(
        b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "response head too long");
        tls.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in [
        &b"hello over the tunnel"[..],
        &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
    ] {
        tls.write_all(message).await.expect("send");
        let mut back = vec![0u8; message.len()];
        tls.read_exact(&mut back).await.expect("echo");
        assert_eq!(back, message);
    }

    // Only websocket upgrades pass: h2c is not forwarded as an upgrade.
    let mut s = sender(running.tls_addrs[0], "app.test", &ca, false).await;
    let req = Request::builder()
        .uri("/echo")
        .header("host", "app.test")
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAAQAAP__")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = s.send(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let echo = body_json(resp).await;
    assert!(echo["headers"].get("upgrade").is_none(), "{echo}");
    assert!(echo["headers"].get("http2-settings").is_none(), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_against_upstream_ca() {
    let (dir, ca) = certs(&["app.test", "wrong.test"]);
    let backend_ca = TestCa::new("IIS private root");
    std::fs::write(dir.path().join("iis-root.pem"), &backend_ca.pem).expect("write");
    let iis_leaf = backend_ca.leaf(&["127.0.0.1"]);
    let backend = Backend::start_tls("iis-tls", &iis_leaf.cert_pem, &iis_leaf.key_pem).await;
    let up = format!("upstream = \"https://{}\"", backend.addr);
    let toml = head("")
        + &host("app.test", &format!("{up}\nupstream_ca = \"iis-root.pem\""))
        + &host("wrong.test", &format!("{up}\nupstream_ca = \"root.pem\""));
    let running = start(&toml, dir.path()).await;
    let addr = running.tls_addrs[0];

    let mut s = sender(addr, "app.test", &ca, false).await;
    let resp = s.send(get("app.test", "/", false)).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(resp).await["backend"], "iis-tls");

    let mut s = sender(addr, "wrong.test", &ca, false).await;
    let resp = s
        .send(get("wrong.test", "/", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let body = client::body_bytes(resp).await;
    assert!(
        !String::from_utf8_lossy(&body).contains("127.0.0.1"),
        "error body names an internal address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_skips_a_refusing_upstream() {
    let (dir, ca) = certs(&["app.test"]);
    let backend = Backend::start("second").await;
    let up = format!(
        "upstream = [\"http://127.0.0.1:{}\", \"{}\"]",
        crate::support::refused_port(),
        backend.url()
    );
    let toml = head("") + &host("app.test", &up);
    let running = start(&toml, dir.path()).await;
    for _ in 0..4 {
        // Fresh connections so that each request picks an upstream anew.
        let mut s = sender(running.tls_addrs[0], "app.test", &ca, false).await;
        let mut req = get("app.test", "/", false);
        req.headers_mut()
            .insert("connection", http::HeaderValue::from_static("close"));
        let resp = s.send(req).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(body_json(resp).await["backend"], "second");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_then_marked_down_then_slow_give_502_503_504() {
    let (dir, ca) = certs(&["down.test", "slow.test"]);
    let backend = Backend::start("slow").await;
    let toml = head("upstream_response_timeout_seconds = 1")
        + &host(
            "down.test",
            &format!(
                "upstream = \"http://127.0.0.1:{}\"",
                crate::support::refused_port()
            ),
        )
        + &host("slow.test", &format!("upstream = \"{}\"", backend.url()));
    let running = start(&toml, dir.path()).await;
    let addr = running.tls_addrs[0];

    let mut s = sender(addr, "down.test", &ca, false).await;
    let resp = s
        .send(get("down.test", "/", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let resp = s
        .send(get("down.test", "/", false))
        .await
        .expect("response");
    assert_eq!(
        resp.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the only upstream is marked down"
    );

    let mut s = sender(addr, "slow.test", &ca, false).await;
    let resp = s
        .send(get("slow.test", "/slow?ms=3000", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let resp = s
        .send(get("slow.test", "/slow?ms=10", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200, "the connection survives a 504");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respond_hosts_and_the_redirect_listener() {
    let (dir, ca) = certs(&["app.test"]);
    let toml = head("").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\"]\nhttp_redirect = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"",
    ) + &host(
        "app.test",
        "respond = { status = 503, body = \"down for maintenance\\n\" }",
    );
    let running = start(&toml, Path::new(dir.path())).await;
    let (status, body) = client::fetch(
        running.tls_addrs[0],
        "app.test",
        client_config(&[&ca.der], &[b"h2"]),
        get("app.test", "/", true),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(&body[..], b"down for maintenance\n");

    let redirect = running.redirect_addr.expect("redirect listener");
    let resp = client::plain_get(redirect, "app.test", "/Mobile/Login.aspx?x=1").await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    let port = running.tls_addrs[0].port();
    assert_eq!(
        resp.headers()["location"],
        format!("https://app.test:{port}/Mobile/Login.aspx?x=1").as_str()
    );
    let resp = client::plain_get(redirect, "evil.example", "/").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let admin = running.admin_addr.expect("admin");
    assert_eq!(
        client::plain_get(admin, "localhost", "/healthz")
            .await
            .status(),
        200
    );
    assert_eq!(
        client::plain_get(admin, "localhost", "/readyz")
            .await
            .status(),
        200
    );
}

/// RFC 9113 8.2.3: an HTTP/2 client may split `cookie` into several fields (browsers do,
/// for HPACK); the HTTP/1.1 upstream must see one `Cookie` line joined with "; ".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookie_fields_reach_an_http1_upstream_as_one_line() {
    let (dir, ca) = certs(&["app.test"]);
    let backend = Backend::start("iis").await;
    let toml = head("") + &host("app.test", &format!("upstream = \"{}\"", backend.url()));
    let running = start(&toml, dir.path()).await;
    let tls = connect(
        running.tls_addrs[0],
        "app.test",
        client_config(&[&ca.der], &[b"h2"]),
    )
    .await
    .expect("handshake");
    // The raw h2 client sends each field as written, as a browser does.
    let (send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut send = send.ready().await.expect("ready");
    let req = Request::builder()
        .uri("https://app.test/cookies")
        .header("cookie", "session=abc")
        .header("cookie", "theme=dark")
        .header("cookie", "lang=nl; tz=cet")
        .body(())
        .expect("request");
    let (resp, _) = send.send_request(req, true).expect("send");
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), resp)
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let echo: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(
        echo["headers"]["cookie"],
        serde_json::json!(["session=abc; theme=dark; lang=nl; tz=cet"]),
        "{echo}"
    );
}
