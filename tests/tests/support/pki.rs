//! Test certificates made with rcgen, per test, into temporary directories.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

/// A private CA that signs test leaves.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

/// A leaf certificate and its key, as PEM.
pub(crate) struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub(crate) fn new(cn: &str) -> TestCa {
        TestCa::with(cn, |_| {})
    }

    /// A root with its parameters (e.g. its validity) adjusted by `tweak` before it signs
    /// itself.
    pub(crate) fn with(cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> TestCa {
        let (key, params) = ca_params(cn, tweak);
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one (`pem` holds the intermediate alone).
    pub(crate) fn intermediate(
        &self,
        cn: &str,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> TestCa {
        let (key, params) = ca_params(cn, tweak);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("signed intermediate");
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's private key, PEM (for tools that sign with it, such as the loadtest).
    pub(crate) fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A server leaf for `names` that meets the default policy (ECDSA P-256).
    pub(crate) fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, |_| {})
    }

    /// A leaf with its parameters adjusted by `tweak` before signing.
    pub(crate) fn leaf_with(
        &self,
        names: &[&str],
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(90);
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client certificate (EKU clientAuth) for mutual TLS tests.
    pub(crate) fn client(&self, cn: &str) -> Leaf {
        self.leaf_with(&[], |p| {
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        })
    }
}

fn ca_params(cn: &str, tweak: impl FnOnce(&mut CertificateParams)) -> (KeyPair, CertificateParams) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    tweak(&mut params);
    (key, params)
}

impl Leaf {
    /// Writes `<stem>.pem` and `<stem>-key.pem` (mode 0600) into `dir`.
    pub(crate) fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        write_secret(&key, self.key_pem.as_bytes());
        (cert, key)
    }
}

impl Leaf {
    /// The leaf and its key as a `.pfx` (PKCS#12) sealed with `password`, as Windows exports it.
    pub(crate) fn pfx(&self, password: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(self.key_pem.as_bytes())
            .expect("pkcs8");
        let cert = p12_keystore::Certificate::from_der(self.der.as_ref()).expect("cert");
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8],
            p12_keystore::PrivateKey::from_der(key.secret_pkcs8_der()).expect("key"),
            vec![cert],
        );
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("leaf", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        store.writer(password).write().expect("pfx")
    }
}

/// Writes a file readable by its owner only (as a private key should be).
pub(crate) fn write_secret(path: &Path, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// SHA-1 of a certificate as Windows shows a thumbprint.
pub(crate) fn thumbprint(der: &[u8]) -> String {
    certfront_certs::inspect::sha1_hex(der)
}
