//! The CA list of a configuration: roles, deduplication, subjects, notAfter, order.

use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::*;
use crate::load::{load, read_certificates};
use crate::testutil::{Alg, Ca, Leaf, pem_chain, write_pem};

/// A CA certificate with this subject, valid until `unix` seconds, self-signed or issued.
fn ca(dn: &[(DnType, &str)], not_after: i64, parent: Option<&Ca>) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for (ty, value) in dn {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    let cert = match parent {
        None => params.self_signed(&key).unwrap(),
        Some(p) => {
            let issuer = Issuer::from_ca_cert_der(&p.der, &p.key).unwrap();
            params.signed_by(&key, &issuer).unwrap()
        }
    };
    Ca {
        der: cert.der().clone(),
        key,
    }
}

fn named(cn: &str, not_after: i64) -> Ca {
    ca(&[(DnType::CommonName, cn)], not_after, None)
}

fn input<'a>(
    role: CaRole,
    origin: &'a str,
    der: &'a CertificateDer<'static>,
) -> (CaRole, &'a str, &'a [u8]) {
    (role, origin, der.as_ref())
}

const Y2030: i64 = 1_893_456_000;
const Y2031: i64 = Y2030 + 365 * 86_400;

#[test]
fn every_role_is_listed_with_its_not_after() {
    let root = named("Hospital Root", Y2031);
    let inter = ca(
        &[(DnType::CommonName, "Hospital Issuing CA")],
        Y2030,
        Some(&root),
    );
    let clients = named("Clients CA", Y2030 + 1);
    let upstream = named("IIS Root", Y2030 + 2);
    let internal = named("certfront internal CA", Y2030 + 3);
    let cas = depended_cas([
        input(CaRole::Intermediate, "app.example.org", &inter.der),
        input(CaRole::Trust, "/etc/certfront/root.pem", &root.der),
        input(CaRole::ClientCa, "/etc/certfront/clients.pem", &clients.der),
        input(CaRole::UpstreamCa, "/etc/certfront/iis.pem", &upstream.der),
        input(
            CaRole::InternalCa,
            "/var/lib/certfront/ca.pem",
            &internal.der,
        ),
    ]);
    let got: Vec<(&str, &str, i64)> = cas
        .iter()
        .map(|c| (c.role.as_str(), c.subject.as_str(), c.not_after))
        .collect();
    assert_eq!(
        got,
        [
            ("intermediate", "Hospital Issuing CA", Y2030),
            ("trust", "Hospital Root", Y2031),
            ("client_ca", "Clients CA", Y2030 + 1),
            ("upstream_ca", "IIS Root", Y2030 + 2),
            ("internal_ca", "certfront internal CA", Y2030 + 3),
        ]
    );
    assert_eq!(cas[0].thumbprint, sha1_hex(&inter.der));
    assert_eq!(cas[0].thumbprint.len(), 40);
    assert!(
        cas[0]
            .thumbprint
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(cas[1].origins, ["/etc/certfront/root.pem"]);
}

#[test]
fn one_entry_per_role_and_thumbprint_with_every_origin() {
    let root = named("Shared Root", Y2030);
    let inter = ca(
        &[(DnType::CommonName, "Shared Issuing CA")],
        Y2030,
        Some(&root),
    );
    let cas = depended_cas([
        // two hosts served with the same intermediate
        input(CaRole::Intermediate, "app.example.org", &inter.der),
        input(CaRole::Intermediate, "tablet.example.org", &inter.der),
        input(CaRole::Intermediate, "app.example.org", &inter.der),
        // one root used as a trust anchor and as the client CA: one series per role
        input(CaRole::Trust, "root.pem", &root.der),
        input(CaRole::Trust, "root.pem", &root.der),
        input(CaRole::ClientCa, "root.pem", &root.der),
    ]);
    assert_eq!(cas.len(), 3, "{cas:#?}");
    assert_eq!(cas[0].role, CaRole::Intermediate);
    assert_eq!(cas[0].origins, ["app.example.org", "tablet.example.org"]);
    assert_eq!(cas[1].role, CaRole::Trust);
    assert_eq!(cas[1].origins, ["root.pem"]);
    assert_eq!(cas[2].role, CaRole::ClientCa);
    assert_eq!(cas[1].thumbprint, cas[2].thumbprint);
}

#[test]
fn within_a_role_the_soonest_expiry_comes_first() {
    let late = named("B late", Y2031);
    let soon = named("A soon", Y2030);
    let cas = depended_cas([
        input(CaRole::Trust, "roots.pem", &late.der),
        input(CaRole::Trust, "roots.pem", &soon.der),
    ]);
    let subjects: Vec<&str> = cas.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["A soon", "B late"]);
}

