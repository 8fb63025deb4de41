//! What the gatherer keeps and drops: hosts and files that go away, files that cannot be
//! read, one host's chain swapped while another serves the same intermediate.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::*;

/// A CA certificate named `cn`, self-signed or issued by `parent`, with its key.
fn ca(
    cn: &str,
    parent: Option<&(CertificateDer<'static>, KeyPair)>,
) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = match parent {
        None => params.self_signed(&key).unwrap(),
        Some((der, pkey)) => params
            .signed_by(&key, &Issuer::from_ca_cert_der(der, pkey).unwrap())
            .unwrap(),
    };
    (cert.der().clone(), key)
}

fn write_pem(path: &Path, der: &CertificateDer<'static>) {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der.as_ref());
    std::fs::write(
        path,
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
}

/// Two hosts; `tls.trust` is `trust.pem`, app.test's client CA `clients.pem`, api.test's
/// upstream CA `iis.pem`.
fn config(dir: &Path) -> Config {
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"trust.pem\"]\n\
        [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nrespond = { body = \"ok\" }\n\
        [host.client_auth]\nca = \"clients.pem\"\n\
        [[host]]\nfqdn = \"api.test\"\ncert = \"api.pem\"\nkey = \"api-key.pem\"\n\
        upstream = \"https://127.0.0.1:1\"\nupstream_ca = \"iis.pem\"\n";
    certfront_config::parse(text, dir).unwrap()
}

/// The exported series as (role, subject).
fn series(metrics: &Metrics) -> Vec<(String, String)> {
    let text = String::from_utf8(metrics.render()).unwrap();
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter(|l| l.starts_with("certfront_ca_not_after_timestamp_seconds{"))
        .map(|l| {
            let label = |name: &str| {
                let start = l.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                l[start..].split('"').next().unwrap().to_owned()
            };
            (label("role"), label("subject"))
        })
        .collect();
    out.sort();
    out
}

fn pair(role: &str, subject: &str) -> (String, String) {
    (role.to_owned(), subject.to_owned())
}

struct Pki {
    root: (CertificateDer<'static>, KeyPair),
    inter_a: CertificateDer<'static>,
    inter_b: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
}

fn pki() -> Pki {
    let root = ca("Root", None);
    let inter_a = ca("Issuing A", Some(&root)).0;
    let inter_b = ca("Issuing B", Some(&root)).0;
    // any certificate stands for the leaf: only what follows it is listed
    let leaf = ca("leaf", Some(&root)).0;
    Pki {
        root,
        inter_a,
        inter_b,
        leaf,
    }
}

#[test]
fn hosts_and_files_that_go_away_take_their_series_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    write_pem(&dir.path().join("trust.pem"), &p.root.0);
    write_pem(&dir.path().join("clients.pem"), &ca("Clients", None).0);
    write_pem(&dir.path().join("iis.pem"), &ca("IIS", None).0);
    let config = config(dir.path());
    let metrics = Metrics::new();
    let inputs = Inputs::default();
    let app = [p.leaf.clone(), p.inter_a.clone()];
    let api = [p.leaf.clone(), p.inter_b.clone()];
    refresh(
        &metrics,
        &inputs,
        &config,
        None,
        [("app.test", &app[..]), ("api.test", &api[..])],
    );
    assert_eq!(
        series(&metrics),
        [
            pair("client_ca", "Clients"),
            pair("intermediate", "Issuing A"),
            pair("intermediate", "Issuing B"),
            pair("trust", "Root"),
            pair("upstream_ca", "IIS"),
        ]
    );
    assert_eq!(metrics.cas().len(), 5);

    // api.test is gone (a config reload), and with it its upstream CA and intermediate
    let mut smaller = config;
    smaller.hosts.truncate(1);
    refresh(&metrics, &inputs, &smaller, None, [("app.test", &app[..])]);
    assert_eq!(
        series(&metrics),
        [
            pair("client_ca", "Clients"),
            pair("intermediate", "Issuing A"),
            pair("trust", "Root"),
        ]
    );
    assert_eq!(metrics.cas().len(), 3);
}

#[test]
fn a_ca_file_unreadable_at_a_refresh_keeps_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    write_pem(&dir.path().join("trust.pem"), &p.root.0);
    write_pem(&dir.path().join("clients.pem"), &ca("Clients", None).0);
    let config = config(dir.path());
    let metrics = Metrics::new();
    let inputs = Inputs::default();
    // iis.pem does not exist yet: not watched, and no failure
    refresh(&metrics, &inputs, &config, None, []);
    assert_eq!(
        series(&metrics),
        [pair("client_ca", "Clients"), pair("trust", "Root")]
    );
    // half-written: the old content stays watched
    std::fs::write(dir.path().join("clients.pem"), "-----BEGIN CERT").unwrap();
    refresh(&metrics, &inputs, &config, None, []);
    assert_eq!(
        series(&metrics),
        [pair("client_ca", "Clients"), pair("trust", "Root")]
    );
    // written: the new content replaces it
    write_pem(&dir.path().join("clients.pem"), &ca("Clients 2025", None).0);
    write_pem(&dir.path().join("iis.pem"), &ca("IIS", None).0);
    refresh(&metrics, &inputs, &config, None, []);
    assert_eq!(
        series(&metrics),
        [
            pair("client_ca", "Clients 2025"),
            pair("trust", "Root"),
            pair("upstream_ca", "IIS"),
        ]
    );
}

#[test]
fn a_swapped_chain_replaces_only_that_hosts_intermediates() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    for f in ["trust.pem", "clients.pem", "iis.pem"] {
        write_pem(&dir.path().join(f), &p.root.0);
    }
    let config = config(dir.path());
    let metrics = Metrics::new();
    let inputs = Inputs::default();
    let with_a = [p.leaf.clone(), p.inter_a.clone()];
    refresh(
        &metrics,
        &inputs,
        &config,
        None,
        [("app.test", &with_a[..]), ("api.test", &with_a[..])],
    );
    let inter = |m: &Metrics| -> Vec<(String, String)> {
        series(m)
            .into_iter()
            .filter(|(role, _)| role == "intermediate")
            .collect()
    };
    assert_eq!(inter(&metrics), [pair("intermediate", "Issuing A")]);
    let shared = metrics
        .cas()
        .into_iter()
        .find(|c| c.subject == "Issuing A")
        .unwrap();
    assert_eq!(shared.origins, ["api.test", "app.test"]);

    // app.test moves to B; api.test still serves A, so A stays
    chains_served(
        &metrics,
        &inputs,
        [("app.test", &[p.leaf.clone(), p.inter_b.clone()][..])],
    );
    assert_eq!(
        inter(&metrics),
        [
            pair("intermediate", "Issuing A"),
            pair("intermediate", "Issuing B")
        ]
    );
    // api.test moves to a chain without an intermediate: A is depended on no more
    chains_served(
        &metrics,
        &inputs,
        [("api.test", std::slice::from_ref(&p.leaf))],
    );
    assert_eq!(inter(&metrics), [pair("intermediate", "Issuing B")]);
    // one root in three files: one series per role
    assert_eq!(
        series(&metrics).iter().filter(|(_, s)| s == "Root").count(),
        3
    );
}
