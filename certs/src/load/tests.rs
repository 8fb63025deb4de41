//! Loading: every format, and every kind of bad file as a clear error naming the file.

use std::fs;
use std::path::Path;

use p12_keystore::EncryptionAlgorithm;

use super::*;
use crate::testutil::{Alg, Ca, FIXTURE_PASSWORD, Leaf, fixture, pem_chain, write_pem, write_pfx};

fn pem_source(dir: &Path, cert: &str, key: &str) -> CertSource {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    fs::write(&c, cert).unwrap();
    fs::write(&k, key).unwrap();
    CertSource::Pem { cert: c, key: k }
}

fn good_pair() -> (String, String) {
    let ca = Ca::root(Alg::P256);
    let (cert, key) = ca.issue(&Leaf::new(&["app.example.org"], Alg::P256));
    (pem_chain(&[&cert]), key.serialize_pem())
}

fn err_of(source: &CertSource) -> CertError {
    load(source).unwrap_err()
}

#[test]
fn pem_chain_and_key_load_leaf_first() {
    let root = Ca::root(Alg::P256);
    let inter = root.intermediate(Alg::P256);
    let (leaf, key) = inter.issue(&Leaf::new(&["app.example.org"], Alg::Rsa));
    let dir = tempfile::tempdir().unwrap();
    let source = write_pem(dir.path(), "app", &[&leaf, &inter.der], &key);
    let bundle = load(&source).unwrap();
    assert_eq!(bundle.chain, vec![leaf.clone(), inter.der.clone()]);
    assert!(matches!(*bundle.key, PrivateKeyDer::Pkcs8(_)));
    bundle.certified_key().unwrap();
    assert_eq!(bundle.leaf_info().unwrap().sans, ["app.example.org"]);
    // the same bytes hash the same; a changed key changes the hash
    assert_eq!(load(&source).unwrap().content_hash, bundle.content_hash);
    let CertSource::Pem { key: key_path, .. } = &source else {
        unreachable!()
    };
    fs::write(
        key_path,
        crate::testutil::key(Alg::Rsa).serialize_pem() + "\n",
    )
    .unwrap();
    assert_ne!(load(&source).unwrap().content_hash, bundle.content_hash);
}

#[test]
fn key_and_chain_in_one_file() {
    let (cert, key) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let both = format!("{key}{cert}");
    let source = pem_source(dir.path(), &both, &both);
    load(&source).unwrap().certified_key().unwrap();
}

#[test]
fn empty_file() {
    let (_, key) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let source = pem_source(dir.path(), "\n  \n", &key);
    let err = err_of(&source);
    assert_eq!(
        err.to_string(),
        format!("{}: file is empty", dir.path().join("cert.pem").display())
    );
}

#[test]
fn no_certificate() {
    let (_, key) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    // a key where the certificate should be: a common mix-up
    let source = pem_source(dir.path(), &key, &key);
    let err = err_of(&source);
    assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no certificate found (expected PEM 'BEGIN CERTIFICATE' or a DER certificate)",
            dir.path().join("cert.pem").display()
        )
    );
    let source = pem_source(dir.path(), "hello, this is not a certificate", &key);
    assert!(matches!(err_of(&source), CertError::NoCertificate { .. }));
}

