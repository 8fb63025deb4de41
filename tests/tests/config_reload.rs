//! The configuration reloads live: hosts added, changed and removed, upstreams and client
//! CAs replaced, all without a restart or a failed request; a bad edit keeps everything
//! serving and raises the failing gauge; listener changes are reported, not applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::support::backend::Backend;
use crate::support::client::{
    Sender, body_json, client_config, client_config_with_cert, connect, get, open,
};
use crate::support::pki::TestCa;
use crate::support::{eventually, replace_file, start_file};

struct Files {
    dir: tempfile::TempDir,
    ca: TestCa,
    config: PathBuf,
}

impl Files {
    /// Certificates for `names` (one host each) and a root, in a fresh directory.
    fn new(names: &[&str]) -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("reload root");
        std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
        for name in names {
            ca.leaf(&[name]).write(dir.path(), name);
        }
        let config = dir.path().join("certfront.toml");
        Files { dir, ca, config }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, text: &str) {
        replace_file(&self.config, text);
    }
}

fn head(server: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\ndrain_seconds = 1\n{server}\n\
         [tls]\ntrust = [\"root.pem\"]\n\n"
    )
}

fn host(name: &str, extra: &str) -> String {
    format!(
        "[[host]]\nfqdn = \"{name}\"\ncert = \"{name}.pem\"\nkey = \"{name}-key.pem\"\n{extra}\n\n"
    )
}

/// A request the server refused with a graceful GOAWAY (NO_ERROR): never processed.
fn refused_by_goaway(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = err.source();
    }
    false
}

fn reloads(running: &certfront::Running, result: &str) -> u64 {
    running
        .app
        .metrics
        .config_reloads
        .with_label_values(&[result])
        .get()
}

fn failing(running: &certfront::Running) -> i64 {
    running.app.metrics.config_reload_failing.get()
}

