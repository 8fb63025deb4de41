//! What a served certificate must satisfy: the `[policy]` table and its defaults.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A signature hash, ordered by strength so a policy can say "SHA-256 or better".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashAlg {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The name administrators know ("SHA-256").
    pub fn label(self) -> &'static str {
        match self {
            HashAlg::Md5 => "MD5",
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Generates `FromStr`/`Display` in snake_case for a plain enum, so config values,
/// CLI output and error messages all spell a value the same way.
macro_rules! snake_case_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        snake_case_enum!(@no_display $ty { $($variant => $text),+ });
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    // For enums whose Display is written by hand (HashAlg shows "SHA-256").
    (@no_display $ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The spelling used in the config file.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(format!(
                        "unknown value {other:?}, expected one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

snake_case_enum!(@no_display HashAlg {
    Md5 => "md5",
    Sha1 => "sha1",
    Sha256 => "sha256",
    Sha384 => "sha384",
    Sha512 => "sha512",
});

/// A KeyUsage bit (RFC 5280 4.2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsage {
    DigitalSignature,
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
    KeyCertSign,
    CrlSign,
    EncipherOnly,
    DecipherOnly,
}

snake_case_enum!(KeyUsage {
    DigitalSignature => "digital_signature",
    NonRepudiation => "non_repudiation",
    KeyEncipherment => "key_encipherment",
    DataEncipherment => "data_encipherment",
    KeyAgreement => "key_agreement",
    KeyCertSign => "key_cert_sign",
    CrlSign => "crl_sign",
    EncipherOnly => "encipher_only",
    DecipherOnly => "decipher_only",
});

/// An ExtendedKeyUsage purpose (RFC 5280 4.2.1.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtKeyUsage {
    ServerAuth,
    ClientAuth,
    CodeSigning,
    EmailProtection,
    TimeStamping,
    OcspSigning,
}

snake_case_enum!(ExtKeyUsage {
    ServerAuth => "server_auth",
    ClientAuth => "client_auth",
    CodeSigning => "code_signing",
    EmailProtection => "email_protection",
    TimeStamping => "time_stamping",
    OcspSigning => "ocsp_signing",
});

/// What to do when a private key file is readable by group or others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyFileMode {
    Refuse,
    Warn,
    Ignore,
}

snake_case_enum!(KeyFileMode {
    Refuse => "refuse",
    Warn => "warn",
    Ignore => "ignore",
});

/// The rules a served certificate is held to (DESIGN "Certificate rules").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub min_rsa_bits: u32,
    pub min_ec_bits: u32,
    pub min_signature_hash: HashAlg,
    pub rsa_key_usage: Vec<KeyUsage>,
    pub ec_key_usage: Vec<KeyUsage>,
    pub extended_key_usage: Vec<ExtKeyUsage>,
    pub require_chain: bool,
    pub expiry_warning_days: u32,
    pub key_file_mode: KeyFileMode,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            min_signature_hash: HashAlg::Sha256,
            rsa_key_usage: vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment],
            ec_key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usage: vec![ExtKeyUsage::ServerAuth],
            require_chain: true,
            expiry_warning_days: 30,
            key_file_mode: KeyFileMode::Warn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_order_by_strength() {
        assert!(HashAlg::Sha1 < HashAlg::Sha256);
        assert!(HashAlg::Md5 < HashAlg::Sha1);
        assert!(HashAlg::Sha512 > HashAlg::Sha384);
    }

    #[test]
    fn names_round_trip() {
        for ku in KeyUsage::ALL {
            assert_eq!(ku.as_str().parse::<KeyUsage>().unwrap(), *ku);
        }
        for eku in ExtKeyUsage::ALL {
            assert_eq!(eku.as_str().parse::<ExtKeyUsage>().unwrap(), *eku);
        }
        assert!("sha-1".parse::<HashAlg>().unwrap_err().contains("sha256"));
    }
}
