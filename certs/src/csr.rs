//! Certificate signing requests: a new key and a CSR that a CA turns into a certificate
//! meeting the policy (every name a SAN dNSName, key size, key usage, EKU), with the
//! subject fields CAs ask for. Names are kept as typed: CAs and Windows show them so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::string::PrintableString;
use rcgen::{
    CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize,
};

use crate::error::CertError;
use crate::files::{create_private_dir, write_new};
use crate::names::{Allow, NameError, check_dns_name, normalize};
use crate::policy::{ExtKeyUsage, KeyUsage};

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

/// The subject fields besides the CN (which is the first name), as a CA's order form or
/// the IIS certificate wizard asks for them; `None` leaves a field out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsrSubject {
    /// O, e.g. "Example Hospital Inc."
    pub organization: Option<String>,
    /// OU, e.g. "IT"
    pub organizational_unit: Option<String>,
    /// L, the city
    pub locality: Option<String>,
    /// ST, the state or province, spelled out
    pub state: Option<String>,
    /// C, two letters (ISO 3166), written upper-case
    pub country: Option<String>,
}

/// What `write_csr` asks the CA for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrRequest {
    /// Every name the certificate must cover, kept as typed (case included; a trailing dot
    /// is dropped); the first is the subject CN and names the files.
    pub names: Vec<String>,
    pub key: CsrKey,
    /// Purposes requested besides Server Authentication, which is always requested
    /// (e.g. Client Authentication where a vendor guide asks for both).
    pub extended_key_usage: Vec<ExtKeyUsage>,
    pub subject: CsrSubject,
}

impl CsrRequest {
    /// A request for `names` with the default key and only Server Authentication.
    pub fn new(names: &[String]) -> Self {
        CsrRequest {
            names: names.to_vec(),
            key: CsrKey::P256,
            extended_key_usage: Vec::new(),
            subject: CsrSubject::default(),
        }
    }

    /// The purposes the CSR asks for: Server Authentication, then the extra ones.
    pub fn purposes(&self) -> Vec<ExtKeyUsage> {
        let mut all = vec![ExtKeyUsage::ServerAuth];
        for eku in &self.extended_key_usage {
            if !all.contains(eku) {
                all.push(*eku);
            }
        }
        all
    }
}

/// The two files `write_csr` made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrFiles {
    pub key: PathBuf,
    pub csr: PathBuf,
}

/// Writes `<first name>.key` (PKCS#8 PEM, mode 0600) and `<first name>.csr` (PEM) into
/// `out_dir` (created when missing); file names are lower-case, a wildcard first name
/// gives `wildcard.example.org.key`. Never overwrites: an existing file is an error and
/// nothing is written. Every name and subject field is checked before anything is made.
pub fn write_csr(request: &CsrRequest, out_dir: &Path) -> Result<CsrFiles, CertError> {
    let mut names: Vec<String> = Vec::new();
    for typed in &request.names {
        let name = typed.strip_suffix('.').unwrap_or(typed).to_owned();
        check_dns_name(&normalize(&name), Allow::HOST).map_err(|reason| {
            CertError::InvalidName {
                name: typed.clone(),
                reason,
            }
        })?;
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    }
    let Some(first) = names.first() else {
        return Err(CertError::InvalidName {
            name: String::new(),
            reason: NameError::Empty,
        });
    };
    let subject = subject_fields(&request.subject)?;
    let stem = normalize(first).replace('*', "wildcard");
    let files = CsrFiles {
        key: out_dir.join(format!("{stem}.key")),
        csr: out_dir.join(format!("{stem}.csr")),
    };
    for path in [&files.key, &files.csr] {
        if path.exists() {
            return Err(CertError::Exists { path: path.clone() });
        }
    }

    let key = request.key;
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
    for (dn_type, value) in subject {
        params.distinguished_name.push(dn_type, value);
    }
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
    params.extended_key_usages = request.purposes().into_iter().map(eku_purpose).collect();
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

/// The subject fields in the order X.500 names them (C, ST, L, O, OU), checked: no
/// control characters, within RFC 5280's upper bounds, a two-letter country.
fn subject_fields(subject: &CsrSubject) -> Result<Vec<(DnType, DnValue)>, CertError> {
    let invalid = |field: &'static str, value: &str, expected: &str| CertError::InvalidSubject {
        field,
        value: value.to_owned(),
        expected: expected.to_owned(),
    };
    let mut fields = Vec::new();
    if let Some(country) = &subject.country {
        let upper = country.to_ascii_uppercase();
        if upper.len() != 2 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid("country", country, "two letters, e.g. US or NL"));
        }
        // RFC 5280: countryName is a PrintableString
        let value = PrintableString::try_from(upper.as_str())
            .map_err(|_| invalid("country", country, "two letters, e.g. US or NL"))?;
        fields.push((DnType::CountryName, DnValue::PrintableString(value)));
    }
    let text_fields = [
        ("state", DnType::StateOrProvinceName, &subject.state, 128),
        ("locality", DnType::LocalityName, &subject.locality, 128),
        ("org", DnType::OrganizationName, &subject.organization, 64),
        (
            "ou",
            DnType::OrganizationalUnitName,
            &subject.organizational_unit,
            64,
        ),
    ];
    for (field, dn_type, value, max) in text_fields {
        let Some(value) = value else { continue };
        let expected = format!("1 to {max} characters, no control characters");
        if value.trim().is_empty()
            || value.chars().count() > max
            || value.chars().any(char::is_control)
        {
            return Err(invalid(field, value, &expected));
        }
        fields.push((dn_type, DnValue::Utf8String(value.clone())));
    }
    Ok(fields)
}

/// rcgen's name for a policy key usage.
pub(crate) fn ku_purpose(usage: KeyUsage) -> KeyUsagePurpose {
    match usage {
        KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
        KeyUsage::NonRepudiation => KeyUsagePurpose::ContentCommitment,
        KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
        KeyUsage::DataEncipherment => KeyUsagePurpose::DataEncipherment,
        KeyUsage::KeyAgreement => KeyUsagePurpose::KeyAgreement,
        KeyUsage::KeyCertSign => KeyUsagePurpose::KeyCertSign,
        KeyUsage::CrlSign => KeyUsagePurpose::CrlSign,
        KeyUsage::EncipherOnly => KeyUsagePurpose::EncipherOnly,
        KeyUsage::DecipherOnly => KeyUsagePurpose::DecipherOnly,
    }
}

/// rcgen's name for a policy extended key usage.
pub(crate) fn eku_purpose(usage: ExtKeyUsage) -> ExtendedKeyUsagePurpose {
    match usage {
        ExtKeyUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
        ExtKeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        ExtKeyUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
        ExtKeyUsage::EmailProtection => ExtendedKeyUsagePurpose::EmailProtection,
        ExtKeyUsage::TimeStamping => ExtendedKeyUsagePurpose::TimeStamping,
        ExtKeyUsage::OcspSigning => ExtendedKeyUsagePurpose::OcspSigning,
    }
}

#[cfg(test)]
mod tests;
