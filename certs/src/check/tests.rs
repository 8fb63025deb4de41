//! A failing and a passing case for every rule, with RSA and ECDSA certificates.

use std::time::SystemTime;

use time::{Duration, OffsetDateTime};

use super::*;
use crate::load::load;
use crate::policy::{HashAlg, KeyFileMode, Policy};
use crate::testutil::{Alg, Ca, Leaf, fixture, names, set_mode, trust, write_pem};

/// Writes `leaf` issued by `ca` (with `extra` after it) and checks it for `host`.
pub(crate) struct Case {
    pub dir: tempfile::TempDir,
    pub source: CertSource,
}

impl Case {
    pub(super) fn new(ca: &Ca, leaf: &Leaf, extra: &[&CertificateDer<'static>]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.issue(leaf);
        let mut chain = vec![&cert];
        chain.extend_from_slice(extra);
        let source = write_pem(dir.path(), "host", &chain, &key);
        Case { dir, source }
    }

    pub(super) fn check(&self, host: &[&str], policy: &Policy, trust: &TrustAnchors) -> Report {
        let bundle = load(&self.source).unwrap();
        check(
            &names(host),
            &self.source,
            &bundle,
            policy,
            trust,
            SystemTime::now(),
        )
    }

    pub(super) fn cert_file(&self) -> PathBuf {
        self.dir.path().join("host.pem")
    }

    pub(super) fn key_file(&self) -> PathBuf {
        self.dir.path().join("host-key.pem")
    }
}

pub(crate) fn rules(report: &Report) -> Vec<Rule> {
    report.violations.iter().map(|v| v.rule).collect()
}

pub(crate) fn only(report: &Report, rule: Rule) -> &Violation {
    assert_eq!(rules(report), vec![rule], "{:#?}", report.violations);
    &report.violations[0]
}

pub(crate) fn pass(report: &Report) {
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[test]
fn name_rule_rsa_and_ecdsa() {
    for alg in [Alg::Rsa, Alg::P256] {
        let ca = Ca::root(Alg::P256);
        let case = Case::new(&ca, &Leaf::new(&["app.example.org"], alg), &[]);
        let anchors = trust(&[&ca.der]);
        pass(&case.check(
            &["app.example.org", "APP.example.org."],
            &Policy::default(),
            &anchors,
        ));
        let report = case.check(&["tablet.example.org"], &Policy::default(), &anchors);
        let v = only(&report, Rule::Name);
        assert_eq!(
            v.detail,
            "certificate covers [app.example.org], not tablet.example.org"
        );
        assert_eq!(
            v.to_string(),
            format!(
                "{}: name: certificate covers [app.example.org], not tablet.example.org",
                case.cert_file().display()
            )
        );
    }
}

#[test]
fn name_rule_checks_every_alias() {
    let ca = Ca::root(Alg::P256);
    let case = Case::new(
        &ca,
        &Leaf::new(&["app.example.org", "app.internal.example.org"], Alg::P256),
        &[],
    );
    let report = case.check(
        &[
            "app.example.org",
            "app.internal.example.org",
            "tablet.example.org",
            "portal.example.org",
        ],
        &Policy::default(),
        &trust(&[&ca.der]),
    );
    let details: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.detail.as_str())
        .collect();
    assert_eq!(
        details,
        [
            "certificate covers [app.example.org, app.internal.example.org], not tablet.example.org",
            "certificate covers [app.example.org, app.internal.example.org], not portal.example.org",
        ]
    );
}

#[test]
fn wildcard_certificate() {
    let ca = Ca::root(Alg::P256);
    let case = Case::new(&ca, &Leaf::new(&["*.example.org"], Alg::Rsa), &[]);
    let anchors = trust(&[&ca.der]);
    pass(&case.check(
        &["app.example.org", "tablet.example.org"],
        &Policy::default(),
        &anchors,
    ));
    let report = case.check(
        &["example.org", "a.b.example.org"],
        &Policy::default(),
        &anchors,
    );
    assert_eq!(rules(&report), [Rule::Name, Rule::Name]);
}

#[test]
fn subject_cn_is_never_used() {
    let ca = Ca::root(Alg::P256);
    let mut leaf = Leaf::new(&[], Alg::P256);
    leaf.cn = "app.example.org".into();
    let case = Case::new(&ca, &leaf, &[]);
    let report = case.check(&["app.example.org"], &Policy::default(), &trust(&[&ca.der]));
    let v = only(&report, Rule::Name);
    assert!(
        v.detail.starts_with("certificate covers [] ("),
        "{}",
        v.detail
    );
    assert!(
        v.detail
            .contains("clients ignore the subject CN app.example.org"),
        "{}",
        v.detail
    );
}

#[test]
fn key_size_rule_rsa_1024_fixture() {
    let source = CertSource::Pem {
        cert: fixture("rsa1024.pem"),
        key: fixture("rsa1024-key.pem"),
    };
    let bundle = load(&source).unwrap();
    let ca = crate::load::read_certificates(&fixture("ca.pem"), None).unwrap();
    let policy = Policy {
        key_file_mode: KeyFileMode::Ignore,
        ..Policy::default()
    };
    let report = check(
        &names(&["rsa1024.example.org"]),
        &source,
        &bundle,
        &policy,
        &trust(&[&ca[0]]),
        SystemTime::now(),
    );
    // the key is the certificate's own, even though aws-lc-rs will not load it
    let v = only(&report, Rule::KeySize);
    assert_eq!(v.detail, "RSA 1024 bits, policy requires >= 2048");
    assert_eq!(v.file, fixture("rsa1024.pem"));
    assert!(bundle.certified_key().is_err());

    let lenient = Policy {
        min_rsa_bits: 1024,
        ..policy
    };
    pass(&check(
        &names(&["rsa1024.example.org"]),
        &source,
        &bundle,
        &lenient,
        &trust(&[&ca[0]]),
        SystemTime::now(),
    ));
}

#[test]
fn key_size_rule_rsa_2048_and_ec() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    for alg in [Alg::Rsa, Alg::P256, Alg::P384, Alg::Ed25519] {
        let case = Case::new(&ca, &Leaf::new(&["app.example.org"], alg), &[]);
        pass(&case.check(&["app.example.org"], &Policy::default(), &anchors));
    }
    let case = Case::new(&ca, &Leaf::new(&["app.example.org"], Alg::P256), &[]);
    let strict = Policy {
        min_ec_bits: 384,
        ..Policy::default()
    };
    let v = case.check(&["app.example.org"], &strict, &anchors);
    assert_eq!(
        only(&v, Rule::KeySize).detail,
        "EC P-256 (256 bits), policy requires EC >= 384"
    );
    let case = Case::new(&ca, &Leaf::new(&["app.example.org"], Alg::Rsa), &[]);
    let strict = Policy {
        min_rsa_bits: 3072,
        ..Policy::default()
    };
    let v = case.check(&["app.example.org"], &strict, &anchors);
    assert_eq!(
        only(&v, Rule::KeySize).detail,
        "RSA 2048 bits, policy requires >= 3072"
    );
}

