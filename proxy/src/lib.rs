//! certfront: a TLS-terminating reverse proxy that refuses certificates that would break
//! clients, rotates good ones without dropping a connection, and exports their expiry.
//!
//! `main.rs` is thin: it calls [`cli::main`]. The pieces, in the order a request meets them:
//! [`server`] binds and accepts, [`tls`] reads the ClientHello and picks a [`sites::Site`] by SNI,
//! [`conn`] serves HTTP/1.1 or HTTP/2 by ALPN, [`forward`] checks the Host and forwards.
#![forbid(unsafe_code)]

pub mod acme;
pub mod admin;
pub mod admission;
pub mod authority;
pub mod cli;
pub mod commands;
pub mod conn;
pub mod dependents;
pub mod error;
pub mod forward;
pub mod metrics;
pub mod mtls;
pub mod prepare;
pub mod redirect;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod sites;
pub mod tickets;
pub mod tls;
pub mod tracker;
mod tunnel;

pub use error::ProxyError;
pub use metrics::Metrics;
pub use prepare::{Prepared, prepare};
pub use server::{Running, start};
