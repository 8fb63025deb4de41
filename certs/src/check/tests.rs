//! A failing and a passing case for every rule, with RSA and ECDSA certificates.

use std::path::Path;
use std::time::SystemTime;

use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::load::load;
use crate::policy::{ExtKeyUsage, HashAlg, KeyFileMode, Policy};
use crate::testutil::{Alg, Ca, Leaf, fixture, names, set_mode, trust, write_pem};

/// Writes `leaf` issued by `ca` (with `extra` after it) and checks it for `host`.
struct Case {
    dir: tempfile::TempDir,
    source: CertSource,
}

impl Case {
    fn new(ca: &Ca, leaf: &Leaf, extra: &[&rustls_pki_types::CertificateDer<'static>]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca.issue(leaf);
        let mut chain = vec![&cert];
        chain.extend_from_slice(extra);
        let source = write_pem(dir.path(), "host", &chain, &key);
        Case { dir, source }
    }

    fn check(&self, host: &[&str], policy: &Policy, trust: &TrustAnchors) -> Report {
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

    fn cert_file(&self) -> PathBuf {
        self.dir.path().join("host.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("host-key.pem")
    }
}

fn rules(report: &Report) -> Vec<Rule> {
    report.violations.iter().map(|v| v.rule).collect()
}

fn only(report: &Report, rule: Rule) -> &Violation {
    assert_eq!(rules(report), vec![rule], "{:#?}", report.violations);
    &report.violations[0]
}

fn pass(report: &Report) {
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
fn key_usage_rule() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let mut leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
    leaf.ku = vec![Ku::DigitalSignature];
    let report =
        Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
    assert_eq!(
        only(&report, Rule::KeyUsage).detail,
        "KeyUsage holds digital_signature, policy requires digital_signature, key_encipherment"
    );
    leaf.ku = vec![];
    let report =
        Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
    assert_eq!(
        only(&report, Rule::KeyUsage).detail,
        "KeyUsage extension missing, policy requires digital_signature, key_encipherment"
    );
    // ECDSA needs digital_signature only
    let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
    pass(&Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors));
    leaf.ku = vec![Ku::KeyAgreement];
    let report =
        Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
    assert_eq!(
        only(&report, Rule::KeyUsage).detail,
        "KeyUsage holds key_agreement, policy requires digital_signature"
    );
}

#[test]
fn extended_key_usage_rule() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let mut leaf = Leaf::new(&["sts.example.org"], Alg::Rsa);
    leaf.eku = vec![];
    let report =
        Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &Policy::default(), &anchors);
    assert_eq!(
        only(&report, Rule::ExtendedKeyUsage).detail,
        "ExtendedKeyUsage extension missing, policy requires server_auth"
    );

    let both = Policy {
        extended_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
        ..Policy::default()
    };
    leaf.eku = vec![Eku::ServerAuth];
    let report = Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &both, &anchors);
    assert_eq!(
        only(&report, Rule::ExtendedKeyUsage).detail,
        "ExtendedKeyUsage holds server_auth, policy requires server_auth, client_auth"
    );
    leaf.eku = vec![Eku::ServerAuth, Eku::ClientAuth];
    pass(&Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &both, &anchors));

    // a client-only certificate: clients refuse it as well, so the chain rule agrees
    leaf.eku = vec![Eku::ClientAuth];
    let report =
        Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &Policy::default(), &anchors);
    assert_eq!(rules(&report), [Rule::ExtendedKeyUsage, Rule::Chain]);
}

#[test]
fn validity_rule_expired_and_not_yet_valid() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let now = OffsetDateTime::now_utc();
    let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
    leaf.not_before = now - Duration::days(400);
    leaf.not_after = now - Duration::days(3) - Duration::hours(1);
    let report =
        Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
    // the chain is otherwise fine: "expired" is said once, by the validity rule
    let expected = format!(
        "expired {} (3 days ago)",
        date(leaf.not_after.unix_timestamp())
    );
    assert_eq!(only(&report, Rule::Validity).detail, expected);

    leaf.not_before = now + Duration::days(12) + Duration::hours(1);
    leaf.not_after = now + Duration::days(400);
    let report =
        Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
    let expected = format!(
        "not valid before {} (in 12 days), policy requires a certificate valid now",
        date(leaf.not_before.unix_timestamp())
    );
    assert_eq!(only(&report, Rule::Validity).detail, expected);
}

