//! certfront's certificates: loading (PEM, DER, PKCS#12), inspection, the policy rules,
//! RFC 6125 name matching, the internal CA, CSR generation, the per-host certificate slot
//! (one writer, many readers), the one host-load pipeline (`shared`) and the watcher.
//! No HTTP and no config file format live here.
#![forbid(unsafe_code)]

pub mod ca;
pub mod check;
pub mod crl;
pub mod csr;
pub mod deny;
pub mod dependents;
pub mod error;
pub mod files;
pub mod inspect;
mod keys;
pub mod load;
pub mod names;
mod pfx;
mod pkcs7;
pub mod policy;
pub mod read;
pub mod rotation;
pub mod shared;
pub mod source;
pub mod store;
pub mod trust;
pub mod watch;

#[cfg(test)]
mod testutil;

pub use ca::InternalCa;
pub use check::{Report, Rule, Violation, check, check_certificate, load_and_check};
pub use csr::{CsrFiles, CsrKey, CsrRequest, CsrSubject, write_csr};
pub use dependents::{CaRole, DependedCa, depended_cas};
pub use error::CertError;
pub use inspect::{CertInfo, KeyType, inspect, sha1_hex, sha256_hex};
pub use load::{CertBundle, is_pfx, load, load_pfx, pfx_left_out, read_certificates};
pub use policy::{ExtKeyUsage, HashAlg, KeyFileMode, KeyUsage, Policy};
pub use shared::{HostFiles, SharedChecks, SharedFiles};
pub use source::{CertSource, PasswordSource};
pub use trust::TrustAnchors;
