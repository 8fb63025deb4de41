//! Client-certificate CRLs made by a real CA tool (`openssl ca -gencrl`): a revoked
//! certificate is refused at the next handshake and its open connections (HTTP/1.1
//! keep-alive, HTTP/2, WebSocket tunnel) are closed; a CRL that is signed by another CA,
//! truncated, a delta CRL or older is refused whole with the last good set kept; an expired CRL under
//! `crl_expired = "refuse"` and `"accept"`; `crl_scope` on a two-tier PKI; the refusal log
//! line names the certificate; `certs inspect` shows where a CA publishes its CRL; a
//! `crl_url` served by a loopback HTTP server is enforced, and its cached copy after a
//! restart with the server down.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{Sender, admin_text, admin_until, connect, get};
use crate::support::pki::{Leaf, TestCa, thumbprint};
use crate::support::start;

/// A CA run by `openssl ca` over a key and certificate made by the test (its index and CRL
/// number in a directory of its own), as an AD CS or OpenSSL CA publishes CRLs.
struct OpensslCa {
    dir: PathBuf,
}

impl OpensslCa {
    fn new(dir: &Path, ca: &TestCa) -> OpensslCa {
        std::fs::create_dir_all(dir).expect("ca dir");
        std::fs::write(dir.join("ca.pem"), &ca.pem).expect("ca cert");
        std::fs::write(dir.join("ca-key.pem"), ca.key_pem()).expect("ca key");
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("crlnumber"), "1000\n").expect("crlnumber");
        std::fs::write(
            dir.join("openssl.cnf"),
            format!(
                "[ca]\ndefault_ca = cfca\n[cfca]\ndir = {}\ndatabase = $dir/index.txt\n\
                 crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca-key.pem\n\
                 default_md = sha256\ndefault_crl_days = 7\n\
                 [delta_ext]\n2.5.29.27 = critical, DER:02:02:0F:FF\n",
                dir.display()
            ),
        )
        .expect("openssl.cnf");
        OpensslCa {
            dir: dir.to_owned(),
        }
    }

    fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("/usr/bin/openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `openssl ca -revoke`: the certificate goes on every CRL generated after.
    fn revoke(&self, leaf: &Leaf) {
        let path = self
            .dir
            .join(format!("revoke-{}.pem", thumbprint(&leaf.der)));
        std::fs::write(&path, &leaf.cert_pem).expect("cert to revoke");
        self.openssl(&[
            "ca",
            "-config",
            "openssl.cnf",
            "-revoke",
            path.to_str().unwrap(),
        ]);
    }

    /// `openssl ca -gencrl` (PEM), with `extra` arguments (e.g. `-crlsec 1`).
    fn crl_pem(&self, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["ca", "-config", "openssl.cnf", "-gencrl"];
        args.extend_from_slice(extra);
        self.openssl(&args)
    }

    /// The same CRL as DER (`openssl crl -outform DER`), as AD CS publishes it.
    fn crl_der(&self, extra: &[&str]) -> Vec<u8> {
        let pem = self.dir.join("crl-to-convert.pem");
        std::fs::write(&pem, self.crl_pem(extra)).expect("pem crl");
        self.openssl(&["crl", "-in", pem.to_str().unwrap(), "-outform", "DER"])
    }
}

fn client(server_root: &CertificateDer<'static>, who: &Leaf, alpn: &[u8]) -> Arc<ClientConfig> {
    crate::support::client::tls_client(&[server_root], &[alpn], Some(who))
}

/// Whether `cfg` is kept out of `portal.test`: no handshake, or (TLS 1.3, where the
/// server's verdict comes after the client finished) no response.
async fn kept_out(addr: std::net::SocketAddr, cfg: Arc<ClientConfig>) -> bool {
    match connect(addr, "portal.test", cfg).await {
        Err(_) => true,
        Ok(tls) => Sender::over(tls)
            .await
            .send(get("portal.test", "/", false))
            .await
            .is_err(),
    }
}

/// Test PKI: a server root with a `portal.test` leaf, a clients CA run by openssl, and
/// two physicians' certificates.
struct Pki {
    server: TestCa,
    clients: TestCa,
    ca: OpensslCa,
    alice: Leaf,
    bob: Leaf,
}