#[test]
fn truncated_pem() {
    let (cert, key) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let source = pem_source(dir.path(), &cert[..cert.len() / 2], &key);
    let err = err_of(&source);
    assert!(matches!(err, CertError::Pem { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("\"-----END CERTIFICATE-----\" is missing (file truncated?)"),
        "{err}"
    );
    // a truncated key names the key file
    let source = pem_source(dir.path(), &cert, &key[..key.len() / 2]);
    let err = err_of(&source);
    assert_eq!(err.path(), Some(dir.path().join("key.pem").as_path()));
}

#[test]
fn garbage_inside_pem() {
    let (_, key) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let bad = "-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n";
    let err = err_of(&pem_source(dir.path(), bad, &key));
    assert!(err.to_string().contains("not valid base64"), "{err}");
    // valid base64, not a certificate
    let bad = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = err_of(&pem_source(dir.path(), bad, &key));
    assert!(
        err.to_string()
            .contains("certificate #1 in the file cannot be parsed"),
        "{err}"
    );
}

#[test]
fn missing_and_unreadable_files() {
    let (cert, _) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let source = pem_source(dir.path(), &cert, "x");
    let CertSource::Pem { cert: c, .. } = &source else {
        unreachable!()
    };
    let missing = CertSource::Pem {
        cert: c.clone(),
        key: dir.path().join("nope.pem"),
    };
    let err = err_of(&missing);
    assert!(
        err.to_string().starts_with(&format!(
            "{}: cannot read: ",
            dir.path().join("nope.pem").display()
        )),
        "{err}"
    );
    // a directory instead of a file
    let err = err_of(&CertSource::Pem {
        cert: dir.path().to_owned(),
        key: dir.path().join("key.pem"),
    });
    assert!(matches!(err, CertError::Read { .. }), "{err}");
}

#[test]
fn no_key_and_encrypted_key() {
    let (cert, _) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let err = err_of(&pem_source(dir.path(), &cert, &cert));
    assert!(matches!(err, CertError::NoKey { .. }), "{err}");
    assert_eq!(err.path(), Some(dir.path().join("key.pem").as_path()));
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let err = err_of(&pem_source(dir.path(), &cert, encrypted));
    assert!(matches!(err, CertError::EncryptedKey { .. }), "{err}");
    assert!(
        err.to_string().contains("the private key is encrypted"),
        "{err}"
    );
}

#[test]
fn der_certificate_is_read() {
    let ca = Ca::root(Alg::P256);
    let (cert, key) = ca.issue(&Leaf::new(&["app.example.org"], Alg::P256));
    let dir = tempfile::tempdir().unwrap();
    let cer = dir.path().join("app.cer");
    fs::write(&cer, cert.as_ref()).unwrap();
    assert_eq!(read_certificates(&cer, None).unwrap(), vec![cert.clone()]);
    let key_path = dir.path().join("key.pem");
    fs::write(&key_path, key.serialize_pem()).unwrap();
    let bundle = load(&CertSource::Pem {
        cert: cer,
        key: key_path,
    })
    .unwrap();
    assert_eq!(bundle.chain, vec![cert]);
}

fn pfx_roundtrip(alg: EncryptionAlgorithm) {
    let root = Ca::root(Alg::P256);
    let inter = root.intermediate(Alg::P256);
    let (leaf, key) = inter.issue(&Leaf::new(&["tablet.example.org"], Alg::Rsa));
    let dir = tempfile::tempdir().unwrap();
    // as Windows exports with "include all certificates": leaf, intermediate, root
    let pfx = write_pfx(
        dir.path(),
        &[&leaf, &inter.der, &root.der],
        &key,
        "s3cret",
        alg,
    );
    let pw = dir.path().join("password");
    fs::write(&pw, "s3cret\r\nsecond line is ignored\n").unwrap();
    let source = CertSource::Pfx {
        path: pfx.clone(),
        password: PasswordSource::File(pw),
    };
    let bundle = load(&source).unwrap();
    // the root is left out: servers do not send it
    assert_eq!(bundle.chain, vec![leaf, inter.der.clone()], "{alg:?}");
    bundle.certified_key().unwrap();
    assert_eq!(read_certificates(&pfx, Some("s3cret")).unwrap().len(), 2);
    let err = read_certificates(&pfx, None).unwrap_err();
    assert!(matches!(err, CertError::PfxNeedsPassword { .. }), "{err}");
}

#[test]
fn pfx_aes256() {
    pfx_roundtrip(EncryptionAlgorithm::PbeWithHmacSha256AndAes256);
}

#[test]
fn pfx_3des() {
    pfx_roundtrip(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc);
}

#[test]
fn pfx_rc2_40() {
    pfx_roundtrip(EncryptionAlgorithm::PbeWithShaAnd40BitRc4Cbc);
}

#[test]
fn pfx_written_by_openssl_default_and_legacy() {
    let pw = tempfile::NamedTempFile::new().unwrap();
    fs::write(pw.path(), FIXTURE_PASSWORD).unwrap();
    let expected = read_certificates(&fixture("good.pem"), None).unwrap();
    for name in ["good-aes.pfx", "good-legacy.pfx"] {
        let source = CertSource::Pfx {
            path: fixture(name),
            password: PasswordSource::File(pw.path().to_owned()),
        };
        let bundle = load(&source).unwrap();
        // the fixture root is in the file and left out of the served chain
        assert_eq!(bundle.chain, expected, "{name}");
        bundle.certified_key().unwrap();
    }
}

/// A renewal's .pfx with a new password and `pfx_password_env`: the environment of a
/// running process cannot change, so the error says to restart or use a password file.
#[test]
fn pfx_wrong_password_from_the_environment_names_the_way_out() {
    // PATH is set wherever tests run, and is nobody's .pfx password.
    let source = CertSource::Pfx {
        path: fixture("good-aes.pfx"),
        password: PasswordSource::Env("PATH".into()),
    };
    let err = load(&source).unwrap_err();
    assert!(matches!(err, CertError::PfxEnvPassword { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: wrong password or damaged file; the password comes from the environment \
             variable PATH, which a running certfront cannot see change: restart to change it, \
             or use pfx_password_file (a file is re-read with the .pfx)",
            fixture("good-aes.pfx").display()
        )
    );
}

/// The fixture .pfx holds its root, which the served chain leaves out: named for inspect.
#[test]
fn pfx_left_out_names_the_root_the_chain_skips() {
    let left = pfx_left_out(&fixture("good-aes.pfx"), FIXTURE_PASSWORD).unwrap();
    let root = read_certificates(&fixture("ca.pem"), None).unwrap();
    assert_eq!(left, root);
}

#[test]
fn pfx_wrong_password() {
    for name in ["good-aes.pfx", "good-legacy.pfx"] {
        let err = read_certificates(&fixture(name), Some("wrong")).unwrap_err();
        assert!(matches!(err, CertError::Pfx { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: wrong password or damaged file",
                fixture(name).display()
            )
        );
    }
}

#[test]
fn pfx_password_from_the_environment() {
    let ca = Ca::root(Alg::P256);
    let (leaf, key) = ca.issue(&Leaf::new(&["tablet.example.org"], Alg::P256));
    let dir = tempfile::tempdir().unwrap();
    // cargo sets CARGO_PKG_NAME for the test process; setting variables is unsafe in edition 2024
    let password = std::env::var("CARGO_PKG_NAME").unwrap();
    let pfx = write_pfx(
        dir.path(),
        &[&leaf],
        &key,
        &password,
        EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
    );
    let source = CertSource::Pfx {
        path: pfx.clone(),
        password: PasswordSource::Env("CARGO_PKG_NAME".into()),
    };
    assert_eq!(load(&source).unwrap().chain, vec![leaf]);

    let unset = CertSource::Pfx {
        path: pfx.clone(),
        password: PasswordSource::Env("CERTFRONT_TEST_UNSET_VARIABLE".into()),
    };
    let err = err_of(&unset);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: password environment variable CERTFRONT_TEST_UNSET_VARIABLE is not set",
            pfx.display()
        )
    );
}

#[test]
fn pfx_where_pem_is_expected_and_back() {
    let (cert, key) = good_pair();
    let dir = tempfile::tempdir().unwrap();
    let source = pem_source(dir.path(), &cert, &key);
    let CertSource::Pem {
        cert: cert_path, ..
    } = &source
    else {
        unreachable!()
    };
    let as_pfx = CertSource::Pfx {
        path: cert_path.clone(),
        password: PasswordSource::Env("CARGO_PKG_NAME".into()),
    };
    let err = err_of(&as_pfx);
    assert!(matches!(err, CertError::NotPfx { .. }), "{err}");

    let pfx = fixture("good-aes.pfx");
    let err = err_of(&CertSource::Pem {
        cert: pfx,
        key: cert_path.clone(),
    });
    assert!(matches!(err, CertError::UnexpectedPfx { .. }), "{err}");
}

#[test]
fn truncated_pfx_never_panics() {
    let bytes = fs::read(fixture("good-legacy.pfx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 10] {
        let path = dir.path().join("cut.pfx");
        fs::write(&path, &bytes[..cut]).unwrap();
        assert!(read_certificates(&path, Some(FIXTURE_PASSWORD)).is_err());
    }
}

#[test]
fn internal_source_is_not_loaded_here() {
    assert!(matches!(
        load(&CertSource::Internal),
        Err(CertError::InternalSource)
    ));
}

/// A .pfx asking for more key-derivation iterations than the cap is refused before any
/// derivation, with the count and the cap in the message.
#[test]
fn pfx_with_absurd_iterations_is_refused() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let root = Ca::root(Alg::P256);
    let (leaf, key) = root.issue(&Leaf::new(&["tablet.example.org"], Alg::P256));
    let mut store = KeyStore::new();
    let chain = PrivateKeyChain::new(
        vec![1u8, 2, 3, 4],
        PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [Certificate::from_der(&leaf).unwrap()],
    );
    store.add_entry("host", KeyStoreEntry::PrivateKeyChain(chain));
    // 65,536 (three bytes in DER) is cheap to write; the bytes are then raised to
    // 8,388,607, which no derivation would finish quickly.
    let mut bytes = store
        .writer("s3cret")
        .encryption_iterations(0x1_0000)
        .mac_iterations(0x1_0000)
        .write()
        .unwrap();
    let original = bytes.clone();
    let (from, to) = ([2u8, 3, 1, 0, 0], [2u8, 3, 0x7f, 0xff, 0xff]);
    let mut patched = 0;
    for i in 0..bytes.len() - from.len() {
        if bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(&to);
            patched += 1;
        }
    }
    assert!(
        patched >= 2,
        "the MAC and key derivation counts ({patched})"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.pfx");
    fs::write(&path, &bytes).unwrap();
    let started = std::time::Instant::now();
    let err = load_pfx(&path, "s3cret").unwrap_err();
    assert!(
        matches!(
            err,
            CertError::PfxIterations {
                found: 0x7f_ffff,
                cap: 1_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("8388607 key-derivation iterations"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The same file unpatched loads.
    let fine = dir.path().join("fine.pfx");
    fs::write(&fine, &original).unwrap();
    load_pfx(&fine, "s3cret").unwrap();
}