async fn status(addr: std::net::SocketAddr, sni: &str, ca: &TestCa) -> std::io::Result<StatusCode> {
    let tls = connect(addr, sni, client_config(&[&ca.der], &[b"http/1.1"])).await?;
    let mut s = Sender::over(tls).await;
    let resp = s
        .send(get(sni, "/", false))
        .await
        .map_err(std::io::Error::other)?;
    Ok(resp.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_added_by_editing_the_file_and_removed_hosts_finish_then_close() {
    let f = Files::new(&["app.test", "tablet.test"]);
    let backend = Backend::start("iis").await;
    let up = format!("upstream = \"{}\"", backend.url());
    f.write(&(head("") + &host("app.test", &up)));
    let running = start_file(&f.config).await;
    let addr = running.tls_addrs[0];
    let err = status(addr, "tablet.test", &f.ca).await.unwrap_err();
    crate::tls_sni::assert_unrecognized_name(&err);

    // Add a host: served once the watcher has seen the edit.
    f.write(&(head("") + &host("app.test", &up) + &host("tablet.test", &up)));
    let mut served = false;
    for _ in 0..100 {
        if status(addr, "tablet.test", &f.ca)
            .await
            .is_ok_and(|s| s == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "an added host was never served");
    assert_eq!(reloads(&running, "success"), 1);

    // A keep-alive connection to the host about to go, with a slow request in flight.
    let mut kept = open(addr, "tablet.test", &f.ca.der, &[b"http/1.1"]).await;
    let slow = tokio::spawn(async move {
        let resp = kept.send(get("tablet.test", "/slow?ms=1200", false)).await;
        (resp.map(|r| r.status()), kept)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.write(&(head("") + &host("app.test", &up)));
    assert!(
        eventually(Duration::from_secs(5), || reloads(&running, "success") == 2).await,
        "removal not applied"
    );
    let err = status(addr, "tablet.test", &f.ca).await.unwrap_err();
    crate::tls_sni::assert_unrecognized_name(&err);
    let (resp, mut kept) = slow.await.expect("join");
    assert_eq!(resp.expect("the request in flight finished"), 200);
    // ... and then the connection closes (drain_seconds = 1).
    let mut closed = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if kept.send(get("tablet.test", "/", false)).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a connection to a removed host stayed open");
    assert_eq!(status(addr, "app.test", &f.ca).await.expect("app"), 200);
    let metrics = String::from_utf8(running.app.metrics.render()).expect("utf8");
    assert!(
        !metrics.contains("certfront_cert_not_after_timestamp_seconds{host=\"tablet.test\""),
        "a removed host keeps its expiry series"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_changed_under_a_request_loop_loses_no_request() {
    let f = Files::new(&["app.test"]);
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let config = |backend: &Backend| {
        head("") + &host("app.test", &format!("upstream = \"{}\"", backend.url()))
    };
    f.write(&config(&a));
    let running = start_file(&f.config).await;
    let addr = running.tls_addrs[0];
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..4 {
        let h2 = i % 2 == 1;
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        let cfg = client_config(&[&f.ca.der], if h2 { &[b"h2"] } else { &[b"http/1.1"] });
        clients.push(tokio::spawn(async move {
            let mut sender: Option<Sender> = None;
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if sender.is_none() {
                    match connect(addr, "app.test", cfg.clone()).await {
                        Ok(tls) => sender = Some(Sender::over(tls).await),
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    }
                }
                let s = sender.as_mut().expect("connected");
                match s.send(get("app.test", "/", h2)).await {
                    Ok(resp) if resp.status() == 200 => {
                        body_json(resp).await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("status {}", resp.status());
                    }
                    // The server closed the connection after a `Connection: close` answer,
                    // or refused a stream above its GOAWAY's last stream id, which RFC 9113
                    // 6.8 guarantees was not processed: a client reconnects (and retries),
                    // nothing failed.
                    Err(e) if e.is_canceled() || e.is_closed() || refused_by_goaway(&e) => {
                        sender = None
                    }
                    Err(e) => {
                        eprintln!("request failed: {e:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                        sender = None;
                    }
                }
            }
        }));
    }
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write(&config(if round % 2 == 0 { &b } else { &a }));
        let want = round + 1;
        assert!(
            eventually(Duration::from_secs(5), || reloads(&running, "success")
                == want)
            .await,
            "reload {want} not applied"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests");
    assert!(done.load(Ordering::Relaxed) > 100, "the loop hardly ran");
    assert!(b.hits.load(Ordering::SeqCst) > 0 && a.hits.load(Ordering::SeqCst) > 0);
    // The last edit pointed at `a`: a new connection goes there.
    let tls = connect(
        addr,
        "app.test",
        client_config(&[&f.ca.der], &[b"http/1.1"]),
    )
    .await
    .expect("tls");
    let echo = body_json(
        Sender::over(tls)
            .await
            .send(get("app.test", "/", false))
            .await
            .expect("response"),
    )
    .await;
    assert_eq!(echo["backend"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_ca_applies_without_a_restart() {
    let f = Files::new(&["portal.test"]);
    let old_ca = TestCa::new("clients 2025");
    let new_ca = TestCa::new("clients 2026");
    let alice = old_ca.client("alice");
    let bob = new_ca.client("bob");
    std::fs::write(f.path().join("clients.pem"), &old_ca.pem).expect("clients");
    f.write(
        &(head("")
            + &host(
                "portal.test",
                "respond = { body = \"portal\" }\n[host.client_auth]\nca = \"clients.pem\"",
            )),
    );
    let running = start_file(&f.config).await;
    let addr = running.tls_addrs[0];
    let accepted = |who: &crate::support::pki::Leaf| {
        let cfg = client_config_with_cert(&[&f.ca.der], &[b"http/1.1"], who);
        async move {
            match connect(addr, "portal.test", cfg).await {
                Ok(tls) => Sender::over(tls)
                    .await
                    .send(get("portal.test", "/", false))
                    .await
                    .is_ok_and(|r| r.status() == 200),
                Err(_) => false,
            }
        }
    };
    assert!(accepted(&alice).await);
    assert!(!accepted(&bob).await);
    replace_file(&f.path().join("clients.pem"), &new_ca.pem);
    let mut rotated = false;
    for _ in 0..100 {
        if accepted(&bob).await {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "the new client CA was never used");
    assert!(
        !accepted(&alice).await,
        "the old client CA is still trusted"
    );
    assert_eq!(failing(&running), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_keeps_everything_serving_and_raises_the_gauge() {
    let f = Files::new(&["app.test"]);
    // A certificate that violates the policy: RSA 1024 is refused by the key-size rule.
    let weak = f.ca.leaf_with(&["weak.test"], |_| {});
    weak.write(f.path(), "weak.test");
    let good = head("") + &host("app.test", "respond = { body = \"ok\" }");
    f.write(&good);
    let running = start_file(&f.config).await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    let bad_edits = [
        ("bad TOML", good.replace("[[host]]", "[[host]")),
        (
            "unknown key",
            good.replace("[tls]", "[tls]\nciphers = \"ALL\""),
        ),
        (
            "a certificate that violates the policy",
            good.clone()
                + &host("weak.test", "respond = { body = \"weak\" }")
                + "[host.policy]\nmin_ec_bits = 384\n",
        ),
    ];
    for (round, (what, text)) in bad_edits.iter().enumerate() {
        f.write(text);
        let want = round as u64 + 1;
        assert!(
            eventually(Duration::from_secs(5), || reloads(&running, "failure")
                == want)
            .await,
            "{what}: no refused reload"
        );
        assert_eq!(failing(&running), 1, "{what}");
        assert_eq!(
            status(addr, "app.test", &f.ca).await.expect("app"),
            200,
            "{what}"
        );
        let certs = body_json(crate::support::client::admin_get(admin, "/certs").await).await;
        assert!(
            certs["config"]["last_reload"]["error"].is_string(),
            "{what}: {}",
            certs["config"]
        );
    }
    f.write(&good);
    assert!(
        eventually(Duration::from_secs(5), || failing(&running) == 0).await,
        "the good edit did not clear the gauge"
    );
    assert_eq!(reloads(&running, "success"), 1);
}

/// What a user can see of a running certfront, apart from the configuration reload's own
/// status: every metric line but `certfront_config_*` (and the handshakes this makes),
/// `/certs` without its `config` part and the `days_left` counted from the clock, and the
/// certificate a handshake for `sni` gets.
async fn observable(
    running: &certfront::Running,
    sni: &str,
    ca: &TestCa,
) -> (Vec<String>, serde_json::Value, Vec<u8>) {
    let addr = running.tls_addrs[0];
    let tls = connect(addr, sni, client_config(&[&ca.der], &[b"http/1.1"]))
        .await
        .expect("handshake");
    let leaf = crate::support::client::peer_leaf(&tls).as_ref().to_vec();
    drop(tls);
    // The server notices the close a moment later: wait until no connection is counted
    // open, so the gauge compares the same state before and after.
    let all_closed = || {
        String::from_utf8(running.app.metrics.render())
            .expect("utf-8")
            .lines()
            .filter(|l| l.starts_with("certfront_connections_open{"))
            .all(|l| l.ends_with(" 0"))
    };
    assert!(
        eventually(Duration::from_secs(5), all_closed).await,
        "the probe connection is still counted open"
    );
    let metrics: Vec<String> = String::from_utf8(running.app.metrics.render())
        .expect("utf-8")
        .lines()
        .filter(|l| !l.contains("certfront_config_") && !l.contains("certfront_tls_handshakes"))
        .map(str::to_owned)
        .collect();
    let admin = running.admin_addr.expect("admin");
    let mut certs = body_json(crate::support::client::admin_get(admin, "/certs").await).await;
    let certs_map = certs.as_object_mut().expect("an object");
    certs_map.remove("config");
    for list in certs_map.values_mut() {
        for entry in list.as_array_mut().into_iter().flatten() {
            entry.as_object_mut().map(|e| e.remove("days_left"));
        }
    }
    (metrics, certs, leaf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_changes_nothing_a_user_can_observe() {
    let f = Files::new(&["app.test", "bad.test"]);
    let good = head("") + &host("app.test", "respond = { body = \"ok\" }");
    f.write(&good);
    let running = start_file(&f.config).await;
    let before = observable(&running, "app.test", &f.ca).await;

    // A candidate that gives app.test a new certificate and adds bad.test, whose
    // upstream_ca is no certificate: refused as a whole, so app.test's new certificate
    // must not be served, exported or listed either.
    f.ca.leaf(&["app.test"]).write(f.path(), "app-next");
    std::fs::write(f.path().join("not-a-ca.pem"), "this is no certificate\n").expect("write");
    let refused = head("")
        + "[[host]]\nfqdn = \"app.test\"\ncert = \"app-next.pem\"\nkey = \"app-next-key.pem\"\n\
           respond = { body = \"next\" }\n\n"
        + &host(
            "bad.test",
            "upstream = \"https://127.0.0.1:9\"\nupstream_ca = \"not-a-ca.pem\"",
        );
    f.write(&refused);
    assert!(
        eventually(Duration::from_secs(10), || reloads(&running, "failure")
            == 1)
        .await,
        "the candidate was not refused"
    );
    assert_eq!(failing(&running), 1);
    let after = observable(&running, "app.test", &f.ca).await;
    assert_eq!(
        after.2, before.2,
        "the refused candidate's certificate is served"
    );
    assert_eq!(
        after.0, before.0,
        "the refused candidate changed the metrics"
    );
    assert_eq!(after.1, before.1, "the refused candidate changed /certs");
    assert_eq!(reloads(&running, "success"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_listen_address_is_reported_not_applied() {
    let f = Files::new(&["app.test"]);
    let text = head("") + &host("app.test", "respond = { body = \"ok\" }");
    f.write(&text);
    let running = start_file(&f.config).await;
    let addr = running.tls_addrs[0];
    f.write(
        &text
            .replace("listen = [\"127.0.0.1:0\"]", "listen = [\"127.0.0.2:0\"]")
            .replace(
                "respond = { body = \"ok\" }",
                "respond = { body = \"new\" }",
            ),
    );
    assert!(eventually(Duration::from_secs(5), || reloads(&running, "success") == 1).await);
    let certs = body_json(
        crate::support::client::admin_get(running.admin_addr.expect("admin"), "/certs").await,
    )
    .await;
    assert_eq!(certs["config"]["restart_needed"][0], "server.listen");
    // The old listener still serves, with the rest of the edit applied.
    let tls = connect(
        addr,
        "app.test",
        client_config(&[&f.ca.der], &[b"http/1.1"]),
    )
    .await
    .expect("tls");
    let resp = Sender::over(tls)
        .await
        .send(get("app.test", "/", false))
        .await
        .expect("response");
    assert_eq!(crate::support::client::body_bytes(resp).await, &b"new"[..]);
}

/// Resident memory of this test process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_lose_nothing() {
    let f = Files::new(&["app.test", "tablet.test", "extra.test"]);
    let backend = Backend::start("iis").await;
    // Every reload changes a host; every other one adds or removes a host (and so the
    // set of watched files).
    let text = |i: usize| {
        let extra = if i % 2 == 1 {
            host("extra.test", "respond = { body = \"extra\" }")
        } else {
            String::new()
        };
        head("watch_config = false")
            + &host("app.test", &format!("upstream = \"{}\"", backend.url()))
            + &host("tablet.test", &format!("respond = {{ body = \"v{i}\" }}"))
            + &extra
    };
    f.write(&text(0));
    let running = start_file(&f.config).await;
    let addr = running.tls_addrs[0];
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failures) = (stop.clone(), failures.clone());
        let cfg = client_config(&[&f.ca.der], &[b"http/1.1"]);
        tokio::spawn(async move {
            let tls = connect(addr, "app.test", cfg).await.expect("tls");
            let mut s = Sender::over(tls).await;
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 1_000_000 {
                match s.send(get("app.test", "/", false)).await {
                    Ok(r) if r.status() == 200 => {
                        body_json(r).await;
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            n
        })
    };
    let before = rss_kib();
    for i in 1..=100 {
        f.write(&text(i));
        running.reload_all();
        let want = i as u64;
        assert!(
            eventually(Duration::from_secs(5), || reloads(&running, "success")
                == want)
            .await,
            "reload {i} not applied"
        );
    }
    let after = rss_kib();
    stop.store(true, Ordering::Relaxed);
    let requests = load.await.expect("load");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests");
    assert!(requests > 100, "the load hardly ran: {requests}");
    eprintln!("RSS before {before} KiB, after 100 reloads {after} KiB, {requests} requests");
    // Generous: the test process holds clients, backends and allocator caches too. A
    // leak of one snapshot per reload (hosts, TLS configs, pools) would exceed it.
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 100 reloads"
    );
    assert_eq!(
        status(addr, "tablet.test", &f.ca).await.expect("tablet"),
        200
    );
}
