//! certfront end to end: real sockets on loopback, real TLS clients, real HTTP backends,
//! certificates generated per test. One test binary, one module per area.

mod support;

mod access_log;
mod acme;
mod admin_listener;
mod admin_metrics;
mod ca_expiry;
mod cert_reload;
mod cert_tools;
mod check_and_run;
mod cli;
mod config_reload;
mod crl;
mod deploy;
mod forward_http;
mod hardening;
mod host_policy;
mod hostile_files;
mod iis;
mod inventory_page;
mod limits;
mod loadtest_rotate;
mod mtls;
mod request_path;
mod shutdown;
mod slow_readers;
mod ticket_keys;
mod tls_sni;
mod upstream_reuse;
mod upstream_tls;
