//! What the engine keeps in `state_dir/acme/`: one account per directory URL
//! (`accounts/<hash>.json`, mode 0600: it holds the account key), each host's pair
//! (`<fqdn>/fullchain.pem`, `<fqdn>/privkey.pem` 0600), and lock files (`locks/<fqdn>.lock`)
//! kept apart from the watched host directories. Every write is a temporary file renamed
//! into place: a reader sees the old file or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use certfront_certs::files::{create_private_dir, replace};
use instant_acme::AccountCredentials;

use crate::error::AcmeError;

/// Where the account for `directory` is kept: a different CA (or staging vs production)
/// gets its own account, and switching back finds the old one.
pub(crate) fn account_path(dir: &Path, directory: &str) -> PathBuf {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, directory.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join("accounts").join(format!("{hex}.json"))
}

pub(crate) fn load_account(path: &Path) -> Result<Option<AccountCredentials>, AcmeError> {
    let text =
        match certfront_certs::read::read_file(path, certfront_certs::read::FileKind::PrivateKey) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AcmeError::Storage {
                    path: path.to_owned(),
                    source,
                });
            }
        };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| AcmeError::Account {
            path: path.to_owned(),
            source,
        })
}

pub(crate) fn save_account(path: &Path, credentials: &AccountCredentials) -> Result<(), AcmeError> {
    let json =
        zeroize::Zeroizing::new(serde_json::to_vec_pretty(credentials).map_err(|source| {
            AcmeError::Account {
                path: path.to_owned(),
                source,
            }
        })?);
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(|source| AcmeError::Write { source })?;
    }
    replace(path, &json, 0o600).map_err(|source| AcmeError::Write { source })
}

/// Publishes a checked pair: the key first, then the chain. The reloader may see the new
/// key beside the old chain for a moment; it treats a key that does not match as a
/// rotation in progress and waits for the chain.
pub(crate) fn write_pair(
    cert: &Path,
    chain_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<(), AcmeError> {
    for dir in [cert.parent(), key.parent()].into_iter().flatten() {
        create_private_dir(dir).map_err(|source| AcmeError::Write { source })?;
    }
    replace(key, key_pem, 0o600).map_err(|source| AcmeError::Write { source })?;
    replace(cert, chain_pem, 0o644).map_err(|source| AcmeError::Write { source })
}

/// An exclusive lock on one name's orders, across processes sharing `state_dir`;
/// released when dropped (the lock belongs to the open file).
pub(crate) struct OrderLock {
    _file: File,
}

/// Takes the lock for `fqdn` without waiting; `Err(Locked)` when another process holds it.
pub(crate) fn lock_order(dir: &Path, fqdn: &str) -> Result<OrderLock, AcmeError> {
    let locks = dir.join("locks");
    create_private_dir(&locks).map_err(|source| AcmeError::Write { source })?;
    let path = locks.join(format!("{fqdn}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AcmeError::Storage {
            path: path.clone(),
            source,
        })?;
    // fs4's trait method, named in full: std's inherent File::try_lock exists only from
    // Rust 1.89, above the workspace's MSRV.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(OrderLock { _file: file }),
        Err(fs4::TryLockError::WouldBlock) => Err(AcmeError::Locked { path }),
        Err(fs4::TryLockError::Error(source)) => Err(AcmeError::Storage { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_file_per_directory() {
        let dir = Path::new("/state/acme");
        let a = account_path(dir, "https://acme-v02.api.letsencrypt.org/directory");
        let b = account_path(
            dir,
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        );
        assert_ne!(a, b);
        assert!(a.starts_with("/state/acme/accounts"));
        assert_eq!(a.extension().unwrap(), "json");
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_order(dir.path(), "app.example.org").unwrap();
        // a second open file description (as another process has) cannot take it
        let Err(err) = lock_order(dir.path(), "app.example.org") else {
            panic!("lock taken twice")
        };
        assert!(matches!(err, AcmeError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("app.example.org.lock"), "{err}");
        // another name is independent
        let other = lock_order(dir.path(), "portal.example.org").unwrap();
        drop((held, other));
        lock_order(dir.path(), "app.example.org").unwrap();
    }

    #[test]
    fn the_pair_is_written_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("app.example.org");
        let (cert, key) = (host.join("fullchain.pem"), host.join("privkey.pem"));
        write_pair(&cert, b"chain", &key, b"key").unwrap();
        write_pair(&cert, b"chain2", &key, b"key2").unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), b"chain2");
        assert_eq!(std::fs::read(&key).unwrap(), b"key2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // no temporary file left behind
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 2);
    }
}
