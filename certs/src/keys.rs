//! Whether a private key belongs to a certificate, for every key a file may hold.
//!
//! rustls' `CertifiedKey::keys_match` does this only for keys aws-lc-rs will load, and
//! aws-lc-rs refuses RSA keys under 2048 bits. An administrator with an RSA-1024 pair
//! must hear "key size", not a confusing "key mismatch", so RSA keys are compared by
//! their modulus, read straight from the PKCS#1 structure.

use rustls::crypto::aws_lc_rs::default_provider;
use rustls_pki_types::PrivateKeyDer;
use x509_parser::der_parser::ber::BerObject;
use x509_parser::der_parser::der::parse_der;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// `Ok(true)` when `key` is the private half of `spki`; `Err` says why the key could not
/// be read at all.
pub(crate) fn key_matches(
    key: &PrivateKeyDer<'_>,
    spki: &SubjectPublicKeyInfo<'_>,
) -> Result<bool, String> {
    if let Some(modulus) = rsa_modulus(key)? {
        return Ok(match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => strip_zeros(rsa.modulus) == strip_zeros(modulus),
            _ => false,
        });
    }
    let signing_key = default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("the private key cannot be read ({e})"))?;
    let Some(public) = signing_key.public_key() else {
        return Err("the private key's public half is unknown".to_owned());
    };
    let (_, public) = SubjectPublicKeyInfo::from_der(public.as_ref())
        .map_err(|e| format!("the private key's public half cannot be read ({e})"))?;
    Ok(public.algorithm.algorithm == spki.algorithm.algorithm
        && public.subject_public_key.data == spki.subject_public_key.data)
}

/// The modulus of an RSA key (PKCS#1, or PKCS#8 wrapping PKCS#1); `None` for other keys.
fn rsa_modulus<'a>(key: &'a PrivateKeyDer<'_>) -> Result<Option<&'a [u8]>, String> {
    let pkcs1 = match key {
        PrivateKeyDer::Pkcs1(k) => k.secret_pkcs1_der(),
        PrivateKeyDer::Pkcs8(k) => match pkcs8_rsa_inner(k.secret_pkcs8_der()) {
            Some(inner) => inner,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    // RSAPrivateKey ::= SEQUENCE { version, modulus INTEGER, publicExponent INTEGER, ... }
    let field = |seq: &[BerObject<'a>]| seq.get(1).and_then(|m| m.as_slice().ok());
    match parse_der(pkcs1) {
        Ok((_, obj)) => match obj.as_sequence().ok().and_then(|s| field(s)) {
            Some(modulus) => Ok(Some(modulus)),
            None => Err("the RSA private key is malformed".to_owned()),
        },
        Err(_) => Err("the RSA private key is malformed".to_owned()),
    }
}

/// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING }:
/// the inner key when the algorithm is rsaEncryption.
fn pkcs8_rsa_inner(der: &[u8]) -> Option<&[u8]> {
    let (_, obj) = parse_der(der).ok()?;
    let seq = obj.as_sequence().ok()?;
    let alg = seq.get(1)?.as_sequence().ok()?;
    if alg.first()?.as_oid().ok()?.to_id_string() != RSA_ENCRYPTION {
        return None;
    }
    seq.get(2)?.as_slice().ok()
}

fn strip_zeros(be: &[u8]) -> &[u8] {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    &be[start..]
}
