//! `[host.policy]`: one host held to a stricter policy (Server and Client Authentication,
//! as an STS certificate needs) at start, at reload, and by the internal CA.

use std::sync::Arc;
use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;
use rustls::ClientConfig;

use crate::support::client::{client_config, connect, peer_leaf};
use crate::support::pki::{Leaf, TestCa};
use crate::support::{eventually, start};

const BOTH: &str = "[host.policy]\nextended_key_usage = [\"server_auth\", \"client_auth\"]\n";

fn both_purposes(ca: &TestCa, name: &str) -> Leaf {
    ca.leaf_with(&[name], |p| {
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    })
}

fn config(sts_extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nrescan_seconds = 0\n\n[tls]\ntrust = [\"root.pem\"]\n\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\n\
         respond = {{ status = 200, body = \"app\" }}\n\n\
         [[host]]\nfqdn = \"sts.test\"\ncert = \"sts.pem\"\nkey = \"sts-key.pem\"\n\
         respond = {{ status = 200, body = \"sts\" }}\n{sts_extra}\n"
    )
}

async fn leaf_of(addr: std::net::SocketAddr, sni: &str, cfg: &Arc<ClientConfig>) -> Vec<u8> {
    let tls = connect(addr, sni, cfg.clone()).await.expect("handshake");
    peer_leaf(&tls).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_policy_holds_one_host_to_more_at_start_and_at_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("policy root");
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(dir.path(), "app");

    // server_auth only: fine for app.test, refused for sts.test, naming host and rule
    ca.leaf(&["sts.test"]).write(dir.path(), "sts");
    let parsed = certfront_config::parse(&config(BOTH), dir.path()).expect("config");
    let refused = certfront::prepare(parsed).err().expect("refused");
    let errors: Vec<String> = refused.0.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("host \"sts.test\": ") && errors[0].contains("extended key usage"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("client_auth"), "{}", errors[0]);

    let sts = both_purposes(&ca, "sts.test");
    sts.write(dir.path(), "sts");
    let running = start(&config(BOTH), dir.path()).await;
    let addr = running.tls_addrs[0];
    let mut cfg = (*client_config(&[&ca.der], &[b"http/1.1"])).clone();
    cfg.resumption = rustls::client::Resumption::disabled();
    let cfg = Arc::new(cfg);
    assert_eq!(leaf_of(addr, "sts.test", &cfg).await, sts.der.to_vec());

    // the same kind of renewal (server_auth only) on both hosts, then SIGHUP's reload:
    // app.test takes it, sts.test keeps its last good certificate
    let app_next = ca.leaf(&["app.test"]);
    app_next.write(dir.path(), "app");
    ca.leaf(&["sts.test"]).write(dir.path(), "sts");
    running.reload_all();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while leaf_of(addr, "app.test", &cfg).await != app_next.der.to_vec() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "app.test not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sts_slot = running.slots()[1].clone();
    let refused = eventually(Duration::from_secs(10), || {
        sts_slot.status().last_error.is_some()
    })
    .await;
    assert!(refused, "sts.test's reload was not refused");
    assert_eq!(leaf_of(addr, "sts.test", &cfg).await, sts.der.to_vec());
    let error = sts_slot
        .status()
        .last_error
        .expect("a failed reload is recorded");
    assert!(error.contains("extended key usage"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_ca_issues_client_authentication_when_the_host_policy_asks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\n\
         [[host]]\nfqdn = \"sts.test\"\ninternal = true\nrespond = {{ status = 200, body = \"sts\" }}\n{BOTH}\n\
         [[host]]\nfqdn = \"app.test\"\ninternal = true\nrespond = {{ status = 200, body = \"app\" }}\n"
    );
    let running = start(&toml, dir.path()).await;
    let root = std::fs::read(dir.path().join("state/ca.pem")).expect("CA root");
    let root = rustls_pki_types::pem::PemObject::from_pem_slice(&root).expect("pem");
    let cfg = client_config(&[&root], &[b"http/1.1"]);
    let purposes = |der: Vec<u8>| {
        certfront_certs::inspect(&der.into())
            .expect("inspect")
            .extended_key_usage
            .expect("EKU extension")
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
    };
    let addr = running.tls_addrs[0];
    assert_eq!(
        purposes(leaf_of(addr, "sts.test", &cfg).await),
        ["server_auth", "client_auth"]
    );
    assert_eq!(
        purposes(leaf_of(addr, "app.test", &cfg).await),
        ["server_auth"]
    );
}
