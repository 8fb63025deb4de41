//! Fuzzes certificate loading and inspection as `check`, start and reload run them: the
//! input is written to a file (the loaders read files, as certfront does) and read as a
//! PEM chain + key, as a certificate paired with a real key, as PEM, DER, PKCS#7 or
//! PKCS#12 for `certs inspect`, and as a .pfx with its password file or a typed password; whatever loads is inspected,
//! turned into a rustls key and held to the default policy. Errors are fine; panics are
//! not, and every error must render a message naming the file.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::SystemTime;

use certfront_certs::{
    CertBundle, CertError, CertSource, PasswordSource, Policy, TrustAnchors, check, inspect,
    is_pfx, load, load_pfx, read_certificates, sha1_hex, sha256_hex,
};
use libfuzzer_sys::fuzz_target;

/// The test fixtures' PKCS#12 password (certs/testdata/README.md), so that seeds made
/// from those files get past the MAC and the fuzzer reaches the bags inside.
const PASSWORD: &str = "fixture-password";

struct Files {
    _dir: tempfile::TempDir,
    input: PathBuf,
    real_key: PathBuf,
    password: PathBuf,
    trust: TrustAnchors,
}

static FILES: LazyLock<Files> = LazyLock::new(|| {
    // In memory where there is a tmpfs: ext4 flushes a file rewritten in place on close
    // (auto_da_alloc), which made disk writes most of the time of each run.
    let shm = Path::new("/dev/shm");
    // Named so that run.sh can remove it: libFuzzer exits without dropping statics.
    let mut builder = tempfile::Builder::new();
    builder.prefix("certfront-fuzz-");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
    .expect("temp dir");
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/testdata");
    let real_key = dir.path().join("good-key.pem");
    std::fs::copy(testdata.join("good-key.pem"), &real_key).expect("fixture key");
    set_private(&real_key);
    let password = dir.path().join("pfx-password.txt");
    std::fs::write(&password, PASSWORD).expect("password file");
    let trust = TrustAnchors::new(false, &[testdata.join("ca.pem")], &[]).expect("fixture CA");
    Files {
        input: dir.path().join("input"),
        real_key,
        password,
        trust,
        _dir: dir,
    }
});

/// Key files are checked for their mode; the fixture key gets the mode policy wants.
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn error_names_its_file(err: &CertError) {
    let message = err.to_string();
    assert!(!message.is_empty());
    let _ = err.detail();
    if let Some(path) = err.path() {
        assert!(
            message.contains(&path.display().to_string()),
            "error {message:?} does not name {}",
            path.display()
        );
    }
}

fn examine(source: &CertSource, loaded: Result<CertBundle, CertError>) {
    let bundle = match loaded {
        Ok(bundle) => bundle,
        Err(err) => return error_names_its_file(&err),
    };
    assert!(!bundle.chain.is_empty(), "a bundle without a certificate");
    let _ = format!("{bundle:?}");
    let _ = bundle.certified_key();
    let names = match bundle.leaf_info() {
        Ok(info) => info.dns_names().map(str::to_owned).collect(),
        Err(err) => {
            error_names_its_file(&err);
            Vec::new()
        }
    };
    let names = if names.is_empty() {
        vec!["app.example.org".to_owned()]
    } else {
        names
    };
    let report = check(
        &names,
        source,
        &bundle,
        &Policy::default(),
        &FILES.trust,
        SystemTime::now(),
    );
    for v in &report.violations {
        assert!(!v.to_string().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let files = &*FILES;
    std::fs::write(&files.input, data).expect("write input");
    set_private(&files.input);

    // `certs inspect`: PEM, DER, PKCS#7 or PKCS#12, told apart by content.
    if let Err(err) = is_pfx(&files.input) {
        error_names_its_file(&err);
    }
    for password in [None, Some(PASSWORD)] {
        match read_certificates(&files.input, password) {
            Ok(certs) => {
                assert!(!certs.is_empty(), "Ok with no certificate");
                for der in &certs {
                    match inspect(der) {
                        Ok(info) => {
                            assert!(!info.sha1_thumbprint.is_empty());
                            let _ = info.days_left(SystemTime::now());
                            let _ = info.dns_names().count();
                            let _ = info.key_type.is_ec_like();
                            let _ = format!("{info:?} {}", info.key_type);
                        }
                        Err(err) => error_names_its_file(&err),
                    }
                    assert_eq!(sha1_hex(der).len(), 40);
                    assert_eq!(sha256_hex(der).len(), 64);
                }
            }
            Err(err) => error_names_its_file(&err),
        }
    }

    // Start and reload: one file holding chain and key; the input as the chain of a real
    // key (mutated certificates meet the key-match and chain rules); a .pfx.
    let sources = [
        CertSource::Pem {
            cert: files.input.clone(),
            key: files.input.clone(),
        },
        CertSource::Pem {
            cert: files.input.clone(),
            key: files.real_key.clone(),
        },
        CertSource::Pfx {
            path: files.input.clone(),
            password: PasswordSource::File(files.password.clone()),
        },
    ];
    for source in &sources {
        examine(source, load(source));
    }
    // `certs inspect --check` with a password typed at the prompt.
    examine(&sources[2], load_pfx(&files.input, PASSWORD));
});
