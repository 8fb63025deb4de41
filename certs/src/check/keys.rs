//! The key match and key file mode rules: the rules about the private key.

use std::path::Path;

use super::{Report, Rule};
use x509_parser::certificate::X509Certificate;

use crate::keys::key_matches;
use crate::load::CertBundle;
use crate::policy::KeyFileMode;

pub(super) fn check_key_match(
    report: &mut Report,
    cert_file: &Path,
    key_file: Option<&Path>,
    bundle: &CertBundle,
    leaf: &X509Certificate<'_>,
) {
    let file = key_file.unwrap_or(cert_file);
    match key_matches(&bundle.key, leaf.public_key()) {
        Ok(true) => {}
        Ok(false) => {
            // A common slip: the chain's order reversed, leaf last.
            let other = bundle.chain.iter().enumerate().skip(1).find(|(_, der)| {
                x509_parser::parse_x509_certificate(der)
                    .is_ok_and(|(_, c)| key_matches(&bundle.key, c.public_key()) == Ok(true))
            });
            let hint = match other {
                Some((i, _)) => format!(
                    "; it is the key of certificate #{} in {}: put the leaf first",
                    i + 1,
                    cert_file.display()
                ),
                None => String::new(),
            };
            report.violate(
                file,
                Rule::KeyMatch,
                format!(
                    "the private key does not belong to the leaf certificate {}{hint}",
                    leaf.subject()
                ),
            );
        }
        Err(why) => report.violate(file, Rule::KeyMatch, why),
    }
}

/// `file` holds `secret` ("the private key", "the .pfx password"): a mode or owner that
/// [`mode_finding`] objects to is a violation, a warning or nothing, as
/// `policy.key_file_mode` says.
pub(super) fn check_key_file_mode(
    report: &mut Report,
    file: &Path,
    secret: &str,
    mode: KeyFileMode,
) {
    if mode == KeyFileMode::Ignore {
        return;
    }
    let Some((bits, owner)) = file_mode(file) else {
        return;
    };
    let Some(detail) = mode_finding(bits, owner, process_uid(), secret) else {
        return;
    };
    match mode {
        KeyFileMode::Refuse => report.violate(file, Rule::KeyFileMode, detail),
        _ => report.warnings.push(format!(
            "{}: {}: {detail}",
            file.display(),
            Rule::KeyFileMode
        )),
    }
}

/// PostgreSQL's rule for its key file (`be-secure-common.c`), which lets a key be shared
/// with the service through its group without handing the service the file: a file owned
/// by certfront's own user must be 0600 or stricter; one owned by root may also be
/// readable by its group (0640 `root:certfront`); one owned by anybody else never passes.
/// `me` is certfront's effective user, `None` when unknown (then the strict rule applies).
pub(crate) fn mode_finding(bits: u32, owner: u32, me: Option<u32>, secret: &str) -> Option<String> {
    if me.is_none_or(|me| me == owner) {
        return (bits & 0o077 != 0).then(|| {
            format!(
                "mode {bits:04o} lets group or others read {secret}; a file owned by \
                 certfront's own user must be 0600 or stricter: chmod 600 (or give it to root \
                 with certfront's group: chown root:certfront, chmod 640)"
            )
        });
    }
    if owner == 0 {
        return (bits & 0o037 != 0).then(|| {
            format!(
                "mode {bits:04o} lets others read {secret} or its group change it; a file \
                 owned by root may be readable by its group (certfront's), no more: chmod 640"
            )
        });
    }
    let me = me.unwrap_or_default();
    Some(format!(
        "owned by uid {owner}, neither certfront's user (uid {me}) nor root, which lets \
         that user replace {secret}: chown it to certfront's user (chmod 600) or to \
         root:certfront (chmod 640)"
    ))
}

/// The file's permission bits and owner.
#[cfg(unix)]
fn file_mode(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.permissions().mode() & 0o777, meta.uid()))
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<(u32, u32)> {
    None
}

