//! Mutual TLS per host: required and optional client certificates, the headers the upstream
//! gets, and the deny list (at start and reloaded, closing connections it now names).

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{Sender, admin_get, admin_text, admin_until, body_json, connect, get};
use crate::support::pki::{Leaf, TestCa, thumbprint};
use crate::support::start;

fn with_client_cert(
    server_root: &CertificateDer<'static>,
    client: Option<&Leaf>,
) -> Arc<ClientConfig> {
    crate::support::client::tls_client(&[server_root], &[b"http/1.1"], client)
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

    let metrics = admin_get(running.admin_addr.unwrap(), "/metrics").await;
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

/// Whether `client` is kept out of `portal.test`: no handshake, or (TLS 1.3, where the
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

/// `hex` as the Windows certificate dialog copies it: an invisible U+200E first, then
/// lower-case byte pairs separated by spaces.
fn windows_paste(hex: &str) -> String {
    let pairs: Vec<String> = hex
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
        .collect();
    format!("\u{200E}{}", pairs.join(" "))
}

/// A portal host requiring client certificates from `clients_ca`, deny list `deny.txt`.
async fn portal_with_deny_list(
    d: &std::path::Path,
    server_ca: &TestCa,
    clients_ca: &TestCa,
) -> (certfront::Running, Backend) {
    std::fs::write(d.join("root.pem"), &server_ca.pem).expect("root");
    server_ca.leaf(&["portal.test"]).write(d, "portal");
    std::fs::write(d.join("clients-ca.pem"), &clients_ca.pem).expect("clients ca");
    let backend = Backend::start("portal").await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"portal.test\"\ncert = \"portal.pem\"\nkey = \"portal-key.pem\"\nupstream = \"{}\"\n\
         [host.client_auth]\nmode = \"required\"\nca = \"clients-ca.pem\"\ndeny = \"deny.txt\"\n",
        backend.url()
    );
    (start(&toml, d).await, backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_list_pasted_from_windows_denies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server_ca = TestCa::new("server root");
    let clients_ca = TestCa::new("clients CA");
    let alice = clients_ca.client("dr-alice");
    let bob = clients_ca.client("dr-bob");
    // A Windows (Notepad) file: CRLF line ends, a comment, bob's thumbprint as pasted.
    std::fs::write(
        d.join("deny.txt"),
        format!(
            "# bob's tablet was stolen\r\n{}\r\n",
            windows_paste(&thumbprint(&bob.der))
        ),
    )
    .expect("deny");
    let (running, _backend) = portal_with_deny_list(d, &server_ca, &clients_ca).await;
    let addr = running.tls_addrs[0];

    assert!(
        kept_out(addr, with_client_cert(&server_ca.der, Some(&bob))).await,
        "bob's pasted thumbprint must deny him"
    );
    assert!(
        !kept_out(addr, with_client_cert(&server_ca.der, Some(&alice))).await,
        "alice is not on the list"
    );
    let admin = running.admin_addr.expect("admin");
    let certs: serde_json::Value =
        serde_json::from_str(&admin_text(admin, "/certs").await).expect("json");
    let deny = &certs["hosts"][0]["deny_list"];
    assert_eq!(deny["entries"], 1, "{deny}");
    assert!(deny["last_reload"]["error"].is_null(), "{deny}");
    let metrics = admin_text(admin, "/metrics").await;
    assert!(
        metrics.contains("certfront_deny_list_reload_failing{host=\"portal.test\"} 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_deny_list_keeps_the_old_one_and_is_impossible_to_miss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let server_ca = TestCa::new("server root");
    let clients_ca = TestCa::new("clients CA");
    let alice = clients_ca.client("dr-alice");
    let bob = clients_ca.client("dr-bob");
    let deny = d.join("deny.txt");
    std::fs::write(&deny, format!("{}\n", thumbprint(&bob.der))).expect("deny");
    let (running, _backend) = portal_with_deny_list(d, &server_ca, &clients_ca).await;
    let addr = running.tls_addrs[0];
    let admin = running.admin_addr.expect("admin");
    let alice_cfg = with_client_cert(&server_ca.der, Some(&alice));
    let bob_cfg = with_client_cert(&server_ca.der, Some(&bob));

    // An edit that adds alice but also a line that is no fingerprint: refused whole.
    std::fs::write(
        &deny,
        format!(
            "{}\n{}\nCN=dr-carol\n",
            thumbprint(&bob.der),
            thumbprint(&alice.der)
        ),
    )
    .expect("deny");
    let failing = "certfront_deny_list_reload_failing{host=\"portal.test\"} 1";
    let metrics = admin_until(admin, "/metrics", |t| t.contains(failing))
        .await
        .unwrap_or_else(|t| panic!("gauge not raised:\n{t}"));
    assert!(metrics.contains(failing));
    let certs: serde_json::Value =
        serde_json::from_str(&admin_text(admin, "/certs").await).expect("json");
    let block = &certs["hosts"][0]["deny_list"];
    assert_eq!(block["path"], deny.display().to_string(), "{block}");
    assert_eq!(block["entries"], 1, "the old list stays: {block}");
    assert_eq!(block["last_reload"]["result"], "failure", "{block}");
    let error = block["last_reload"]["error"].as_str().expect("error");
    assert!(
        error.contains("line 3: \"CN=dr-carol\" contains 'N', which is not a hex digit"),
        "{error}"
    );
    // The old list is still applied: bob out, alice (only on the refused list) still in.
    assert!(kept_out(addr, bob_cfg.clone()).await, "bob stays denied");
    assert!(
        !kept_out(addr, alice_cfg.clone()).await,
        "a refused list is not applied in part"
    );

    // The next good edit takes effect and clears the gauge and the error.
    std::fs::write(
        &deny,
        format!("{}\n{}\n", thumbprint(&bob.der), thumbprint(&alice.der)),
    )
    .expect("deny");
    let cleared = "certfront_deny_list_reload_failing{host=\"portal.test\"} 0";
    admin_until(admin, "/metrics", |t| t.contains(cleared))
        .await
        .unwrap_or_else(|t| panic!("gauge not cleared:\n{t}"));
    let certs: serde_json::Value =
        serde_json::from_str(&admin_text(admin, "/certs").await).expect("json");
    let block = &certs["hosts"][0]["deny_list"];
    assert_eq!(block["entries"], 2, "{block}");
    assert_eq!(block["last_reload"]["result"], "success", "{block}");
    assert!(block["last_reload"]["error"].is_null(), "{block}");
    assert!(kept_out(addr, alice_cfg).await, "alice is denied now");
}
