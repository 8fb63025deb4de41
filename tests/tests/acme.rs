//! ACME against a real ACME server (pebble on loopback): issuance over tls-alpn-01 and
//! http-01, a restart that reuses the stored certificate, a renewal under a request loop,
//! a refused order, and an issued certificate that breaks the policy and is kept out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use http::StatusCode;
use rustls_pki_types::CertificateDer;
use tempfile::TempDir;

use crate::support::pebble::{Options, Pebble, write_pem};
use crate::support::pki::{TestCa, thumbprint, write_secret};
use crate::support::{client, eventually, start};

const APP: &str = "app.certfront.test";
const PORTAL: &str = "portal.certfront.test";

struct Setup {
    dir: TempDir,
    pebble: Pebble,
    root: CertificateDer<'static>,
}

async fn setup(options: Options) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let pebble = Pebble::start(dir.path(), options);
    let root = pebble.root().await;
    write_pem(&dir.path().join("pebble-root.pem"), &root);
    Setup { dir, pebble, root }
}

/// A config for `hosts` (each `acme = true`, answering its name), on pebble's validation
/// ports. `trust` lists the trust anchors (files in the test directory).
fn config(s: &Setup, challenge: &str, hosts: &[&str], trust: &[&str]) -> String {
    let trust: Vec<String> = trust.iter().map(|t| format!("{t:?}")).collect();
    let mut text = format!(
        "[server]\nlisten = [\"127.0.0.1:{}\"]\nhttp_redirect = \"127.0.0.1:{}\"\n\
         admin = \"127.0.0.1:0\"\nstate_dir = \"state\"\n\n\
         [tls]\ntrust = [{}]\n\n\
         [acme]\ndirectory = \"{}\"\nemail = \"pki@certfront.test\"\nca = \"pebble-https-ca.pem\"\n\
         challenge = \"{challenge}\"\n",
        s.pebble.tls_port,
        s.pebble.http_port,
        trust.join(", "),
        s.pebble.directory,
    );
    for host in hosts {
        text.push_str(&format!(
            "\n[[host]]\nfqdn = \"{host}\"\nacme = true\nrespond = {{ status = 200, body = \"hello from {host}\" }}\n"
        ));
    }
    text
}

fn host_dir(dir: &Path, host: &str) -> PathBuf {
    dir.join("state/acme").join(host)
}

/// The leaf served for `sni`, or the handshake error.
async fn served(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
) -> Result<CertificateDer<'static>, String> {
    let config = client::client_config(&[root], &[b"http/1.1"]);
    client::connect(addr, sni, config)
        .await
        .map(|tls| client::peer_leaf(&tls))
        .map_err(|e| e.to_string())
}

