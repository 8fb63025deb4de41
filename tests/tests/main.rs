//! certfront end to end: real sockets on loopback, real TLS clients, real HTTP backends,
//! certificates generated per test. One test binary, one module per area.

mod support;

mod acme;
mod admin_metrics;
mod cert_reload;
mod cli;
mod forward_http;
mod hardening;
mod limits;
mod mtls;
mod request_path;
mod shutdown;
mod tls_sni;
