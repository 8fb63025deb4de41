//! Certificate selection by SNI: exact names, wildcard hosts, unknown names, no SNI,
//! protocol versions.

use std::sync::Arc;

use rustls::AlertDescription;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::client::{self, client_config, connect, peer_leaf};
use crate::support::pki::{Leaf, TestCa};
use crate::support::start;

struct Setup {
    dir: TempDir,
    ca: TestCa,
    leaves: Vec<(String, Leaf)>,
}

/// Three FQDN hosts and a wildcard host, each with its own certificate.
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("SNI test root");
    let mut leaves = Vec::new();
    for name in ["app.test", "tablet.test", "portal.test", "*.agency.test"] {
        let leaf = ca.leaf(&[name]);
        let stem = name.replace('*', "wild");
        leaf.write(dir.path(), &stem);
        leaves.push((name.to_owned(), leaf));
    }
    std::fs::write(dir.path().join("root.pem"), &ca.pem).expect("root");
    Setup { dir, ca, leaves }
}

fn config(s: &Setup, tls_extra: &str) -> String {
    let mut toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\n\n[tls]\ntrust = [\"root.pem\"]\n{tls_extra}\n"
    );
    for (name, _) in &s.leaves {
        let stem = name.replace('*', "wild");
        toml.push_str(&format!(
            "[[host]]\nfqdn = \"{name}\"\ncert = \"{stem}.pem\"\nkey = \"{stem}-key.pem\"\nrespond = {{ status = 200, body = \"{name}\" }}\n\n"
        ));
    }
    toml
}