/// certfront's effective user: the owner of `/proc/self` (std has no `geteuid`, and
/// `unsafe` is forbidden here). `None` off Linux or without /proc.
#[cfg(unix)]
fn process_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn process_uid() -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use crate::check::tests::{Case, only, pass};
    use crate::check::{Rule, check, load_and_check};
    use crate::error::CertError;
    use crate::load::load;
    use crate::policy::{KeyFileMode, Policy};
    use crate::source::CertSource;
    use crate::testutil::{Alg, Ca, Leaf, fixture, names, set_mode, trust, write_pem};

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
            "mode 0644 lets group or others read the private key; a file owned by certfront's \
             own user must be 0600 or stricter: chmod 600 (or give it to root with certfront's \
             group: chown root:certfront, chmod 640)"
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

    /// A `.pfx` of a `tablet.example.org` leaf of `alg` and its password file in `dir`,
    /// with the given modes: (pfx path, password file, source).
    fn pfx_source(
        ca: &Ca,
        alg: Alg,
        dir: &Path,
        pfx_mode: u32,
        password_mode: u32,
    ) -> (std::path::PathBuf, std::path::PathBuf, CertSource) {
        let (cert, key) = ca.issue(&Leaf::new(&["tablet.example.org"], alg));
        let pfx = crate::testutil::write_pfx(
            dir,
            &[&cert],
            &key,
            "pw",
            p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
        );
        set_mode(&pfx, pfx_mode);
        let pw_file = dir.join("pw.txt");
        std::fs::write(&pw_file, "pw\n").unwrap();
        set_mode(&pw_file, password_mode);
        let source = CertSource::Pfx {
            path: pfx.clone(),
            password: crate::source::PasswordSource::File(pw_file.clone()),
        };
        (pfx, pw_file, source)
    }

    #[test]
    fn pfx_violations_name_the_pfx() {
        let ca = Ca::root(Alg::P256);
        let dir = tempfile::tempdir().unwrap();
        let (pfx, _, source) = pfx_source(&ca, Alg::Rsa, dir.path(), 0o644, 0o600);
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

    /// PostgreSQL's rule, for every owner (the files the other tests make are owned by
    /// whoever runs them, so root-owned and foreign files are only reachable here).
    #[test]
    fn key_file_mode_follows_postgresql() {
        use super::mode_finding;
        let key = "the private key";
        // Owned by certfront's user (uid 999): 0600 or stricter.
        for ok in [0o600, 0o400] {
            assert_eq!(mode_finding(ok, 999, Some(999), key), None, "{ok:o}");
        }
        for bad in [0o640, 0o604, 0o660] {
            let m = mode_finding(bad, 999, Some(999), key).unwrap();
            assert!(m.contains("must be 0600 or stricter: chmod 600"), "{m}");
        }
        // Owned by root: may be group-readable, no more.
        for ok in [0o640, 0o600, 0o440] {
            assert_eq!(mode_finding(ok, 0, Some(999), key), None, "{ok:o}");
        }
        for bad in [0o644, 0o660, 0o604] {
            let m = mode_finding(bad, 0, Some(999), key).unwrap();
            assert!(
                m.contains("owned by root may be readable by its group"),
                "{m}"
            );
            assert!(m.ends_with("chmod 640"), "{m}");
        }
        // certfront itself running as root: root's own file, so 0600.
        assert!(mode_finding(0o640, 0, Some(0), key).is_some());
        // Anyone else: never, whatever the mode.
        let m = mode_finding(0o600, 1001, Some(999), key).unwrap();
        assert!(
            m.starts_with("owned by uid 1001, neither certfront's user (uid 999) nor root"),
            "{m}"
        );
        // Unknown process user: the strict rule.
        assert!(mode_finding(0o640, 0, None, key).is_some());
        assert_eq!(mode_finding(0o600, 0, None, key), None);
    }

    /// The password file of a .pfx is a secret like a key file, under the same policy.
    #[cfg(unix)]
    #[test]
    fn pfx_password_file_mode_rule() {
        let ca = Ca::root(Alg::P256);
        let dir = tempfile::tempdir().unwrap();
        let (_, pw_file, source) = pfx_source(&ca, Alg::P256, dir.path(), 0o600, 0o640);
        let names = names(&["tablet.example.org"]);
        let anchors = trust(&[&ca.der]);
        let with = |key_file_mode| Policy {
            key_file_mode,
            ..Policy::default()
        };
        let (_, report) = load_and_check(
            &names,
            &source,
            &with(KeyFileMode::Refuse),
            &anchors,
            SystemTime::now(),
        )
        .unwrap();
        let v = only(&report, Rule::KeyFileMode);
        assert_eq!(v.file, pw_file);
        assert_eq!(
            v.detail,
            "mode 0640 lets group or others read the .pfx password; a file owned by certfront's \
             own user must be 0600 or stricter: chmod 600 (or give it to root with certfront's \
             group: chown root:certfront, chmod 640)"
        );
        let (_, report) = load_and_check(
            &names,
            &source,
            &with(KeyFileMode::Warn),
            &anchors,
            SystemTime::now(),
        )
        .unwrap();
        pass(&report);
        assert!(
            report.warnings[0].contains("the .pfx password"),
            "{:?}",
            report.warnings
        );
        let (_, report) = load_and_check(
            &names,
            &source,
            &with(KeyFileMode::Ignore),
            &anchors,
            SystemTime::now(),
        )
        .unwrap();
        assert!(report.violations.is_empty() && report.warnings.is_empty());
        set_mode(&pw_file, 0o600);
        let (_, report) = load_and_check(
            &names,
            &source,
            &with(KeyFileMode::Refuse),
            &anchors,
            SystemTime::now(),
        )
        .unwrap();
        assert!(report.violations.is_empty() && report.warnings.is_empty());
    }
}
