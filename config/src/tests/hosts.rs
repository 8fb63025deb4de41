//! The `[[host]]` rules: names, certificate sources, upstream/respond, client auth.

use std::path::PathBuf;

use certfront_certs::{CertSource, PasswordSource};

use super::{HOST, expect, valid, with_hosts};
use crate::{Action, ClientAuth, ClientAuthMode, Upstream};

#[test]
fn a_valid_host_is_normalized_and_resolved() {
    let config = valid(&with_hosts(&[
        "fqdn = \"App.Example.ORG.\"\naliases = [\"APP.internal.example.org\", \"*.apps.example.org\"]\n\
         cert = \"app/fullchain.pem\"\nkey = \"/etc/keys/app.pem\"\nupstream = \"http://10.0.0.11:80\"\n\
         upstream_host = \"app\"",
    ]));
    let host = &config.hosts[0];
    assert_eq!(host.fqdn, "app.example.org");
    assert_eq!(
        host.names(),
        [
            "app.example.org",
            "app.internal.example.org",
            "*.apps.example.org"
        ]
    );
    assert_eq!(
        host.source,
        CertSource::Pem {
            cert: PathBuf::from("/etc/certfront/app/fullchain.pem"),
            key: PathBuf::from("/etc/keys/app.pem")
        }
    );
    assert_eq!(host.upstream_host.as_deref(), Some("app"));
    assert_eq!(host.upstream_ca, None);
    assert_eq!(host.client_auth, None);
    assert!(config.host("APP.INTERNAL.example.org.").is_some());
    assert!(config.host("other.example.org").is_none());
}

#[test]
fn fqdn_is_required_and_names_must_be_dns_names() {
    expect(
        &with_hosts(&["internal = true\nrespond = {}"]),
        "host[0].fqdn",
        "missing",
    );
    expect(
        &with_hosts(&["fqdn = \"app_1.example.org\"\ninternal = true\nrespond = {}"]),
        "host[0].fqdn",
        "\"app_1.example.org\" is not a valid DNS name: label \"app_1\" contains '_'",
    );
    expect(
        &with_hosts(&[&format!(
            "{HOST}aliases = [\"ok.example.org\", \"bad..example.org\"]"
        )]),
        "host[0].aliases[1]",
        "not a valid DNS name: empty label",
    );
    expect(
        &with_hosts(&["fqdn = \"10.0.0.1\"\ninternal = true\nrespond = {}"]),
        "host[0].fqdn",
        "an IP address",
    );
    // refused here, not first by the internal CA at start (one validator for both)
    expect(
        &with_hosts(&["fqdn = \"*.org\"\ninternal = true\nrespond = {}"]),
        "host[0].fqdn",
        "\"*.org\" is not a valid DNS name: \"*.org\" would cover every name under a top-level domain",
    );
}

#[test]
fn a_name_belongs_to_one_host() {
    let other = "fqdn = \"tablet.example.org\"\naliases = [\"App.Example.org.\"]\ninternal = true\nrespond = {}";
    expect(
        &with_hosts(&[HOST, other]),
        "host[1].aliases[0]",
        "\"app.example.org\" is claimed by host[0] (\"app.example.org\") and host[1] (\"tablet.example.org\")",
    );
    // compared even when the earlier host has other problems
    let broken = "fqdn = \"app.example.org\"\nrespond = {}";
    expect(
        &with_hosts(&[broken, other]),
        "host[1].aliases[0]",
        "claimed by host[0]",
    );
    expect(
        &with_hosts(&[&format!(
            "{HOST}aliases = [\"x.example.org\", \"APP.example.org\"]"
        )]),
        "host[0].aliases[1]",
        "\"app.example.org\" is already host[0].fqdn",
    );
}

