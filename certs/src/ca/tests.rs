//! The internal CA: created once, reused, leaves reused, and leaves that pass the policy.

use std::time::SystemTime;

use super::*;
use crate::check::check;
use crate::policy::{KeyFileMode, Policy};
use crate::testutil::{Alg, Ca, Leaf, names, pem_chain, trust};

/// The names of the quick start's internal hosts: the root permits `localhost`.
fn local() -> Vec<String> {
    names(&["app.localhost", "tablet.localhost"])
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<InternalCa>();
    assert_send_sync::<TrustAnchors>();
    assert_send_sync::<CertBundle>();
}

#[test]
fn created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = InternalCa::load_or_create(&state, &local()).unwrap();
    assert_eq!(first.root_path(), state.join("ca.pem"));
    let root_pem = fs::read(state.join("ca.pem")).unwrap();
    let key_pem = fs::read(state.join("ca-key.pem")).unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("ca-key.pem")), 0o600);
    }
    let info = crate::inspect::inspect(&first.root_der()).unwrap();
    assert!(info.is_ca);
    assert_eq!(info.subject, "CN=certfront internal CA");

    let second = InternalCa::load_or_create(&state, &local()).unwrap();
    assert_eq!(second.root_der(), first.root_der());
    assert_eq!(fs::read(state.join("ca.pem")).unwrap(), root_pem);
    assert_eq!(fs::read(state.join("ca-key.pem")).unwrap(), key_pem);
    // nothing else was left behind (no temporary files)
    let mut entries: Vec<String> = fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["ca-key.pem", "ca.pem"]);
}

#[test]
fn racing_processes_get_one_ca() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let roots: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    InternalCa::load_or_create(&state, &local())
                        .unwrap()
                        .root_der()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(roots.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn root_lost_after_a_crash_is_made_again_from_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    let leaf = ca.issue("app.localhost", &[]).unwrap();
    fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let again = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    assert_ne!(again.root_der(), ca.root_der());
    // the old leaf still chains to the new root: same name, same key
    let source = CertSource::Internal;
    let report = check(
        &names(&["app.localhost"]),
        &source,
        &leaf,
        &Policy::default(),
        &trust(&[&again.root_der()]),
        SystemTime::now(),
    );
    assert!(report.is_ok(), "{:#?}", report.violations);
}

#[test]
fn a_root_that_is_not_the_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    InternalCa::load_or_create(dir.path(), &local()).unwrap();
    fs::write(
        dir.path().join("ca.pem"),
        pem_chain(&[&Ca::root(Alg::P256).der]),
    )
    .unwrap();
    let err = InternalCa::load_or_create(dir.path(), &local()).unwrap_err();
    assert!(
        err.to_string()
            .contains("is not the certificate of ca-key.pem"),
        "{err}"
    );
}

#[test]
fn damaged_key_is_an_error_not_a_new_ca() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca-key.pem"), "garbage").unwrap();
    let err = InternalCa::load_or_create(dir.path(), &local()).unwrap_err();
    assert_eq!(err.path(), Some(dir.path().join("ca-key.pem").as_path()));
    assert_eq!(
        fs::read_to_string(dir.path().join("ca-key.pem")).unwrap(),
        "garbage"
    );
}

#[test]
fn leaves_pass_the_default_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    let host = names(&["app.localhost", "app.internal.localhost"]);
    let bundle = ca.issue("App.localhost", &host).unwrap();
    let strict = Policy {
        key_file_mode: KeyFileMode::Refuse,
        ..Policy::default()
    };
    let report = check(
        &host,
        &CertSource::Internal,
        &bundle,
        &strict,
        &trust(&[&ca.root_der()]),
        SystemTime::now(),
    );
    assert!(report.is_ok() && report.warnings.is_empty(), "{report:#?}");
    bundle.certified_key().unwrap();
    let info = bundle.leaf_info().unwrap();
    assert_eq!(info.sans, ["app.localhost", "app.internal.localhost"]);
    assert!(info.days_left(SystemTime::now()) >= 364);
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join("hosts/app.localhost-key.pem")), 0o600);
    // and a client that does not trust the internal root refuses it
    let report = check(
        &host,
        &CertSource::Internal,
        &bundle,
        &strict,
        &trust(&[]),
        SystemTime::now(),
    );
    assert_eq!(report.violations.len(), 1);
}

