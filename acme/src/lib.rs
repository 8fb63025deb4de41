//! certfront's ACME client (RFC 8555): one account per directory, one background task per
//! `acme = true` host that orders, renews and retries, and the challenge answers the
//! listeners give (tls-alpn-01 on the TLS listener, http-01 on the plain-HTTP one).
//!
//! An issued certificate is held to the same certificate rules as a file (the `certs`
//! crate's `check`) *before* it is written to `state_dir/acme/<fqdn>/`; only then does the
//! proxy's reloader see new files and swap them in. A failing one never lands.
#![forbid(unsafe_code)]

mod challenge;
mod client;
mod engine;
mod error;
mod metrics;
mod order;
mod schedule;
mod settings;
mod storage;

pub use challenge::{ACME_TLS_ALPN, Challenges};
pub use engine::{AcmeHost, Engine, Gate, HostStatus, OnStored, StatusBoard};
pub use error::AcmeError;
pub use metrics::AcmeMetrics;
pub use schedule::{backoff, renew_before, renewal_time};
pub use settings::Settings;
