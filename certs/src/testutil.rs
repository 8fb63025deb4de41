//! Test helpers: CAs and leaves made with rcgen, written into temporary directories,
//! and the committed openssl fixtures of `testdata/` (SHA-1, RSA-1024, OpenSSL .pfx).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256,
    RsaKeySize,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::inspect::{CertInfo, KeyType};
use crate::source::CertSource;
use crate::trust::TrustAnchors;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    Rsa,
    /// A second RSA key, for "the key of another certificate".
    Rsa2,
    P256,
    P384,
    Ed25519,
}

/// A key of `alg`. RSA generation is slow, so the two RSA keys are made once per run.
pub(crate) fn key(alg: Alg) -> KeyPair {
    static RSA: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    let rsa = || {
        RSA.get_or_init(|| {
            let make = || {
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
                    .unwrap()
                    .serialize_der()
            };
            [make(), make()]
        })
    };
    match alg {
        Alg::Rsa => KeyPair::try_from(rsa()[0].as_slice()).unwrap(),
        Alg::Rsa2 => KeyPair::try_from(rsa()[1].as_slice()).unwrap(),
        Alg::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        Alg::P384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
        Alg::Ed25519 => KeyPair::generate_for(&PKCS_ED25519).unwrap(),
    }
}

pub(crate) fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A CA (root or intermediate) that can issue.
pub(crate) struct Ca {
    pub der: CertificateDer<'static>,
    pub key: KeyPair,
}

impl Ca {
    pub(crate) fn root(alg: Alg) -> Ca {
        let key = key(alg);
        let cert = ca_params("test root").self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            key,
        }
    }

    pub(crate) fn intermediate(&self, alg: Alg) -> Ca {
        let key = key(alg);
        let cert = ca_params("test intermediate")
            .signed_by(&key, &self.issuer())
            .unwrap();
        Ca {
            der: cert.der().clone(),
            key,
        }
    }

    fn issuer(&self) -> Issuer<'static, &KeyPair> {
        Issuer::from_ca_cert_der(&self.der, &self.key).unwrap()
    }

    /// Signs `leaf`, returning its certificate and key.
    pub(crate) fn issue(&self, leaf: &Leaf) -> (CertificateDer<'static>, KeyPair) {
        let key = key(leaf.alg);
        let mut params = CertificateParams::new(leaf.names.clone()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, leaf.cn.as_str());
        params.key_usages = leaf.ku.clone();
        params.extended_key_usages = leaf.eku.clone();
        params.not_before = leaf.not_before;
        params.not_after = leaf.not_after;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        (cert.der().clone(), key)
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    params
}

/// What a leaf should look like; `Leaf::new` gives one that passes the default policy.
#[derive(Clone)]
pub(crate) struct Leaf {
    pub names: Vec<String>,
    pub cn: String,
    pub alg: Alg,
    /// Empty: the extension is left out.
    pub ku: Vec<KeyUsagePurpose>,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Leaf {
    pub(crate) fn new(names_: &[&str], alg: Alg) -> Leaf {
        let rsa = matches!(alg, Alg::Rsa | Alg::Rsa2);
        let ku = if rsa {
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ]
        } else {
            vec![KeyUsagePurpose::DigitalSignature]
        };
        let now = OffsetDateTime::now_utc();
        Leaf {
            names: names(names_),
            cn: names_.first().copied().unwrap_or("no name").to_owned(),
            alg,
            ku,
            eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
        }
    }
}

/// Writes `<name>.pem` (the chain) and `<name>-key.pem` (mode 0600) into `dir`.
pub(crate) fn write_pem(
    dir: &Path,
    name: &str,
    chain: &[&CertificateDer<'_>],
    key: &KeyPair,
) -> CertSource {
    let cert = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, pem_chain(chain)).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    set_mode(&key_path, 0o600);
    CertSource::Pem {
        cert,
        key: key_path,
    }
}

pub(crate) fn pem_chain(chain: &[&CertificateDer<'_>]) -> String {
    use base64::Engine;
    chain
        .iter()
        .map(|der| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect()
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// Writes `chain` and `key` as `<dir>/host.pfx` with p12-keystore, encrypted with `alg`
/// (AES-256 as OpenSSL 3 does by default; 3DES or RC2-40 with a SHA-1 MAC as Windows does).
pub(crate) fn write_pfx(
    dir: &Path,
    chain: &[&CertificateDer<'_>],
    key: &KeyPair,
    password: &str,
    alg: p12_keystore::EncryptionAlgorithm,
) -> PathBuf {
    use p12_keystore::{
        Certificate, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey, PrivateKeyChain,
    };
    let certs = chain.iter().map(|c| Certificate::from_der(c).unwrap());
    let private = PrivateKey::from_der(&key.serialize_der()).unwrap();
    let mut store = KeyStore::new();
    let entry = PrivateKeyChain::new(vec![1u8, 2, 3, 4], private, certs);
    store.add_entry("host", KeyStoreEntry::PrivateKeyChain(entry));
    let mac = match alg {
        p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256 => MacAlgorithm::HmacSha256,
        _ => MacAlgorithm::HmacSha1,
    };
    let bytes = store
        .writer(password)
        .encryption_algorithm(alg)
        .mac_algorithm(mac)
        .write()
        .unwrap();
    let path = dir.join("host.pfx");
    std::fs::write(&path, bytes).unwrap();
    set_mode(&path, 0o600);
    path
}

/// A file of the committed fixtures (see `testdata/make.sh`).
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The password of the fixture .pfx files.
pub(crate) const FIXTURE_PASSWORD: &str = "fixture-password";

/// Trust anchors of exactly `roots` (no system store: tests must not depend on the host).
pub(crate) fn trust(roots: &[&CertificateDer<'static>]) -> TrustAnchors {
    let roots: Vec<CertificateDer<'static>> = roots.iter().map(|r| (*r).clone()).collect();
    TrustAnchors::new(false, &[], &roots).unwrap()
}

pub(crate) fn leaf_info_stub() -> CertInfo {
    CertInfo {
        subject: String::new(),
        issuer: String::new(),
        sans: Vec::new(),
        serial: "0".into(),
        not_before: 0,
        not_after: 0,
        key_type: KeyType::Rsa,
        key_bits: 2048,
        signature_algorithm: String::new(),
        signature_hash: None,
        key_usage: None,
        extended_key_usage: None,
        is_ca: false,
        sha1_thumbprint: String::new(),
        sha256_fingerprint: String::new(),
        crl_distribution_points: Vec::new(),
        authority_info_access: Vec::new(),
    }
}
