//! certfront: a TLS-terminating reverse proxy that refuses certificates that would break
//! clients, rotates good ones without dropping a connection, and exports their expiry.
//!
//! `main.rs` is thin: it calls [`main`]. The private modules, in the order a request meets
//! them: `server` binds and accepts, `tls` reads the ClientHello and picks a site by SNI
//! ([`SiteTable`]), `conn` serves HTTP/1.1 or HTTP/2 by ALPN, `forward` checks the Host
//! ([`admit`]) and forwards.
#![forbid(unsafe_code)]

mod acme;
mod admin;
mod admin_listener;
mod admission;
mod authority;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod checks;
mod cli;
mod commands;
mod conn;
mod dependents;
mod error;
mod forward;
mod gated;
mod metrics;
mod mtls;
mod prepare;
mod redirect;
mod reload;
mod runtime;
mod send_timeout;
mod server;
mod sites;
mod tickets;
mod tls;
mod tracker;
mod tunnel;
mod workers;

// The whole public surface, everything else is `pub(crate)` and `unreachable_pub` keeps
// it that way. Start and run: the binaries (`main.rs`, the e2e tests' copy) and the e2e
// tests. The request path's pure functions and the snapshot they read: the fuzz targets.
pub use authority::parse_host;
pub use cli::main;
pub use error::ProxyError;
pub use forward::admit;
pub use forward::headers::{add_forwarded, is_identity_header, sanitize_request};
pub use metrics::Metrics;
pub use prepare::{Prepared, prepare};
pub use redirect::location;
pub use runtime::Runtime;
pub use server::{Running, start};
pub use sites::SiteTable;
