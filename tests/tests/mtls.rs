//! Mutual TLS per host: required and optional client certificates, the headers the upstream
//! gets, and the deny list (at start and reloaded, closing connections it now names).

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{Sender, body_json, connect, get, plain_get};
use crate::support::pki::{Leaf, TestCa, thumbprint};
use crate::support::start;

fn with_client_cert(
    server_root: &CertificateDer<'static>,
    client: Option<&Leaf>,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_root.clone()).expect("root");
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key"),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_optional_headers_and_deny_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server_ca = TestCa::new("server root");
    std::fs::write(d.join("root.pem"), &server_ca.pem).expect("root");
    server_ca.leaf(&["portal.test"]).write(d, "portal");
    server_ca.leaf(&["tablet.test"]).write(d, "tablet");
    let clients_ca = TestCa::new("physician clients CA");
    std::fs::write(d.join("clients-ca.pem"), &clients_ca.pem).expect("clients ca");
    let alice = clients_ca.client("dr-alice");
    let bob = clients_ca.client("dr-bob");
    let stranger = TestCa::new("someone else").client("mallory");
    std::fs::write(
        d.join("deny.txt"),
        format!("# leaked 2026-11-01\n{}\n", thumbprint(&bob.der)),
    )
    .expect("deny");

    let backend = Backend::start("portal").await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\nupstream = \"{0}\"\n\
         [host.client_auth]\nmode = \"required\"\nca = \"clients-ca.pem\"\ndeny = \"deny.txt\"\n\
         [[host]]\nfqdn = \"tablet.test\"\ncert = \"tablet.pem\"\nkey = \"tablet-key.pem\"\nupstream = \"{0}\"\n\
         [host.client_auth]\nmode = \"optional\"\nca = \"clients-ca.pem\"\n",
        backend.url()
    );
    let running = start(&toml, d).await;
    let addr = running.tls_addrs[0];

    // Required: no certificate, a foreign one, a denied one: no handshake.
    for (who, client) in [
        ("none", None),
        ("stranger", Some(&stranger)),
        ("bob (denied)", Some(&bob)),
    ] {
        let cfg = with_client_cert(&server_ca.der, client);
        let refused = match connect(addr, "portal.test", cfg).await {
            Err(_) => true,
            // TLS 1.3: the server's verdict arrives after the client's handshake is done.
            Ok(tls) => {
                let mut s = Sender::over(tls).await;
                s.send(get("portal.test", "/", false)).await.is_err()
            }
        };
        assert!(refused, "{who} must not get through");
    }

    // A valid certificate: the upstream learns who, and a forged header never passes.
    let cfg = with_client_cert(&server_ca.der, Some(&alice));
    let tls = connect(addr, "portal.test", cfg.clone())
        .await
        .expect("alice");
    let mut s = Sender::over(tls).await;
    let mut req = get("portal.test", "/", false);
    req.headers_mut().insert(
        "x-client-cert-thumbprint",
        http::HeaderValue::from_static("FORGED"),
    );
    let echo = body_json(s.send(req).await.expect("response")).await;
    assert_eq!(
        echo["headers"]["x-client-cert-thumbprint"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        echo["headers"]["x-client-cert-thumbprint"][0],
        thumbprint(&alice.der).as_str()
    );
    use base64::Engine;
    let sent = echo["headers"]["x-client-cert"][0]
        .as_str()
        .expect("x-client-cert");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(sent)
            .unwrap(),
        alice.der.as_ref()
    );

    // Optional: without a certificate the request passes, with no client headers.
    let tls = connect(addr, "tablet.test", with_client_cert(&server_ca.der, None))
        .await
        .expect("optional");
    let mut s = Sender::over(tls).await;
    let echo = body_json(
        s.send(get("tablet.test", "/", false))
            .await
            .expect("response"),
    )
    .await;
    assert!(echo["headers"].get("x-client-cert").is_none(), "{echo}");

    // Alice's certificate leaks: added to the deny list, her open connection is closed and
    // new handshakes are refused.
    let mut open = connect(addr, "portal.test", cfg.clone())
        .await
        .expect("alice again");
    open.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 8192];
    let n = open.read(&mut buf).await.expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    std::fs::write(
        d.join("deny.txt"),
        format!(
            "{}\n{}\n",
            thumbprint(&bob.der),
            certfront_certs::sha256_hex(&alice.der)
        ),
    )
    .expect("deny");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match open.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "the open connection of a denied certificate is closed"
    );
    let again = match connect(addr, "portal.test", cfg).await {
        Err(_) => true,
        Ok(tls) => Sender::over(tls)
            .await
            .send(get("portal.test", "/", false))
            .await
            .is_err(),
    };
    assert!(again, "a denied certificate gets no new connection");

    let metrics = plain_get(running.admin_addr.unwrap(), "a", "/metrics").await;
    let text =
        String::from_utf8(crate::support::client::body_bytes(metrics).await.to_vec()).unwrap();
    assert!(
        text.contains(
            "certfront_client_cert_rejections_total{host=\"portal.test\",reason=\"denied\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "certfront_client_cert_rejections_total{host=\"portal.test\",reason=\"invalid\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "certfront_client_cert_rejections_total{host=\"portal.test\",reason=\"missing\"} 1"
        ),
        "{text}"
    );
}
