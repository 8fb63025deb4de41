//! `[server]`, `[tls]`, `[policy]` and `[limits]`: defaults and rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use certfront_certs::{ExtKeyUsage, HashAlg, KeyFileMode, KeyUsage, Policy};

use super::{HOST, SERVER, expect, problems, valid, with_hosts};
use crate::{AccessLog, Limits, TlsVersion, UnknownSni};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `[server]` replaced by `server`, one valid host, then `rest`.
fn config(server: &str, rest: &str) -> String {
    format!("[server]\n{server}\n\n{rest}\n\n[[host]]\n{HOST}")
}

#[test]
fn defaults() {
    let c = valid(&with_hosts(&[HOST]));
    assert_eq!(c.server.listen, [addr("127.0.0.1:8443")]);
    assert_eq!(c.server.http_redirect, None);
    assert_eq!(c.server.admin, None);
    assert_eq!(c.server.state_dir, PathBuf::from("/etc/certfront/state"));
    assert_eq!(c.server.drain_seconds, 30);
    assert_eq!(c.server.rescan_seconds, 60);
    assert_eq!(c.server.access_log, AccessLog::Text);
    assert_eq!(c.server.access_log_file, None);
    assert_eq!(c.tls.min_version, TlsVersion::V1_2);
    assert_eq!(c.tls.unknown_sni, UnknownSni::Reject);
    assert_eq!(c.tls.default_host, None);
    assert!(c.tls.trust.is_empty());
    assert!(c.tls.resumption);
    assert_eq!(c.policy, Policy::default());
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(30));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.max_header_bytes, 65536);
    assert_eq!(c.limits.max_connections, 10000);
    assert_eq!(c.limits.upstream_connect_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.upstream_response_timeout, Duration::from_secs(120));
    assert_eq!(c.limits.h2_max_concurrent_streams, 100);
    assert_eq!(c.limits.tunnel_idle_timeout, Duration::from_secs(900));
    assert_eq!(c.limits.max_connection_age, None);
    assert_eq!(c.limits.max_connections_per_ip, 256);
    assert_eq!(c.limits.redirect_max_connections, 1024);
    assert_eq!(c.limits.upstream_max_connections, 1024);
    assert_eq!(c.limits.upstream_max_idle_connections, 1024);
    assert_eq!(c.limits.body_timeout, Duration::from_secs(60));
    assert_eq!(c.limits.send_timeout, Duration::from_secs(60));
    assert!(c.server.trusted_proxies.is_empty());
}

