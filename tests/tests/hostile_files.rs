//! Files that are not ordinary files, put where certfront reads: a FIFO, a link to
//! `/dev/zero`, a 1 GB file, a FIFO for a deny list. Each is refused with a message that
//! says what was found, the last good certificate or list stays, and none of them delays
//! a rotation of another host, the handshakes or `/healthz`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::client::{client_config, plain_get, served};
use crate::support::pki::TestCa;
use crate::support::start;

/// Replaces `path` with what `make` creates beside it (rename: one event, atomic).
fn replace_with(path: &Path, make: impl FnOnce(&Path)) {
    let tmp = path.with_extension("hostile-tmp");
    let _ = std::fs::remove_file(&tmp);
    make(&tmp);
    std::fs::rename(&tmp, path).expect("rename");
}

fn fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
}

fn dev_zero(path: &Path) {
    std::os::unix::fs::symlink("/dev/zero", path).expect("symlink");
}

fn one_gigabyte(path: &Path) {
    // Sparse: no disk used, but 1 GB to anyone who reads it.
    std::fs::File::create(path)
        .expect("create")
        .set_len(1 << 30)
        .expect("set_len");
}

/// What is put in place of `app.pem`, how to make it, and what the refusal says.
type Case = (&'static str, fn(&Path), &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_are_refused_without_delaying_another_hosts_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("hostile files root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    let clients = TestCa::new("hostile files clients");
    std::fs::write(d.join("clients.pem"), &clients.pem).expect("clients");
    std::fs::write(d.join("deny.txt"), "").expect("deny");
    let app = ca.leaf(&["app.test"]);
    app.write(d, "app");
    ca.leaf(&["tablet.test"]).write(d, "tablet");
    ca.leaf(&["portal.test"]).write(d, "portal");
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nrespond = { body = \"ok\" }\n\
         [[host]]\nfqdn = \"tablet.test\"\ncert = \"tablet.pem\"\nkey = \"tablet-key.pem\"\nrespond = { body = \"ok\" }\n\
         [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\nrespond = { body = \"ok\" }\n\
         [host.client_auth]\nmode = \"optional\"\nca = \"clients.pem\"\ndeny = \"deny.txt\"\n";
    let running = start(toml, d).await;
    let (addr, admin) = (running.tls_addrs[0], running.admin_addr.expect("admin"));
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let app_slot = running.slots()[0].clone();
    let deny_failing = running
        .app
        .metrics
        .deny_list_reload_failing
        .with_label_values(&["portal.test"]);

    let cases: [Case; 3] = [
        ("FIFO", fifo, "FIFO"),
        ("/dev/zero link", dev_zero, "character device"),
        ("1 GB file", one_gigabyte, "more than the 4194304 bytes"),
    ];
    for (i, (what, make, says)) in cases.into_iter().enumerate() {
        replace_with(&d.join("app.pem"), make);
        if i == 0 {
            // The deny list too: its reload must not hold the handshakes or /healthz.
            replace_with(&d.join("deny.txt"), fifo);
        }
        // Meanwhile another host rotates.
        let tablet = ca.leaf(&["tablet.test"]);
        let started = Instant::now();
        tablet.write(d, "tablet");
        let deadline = started + Duration::from_secs(4);
        loop {
            if served(addr, "tablet.test", &cfg).await.as_ref() == Some(&tablet.der) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the tablet rotation was not served within 4 s (below the 5 s read limit)"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let rotation = started.elapsed();
        // The refusal says what was found; app keeps its last good certificate.
        let deadline = Instant::now() + Duration::from_secs(4);
        let error = loop {
            match app_slot.status().last_error {
                Some(e) if e.contains(says) => break e,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                other => panic!("{what}: app.pem not refused as expected: {other:?}"),
            }
        };
        assert!(error.contains("app.pem"), "{what}: {error}");
        assert_eq!(
            served(addr, "app.test", &cfg).await.as_ref(),
            Some(&app.der),
            "{what}: the last good certificate must stay"
        );
        // The admin listener answers at once.
        let probe = Instant::now();
        let health = tokio::time::timeout(
            Duration::from_secs(2),
            plain_get(admin, "localhost", "/healthz"),
        )
        .await
        .expect("/healthz in time");
        assert_eq!(health.status(), 200);
        assert!(
            probe.elapsed() < Duration::from_secs(1),
            "{what}: /healthz took {:?}",
            probe.elapsed()
        );
        eprintln!("{what}: tablet rotation served after {rotation:?}");
        // Back to a good file for the next case (removed first: writing into a FIFO
        // would wait for a reader).
        std::fs::remove_file(d.join("app.pem")).expect("remove");
        app.write(d, "app");
    }
    assert!(
        crate::support::eventually(Duration::from_secs(5), || deny_failing.get() == 1).await,
        "the FIFO deny list was not refused"
    );
    // The portal host (whose deny list is a FIFO) still shakes hands.
    assert!(served(addr, "portal.test", &cfg).await.is_some());
}
