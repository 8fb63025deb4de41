//! Where a host's certificate and key come from.

use std::path::{Path, PathBuf};

/// Where a PKCS#12 password is read from; never from the config file itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PasswordSource {
    /// The name of an environment variable.
    Env(String),
    /// A file whose first line is the password.
    File(PathBuf),
}

/// A host's certificate source, exactly one per host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CertSource {
    /// A PEM chain (leaf first) and a PEM private key.
    Pem { cert: PathBuf, key: PathBuf },
    /// A PKCS#12 (.pfx) file holding the key and its chain.
    Pfx {
        path: PathBuf,
        password: PasswordSource,
    },
    /// Issued by certfront's internal CA.
    Internal,
}

impl CertSource {
    /// The files that make up this source: what the watcher observes.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            CertSource::Pem { cert, key } => vec![cert.as_path(), key.as_path()],
            CertSource::Pfx { path, password } => match password {
                PasswordSource::File(p) => vec![path.as_path(), p.as_path()],
                PasswordSource::Env(_) => vec![path.as_path()],
            },
            CertSource::Internal => Vec::new(),
        }
    }
}
