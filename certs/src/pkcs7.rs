//! PKCS#7 certificate bundles (.p7b/.p7c, "Cryptographic Message Syntax Standard" in the
//! Windows export wizard): a SignedData with no content and no signers, only certificates,
//! as CAs deliver a chain and Windows exports one. DER, or PEM (`BEGIN PKCS7`).
//!
//! The `cms` crate decodes the structure (the version p12-keystore already depends on).
//! The certificates of a SignedData are a SET, so their order means nothing: we put the
//! chain in the order a server sends it ourselves, leaf first, then each issuer.

use std::path::Path;

use cms::cert::CertificateChoices;
use cms::cert::x509::der::{Decode, Encode};
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;

use crate::error::CertError;

/// `id-signedData` (RFC 5652 5.1): what a certificate bundle's ContentInfo holds.
const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";

/// Whether `bytes` starts like a DER ContentInfo of type signedData (without decoding it
/// all): SEQUENCE { OBJECT IDENTIFIER 1.2.840.113549.1.7.2, ... }.
pub(crate) fn looks_like_pkcs7(bytes: &[u8]) -> bool {
    use x509_parser::der_parser::ber::parse_ber;
    let Ok((_, obj)) = parse_ber(bytes) else {
        return false;
    };
    let oid = obj
        .as_sequence()
        .ok()
        .and_then(|seq| seq.first())
        .and_then(|first| first.as_oid().ok())
        .map(|oid| oid.to_id_string());
    oid.as_deref() == Some(SIGNED_DATA)
}

/// The certificates of a DER (or BER) PKCS#7 bundle, in chain order: the leaf, each
/// issuer after the certificate it issued, then whatever is left (unrelated
/// certificates). A bundle of CA certificates only is returned as decoded. Errors name
/// the file.
pub(crate) fn read_pkcs7(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bad = |detail: String| CertError::Pkcs7 {
        path: path.to_owned(),
        detail,
    };
    let info = ContentInfo::from_der(bytes)
        .or_else(|_| ContentInfo::from_ber(bytes))
        .map_err(|e| bad(format!("not a PKCS#7 file: {e}")))?;
    if info.content_type.to_string() != SIGNED_DATA {
        return Err(bad(format!(
            "PKCS#7 content type {} is not signedData, so it holds no certificates",
            info.content_type
        )));
    }
    let signed = info
        .content
        .decode_as::<SignedData>()
        .map_err(|e| bad(format!("damaged PKCS#7 signedData: {e}")))?;
    let mut ders = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(cert) = choice {
            let der = cert
                .to_der()
                .map_err(|e| bad(format!("a certificate cannot be re-encoded: {e}")))?;
            ders.push(der);
        }
    }
    if ders.is_empty() {
        return Err(CertError::NoCertificate {
            path: path.to_owned(),
        });
    }
    chain_order(path, ders)
}

/// Leaf first, then issuers. The leaf is the one certificate that issued none of the
/// others; a bundle with several such end-entity certificates is ambiguous.
fn chain_order(path: &Path, ders: Vec<Vec<u8>>) -> Result<Vec<CertificateDer<'static>>, CertError> {
    struct Names {
        subject: Vec<u8>,
        issuer: Vec<u8>,
        is_ca: bool,
        /// Subject and authority key identifiers: tell apart two CAs of one name
        /// (a renewed root, a cross-signed intermediate).
        ski: Option<Vec<u8>>,
        aki: Option<Vec<u8>>,
    }
    let mut names = Vec::with_capacity(ders.len());
    for (i, der) in ders.iter().enumerate() {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
                path: path.to_owned(),
                index: i + 1,
                source: crate::error::x509_error(e),
            })?;
        let (mut ski, mut aki) = (None, None);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|id| id.0.to_vec())
                }
                _ => {}
            }
        }
        names.push(Names {
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            is_ca: cert.is_ca(),
            ski,
            aki,
        });
    }
    let issued_another = |i: usize| {
        names
            .iter()
            .enumerate()
            .any(|(j, n)| j != i && n.issuer == names[i].subject && n.subject != n.issuer)
    };
    let leaves: Vec<usize> = (0..ders.len())
        .filter(|&i| !issued_another(i) && !names[i].is_ca)
        .collect();
    let leaf = match leaves.as_slice() {
        [one] => *one,
        // only CA certificates (roots and intermediates for a trust store): no leaf to start from
        [] => return Ok(ders.into_iter().map(CertificateDer::from).collect()),
        several => {
            let subjects: Vec<String> = several
                .iter()
                .filter_map(|&i| x509_parser::parse_x509_certificate(&ders[i]).ok())
                .map(|(_, c)| c.subject().to_string())
                .collect();
            return Err(CertError::Pkcs7 {
                path: path.to_owned(),
                detail: format!(
                    "holds {} server certificates ({}); expected one, with its chain",
                    several.len(),
                    subjects.join("; ")
                ),
            });
        }
    };
    let mut order = vec![leaf];
    loop {
        let current = &names[*order.last().unwrap_or(&leaf)];
        let issuers: Vec<usize> = (0..ders.len())
            .filter(|&i| !order.contains(&i) && names[i].subject == current.issuer)
            .collect();
        let by_key_id = issuers
            .iter()
            .find(|&&i| current.aki.is_some() && names[i].ski == current.aki);
        match by_key_id.or(issuers.first()) {
            Some(&next) => order.push(next),
            None => break,
        }
    }
    let rest: Vec<usize> = (0..ders.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    let mut ders: Vec<Option<Vec<u8>>> = ders.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| ders[i].take())
        .map(CertificateDer::from)
        .collect())
}

#[cfg(test)]
mod tests;
