//! Property tests (the `cert_load` fuzz target's checks, on stable, in seconds): random
//! bytes and damaged copies of real PEM, DER, PKCS#7 and PKCS#12 files never make a loader or
//! `inspect` panic; whatever loads can be inspected and checked, and every error names
//! the file.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use proptest::prelude::*;
use rustls_pki_types::CertificateDer;

use super::*;
use crate::pfx::read_pfx;
use crate::testutil::{FIXTURE_PASSWORD, fixture};
use crate::{Policy, TrustAnchors, check};

/// The committed fixtures a damaged file starts from: PEM chains and keys, PKCS#12 in
/// both encodings, PKCS#7 in DER and PEM, and one DER certificate (made from `good.pem`).
fn fixtures() -> Vec<Vec<u8>> {
    let read = |name: &str| fs::read(fixture(name)).unwrap();
    let good_pem = read("good.pem");
    let der = CertificateDer::pem_slice_iter(&good_pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    let mut chain_and_key = good_pem.clone();
    chain_and_key.extend_from_slice(&read("good-key.pem"));
    vec![
        good_pem,
        der,
        chain_and_key,
        read("ec.pem"),
        read("good-key-pkcs1.pem"),
        read("good-aes.pfx"),
        read("good-legacy.pfx"),
        read("good-chain.p7b"),
        read("good-chain-pem.p7b"),
    ]
}

/// Damages a file: overwrite, insert or delete bytes at a relative position, or cut it.
#[derive(Clone, Debug)]
enum Damage {
    Overwrite(f64, u8),
    Insert(f64, Vec<u8>),
    Delete(f64, usize),
    Truncate(f64),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (0.0..1.0f64, any::<u8>()).prop_map(|(at, b)| Damage::Overwrite(at, b)),
        1 => (0.0..1.0f64, proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
        1 => (0.0..1.0f64, 1usize..64).prop_map(|(at, n)| Damage::Delete(at, n)),
        1 => (0.0..1.0f64).prop_map(Damage::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let at = |f: f64| ((bytes.len() as f64) * f) as usize;
        match d {
            Damage::Overwrite(f, b) => {
                let i = at(*f);
                if i < bytes.len() {
                    bytes[i] = *b;
                }
            }
            Damage::Insert(f, new) => {
                let i = at(*f);
                bytes.splice(i..i, new.iter().copied());
            }
            Damage::Delete(f, n) => {
                let i = at(*f);
                let end = (i + n).min(bytes.len());
                bytes.drain(i..end);
            }
            Damage::Truncate(f) => bytes.truncate(at(*f)),
        }
    }
    bytes
}

fn names_the_file(err: &CertError, path: &Path) {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} does not name {}",
        path.display()
    );
    assert!(!err.detail().is_empty());
}

/// Runs every loader over `bytes` as `check`, start and reload do.
fn load_everything(bytes: &[u8]) {
    let path = Path::new("/etc/certfront/input");
    let _ = looks_like_pkcs12(bytes);
    let chain = match parse_certs(path, bytes) {
        Ok(chain) => {
            assert!(!chain.is_empty());
            for der in &chain {
                let info = inspect(der).expect("a certificate that loaded inspects");
                let _ = info.days_left(SystemTime::now());
                let _ = info.dns_names().count();
                let _ = format!("{info:?} {}", info.key_type);
            }
            Some(chain)
        }
        Err(err) => {
            names_the_file(&err, path);
            None
        }
    };
    if let Err(err) = parse_key(path, bytes) {
        names_the_file(&err, path);
    }
    let pfx = match read_pfx(path, bytes, FIXTURE_PASSWORD) {
        Ok(found) => Some(found),
        Err(err) => {
            names_the_file(&err, path);
            None
        }
    };
    // What loaded is held to the policy, as start and reload do.
    let key_path = fixture("good-key.pem");
    let key = parse_key(&key_path, &fs::read(&key_path).unwrap()).unwrap();
    let bundles = chain.map(|chain| (chain, key)).into_iter().chain(pfx);
    let trust = TrustAnchors::new(false, &[fixture("ca.pem")], &[]).unwrap();
    for (chain, key) in bundles {
        let bundle = CertBundle {
            chain,
            key,
            content_hash: content_hash(&[bytes]),
        };
        let _ = bundle.certified_key();
        let _ = bundle.leaf_info();
        let source = CertSource::Pem {
            cert: path.to_owned(),
            key: key_path.clone(),
        };
        let names = ["app.example.org".to_owned()];
        let report = check(
            &names,
            &source,
            &bundle,
            &Policy::default(),
            &trust,
            SystemTime::now(),
        );
        for v in &report.violations {
            assert!(!v.to_string().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load_everything(&bytes);
        let _ = inspect(&CertificateDer::from(bytes));
    }

    #[test]
    fn damaged_real_files_never_panic(
        which in 0usize..9,
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let original = fixtures().swap_remove(which);
        let bytes = apply(original, &damages);
        load_everything(&bytes);
        let _ = inspect(&CertificateDer::from(bytes));
    }
}

/// The fixtures themselves go through every loader: the properties above start from
/// files that really load.
#[test]
fn undamaged_fixtures_load() {
    let files = fixtures();
    let path = Path::new("f");
    assert!(parse_certs(path, &files[0]).is_ok());
    assert!(parse_certs(path, &files[1]).is_ok());
    assert!(parse_key(path, &files[2]).is_ok());
    assert!(read_pfx(path, &files[5], FIXTURE_PASSWORD).is_ok());
    assert!(read_pfx(path, &files[6], FIXTURE_PASSWORD).is_ok());
    assert!(parse_certs(path, &files[7]).is_ok());
    assert!(parse_certs(path, &files[8]).is_ok());
    for bytes in &files {
        load_everything(bytes);
    }
}