#[test]
fn signature_rule_sha1_fixture() {
    let source = CertSource::Pem {
        cert: fixture("sha1.pem"),
        key: fixture("sha1-key.pem"),
    };
    let bundle = load(&source).unwrap();
    let ca = crate::load::read_certificates(&fixture("ca.pem"), None).unwrap();
    let anchors = trust(&[&ca[0]]);
    let policy = Policy {
        key_file_mode: KeyFileMode::Ignore,
        ..Policy::default()
    };
    let report = check(
        &names(&["sha1.example.org"]),
        &source,
        &bundle,
        &policy,
        &anchors,
        SystemTime::now(),
    );
    // a TLS client refuses the SHA-1 signature too, so the chain rule agrees
    assert_eq!(
        rules(&report),
        [Rule::Signature, Rule::Chain],
        "{:#?}",
        report.violations
    );
    assert_eq!(
        report.violations[0].detail,
        "signed with sha1WithRSAEncryption (SHA-1), policy requires SHA-256 or stronger"
    );
    assert!(
        report.violations[1]
            .detail
            .contains("algorithm TLS clients refuse"),
        "{}",
        report.violations[1]
    );

    let lenient = Policy {
        min_signature_hash: HashAlg::Sha1,
        require_chain: false,
        ..policy
    };
    pass(&check(
        &names(&["sha1.example.org"]),
        &source,
        &bundle,
        &lenient,
        &anchors,
        SystemTime::now(),
    ));
}

#[test]
fn signature_rule_sha256_and_sha384_pass() {
    let root = Ca::root(Alg::P384); // signs ecdsa-with-SHA384
    let case = Case::new(&root, &Leaf::new(&["app.example.org"], Alg::Rsa), &[]);
    pass(&case.check(
        &["app.example.org"],
        &Policy::default(),
        &trust(&[&root.der]),
    ));
    let strict = Policy {
        min_signature_hash: HashAlg::Sha512,
        ..Policy::default()
    };
    let report = case.check(&["app.example.org"], &strict, &trust(&[&root.der]));
    assert_eq!(
        only(&report, Rule::Signature).detail,
        "signed with ecdsa-with-SHA384 (SHA-384), policy requires SHA-512"
    );
}

#[test]
fn every_violation_at_once() {
    let untrusted = Ca::root(Alg::P256);
    let now = OffsetDateTime::now_utc();
    let mut leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
    leaf.ku = vec![];
    leaf.eku = vec![];
    leaf.not_before = now - Duration::days(400);
    leaf.not_after = now - Duration::days(1);
    let case = Case::new(&untrusted, &leaf, &[]);
    std::fs::write(
        case.key_file(),
        crate::testutil::key(Alg::Rsa2).serialize_pem(),
    )
    .unwrap();
    set_mode(&case.key_file(), 0o640);
    let policy = Policy {
        key_file_mode: KeyFileMode::Refuse,
        min_rsa_bits: 4096,
        ..Policy::default()
    };
    let report = case.check(
        &["tablet.example.org", "app.example.org"],
        &policy,
        &trust(&[]),
    );
    let mut expected = vec![
        Rule::Name,
        Rule::KeySize,
        Rule::KeyUsage,
        Rule::ExtendedKeyUsage,
        Rule::Validity,
        Rule::KeyMatch,
        Rule::Chain,
    ];
    if cfg!(unix) {
        expected.push(Rule::KeyFileMode);
    }
    assert_eq!(rules(&report), expected, "{:#?}", report.violations);
    for v in &report.violations {
        let file = if matches!(v.rule, Rule::KeyMatch | Rule::KeyFileMode) {
            case.key_file()
        } else {
            case.cert_file()
        };
        assert_eq!(v.file, file, "{v}");
    }
}

#[test]
fn load_failure_is_one_load_violation() {
    let dir = tempfile::tempdir().unwrap();
    let source = CertSource::Pem {
        cert: dir.path().join("missing.pem"),
        key: dir.path().join("key.pem"),
    };
    let err = load_and_check(
        &names(&["app.example.org"]),
        &source,
        &Policy::default(),
        &trust(&[]),
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(err.rule, Rule::Load);
    assert_eq!(err.file, dir.path().join("missing.pem"));
    assert!(
        err.to_string().starts_with(&format!(
            "{}: load: cannot read: ",
            dir.path().join("missing.pem").display()
        )),
        "{err}"
    );
}
