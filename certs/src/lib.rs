//! certfront's certificates: loading (PEM, DER, PKCS#12), inspection, the policy rules,
//! RFC 6125 name matching, the internal CA, CSR generation, the hot snapshot and the watcher.
//! No HTTP and no config file format live here.
#![forbid(unsafe_code)]

pub mod policy;
pub mod source;

pub use policy::{ExtKeyUsage, HashAlg, KeyFileMode, KeyUsage, Policy};
pub use source::{CertSource, PasswordSource};
