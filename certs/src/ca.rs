//! certfront's internal CA: one root in `state_dir`, created once and reused, issuing
//! leaf certificates that pass the default policy (for local and development hosts).
//! The root carries name constraints for the configured domains (see `constraints`), and
//! its key is refused when group or others can read it.

mod constraints;
mod profile;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration as StdDuration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::RootCertStore;
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::aws_lc_rs::default_provider;
use rustls::server::ParsedCertificate;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use time::{Duration, OffsetDateTime};
use tracing::warn;
use zeroize::Zeroizing;

use crate::check::check;
use crate::csr::{eku_purpose, ku_purpose};
use crate::error::CertError;
use crate::files::{create_private_dir, publish_once, replace};
use crate::keys::key_matches;
use crate::load::{CertBundle, load, parse_certs, read};
use crate::names::{Allow, check_dns_name, covers, normalize};
use crate::policy::Policy;
use crate::source::CertSource;
use crate::trust::TrustAnchors;
use constraints::within;
use profile::LeafProfile;

const KEY_FILE: &str = "ca-key.pem";
const ROOT_FILE: &str = "ca.pem";
const COMMON_NAME: &str = "certfront internal CA";
/// A leaf with less left than this is replaced at start.
const RENEW_DAYS: i64 = 30;

/// The internal CA, loaded from (or created in) `state_dir`.
pub struct InternalCa {
    dir: PathBuf,
    root: CertificateDer<'static>,
    key: KeyPair,
    /// The root's permitted DNS subtrees; `None` for a root made before certfront set
    /// name constraints (it may issue for any name).
    permitted: Option<Vec<String>>,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl InternalCa {
    /// Loads the CA of `state_dir`, creating it on first use: `state_dir` (mode 0700),
    /// `ca-key.pem` (ECDSA P-256, mode 0600), `ca.pem` (self-signed, 10 years, name
    /// constraints permitting the domains of `names`, every name of every internal host).
    /// Each file is published with an exclusive link, so two processes starting together
    /// end up with the same single CA. An existing `ca-key.pem` that group or others can
    /// read is refused: whoever reads it can issue certificates clients trust.
    pub fn load_or_create(state_dir: &Path, names: &[String]) -> Result<Self, CertError> {
        create_private_dir(state_dir)?;
        let key_path = state_dir.join(KEY_FILE);
        let root_path = state_dir.join(ROOT_FILE);

        let mut created_key = false;
        if !key_path.exists() {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
                CertError::Generate {
                    path: key_path.clone(),
                    source,
                }
            })?;
            let pem = Zeroizing::new(key.serialize_pem());
            created_key = publish_once(&key_path, pem.as_bytes(), 0o600)?;
        }
        if !created_key {
            check_key_mode(&key_path)?;
        }
        let key = read_key(&key_path)?;

        if !root_path.exists() && !created_key {
            // Another process may be between publishing the key and the root: give it a moment.
            for _ in 0..20 {
                if root_path.exists() {
                    break;
                }
                thread::sleep(StdDuration::from_millis(100));
            }
        }
        if !root_path.exists() {
            // Also the way back from a crash between the two files: the key is kept, so
            // leaves issued before still chain to the new root (same name, same key).
            let names: Vec<String> = names.iter().map(|n| normalize(n)).collect();
            let subtrees = constraints::subtrees_for(&names);
            if subtrees.is_empty() {
                return Err(CertError::InternalCa {
                    path: root_path,
                    detail:
                        "no host name to constrain a new root to (an internal host needs an fqdn)"
                            .into(),
                });
            }
            let root = self_signed_root(&key, &subtrees).map_err(|source| CertError::Generate {
                path: root_path.clone(),
                source,
            })?;
            publish_once(&root_path, root.pem().as_bytes(), 0o644)?;
        }
        let root = parse_certs(
            &root_path,
            &read(&root_path, crate::read::FileKind::Certificate)?,
        )?
        .remove(0);

