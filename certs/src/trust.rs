//! The trust anchors a chain must reach: the OS store, `tls.trust` files and the internal CA.

use std::path::PathBuf;
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
