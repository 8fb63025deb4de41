//! Re-encrypting to IIS by IP address: the IIS certificate names the server's FQDN, so
//! certfront must send that name as SNI and verify it (`tls_name`), not the IP.

use std::sync::Arc;

use http::StatusCode;
use rustls::server::ResolvesServerCertUsingSni;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::backend::Backend;
use crate::support::client::{Sender, body_json, client_config, connect, get};
use crate::support::pki::TestCa;
use crate::support::{run_cli, start};

/// An IIS stand-in whose certificate carries only `dns_name`, and which (like IIS with
/// SNI bindings) completes no handshake for any other server name, or none.
async fn iis_backend(ca: &TestCa, dns_name: &str) -> Backend {
    let leaf = ca.leaf(&[dns_name]);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("cert");
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).expect("certified key");
    let mut by_sni = ResolvesServerCertUsingSni::new();
    by_sni.add(dns_name, certified).expect("name in cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(by_sni));
    Backend::start_tls_config("iis01", Arc::new(config)).await
}

fn host(name: &str, upstream: &str) -> String {
    format!(
        "[[host]]\nfqdn = \"{name}\"\ncert = \"{name}.pem\"\nkey = \"{name}-key.pem\"\n\
         upstream = {upstream}\nupstream_ca = \"iis-root.pem\"\n\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_by_ip_is_verified_against_tls_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let front_ca = TestCa::new("front root");
    std::fs::write(dir.path().join("root.pem"), &front_ca.pem).expect("root");
    for name in ["app.test", "byip.test", "wrongname.test"] {
        front_ca.leaf(&[name]).write(dir.path(), name);
    }
    let iis_ca = TestCa::new("hospital private root");
    std::fs::write(dir.path().join("iis-root.pem"), &iis_ca.pem).expect("iis root");
    let iis = iis_backend(&iis_ca, "iis01.corp.test").await;
    let url = format!("https://{}", iis.addr);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[tls]\ntrust = [\"root.pem\"]\n\n{}{}{}",
        host(
            "app.test",
            &format!("{{ url = \"{url}\", tls_name = \"IIS01.corp.test\" }}")
        ),
        host("byip.test", &format!("\"{url}\"")),
        host(
            "wrongname.test",
            &format!("[{{ url = \"{url}\", tls_name = \"iis02.corp.test\" }}]")
        ),
    );
    std::fs::write(dir.path().join("certfront.toml"), &toml).expect("config");

    // `check` warns about the IP upstream without tls_name, and still passes
    let (code, _, stderr) = run_cli(&["check", "-c", "certfront.toml"], dir.path());
    assert_eq!(code, 0, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!(
            "warning: certfront.toml: host[1].upstream: \"{url}\" is an IP address without tls_name"
        )),
        "{}",
        warnings[0]
    );

    let running = start(&toml, dir.path()).await;
    let addr = running.tls_addrs[0];
    let send = |sni: &'static str| {
        let config = client_config(&[&front_ca.der], &[b"http/1.1"]);
        async move {
            let tls = connect(addr, sni, config).await.expect("handshake");
            Sender::over(tls)
                .await
                .send(get(sni, "/Mobile/Service.svc", false))
                .await
                .expect("response")
        }
    };

    let resp = send("app.test").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let echo = body_json(resp).await;
    assert_eq!(echo["backend"], "iis01");
    // the Host header stays the client's (IIS binds sites by host header)
    assert_eq!(echo["headers"]["host"][0], "app.test");

    // by IP alone: the certificate names no IP and the backend wants SNI: 502
    assert_eq!(send("byip.test").await.status(), StatusCode::BAD_GATEWAY);
    // a tls_name the certificate does not carry: 502 as well
    assert_eq!(
        send("wrongname.test").await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(iis.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}
