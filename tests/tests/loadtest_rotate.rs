//! The loadtest's rotation torture, in-process and small: every way of replacing the files
//! (rename, in-place, the Kubernetes `..data` swap) under keep-alive and handshake load.

use std::time::Duration;

use crate::support::pki::{TestCa, write_secret};
use crate::support::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_rotations_in_three_ways_under_load_lose_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("torture root");
    let root = dir.path().join("root.pem");
    std::fs::write(&root, &ca.pem).expect("root");
    write_secret(&dir.path().join("root-key.pem"), ca.key_pem().as_bytes());
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).expect("mkdir");
    let first = ca.leaf(&["rotate.test"]);
    std::fs::write(tls.join("tls.crt"), &first.cert_pem).expect("crt");
    write_secret(&tls.join("tls.key"), first.key_pem.as_bytes());
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\
                [[host]]\nfqdn = \"rotate.test\"\ncert = \"tls/tls.crt\"\nkey = \"tls/tls.key\"\n\
                respond = { body = \"ok\" }\n";
    let running = start(toml, dir.path()).await;
    let addr = running.tls_addrs[0].to_string();
    let path = |p: &str| dir.path().join(p).display().to_string();
    let args = certfront_loadtest::RotateArgs::parse_from([
        "--addr",
        &addr,
        "--sni",
        "rotate.test",
        "--ca",
        &path("root.pem"),
        "--ca-key",
        &path("root-key.pem"),
        "--cert",
        &path("tls/tls.crt"),
        "--key",
        &path("tls/tls.key"),
        "--rotations",
        "9",
        "--connections",
        "2",
        "--handshakers",
        "1",
        "--serve-timeout",
        "10",
        "--max-seconds",
        "120",
    ])
    .expect("arguments");
    let summary =
        tokio::time::timeout(Duration::from_secs(150), certfront_loadtest::torture(&args))
            .await
            .expect("the torture ends within its own bounds")
            .expect("the torture runs");
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(summary.by_mode, [3, 3, 3], "{summary:#?}");
    assert!(summary.requests_ok > 9, "the load ran: {summary:#?}");
    // The host ends on a Kubernetes-style link, serving the last leaf written there.
    assert!(
        std::fs::symlink_metadata(tls.join("tls.crt"))
            .expect("tls.crt")
            .file_type()
            .is_symlink()
    );
}
