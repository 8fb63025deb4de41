//! A test PKI on disk for the proxy's unit tests: a root in `root.pem` (the config's
//! `tls.trust`) and leaves that meet the default policy, written as certfront reads them.

use certfront_config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub(crate) struct TestPki {
    pub dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// A fresh directory holding `root.pem`.
    pub(crate) fn new() -> TestPki {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "unit root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&key).expect("root");
        std::fs::write(dir.path().join("root.pem"), root.pem()).expect("root.pem");
        TestPki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `<stem>.pem` (a leaf for `names`) and `<stem>-key.pem` (mode 0600); returns
    /// the leaf's serial as certfront shows it.
    pub(crate) fn leaf(&self, stem: &str, names: &[&str]) -> String {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("names");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        std::fs::write(self.dir.path().join(format!("{stem}.pem")), cert.pem()).expect("cert");
        self.key(stem, &key);
        certfront_certs::inspect::inspect(cert.der())
            .expect("inspect")
            .serial
    }

    /// Writes only a new key for `<stem>` (the first half of a rotation).
    pub(crate) fn new_key(&self, stem: &str) {
        self.key(stem, &KeyPair::generate().expect("key"));
    }

    fn key(&self, stem: &str, key: &KeyPair) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(format!("{stem}-key.pem"));
        std::fs::write(&path, key.serialize_pem()).expect("key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    /// A config trusting `root.pem`, with `hosts` (TOML `[[host]]` tables) after it.
    pub(crate) fn config(&self, hosts: &str) -> Config {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\n{hosts}"
        );
        std::fs::write(self.dir.path().join("certfront.toml"), &text).expect("config");
        certfront_config::load(&self.dir.path().join("certfront.toml")).expect("config")
    }
}

/// A `[[host]]` serving `<stem>.pem` and answering itself with `body`.
pub(crate) fn host(fqdn: &str, stem: &str, body: &str) -> String {
    format!(
        "[[host]]\nfqdn = \"{fqdn}\"\ncert = \"{stem}.pem\"\nkey = \"{stem}-key.pem\"\n\
         respond = {{ body = \"{body}\" }}\n\n"
    )
}