#[test]
fn every_value_can_be_set() {
    let c = valid(&config(
        "listen = \"[::]:443\"\nhttp_redirect = \"0.0.0.0:80\"\nadmin = \"[::1]:9443\"\n\
         state_dir = \"/var/lib/certfront\"\ndrain_seconds = 0\nrescan_seconds = 0\naccess_log = false",
        "[tls]\nmin_version = \"1.3\"\nunknown_sni = \"default\"\ndefault_host = \"APP.example.org\"\n\
         trust = [\"roots/private.pem\", \"/etc/ssl/other.pem\"]\nresumption = false\n\
         [policy]\nmin_rsa_bits = 3072\nmin_ec_bits = 384\nmin_signature_hash = \"sha384\"\n\
         rsa_key_usage = [\"digital_signature\"]\nec_key_usage = []\n\
         extended_key_usage = [\"server_auth\", \"client_auth\"]\nrequire_chain = false\n\
         expiry_warning_days = 0\nkey_file_mode = \"refuse\"\n\
         [limits]\nhandshake_timeout_seconds = 1\nheader_read_timeout_seconds = 2\nidle_timeout_seconds = 3\n\
         max_header_bytes = 1024\nmax_connections = 50\nupstream_connect_timeout_seconds = 6\n\
         upstream_response_timeout_seconds = 7\nh2_max_concurrent_streams = 8\n\
         tunnel_idle_timeout_seconds = 9\nmax_connection_age_seconds = 10\nmax_connections_per_ip = 11\n\
         redirect_max_connections = 12\nupstream_max_connections = 14\n\
         upstream_max_idle_connections = 13\nbody_timeout_seconds = 15\n\
         send_timeout_seconds = 16",
    ));
    assert_eq!(c.server.listen, [addr("[::]:443")]);
    assert_eq!(c.server.http_redirect, Some(addr("0.0.0.0:80")));
    assert_eq!(c.server.admin, Some(addr("[::1]:9443")));
    assert_eq!(c.server.state_dir, PathBuf::from("/var/lib/certfront"));
    assert_eq!(
        (
            c.server.drain_seconds,
            c.server.rescan_seconds,
            c.server.access_log
        ),
        (0, 0, AccessLog::Off)
    );
    assert_eq!(c.tls.min_version, TlsVersion::V1_3);
    assert_eq!(c.tls.unknown_sni, UnknownSni::Default);
    assert_eq!(c.tls.default_host.as_deref(), Some("app.example.org"));
    assert_eq!(
        c.tls.trust,
        [
            PathBuf::from("/etc/certfront/roots/private.pem"),
            PathBuf::from("/etc/ssl/other.pem")
        ]
    );
    assert!(!c.tls.resumption);
    assert_eq!(
        c.policy,
        Policy {
            min_rsa_bits: 3072,
            min_ec_bits: 384,
            min_signature_hash: HashAlg::Sha384,
            rsa_key_usage: vec![KeyUsage::DigitalSignature],
            ec_key_usage: vec![],
            extended_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
            require_chain: false,
            expiry_warning_days: 0,
            key_file_mode: KeyFileMode::Refuse,
        }
    );
    let l = &c.limits;
    assert_eq!(l.handshake_timeout, Duration::from_secs(1));
    assert_eq!(l.upstream_response_timeout, Duration::from_secs(7));
    assert_eq!(
        (
            l.max_header_bytes,
            l.max_connections,
            l.h2_max_concurrent_streams
        ),
        (1024, 50, 8)
    );
    assert_eq!(l.tunnel_idle_timeout, Duration::from_secs(9));
    assert_eq!(l.max_connection_age, Some(Duration::from_secs(10)));
    assert_eq!(
        (
            l.max_connections_per_ip,
            l.redirect_max_connections,
            l.upstream_max_connections,
            l.upstream_max_idle_connections
        ),
        (11, 12, 14, 13)
    );
    assert_eq!(l.body_timeout, Duration::from_secs(15));
    assert_eq!(l.send_timeout, Duration::from_secs(16));
}

#[test]
fn listen_addresses() {
    let c = valid(&config(
        "listen = [\"0.0.0.0:443\", \"[::]:443\", \"[fe80::1]:8443\", \"127.0.0.1:0\"]",
        "",
    ));
    assert_eq!(c.server.listen.len(), 4);
    assert!(c.server.listen[1].is_ipv6());
    expect(
        &config("", ""),
        "server.listen",
        "missing: at least one TLS listen address",
    );
    expect(&config("listen = []", ""), "server.listen", "empty list");
    let bad = config(
        "listen = [\"0.0.0.0:443\", \"localhost:443\", \"::1:443\", \"10.0.0.1\", \"https://0.0.0.0:443\"]",
        "",
    );
    expect(
        &bad,
        "server.listen[1]",
        "not an address: \"localhost:443\"; expected IP:PORT such as \"0.0.0.0:443\"",
    );
    expect(
        &bad,
        "server.listen[2]",
        "(an IPv6 address must be in brackets, then the port",
    );
    expect(&bad, "server.listen[3]", "(no port)");
    expect(&bad, "server.listen[4]", "(a listen address has no scheme)");
    expect(
        &config("listen = \"443\"", ""),
        "server.listen",
        "not an address: \"443\"",
    );
    expect(
        &config("listen = [\"0.0.0.0:443\"]\nadmin = \"9443\"", ""),
        "server.admin",
        "not an address",
    );
    expect(
        &config("listen = [\"0.0.0.0:443\"]\nhttp_redirect = \"x\"", ""),
        "server.http_redirect",
        "not an address",
    );
}