#[test]
fn validity_rule_warns_before_expiry() {
    let ca = Ca::root(Alg::P256);
    let mut leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
    leaf.not_after = OffsetDateTime::now_utc() + Duration::days(10) + Duration::hours(1);
    let case = Case::new(&ca, &leaf, &[]);
    let report = case.check(&["app.example.org"], &Policy::default(), &trust(&[&ca.der]));
    pass(&report);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("validity: expires"),
        "{}",
        report.warnings[0]
    );
    assert!(
        report.warnings[0].contains("(in 10 days), within expiry_warning_days = 30"),
        "{}",
        report.warnings[0]
    );
}

#[test]
fn validity_until_year_9999_does_not_panic() {
    let ca = Ca::root(Alg::P256);
    let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
    leaf.not_after = rcgen::date_time_ymd(9999, 12, 31);
    let case = Case::new(&ca, &leaf, &[]);
    pass(&case.check(&["app.example.org"], &Policy::default(), &trust(&[&ca.der])));
    let info = load(&case.source).unwrap().leaf_info().unwrap();
    assert!(info.days_left(SystemTime::now()) > 2_900_000);
    assert_eq!(date(info.not_after), "9999-12-31");
}

#[test]
fn key_match_rule() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let case = Case::new(&ca, &Leaf::new(&["app.example.org"], Alg::Rsa), &[]);
    pass(&case.check(&["app.example.org"], &Policy::default(), &anchors));
    // replace the key with the key of another certificate
    std::fs::write(
        case.key_file(),
        crate::testutil::key(Alg::Rsa2).serialize_pem(),
    )
    .unwrap();
    let report = case.check(&["app.example.org"], &Policy::default(), &anchors);
    let v = only(&report, Rule::KeyMatch);
    assert_eq!(v.file, case.key_file());
    assert_eq!(
        v.detail,
        "the private key does not belong to the leaf certificate CN=app.example.org"
    );
    assert!(matches!(
        load(&case.source).unwrap().certified_key(),
        Err(CertError::KeyMismatch)
    ));

    // an EC key with an RSA certificate
    std::fs::write(
        case.key_file(),
        crate::testutil::key(Alg::P256).serialize_pem(),
    )
    .unwrap();
    let report = case.check(&["app.example.org"], &Policy::default(), &anchors);
    only(&report, Rule::KeyMatch);
}

#[test]
fn key_match_hints_at_a_reversed_chain() {
    let root = Ca::root(Alg::P256);
    let inter = root.intermediate(Alg::P256);
    let dir = tempfile::tempdir().unwrap();
    let (leaf, key) = inter.issue(&Leaf::new(&["app.example.org"], Alg::P256));
    let source = write_pem(dir.path(), "host", &[&inter.der, &leaf], &key);
    let bundle = load(&source).unwrap();
    let report = check(
        &names(&["app.example.org"]),
        &source,
        &bundle,
        &Policy::default(),
        &trust(&[&root.der]),
        SystemTime::now(),
    );
    let v = report
        .violations
        .iter()
        .find(|v| v.rule == Rule::KeyMatch)
        .unwrap();
    let hint = format!(
        "it is the key of certificate #2 in {}: put the leaf first",
        dir.path().join("host.pem").display()
    );
    assert!(v.detail.ends_with(&hint), "{}", v.detail);
}

#[test]
fn pkcs1_and_sec1_keys_match_their_certificates() {
    let ca = crate::load::read_certificates(&fixture("ca.pem"), None).unwrap();
    let policy = Policy {
        key_file_mode: KeyFileMode::Ignore,
        ..Policy::default()
    };
    for (cert, key, host) in [
        ("good.pem", "good-key-pkcs1.pem", "good.example.org"),
        ("good.pem", "good-key.pem", "good.example.org"),
        ("ec.pem", "ec-key.pem", "ec.example.org"),
    ] {
        let source = CertSource::Pem {
            cert: fixture(cert),
            key: fixture(key),
        };
        let bundle = load(&source).unwrap();
        pass(&check(
            &names(&[host]),
            &source,
            &bundle,
            &policy,
            &trust(&[&ca[0]]),
            SystemTime::now(),
        ));
        bundle.certified_key().unwrap();
    }
}

