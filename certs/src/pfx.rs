//! PKCS#12 (.pfx/.p12) files: the key and its chain, as Windows and OpenSSL export them.
//!
//! p12-keystore reads both the OpenSSL 3 default (PBES2, AES-256-CBC, HMAC-SHA-256) and
//! the legacy encodings (RC2-40 or 3DES, SHA-1 MAC) that Windows' export wizard writes.
//! Its `KeyStore` import links keys to certificates by friendly names and Java trust
//! attributes; we take the raw bags instead and link them ourselves, by localKeyId and
//! then by public key, so that a file missing those attributes still loads.

use std::path::Path;

use p12_keystore::Pkcs12Archive;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::der_parser::der::parse_der;
use zeroize::Zeroizing;

use crate::error::{CertError, x509_error};
use crate::keys::key_matches;

/// Whether `bytes` has the outer shape of a PKCS#12 PFX: SEQUENCE { INTEGER 3,
/// ContentInfo { OID pkcs7-data | pkcs7-signedData, .. }, .. }. Lets us say "this is a
/// .pfx" rather than "no certificate", and tell a wrong password from a wrong file.
pub(crate) fn looks_like_pkcs12(bytes: &[u8]) -> bool {
    let Ok((_, obj)) = parse_der(bytes) else {
        return false;
    };
    let Ok(seq) = obj.as_sequence() else {
        return false;
    };
    let version_is_3 = seq.first().and_then(|v| v.as_slice().ok()) == Some(&[3u8][..]);
    let content_type = seq
        .get(1)
        .and_then(|ci| ci.as_sequence().ok())
        .and_then(|ci| ci.first())
        .and_then(|oid| oid.as_oid().ok())
        .map(|oid| oid.to_id_string());
    version_is_3
        && matches!(
            content_type.as_deref(),
            Some("1.2.840.113549.1.7.1" | "1.2.840.113549.1.7.2")
        )
}

/// The most key-derivation (PBKDF2, PKCS#12 KDF, MAC) iterations a .pfx may ask for.
/// Windows exports 2,000, OpenSSL 2,048, the most careful tools up to 600,000; past a
/// million, the count is a way to make every load take seconds to minutes.
pub(crate) const MAX_ITERATIONS: u64 = 1_000_000;

/// One DER element: tag, content, and the rest after it. `None` for what DER cannot be
/// (indefinite lengths, high tag numbers, lengths past the end).
fn tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Whether `bytes` is one or more whole DER elements.
fn is_der(mut bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    while !bytes.is_empty() {
        match tlv(bytes) {
            Some((_, _, rest)) => bytes = rest,
            None => return false,
        }
    }
    true
}

/// Every iteration count in the file's readable parts: an INTEGER right after an OCTET
/// STRING in one SEQUENCE is the iteration count of PBKDF2-params, pkcs-12PbeParams and
/// MacData alike (salt, then count). OCTET STRINGs holding DER (the authenticated safe,
/// its unencrypted bags) are walked too; encrypted content is not DER and is skipped.
fn iteration_counts(mut bytes: &[u8], depth: u8, out: &mut Vec<u64>) {
    if depth > 32 {
        return;
    }
    let mut previous = 0u8;
    while let Some((tag, content, rest)) = tlv(bytes) {
        match tag {
            0x02 if previous == 0x04 => out.push(if content.len() > 8 {
                u64::MAX
            } else {
                content.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
            }),
            0x04 if is_der(content) => iteration_counts(content, depth + 1, out),
            t if t & 0x20 != 0 => iteration_counts(content, depth + 1, out),
            _ => {}
        }
        previous = tag;
        bytes = rest;
    }
}

/// One certificate of the archive with the names needed to link the chain.
struct Bag {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    is_ca: bool,
    local_key_id: Option<Vec<u8>>,
}

/// The leaf first, then the intermediates that lead from it; a self-signed root in the
/// file is left out, as servers do not send it.
pub(crate) fn read_pfx(
    path: &Path,
    bytes: &[u8],
    password: &str,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        Zeroizing<PrivateKeyDer<'static>>,
    ),
    CertError,
