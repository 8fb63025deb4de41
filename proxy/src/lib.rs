//! certfront: a TLS-terminating reverse proxy that refuses certificates that would break
//! clients, rotates good ones without dropping a connection, and exports their expiry.
//!
//! `main.rs` is thin: it calls [`main`]. The private modules form layers, each importing
//! only from those below it (`layering.rs` tests that no import circle comes back):
//!
//! - command line: `cli` → `commands` (`run`, `check`, `certs`, `health`);
//! - serving: `server` binds and accepts, `conn` takes one connection through the TLS
//!   handshake (`tls` picks a site by SNI, [`SiteTable`]) and serves HTTP/1.1 or HTTP/2,
//!   `forward` checks the Host ([`admit`]) and forwards, `tunnel` carries upgrades;
//! - control, beside serving: `reload` (certificate files, the config file, deny lists,
//!   CRLs),
//!   `acme`, `admin`, `redirect`;
//! - runtime state both sides read: `app` (process-wide), `context` (per connection),
//!   `snapshot` (the configuration in force: sites, TLS, trust), `prepare` (what a start
//!   or reload has read and checked), `dependents`, `sites`, `mtls`;
//! - the upstream client: `upstream` (pools, connect, TLS to upstreams);
//! - leaves: `metrics`, `error`, `respond`, `clock`, `workers`, `gated`, `tracker`,
//!   `refusals` (the log line of a refused client certificate).
#![forbid(unsafe_code)]

mod access_log;
mod acme;
mod admin;
mod admin_listener;
mod admission;
mod app;
mod authority;
mod cli;
mod clock;
mod commands;
mod conn;
mod context;
mod crlfetch;
mod dependents;
mod error;
mod forward;
mod gated;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod invariants;
mod inventory_page;
#[cfg(test)]
mod layering;
mod metrics;
mod mtls;
mod prepare;
mod progress;
mod redirect;
mod refusals;
mod reload;
mod request_id;
mod respond;
mod send_timeout;
mod server;
mod sites;
mod snapshot;
#[cfg(test)]
mod testpki;
mod tickets;
mod tls;
mod tracker;
mod tunnel;
mod upstream;
mod upstream_up;
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
pub use server::{Running, start};
pub use sites::SiteTable;
pub use snapshot::Snapshot;
