//! `CertError`: everything that can go wrong reading certificate files, in administrator words.

use std::io;
use std::path::{Path, PathBuf};

use x509_parser::error::X509Error;

/// A certificate, key or CA file could not be used. Every variant names the file, so a
/// message read alone in a log still says which file to fix.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{}: already exists; refusing to overwrite it", path.display())]
    Exists { path: PathBuf },

    #[error("{}: cannot watch for changes: {source}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },

    #[error("{}: file is empty", path.display())]
    Empty { path: PathBuf },

    #[error("{}: no certificate found (expected PEM 'BEGIN CERTIFICATE' or a DER certificate)", path.display())]
    NoCertificate { path: PathBuf },

    #[error("{}: damaged PEM: {detail}", path.display())]
    Pem {
        path: PathBuf,
        /// `source` in words: pki-types prints markers as byte arrays.
        detail: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },

    #[error("{}: certificate #{index} in the file cannot be parsed: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        #[source]
        source: X509Error,
    },

    /// From `inspect`, which gets bytes and no path; `load` has already parsed every file.
    #[error("certificate cannot be parsed: {source}")]
    Parse {
        #[source]
        source: X509Error,
    },

    #[error(
        "{}: no private key found (expected PEM 'BEGIN PRIVATE KEY', 'BEGIN RSA PRIVATE KEY' or 'BEGIN EC PRIVATE KEY')",
        path.display()
    )]
    NoKey { path: PathBuf },

    #[error(
        "{}: the private key is encrypted; give certfront an unencrypted key (mode 0600) or a .pfx with a password source",
        path.display()
    )]
    EncryptedKey { path: PathBuf },

    #[error("{}: this is a PKCS#12 (.pfx) file; configure it as pfx with a password source", path.display())]
    UnexpectedPfx { path: PathBuf },

    #[error("{}: not a PKCS#12 (.pfx) file", path.display())]
    NotPfx { path: PathBuf },

    #[error("{}: this is a PKCS#12 (.pfx) file; its password is needed", path.display())]
    PfxNeedsPassword { path: PathBuf },

    #[error("{}: wrong password or damaged file", path.display())]
    Pfx {
        path: PathBuf,
        #[source]
        source: p12_keystore::error::Error,
    },

    /// [`CertError::Pfx`] with the password from the environment, which a running process
    /// cannot see change: a renewal's new password needs a restart, or a password file.
    #[error(
        "{}: wrong password or damaged file; the password comes from the environment variable \
         {var}, which a running certfront cannot see change: restart to change it, or use \
         pfx_password_file (a file is re-read with the .pfx)",
        path.display()
    )]
    PfxEnvPassword {
        path: PathBuf,
        var: String,
        /// Boxed: the variable's name would otherwise make every `CertError` larger.
        #[source]
        source: Box<p12_keystore::error::Error>,
    },

    #[error("{}: {detail}", path.display())]
    Pkcs7 { path: PathBuf, detail: String },

    #[error("{}: the PKCS#12 file holds no private key (export it with its private key)", path.display())]
    PfxNoKey { path: PathBuf },

    #[error("{}: the PKCS#12 file holds no certificate", path.display())]
    PfxNoCertificate { path: PathBuf },

    #[error(
        "{}: the PKCS#12 file asks for {found} key-derivation iterations, more than the {cap} certfront allows (Windows and OpenSSL export 2,000 to 600,000)",
        path.display()
    )]
    PfxIterations { path: PathBuf, found: u64, cap: u64 },

    #[error("{}: password environment variable {var} is not set", path.display())]
    PasswordEnv { path: PathBuf, var: String },

    #[error("{}: not a trust anchor rustls accepts: {source}", path.display())]
    BadTrustAnchor {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },

    /// From `CertBundle::certified_key`, which holds no paths: the caller knows the source.
    #[error("the private key cannot be used for TLS: {source}")]
    KeyUnusable {
        #[source]
        source: rustls::Error,
    },

    /// From `CertBundle::certified_key`: the key is not the leaf's.
    #[error("the private key does not belong to the leaf (first) certificate")]
    KeyMismatch,

    #[error("{}: cannot create: {source}", path.display())]
    Generate {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },

    #[error("{}: {detail}", path.display())]
    InternalCa { path: PathBuf, detail: String },

    #[error(
        "{}: {name:?} is outside the internal CA's name constraints (it issues only for {} and names under them), so clients that trust this root would refuse the certificate; to add the name, move ca.pem and ca-key.pem out of {} so that certfront creates a new CA for every configured name (clients must then import the new ca.pem), or give this host a certificate from another CA",
        path.display(),
        permitted.join(", "),
        path.parent().unwrap_or(Path::new(".")).display()
    )]
    CaNameConstraint {
        /// The root, `state_dir/ca.pem`.
        path: PathBuf,
        name: String,
        permitted: Vec<String>,
    },

    #[error("{name:?} is not a valid DNS name: {reason}")]
    InvalidName {
        name: String,
        #[source]
        reason: crate::names::NameError,
    },

    /// A CSR subject field (`--org`, `--country`...) a CA would refuse.
    #[error("--{field} {value:?}: expected {expected}")]
    InvalidSubject {
        field: &'static str,
        value: String,
        expected: String,
    },

    #[error("the internal CA issues certificates only from InternalCa::issue, not load()")]
    InternalSource,
}

