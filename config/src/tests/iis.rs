//! Issue 10's keys: upstream `tls_name` (and the warning for an https upstream
//! by IP without it), `[host.policy]` overrides, `tls.ticket_key_file`.

use std::path::Path;

use certfront_certs::{ExtKeyUsage, KeyFileMode, Policy};

use super::{HOST, SERVER, expect, parse_error, valid, with_hosts};
use crate::Action;

fn upstreams(text: &str) -> Vec<crate::Upstream> {
    match &valid(text).hosts[0].action {
        Action::Upstream(list) => list.clone(),
        other => panic!("{other:?}"),
    }
}

const BASE: &str = "fqdn = \"app.example.org\"\ninternal = true\n";

#[test]
fn tls_name_in_a_table_or_a_list_of_both_forms() {
    let one = upstreams(&with_hosts(&[&format!(
        "{BASE}upstream = {{ url = \"https://10.0.0.21\", tls_name = \"App01.Corp.Example.\" }}"
    )]));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].host, "10.0.0.21");
    assert_eq!(one[0].tls_name.as_deref(), Some("app01.corp.example"));
    assert_eq!(one[0].tls_name(), "app01.corp.example");

    let list = upstreams(&with_hosts(&[&format!(
        "{BASE}upstream = [\"https://iis02.corp.example\", \
         {{ url = \"https://10.0.0.21:8443\", tls_name = \"iis01.corp.example\" }}, \
         {{ url = \"https://[fd00::21]\", tls_name = \"fd00::22\" }}]"
    )]));
    let names: Vec<(&str, &str)> = list
        .iter()
        .map(|u| (u.host.as_str(), u.tls_name()))
        .collect();
    assert_eq!(
        names,
        [
            ("iis02.corp.example", "iis02.corp.example"),
            ("10.0.0.21", "iis01.corp.example"),
            ("fd00::21", "fd00::22"),
        ]
    );
    assert_eq!(list[1].port, 8443);
}

#[test]
fn tls_name_problems_name_their_path() {
    expect(
        &with_hosts(&[&format!(
            "{BASE}upstream = {{ url = \"http://10.0.0.21\", tls_name = \"iis01.corp.example\" }}"
        )]),
        "host[0].upstream.tls_name",
        "\"http://10.0.0.21\" is plain http",
    );
    expect(
        &with_hosts(&[&format!(
            "{BASE}upstream = [{{ url = \"https://10.0.0.21\", tls_name = \"bad name\" }}]"
        )]),
        "host[0].upstream[0].tls_name",
        "\"bad name\" is not a DNS name or IP address",
    );
    expect(
        &with_hosts(&[&format!(
            "{BASE}upstream = [{{ url = \"https://10.0.0.21\", tls_name = \"*.corp.example\" }}]"
        )]),
        "host[0].upstream[0].tls_name",
        "wildcard",
    );
    expect(
        &with_hosts(&[&format!(
            "{BASE}upstream = [{{ tls_name = \"iis01.corp.example\" }}]"
        )]),
        "host[0].upstream[0].url",
        "missing",
    );
    let err = parse_error(&with_hosts(&[&format!(
        "{BASE}upstream = {{ url = \"https://10.0.0.21\", sni = \"x\" }}"
    )]));
    assert!(err.contains("unknown field `sni`"), "{err}");
    assert!(err.contains("`tls_name`"), "{err}");
    let err = parse_error(&with_hosts(&[&format!("{BASE}upstream = 5")]));
    assert!(err.contains("a URL, a table"), "{err}");
}

#[test]
fn https_upstream_by_ip_without_tls_name_is_a_warning_not_an_error() {
    let config = valid(&with_hosts(&[
        &format!(
            "{BASE}upstream = [\"https://10.0.0.21\", \"https://iis.corp.example\", \"http://10.0.0.22\"]"
        ),
        "fqdn = \"b.example.org\"\ninternal = true\nupstream = { url = \"https://10.0.0.23\", tls_name = \"iis03.corp.example\" }",
    ]));
    let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "host[0].upstream[0]: \"https://10.0.0.21\" is an IP address without tls_name"
        ),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("tls_name = \"<name in the IIS certificate>\" }"),
        "{}",
        warnings[0]
    );
}

