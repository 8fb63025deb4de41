//! Test helpers: certificates made with rcgen in temporary directories.

use crate::inspect::{CertInfo, KeyType};

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
    }
}