#[test]
fn listeners_need_distinct_addresses() {
    let text = config(
        "listen = [\"0.0.0.0:443\", \"0.0.0.0:443\", \"127.0.0.1:0\", \"127.0.0.1:0\"]\nadmin = \"0.0.0.0:443\"",
        "",
    );
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    expect(
        &text,
        "server.listen[1]",
        "0.0.0.0:443 is also server.listen[0]",
    );
    expect(
        &text,
        "server.admin",
        "0.0.0.0:443 is also server.listen[0]",
    );
}

#[test]
fn state_dir_resolves_against_the_config_directory() {
    let c = valid(&config(
        "listen = [\"127.0.0.1:8443\"]\nstate_dir = \"../state\"",
        "",
    ));
    assert_eq!(c.server.state_dir, PathBuf::from("/etc/certfront/../state"));
    expect(
        &config("listen = [\"127.0.0.1:8443\"]\nstate_dir = \"\"", ""),
        "server.state_dir",
        "empty path",
    );
}

#[test]
fn tls_rules() {
    let listen = "listen = [\"127.0.0.1:8443\"]";
    expect(
        &config(listen, "[tls]\nmin_version = \"1.1\""),
        "tls.min_version",
        "\"1.1\" is not supported: expected \"1.2\" or \"1.3\"",
    );
    for legacy in ["1.0", "1.1", "TLS1.0"] {
        expect(
            &config(listen, &format!("[tls]\nmin_version = \"{legacy}\"")),
            "tls.min_version",
            "(TLS 1.0 and 1.1 are deprecated, RFC 8996, and certfront's TLS library does not \
             implement them: clients that only speak them cannot connect at all;",
        );
    }
    let other = problems(&config(listen, "[tls]\nmin_version = \"2.0\""));
    assert!(!other[0].message.contains("RFC 8996"), "{other:?}");
    expect(
        &config(listen, "[tls]\nunknown_sni = \"ignore\""),
        "tls.unknown_sni",
        "\"ignore\" is not an option: expected \"reject\" or \"default\"",
    );
    expect(
        &config(listen, "[tls]\nunknown_sni = \"default\""),
        "tls.unknown_sni",
        "needs tls.default_host",
    );
    expect(
        &config(listen, "[tls]\ndefault_host = \"portal.example.org\""),
        "tls.default_host",
        "\"portal.example.org\" is not the fqdn or an alias of any [[host]] (hosts: app.example.org)",
    );
    expect(
        &config(listen, "[tls]\ntrust = [\"\"]"),
        "tls.trust[0]",
        "empty path",
    );
    let by_alias = format!(
        "{SERVER}[tls]\ndefault_host = \"tablet.internal.\"\n[[host]]\n{HOST}\n[[host]]\n\
         fqdn = \"tablet.example.org\"\naliases = [\"tablet.internal\"]\ninternal = true\nrespond = {{}}"
    );
    assert_eq!(
        valid(&by_alias).tls.default_host.as_deref(),
        Some("tablet.example.org")
    );
}

#[test]
fn policy_rules() {
    let listen = "listen = [\"127.0.0.1:8443\"]";
    expect(
        &config(listen, "[policy]\nmin_rsa_bits = 0"),
        "policy.min_rsa_bits",
        "0 bits: must be > 0",
    );
    expect(
        &config(listen, "[policy]\nmin_ec_bits = 0"),
        "policy.min_ec_bits",
        "0 bits: must be > 0",
    );
    expect(
        &config(listen, "[policy]\nmin_signature_hash = \"sha-256\""),
        "policy.min_signature_hash",
        "unknown value \"sha-256\", expected one of: md5, sha1, sha256",
    );
    let text = config(
        listen,
        "[policy]\nrsa_key_usage = [\"digital_signature\", \"signing\"]\next_key_usage = [\"x\"]",
    );
    assert!(super::parse_error(&text).contains("unknown field `ext_key_usage`"));
    let text = config(
        listen,
        "[policy]\nrsa_key_usage = [\"digital_signature\", \"signing\"]\nextended_key_usage = [\"tls_server\"]\n\
         key_file_mode = \"strict\"",
    );
    expect(
        &text,
        "policy.rsa_key_usage[1]",
        "unknown value \"signing\"",
    );
    expect(
        &text,
        "policy.extended_key_usage[0]",
        "unknown value \"tls_server\"",
    );
    expect(
        &text,
        "policy.key_file_mode",
        "unknown value \"strict\", expected one of: refuse, warn, ignore",
    );
}

