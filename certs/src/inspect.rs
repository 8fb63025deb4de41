//! Facts about one certificate, as `certs inspect`, `check` and the admin inventory show them.

use std::fmt;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use rustls_pki_types::CertificateDer;
use serde::{Serialize, Serializer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::error::{CertError, x509_error};
use crate::policy::{ExtKeyUsage, HashAlg, KeyUsage};

/// The kind of public key in a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    EcP521,
    Ed25519,
    /// Anything else (DSA, other curves), described by its OID.
    Other(String),
}

impl KeyType {
    /// Whether the policy's `ec_key_usage` (rather than `rsa_key_usage`) applies.
    pub fn is_ec_like(&self) -> bool {
        matches!(
            self,
            KeyType::EcP256 | KeyType::EcP384 | KeyType::EcP521 | KeyType::Ed25519
        )
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa => f.write_str("RSA"),
            KeyType::EcP256 => f.write_str("EC P-256"),
            KeyType::EcP384 => f.write_str("EC P-384"),
            KeyType::EcP521 => f.write_str("EC P-521"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::Other(what) => f.write_str(what),
        }
    }
}

impl Serialize for KeyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Everything an administrator looks at in a certificate (the Windows "Details" tab).
#[derive(Clone, Debug, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// dNSName entries as written; IP addresses as `IP:1.2.3.4`.
    pub sans: Vec<String>,
    /// Upper-case hex, no separators, leading zeros stripped (Windows "Serial number").
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub key_type: KeyType,
    /// RSA: the exact modulus length; EC: the curve size; Ed25519: 256.
    pub key_bits: u32,
    pub signature_algorithm: String,
    /// `None` for Ed25519 (no separate hash) and unknown algorithms.
    #[serde(serialize_with = "ser_hash")]
    pub signature_hash: Option<HashAlg>,
    /// `None`: the extension is absent.
    #[serde(serialize_with = "ser_list")]
    pub key_usage: Option<Vec<KeyUsage>>,
    #[serde(serialize_with = "ser_list")]
    pub extended_key_usage: Option<Vec<ExtKeyUsage>>,
    pub is_ca: bool,
    /// Upper-case hex of the SHA-1 of the DER, no spaces: what Windows calls the thumbprint.
    pub sha1_thumbprint: String,
    pub sha256_fingerprint: String,
    /// URLs of the CRL distribution points (where the issuing CA publishes its CRL), so
    /// an administrator can copy them into `client_auth.crl` tooling.
    pub crl_distribution_points: Vec<String>,
    /// Authority information access: `CA issuers: URL` and `OCSP: URL` entries.
    pub authority_info_access: Vec<String>,
}

// The policy enums are Deserialize only (config reads them); the inventory writes them
// in the same snake_case spelling through Display.
fn ser_hash<S: Serializer>(v: &Option<HashAlg>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(h) => s.serialize_some(h.as_str()),
        None => s.serialize_none(),
    }
}

fn ser_list<T: fmt::Display, S: Serializer>(v: &Option<Vec<T>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(list) => s.collect_seq(list.iter().map(|x| x.to_string())),
        None => s.serialize_none(),
    }
}

impl CertInfo {
    /// Whole days until notAfter (negative once expired), rounded down.
    pub fn days_left(&self, now: SystemTime) -> i64 {
        self.not_after
            .saturating_sub(unix_seconds(now))
            .div_euclid(86_400)
    }

    /// The dNSName SANs only (what the name rule looks at).
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.sans
            .iter()
            .filter(|s| !s.starts_with("IP:"))
            .map(String::as_str)
    }
}

/// Seconds since the Unix epoch; times before 1970 come out negative instead of panicking.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Reads a certificate's facts. Uses only raw timestamps, never `ASN1Time + Duration`,
/// which panics for notAfter 9999-12-31.
pub fn inspect(der: &CertificateDer<'_>) -> Result<CertInfo, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Parse {
        source: x509_error(e),
    })?;
    Ok(info_of(&cert, der))
}

pub(crate) fn info_of(cert: &X509Certificate<'_>, der: &[u8]) -> CertInfo {
    let (key_type, key_bits) = key_facts(cert.public_key());
    let (signature_algorithm, signature_hash) = signature_facts(&cert.signature_algorithm);
    CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans: sans(cert),
        serial: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key_type,
        key_bits,
        signature_algorithm,
        signature_hash,
        // a duplicated or malformed extension reads as absent: clients reject it too
        key_usage: cert
            .key_usage()
            .ok()
            .flatten()
            .map(|ku| key_usages(ku.value)),
        extended_key_usage: cert
            .extended_key_usage()
            .ok()
            .flatten()
            .map(|e| ext_key_usages(e.value)),
        is_ca: cert.is_ca(),
        sha1_thumbprint: sha1_hex(der),
        sha256_fingerprint: sha256_hex(der),
        crl_distribution_points: crl_distribution_points(cert),
        authority_info_access: authority_info_access(cert),
    }
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::URI(uri) => (*uri).to_owned(),
        other => other.to_string(),
    }
}

fn crl_distribution_points(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, ParsedExtension};
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    urls.extend(names.iter().map(general_name));
                }
            }
        }
    }
    urls
}

fn authority_info_access(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::ParsedExtension;
    let mut entries = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
            for desc in &aia.accessdescs {
                let method = match desc.access_method.to_id_string().as_str() {
                    "1.3.6.1.5.5.7.48.2" => "CA issuers".to_owned(),
                    "1.3.6.1.5.5.7.48.1" => "OCSP".to_owned(),
                    other => other.to_owned(),
                };
                entries.push(format!("{method}: {}", general_name(&desc.access_location)));
            }
        }
    }
    entries
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => ip_of(bytes).map(|ip| format!("IP:{ip}")),
            _ => None,
        })
        .collect()
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let hex = hex_upper(&raw[start..]);
    if hex.is_empty() { "0".to_owned() } else { hex }
}

