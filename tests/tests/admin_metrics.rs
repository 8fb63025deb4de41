//! The admin listener: Prometheus metrics that follow what is served, `/certs`, `/readyz`,
//! and a scrape that `promtool check metrics` accepts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tempfile::TempDir;

use crate::support::backend::Backend;
use crate::support::client::{
    self, admin_get, body_bytes, body_json, client_config, connect, get, plain_get,
};
use crate::support::pki::{Leaf, TestCa, thumbprint};
use crate::support::{eventually, start};

struct Setup {
    dir: TempDir,
    ca: TestCa,
    app: Leaf,
    cfg: Arc<ClientConfig>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("metrics root");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    let app = ca.leaf(&["app.test"]);
    app.write(dir.path(), "app");
    ca.leaf(&["api.test"]).write(dir.path(), "api");
    ca.leaf(&["down.test"]).write(dir.path(), "down");
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    Setup { dir, ca, app, cfg }
}

fn toml(upstream: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n\
         [limits]\nupstream_response_timeout_seconds = 1\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nrespond = {{ body = \"ok\" }}\n\
         [[host]]\nfqdn = \"api.test\"\ncert = \"api.pem\"\nkey = \"api-key.pem\"\nupstream = \"{upstream}\"\n\
         [[host]]\nfqdn = \"down.test\"\ncert = \"down.pem\"\nkey = \"down-key.pem\"\nupstream = \"http://127.0.0.1:{}\"\n",
        crate::support::refused_port()
    )
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    let resp = admin_get(admin, "/metrics").await;
    assert_eq!(resp.status(), 200);
    String::from_utf8(body_bytes(resp).await.to_vec()).expect("utf-8")
}

/// The value of the series whose line starts with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn series(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .map(|l| l.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_gauges_follow_what_is_served() {
    let s = setup();
    let backend = Backend::start("iis").await;
    let running = start(&toml(&backend.url()), s.dir.path()).await;
    let admin = running.admin_addr.expect("admin");
    let info = certfront_certs::inspect(&s.app.der).expect("inspect");
    let text = scrape(admin).await;
    let tp = thumbprint(&s.app.der);
    let labels = format!(
        "{{host=\"app.test\",issuer=\"{}\",serial=\"{}\",thumbprint=\"{tp}\"}}",
        info.issuer, info.serial
    );
    assert_eq!(
        value(
            &text,
            &format!("certfront_cert_not_after_timestamp_seconds{labels}")
        ),
        Some(info.not_after as f64),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("certfront_cert_not_before_timestamp_seconds{labels}")
        ),
        Some(info.not_before as f64)
    );
    assert_eq!(
        value(&text, "certfront_cert_reload_failing{host=\"app.test\"}"),
        Some(0.0)
    );
    assert!(
        value(
            &text,
            "certfront_cert_last_reload_success_timestamp_seconds{host=\"app.test\"}"
        )
        .unwrap()
            > 1.7e9
    );
    assert_eq!(value(&text, "certfront_build_info{version="), Some(1.0));

    // A bad file: the failing gauge and the failure counter rise, the served series stay.
    std::fs::write(s.dir.path().join("app.pem"), "not a certificate").expect("break");
    assert!(
        eventually(Duration::from_secs(10), || running.slots()[0]
            .status()
            .last_error
            .is_some())
        .await
    );
    let text = scrape(admin).await;
    assert_eq!(
        value(&text, "certfront_cert_reload_failing{host=\"app.test\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "certfront_cert_reloads_total{host=\"app.test\",result=\"failure\"}"
        ),
        Some(1.0)
    );
    // Reading the bad files must not trigger the next reload: the count stays at one.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let text = scrape(admin).await;
    assert_eq!(
        value(
            &text,
            "certfront_cert_reloads_total{host=\"app.test\",result=\"failure\"}"
        ),
        Some(1.0),
        "reloads feed on their own file reads"
    );
    assert!(
        text.contains(&tp),
        "the old certificate is still served and exported"
    );

    // A rotation: the old series disappear, the new one appears, failing drops to 0.
    let next = s.ca.leaf(&["app.test"]);
    next.write(s.dir.path(), "app");
    let next_tp = thumbprint(&next.der);
    let mut text = String::new();
    for _ in 0..500 {
        text = scrape(admin).await;
        if text.contains(&next_tp) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(text.contains(&next_tp), "new certificate exported: {text}");
    assert!(
        !text.contains(&tp),
        "old certificate's series are gone: {text}"
    );
    assert_eq!(
        series(
            &text,
            "certfront_cert_not_after_timestamp_seconds{host=\"app.test\""
        )
        .len(),
        1
    );
    assert_eq!(
        value(&text, "certfront_cert_reload_failing{host=\"app.test\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "certfront_cert_reloads_total{host=\"app.test\",result=\"success\"}"
        ),
        Some(1.0)
    );

    // /certs says the same.
    let certs = body_json(admin_get(admin, "/certs").await).await;
    let app = certs["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "app.test")
        .expect("app.test");
    assert_eq!(app["sha1_thumbprint"], next_tp.as_str());
    assert_eq!(app["names"][0], "app.test");
    assert_eq!(app["sans"][0], "app.test");
    assert_eq!(app["key_type"], "EC P-256");
    assert_eq!(app["last_reload"]["result"], "success");
    assert!(app["days_left"].as_i64().unwrap() >= 89);
    assert!(app["files"][0].as_str().unwrap().ends_with("app.pem"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_counters_and_no_series_from_client_input() {
    let s = setup();
    let backend = Backend::start("iis").await;
    let running = start(&toml(&backend.url()), s.dir.path()).await;
    let (addr, admin) = (running.tls_addrs[0], running.admin_addr.expect("admin"));

    let (status, _) =
        client::fetch(addr, "app.test", s.cfg.clone(), get("app.test", "/", false)).await;
    assert_eq!(status, 200);
    let (status, _) = client::fetch(
        addr,
        "api.test",
        s.cfg.clone(),
        get("api.test", "/slow?ms=3000", false),
    )
    .await;
    assert_eq!(status, 504);
    let (status, _) =
        client::fetch(addr, "app.test", s.cfg.clone(), get("api.test", "/", false)).await;
    assert_eq!(status, 421);
    let (status, _) = client::fetch(
        addr,
        "down.test",
        s.cfg.clone(),
        get("down.test", "/", false),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(
        value(
            &scrape(admin).await,
            "certfront_upstream_errors_total{host=\"down.test\",kind=\"connect\"}"
        ),
        Some(1.0)
    );

    let before = scrape(admin)
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    for i in 0..200 {
        let _ = connect(
            addr,
            &format!("random-{i}-{}.example", i * 7919),
            s.cfg.clone(),
        )
        .await;
    }
    let text = scrape(admin).await;
    let after = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(
        after <= before + 1,
        "200 random SNIs added series: {before} -> {after}\n{text}"
    );
    assert!(!text.contains("random-"), "a raw SNI reached a label");
    assert_eq!(
        value(
            &text,
            "certfront_tls_handshakes_total{host=\"unknown\",result=\"unknown_sni\",version=\"none\"}"
        ),
        Some(200.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "certfront_tls_handshakes_total{host=\"app.test\",result=\"success\",version=\"1.3\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            "certfront_http_requests_total{code=\"200\",host=\"app.test\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "certfront_http_requests_total{code=\"421\",host=\"app.test\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "certfront_http_requests_total{code=\"504\",host=\"api.test\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "certfront_upstream_errors_total{host=\"api.test\",kind=\"timeout\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "certfront_http_request_duration_seconds_count{host=\"app.test\"}"
        ),
        Some(2.0)
    );
    assert!(
        value(
            &text,
            "certfront_http_request_duration_seconds_sum{host=\"api.test\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        text.contains("certfront_connections_open{listener=\"127.0.0.1:0\"}"),
        "{text}"
    );

    promtool_check_metrics(&text);
}

/// `promtool check metrics` on a real scrape. CI installs promtool (.ci/promtool.sh):
/// a missing promtool fails the test rather than skipping it.
fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool is required (Debian package `prometheus`; .ci/promtool.sh installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_draining() {
    let s = setup();
    let backend = Backend::start("iis").await;
    let running = start(&toml(&backend.url()), Path::new(s.dir.path())).await;
    let (addr, admin) = (running.tls_addrs[0], running.admin_addr.expect("admin"));
    assert_eq!(plain_get(admin, "localhost", "/readyz").await.status(), 200);
    // A slow request keeps the drain open long enough to look at /readyz.
    let cfg = s.cfg.clone();
    let slow = tokio::spawn(async move {
        client::fetch(
            addr,
            "api.test",
            cfg,
            get("api.test", "/slow?ms=800", false),
        )
        .await
    });
    let hits = backend.hits.clone();
    assert!(
        eventually(Duration::from_secs(5), || hits
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0)
        .await
    );
    let app = running.app.clone();
    let drain = tokio::spawn(running.drain(Duration::from_secs(10)));
    assert!(eventually(Duration::from_secs(5), || *app.shutdown.borrow()).await);
    assert_eq!(plain_get(admin, "localhost", "/readyz").await.status(), 503);
    assert_eq!(
        plain_get(admin, "localhost", "/healthz").await.status(),
        200
    );
    assert_eq!(slow.await.expect("slow").0, 200);
    assert!(drain.await.expect("drain"), "drained in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_refuses_connections_shows_down() {
    let s = setup();
    let backend = Backend::start("iis").await;
    let running = start(&toml(&backend.url()), s.dir.path()).await;
    let (addr, admin) = (running.tls_addrs[0], running.admin_addr.expect("admin"));
    let api = format!(
        "certfront_upstream_up{{host=\"api.test\",upstream=\"{}\"}}",
        backend.url()
    );
    let down = "certfront_upstream_up{host=\"down.test\",upstream=\"http://127.0.0.1:";

    // Not tried yet: nothing says it is down.
    let text = scrape(admin).await;
    assert_eq!(value(&text, &api), Some(1.0), "{text}");
    assert_eq!(value(&text, down), Some(1.0), "{text}");
    // A respond host has no upstream and no series.
    assert!(
        !text.contains("certfront_upstream_up{host=\"app.test\""),
        "{text}"
    );

    let (status, _) = client::fetch(
        addr,
        "down.test",
        s.cfg.clone(),
        get("down.test", "/", false),
    )
    .await;
    assert_eq!(status, 502);
    let (status, _) =
        client::fetch(addr, "api.test", s.cfg.clone(), get("api.test", "/", false)).await;
    assert_eq!(status, 200);
    let text = scrape(admin).await;
    assert_eq!(value(&text, down), Some(0.0), "{text}");
    assert_eq!(value(&text, &api), Some(1.0), "{text}");
    // The inventory page says which one cools down, and why.
    let page = admin_get(admin, "/").await;
    let page = String::from_utf8(body_bytes(page).await.to_vec()).expect("utf-8");
    assert!(
        page.contains("<b>cooling down</b><div class=\"small\">last error "),
        "{page}"
    );
    assert_eq!(page.matches("last error ").count(), 1, "{page}");
}