/// The handshake failed with the server's `unrecognized_name` alert.
pub(crate) fn assert_unrecognized_name(err: &std::io::Error) {
    assert_eq!(
        rustls_error(err),
        Some(&rustls::Error::AlertReceived(
            AlertDescription::UnrecognisedName
        )),
        "{err}"
    );
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_gets_its_own_certificate_and_wildcards_match_one_label() {
    let s = setup();
    let running = start(&config(&s, ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    for (name, leaf) in &s.leaves {
        let sni = name.replace('*', "east");
        let tls = connect(addr, &sni, cfg.clone()).await.expect("handshake");
        assert_eq!(peer_leaf(&tls), leaf.der, "certificate served for {sni}");
    }
    // Upper case and a second label under the wildcard's domain.
    let tls = connect(addr, "WEST.Agency.Test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(peer_leaf(&tls), s.leaves[3].1.der);
    // A wildcard covers one label only: a.b.agency.test is not served.
    let err = connect(addr, "a.b.agency.test", cfg.clone())
        .await
        .unwrap_err();
    assert_unrecognized_name(&err);
    // Every listener serves, IPv6 included.
    assert!(running.tls_addrs[1].is_ipv6());
    let tls = connect(running.tls_addrs[1], "portal.test", cfg.clone())
        .await
        .expect("IPv6 listener");
    assert_eq!(peer_leaf(&tls), s.leaves[2].1.der);
    // And the proxy answers HTTP with the host chosen by SNI.
    let (status, body) = client::fetch(
        addr,
        "tablet.test",
        cfg,
        client::get("tablet.test", "/", false),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"tablet.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sni_is_refused_with_unrecognized_name() {
    let s = setup();
    let running = start(&config(&s, "unknown_sni = \"reject\""), s.dir.path()).await;
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let err = connect(running.tls_addrs[0], "nobody.test", cfg)
        .await
        .unwrap_err();
    assert_unrecognized_name(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sni_gets_the_default_host_when_asked() {
    let s = setup();
    let tls = "unknown_sni = \"default\"\ndefault_host = \"portal.test\"";
    let running = start(&config(&s, tls), s.dir.path()).await;
    let cfg = client_config(&[&s.ca.der], &[b"http/1.1"]);
    let tls = connect(running.tls_addrs[0], "portal.test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(peer_leaf(&tls), s.leaves[2].1.der);
    let err = connect(running.tls_addrs[0], "nobody.test", cfg)
        .await
        .unwrap_err();
    // The default host's certificate was presented; the client rejects it for the wrong name.
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(_))
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sni_uses_default_host_or_fails() {
    let s = setup();
    let with_default = start(&config(&s, "default_host = \"app.test\""), s.dir.path()).await;
    let mut cfg = (*client_config(&[&s.ca.der], &[b"http/1.1"])).clone();
    cfg.enable_sni = false;
    let cfg = Arc::new(cfg);
    let tls = connect(with_default.tls_addrs[0], "app.test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(peer_leaf(&tls), s.leaves[0].1.der);

    let without = start(&config(&s, ""), s.dir.path()).await;
    let err = connect(without.tls_addrs[0], "app.test", cfg)
        .await
        .unwrap_err();
    assert!(
        matches!(rustls_error(&err), Some(rustls::Error::AlertReceived(_))),
        "{err}"
    );
}

/// A TLS 1.1 ClientHello (no supported_versions extension), written by hand because no
/// TLS library here will still send one.
fn tls11_client_hello(sni: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    let list_len = name.len() + 3;
    ext.extend_from_slice(&[0x00, 0x00]); // server_name
    ext.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name);
    // signature_algorithms (ecdsa_secp256r1_sha256, rsa_pkcs1_sha256) and supported_groups
    // (secp256r1), so that the protocol version is the only thing wrong with this hello.
    ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01]);
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]);
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE-ECDSA/RSA-AES128-GCM (TLS 1.2 suites)
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused_and_min_version_1_3_refuses_1_2() {
    let s = setup();
    let running = start(&config(&s, ""), s.dir.path()).await;
    let mut tcp = tokio::net::TcpStream::connect(running.tls_addrs[0])
        .await
        .expect("connect");
    tcp.write_all(&tls11_client_hello("app.test"))
        .await
        .expect("write");
    let mut reply = [0u8; 7];
    tcp.read_exact(&mut reply).await.expect("alert");
    assert_eq!(reply[0], 0x15, "an alert record, got {reply:?}");
    assert_eq!(reply[6], 70, "protocol_version alert, got {reply:?}");

    let strict = start(&config(&s, "min_version = \"1.3\""), s.dir.path()).await;
    let mut store = rustls::RootCertStore::empty();
    store.add(s.ca.der.clone()).expect("root");
    let tls12_only = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    let err = connect(strict.tls_addrs[0], "app.test", Arc::new(tls12_only))
        .await
        .unwrap_err();
    assert!(rustls_error(&err).is_some(), "{err}");
    // TLS 1.3 still works there.
    let cfg = client_config(&[&s.ca.der], &[b"h2"]);
    let tls = connect(strict.tls_addrs[0], "app.test", cfg)
        .await
        .expect("TLS 1.3");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

/// A client's TLS 1.3 config offering only `suites`, in that order.
fn client_with_suites(
    s: &Setup,
    suites: &[rustls::SupportedCipherSuite],
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = suites.to_vec();
    let mut store = rustls::RootCertStore::empty();
    store.add(s.ca.der.clone()).expect("root");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_128_gcm_is_chosen_first_and_every_offered_suite_works() {
    use rustls::crypto::aws_lc_rs::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    let s = setup();
    let running = start(&config(&s, ""), s.dir.path()).await;
    let addr = running.tls_addrs[0];
    let cases = [
        // Windows SChannel's order: AES-256 first. The server's order wins.
        (
            vec![TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256],
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_256_GCM_SHA384],
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            vec![TLS13_AES_256_GCM_SHA384],
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            vec![TLS13_CHACHA20_POLY1305_SHA256],
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
    ];
    for (offered, chosen) in cases {
        let tls = connect(addr, "app.test", client_with_suites(&s, &offered))
            .await
            .expect("handshake");
        let suite = tls.get_ref().1.negotiated_cipher_suite().expect("suite");
        assert_eq!(suite.suite(), chosen, "client offered {offered:?}");
    }
}