#[test]
fn leaves_are_reused_across_starts() {
    let dir = tempfile::tempdir().unwrap();
    let first = InternalCa::load_or_create(dir.path(), &local())
        .unwrap()
        .issue("app.localhost", &[])
        .unwrap();
    let again = InternalCa::load_or_create(dir.path(), &local())
        .unwrap()
        .issue("app.localhost", &names(&["APP.localhost."]))
        .unwrap();
    assert_eq!(again.chain, first.chain);
    assert_eq!(again.content_hash, first.content_hash);
    let hosts: Vec<_> = fs::read_dir(dir.path().join("hosts")).unwrap().collect();
    assert_eq!(hosts.len(), 2, "one cert and one key, no duplicates");
}

#[test]
fn leaves_are_replaced_when_names_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    let first = ca.issue("app.localhost", &[]).unwrap();
    let wider = ca
        .issue("app.localhost", &names(&["alias.localhost"]))
        .unwrap();
    assert_ne!(wider.chain, first.chain);
    assert_eq!(
        wider.leaf_info().unwrap().sans,
        ["app.localhost", "alias.localhost"]
    );
}

#[test]
fn leaves_near_expiry_or_from_another_ca_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    ca.issue("app.localhost", &[]).unwrap();
    let cert = dir.path().join("hosts/app.localhost.pem");
    let key = dir.path().join("hosts/app.localhost-key.pem");

    // a leaf of this CA with 10 days left
    let mut short = Leaf::new(&["app.localhost"], Alg::P256);
    short.not_after = OffsetDateTime::now_utc() + Duration::days(10);
    let issuer = Ca {
        der: ca.root_der(),
        key: KeyPair::from_pem(&fs::read_to_string(dir.path().join("ca-key.pem")).unwrap())
            .unwrap(),
    };
    let (der, leaf_key) = issuer.issue(&short);
    fs::write(&cert, pem_chain(&[&der])).unwrap();
    fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let renewed = ca.issue("app.localhost", &[]).unwrap();
    assert_ne!(renewed.chain[0], der);
    assert!(renewed.leaf_info().unwrap().days_left(SystemTime::now()) > 300);

    // a leaf of some other CA
    let (der, leaf_key) = Ca::root(Alg::P256).issue(&Leaf::new(&["app.localhost"], Alg::P256));
    fs::write(&cert, pem_chain(&[&der])).unwrap();
    fs::write(&key, leaf_key.serialize_pem()).unwrap();
    assert_ne!(ca.issue("app.localhost", &[]).unwrap().chain[0], der);
}

#[test]
fn bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    assert!(matches!(
        ca.issue("bad name", &[]),
        Err(CertError::InvalidName { .. })
    ));
    assert!(matches!(
        ca.issue("../../etc/passwd", &[]),
        Err(CertError::InvalidName { .. })
    ));
    // the config accepts no name the CA would then refuse: one validator for both
    let err = ca.issue("*.org", &[]).unwrap_err();
    assert!(err.to_string().contains("at least two labels"), "{err}");
    assert!(ca.issue("*.dev.localhost", &[]).is_ok());
}

