//! Reading a host's certificate chain and private key from PEM, DER or PKCS#12 files.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::crypto::aws_lc_rs::default_provider;
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::error::X509Error;
use zeroize::Zeroizing;

use crate::error::{CertError, pem_detail, x509_error};
use crate::inspect::{CertInfo, inspect};
use crate::pfx::{looks_like_pkcs12, read_pfx};
use crate::pkcs7::{looks_like_pkcs7, read_pkcs7};
use crate::read::{FileKind, read_file};
use crate::source::{CertSource, PasswordSource};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

/// A host's certificate chain and key as read from disk, not yet checked against the policy.
///
/// Key material is held in zeroizing buffers from the read to its hand-over to rustls
/// (whose aws-lc-rs key wipes itself): the file's bytes, the parsed DER, the .pfx
/// password. Dropping a bundle overwrites them, so a freed page or a core dump holds no
/// copy that certfront left behind.
pub struct CertBundle {
    /// Leaf first, then intermediates, in file order.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Zeroizing<PrivateKeyDer<'static>>,
    /// SHA-256 over the raw bytes of every file read, to tell a real change on reload.
    pub content_hash: [u8; 32],
}

impl Clone for CertBundle {
    fn clone(&self) -> Self {
        CertBundle {
            chain: self.chain.clone(),
            key: Zeroizing::new(self.key.clone_key()),
            content_hash: self.content_hash,
        }
    }
}

// Never print key material, not even in debug logs.
impl fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertBundle")
            .field("chain_len", &self.chain.len())
            .field(
                "content_hash",
                &crate::inspect::sha256_hex(&self.content_hash),
            )
            .finish_non_exhaustive()
    }
}

impl CertBundle {
    /// The chain and key ready for rustls (aws-lc-rs provider). Fails when the key cannot
    /// sign for TLS (aws-lc-rs takes RSA 2048..8192 bits only) or is not the leaf's.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        match CertifiedKey::from_der(
            self.chain.clone(),
            self.key.clone_key(),
            &default_provider(),
        ) {
            Ok(key) => Ok(Arc::new(key)),
            Err(TlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(CertError::KeyMismatch)
            }
            Err(source) => Err(CertError::KeyUnusable { source }),
        }
    }

    /// A bundle from PEM bytes not (yet) on disk, e.g. what an ACME CA just issued: the
    /// same parse, and the same content hash, as [`load`] gives once they are written to
    /// `cert_path` and `key_path` (which name them in errors).
    pub fn from_pem(
        cert_path: &Path,
        cert_pem: &[u8],
        key_path: &Path,
        key_pem: &[u8],
    ) -> Result<CertBundle, CertError> {
        Ok(CertBundle {
            chain: parse_certs(cert_path, cert_pem)?,
            key: parse_key(key_path, key_pem)?,
            content_hash: content_hash(&[cert_pem, key_pem]),
        })
    }

    /// The leaf certificate's facts.
    pub fn leaf_info(&self) -> Result<CertInfo, CertError> {
        match self.chain.first() {
            Some(leaf) => inspect(leaf),
            None => Err(CertError::Parse {
                source: X509Error::InvalidCertificate,
            }),
        }
    }
}

/// Reads the files of a PEM or PKCS#12 source. `Internal` is an error: the internal CA
/// issues its bundles through `InternalCa::issue`.
pub fn load(source: &CertSource) -> Result<CertBundle, CertError> {
    match source {
        CertSource::Pem { cert, key } => {
            let cert_bytes = read(cert, FileKind::Certificate)?;
            let key_bytes = Zeroizing::new(read(key, FileKind::PrivateKey)?);
            CertBundle::from_pem(cert, &cert_bytes, key, &key_bytes)
        }
        CertSource::Pfx {
            path,
            password: source,
        } => {
            let (password, password_bytes) = read_password(path, source)?;
            let bytes = read(path, FileKind::Pfx)?;
            let (chain, key) =
                read_pfx(path, &bytes, &password).map_err(|e| match (e, source) {
                    (CertError::Pfx { path, source }, PasswordSource::Env(var)) => {
                        CertError::PfxEnvPassword {
                            path,
                            var: var.clone(),
                            source: Box::new(source),
                        }
                    }
                    (e, _) => e,
                })?;
            let hash = match &password_bytes {
                Some(pw) => content_hash(&[&bytes, &pw[..]]),
                None => content_hash(&[&bytes]),
            };
            Ok(CertBundle {
                chain,
                key,
                content_hash: hash,
            })
        }
        CertSource::Internal => Err(CertError::InternalSource),
    }
}

