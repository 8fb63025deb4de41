//! The leaf the internal CA issues for a host's policy: key type and size, key usages and
//! extended key usages (e.g. Client Authentication from a `[host.policy]`).

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

use crate::policy::{ExtKeyUsage, HashAlg, KeyUsage, Policy};

/// What a leaf must carry to meet a policy.
pub(super) struct LeafProfile {
    key: LeafKey,
    pub(super) key_usages: Vec<KeyUsage>,
    pub(super) extended_key_usages: Vec<ExtKeyUsage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafKey {
    P256,
    P384,
    Rsa(rcgen::RsaKeySize),
}

impl LeafProfile {
    /// The smallest key that meets the policy (ECDSA where it can, RSA where the policy
    /// asks for more than P-384), the policy's key usages (plus Digital Signature, which
    /// every TLS key needs), and its extended key usages (plus Server Authentication).
    pub(super) fn for_policy(policy: &Policy) -> Result<Self, String> {
        if policy.min_signature_hash > HashAlg::Sha256 {
            return Err(format!(
                "the internal CA signs with ECDSA P-256 and SHA-256, and the policy requires \
                 {} or stronger; set min_signature_hash = \"sha256\" in this host's [host.policy]",
                policy.min_signature_hash
            ));
        }
        let key = match (policy.min_ec_bits, policy.min_rsa_bits) {
            (0..=256, _) => LeafKey::P256,
            (257..=384, _) => LeafKey::P384,
            (_, 0..=2048) => LeafKey::Rsa(rcgen::RsaKeySize::_2048),
            (_, 2049..=3072) => LeafKey::Rsa(rcgen::RsaKeySize::_3072),
            (_, 3073..=4096) => LeafKey::Rsa(rcgen::RsaKeySize::_4096),
            (ec, rsa) => {
                return Err(format!(
                    "the policy requires EC >= {ec} or RSA >= {rsa} bits; the internal CA \
                     issues P-256, P-384 or RSA up to 4096 bits"
                ));
            }
        };
        let required = match key {
            LeafKey::Rsa(_) => &policy.rsa_key_usage,
            LeafKey::P256 | LeafKey::P384 => &policy.ec_key_usage,
        };
        let mut key_usages = vec![KeyUsage::DigitalSignature];
        for usage in required {
            if !key_usages.contains(usage) {
                key_usages.push(*usage);
            }
        }
        let mut extended_key_usages = vec![ExtKeyUsage::ServerAuth];
        for usage in &policy.extended_key_usage {
            if !extended_key_usages.contains(usage) {
                extended_key_usages.push(*usage);
            }
        }
        Ok(LeafProfile {
            key,
            key_usages,
            extended_key_usages,
        })
    }

    pub(super) fn generate(&self) -> Result<KeyPair, rcgen::Error> {
        match self.key {
            LeafKey::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            LeafKey::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            LeafKey::Rsa(size) => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size),
        }
    }
}