fn pki(d: &Path) -> Pki {
    let server = TestCa::new("server root");
    std::fs::write(d.join("root.pem"), &server.pem).expect("root");
    server.leaf(&["portal.test"]).write(d, "portal");
    let clients = TestCa::new("Example Issuing CA");
    std::fs::write(d.join("clients-ca.pem"), &clients.pem).expect("clients ca");
    let ca = OpensslCa::new(&d.join("openssl-ca"), &clients);
    let alice = clients.client("dr-alice");
    let bob = clients.client("dr-bob");
    Pki {
        server,
        clients,
        ca,
        alice,
        bob,
    }
}

fn portal_toml(backend: &Backend, client_auth_extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\nupstream = \"{}\"\n\
         [host.client_auth]\nmode = \"required\"\nca = \"clients-ca.pem\"\ncrl = [\"clients.crl\"]\n{client_auth_extra}",
        backend.url()
    )
}

/// Reads from `stream` until it ends (EOF or error), at most `limit`; whether it ended.
async fn ends_within<S: AsyncReadExt + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_by_a_new_crl_refused_and_open_connections_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = pki(d);
    // The CA's first CRL revokes nobody; DER, as AD CS writes it.
    std::fs::write(d.join("clients.crl"), p.ca.crl_der(&[])).expect("crl");
    let backend = Backend::start("portal").await;
    let running = start(&portal_toml(&backend, ""), d).await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    let alice_h1 = client(&p.server.der, &p.alice, b"http/1.1");
    let alice_h2 = client(&p.server.der, &p.alice, b"h2");
    assert!(!kept_out(addr, alice_h1.clone()).await, "alice gets in");

    // Three open connections of alice: HTTP/1.1 keep-alive, HTTP/2 and a WebSocket tunnel;
    // and one of bob, whom the next CRL does not name.
    let mut h1 = connect(addr, "portal.test", alice_h1.clone())
        .await
        .expect("h1");
    h1.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 8192];
    let n = h1.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let h2 = connect(addr, "portal.test", alice_h2).await.expect("h2");
    let mut h2 = Sender::over(h2).await;
    assert!(h2.send(get("portal.test", "/", true)).await.is_ok());
    let mut ws = connect(addr, "portal.test", alice_h1.clone())
        .await
        .expect("ws");
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: portal.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .expect("upgrade");
    let n = ws.read(&mut buf).await.expect("101");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let bob_cfg = client(&p.server.der, &p.bob, b"http/1.1");
    let mut bob_open = connect(addr, "portal.test", bob_cfg.clone())
        .await
        .expect("bob");

    // The administrator revokes alice's certificate and publishes the CRL (PEM this time).
    p.ca.revoke(&p.alice);
    crate::support::replace_file(
        &d.join("clients.crl"),
        &String::from_utf8(p.ca.crl_pem(&[])).unwrap(),
    );
    // Generous bound: the reload is debounced (200 ms) and the close is immediate; the
    // contract's 3 s is what the design promises, 10 s keeps a slow machine from failing.
    assert!(
        ends_within(&mut h1, Duration::from_secs(10)).await,
        "keep-alive closed"
    );
    assert!(
        ends_within(&mut ws, Duration::from_secs(10)).await,
        "tunnel closed"
    );
    let mut h2_closed = false;
    for _ in 0..100 {
        if h2.send(get("portal.test", "/", true)).await.is_err() {
            h2_closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(h2_closed, "HTTP/2 connection closed");
    assert!(kept_out(addr, alice_h1).await, "revoked: no new connection");

    // Bob is not on the CRL: his open connection still works, and so does a new one.
    bob_open
        .write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n")
        .await
        .expect("write");
    let n = bob_open.read(&mut buf).await.expect("bob's response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(!kept_out(addr, bob_cfg).await, "bob still gets in");

    let metrics = admin_text(admin, "/metrics").await;
    assert!(
        metrics.contains(
            "certfront_client_cert_rejections_total{host=\"portal.test\",reason=\"revoked\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("certfront_crl_revoked_certificates{host=\"portal.test\",issuer=\"CN=Example Issuing CA\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certfront_crl_reload_failing{host=\"portal.test\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certfront_crl_next_update_timestamp_seconds{host=\"portal.test\""),
        "{metrics}"
    );
    let certs: serde_json::Value =
        serde_json::from_str(&admin_text(admin, "/certs").await).expect("json");
    let crl = &certs["hosts"][0]["crl"];
    // openssl keeps the next CRL number in hex: 1000 is 4096, the second CRL is 4097.
    assert_eq!(crl["in_force"][0]["number"], "4097", "{crl}");
    assert_eq!(crl["in_force"][0]["revoked"], 1, "{crl}");
    // The inventory page shows the CRL in force beside the host's client authentication.
    let page = admin_text(admin, "/").await;
    assert!(
        page.contains("CRL CN=Example Issuing CA: 1 revoked, next update "),
        "{page}"
    );
    running.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crls_are_refused_whole_and_the_last_good_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = pki(d);
    let empty = p.ca.crl_pem(&[]); // number 4096 (openssl writes 1000 hex), revokes nobody
    p.ca.revoke(&p.bob);
    let good = p.ca.crl_pem(&[]); // number 4097, revokes bob
    std::fs::write(d.join("clients.crl"), &good).expect("crl");
    let backend = Backend::start("portal").await;
    let running = start(&portal_toml(&backend, ""), d).await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    let alice = client(&p.server.der, &p.alice, b"http/1.1");
    let bob = client(&p.server.der, &p.bob, b"http/1.1");
    assert!(kept_out(addr, bob.clone()).await, "bob is revoked");
    assert!(!kept_out(addr, alice.clone()).await, "alice gets in");

    // Another CA's CRL (same tool, an empty list), a truncated copy of the good one, and
    // the older CRL: each is refused, and bob stays revoked.
    let other = OpensslCa::new(&d.join("other-ca"), &TestCa::new("Some Other CA"));
    let truncated = {
        let der = p.ca.crl_der(&[]);
        der[..der.len() / 2].to_vec()
    };
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "another CA's",
            other.crl_pem(&[]),
            "not one of client_auth.ca",
        ),
        ("a truncated", truncated, "not a valid CRL"),
        ("an older", empty, "older than the CRL number 4097"),
    ];
    for (what, bytes, error) in cases {
        let tmp = d.join("clients.crl.tmp");
        std::fs::write(&tmp, &bytes).expect("write");
        std::fs::rename(&tmp, d.join("clients.crl")).expect("rename");
        let failing = admin_until(admin, "/metrics", |m| {
            m.contains("certfront_crl_reload_failing{host=\"portal.test\"} 1")
        })
        .await;
        assert!(failing.is_ok(), "{what} CRL raises the gauge: {failing:?}");
        let certs = admin_until(admin, "/certs", |c| c.contains(error)).await;
        assert!(
            certs.is_ok(),
            "{what} CRL: /certs says {error:?}: {certs:?}"
        );
        assert!(
            kept_out(addr, bob.clone()).await,
            "{what} CRL: bob stays revoked"
        );
        assert!(
            !kept_out(addr, alice.clone()).await,
            "{what} CRL: alice still gets in"
        );
        // Back to the good CRL, so the next case starts from a clean state.
        crate::support::replace_file(
            &d.join("clients.crl"),
            &String::from_utf8(good.clone()).unwrap(),
        );
        let cleared = admin_until(admin, "/metrics", |m| {
            m.contains("certfront_crl_reload_failing{host=\"portal.test\"} 0")
        })
        .await;
        assert!(cleared.is_ok(), "the good CRL again clears the gauge");
    }

    // At start (and in `check`), another CA's CRL is refused with its reason.
    std::fs::write(d.join("clients.crl"), other.crl_pem(&[])).expect("crl");
    let config = certfront_config::parse(&portal_toml(&backend, ""), d).expect("config");
    let refused = certfront::prepare(config).err().expect("refused");
    let text = refused.to_string();
    assert!(
        text.contains("client_auth.crl")
            && text.contains("CN=Some Other CA")
            && text.contains("not one of client_auth.ca"),
        "{text}"
    );
    running.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_crl_refuses_by_default_and_is_enforced_when_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = pki(d);
    p.ca.revoke(&p.bob);
    // nextUpdate one second after thisUpdate: stale by the time certfront serves.
    std::fs::write(d.join("clients.crl"), p.ca.crl_pem(&["-crlsec", "1"])).expect("crl");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let backend = Backend::start("portal").await;
    let alice = client(&p.server.der, &p.alice, b"http/1.1");
    let bob = client(&p.server.der, &p.bob, b"http/1.1");

    let refuse = start(&portal_toml(&backend, ""), d).await;
    let admin = refuse.admin_addr.expect("admin");
    assert!(
        kept_out(refuse.tls_addrs[0], alice.clone()).await,
        "refuse: a stale CRL refuses even a good certificate"
    );
    let metrics = admin_text(admin, "/metrics").await;
    assert!(
        metrics.contains(
            "certfront_client_cert_rejections_total{host=\"portal.test\",reason=\"crl_expired\"} 1"
        ),
        "{metrics}"
    );
    refuse.drain(Duration::from_secs(5)).await;

    let accept = start(&portal_toml(&backend, "crl_expired = \"accept\"\n"), d).await;
    assert!(
        !kept_out(accept.tls_addrs[0], alice).await,
        "accept: a good certificate passes a stale CRL"
    );
    assert!(
        kept_out(accept.tls_addrs[0], bob).await,
        "accept: the stale CRL is still enforced"
    );
    accept.drain(Duration::from_secs(5)).await;
    drop(p.clients);
}

#[test]
fn a_refused_certificate_is_logged_by_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = pki(d);
    p.ca.revoke(&p.bob);
    std::fs::write(d.join("clients.crl"), p.ca.crl_pem(&[])).expect("crl");
    let toml = "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\n\
         respond = { status = 200, body = \"ok\" }\n\
         [host.client_auth]\nca = \"clients-ca.pem\"\ncrl = [\"clients.crl\"]\n";
    std::fs::write(d.join("certfront.toml"), toml).expect("config");
    let process = crate::support::Process::spawn(&d.join("certfront.toml"), d);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bob = client(&p.server.der, &p.bob, b"http/1.1");
    assert!(rt.block_on(kept_out(process.addr, bob)), "bob is revoked");
    let serial = {
        let (_, cert) = x509_parser::parse_x509_certificate(&p.bob.der).expect("bob");
        cert.raw_serial()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    };
    let mut line = None;
    for _ in 0..100 {
        let log = process.log.lock().unwrap().clone();
        line = log
            .lines()
            .find(|l| l.contains("client certificate refused"))
            .map(str::to_owned);
        if line.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = line.expect("a refusal line at info");
    for part in [
        "host=\"portal.test\"".to_owned(),
        "client=127.0.0.1:".to_owned(),
        "subject=CN=dr-bob".to_owned(),
        "issuer=CN=Example Issuing CA".to_owned(),
        format!("serial={serial}"),
        format!("thumbprint={}", thumbprint(&p.bob.der)),
        "reason=\"revoked\"".to_owned(),
    ] {
        assert!(line.contains(&part), "{part} in {line}");
    }
}

/// `certs inspect` shows where a certificate's CA publishes its CRL and its own
/// certificate (an AD CS certificate carries both), so the admin can copy them.
#[test]
fn inspect_shows_crl_distribution_points_and_authority_info_access() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let out = Command::new("/usr/bin/openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "device-key.pem",
            "-out",
            "device.pem",
            "-subj",
            "/CN=TAB-0042",
            "-days",
            "30",
            "-addext",
            "crlDistributionPoints=URI:http://pki.example.org/CertEnroll/Example%20Issuing%20CA.crl",
            "-addext",
            "authorityInfoAccess=caIssuers;URI:http://pki.example.org/CertEnroll/issuing.crt,OCSP;URI:http://ocsp.example.org/ocsp",
        ])
        .current_dir(d)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, stdout, stderr) = crate::support::run_cli(&["certs", "inspect", "device.pem"], d);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "CRL distribution:    http://pki.example.org/CertEnroll/Example%20Issuing%20CA.crl",
        "authority info:      CA issuers: http://pki.example.org/CertEnroll/issuing.crt",
        "authority info:      OCSP: http://ocsp.example.org/ocsp",
    ] {
        assert!(stdout.contains(line), "{line:?} in\n{stdout}");
    }
    let (code, stdout, _) =
        crate::support::run_cli(&["certs", "inspect", "device.pem", "--json"], d);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let cert = &json[0];
    assert_eq!(
        cert["crl_distribution_points"][0],
        "http://pki.example.org/CertEnroll/Example%20Issuing%20CA.crl",
        "{cert}"
    );
    assert_eq!(
        cert["authority_info_access"].as_array().unwrap().len(),
        2,
        "{cert}"
    );
}