#[test]
fn chain_rule_with_and_without_intermediate() {
    let root = Ca::root(Alg::Rsa);
    let inter = root.intermediate(Alg::P256);
    let anchors = trust(&[&root.der]);
    let leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
    pass(&Case::new(&inter, &leaf, &[&inter.der]).check(
        &["app.example.org"],
        &Policy::default(),
        &anchors,
    ));

    let report =
        Case::new(&inter, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
    let v = only(&report, Rule::Chain);
    assert!(
        v.detail
            .starts_with("issuer CN=test intermediate is not a trust anchor"),
        "{}",
        v.detail
    );
    assert!(
        v.detail
            .contains("policy requires a chain to a trust anchor"),
        "{}",
        v.detail
    );

    let lax = Policy {
        require_chain: false,
        ..Policy::default()
    };
    pass(&Case::new(&inter, &leaf, &[]).check(&["app.example.org"], &lax, &anchors));
}

#[test]
fn chain_rule_private_root() {
    let private = Ca::root(Alg::P256);
    let case = Case::new(
        &private,
        &Leaf::new(&["portal.example.org"], Alg::P256),
        &[],
    );
    let other = Ca::root(Alg::P256);
    let report = case.check(
        &["portal.example.org"],
        &Policy::default(),
        &trust(&[&other.der]),
    );
    only(&report, Rule::Chain);

    // trusted through a tls.trust file holding two roots
    let roots_file = case.dir.path().join("private-roots.pem");
    std::fs::write(
        &roots_file,
        crate::testutil::pem_chain(&[&other.der, &private.der]),
    )
    .unwrap();
    let anchors = TrustAnchors::new(false, &[roots_file], &[]).unwrap();
    assert_eq!(anchors.len(), 2);
    pass(&case.check(&["portal.example.org"], &Policy::default(), &anchors));
}

#[cfg(unix)]
#[test]
fn key_file_mode_rule() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let case = Case::new(&ca, &Leaf::new(&["app.example.org"], Alg::P256), &[]);
    let refuse = Policy {
        key_file_mode: KeyFileMode::Refuse,
        ..Policy::default()
    };
    pass(&case.check(&["app.example.org"], &refuse, &anchors));

    set_mode(&case.key_file(), 0o644);
    let report = case.check(&["app.example.org"], &refuse, &anchors);
    let v = only(&report, Rule::KeyFileMode);
    assert_eq!(v.file, case.key_file());
    assert_eq!(
        v.detail,
        "mode 0644 lets group or others read the private key, policy requires 0600 or stricter (chmod 600)"
    );

    let report = case.check(&["app.example.org"], &Policy::default(), &anchors);
    pass(&report);
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].contains("key file mode: mode 0644"),
        "{}",
        report.warnings[0]
    );

    let ignore = Policy {
        key_file_mode: KeyFileMode::Ignore,
        ..Policy::default()
    };
    let report = case.check(&["app.example.org"], &ignore, &anchors);
    assert!(report.violations.is_empty() && report.warnings.is_empty());
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

#[test]
fn pfx_violations_name_the_pfx() {
    let ca = Ca::root(Alg::P256);
    let (cert, key) = ca.issue(&Leaf::new(&["tablet.example.org"], Alg::Rsa));
    let dir = tempfile::tempdir().unwrap();
    let pfx = crate::testutil::write_pfx(
        dir.path(),
        &[&cert],
        &key,
        "pw",
        p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    let pw_file = dir.path().join("pw.txt");
    std::fs::write(&pw_file, "pw\n").unwrap();
    let source = CertSource::Pfx {
        path: pfx.clone(),
        password: crate::source::PasswordSource::File(pw_file),
    };
    set_mode(&pfx, 0o644);
    let refuse = Policy {
        key_file_mode: KeyFileMode::Refuse,
        ..Policy::default()
    };
    let (_, report) = load_and_check(
        &names(&["app.example.org"]),
        &source,
        &refuse,
        &trust(&[&ca.der]),
        SystemTime::now(),
    )
    .unwrap();
    let files: Vec<&Path> = report.violations.iter().map(|v| v.file.as_path()).collect();
    let expected: Vec<&Path> = if cfg!(unix) {
        vec![&pfx, &pfx]
    } else {
        vec![&pfx]
    };
    assert_eq!(files, expected, "{:#?}", report.violations);
}
