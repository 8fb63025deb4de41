//! The internal CA issues what a host's policy requires (`[host.policy]`): purposes, key
//! usages, key type and size; a stored leaf that no longer meets the policy is replaced.

use std::time::SystemTime;

use super::*;
use crate::inspect::KeyType;
use crate::policy::ExtKeyUsage;
use crate::policy::HashAlg;
use crate::testutil::{names, trust};

fn issue_and_check(ca: &InternalCa, policy: &Policy) -> (CertBundle, crate::check::Report) {
    let host = names(&["sts.localhost"]);
    let bundle = ca.issue_for("sts.localhost", &host, policy).unwrap();
    let report = check(
        &host,
        &CertSource::Internal,
        &bundle,
        policy,
        &trust(&[&ca.root_der()]),
        SystemTime::now(),
    );
    (bundle, report)
}

#[test]
fn client_auth_is_issued_when_the_host_policy_asks_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &["sts.localhost".to_owned()]).unwrap();
    let default_leaf = ca.issue("sts.localhost", &[]).unwrap();
    let both = Policy {
        extended_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
        ..Policy::default()
    };
    // the stored leaf (server_auth only) fails the stricter policy: replaced, not reused
    let (bundle, report) = issue_and_check(&ca, &both);
    assert!(report.is_ok(), "{report:#?}");
    assert_ne!(bundle.chain[0], default_leaf.chain[0]);
    let info = bundle.leaf_info().unwrap();
    assert_eq!(
        info.extended_key_usage,
        Some(vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth])
    );
    // and now it is reused under the same policy
    let (again, _) = issue_and_check(&ca, &both);
    assert_eq!(again.chain[0], bundle.chain[0]);
}

#[test]
fn key_type_and_size_follow_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &["sts.localhost".to_owned()]).unwrap();
    let p384 = Policy {
        min_ec_bits: 384,
        ..Policy::default()
    };
    let (bundle, report) = issue_and_check(&ca, &p384);
    assert!(report.is_ok(), "{report:#?}");
    assert_eq!(bundle.leaf_info().unwrap().key_type, KeyType::EcP384);

    // no curve is big enough: RSA, with the RSA key usages
    let rsa = Policy {
        min_ec_bits: 521,
        min_rsa_bits: 3072,
        ..Policy::default()
    };
    let (bundle, report) = issue_and_check(&ca, &rsa);
    assert!(report.is_ok(), "{report:#?}");
    let info = bundle.leaf_info().unwrap();
    assert_eq!((info.key_type, info.key_bits), (KeyType::Rsa, 3072));
    bundle.certified_key().unwrap();
}

#[test]
fn a_policy_the_ca_cannot_meet_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &["sts.localhost".to_owned()]).unwrap();
    let sha384 = Policy {
        min_signature_hash: HashAlg::Sha384,
        ..Policy::default()
    };
    let err = ca.issue_for("sts.localhost", &[], &sha384).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("signs with ECDSA P-256 and SHA-256"),
        "{text}"
    );
    assert!(text.contains("min_signature_hash = \"sha256\""), "{text}");
    let huge = Policy {
        min_ec_bits: 521,
        min_rsa_bits: 8192,
        ..Policy::default()
    };
    let err = ca.issue_for("sts.localhost", &[], &huge).unwrap_err();
    assert!(err.to_string().contains("RSA up to 4096 bits"), "{err}");
    assert!(!dir.path().join("hosts/sts.localhost.pem").exists());
}