/// A two-tier PKI (root, issuing CA) as AD CS sets it up: `crl_scope = "chain"` also
/// looks the issuing CA up in the root's CRL; `"leaf"` looks at the client's certificate
/// only; a certificate whose issuer has no CRL is refused (status unknown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_scope_checks_the_issuing_ca_and_an_issuer_without_crl_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server = TestCa::new("server root");
    std::fs::write(d.join("root.pem"), &server.pem).expect("root");
    server.leaf(&["portal.test"]).write(d, "portal");
    let root = TestCa::new("Example Root CA");
    let issuing = root.intermediate("Example Issuing CA", |_| {});
    // Both CAs in client_auth.ca: each CRL must be signed by one of them.
    std::fs::write(
        d.join("clients-ca.pem"),
        format!("{}{}", root.pem, issuing.pem),
    )
    .expect("clients ca");
    let device = issuing.client("TAB-0042");
    let root_ca = OpensslCa::new(&d.join("root-ca"), &root);
    let issuing_ca = OpensslCa::new(&d.join("issuing-ca"), &issuing);
    // The root revokes the issuing CA (compromised); the issuing CA revokes nobody.
    let issuing_leaf = Leaf {
        cert_pem: issuing.pem.clone(),
        key_pem: String::new(),
        der: issuing.der.clone(),
    };
    root_ca.revoke(&issuing_leaf);
    std::fs::write(d.join("root.crl"), root_ca.crl_pem(&[])).expect("root crl");
    std::fs::write(d.join("issuing.crl"), issuing_ca.crl_der(&[])).expect("issuing crl");

    // The device sends its chain (leaf, issuing CA).
    let cfg = {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.der.clone()).expect("root");
        let mut config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![device.der.clone(), issuing.der.clone()],
            PrivateKeyDer::from_pem_slice(device.key_pem.as_bytes()).expect("key"),
        )
        .expect("client cert");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    let backend = Backend::start("portal").await;
    let toml = |crls: &str, scope: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n\
             [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\nupstream = \"{}\"\n\
             [host.client_auth]\nca = \"clients-ca.pem\"\ncrl = [{crls}]\ncrl_scope = \"{scope}\"\n",
            backend.url()
        )
    };
    for (crls, scope, refused, reason) in [
        (
            "\"root.crl\", \"issuing.crl\"",
            "chain",
            true,
            Some("revoked"),
        ),
        ("\"root.crl\", \"issuing.crl\"", "leaf", false, None),
        ("\"root.crl\"", "leaf", true, Some("revocation_unknown")),
    ] {
        let running = start(&toml(crls, scope), d).await;
        assert_eq!(
            kept_out(running.tls_addrs[0], cfg.clone()).await,
            refused,
            "crl = [{crls}], crl_scope = {scope:?}"
        );
        if let Some(reason) = reason {
            let metrics = admin_text(running.admin_addr.expect("admin"), "/metrics").await;
            let line = format!(
                "certfront_client_cert_rejections_total{{host=\"portal.test\",reason=\"{reason}\"}} 1"
            );
            assert!(metrics.contains(&line), "{line} in {metrics}");
        }
        running.drain(Duration::from_secs(5)).await;
    }
}