#[test]
fn host_policy_overrides_only_the_keys_it_sets() {
    let text = format!(
        "{SERVER}\n[policy]\nmin_rsa_bits = 3072\nkey_file_mode = \"refuse\"\n\n\
         [[host]]\n{HOST}\n[host.policy]\nextended_key_usage = [\"server_auth\", \"client_auth\"]\n\
         min_rsa_bits = 4096\n\n\
         [[host]]\nfqdn = \"tablet.example.org\"\ninternal = true\nupstream = \"http://10.0.0.21\"\n"
    );
    let config = valid(&text);
    let global = Policy {
        min_rsa_bits: 3072,
        key_file_mode: KeyFileMode::Refuse,
        ..Policy::default()
    };
    assert_eq!(config.policy, global);
    assert_eq!(
        config.hosts[0].policy,
        Policy {
            min_rsa_bits: 4096,
            extended_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
            ..global.clone()
        }
    );
    assert_eq!(config.hosts[1].policy, global);
}

#[test]
fn host_policy_problems_name_the_host() {
    let text = format!(
        "{SERVER}\n[[host]]\n{HOST}\n[host.policy]\nextended_key_usage = [\"server_auth\", \"client\"]\nmin_ec_bits = 0\n"
    );
    expect(
        &text,
        "host[0].policy.extended_key_usage[1]",
        "unknown value \"client\"",
    );
    expect(&text, "host[0].policy.min_ec_bits", "0 bits");
    let err = parse_error(&format!(
        "{SERVER}\n[[host]]\n{HOST}\n[host.policy]\nrequired_eku = [\"client_auth\"]\n"
    ));
    assert!(err.contains("unknown field `required_eku`"), "{err}");
    assert!(err.contains("`extended_key_usage`"), "{err}");
}

#[test]
fn ticket_key_file_is_resolved_and_needs_resumption() {
    let text = format!("{SERVER}\n[tls]\nticket_key_file = \"tickets.keys\"\n\n[[host]]\n{HOST}");
    assert_eq!(
        valid(&text).tls.ticket_key_file.as_deref(),
        Some(Path::new("/etc/certfront/tickets.keys"))
    );
    assert_eq!(valid(&with_hosts(&[HOST])).tls.ticket_key_file, None);
    expect(
        &format!(
            "{SERVER}\n[tls]\nticket_key_file = \"t.keys\"\nresumption = false\n\n[[host]]\n{HOST}"
        ),
        "tls.ticket_key_file",
        "resumption = false",
    );
}

/// `config/examples/homecare.toml`: the vendor guides' three servers, re-encrypting to
/// IIS by IP with tls_name, a .pfx, a private CA, one mTLS host, one host policy.
#[test]
fn homecare_example_is_the_vendor_guide_setup() {
    use certfront_certs::{CertSource, PasswordSource};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let c = crate::load(&dir.join("homecare.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.hosts.len(), 3);
    let (app, tablet, portal) = (&c.hosts[0], &c.hosts[1], &c.hosts[2]);
    assert!(matches!(
        app.source,
        CertSource::Pfx {
            password: PasswordSource::File(_),
            ..
        }
    ));
    assert!(matches!(tablet.source, CertSource::Pfx { .. }));
    assert!(matches!(portal.source, CertSource::Pem { .. }));
    for host in [app, tablet] {
        let Action::Upstream(ups) = &host.action else {
            panic!("{}", host.fqdn)
        };
        for u in ups {
            assert!(u.tls && u.host.parse::<std::net::IpAddr>().is_ok(), "{u:?}");
            assert!(u.tls_name.is_some(), "{u:?}");
        }
        assert_eq!(host.upstream_ca, Some(dir.join("ca/hospital-root.cer")));
    }
    assert_eq!(
        app.policy.extended_key_usage,
        [ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth]
    );
    assert_eq!(tablet.policy, c.policy);
    assert!(portal.client_auth.is_some());
    assert!(c.tls.ticket_key_file.is_some());
}