/// Waits (at most 30 s) until `sni` is served a certificate that `root` verifies.
async fn wait_served(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
    dir: &Path,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(leaf) = served(addr, sni, root).await {
            return leaf;
        }
        if Instant::now() > deadline {
            panic!(
                "{sni} was not served an ACME certificate within 30 s; pebble said:\n{}",
                Pebble::log(dir)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_text(admin: SocketAddr, path: &str) -> (StatusCode, String) {
    let resp = client::admin_get(admin, path).await;
    let status = resp.status();
    (
        status,
        String::from_utf8_lossy(&client::body_bytes(resp).await).into_owned(),
    )
}

/// The value of one metric series, given its name and labels as written by the exporter.
async fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let (_, text) = admin_text(admin, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn certs_json(admin: SocketAddr) -> serde_json::Value {
    let resp = client::admin_get(admin, "/certs").await;
    client::body_json(resp).await
}

fn host_entry<'a>(certs: &'a serde_json::Value, host: &str) -> &'a serde_json::Value {
    certs["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["host"] == host)
        .expect("host in /certs")
}

fn issuer_of(der: &CertificateDer<'_>) -> String {
    certfront_certs::inspect(der).expect("inspect").issuer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_issues_at_start_and_a_restart_reuses_the_stored_certificate() {
    let s = setup(Options::default()).await;
    let dir = s.dir.path();
    let toml = config(&s, "tls-alpn-01", &[APP], &["pebble-root.pem"]);
    // No certificate stored: the start does not fail, the host waits for ACME.
    let running = start(&toml, dir).await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    let leaf = wait_served(addr, APP, &s.root, dir).await;
    assert!(issuer_of(&leaf).contains("Pebble"), "{}", issuer_of(&leaf));
    let (status, body) = client::fetch(
        addr,
        APP,
        client::client_config(&[&s.root], &[b"h2"]),
        client::get(APP, "/", true),
    )
    .await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::OK, format!("hello from {APP}").as_bytes())
    );
    // Stored with a private key, and counted.
    let key = host_dir(dir, APP).join("privkey.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(eventually(Duration::from_secs(5), || admin_ok(admin)).await);
    let success = format!("certfront_acme_orders_total{{host=\"{APP}\",result=\"success\"}}");
    assert_eq!(metric(admin, &success).await, Some(1.0));
    let failing = format!("certfront_acme_renewal_failing{{host=\"{APP}\"}}");
    assert_eq!(metric(admin, &failing).await, Some(0.0));
    let certs = certs_json(admin).await;
    let entry = host_entry(&certs, APP);
    assert_eq!(entry["source"], "acme");
    assert_eq!(entry["sha1_thumbprint"], thumbprint(&leaf));
    assert!(entry["acme"]["next_renewal"].is_string(), "{entry:#}");
    assert!(running.drain(Duration::from_secs(1)).await);

    // A restart serves the stored certificate at once, and orders nothing.
    let running = start(&toml, dir).await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    assert_eq!(admin_text(admin, "/readyz").await.0, StatusCode::OK);
    assert_eq!(served(addr, APP, &s.root).await.expect("served"), leaf);
    // The engine has looked at the stored certificate and planned its renewal...
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_entry(&certs_json(admin).await, APP)["acme"]["next_renewal"].is_null() {
        assert!(Instant::now() < deadline, "no renewal planned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...without ordering.
    for result in ["success", "failure", "policy"] {
        let series = format!("certfront_acme_orders_total{{host=\"{APP}\",result=\"{result}\"}}");
        assert_eq!(metric(admin, &series).await, Some(0.0), "{result}");
    }
    assert_eq!(served(addr, APP, &s.root).await.expect("served"), leaf);
}

/// `/readyz` answers 200 (called from a sync closure: a blocking one-shot client).
fn admin_ok(admin: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(admin) else {
        return false;
    };
    let _ = tcp.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_issues_over_the_plain_http_listener() {
    let s = setup(Options::default()).await;
    let dir = s.dir.path();
    let running = start(&config(&s, "http-01", &[APP], &["pebble-root.pem"]), dir).await;
    let addr = running.tls_addrs[0];
    let leaf = wait_served(addr, APP, &s.root, dir).await;
    assert!(issuer_of(&leaf).contains("Pebble"));
    let redirect = running.redirect_addr.expect("redirect listener");
    // Unknown tokens are not redirected (a CA would follow to https), other paths are.
    let resp = client::plain_get(redirect, APP, "/.well-known/acme-challenge/nope").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = client::plain_get(redirect, APP, "/index.html").await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_swaps_the_certificate_under_a_request_loop_with_no_failure() {
    // 15-second certificates: renewal is due when a third (5 s) is left.
    let s = setup(Options {
        validity_seconds: Some(15),
        ..Options::default()
    })
    .await;
    let dir = s.dir.path();
    let running = start(
        &config(&s, "tls-alpn-01", &[APP], &["pebble-root.pem"]),
        dir,
    )
    .await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    let first = wait_served(addr, APP, &s.root, dir).await;
    // A keep-alive connection opened on the first certificate, used across the swap.
    let tls = client::connect(addr, APP, client::client_config(&[&s.root], &[b"http/1.1"]))
        .await
        .expect("handshake");
    let mut kept = client::Sender::over(tls).await;
    // Full handshakes only: a resumed session reports the certificate of its first one.
    let mut fresh = (*client::client_config(&[&s.root], &[b"http/1.1"])).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    let config = std::sync::Arc::new(fresh);
    let (mut requests, mut failures, mut renewed) = (0u32, Vec::new(), None);
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && requests < 4000 {
        requests += 1;
        match client::connect(addr, APP, config.clone()).await {
            Ok(tls) => {
                let leaf = client::peer_leaf(&tls);
                let mut sender = client::Sender::over(tls).await;
                match sender.send(client::get(APP, "/", false)).await {
                    Ok(resp) if resp.status() == StatusCode::OK => {}
                    Ok(resp) => failures.push(format!("status {}", resp.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                if leaf != first {
                    renewed = Some(leaf);
                    break;
                }
            }
            Err(e) => failures.push(format!("handshake: {e}")),
        }
        match kept.send(client::get(APP, "/", false)).await {
            Ok(resp) if resp.status() == StatusCode::OK => {
                let _ = client::body_bytes(resp).await;
            }
            other => failures.push(format!("keep-alive: {:?}", other.map(|r| r.status()))),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let renewed = renewed.unwrap_or_else(|| {
        panic!(
            "not renewed after {requests} requests; pebble said:\n{}",
            Pebble::log(dir)
        )
    });
    assert!(
        failures.is_empty(),
        "{} failed of {requests}: {failures:?}",
        failures.len()
    );
    assert!(issuer_of(&renewed).contains("Pebble"));
    let success = format!("certfront_acme_orders_total{{host=\"{APP}\",result=\"success\"}}");
    assert!(metric(admin, &success).await.unwrap_or(0.0) >= 2.0);
}

/// A certificate for `host` from `ca`, stored where the engine keeps it, valid for 5 more
/// days out of 85: due for renewal, still good to serve.
fn store_old(dir: &Path, ca: &TestCa, host: &str) -> CertificateDer<'static> {
    let leaf = ca.leaf_with(&[host], |p| {
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(80);
        p.not_after = now + time::Duration::days(5);
    });
    let target = host_dir(dir, host);
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("fullchain.pem"), &leaf.cert_pem).expect("write");
    write_secret(&target.join("privkey.pem"), leaf.key_pem.as_bytes());
    leaf.der
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_order_keeps_the_old_certificate_and_raises_the_gauge() {
    let s = setup(Options {
        blocklist: vec![APP.to_owned(), PORTAL.to_owned()],
        ..Options::default()
    })
    .await;
    let dir = s.dir.path();
    let old_ca = TestCa::new("old private CA");
    std::fs::write(dir.join("old-ca.pem"), &old_ca.pem).expect("write");
    let old = store_old(dir, &old_ca, APP);
    let toml = config(
        &s,
        "tls-alpn-01",
        &[APP, PORTAL],
        &["pebble-root.pem", "old-ca.pem"],
    );
    let running = start(&toml, dir).await;
    let (addr, admin) = (running.tls_addrs[0], running.admin_addr.expect("admin"));
    let failing = format!("certfront_acme_renewal_failing{{host=\"{APP}\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(admin, &failing).await != Some(1.0) {
        assert!(Instant::now() < deadline, "the refusal was not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failure = format!("certfront_acme_orders_total{{host=\"{APP}\",result=\"failure\"}}");
    assert_eq!(metric(admin, &failure).await, Some(1.0));
    // The old certificate is still served and still on disk.
    assert_eq!(served(addr, APP, &old_ca.der).await.expect("served"), old);
    let stored = std::fs::read(host_dir(dir, APP).join("fullchain.pem")).unwrap();
    assert!(String::from_utf8_lossy(&stored).contains("BEGIN CERTIFICATE"));
    let entry = host_entry(&certs_json(admin).await, APP).clone();
    assert_eq!(entry["sha1_thumbprint"], thumbprint(&old));
    let error = entry["acme"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("new order"), "{entry:#}");
    assert!(entry["acme"]["failing_since"].is_string(), "{entry:#}");
    // The host that never had a certificate serves nothing, and /readyz says why.
    let err = served(addr, PORTAL, &s.root)
        .await
        .expect_err("no certificate to serve");
    assert!(
        err.contains("HandshakeFailure") || err.contains("handshake"),
        "{err}"
    );
    let (status, body) = admin_text(admin, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        format!("waiting for a certificate from ACME: {PORTAL}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_certificate_that_breaks_the_policy_is_kept_out() {
    let s = setup(Options::default()).await;
    let dir = s.dir.path();
    let old_ca = TestCa::new("old private CA");
    std::fs::write(dir.join("old-ca.pem"), &old_ca.pem).expect("write");
    let old = store_old(dir, &old_ca, APP);
    let before = std::fs::read(host_dir(dir, APP).join("fullchain.pem")).unwrap();
    // pebble's root is not a trust anchor: what it issues fails the chain rule.
    let toml = config(&s, "tls-alpn-01", &[APP], &["old-ca.pem"]);
    let running = start(&toml, dir).await;
    let (addr, admin) = (running.tls_addrs[0], running.admin_addr.expect("admin"));
    let policy = format!("certfront_acme_orders_total{{host=\"{APP}\",result=\"policy\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(admin, &policy).await != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the policy refusal was not counted; pebble said:\n{}",
            Pebble::log(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failing = format!("certfront_acme_renewal_failing{{host=\"{APP}\"}}");
    assert_eq!(metric(admin, &failing).await, Some(1.0));
    assert_eq!(served(addr, APP, &old_ca.der).await.expect("served"), old);
    let after = std::fs::read(host_dir(dir, APP).join("fullchain.pem")).unwrap();
    assert_eq!(before, after, "the refused certificate must not be written");
    let entry = host_entry(&certs_json(admin).await, APP).clone();
    let error = entry["acme"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("breaks the policy") && error.contains("chain"),
        "{error}"
    );
}