/// A .pfx file's chain and key with a password given directly (`certs inspect --check`,
/// where it may come from a prompt).
pub fn load_pfx(path: &Path, password: &str) -> Result<CertBundle, CertError> {
    let bytes = read(path, FileKind::Pfx)?;
    let (chain, key) = read_pfx(path, &bytes, password)?;
    Ok(CertBundle {
        chain,
        key,
        content_hash: content_hash(&[&bytes]),
    })
}

/// The certificates of a .pfx that are not in the chain it serves: a self-signed root
/// (servers do not send it) or certificates unrelated to the leaf.
pub fn pfx_left_out(
    path: &Path,
    password: &str,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path, FileKind::Pfx)?;
    let (chain, _) = read_pfx(path, &bytes, password)?;
    let all = crate::pfx::all_certificates(path, &bytes, password)?;
    Ok(all.into_iter().filter(|c| !chain.contains(c)).collect())
}

/// Whether a file is PKCS#12 (.pfx/.p12), by content: the password is then needed.
pub fn is_pfx(path: &Path) -> Result<bool, CertError> {
    let bytes = read(path, FileKind::Certificate)?;
    Ok(!is_pem(&bytes) && looks_like_pkcs12(&bytes))
}

/// Every certificate in a file, for `certs inspect`: PEM (any number), DER (one) or
/// PKCS#12 (leaf and chain; needs the password), recognised by content, not by name.
pub fn read_certificates(
    path: &Path,
    pfx_password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path, FileKind::Certificate)?;
    if !is_pem(&bytes) && looks_like_pkcs12(&bytes) {
        return match pfx_password {
            Some(password) => read_pfx(path, &bytes, password).map(|(chain, _)| chain),
            None => Err(CertError::PfxNeedsPassword {
                path: path.to_owned(),
            }),
        };
    }
    parse_certs(path, &bytes)
}

/// The file's bytes, read under the rules of [`crate::read`]; an empty (or
/// whitespace-only) file is an error of its own.
pub(crate) fn read(path: &Path, kind: FileKind) -> Result<Vec<u8>, CertError> {
    let bytes = read_file(path, kind).map_err(|source| CertError::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(CertError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(10).any(|w| w == b"-----BEGIN")
}

/// Certificates from PEM (every `CERTIFICATE` and `PKCS7` section, other sections
/// skipped, so a file holding key and chain together works), one DER certificate (a
/// Windows .cer) or a DER PKCS#7 bundle (.p7b/.p7c, put in chain order).
pub(crate) fn parse_certs(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Vec<CertificateDer<'static>> = if is_pem(bytes) {
        let mut certs = Vec::new();
        for der in CertificateDer::pem_slice_iter(bytes) {
            let der = der.map_err(|e| pem_error(path, e))?;
            // some CAs wrap a .p7b in "BEGIN CERTIFICATE" lines
            if x509_parser::parse_x509_certificate(&der).is_err() && looks_like_pkcs7(&der) {
                certs.extend(read_pkcs7(path, &der)?);
            } else {
                certs.push(der);
            }
        }
        for bundle in pem_pkcs7_sections(path, bytes)? {
            certs.extend(read_pkcs7(path, &bundle)?);
        }
        certs
    } else if looks_like_pkcs12(bytes) {
        return Err(CertError::UnexpectedPfx {
            path: path.to_owned(),
        });
    } else if looks_like_pkcs7(bytes) {
        read_pkcs7(path, bytes)?
    } else if x509_parser::parse_x509_certificate(bytes).is_ok() {
        vec![CertificateDer::from(bytes.to_vec())]
    } else {
        Vec::new()
    };
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    // Parse each once here so that everything after loading can rely on it.
    for (i, der) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
            path: path.to_owned(),
            index: i + 1,
            source: x509_error(e),
        })?;
    }
    Ok(certs)
}

