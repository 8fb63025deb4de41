//! The process as an operator runs it: the quick start from the repository's own config,
//! and a graceful drain on SIGTERM.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::support::Process;
use crate::support::backend::Backend;
use crate::support::client::{self, client_config, get};
use crate::support::pki::TestCa;

/// The repository's quick-start file, with its fixed ports swapped for free ones.
fn quick_start_copy(dir: &Path) -> std::path::PathBuf {
    let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/certfront.toml");
    let text = std::fs::read_to_string(&original).expect("config/certfront.toml");
    assert!(
        text.contains("127.0.0.1:8443") && text.contains("127.0.0.1:9443"),
        "{text}"
    );
    let text = text
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9443", "127.0.0.1:0");
    std::fs::create_dir_all(dir.join("config")).expect("mkdir");
    let copy = dir.join("config/certfront.toml");
    std::fs::write(&copy, text).expect("write");
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_serves_three_hosts_from_the_internal_ca_and_reuses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = quick_start_copy(dir.path());
    let mut first_root = None;
    for round in 0..2 {
        let mut proc = Process::spawn(&config, dir.path());
        let root_path = dir.path().join("state/ca.pem");
        let log = proc.log.lock().unwrap().clone();
        assert!(
            log.contains("state/ca.pem"),
            "the log names the CA root: {log}"
        );
        for name in ["app.localhost", "tablet.localhost", "portal.localhost"] {
            assert!(log.contains(name), "the log names {name}: {log}");
        }
        let root = CertificateDer::from_pem_file(&root_path).expect("root pem");
        let cfg = client_config(&[&root], &[b"http/1.1"]);
        for name in ["app.localhost", "tablet.localhost", "portal.localhost"] {
            let (status, body) =
                client::fetch(proc.addr, name, cfg.clone(), get(name, "/", false)).await;
            assert_eq!(status, 200, "{name}");
            assert!(
                String::from_utf8_lossy(&body).contains(name),
                "{name}: {body:?}"
            );
        }
        match &first_root {
            None => first_root = Some(root),
            Some(first) => assert_eq!(first, &root, "round {round}: the CA was replaced"),
        }
        proc.signal("TERM");
        assert_eq!(proc.wait(Duration::from_secs(20)), Some(0));
    }
    let cas = std::fs::read_dir(dir.path().join("state"))
        .expect("state")
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("ca")
        })
        .count();
    assert_eq!(
        cas, 2,
        "one CA certificate and one CA key, never a second CA"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("drain root");
    ca.leaf(&["app.test"]).write(dir.path(), "app");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    let backend = Backend::start("slow").await;
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\ndrain_seconds = 20\n[tls]\ntrust = [\"root.pem\"]\n\
             [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nupstream = \"{}\"\n",
            backend.url()
        ),
    )
    .expect("config");
    let mut proc = Process::spawn(&config, dir.path());
    let cfg = client_config(&[&ca.der], &[b"http/1.1"]);
    let addr = proc.addr;
    let slow = tokio::spawn(async move {
        client::fetch(
            addr,
            "app.test",
            cfg,
            get("app.test", "/slow?ms=1500", false),
        )
        .await
    });
    // Wait until the request is in flight at the backend, then ask certfront to stop.
    let hits = backend.hits.clone();
    assert!(
        crate::support::eventually(Duration::from_secs(10), || hits
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0)
        .await,
        "request never reached the backend"
    );
    proc.signal("TERM");
    let admin = proc.admin.expect("admin");
    let mut draining = false;
    for _ in 0..250 {
        if client::plain_get(admin, "localhost", "/readyz")
            .await
            .status()
            == 503
        {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(draining, "/readyz says 503 while draining");
    // New connections are refused while draining.
    assert!(
        crate::support::eventually(Duration::from_secs(5), || std::net::TcpStream::connect(
            addr
        )
        .is_err())
        .await,
        "listener still accepting during drain"
    );
    let (status, body) = slow.await.expect("join");
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"slow done");
    assert_eq!(proc.wait(Duration::from_secs(20)), Some(0));
}