> {
    if !looks_like_pkcs12(bytes) {
        return Err(CertError::NotPfx {
            path: path.to_owned(),
        });
    }
    // Checked before any key derivation: a count of 2^31 would take the reloading
    // thread for many minutes per attempt.
    let mut counts = Vec::new();
    iteration_counts(bytes, 0, &mut counts);
    if let Some(&found) = counts.iter().max()
        && found > MAX_ITERATIONS
    {
        return Err(CertError::PfxIterations {
            path: path.to_owned(),
            found,
            cap: MAX_ITERATIONS,
        });
    }
    let archive = Pkcs12Archive::from_pkcs12(bytes, password).map_err(|source| CertError::Pfx {
        path: path.to_owned(),
        source,
    })?;
    if archive.keys.is_empty() {
        return Err(CertError::PfxNoKey {
            path: path.to_owned(),
        });
    }
    let mut bags = Vec::with_capacity(archive.certs.len());
    for (i, bag) in archive.certs.iter().enumerate() {
        let der = bag.cert.as_der();
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CertError::BadCertificate {
                path: path.to_owned(),
                index: i + 1,
                source: x509_error(e),
            })?;
        bags.push(Bag {
            der: der.to_vec(),
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            is_ca: cert.is_ca(),
            local_key_id: bag.local_key_id.clone(),
        });
    }
    if bags.is_empty() {
        return Err(CertError::PfxNoCertificate {
            path: path.to_owned(),
        });
    }

    // The key and leaf that share a localKeyId, as both OpenSSL and Windows write them.
    let by_id = archive.keys.iter().find_map(|key| {
        let id = key.local_key_id.as_ref()?;
        let leaf = bags
            .iter()
            .position(|b| b.local_key_id.as_deref() == Some(id.as_ref()))?;
        Some((key, leaf))
    });
    let (key_bag, leaf) = match by_id {
        Some(found) => found,
        None => {
            let key = &archive.keys[0];
            let der = pkcs8(key.key.as_der());
            let matching = bags.iter().position(|b| {
                x509_parser::parse_x509_certificate(&b.der)
                    .is_ok_and(|(_, c)| key_matches(&der, c.public_key()) == Ok(true))
            });
            // No match: take the first end-entity certificate, and the key match rule
            // will say the key is not the leaf's.
            let fallback = || bags.iter().position(|b| !b.is_ca).unwrap_or(0);
            (key, matching.unwrap_or_else(fallback))
        }
    };

    let mut order = vec![leaf];
    loop {
        let current = &bags[*order.last().unwrap_or(&leaf)];
        let next = bags.iter().enumerate().position(|(i, b)| {
            !order.contains(&i) && b.subject == current.issuer && b.subject != b.issuer
        });
        match next {
            Some(i) => order.push(i),
            None => break,
        }
    }
    let chain = order
        .into_iter()
        .map(|i| CertificateDer::from(bags[i].der.clone()))
        .collect();
    Ok((chain, pkcs8(key_bag.key.as_der())))
}

/// Every certificate in the archive, in file order (`certs inspect` names those the
/// served chain leaves out).
pub(crate) fn all_certificates(
    path: &Path,
    bytes: &[u8],
    password: &str,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let archive = Pkcs12Archive::from_pkcs12(bytes, password).map_err(|source| CertError::Pfx {
        path: path.to_owned(),
        source,
    })?;
    Ok(archive
        .certs
        .iter()
        .map(|bag| CertificateDer::from(bag.cert.as_der().to_vec()))
        .collect())
}

/// The key as rustls takes it; the copy is wiped when dropped (p12-keystore's own copy
/// inside the archive is out of our reach, and is dropped with it right after).
fn pkcs8(der: &[u8]) -> Zeroizing<PrivateKeyDer<'static>> {
    Zeroizing::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec())))
}