#[test]
fn exactly_one_certificate_source() {
    let action = "fqdn = \"a.example.org\"\nrespond = {}\n";
    expect(&with_hosts(&[action]), "host[0]", "no certificate source");
    expect(
        &with_hosts(&[&format!("{action}internal = false")]),
        "host[0]",
        "no certificate source",
    );
    expect(
        &with_hosts(&[&format!(
            "{action}internal = true\ncert = \"c\"\nkey = \"k\""
        )]),
        "host[0]",
        "several certificate sources (cert + key, internal = true): set exactly one",
    );
    expect(
        &with_hosts(&[&format!(
            "{action}pfx = \"a.pfx\"\npfx_password_env = \"P\"\ncert = \"c\"\nkey = \"k\""
        )]),
        "host[0]",
        "several certificate sources (cert + key, pfx)",
    );
    expect(
        &with_hosts(&[&format!("{action}cert = \"c.pem\"")]),
        "host[0].key",
        "cert is set, so key",
    );
    expect(
        &with_hosts(&[&format!("{action}key = \"k.pem\"")]),
        "host[0].cert",
        "key is set, so cert",
    );
    expect(
        &with_hosts(&[&format!("{action}cert = \"\"\nkey = \"k.pem\"")]),
        "host[0].cert",
        "empty path",
    );
}

#[test]
fn pfx_needs_exactly_one_password_source() {
    let base = "fqdn = \"tablet.example.org\"\nrespond = {}\npfx = \"tablet.pfx\"\n";
    expect(
        &with_hosts(&[base]),
        "host[0].pfx",
        "no password source: set pfx_password_env",
    );
    expect(
        &with_hosts(&[&format!(
            "{base}pfx_password_env = \"P\"\npfx_password_file = \"p.txt\""
        )]),
        "host[0].pfx_password_file",
        "pfx_password_env is set too: choose one",
    );
    expect(
        &with_hosts(&[&format!("{base}pfx_password_env = \"A=B\"")]),
        "host[0].pfx_password_env",
        "\"A=B\" is not an environment variable name",
    );
    expect(
        &with_hosts(&[&format!("{HOST}pfx_password_env = \"P\"")]),
        "host[0].pfx_password_env",
        "set, but this host has no pfx",
    );
    expect(
        &with_hosts(&[&format!("{HOST}pfx_password_file = \"p\"")]),
        "host[0].pfx_password_file",
        "set, but this host has no pfx",
    );
    let config = valid(&with_hosts(&[&format!(
        "{base}pfx_password_env = \"TABLET_PFX_PASSWORD\""
    )]));
    assert_eq!(
        config.hosts[0].source,
        CertSource::Pfx {
            path: "/etc/certfront/tablet.pfx".into(),
            password: PasswordSource::Env("TABLET_PFX_PASSWORD".into())
        }
    );
    let config = valid(&with_hosts(&[&format!(
        "{base}pfx_password_file = \"/run/secrets/tablet\""
    )]));
    let CertSource::Pfx { password, .. } = &config.hosts[0].source else {
        panic!()
    };
    assert_eq!(
        *password,
        PasswordSource::File("/run/secrets/tablet".into())
    );
}

#[test]
fn exactly_one_of_upstream_and_respond() {
    let base = "fqdn = \"a.example.org\"\ninternal = true\n";
    expect(
        &with_hosts(&[base]),
        "host[0]",
        "neither upstream nor respond",
    );
    expect(
        &with_hosts(&[&format!("{base}upstream = \"http://h\"\nrespond = {{}}")]),
        "host[0]",
        "both upstream and respond are set",
    );
    expect(
        &with_hosts(&[&format!("{base}upstream = []")]),
        "host[0].upstream",
        "empty list",
    );
}

#[test]
fn upstream_is_a_string_or_a_list() {
    let config = valid(&with_hosts(&[HOST]));
    let Action::Upstream(one) = &config.hosts[0].action else {
        panic!()
    };
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].port, 80);

    let list = "fqdn = \"a.example.org\"\ninternal = true\n\
                upstream = [\"http://10.0.0.11:80\", \"https://[fd00::12]:8443/\", \"http://iis01\"]";
    let config = valid(&with_hosts(&[list]));
    let Action::Upstream(ups) = &config.hosts[0].action else {
        panic!()
    };
    let expected = [
        (false, "10.0.0.11", 80, "10.0.0.11:80"),
        (true, "fd00::12", 8443, "[fd00::12]:8443"),
        (false, "iis01", 80, "iis01:80"),
    ];
    for (u, (tls, host, port, authority)) in ups.iter().zip(expected) {
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.authority().as_str()),
            (tls, host, port, authority)
        );
    }
    assert_eq!(
        ups[1],
        Upstream {
            tls: true,
            host: "fd00::12".into(),
            port: 8443,
            tls_name: None,
            original: "https://[fd00::12]:8443/".into()
        }
    );
}