#[test]
fn the_subject_is_the_cn_else_the_first_rdns_and_bounded() {
    let with_cn = ca(
        &[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Example Hospital"),
            (DnType::CommonName, "Example Hospital Root CA"),
        ],
        Y2030,
        None,
    );
    let without_cn = ca(
        &[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Example Hospital"),
            (DnType::OrganizationalUnitName, "PKI"),
        ],
        Y2030,
        None,
    );
    let long = "A".repeat(30) + " " + &"B".repeat(60);
    let long_cn = named(&long, Y2030);
    let control = named("Evil\nCA\u{7}", Y2030);
    let subject_of = |c: &Ca| {
        depended_cas([input(CaRole::Trust, "f", &c.der)])
            .remove(0)
            .subject
    };
    assert_eq!(subject_of(&with_cn), "Example Hospital Root CA");
    let rdns = subject_of(&without_cn);
    assert!(rdns.starts_with("C=DE, O=Example Hospital"), "{rdns}");
    let cut = subject_of(&long_cn);
    assert_eq!(cut.chars().count(), SUBJECT_MAX_CHARS);
    assert!(
        cut.starts_with(&"A".repeat(30)) && cut.ends_with('…'),
        "{cut}"
    );
    assert_eq!(subject_of(&control), "Evil CA");
}

#[test]
fn an_unparseable_certificate_is_left_out_not_fatal() {
    let good = named("Good Root", Y2030);
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    let cas = depended_cas([
        input(CaRole::Trust, "roots.pem", &garbage),
        input(CaRole::Trust, "roots.pem", &good.der),
    ]);
    assert_eq!(cas.len(), 1);
    assert_eq!(cas[0].subject, "Good Root");
}

#[test]
fn days_left_round_down_and_go_negative() {
    let root = named("Root", Y2030);
    let entry = depended_cas([input(CaRole::Trust, "f", &root.der)]).remove(0);
    let at = |secs: i64| UNIX_EPOCH + StdDuration::from_secs(u64::try_from(secs).unwrap());
    assert_eq!(entry.days_left(at(Y2030 - 10 * 86_400)), 10);
    assert_eq!(entry.days_left(at(Y2030 - 10 * 86_400 + 1)), 9);
    assert_eq!(entry.days_left(at(Y2030 + 1)), -1);
    assert!(entry.days_left(SystemTime::now()) > 0);
}

/// The inputs as the proxy gathers them: a served bundle's chain after its leaf, and the
/// certificates of a PEM file read by the loader `tls.trust` uses.
#[test]
fn from_a_served_bundle_and_a_trust_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root(Alg::P256);
    let inter = root.intermediate(Alg::P256);
    let (leaf, key) = inter.issue(&Leaf::new(&["app.example.org"], Alg::P256));
    let source = write_pem(dir.path(), "app", &[&leaf, &inter.der], &key);
    let bundle = load(&source).unwrap();
    let other = named("Second Root", Y2030);
    let trust = dir.path().join("roots.pem");
    std::fs::write(&trust, pem_chain(&[&root.der, &other.der])).unwrap();
    let roots = read_certificates(&trust, None).unwrap();

    let mut inputs: Vec<(CaRole, &str, &[u8])> = bundle.chain[1..]
        .iter()
        .map(|der| (CaRole::Intermediate, "app.example.org", der.as_ref()))
        .collect();
    inputs.extend(
        roots
            .iter()
            .map(|der| (CaRole::Trust, "roots.pem", der.as_ref())),
    );
    let cas = depended_cas(inputs);
    let got: Vec<(CaRole, String)> = cas.iter().map(|c| (c.role, c.thumbprint.clone())).collect();
    assert_eq!(
        got.len(),
        3,
        "the leaf is not a CA certificate and is not listed: {cas:#?}"
    );
    assert!(got.contains(&(CaRole::Intermediate, sha1_hex(&inter.der))));
    assert!(got.contains(&(CaRole::Trust, sha1_hex(&root.der))));
    assert!(got.contains(&(CaRole::Trust, sha1_hex(&other.der))));
    assert!(!got.iter().any(|(_, t)| *t == sha1_hex(&leaf)));
    assert_eq!(cas[0].subject, "test intermediate");
}
