//! Certificates for the benchmarks, made with rcgen: a root (own or loaded from PEM) that signs leaves meeting certfront's default policy.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A root that signs leaves.
pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// The root certificate, PEM (what clients and `[tls] trust` are given).
    pub pem: String,
}

/// A leaf: certificate and key as PEM, and the certificate's DER (what a client sees served).
pub(crate) struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

/// Key of a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    #[value(name = "p256")]
    EcdsaP256,
    #[value(name = "rsa2048")]
    Rsa2048,
}

impl Authority {
    /// A new throw-away root (ECDSA P-256), valid for a year.
    pub(crate) fn generate(cn: &str) -> Result<Authority> {
        let key = KeyPair::generate().context("generate the root's key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
        let cert = params.self_signed(&key).context("self-sign the root")?;
        Ok(Authority {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The root in `cert` (PEM) with its private key in `key` (PEM: PKCS#8, SEC1 or PKCS#1).
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Authority> {
        let pem = std::fs::read_to_string(cert)
            .with_context(|| format!("{}: cannot read the root certificate", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .with_context(|| format!("{}: cannot read the root's key", key.display()))?;
        let key = KeyPair::from_pem(&key_pem).with_context(|| {
            format!(
                "{}: not a PEM private key (expected PKCS#8, SEC1 or PKCS#1)",
                key.display()
            )
        })?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key)
            .with_context(|| format!("{}: not a PEM certificate", cert.display()))?;
        Ok(Authority { issuer, pem })
    }

    /// A server leaf for `names` that meets certfront's default policy: SANs, digitalSignature
    /// (plus keyEncipherment for RSA), serverAuth, valid from an hour ago for 90 days (past
    /// certfront's 30-day expiry warning, which would log a line per host), and a serial of
    /// its own (rcgen derives it from the new key).
    pub(crate) fn leaf(&self, names: &[String], kind: KeyKind) -> Result<Leaf> {
        let key = match kind {
            KeyKind::EcdsaP256 => KeyPair::generate(),
            KeyKind::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
        .context("generate a leaf key")?;
        let mut params = CertificateParams::new(names.to_vec())
            .with_context(|| format!("{names:?}: not DNS names"))?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = match kind {
            KeyKind::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
            KeyKind::Rsa2048 => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        };
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(90);
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("sign the leaf")?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// Writes a private key readable by its owner only (certfront warns about wider modes).
pub(crate) fn write_key(path: &Path, pem: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    f.write_all(pem.as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::key_type;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn leaves_carry_the_names_key_and_purpose_certfront_requires() {
        use x509_parser::prelude::*;
        let ca = Authority::generate("loadtest root").unwrap();
        let names = vec!["rotate.bench.localhost".to_string()];
        for (kind, want) in [
            (KeyKind::EcdsaP256, "ECDSA P-256"),
            (KeyKind::Rsa2048, "RSA 2048"),
        ] {
            let leaf = ca.leaf(&names, kind).unwrap();
            assert_eq!(key_type(&CertificateDer::from(leaf.der.clone())), want);
            let (_, x) = X509Certificate::from_der(&leaf.der).unwrap();
            let san = x.subject_alternative_name().unwrap().unwrap();
            assert_eq!(
                san.value.general_names,
                vec![GeneralName::DNSName("rotate.bench.localhost")]
            );
            assert!(x.extended_key_usage().unwrap().unwrap().value.server_auth);
            assert!(x.key_usage().unwrap().unwrap().value.digital_signature());
            assert!(x.validity().is_valid());
            assert_eq!(
                x.issuer().to_string(),
                "CN=loadtest root",
                "signed by the root"
            );
        }
        let a = ca.leaf(&names, KeyKind::EcdsaP256).unwrap();
        let b = ca.leaf(&names, KeyKind::EcdsaP256).unwrap();
        assert_ne!(a.der, b.der, "every rotation serves a new certificate");
    }

    #[test]
    fn a_root_loaded_from_pem_signs_like_the_original() {
        let dir = std::env::temp_dir().join(format!("cf-lt-mint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "pem root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        write_key(&dir.join("ca-key.pem"), &key.serialize_pem()).unwrap();
        let ca = Authority::load(&dir.join("ca.pem"), &dir.join("ca-key.pem")).unwrap();
        let leaf = ca
            .leaf(&["a.localhost".into()], KeyKind::EcdsaP256)
            .unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(&leaf.der).unwrap();
        assert_eq!(x.issuer().to_string(), "CN=pem root");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("ca-key.pem"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let e = Authority::load(&dir.join("ca.pem"), &dir.join("ca.pem"))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("not a PEM private key"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