#[test]
fn malformed_upstreams_name_their_path() {
    let base = "fqdn = \"a.example.org\"\ninternal = true\n";
    expect(
        &with_hosts(&[HOST, &format!("{base}upstream = \"10.0.0.21:443\"")]),
        "host[1].upstream",
        "not a URL: \"10.0.0.21:443\" (no scheme); expected http://HOST[:PORT] or https://HOST[:PORT]",
    );
    let text = with_hosts(&[&format!(
        "{base}upstream = [\"http://ok\", \"http://x/path\", \"http://::1\"]"
    )]);
    expect(
        &text,
        "host[0].upstream[1]",
        "not a URL: \"http://x/path\" (a path",
    );
    expect(&text, "host[0].upstream[2]", "in brackets");
}

#[test]
fn upstream_options_need_an_upstream() {
    let respond = "fqdn = \"a.example.org\"\ninternal = true\nrespond = {}\n";
    expect(
        &with_hosts(&[&format!("{respond}upstream_host = \"a\"")]),
        "host[0].upstream_host",
        "this host has no upstream",
    );
    expect(
        &with_hosts(&[&format!("{HOST}upstream_host = \"a b\"")]),
        "host[0].upstream_host",
        "\"a b\" is not a Host header value",
    );
    valid(&with_hosts(&[&format!(
        "{HOST}upstream_host = \"portal:8080\""
    )]));
    expect(
        &with_hosts(&[&format!("{HOST}upstream_ca = \"ca.pem\"")]),
        "host[0].upstream_ca",
        "no upstream of this host uses https",
    );
    expect(
        &with_hosts(&[&format!("{respond}upstream_ca = \"ca.pem\"")]),
        "host[0].upstream_ca",
        "no upstream of this host uses https",
    );
    let https = "fqdn = \"a.example.org\"\ninternal = true\n\
                 upstream = [\"http://10.0.0.1\", \"HTTPS://10.0.0.2\"]\nupstream_ca = \"private-root.pem\"";
    let config = valid(&with_hosts(&[https]));
    assert_eq!(
        config.hosts[0].upstream_ca,
        Some("/etc/certfront/private-root.pem".into())
    );
}

#[test]
fn respond_defaults_and_status_range() {
    let base = "fqdn = \"a.example.org\"\ninternal = true\n";
    let config = valid(&with_hosts(&[&format!("{base}respond = {{}}")]));
    assert_eq!(
        config.hosts[0].action,
        Action::Respond {
            status: 200,
            body: String::new()
        }
    );
    let config = valid(&with_hosts(&[&format!(
        "{base}respond = {{ status = 503, body = \"down\\n\" }}"
    )]));
    assert_eq!(
        config.hosts[0].action,
        Action::Respond {
            status: 503,
            body: "down\n".into()
        }
    );
    for status in [0, 100, 199, 600, 70000, -1] {
        expect(
            &with_hosts(&[&format!("{base}respond = {{ status = {status} }}")]),
            "host[0].respond.status",
            &format!("{status} is not a final HTTP status: expected 200 to 599"),
        );
    }
    expect(
        &with_hosts(&[&format!("{base}respond = {{ status = 204, body = \"x\" }}")]),
        "host[0].respond.body",
        "a 204 response carries no body",
    );
}