/// The bodies of `-----BEGIN PKCS7-----` sections, which pki-types' PEM reader skips (it
/// knows the sections rustls uses only).
fn pem_pkcs7_sections(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN PKCS7-----";
    const END: &str = "-----END PKCS7-----";
    let text = String::from_utf8_lossy(bytes);
    let mut sections = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else {
            return Err(CertError::Pkcs7 {
                path: path.to_owned(),
                detail: format!("damaged PEM: the line \"{END}\" is missing (file truncated?)"),
            });
        };
        let b64: String = body[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| CertError::Pkcs7 {
                path: path.to_owned(),
                detail: format!(
                    "damaged PEM: the text between BEGIN PKCS7 and END PKCS7 is not valid base64 ({e})"
                ),
            })?;
        sections.push(der);
        rest = &body[end + END.len()..];
    }
    Ok(sections)
}

/// The first private key in a PEM file: PKCS#8, PKCS#1 or SEC1.
pub(crate) fn parse_key(
    path: &Path,
    bytes: &[u8],
) -> Result<Zeroizing<PrivateKeyDer<'static>>, CertError> {
    let encrypted = |b: &[u8]| {
        b.windows(29).any(|w| w == b"BEGIN ENCRYPTED PRIVATE KEY--")
            || b.windows(18).any(|w| w == b"Proc-Type: 4,ENCRY")
    };
    match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(key) => Ok(Zeroizing::new(key)),
        Err(_) if encrypted(bytes) => Err(CertError::EncryptedKey {
            path: path.to_owned(),
        }),
        Err(pem::Error::NoItemsFound) => Err(CertError::NoKey {
            path: path.to_owned(),
        }),
        Err(e) => Err(pem_error(path, e)),
    }
}

fn pem_error(path: &Path, source: pem::Error) -> CertError {
    CertError::Pem {
        path: path.to_owned(),
        detail: pem_detail(&source),
        source,
    }
}

/// The PKCS#12 password and, when it came from a file, that file's bytes (part of the
/// content hash: a new password file with a new .pfx is one change).
/// A .pfx password and the bytes of the file it came from (none for a variable).
type Password = (Zeroizing<String>, Option<Zeroizing<Vec<u8>>>);

fn read_password(pfx: &Path, source: &PasswordSource) -> Result<Password, CertError> {
    match source {
        PasswordSource::Env(var) => std::env::var(var)
            .map(|pw| (Zeroizing::new(pw), None))
            .map_err(|_| CertError::PasswordEnv {
                path: pfx.to_owned(),
                var: var.clone(),
            }),
        PasswordSource::File(path) => {
            // an empty file is an empty password, which OpenSSL allows
            let bytes = Zeroizing::new(read_file(path, FileKind::Password).map_err(|source| {
                CertError::Read {
                    path: path.clone(),
                    source,
                }
            })?);
            let first = match std::str::from_utf8(&bytes) {
                Ok(text) => Zeroizing::new(text.lines().next().unwrap_or("").to_owned()),
                // not UTF-8: what the lossy reading makes of it, as before
                Err(_) => {
                    let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                    Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
                }
            };
            Ok((first, Some(bytes)))
        }
    }
}

/// SHA-256 over each file's length and bytes (the length keeps file boundaries apart).
pub(crate) fn content_hash(files: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for bytes in files {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
