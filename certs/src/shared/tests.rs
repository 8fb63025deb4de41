//! Shared checks give every host exactly what `check` gives it alone, while reading,
//! checking and keying each set of files once per pass.

use std::sync::Arc;
use std::time::SystemTime;

use time::{Duration, OffsetDateTime};

use super::*;
use crate::check::Rule;
use crate::policy::KeyFileMode;
use crate::testutil::{Alg, Ca, Leaf, names, set_mode, trust, write_pem};

/// `(rule, file, detail)` of every violation, in order, and the warnings.
fn summary(report: &Report) -> (Vec<(Rule, String, String)>, Vec<String>) {
    let violations = report
        .violations
        .iter()
        .map(|v| (v.rule, v.file.display().to_string(), v.detail.clone()))
        .collect();
    (violations, report.warnings.clone())
}

#[test]
fn every_host_gets_what_check_gives_it_alone() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let dir = tempfile::tempdir().unwrap();
    // A wildcard certificate that also breaks a shared rule (expiry warning, readable key)
    // and a host-specific one (a name it does not cover).
    let mut leaf = Leaf::new(&["*.example.test"], Alg::P256);
    leaf.not_after = OffsetDateTime::now_utc() + Duration::days(3);
    let (cert, key) = ca.issue(&leaf);
    let source = write_pem(dir.path(), "wild", &[&cert], &key);
    let CertSource::Pem { key: key_file, .. } = &source else {
        unreachable!()
    };
    set_mode(key_file, 0o644);
    let refuse = Policy {
        key_file_mode: KeyFileMode::Refuse,
        ..Policy::default()
    };
    let now = SystemTime::now();
    let mut shared = SharedChecks::new(&anchors, now);
    let hosts: [&[&str]; 4] = [
        &["a.example.test"],
        &["b.example.test", "c.example.test"],
        &["other.test", "d.example.test", "a.b.example.test"],
        &[],
    ];
    for policy in [Policy::default(), refuse] {
        for host in hosts {
            let names = names(host);
            let files = shared.load(&source, &policy).unwrap();
            let alone = check(
                &names,
                &source,
                &load(&source).unwrap(),
                &policy,
                &anchors,
                now,
            );
            let together = shared.check(&names, &files);
            assert_eq!(summary(&together), summary(&alone), "{host:?}");
        }
    }
    // The cases above are not all clean: the comparison covered violations and warnings.
    let files = shared.load(&source, &Policy::default()).unwrap();
    let third = shared.check(&names(hosts[2]), &files);
    let rules: Vec<Rule> = third.violations.iter().map(|v| v.rule).collect();
    assert_eq!(rules, vec![Rule::Name, Rule::Name]);
    assert_eq!(third.warnings.len(), 2, "{:?}", third.warnings);
}

#[test]
fn files_are_read_and_keyed_once_per_pass_and_policy() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue(&Leaf::new(&["*.example.test"], Alg::P256));
    let source = write_pem(dir.path(), "wild", &[&cert], &key);
    let policy = Policy::default();
    let mut shared = SharedChecks::new(&anchors, SystemTime::now());
    let first = shared.load(&source, &policy).unwrap();
    let again = shared.load(&source, &policy).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the files were read twice");
    let a = first.served().unwrap();
    let b = again.served().unwrap();
    assert!(Arc::ptr_eq(&a.key, &b.key), "the key was parsed twice");
    let other_policy = Policy {
        min_ec_bits: 384,
        ..Policy::default()
    };
    let stricter = shared.load(&source, &other_policy).unwrap();
    assert!(!Arc::ptr_eq(&first, &stricter));
    assert_eq!(
        shared
            .check(&names(&["a.example.test"]), &stricter)
            .violations[0]
            .rule,
        Rule::KeySize
    );
    assert!(
        shared
            .check(&names(&["a.example.test"]), &first)
            .violations
            .is_empty()
    );

    // A write during the pass is not seen by it; the next pass reads it.
    let (cert2, key2) = ca.issue(&Leaf::new(&["*.example.test"], Alg::P256));
    let rotated = write_pem(dir.path(), "wild", &[&cert2], &key2);
    assert_eq!(rotated, source);
    let during = shared.load(&source, &policy).unwrap();
    assert_eq!(during.bundle.content_hash, first.bundle.content_hash);
    let mut next = SharedChecks::new(&anchors, SystemTime::now());
    let after = next.load(&source, &policy).unwrap();
    assert_ne!(after.bundle.content_hash, first.bundle.content_hash);
}

#[test]
fn a_failed_load_is_reported_to_every_host_and_not_kept() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let dir = tempfile::tempdir().unwrap();
    let source = CertSource::Pem {
        cert: dir.path().join("late.pem"),
        key: dir.path().join("late-key.pem"),
    };
    let policy = Policy::default();
    let mut shared = SharedChecks::new(&anchors, SystemTime::now());
    assert!(shared.load(&source, &policy).is_err());
    assert!(shared.load(&source, &policy).is_err());
    let (cert, key) = ca.issue(&Leaf::new(&["*.example.test"], Alg::P256));
    write_pem(dir.path(), "late", &[&cert], &key);
    assert!(shared.load(&source, &policy).is_ok());
}

#[test]
fn a_key_that_does_not_load_fails_each_host_on_its_own() {
    let ca = Ca::root(Alg::P256);
    let anchors = trust(&[&ca.der]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = ca.issue(&Leaf::new(&["*.example.test"], Alg::P256));
    let (_, other_key) = ca.issue(&Leaf::new(&["x.test"], Alg::P256));
    let source = write_pem(dir.path(), "mismatch", &[&cert], &other_key);
    let mut shared = SharedChecks::new(&anchors, SystemTime::now());
    let files = shared.load(&source, &Policy::default()).unwrap();
    let report = shared.check(&names(&["a.example.test"]), &files);
    assert_eq!(report.violations[0].rule, Rule::KeyMatch);
    assert!(files.served().is_err());
    assert!(
        files.served().is_err(),
        "the second host gets its error too"
    );
}
