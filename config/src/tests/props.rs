//! Property tests (the `config` fuzz target's checks, on stable, in seconds): whatever the
//! text, `parse` returns a config or errors and never panics; a config that validates
//! names only hosts the certs crate accepts; every error renders for the administrator.

use std::path::Path;

use certfront_certs::names::{Allow, check_dns_name, normalize};
use proptest::prelude::*;

use crate::{ConfigError, parse};

/// The shipped configs: the text real files start from before someone edits them.
const EXAMPLES: [&str; 6] = [
    include_str!("../../certfront.toml"),
    include_str!("../../examples/acme.toml"),
    include_str!("../../examples/full.toml"),
    include_str!("../../examples/homecare.toml"),
    include_str!("../../examples/iis-three-hosts.toml"),
    include_str!("../../examples/minimal.toml"),
];

/// Pieces of certfront TOML, valid and nearly valid, for the generator to combine.
const FRAGMENTS: &[&str] = &[
    "\n",
    "[server]\n",
    "[tls]\n",
    "[limits]\n",
    "[policy]\n",
    "[[host]]\n",
    "[host.client_auth]\n",
    "[host.respond]\n",
    "[acme]\n",
    "directory = \"https://acme.example.org/directory\"\n",
    "email = \"ops@example.org\"\n",
    "challenge = \"tls-alpn-01\"\n",
    "acme = true\n",
    "listen = [\"127.0.0.1:8443\"]\n",
    "listen = \"[::1]:0\"\n",
    "admin = \"127.0.0.1:9000\"\n",
    "http_redirect = \"0.0.0.0:80\"\n",
    "fqdn = \"app.example.org\"\n",
    "fqdn = \"*.wild.test\"\n",
    "fqdn = \"*.org\"\n",
    "fqdn = \"10.0.0\"\n",
    "aliases = [\"APP.example.org.\", \"a..b\"]\n",
    "internal = true\n",
    "cert = \"c.pem\"\n",
    "key = \"k.pem\"\n",
    "pfx = \"a.pfx\"\n",
    "pfx_password_file = \"pw\"\n",
    "upstream = \"http://10.0.0.11\"\n",
    "upstream = [\"https://iis01.corp.local:443\", \"http://[::1]:8080\"]\n",
    "upstream = \"http://user@host:99999/x\"\n",
    "upstream_host = \"app\"\n",
    "status = 200\n",
    "body = \"ok\"\n",
    "mode = \"required\"\n",
    "ca = \"ca.pem\"\n",
    "deny = \"deny.txt\"\n",
    "trusted_proxies = [\"10.0.0.0/8\", \"::1/129\"]\n",
    "default_host = \"app.example.org\"\n",
    "unknown_sni = \"reject\"\n",
    "min_version = \"1.3\"\n",
    "max_connections = ",
    "idle_timeout_seconds = ",
    "rescan_seconds = ",
    "drain_seconds = ",
    "max_header_bytes = ",
    "= ",
    "\"",
    "'''",
    "[",
    "]",
    "{",
    "}",
    ",",
    "0",
    "-1",
    "18446744073709551615",
    "9223372036854775807",
    "1e308",
    "nan",
    "true",
    "\u{200E}",
    "\u{e9}",
];

/// Numeric keys of `[server]` and `[limits]`, each tried with any value.
const NUMBERS: &[(&str, &str)] = &[
    ("server", "drain_seconds"),
    ("server", "rescan_seconds"),
    ("limits", "max_connections"),
    ("limits", "max_connections_per_ip"),
    ("limits", "redirect_max_connections"),
    ("limits", "max_header_bytes"),
    ("limits", "handshake_timeout_seconds"),
    ("limits", "header_read_timeout_seconds"),
    ("limits", "idle_timeout_seconds"),
    ("limits", "tunnel_idle_timeout_seconds"),
    ("limits", "max_connection_age_seconds"),
    ("limits", "body_timeout_seconds"),
    ("limits", "send_timeout_seconds"),
    ("limits", "upstream_connect_timeout_seconds"),
    ("limits", "upstream_response_timeout_seconds"),
    ("limits", "upstream_max_connections"),
    ("limits", "upstream_max_idle_connections"),
];

/// The same checks as the fuzz target; panics on a broken promise.
fn check_outcome(text: &str) {
    match parse(text, Path::new("/etc/certfront")) {
        Ok(config) => {
            assert!(!config.hosts.is_empty(), "a valid config without a host");
            for host in &config.hosts {
                for name in host.names() {
                    assert_eq!(name, normalize(&name), "{name:?} not normalized");
                    if let Err(e) = check_dns_name(&name, Allow::HOST) {
                        panic!("config accepted {name:?}, the certs crate refuses it: {e}");
                    }
                }
            }
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            if let ConfigError::Invalid { problems, .. } = &err {
                assert!(!problems.is_empty(), "Invalid without a problem");
                for p in problems {
                    assert!(!p.to_string().is_empty() && !p.path.is_empty(), "{p:?}");
                }
            }
        }
    }
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => "[ -~]{0,12}",
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// One edit to a text: at a relative position, delete some characters, insert a fragment.
fn edit() -> impl Strategy<Value = (f64, usize, String)> {
    (0.0..1.0f64, 0usize..8, fragment())
}

fn apply(text: &str, edits: &[(f64, usize, String)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, delete, insert) in edits {
        let start = ((chars.len() as f64) * at) as usize;
        let end = (start + delete).min(chars.len());
        chars.splice(start..end, insert.chars());
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn toml_ish_text_never_panics(parts in proptest::collection::vec(fragment(), 0..40)) {
        check_outcome(&parts.concat());
    }

    #[test]
    fn edited_examples_never_panic(
        which in 0..EXAMPLES.len(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        check_outcome(&apply(EXAMPLES[which], &edits));
    }

    #[test]
    fn any_number_in_any_limit_never_panics(
        key in proptest::sample::select(NUMBERS),
        value in prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:?}")),
            Just("18446744073709551616".to_owned()),
        ],
    ) {
        let (table, key) = key;
        let setting = format!("{key} = {value}\n");
        let (server, limits) = match table {
            "server" => (setting, String::new()),
            _ => (String::new(), format!("[limits]\n{setting}")),
        };
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:8443\"]\n{server}{limits}\n\
             [[host]]\nfqdn = \"app.example.org\"\ninternal = true\nupstream = \"http://10.0.0.11\"\n"
        );
        check_outcome(&text);
    }
}
