//! The request path as an attacker probes it: Host routing that cannot reach another
//! host's backend, identity headers that cannot be forged, methods and framing, one pool
//! per upstream whatever the Host says, and the scheme an HTTP/2 upstream is told.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{
    Sender, body_json, client_config, client_config_with_cert, connect, get, open, plain_get,
};
use crate::support::pki::TestCa;
use crate::support::start;

fn site(fqdn: &str, stem: &str, extra: &str) -> String {
    format!(
        "[[host]]\nfqdn = \"{fqdn}\"\ncert = \"{stem}.pem\"\nkey = \"{stem}-key.pem\"\n{extra}\n\n"
    )
}

const HEAD: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nhttp_redirect = \"127.0.0.1:0\"\n\
                    [tls]\ntrust = [\"root.pem\"]\n\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_connection_cannot_reach_an_exact_host_behind_client_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("wild root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["*.wild.test"]).write(d, "wild");
    ca.leaf(&["admin.wild.test"]).write(d, "admin");
    let clients = TestCa::new("admin clients");
    std::fs::write(d.join("clients.pem"), &clients.pem).expect("clients");
    let wild_backend = Backend::start("wild").await;
    let admin_backend = Backend::start("admin").await;
    let toml = HEAD.to_owned()
        + &site(
            "*.wild.test",
            "wild",
            &format!("upstream = \"{}\"", wild_backend.url()),
        )
        + &site(
            "admin.wild.test",
            "admin",
            &format!(
                "upstream = \"{}\"\n[host.client_auth]\nca = \"clients.pem\"",
                admin_backend.url()
            ),
        );
    let running = start(&toml, d).await;
    let addr = running.tls_addrs[0];

    for h2 in [false, true] {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let mut s = open(addr, "x.wild.test", &ca.der, alpn).await;
        for name in ["admin.wild.test", "ADMIN.wild.test.", "admin.wild.test:443"] {
            let resp = s.send(get(name, "/", h2)).await.expect("response");
            assert_eq!(
                resp.status(),
                StatusCode::MISDIRECTED_REQUEST,
                "{name} (h2: {h2})"
            );
        }
        // Its own names still work on the same connection.
        let resp = s.send(get("y.wild.test", "/", h2)).await.expect("response");
        assert_eq!(resp.status(), 200);
        assert_eq!(body_json(resp).await["backend"], "wild");
    }
    assert_eq!(admin_backend.hits.load(Ordering::SeqCst), 0);

    // The exact host still serves a client that shows its certificate.
    let alice = clients.client("alice");
    let cfg = client_config_with_cert(&[&ca.der], &[b"http/1.1"], &alice);
    let mut s = Sender::over(connect(addr, "admin.wild.test", cfg).await.expect("mtls")).await;
    let resp = s
        .send(get("admin.wild.test", "/", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(admin_backend.hits.load(Ordering::SeqCst), 1);

    // The redirect listener routes the same way and never echoes a malformed Host.
    let redirect = running.redirect_addr.expect("redirect");
    let port = addr.port();
    let resp = plain_get(redirect, "ADMIN.wild.test.", "/x").await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("https://admin.wild.test:{port}/x").as_str()
    );
    for bad in ["evil.example/", "a.wild.test@evil.example", "a..wild.test"] {
        let resp = plain_get(redirect, bad, "/").await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{bad}");
        assert!(resp.headers().get("location").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identity_headers_never_reach_the_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("headers root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    ca.leaf(&["proxied.test"]).write(d, "proxied");
    let backend = Backend::start("iis").await;
    let up = format!("upstream = \"{}\"", backend.url());
    let toml = HEAD.to_owned() + &site("app.test", "app", &up);
    let running = start(&toml, d).await;

    let mut s = open(running.tls_addrs[0], "app.test", &ca.der, &[b"http/1.1"]).await;
    let forged = [
        "forwarded",
        "x-real-ip",
        "x-arr-clientcert",
        "x-client-cert",
        "x-client-cert-thumbprint",
        "x_client_cert",
        "X_Client_Cert_Thumbprint",
        "x-client_cert",
        "x_forwarded_for",
        "true-client-ip",
    ];
    let mut req = Request::builder()
        .uri("/")
        .header("host", "app.test")
        .header("x-forwarded-for", "203.0.113.9")
        .header("soapaction", "\"urn:GetPatient\"");
    for name in forged {
        req = req.header(name, "for=203.0.113.9; MIIB-forged");
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    let resp = s.send(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let echo = body_json(resp).await;
    let h = &echo["headers"];
    for name in forged {
        assert!(
            h.get(name.to_ascii_lowercase()).is_none(),
            "{name} reached the backend: {h}"
        );
    }
    assert_eq!(
        h["x-forwarded-for"][0], "127.0.0.1",
        "untrusted peer: replaced"
    );
    assert_eq!(h["soapaction"][0], "\"urn:GetPatient\"");
    drop(running);

    // From a trusted proxy, X-Forwarded-For is appended to.
    let toml = HEAD.replace(
        "[tls]",
        "trusted_proxies = [\"127.0.0.0/8\", \"::1\"]\n[tls]",
    ) + &site("proxied.test", "proxied", &up);
    let running = start(&toml, d).await;
    let mut s = open(
        running.tls_addrs[0],
        "proxied.test",
        &ca.der,
        &[b"http/1.1"],
    )
    .await;
    let req = Request::builder()
        .uri("/")
        .header("host", "proxied.test")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let echo = body_json(s.send(req).await.expect("response")).await;
    assert_eq!(
        echo["headers"]["x-forwarded-for"][0],
        "203.0.113.9, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_trace_are_refused_and_framing_is_cleaned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("methods root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    ca.leaf(&["raw.test"]).write(d, "raw");
    let backend = Backend::start("iis").await;
    // An upstream that answers with both Transfer-Encoding and Content-Length.
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let raw_addr = raw.local_addr().expect("addr");
    let raw_task = tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut tcp, _)) = raw.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
                      5\r\nhello\r\n0\r\n\r\n",
                )
                .await;
        }
    });
    let toml = HEAD.to_owned()
        + &site(
            "app.test",
            "app",
            &format!("upstream = \"{}\"", backend.url()),
        )
        + &site(
            "raw.test",
            "raw",
            &format!("upstream = \"http://{raw_addr}\""),
        );
    let running = start(&toml, d).await;
    let addr = running.tls_addrs[0];

    let mut tls = connect(addr, "app.test", client_config(&[&ca.der], &[b"http/1.1"]))
        .await
        .expect("tls");
    tls.write_all(b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).await.expect("read");
    assert_eq!(&head, b"HTTP/1.1 405");

    for h2 in [false, true] {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let mut s = open(addr, "app.test", &ca.der, alpn).await;
        let mut req = get("app.test", "/", h2);
        *req.method_mut() = http::Method::TRACE;
        let resp = s.send(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "h2: {h2}");
        assert!(resp.headers().contains_key("allow"));
    }
    assert_eq!(backend.hits.load(Ordering::SeqCst), 0);

    let mut s = open(addr, "raw.test", &ca.der, &[b"http/1.1"]).await;
    let resp = s.send(get("raw.test", "/", false)).await.expect("response");
    assert!(
        resp.headers().get("content-length").is_none(),
        "Content-Length beside Transfer-Encoding was passed on: {:?}",
        resp.headers()
    );
    raw_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_variants_share_one_upstream_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("pool root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    let backend = Backend::start("iis").await;
    let toml = HEAD.to_owned()
        + &site(
            "app.test",
            "app",
            &format!("upstream = \"{}\"", backend.url()),
        );
    let running = start(&toml, d).await;
    let mut s = open(running.tls_addrs[0], "app.test", &ca.der, &[b"http/1.1"]).await;
    let variants = [
        "app.test",
        "APP.test",
        "app.test.",
        "app.test:1",
        "app.test:2",
        "App.Test:65535",
    ];
    for _ in 0..3 {
        for host in variants {
            let resp = s.send(get(host, "/", false)).await.expect("response");
            assert_eq!(resp.status(), 200, "{host}");
            body_json(resp).await;
        }
    }
    assert_eq!(backend.hits.load(Ordering::SeqCst), 3 * variants.len());
    assert_eq!(
        backend.conns.load(Ordering::SeqCst),
        1,
        "the client's Host must not key the upstream pool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_http2_upstream_is_told_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("h2 upstream root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    let iis = ca.leaf(&["localhost"]);
    let backend = Backend::start_tls_h2("iis10", &iis.cert_pem, &iis.key_pem).await;
    let toml = HEAD.to_owned()
        + &site(
            "app.test",
            "app",
            &format!(
                "upstream = \"https://localhost:{}\"\nupstream_ca = \"root.pem\"",
                backend.addr.port()
            ),
        );
    let running = start(&toml, d).await;
    for h2 in [false, true] {
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let mut s = open(running.tls_addrs[0], "app.test", &ca.der, alpn).await;
        for _ in 0..3 {
            let resp = s
                .send(get("app.test", "/p?q=1", h2))
                .await
                .expect("response");
            assert_eq!(resp.status(), 200);
            let echo = body_json(resp).await;
            assert_eq!(echo["version"], "HTTP/2.0");
            assert_eq!(echo["uri"], "https://app.test/p?q=1", "h2 client: {h2}");
            assert!(echo["headers"].get("host").is_none(), "{echo}");
        }
        if !h2 {
            assert_eq!(
                backend.conns.load(Ordering::SeqCst),
                1,
                "three requests, one shared h2 connection"
            );
        }
    }
    // Each worker thread keeps its own h2 connection: the second client connection may
    // land on the other worker (while the first one is still closing), never on a third.
    assert!(
        backend.conns.load(Ordering::SeqCst) <= 2,
        "one shared h2 connection per worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_back_from_failure_is_found_during_its_cool_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("recovery root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    let port = crate::support::refused_port();
    let toml = HEAD.to_owned()
        + &site(
            "app.test",
            "app",
            &format!("upstream = \"http://127.0.0.1:{port}\""),
        );
    let running = start(&toml, d).await;
    let mut s = open(running.tls_addrs[0], "app.test", &ca.der, &[b"http/1.1"]).await;
    let resp = s.send(get("app.test", "/", false)).await.expect("response");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    // The only upstream is now cooling down for 10 s; it comes back at once.
    let backend = Backend::start_on("back", format!("127.0.0.1:{port}").parse().unwrap()).await;
    let resp = s.send(get("app.test", "/", false)).await.expect("response");
    assert_eq!(resp.status(), 200, "a recovered upstream was not tried");
    assert_eq!(body_json(resp).await["backend"], "back");
    assert_eq!(backend.hits.load(Ordering::SeqCst), 1);
}