/// A CA web server on loopback serving one CRL at every path: a raw `TcpListener` that
/// answers each request with `body` until it is stopped (then its port refuses).
struct CrlServer {
    port: u16,
    served: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CrlServer {
    fn start(body: Vec<u8>) -> CrlServer {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, stopped) = (served.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: stopped by `stop` (and a wake-up connection), at most 1000 requests.
            for stream in listener.incoming().take(1000) {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if !request.starts_with(b"GET /CertEnroll/Example%20Issuing%20CA.crl HTTP/1.1\r\n")
                {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        CrlServer {
            port,
            served,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/CertEnroll/Example%20Issuing%20CA.crl",
            self.port
        )
    }

    fn served(&self) -> usize {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops serving; the port refuses connections after this returns.
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            t.join().expect("CRL server thread");
        }
    }
}

/// `crl_url`: the CRL is downloaded before serving (a revoked certificate is refused from
/// the first handshake) and cached in `state_dir/crl`; with the CA's web server down, a
/// restart enforces the cached copy; with neither a download nor a cached copy certfront
/// refuses to start, naming the URL.
#[test]
fn fetched_crl_is_enforced_and_its_cached_copy_survives_a_restart_while_the_server_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = pki(d);
    p.ca.revoke(&p.bob);
    // DER, as AD CS publishes at its CDP URL.
    let server = CrlServer::start(p.ca.crl_der(&[]));
    let url = server.url();
    let config = |state: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{state}\"\n\
             [tls]\ntrust = [\"root.pem\"]\n\
             [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\n\
             respond = {{ status = 200, body = \"ok\" }}\n\
             [host.client_auth]\nca = \"clients-ca.pem\"\ncrl_url = [\"{url}\"]\n"
        )
    };
    std::fs::write(d.join("certfront.toml"), config("state")).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bob = client(&p.server.der, &p.bob, b"http/1.1");
    let alice = client(&p.server.der, &p.alice, b"http/1.1");

    let process = crate::support::Process::spawn(&d.join("certfront.toml"), d);
    assert_eq!(server.served(), 1, "downloaded once, before serving");
    assert!(
        rt.block_on(kept_out(process.addr, bob.clone())),
        "bob is revoked"
    );
    assert!(
        !rt.block_on(kept_out(process.addr, alice.clone())),
        "alice gets in"
    );
    let cached: Vec<_> = std::fs::read_dir(d.join("state/crl"))
        .expect("state_dir/crl")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(cached[0].extension().and_then(|e| e.to_str()), Some("crl"));
    let admin = process.admin.expect("admin");
    let certs: serde_json::Value =
        serde_json::from_str(&rt.block_on(admin_text(admin, "/certs"))).expect("json");
    assert_eq!(
        certs["hosts"][0]["crl"]["in_force"][0]["revoked"], 1,
        "{certs}"
    );
    drop(process);

    // The CA's web server goes down; certfront restarts with the same state_dir.
    server.stop();
    let process = crate::support::Process::spawn(&d.join("certfront.toml"), d);
    assert!(
        rt.block_on(kept_out(process.addr, bob)),
        "the cached copy still revokes bob"
    );
    assert!(!rt.block_on(kept_out(process.addr, alice)), "alice gets in");
    let log = process.log.lock().unwrap().clone();
    assert!(
        log.contains(&url) && log.contains("cannot connect"),
        "the failed download is logged with its URL:\n{log}"
    );
    drop(process);

    // No server and no cached copy (a fresh state_dir): refused, naming the URL.
    std::fs::write(d.join("fresh.toml"), config("fresh-state")).expect("config");
    let (code, _, stderr) = crate::support::run_cli(&["run", "-c", "fresh.toml"], d);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&url) && stderr.contains("no download and no cached copy"),
        "{stderr}"
    );
}