/// Number of significant bits in a big-endian unsigned integer (leading zero bytes and
/// bits do not count). x509-parser's `key_size()` rounds to whole bytes, so a 2047-bit
/// modulus would pass as 2048.
pub(crate) fn bit_length(be: &[u8]) -> u32 {
    match be.iter().position(|b| *b != 0) {
        Some(i) => {
            let bytes = u32::try_from(be.len() - i).unwrap_or(u32::MAX / 8);
            bytes * 8 - be[i].leading_zeros()
        }
        None => 0,
    }
}

pub(crate) fn key_facts(spki: &SubjectPublicKeyInfo<'_>) -> (KeyType, u32) {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => (KeyType::Rsa, bit_length(rsa.modulus)),
            _ => (KeyType::Rsa, 0),
        },
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve.map(|c| c.to_id_string()).as_deref() {
                Some("1.2.840.10045.3.1.7") => (KeyType::EcP256, 256),
                Some("1.3.132.0.34") => (KeyType::EcP384, 384),
                Some("1.3.132.0.35") => (KeyType::EcP521, 521),
                Some(other) => (KeyType::Other(format!("EC curve {other}")), 0),
                None => (
                    KeyType::Other("EC (explicit curve parameters)".to_owned()),
                    0,
                ),
            }
        }
        "1.3.101.112" => (KeyType::Ed25519, 256),
        "1.2.840.10040.4.1" => (KeyType::Other("DSA".to_owned()), 0),
        other => (KeyType::Other(format!("key algorithm {other}")), 0),
    }
}

/// The signature algorithm's usual name and the hash it uses.
pub(crate) fn signature_facts(alg: &AlgorithmIdentifier<'_>) -> (String, Option<HashAlg>) {
    let oid = alg.algorithm.to_id_string();
    let (name, hash) = match oid.as_str() {
        "1.2.840.113549.1.1.4" => ("md5WithRSAEncryption", Some(HashAlg::Md5)),
        "1.2.840.113549.1.1.5" => ("sha1WithRSAEncryption", Some(HashAlg::Sha1)),
        "1.2.840.113549.1.1.11" => ("sha256WithRSAEncryption", Some(HashAlg::Sha256)),
        "1.2.840.113549.1.1.12" => ("sha384WithRSAEncryption", Some(HashAlg::Sha384)),
        "1.2.840.113549.1.1.13" => ("sha512WithRSAEncryption", Some(HashAlg::Sha512)),
        "1.2.840.113549.1.1.10" => ("rsassaPss", pss_hash(alg)),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", Some(HashAlg::Sha1)),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", Some(HashAlg::Sha256)),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", Some(HashAlg::Sha384)),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", Some(HashAlg::Sha512)),
        "1.2.840.10040.4.3" => ("dsa-with-sha1", Some(HashAlg::Sha1)),
        "1.3.101.112" => ("Ed25519", None),
        _ => return (oid, None),
    };
    (name.to_owned(), hash)
}

fn pss_hash(alg: &AlgorithmIdentifier<'_>) -> Option<HashAlg> {
    use x509_parser::signature_algorithm::SignatureAlgorithm;
    let Ok(SignatureAlgorithm::RSASSA_PSS(params)) = SignatureAlgorithm::try_from(alg) else {
        return None;
    };
    match params.hash_algorithm_oid().to_id_string().as_str() {
        "1.3.14.3.2.26" => Some(HashAlg::Sha1),
        "2.16.840.1.101.3.4.2.1" => Some(HashAlg::Sha256),
        "2.16.840.1.101.3.4.2.2" => Some(HashAlg::Sha384),
        "2.16.840.1.101.3.4.2.3" => Some(HashAlg::Sha512),
        _ => None,
    }
}

fn key_usages(ku: &x509_parser::extensions::KeyUsage) -> Vec<KeyUsage> {
    let bits = [
        (ku.digital_signature(), KeyUsage::DigitalSignature),
        (ku.non_repudiation(), KeyUsage::NonRepudiation),
        (ku.key_encipherment(), KeyUsage::KeyEncipherment),
        (ku.data_encipherment(), KeyUsage::DataEncipherment),
        (ku.key_agreement(), KeyUsage::KeyAgreement),
        (ku.key_cert_sign(), KeyUsage::KeyCertSign),
        (ku.crl_sign(), KeyUsage::CrlSign),
        (ku.encipher_only(), KeyUsage::EncipherOnly),
        (ku.decipher_only(), KeyUsage::DecipherOnly),
    ];
    bits.into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, ku)| ku)
        .collect()
}

fn ext_key_usages(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<ExtKeyUsage> {
    let purposes = [
        (eku.server_auth, ExtKeyUsage::ServerAuth),
        (eku.client_auth, ExtKeyUsage::ClientAuth),
        (eku.code_signing, ExtKeyUsage::CodeSigning),
        (eku.email_protection, ExtKeyUsage::EmailProtection),
        (eku.time_stamping, ExtKeyUsage::TimeStamping),
        (eku.ocsp_signing, ExtKeyUsage::OcspSigning),
    ];
    purposes
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, p)| p)
        .collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02X}");
            s
        })
}

/// SHA-1 of `der`, upper-case hex without spaces: the Windows certificate thumbprint.
pub fn sha1_hex(der: &[u8]) -> String {
    hex_upper(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

/// SHA-256 of `der`, upper-case hex without separators.
pub fn sha256_hex(der: &[u8]) -> String {
    hex_upper(digest::digest(&digest::SHA256, der).as_ref())
}

#[cfg(test)]
mod tests;
