//! Fuzzes the config pipeline: any text through `certfront_config::parse` (TOML, serde,
//! then every validation rule) returns a config or errors, never panics. A config that
//! validates names only hosts the certs crate would issue for, and an error can always
//! be rendered for the administrator.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use certfront::parse_host;
use certfront_certs::names::{Allow, check_dns_name};
use certfront_config::ConfigError;
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::ServerName;

/// Relative paths in the config resolve here. Validation opens no file, so the directory
/// need not exist (and nothing is left behind: libFuzzer exits without dropping statics).
static BASE_DIR: LazyLock<PathBuf> =
    LazyLock::new(|| std::env::temp_dir().join("certfront-fuzz-config"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match certfront_config::parse(text, BASE_DIR.as_path()) {
        Ok(config) => {
            assert!(!config.hosts.is_empty(), "a valid config without a host");
            for host in &config.hosts {
                for name in host.names() {
                    // The one validator: what the config accepts, `csr` and the CA accept.
                    if let Err(e) = check_dns_name(&name, Allow::HOST) {
                        panic!("config accepted {name:?}, the certs crate refuses it: {e}");
                    }
                    assert_eq!(name, certfront_certs::names::normalize(&name));
                    // Every served name can be sent as SNI and as a Host, or no client
                    // could reach the host: rustls and the request path must agree.
                    let concrete = name.replacen('*', "x", 1);
                    match ServerName::try_from(concrete.as_str()) {
                        Ok(ServerName::DnsName(_)) => {}
                        other => panic!("config accepted {name:?}, rustls reads it as {other:?}"),
                    }
                    match parse_host(concrete.as_bytes()) {
                        Ok(h) => assert!(!h.ip, "config accepted the IP {name:?} as a name"),
                        Err(e) => panic!("config accepted {name:?}, Host parsing refuses it: {e}"),
                    }
                }
            }
            let _ = format!("{config:?}");
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            if let ConfigError::Invalid { problems, .. } = &err {
                assert!(!problems.is_empty(), "Invalid without a problem");
                for p in problems {
                    assert!(!p.to_string().is_empty());
                }
            }
        }
    }
});