/// A `crl_url` added by a configuration reload is downloaded then (the reload waits for
/// it), and the host enforces it from the reload on.
#[test]
fn a_crl_url_added_by_a_reload_is_downloaded_and_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let p = pki(d);
    p.ca.revoke(&p.bob);
    let server = CrlServer::start(p.ca.crl_pem(&[]));
    let config = |extra: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n\
             [tls]\ntrust = [\"root.pem\"]\n\
             [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\n\
             respond = {{ status = 200, body = \"ok\" }}\n\
             [host.client_auth]\nca = \"clients-ca.pem\"\n{extra}"
        )
    };
    std::fs::write(d.join("certfront.toml"), config("")).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bob = client(&p.server.der, &p.bob, b"http/1.1");
    let process = crate::support::Process::spawn(&d.join("certfront.toml"), d);
    assert!(
        !rt.block_on(kept_out(process.addr, bob.clone())),
        "no CRL yet"
    );
    assert_eq!(server.served(), 0);

    crate::support::replace_file(
        &d.join("certfront.toml"),
        &config(&format!("crl_url = [\"{}\"]\n", server.url())),
    );
    let mut refused = false;
    for _ in 0..100 {
        if rt.block_on(kept_out(process.addr, bob.clone())) {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        refused,
        "bob refused after the reload:\n{}",
        process.log.lock().unwrap()
    );
    assert_eq!(server.served(), 1, "downloaded once, by the reload");
    let alice = client(&p.server.der, &p.alice, b"http/1.1");
    assert!(!rt.block_on(kept_out(process.addr, alice)), "alice gets in");
    drop(process);
    server.stop();
}
