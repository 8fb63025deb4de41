//! Hot certificate reload: every way administrators replace files, bad files keeping the
//! last good certificate, half rotations, open connections, resumption, SIGHUP, re-scan.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use tempfile::TempDir;

use crate::support::client::{self, Sender, client_config, connect, get, peer_leaf, served};
use crate::support::pki::{Leaf, TestCa, write_secret};
use crate::support::{Process, start};

const WAIT: Duration = Duration::from_secs(10);

/// Waits until new handshakes get `want`; panics with what was served instead.
async fn wait_served(
    addr: SocketAddr,
    sni: &str,
    cfg: &Arc<ClientConfig>,
    want: &CertificateDer<'static>,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = served(addr, sni, cfg).await;
        if got.as_ref() == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new certificate not served within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts that `want` is still served after the reloader had time to act (debounce + margin).
async fn still_served(
    addr: SocketAddr,
    sni: &str,
    cfg: &Arc<ClientConfig>,
    want: &CertificateDer<'static>,
) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        served(addr, sni, cfg).await.as_ref(),
        Some(want),
        "the last good certificate must stay"
    );
}

struct Site {
    dir: TempDir,
    ca: TestCa,
    cfg: Arc<ClientConfig>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("reload root");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    Site { dir, ca, cfg }
}

fn config(cert: &str, key: &str, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{extra_server}\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"{cert}\"\nkey = \"{key}\"\nrespond = {{ body = \"ok\" }}\n"
    )
}

/// Writes by truncating and rewriting the same inode, as `cp` and most editors' "save" do.
fn rewrite_in_place(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open");
    f.write_all(data).expect("write");
}

/// Installs `leaf` as `app.pem` + `app-key.pem` in `dir`, key first as most tools do
/// (so the half-way state is a certificate/key mismatch).
fn install(dir: &Path, leaf: &Leaf, write: fn(&Path, &[u8])) {
    write(&dir.join("app-key.pem"), leaf.key_pem.as_bytes());
    write(&dir.join("app.pem"), leaf.cert_pem.as_bytes());
}

