//! `tls.ticket_key_file`: certfront processes sharing one key file resume each other's
//! TLS sessions (a client behind a load balancer resumes on either replica), others do not,
//! and a key rotation done the documented way never stops resumption.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::ClientConfig;
use rustls::HandshakeKind;
use rustls::client::Resumption;

use crate::support::Process;
use crate::support::client::{Sender, body_bytes, client_config, connect, get};
use crate::support::pki::{TestCa, write_secret};

fn key() -> String {
    let mut raw = [0u8; 48];
    aws_lc_rs::rand::fill(&mut raw).expect("random");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Replaces the key file the way the docs say (write a temporary file, rename it).
fn install_keys(dir: &std::path::Path, file: &str, keys: &[&str]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    write_secret(
        &tmp,
        format!("# ticket keys\n{}\n", keys.join("\n")).as_bytes(),
    );
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

fn config(dir: &std::path::Path, name: &str, keys_file: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[tls]\ntrust = [\"root.pem\"]\n\
             ticket_key_file = \"{keys_file}\"\n\n[[host]]\nfqdn = \"app.test\"\n\
             cert = \"app.pem\"\nkey = \"app-key.pem\"\nrespond = {{ status = 200, body = \"ok\" }}\n"
        ),
    )
    .expect("config");
    path
}

/// One handshake and one request (which also delivers the TLS 1.3 tickets); whether the
/// handshake resumed a session.
async fn resumed(p: &Process, cfg: &Arc<ClientConfig>) -> bool {
    let tls = connect(p.addr, "app.test", cfg.clone())
        .await
        .expect("handshake");
    let kind = tls.get_ref().1.handshake_kind();
    let mut sender = Sender::over(tls).await;
    let resp = sender
        .send(get("app.test", "/", false))
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    body_bytes(resp).await;
    kind == Some(HandshakeKind::Resumed)
}

/// A client with its own session store.
fn client(ca: &TestCa, tls12_only: bool) -> Arc<ClientConfig> {
    if !tls12_only {
        return client_config(&[&ca.der], &[b"http/1.1"]);
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).expect("root");
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("TLS 1.2")
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.resumption = Resumption::in_memory_sessions(64);
    Arc::new(cfg)
}

/// Waits (at most 10 s) until `p` has logged `n` ticket key reloads.
fn wait_reloads(p: &Process, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = p
            .log
            .lock()
            .unwrap()
            .matches("session ticket keys reloaded")
            .count();
        if seen >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ticket keys not reloaded {n} time(s):\n{}",
            p.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_key_file_resume_each_others_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("tickets root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    let (k1, k2) = (key(), key());
    install_keys(d, "shared.keys", &[&k1]);
    install_keys(d, "other.keys", &[&k2]);
    let a = Process::spawn(&config(d, "a.toml", "shared.keys"), d);
    let b = Process::spawn(&config(d, "b.toml", "shared.keys"), d);
    let other = Process::spawn(&config(d, "c.toml", "other.keys"), d);

    for tls12 in [false, true] {
        let cfg = client(&ca, tls12);
        assert!(
            !resumed(&a, &cfg).await,
            "first contact is a full handshake"
        );
        assert!(
            resumed(&b, &cfg).await,
            "A's ticket resumes on B (TLS 1.2 only: {tls12})"
        );
        assert!(
            resumed(&a, &cfg).await,
            "and B's on A (TLS 1.2 only: {tls12})"
        );
        let cfg = client(&ca, tls12);
        assert!(!resumed(&a, &cfg).await);
        assert!(
            !resumed(&other, &cfg).await,
            "another key file: full handshake"
        );
    }

    // Rotation, step 1: the new key goes in second place (decrypts, does not encrypt yet)
    install_keys(d, "shared.keys", &[&k1, &k2]);
    wait_reloads(&a, 1);
    wait_reloads(&b, 1);
    let k2_holder = client(&ca, false);
    assert!(!resumed(&other, &k2_holder).await);
    assert!(
        resumed(&a, &k2_holder).await,
        "a K2 ticket already resumes on A"
    );
    // two clients that hold tickets made with K1, for the steps below
    let (k1_holder, k1_holder_too) = (client(&ca, false), client(&ca, false));
    assert!(!resumed(&b, &k1_holder).await);
    assert!(!resumed(&b, &k1_holder_too).await);

    // step 2: the new key moves to the top: new tickets are K2, K1 tickets still resume
    install_keys(d, "shared.keys", &[&k2, &k1]);
    wait_reloads(&a, 2);
    wait_reloads(&b, 2);
    assert!(
        resumed(&a, &k1_holder).await,
        "a K1 ticket resumes after step 2"
    );
    let fresh = client(&ca, false);
    assert!(!resumed(&b, &fresh).await);
    assert!(resumed(&other, &fresh).await, "B now issues K2 tickets");

    // step 3: the old key goes: its tickets get a full handshake (nothing fails), K2 resumes
    install_keys(d, "shared.keys", &[&k2]);
    wait_reloads(&a, 3);
    wait_reloads(&b, 3);
    assert!(
        !resumed(&a, &k1_holder_too).await,
        "a removed key's ticket: full handshake"
    );
    assert!(
        resumed(&b, &k1_holder_too).await,
        "its new ticket is K2 and resumes"
    );

    // a broken file keeps the keys in use
    install_keys(d, "shared.keys", &["not a key"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !b
        .log
        .lock()
        .unwrap()
        .contains("keeping the session ticket keys in use")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "bad file not reported"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cfg = client(&ca, false);
    assert!(!resumed(&a, &cfg).await);
    assert!(
        resumed(&b, &cfg).await,
        "still resuming with the last good keys"
    );
}

#[test]
fn an_unusable_key_file_fails_check_and_run_and_a_readable_one_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("tickets root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    config(d, "certfront.toml", "tickets.keys");
    std::fs::write(d.join("tickets.keys"), format!("{}\nshort\n", key())).expect("keys");
    let (code, _, stderr) = crate::support::run_cli(&["check", "-c", "certfront.toml"], d);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: tls.ticket_key_file: tickets.keys: line 2: not base64"),
        "{stderr}"
    );
    let (code, _, stderr) = crate::support::run_cli(&["run", "-c", "certfront.toml"], d);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("tickets.keys: line 2"), "{stderr}");

    // usable but mode 0644: held to policy.key_file_mode (default "warn")
    std::fs::write(d.join("tickets.keys"), key()).expect("keys");
    let (code, _, stderr) = crate::support::run_cli(&["check", "-c", "certfront.toml"], d);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "warning: tls.ticket_key_file: tickets.keys: mode 0644 lets group or others read it"
        ),
        "{stderr}"
    );
    let strict = std::fs::read_to_string(d.join("certfront.toml")).expect("config")
        + "\n[policy]\nkey_file_mode = \"refuse\"\n";
    std::fs::write(d.join("strict.toml"), strict).expect("config");
    let (code, _, stderr) = crate::support::run_cli(&["check", "-c", "strict.toml"], d);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: tls.ticket_key_file: tickets.keys: mode 0644"),
        "{stderr}"
    );
}