/// Every ranged key refuses the value just below and just above its range, and the
/// largest integer TOML can hold (a huge `rescan_seconds` used to panic the reloader),
/// naming the key, the value and the range.
#[test]
fn limits_out_of_range_are_refused() {
    use crate::validate::limits::RANGES;
    for (key, range) in RANGES {
        let (table, name) = key.split_once('.').unwrap();
        let mut values = vec![range.max + 1, i64::MAX as u64];
        if range.min > 0 {
            values.push(range.min - 1);
        }
        for value in values {
            let text = if table == "server" {
                config(
                    &format!("listen = [\"127.0.0.1:8443\"]\n{name} = {value}"),
                    "",
                )
            } else {
                config(
                    "listen = [\"127.0.0.1:8443\"]",
                    &format!("[limits]\n{name} = {value}"),
                )
            };
            expect(
                &text,
                key,
                &format!("{value} is out of range: expected {}", range.describe()),
            );
        }
        // The bounds themselves are accepted (one at a time: some keys are compared).
        for value in [range.min, range.max] {
            let text = if table == "server" {
                config(
                    &format!("listen = [\"127.0.0.1:8443\"]\n{name} = {value}"),
                    "",
                )
            } else {
                let mut body = format!("[limits]\n{name} = {value}\n");
                if name == "max_connections_per_ip" {
                    body.push_str("max_connections = 1000000\n");
                }
                valid_or_cross(&config("listen = [\"127.0.0.1:8443\"]", &body), key);
                continue;
            };
            valid(&text);
        }
    }
    expect(
        &config("listen = [\"127.0.0.1:8443\"]\nrescan_seconds = 86401", ""),
        "server.rescan_seconds",
        "86401 is out of range: expected 0 to 86400 seconds; 0 turns the re-scan off (the default is 60)",
    );
    expect(
        &config(
            "listen = [\"127.0.0.1:8443\"]",
            "[limits]\nmax_header_bytes = 100",
        ),
        "limits.max_header_bytes",
        "100 is out of range: expected 1024 to 1048576 bytes (the default is 65536)",
    );
}