fn rename_into_place(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

fn delete_and_recreate(path: &Path, data: &[u8]) {
    std::fs::remove_file(path).expect("rm");
    std::fs::write(path, data).expect("create");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rotation_style_twice_in_a_row() {
    let s = site();
    let tls = s.dir.path().join("tls");
    let first = s.ca.leaf(&["app.test"]);
    first.write(&tls, "app");
    let running = start(&config("tls/app.pem", "tls/app-key.pem", ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    wait_served(addr, "app.test", &s.cfg, &first.der).await;

    type Write = fn(&Path, &[u8]);
    let styles: [(&str, Write); 3] = [
        ("rewrite in place", rewrite_in_place),
        ("write temp then rename", rename_into_place),
        ("delete and re-create", delete_and_recreate),
    ];
    for (name, write) in styles {
        for round in 0..2 {
            let next = s.ca.leaf(&["app.test"]);
            install(&tls, &next, write);
            wait_served(addr, "app.test", &s.cfg, &next.der).await;
            eprintln!("{name} #{round}: picked up");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_secret_volume_swap_twice() {
    let s = site();
    let vol = s.dir.path().join("tls");
    // The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    let publish = |round: usize, leaf: &Leaf| {
        let ts = vol.join(format!("..2026_11_22_10_00_0{round}.000000001"));
        std::fs::create_dir(&ts).expect("mkdir");
        std::fs::write(ts.join("tls.crt"), &leaf.cert_pem).expect("crt");
        write_secret(&ts.join("tls.key"), leaf.key_pem.as_bytes());
        let tmp = vol.join("..data_tmp");
        std::os::unix::fs::symlink(ts.file_name().unwrap(), &tmp).expect("symlink");
        std::fs::rename(&tmp, vol.join("..data")).expect("swap ..data");
    };
    let first = s.ca.leaf(&["app.test"]);
    publish(0, &first);
    std::os::unix::fs::symlink("..data/tls.crt", vol.join("tls.crt")).expect("link");
    std::os::unix::fs::symlink("..data/tls.key", vol.join("tls.key")).expect("link");
    let running = start(&config("tls/tls.crt", "tls/tls.key", ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    wait_served(addr, "app.test", &s.cfg, &first.der).await;
    for round in 1..=2 {
        let next = s.ca.leaf(&["app.test"]);
        publish(round, &next);
        wait_served(addr, "app.test", &s.cfg, &next.der).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_rotation_never_fails_a_handshake() {
    let s = site();
    let tls = s.dir.path().join("tls");
    let first = s.ca.leaf(&["app.test"]);
    first.write(&tls, "app");
    let running = start(&config("tls/app.pem", "tls/app-key.pem", ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    let next = s.ca.leaf(&["app.test"]);
    rewrite_in_place(&tls.join("app.pem"), next.cert_pem.as_bytes());
    // For 1.5 s the new certificate sits beside the old key: every handshake still succeeds
    // with the old, consistent pair.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    let mut handshakes = 0;
    while tokio::time::Instant::now() < until {
        assert_eq!(
            served(addr, "app.test", &s.cfg).await.as_ref(),
            Some(&first.der)
        );
        handshakes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(handshakes > 5);
    assert!(
        running.slots()[0].status().last_error.is_none(),
        "a half rotation is not a failure"
    );
    rewrite_in_place(&tls.join("app-key.pem"), next.key_pem.as_bytes());
    wait_served(addr, "app.test", &s.cfg, &next.der).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_keep_the_last_good_certificate_until_good_ones_arrive() {
    let s = site();
    let tls = s.dir.path().join("tls");
    let good = s.ca.leaf(&["app.test"]);
    good.write(&tls, "app");
    let running = start(&config("tls/app.pem", "tls/app-key.pem", ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    let slot = running.slots()[0].clone();
    let cert = tls.join("app.pem");

    let expired = s.ca.leaf_with(&["app.test"], |p| {
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    });
    let wrong_name = s.ca.leaf(&["other.test"]);
    let truncated = &good.cert_pem[..good.cert_pem.len() / 2];
    type Breaker<'a> = Box<dyn Fn() + 'a>;
    let bad: [(&str, Breaker<'_>); 5] = [
        ("empty", Box::new(|| rewrite_in_place(&cert, b""))),
        (
            "truncated",
            Box::new(|| rewrite_in_place(&cert, truncated.as_bytes())),
        ),
        (
            "unreadable (dangling link)",
            Box::new(|| {
                std::fs::remove_file(&cert).unwrap();
                std::os::unix::fs::symlink("/nonexistent/app.pem", &cert).unwrap();
            }),
        ),
        (
            "expired",
            Box::new(|| {
                std::fs::remove_file(&cert).unwrap();
                rewrite_in_place(&tls.join("app-key.pem"), expired.key_pem.as_bytes());
                std::fs::write(&cert, &expired.cert_pem).unwrap();
            }),
        ),
        (
            "wrong name",
            Box::new(|| {
                rewrite_in_place(&tls.join("app-key.pem"), wrong_name.key_pem.as_bytes());
                rewrite_in_place(&cert, wrong_name.cert_pem.as_bytes());
            }),
        ),
    ];
    let mut current = good.der.clone();
    for (what, break_it) in bad {
        break_it();
        assert!(
            crate::support::eventually(WAIT, || slot.status().last_error.is_some()).await,
            "{what}: the failure is recorded"
        );
        still_served(addr, "app.test", &s.cfg, &current).await;
        eprintln!("{what}: refused: {}", slot.status().last_error.unwrap());
        // A later good pair is picked up.
        let next = s.ca.leaf(&["app.test"]);
        let _ = std::fs::remove_file(&cert);
        rewrite_in_place(&tls.join("app-key.pem"), next.key_pem.as_bytes());
        std::fs::write(&cert, &next.cert_pem).unwrap();
        wait_served(addr, "app.test", &s.cfg, &next.der).await;
        assert!(slot.status().last_error.is_none(), "{what}: recovered");
        current = next.der.clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pfx_with_a_wrong_password_keeps_the_old_certificate() {
    let s = site();
    let tls = s.dir.path().join("tls");
    let first = s.ca.leaf(&["app.test"]);
    write_secret(&tls.join("app.pfx"), &first.pfx("s3cret"));
    write_secret(&tls.join("pw"), b"s3cret\n");
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\npfx = \"tls/app.pfx\"\npfx_password_file = \"tls/pw\"\nrespond = { body = \"ok\" }\n";
    let running = start(toml, s.dir.path()).await;
    let addr = running.tls_addrs[0];
    let slot = running.slots()[0].clone();
    wait_served(addr, "app.test", &s.cfg, &first.der).await;

    let second = s.ca.leaf(&["app.test"]);
    rename_into_place(&tls.join("app.pfx"), &second.pfx("other password"));
    assert!(crate::support::eventually(WAIT, || slot.status().last_error.is_some()).await);
    still_served(addr, "app.test", &s.cfg, &first.der).await;
    rename_into_place(&tls.join("pw"), b"other password\n");
    wait_served(addr, "app.test", &s.cfg, &second.der).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_survive_and_sessions_resume_across_a_swap() {
    let s = site();
    let tls = s.dir.path().join("tls");
    let first = s.ca.leaf(&["app.test"]);
    first.write(&tls, "app");
    let running = start(&config("tls/app.pem", "tls/app-key.pem", ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    // One client config for all connections: it keeps the session tickets it gets.
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let conn = connect(addr, "app.test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(peer_leaf(&conn), first.der);
    let mut keep_alive = Sender::over(conn).await;
    assert_eq!(
        keep_alive
            .send(get("app.test", "/", false))
            .await
            .expect("before")
            .status(),
        200
    );

    let next = s.ca.leaf(&["app.test"]);
    install(&tls, &next, rename_into_place);
    wait_served(
        addr,
        "app.test",
        &client_config(&[&s.ca.der], &[b"http/1.1"]),
        &next.der,
    )
    .await;

    for _ in 0..3 {
        let resp = keep_alive
            .send(get("app.test", "/", false))
            .await
            .expect("after the swap");
        assert_eq!(resp.status(), 200);
        client::body_bytes(resp).await;
    }
    let resumed = connect(addr, "app.test", cfg)
        .await
        .expect("handshake after reload");
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "session tickets survive a certificate reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_rotations_under_load_fail_no_request() {
    let s = site();
    let tls = s.dir.path().join("tls");
    s.ca.leaf(&["app.test"]).write(&tls, "app");
    let running = start(&config("tls/app.pem", "tls/app-key.pem", ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, cfg) = (stop.clone(), ok.clone(), failed.clone(), s.cfg.clone());
        clients.push(tokio::spawn(async move {
            // New connections (new handshakes) and keep-alive requests, mixed; bounded.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match connect(addr, "app.test", cfg.clone()).await {
                    Ok(conn) => {
                        let mut sender = Sender::over(conn).await;
                        for _ in 0..3 {
                            match sender.send(get("app.test", "/", false)).await {
                                Ok(r) if r.status() == 200 => {
                                    client::body_bytes(r).await;
                                    ok.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for round in 0..10 {
        let next = s.ca.leaf(&["app.test"]);
        install(&tls, &next, rename_into_place);
        wait_served(addr, "app.test", &s.cfg, &next.der).await;
        eprintln!("rotation {round} served");
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during rotations"
    );
    assert!(ok.load(Ordering::Relaxed) > 10, "the load ran");
}

/// A certificate reached through a symlink into an unwatched directory: its changes are
/// invisible to the watcher, so only SIGHUP or the re-scan can find them.
fn hidden_setup(s: &Site) -> (PathBuf, Leaf) {
    let hidden = s.dir.path().join("hidden");
    std::fs::create_dir(&hidden).expect("mkdir");
    let first = s.ca.leaf(&["app.test"]);
    first.write(&hidden, "app");
    let tls = s.dir.path().join("tls");
    std::os::unix::fs::symlink(hidden.join("app.pem"), tls.join("app.pem")).expect("link");
    std::os::unix::fs::symlink(hidden.join("app-key.pem"), tls.join("app-key.pem")).expect("link");
    (hidden, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_rescan_finds_what_the_watcher_missed() {
    let s = site();
    let (hidden, first) = hidden_setup(&s);
    let running = start(
        &config("tls/app.pem", "tls/app-key.pem", "rescan_seconds = 1"),
        s.dir.path(),
    )
    .await;
    let addr = running.tls_addrs[0];
    wait_served(addr, "app.test", &s.cfg, &first.der).await;
    let next = s.ca.leaf(&["app.test"]);
    install(&hidden, &next, rewrite_in_place);
    wait_served(addr, "app.test", &s.cfg, &next.der).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_every_certificate() {
    let s = site();
    let (hidden, first) = hidden_setup(&s);
    let config_path = s.dir.path().join("c.toml");
    std::fs::write(
        &config_path,
        config("tls/app.pem", "tls/app-key.pem", "rescan_seconds = 0"),
    )
    .expect("config");
    let proc = Process::spawn(&config_path, s.dir.path());
    let addr = proc.addr;
    assert_eq!(
        served(addr, "app.test", &s.cfg).await.as_ref(),
        Some(&first.der)
    );
    let next = s.ca.leaf(&["app.test"]);
    install(&hidden, &next, rewrite_in_place);
    still_served(addr, "app.test", &s.cfg, &first.der).await;
    proc.signal("HUP");
    wait_served(addr, "app.test", &s.cfg, &next.der).await;
}