        let key_der = Zeroizing::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )));
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&root).map_err(|e| CertError::InternalCa {
                path: root_path.clone(),
                detail: format!("cannot be parsed: {e}"),
            })?;
        if key_matches(&key_der, parsed.public_key()) != Ok(true) {
            return Err(CertError::InternalCa {
                path: root_path,
                detail: format!(
                    "is not the certificate of {KEY_FILE}; move both away to start a new CA"
                ),
            });
        }
        let permitted = constraints::permitted(&parsed);
        if permitted.is_none() {
            warn!(
                "{}: the internal CA's root has no name constraints (made by an older certfront), so its key could issue for any name; move ca.pem and ca-key.pem away to create a constrained one (clients must then import the new ca.pem)",
                root_path.display()
            );
        }
        Ok(InternalCa {
            dir: state_dir.to_owned(),
            root,
            key,
            permitted,
        })
    }

    /// `state_dir/ca.pem`: what clients import to trust the internal hosts.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join(ROOT_FILE)
    }

    /// The DNS subtrees the root may issue for (`None`: unconstrained, an older root).
    pub fn permitted_subtrees(&self) -> Option<&[String]> {
        self.permitted.as_deref()
    }

    /// The root certificate, to add to the trust anchors.
    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.clone()
    }

    /// A leaf for `fqdn` and `names` that meets the default policy; see [`Self::issue_for`].
    pub fn issue(&self, fqdn: &str, names: &[String]) -> Result<CertBundle, CertError> {
        self.issue_for(fqdn, names, &Policy::default())
    }

    /// A leaf for `fqdn` and `names` (every one a SAN dNSName) made to meet `policy`: its
    /// key type and size, key usages and extended key usages (e.g. Client Authentication
    /// for a host whose `[host.policy]` asks for it). Kept in `state_dir/hosts/<fqdn>.pem`
    /// and `<fqdn>-key.pem` (0600); the stored leaf is reused while it covers the names,
    /// chains to this CA, meets the policy and has more than 30 days left.
    pub fn issue_for(
        &self,
        fqdn: &str,
        names: &[String],
        policy: &Policy,
    ) -> Result<CertBundle, CertError> {
        let mut all = vec![normalize(fqdn)];
        for name in names.iter().map(|n| normalize(n)) {
            if !all.contains(&name) {
                all.push(name);
            }
        }
        for name in &all {
            check_dns_name(name, Allow::HOST).map_err(|reason| CertError::InvalidName {
                name: name.clone(),
                reason,
            })?;
            if let Some(permitted) = &self.permitted
                && !permitted.iter().any(|subtree| within(name, subtree))
            {
                return Err(CertError::CaNameConstraint {
                    path: self.root_path(),
                    name: name.clone(),
                    permitted: permitted.clone(),
                });
            }
        }
        let profile = LeafProfile::for_policy(policy).map_err(|detail| CertError::InternalCa {
            path: self.dir.clone(),
            detail: format!("cannot issue for {}: {detail}", all[0]),
        })?;
        let hosts = self.dir.join("hosts");
        create_private_dir(&hosts)?;
        let stem = all[0].replace('*', "wildcard");
        let cert = hosts.join(format!("{stem}.pem"));
        let key = hosts.join(format!("{stem}-key.pem"));
        let source = CertSource::Pem {
            cert: cert.clone(),
            key: key.clone(),
        };

        if cert.exists()
            && key.exists()
            && let Ok(bundle) = load(&source)
            && self.reusable(&bundle, &all, &source, policy)
        {
            return Ok(bundle);
        }
        let leaf_key = profile.generate().map_err(|source| CertError::Generate {
            path: key.clone(),
            source,
        })?;
        let leaf = self
            .sign_leaf(&all, &leaf_key, &profile)
            .map_err(|source| CertError::Generate {
                path: cert.clone(),
                source,
            })?;
        // key first: a reader that sees the new cert with the old key retries (half rotation)
        replace(
            &key,
            Zeroizing::new(leaf_key.serialize_pem()).as_bytes(),
            0o600,
        )?;
        replace(&cert, leaf.pem().as_bytes(), 0o644)?;
        load(&source)
    }

    fn sign_leaf(
        &self,
        names: &[String],
        key: &KeyPair,
        profile: &LeafProfile,
    ) -> Result<rcgen::Certificate, rcgen::Error> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = profile.key_usages.iter().map(|u| ku_purpose(*u)).collect();
        params.extended_key_usages = profile
            .extended_key_usages
            .iter()
            .map(|u| eku_purpose(*u))
            .collect();
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        // an hour back, for clients whose clock runs a little behind
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        params.serial_number = Some(random_serial());
        let issuer = Issuer::from_ca_cert_der(&self.root, &self.key)?;
        params.signed_by(key, &issuer)
    }

    /// Covers every name, chains to this CA now, has its key, meets the host's policy
    /// (which may have changed since it was issued), and is not near expiry.
    fn reusable(
        &self,
        bundle: &CertBundle,
        names: &[String],
        source: &CertSource,
        policy: &Policy,
    ) -> bool {
        let Ok(info) = bundle.leaf_info() else {
            return false;
        };
        let covered = names.iter().all(|n| info.dns_names().any(|p| covers(p, n)));
        if !covered || info.days_left(SystemTime::now()) <= RENEW_DAYS {
            return false;
        }
        let mut roots = RootCertStore::empty();
        if roots.add(self.root.clone()).is_err() {
            return false;
        }
        let chains = ParsedCertificate::try_from(&bundle.chain[0]).and_then(|leaf| {
            verify_server_cert_signed_by_trust_anchor(
                &leaf,
                &roots,
                &bundle.chain[1..],
                UnixTime::now(),
                default_provider().signature_verification_algorithms.all,
            )
        });
        let key_ok = x509_parser::parse_x509_certificate(&bundle.chain[0])
            .is_ok_and(|(_, c)| key_matches(&bundle.key, c.public_key()) == Ok(true));
        let meets_policy = TrustAnchors::new(false, &[], std::slice::from_ref(&self.root))
            .is_ok_and(|anchors| {
                check(names, source, bundle, policy, &anchors, SystemTime::now()).is_ok()
            });
        chains.is_ok() && key_ok && meets_policy
    }
}

