//! Certificate signing requests: a new key and a CSR that a CA turns into a certificate
//! meeting the default policy (every name a SAN dNSName, key size, key usage, EKU).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize,
};

use crate::error::CertError;
use crate::files::{create_private_dir, write_new};
use crate::names::{Allow, NameError, check_dns_name, normalize};

/// The key to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CsrKey {
    P256,
    P384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl CsrKey {
    pub const ALL: &'static [CsrKey] = &[
        CsrKey::P256,
        CsrKey::P384,
        CsrKey::Rsa2048,
        CsrKey::Rsa3072,
        CsrKey::Rsa4096,
    ];

    /// The spelling on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            CsrKey::P256 => "p256",
            CsrKey::P384 => "p384",
            CsrKey::Rsa2048 => "rsa2048",
            CsrKey::Rsa3072 => "rsa3072",
            CsrKey::Rsa4096 => "rsa4096",
        }
    }

    fn is_rsa(self) -> bool {
        matches!(self, CsrKey::Rsa2048 | CsrKey::Rsa3072 | CsrKey::Rsa4096)
    }

    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            CsrKey::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            CsrKey::P384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
            CsrKey::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            CsrKey::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
            CsrKey::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        }
    }
}

impl fmt::Display for CsrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CsrKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CsrKey::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = CsrKey::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown key {s:?}, expected one of: {}", all.join(", "))
            })
    }
}

/// The two files `write_csr` made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrFiles {
    pub key: PathBuf,
    pub csr: PathBuf,
}

/// Writes `<first name>.key` (PKCS#8 PEM, mode 0600) and `<first name>.csr` (PEM) into
/// `out_dir` (created when missing). Never overwrites: an existing file is an error and
/// nothing is written. A wildcard first name gives `wildcard.example.org.key`.
pub fn write_csr(names: &[String], key: CsrKey, out_dir: &Path) -> Result<CsrFiles, CertError> {
    let names: Vec<String> = names.iter().map(|n| normalize(n)).collect();
    let Some(first) = names.first() else {
        return Err(CertError::InvalidName {
            name: String::new(),
            reason: NameError::Empty,
        });
    };
    for name in &names {
        check_dns_name(name, Allow::HOST).map_err(|reason| CertError::InvalidName {
            name: name.clone(),
            reason,
        })?;
    }
    let stem = first.replace('*', "wildcard");
    let files = CsrFiles {
        key: out_dir.join(format!("{stem}.key")),
        csr: out_dir.join(format!("{stem}.csr")),
    };
    for path in [&files.key, &files.csr] {
        if path.exists() {
            return Err(CertError::Exists { path: path.clone() });
        }
    }

    let key_pair = key.generate().map_err(|source| CertError::Generate {
        path: files.key.clone(),
        source,
    })?;
    let mut params =
        CertificateParams::new(names.clone()).map_err(|source| CertError::Generate {
            path: files.csr.clone(),
            source,
        })?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    // Asked for in the request; most CAs copy them, and those that don't set their own.
    params.key_usages = if key.is_rsa() {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    } else {
        vec![KeyUsagePurpose::DigitalSignature]
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let csr = params
        .serialize_request(&key_pair)
        .and_then(|csr| csr.pem())
        .map_err(|source| CertError::Generate {
            path: files.csr.clone(),
            source,
        })?;

    create_private_dir(out_dir)?;
    write_new(
        &files.key,
        zeroize::Zeroizing::new(key_pair.serialize_pem()).as_bytes(),
        0o600,
    )?;
    write_new(&files.csr, csr.as_bytes(), 0o644)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateSigningRequestDer, PrivateKeyDer};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn key_names_round_trip() {
        for k in CsrKey::ALL {
            assert_eq!(k.as_str().parse::<CsrKey>().unwrap(), *k);
        }
        assert!("rsa1024".parse::<CsrKey>().unwrap_err().contains("p256"));
    }

    #[test]
    fn writes_key_0600_and_csr_with_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let files = write_csr(
            &names(&["App.Example.org", "app.internal.example.org"]),
            CsrKey::P256,
            &out,
        )
        .unwrap();
        assert_eq!(files.key, out.join("app.example.org.key"));
        assert!(matches!(
            PrivateKeyDer::from_pem_file(&files.key).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let der = CertificateSigningRequestDer::from_pem_file(&files.csr).unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_der(&der).unwrap();
        let sans: Vec<String> = parsed
            .params
            .subject_alt_names
            .iter()
            .map(|s| match s {
                rcgen::SanType::DnsName(n) => n.as_str().to_owned(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            names(&["app.example.org", "app.internal.example.org"])
        );
    }

    #[test]
    fn rsa_key_meets_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_csr(&names(&["*.example.org"]), CsrKey::Rsa2048, dir.path()).unwrap();
        assert_eq!(files.csr, dir.path().join("wildcard.example.org.csr"));
        let text = std::fs::read_to_string(&files.key).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.example.org.csr"), "keep me").unwrap();
        let err = write_csr(&names(&["app.example.org"]), CsrKey::P256, dir.path()).unwrap_err();
        assert!(matches!(err, CertError::Exists { .. }), "{err}");
        assert!(!dir.path().join("app.example.org.key").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app.example.org.csr")).unwrap(),
            "keep me"
        );
    }

    #[test]
    fn refuses_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_csr(
            &names(&["app.example.org", "bad name"]),
            CsrKey::P256,
            dir.path(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"bad name\" is not a valid DNS name: label \"bad name\" contains ' '"),
            "{err}"
        );
        let err = write_csr(&names(&["*.org"]), CsrKey::P256, dir.path()).unwrap_err();
        assert!(err.to_string().contains("at least two labels"), "{err}");
        let err = write_csr(&names(&["hc_app.corp.local"]), CsrKey::P256, dir.path()).unwrap_err();
        assert!(err.to_string().contains("underscores"), "{err}");
        assert!(write_csr(&[], CsrKey::P256, dir.path()).is_err());
    }
}