#[test]
fn client_auth_mode_and_ca() {
    let config = valid(&with_hosts(&[&format!(
        "{HOST}[host.client_auth]\nca = \"clients-ca.pem\"\ndeny = \"/etc/deny.txt\""
    )]));
    assert_eq!(
        config.hosts[0].client_auth,
        Some(ClientAuth {
            mode: ClientAuthMode::Required,
            ca: "/etc/certfront/clients-ca.pem".into(),
            deny: Some("/etc/deny.txt".into()),
            arr_client_cert: false,
            crl: Vec::new(),
            crl_url: Vec::new(),
            crl_refresh_seconds: 3600,
            crl_scope: crate::CrlScope::Leaf,
            crl_expired: crate::CrlExpired::Refuse,
        })
    );
    let config = valid(&with_hosts(&[&format!(
        "{HOST}[host.client_auth]\nmode = \"optional\"\nca = \"c.pem\"\narr_client_cert = true"
    )]));
    let auth = config.hosts[0].client_auth.as_ref().unwrap();
    assert_eq!(auth.mode, ClientAuthMode::Optional);
    assert!(auth.arr_client_cert);
    expect(
        &with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nmode = \"request\"\nca = \"c.pem\""
        )]),
        "host[0].client_auth.mode",
        "\"request\" is not a mode: expected \"required\" or \"optional\"",
    );
    expect(
        &with_hosts(&[&format!("{HOST}[host.client_auth]\nmode = \"required\"")]),
        "host[0].client_auth.ca",
        "missing",
    );
}

#[test]
fn client_auth_crls_scope_and_expiry() {
    let config = valid(&with_hosts(&[&format!(
        "{HOST}[host.client_auth]\nca = \"c.pem\"\ncrl = [\"a.crl\", \"/pki/b.crl\"]\n\
         crl_scope = \"chain\"\ncrl_expired = \"accept\""
    )]));
    let auth = config.hosts[0].client_auth.as_ref().unwrap();
    assert_eq!(
        auth.crl,
        vec![PathBuf::from("/etc/certfront/a.crl"), "/pki/b.crl".into()]
    );
    assert_eq!(auth.crl_scope, crate::CrlScope::Chain);
    assert_eq!(auth.crl_expired, crate::CrlExpired::Accept);
    let config = valid(&with_hosts(&[&format!(
        "{HOST}[host.client_auth]\nca = \"c.pem\""
    )]));
    let auth = config.hosts[0].client_auth.as_ref().unwrap();
    assert!(auth.crl.is_empty());
    assert_eq!(auth.crl_scope, crate::CrlScope::Leaf);
    assert_eq!(auth.crl_expired, crate::CrlExpired::Refuse);
    expect(
        &with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nca = \"c.pem\"\ncrl_scope = \"all\""
        )]),
        "host[0].client_auth.crl_scope",
        "\"all\" is not a CRL scope: expected \"leaf\" or \"chain\"",
    );
    expect(
        &with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nca = \"c.pem\"\ncrl_expired = \"ignore\""
        )]),
        "host[0].client_auth.crl_expired",
        "\"ignore\" is not a choice: expected \"refuse\" or \"accept\"",
    );
    expect(
        &with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nca = \"c.pem\"\ncrl = [\"\"]"
        )]),
        "host[0].client_auth.crl[0]",
        "empty path",
    );
}

#[test]
fn client_auth_crl_urls() {
    let config = valid(&with_hosts(&[&format!(
        "{HOST}[host.client_auth]\nca = \"c.pem\"\n\
         crl_url = [\"http://pki.example.org/CertEnroll/Example%20CA.crl\", \"https://pki.example.org/b.crl\"]\n\
         crl_refresh_seconds = 900"
    )]));
    let auth = config.hosts[0].client_auth.as_ref().unwrap();
    assert_eq!(
        auth.crl_url,
        vec![
            "http://pki.example.org/CertEnroll/Example%20CA.crl".to_owned(),
            "https://pki.example.org/b.crl".to_owned()
        ]
    );
    assert_eq!(auth.crl_refresh_seconds, 900);
    expect(
        &with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nca = \"c.pem\"\n\
             crl_url = [\"http://a/x.crl\", \"ldap:///CN=Example%20CA,CN=pki,CN=CDP?certificateRevocationList\"]"
        )]),
        "host[0].client_auth.crl_url[1]",
        "is not an HTTP or HTTPS URL",
    );
    expect(
        &with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nca = \"c.pem\"\ncrl_refresh_seconds = 5"
        )]),
        "host[0].client_auth.crl_refresh_seconds",
        "5 is too short: expected at least 60 seconds",
    );
}