fn self_signed_root(
    key: &KeyPair,
    subtrees: &[String],
) -> Result<rcgen::Certificate, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.name_constraints = Some(constraints::extension(subtrees));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3653);
    params.serial_number = Some(random_serial());
    params.self_signed(key)
}

/// 16 random bytes with the top bit clear (a positive INTEGER, as RFC 5280 asks).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // on RNG failure, fall back to the clock: uniqueness is all a serial needs here
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = nanos.to_be_bytes();
    }
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes.to_vec())
}

/// Refuses a CA key that group or others can read (whatever `policy.key_file_mode` says:
/// this key issues certificates that clients trust).
#[cfg(unix)]
fn check_key_mode(path: &Path) -> Result<(), CertError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| CertError::Read {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(CertError::InternalCa {
        path: path.to_owned(),
        detail: format!(
            "mode {mode:04o} lets group or others read the internal CA's private key, which can issue certificates your clients trust; the CA key must be readable by certfront's user only: chmod 600 {}",
            path.display()
        ),
    })
}

#[cfg(not(unix))]
fn check_key_mode(_path: &Path) -> Result<(), CertError> {
    Ok(())
}

fn read_key(path: &Path) -> Result<KeyPair, CertError> {
    let bytes =
        crate::read::read_file(path, crate::read::FileKind::PrivateKey).map_err(|source| {
            CertError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
    let text = Zeroizing::new(String::from_utf8(bytes).map_err(|e| CertError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?);
    KeyPair::from_pem(&text).map_err(|e| CertError::InternalCa {
        path: path.to_owned(),
        detail: format!("not a private key certfront can use: {e}"),
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_policy;