#[cfg(unix)]
#[test]
fn an_adopted_ca_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    InternalCa::load_or_create(dir.path(), &local()).unwrap();
    let key = dir.path().join("ca-key.pem");
    for bad in [0o640, 0o604, 0o644] {
        fs::set_permissions(&key, fs::Permissions::from_mode(bad)).unwrap();
        let err = InternalCa::load_or_create(dir.path(), &local()).unwrap_err();
        assert_eq!(err.path(), Some(key.as_path()));
        let message = err.to_string();
        assert!(
            message.contains(&format!("mode {bad:04o} lets group or others read")),
            "{message}"
        );
        assert!(
            message.contains(&format!("chmod 600 {}", key.display())),
            "{message}"
        );
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    InternalCa::load_or_create(dir.path(), &local()).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
    InternalCa::load_or_create(dir.path(), &local()).unwrap();
}

/// Verifies `leaf` for `name` against `root` the way a TLS client (rustls-webpki) does.
fn client_verifies(
    root: &CertificateDer<'static>,
    leaf: &CertificateDer<'static>,
    name: &str,
) -> Result<(), rustls::Error> {
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(default_provider()),
    )
    .build()
    .unwrap();
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    verifier
        .verify_server_cert(leaf, &[], &server_name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn the_root_is_name_constrained_to_the_configured_domains() {
    let dir = tempfile::tempdir().unwrap();
    let ca = InternalCa::load_or_create(
        dir.path(),
        &names(&["app.hospital.example", "portal.localhost"]),
    )
    .unwrap();
    assert_eq!(
        ca.permitted_subtrees().unwrap(),
        ["hospital.example", "localhost"]
    );
    // A host added later under a permitted domain is issued, and clients accept it.
    let later = ca.issue("tablet.hospital.example", &[]).unwrap();
    client_verifies(&ca.root_der(), &later.chain[0], "tablet.hospital.example").unwrap();
    // A name outside is refused by issue(), naming the constraint and the fix ...
    let err = ca.issue("app.example.com", &[]).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, CertError::CaNameConstraint { .. }),
        "{message}"
    );
    assert!(
        message.contains("\"app.example.com\" is outside the internal CA's name constraints (it issues only for hospital.example, localhost and names under them)"),
        "{message}"
    );
    assert!(
        message.contains("move ca.pem and ca-key.pem out of"),
        "{message}"
    );
    assert!(
        ca.issue("app.hospital.example", &names(&["evil.example.com"]))
            .is_err()
    );
    // ... and a leaf signed outside them anyway (a stolen CA key) fails verification.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = ca
        .sign_leaf(
            &names(&["bank.example.com"]),
            &key,
            &LeafProfile::for_policy(&Policy::default()).unwrap(),
        )
        .unwrap();
    let err = client_verifies(&ca.root_der(), forged.der(), "bank.example.com").unwrap_err();
    assert!(format!("{err:?}").contains("NameConstraint"), "{err:?}");
    // The same forged leaf for a permitted name verifies: the constraint made the difference.
    let fine = ca
        .sign_leaf(
            &names(&["x.hospital.example"]),
            &key,
            &LeafProfile::for_policy(&Policy::default()).unwrap(),
        )
        .unwrap();
    client_verifies(&ca.root_der(), fine.der(), "x.hospital.example").unwrap();
}

#[test]
fn a_root_without_constraints_still_issues() {
    // A CA created by an older certfront: same files, no name constraints.
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let root = params.self_signed(&key).unwrap();
    fs::write(dir.path().join("ca-key.pem"), key.serialize_pem()).unwrap();
    crate::testutil::set_mode(&dir.path().join("ca-key.pem"), 0o600);
    fs::write(dir.path().join("ca.pem"), root.pem()).unwrap();
    let ca = InternalCa::load_or_create(dir.path(), &local()).unwrap();
    assert_eq!(ca.permitted_subtrees(), None);
    ca.issue("app.example.com", &[]).unwrap();
}

#[test]
fn a_new_root_needs_names() {
    let dir = tempfile::tempdir().unwrap();
    let err = InternalCa::load_or_create(dir.path(), &[]).unwrap_err();
    assert!(err.to_string().contains("no host name"), "{err}");
}
