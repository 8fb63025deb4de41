//! The trust anchors a chain must reach: the OS store, `tls.trust` files and the internal CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

use crate::error::CertError;
use crate::load::read_certificates;

/// An immutable set of trust anchors, cheap to clone.
#[derive(Clone, Debug)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
}

impl TrustAnchors {
    /// `system`: the OS store (rustls-native-certs), where administrators already install
    /// private roots; a damaged OS certificate is skipped with a debug log, as browsers
    /// do. `extra_files`: PEM or DER files, each may hold several roots; any problem
    /// with one of them is an error, since the administrator named it. `extra_der`:
    /// roots in memory, such as the internal CA's.
    pub fn new(
        system: bool,
        extra_files: &[PathBuf],
        extra_der: &[CertificateDer<'static>],
    ) -> Result<Self, CertError> {
        let mut roots = RootCertStore::empty();
        if system {
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                tracing::debug!(error = %err, "skipping an unreadable system root");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system trust anchors");
        }
        for path in extra_files {
            for der in read_certificates(path, None)? {
                roots.add(der).map_err(|source| CertError::BadTrustAnchor {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        for der in extra_der {
            roots
                .add(der.clone())
                .map_err(|source| CertError::BadTrustAnchor {
                    path: PathBuf::from("(internal CA root)"),
                    source,
                })?;
        }
        Ok(TrustAnchors {
            roots: Arc::new(roots),
        })
    }

    /// Anchors from certificates already read from `path` (a client CA file, read once
    /// and also used to check CRL signatures).
    pub fn from_file_ders(
        path: &Path,
        ders: &[CertificateDer<'static>],
    ) -> Result<Self, CertError> {
        let mut roots = RootCertStore::empty();
        for der in ders {
            roots
                .add(der.clone())
                .map_err(|source| CertError::BadTrustAnchor {
                    path: path.to_owned(),
                    source,
                })?;
        }
        Ok(TrustAnchors {
            roots: Arc::new(roots),
        })
    }

    /// The anchors for rustls verifiers (the chain rule, upstream and client verification).
    pub fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }

    /// How many anchors there are (for the startup log).
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether there are none: then every chain check fails.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Alg, Ca, fixture, pem_chain};

    #[test]
    fn files_with_several_roots_and_der() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            Ca::root(Alg::P256),
            Ca::root(Alg::P384),
            Ca::root(Alg::P256),
        );
        let pem = dir.path().join("roots.pem");
        std::fs::write(&pem, pem_chain(&[&a.der, &b.der])).unwrap();
        let der = dir.path().join("root.cer");
        std::fs::write(&der, c.der.as_ref()).unwrap();
        let anchors = TrustAnchors::new(false, &[pem, der], &[fixture_root()]).unwrap();
        assert_eq!(anchors.len(), 4);
        assert_eq!(anchors.roots().len(), 4);
    }

    fn fixture_root() -> CertificateDer<'static> {
        read_certificates(&fixture("ca.pem"), None)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn a_bad_trust_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = TrustAnchors::new(false, std::slice::from_ref(&empty), &[]).unwrap_err();
        assert_eq!(err.path(), Some(empty.as_path()));
        let missing = dir.path().join("missing.pem");
        let err = TrustAnchors::new(false, std::slice::from_ref(&missing), &[]).unwrap_err();
        assert_eq!(err.path(), Some(missing.as_path()));
    }

    #[test]
    fn the_system_store_loads_without_failing() {
        // what the machine holds varies; loading must simply not fail
        let anchors = TrustAnchors::new(true, &[], &[]).unwrap();
        assert!(anchors.len() < 100_000);
    }
}