impl CertError {
    /// The file this error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        use CertError::*;
        match self {
            Read { path, .. }
            | Write { path, .. }
            | Exists { path }
            | Watch { path, .. }
            | Empty { path }
            | NoCertificate { path }
            | Pem { path, .. }
            | BadCertificate { path, .. }
            | NoKey { path }
            | EncryptedKey { path }
            | UnexpectedPfx { path }
            | NotPfx { path }
            | PfxNeedsPassword { path }
            | Pfx { path, .. }
            | PfxEnvPassword { path, .. }
            | Pkcs7 { path, .. }
            | PfxNoKey { path }
            | PfxNoCertificate { path }
            | PfxIterations { path, .. }
            | PasswordEnv { path, .. }
            | BadTrustAnchor { path, .. }
            | Generate { path, .. }
            | InternalCa { path, .. }
            | CaNameConstraint { path, .. } => Some(path),
            Parse { .. }
            | KeyUnusable { .. }
            | KeyMismatch
            | InvalidName { .. }
            | InvalidSubject { .. }
            | InternalSource => None,
        }
    }

    /// The message without the leading "file: ", for callers that print the file themselves.
    pub fn detail(&self) -> String {
        let message = self.to_string();
        match self.path() {
            Some(path) => {
                let prefix = format!("{}: ", path.display());
                message
                    .strip_prefix(&prefix)
                    .map(str::to_owned)
                    .unwrap_or(message)
            }
            None => message,
        }
    }
}

/// A PEM error in words an administrator can act on.
pub(crate) fn pem_detail(err: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match err {
        // pki-types gives the label only ("CERTIFICATE")
        E::MissingSectionEnd { end_marker } => format!(
            "the line \"-----END {}-----\" is missing (file truncated?)",
            String::from_utf8_lossy(end_marker)
                .trim()
                .trim_matches('-')
                .trim_start_matches("END ")
        ),
        E::IllegalSectionStart { line } => {
            format!(
                "malformed BEGIN line {:?}",
                String::from_utf8_lossy(line).trim()
            )
        }
        E::Base64Decode(e) => format!("the text between BEGIN and END is not valid base64 ({e})"),
        other => other.to_string(),
    }
}

/// x509-parser reports through nom; keep the inner error, which is the one that explains.
pub(crate) fn x509_error(err: x509_parser::nom::Err<X509Error>) -> X509Error {
    match err {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
        x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
    }
}