/// Valid, or refused only by a cross-check of `key` with another limit (the upper
/// bound of `upstream_max_idle_connections` is more than the default upstream limit).
fn valid_or_cross(text: &str, key: &str) {
    match crate::parse(text, std::path::Path::new("/etc/certfront")) {
        Ok(_) => {}
        Err(crate::ConfigError::Invalid { problems, .. }) => assert!(
            problems
                .iter()
                .all(|p| p.path == key && p.message.contains(" is more than limits.")),
            "{problems:#?}"
        ),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn limits_are_compared() {
    let listen = "listen = [\"127.0.0.1:8443\"]";
    expect(
        &config(
            listen,
            "[limits]\nmax_connections = 100\nmax_connections_per_ip = 101",
        ),
        "limits.max_connections_per_ip",
        "101 is more than limits.max_connections (100)",
    );
    expect(
        &config(
            listen,
            "[limits]\nupstream_max_connections = 10\nupstream_max_idle_connections = 11",
        ),
        "limits.upstream_max_idle_connections",
        "11 is more than limits.upstream_max_connections (10)",
    );
    // Defaults are not compared: a small max_connections keeps the default per-IP limit.
    let c = valid(&config(listen, "[limits]\nmax_connections = 4"));
    assert_eq!(c.limits.max_connections_per_ip, 256);
    let c = valid(&config(
        listen,
        "[limits]\nupstream_max_idle_connections = 0",
    ));
    assert_eq!(c.limits.upstream_max_idle_connections, 0);
    // Absent, the idle pool may hold every connection the upstream limit allows.
    let c = valid(&config(
        listen,
        "[limits]\nupstream_max_connections = 50000",
    ));
    assert_eq!(c.limits.upstream_max_idle_connections, 50000);
    let c = valid(&config(listen, "[limits]\nupstream_max_connections = 10"));
    assert_eq!(c.limits.upstream_max_idle_connections, 10);
}

#[test]
fn trusted_proxies() {
    let c = valid(&config(
        "listen = [\"127.0.0.1:8443\"]\n\
         trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"fd00::/8\", \"::1\", \"10.1.2.3/16\"]",
        "",
    ));
    let nets: Vec<String> = c
        .server
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        nets,
        [
            "10.0.0.0/8",
            "192.0.2.7/32",
            "fd00::/8",
            "::1/128",
            "10.1.0.0/16"
        ]
    );
    let text = config(
        "listen = [\"127.0.0.1:8443\"]\n\
         trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"proxy.corp\", \"10.0.0.1:80\", \"10.0.0/8\", \"\"]",
        "",
    );
    let all = problems(&text);
    assert_eq!(all.len(), 5, "{all:#?}");
    expect(
        &text,
        "server.trusted_proxies[1]",
        "not an IP network or address: \"10.0.0.0/33\" (the prefix length is 0 to 32",
    );
    expect(&text, "server.trusted_proxies[2]", "(a host name");
    expect(&text, "server.trusted_proxies[3]", "(no port");
    expect(&text, "server.trusted_proxies[4]", "is not an IP address");
    expect(
        &text,
        "server.trusted_proxies[5]",
        "expected a CIDR such as \"10.0.0.0/8\"",
    );
    let peer: std::net::IpAddr = "10.200.1.1".parse().unwrap();
    assert!(c.server.trusted_proxies[0].contains(&peer));
}

#[test]
fn admin_hosts() {
    let c = valid(&config(
        "listen = [\"127.0.0.1:8443\"]\nadmin = \"127.0.0.1:9443\"\n\
         admin_hosts = [\"Admin.Example.ORG.\", \"10.0.0.5\"]",
        "",
    ));
    assert_eq!(c.server.admin_hosts, ["admin.example.org", "10.0.0.5"]);
    let text = config(
        "listen = [\"127.0.0.1:8443\"]\nadmin_hosts = [\"ok.example.org\", \"a b\", \"x.example.org:9443\"]",
        "",
    );
    let all = problems(&text);
    assert_eq!(all.len(), 2, "{all:#?}");
    expect(&text, "server.admin_hosts[1]", "not a host name: \"a b\"");
    expect(
        &text,
        "server.admin_hosts[2]",
        "not a host name: \"x.example.org:9443\"",
    );
}

#[test]
fn access_log_takes_a_format_or_the_old_boolean() {
    for (value, want) in [
        ("true", AccessLog::Text),
        ("false", AccessLog::Off),
        ("\"off\"", AccessLog::Off),
        ("\"text\"", AccessLog::Text),
        ("\"json\"", AccessLog::Json),
        ("\"w3c\"", AccessLog::W3c),
    ] {
        let c = valid(&config(
            &format!(
                "listen = \"127.0.0.1:8443\"\naccess_log = {value}\naccess_log_file = \"logs/access.log\""
            ),
            "",
        ));
        assert_eq!(c.server.access_log, want, "access_log = {value}");
        assert_eq!(
            c.server.access_log_file,
            Some(PathBuf::from("/etc/certfront/logs/access.log"))
        );
    }
    expect(
        &config("listen = \"127.0.0.1:8443\"\naccess_log = \"iis\"", ""),
        "server.access_log",
        "unknown format \"iis\": expected \"off\", \"text\", \"json\", \"w3c\"",
    );
}
