//! Every CA certificate certfront depends on is watched for expiry: one
//! `certfront_ca_not_after_timestamp_seconds{role,subject,thumbprint}` series per role with
//! the CA's notAfter, the same list in `/certs`, and a rotation to a chain with another
//! intermediate replaces the old intermediate's series.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::CertificateParams;
use time::OffsetDateTime;

use crate::support::client::{admin_get, body_bytes, body_json};
use crate::support::pki::{Leaf, TestCa, thumbprint};
use crate::support::{refused_port, start};

const METRIC: &str = "certfront_ca_not_after_timestamp_seconds";

/// Valid from yesterday for `days`, so every CA below has a notAfter of its own.
fn valid_for(days: i64) -> impl FnOnce(&mut CertificateParams) {
    move |p| {
        let now = OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(days);
    }
}

fn not_after(der: &[u8]) -> f64 {
    certfront_certs::inspect(&der.to_vec().into())
        .expect("inspect")
        .not_after as f64
}

/// `leaf` followed by `inter`: a served chain with its intermediate.
fn write_chain(dir: &Path, leaf: &Leaf, inter: &TestCa) {
    leaf.write(dir, "app");
    std::fs::write(
        dir.join("app.pem"),
        format!("{}{}", leaf.cert_pem, inter.pem),
    )
    .expect("chain");
}

async fn scrape(admin: SocketAddr) -> String {
    let resp = admin_get(admin, "/metrics").await;
    assert_eq!(resp.status(), 200);
    String::from_utf8(body_bytes(resp).await.to_vec()).expect("utf-8")
}

/// The CA series as (role, subject, thumbprint, value), sorted.
fn ca_series(text: &str) -> Vec<(String, String, String, f64)> {
    let mut out: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{METRIC}{{")))
        .map(|l| {
            let label = |name: &str| {
                let key = format!("{name}=\"");
                let start = l.find(&key).expect("label") + key.len();
                l[start..].split('"').next().expect("value").to_owned()
            };
            let value = l.rsplit(' ').next().and_then(|v| v.parse().ok());
            (
                label("role"),
                label("subject"),
                label("thumbprint"),
                value.expect("a number"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    out
}

fn entry(role: &str, subject: &str, der: &[u8]) -> (String, String, String, f64) {
    (
        role.to_owned(),
        subject.to_owned(),
        thumbprint(der),
        not_after(der),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ca_depended_on_is_exported_and_follows_a_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let root = TestCa::with("Hospital Root", valid_for(3000));
    let issuing_a = root.intermediate("Hospital Issuing A", valid_for(400));
    let issuing_b = root.intermediate("Hospital Issuing B", valid_for(500));
    let clients = TestCa::with("Hospital Clients", valid_for(700));
    let iis = TestCa::with("IIS Private Root", valid_for(800));
    std::fs::write(d.join("root.pem"), &root.pem).expect("root");
    std::fs::write(d.join("clients.pem"), &clients.pem).expect("clients");
    std::fs::write(d.join("iis.pem"), &iis.pem).expect("iis");
    write_chain(d, &issuing_a.leaf(&["app.test"]), &issuing_a);
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n\
         [tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\n\
         upstream = \"https://127.0.0.1:{}\"\nupstream_ca = \"iis.pem\"\n\
         [host.client_auth]\nmode = \"optional\"\nca = \"clients.pem\"\n\
         [[host]]\nfqdn = \"portal.test\"\ninternal = true\nrespond = {{ body = \"ok\" }}\n",
        refused_port()
    );
    let running = start(&toml, d).await;
    let admin = running.admin_addr.expect("admin");
    // made by certfront at start, in the default state_dir next to the config
    let internal = certfront_certs::read_certificates(&d.join("state/ca.pem"), None)
        .expect("internal CA root")
        .remove(0);

    let text = scrape(admin).await;
    let mut expected = vec![
        entry("client_ca", "Hospital Clients", &clients.der),
        entry("intermediate", "Hospital Issuing A", &issuing_a.der),
        entry("internal_ca", "certfront internal CA", &internal),
        entry("trust", "Hospital Root", &root.der),
        entry("upstream_ca", "IIS Private Root", &iis.der),
    ];
    expected.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    assert_eq!(ca_series(&text), expected, "{text}");
    // the notAfters differ, so each series carries its own CA's date
    assert!(expected.windows(2).all(|w| w[0].3 != w[1].3));

    // /certs lists the same CAs with days left
    let certs = body_json(admin_get(admin, "/certs").await).await;
    let cas = certs["cas"].as_array().expect("cas array");
    assert_eq!(cas.len(), 5, "{certs:#}");
    let inter = cas
        .iter()
        .find(|c| c["role"] == "intermediate")
        .expect("intermediate");
    assert_eq!(inter["subject"], "Hospital Issuing A");
    assert_eq!(inter["thumbprint"], thumbprint(&issuing_a.der).as_str());
    assert!((398..=400).contains(&inter["days_left"].as_i64().expect("days")));
    assert_eq!(inter["origins"], serde_json::json!(["app.test"]));

    // rotate to a chain through the other intermediate: its series replaces the old one
    write_chain(d, &issuing_b.leaf(&["app.test"]), &issuing_b);
    let rotated = entry("intermediate", "Hospital Issuing B", &issuing_b.der);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut series = ca_series(&scrape(admin).await);
    while !series.contains(&rotated) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        series = ca_series(&scrape(admin).await);
    }
    let mut expected_after: Vec<_> = expected
        .iter()
        .map(|e| {
            if e.0 == "intermediate" {
                rotated.clone()
            } else {
                e.clone()
            }
        })
        .collect();
    expected_after.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    assert_eq!(
        series, expected_after,
        "the old intermediate's series is gone"
    );
    assert!(
        !series.iter().any(|s| s.2 == thumbprint(&issuing_a.der)),
        "{series:?}"
    );
}

/// A CA file edited on a running certfront (here `client_auth.ca`, renewed) reloads the
/// configuration, and the series follow: the new CA's appears, the old one's goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_client_ca_replaces_the_old_series_on_config_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let root = TestCa::with("Root", valid_for(3000));
    let old = TestCa::with("Clients 2024", valid_for(20));
    let new = TestCa::with("Clients 2025", valid_for(700));
    std::fs::write(d.join("root.pem"), &root.pem).expect("root");
    std::fs::write(d.join("clients.pem"), &old.pem).expect("clients");
    root.leaf(&["app.test"]).write(d, "app");
    let path = d.join("certfront.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n\
         [tls]\ntrust = [\"root.pem\"]\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\n\
         respond = { body = \"ok\" }\n\
         [host.client_auth]\nmode = \"optional\"\nca = \"clients.pem\"\n",
    )
    .expect("config");
    let config = certfront_config::load(&path).expect("config");
    let prepared = certfront::prepare(config).unwrap_or_else(|e| panic!("{e}"));
    let running = certfront::start(prepared, std::sync::Arc::new(certfront::Metrics::new()))
        .await
        .expect("start");
    let admin = running.admin_addr.expect("admin");
    let before = vec![
        entry("client_ca", "Clients 2024", &old.der),
        entry("trust", "Root", &root.der),
    ];
    assert_eq!(ca_series(&scrape(admin).await), before);

    std::fs::write(d.join("clients.pem"), &new.pem).expect("renewed CA");
    let after = vec![
        entry("client_ca", "Clients 2025", &new.der),
        entry("trust", "Root", &root.der),
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut series = ca_series(&scrape(admin).await);
    while series != after && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        series = ca_series(&scrape(admin).await);
    }
    assert_eq!(series, after, "the renewed CA replaces the old one");
}
