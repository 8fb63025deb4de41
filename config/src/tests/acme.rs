//! `[acme]` and `acme = true` hosts: every rule with its path, and the defaults.

use std::path::PathBuf;
use std::time::Duration;

use certfront_certs::{CertSource, CsrKey};

use super::{SERVER, expect, problems, valid};
use crate::AcmeChallenge;

const ACME: &str =
    "[acme]\ndirectory = \"https://acme.example.org/directory\"\nemail = \"pki@example.org\"\n";
const ACME_HOST: &str =
    "[[host]]\nfqdn = \"app.example.org\"\nacme = true\nupstream = \"http://10.0.0.11\"\n";

fn text(server_extra: &str, acme_extra: &str, host: &str) -> String {
    format!("{SERVER}{server_extra}\n{ACME}{acme_extra}\n{host}")
}

#[test]
fn an_acme_host_keeps_its_pair_under_state_dir() {
    let config = valid(&text("state_dir = \"/var/lib/certfront\"\n", "", ACME_HOST));
    let host = &config.hosts[0];
    assert!(host.acme);
    assert_eq!(
        host.source,
        CertSource::Pem {
            cert: PathBuf::from("/var/lib/certfront/acme/app.example.org/fullchain.pem"),
            key: PathBuf::from("/var/lib/certfront/acme/app.example.org/privkey.pem"),
        }
    );
    let acme = config.acme.expect("acme");
    assert_eq!(acme.directory, "https://acme.example.org/directory");
    assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
    assert_eq!(acme.key, CsrKey::P256);
    assert_eq!(acme.renew_before, None);
    assert_eq!(acme.eab, None);
}

#[test]
fn every_option_is_read() {
    let config = valid(&text(
        "http_redirect = \"0.0.0.0:80\"\n",
        "eab_kid = \"kid-1\"\neab_hmac_key_env = \"ACME_EAB_KEY\"\nca = \"pebble.pem\"\n\
         challenge = \"http-01\"\nkey = \"rsa3072\"\nrenew_before_days = 30\n",
        ACME_HOST,
    ));
    let acme = config.acme.expect("acme");
    assert_eq!(acme.challenge, AcmeChallenge::Http01);
    assert_eq!(acme.key, CsrKey::Rsa3072);
    assert_eq!(acme.renew_before, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(acme.ca, Some(PathBuf::from("/etc/certfront/pebble.pem")));
    let eab = acme.eab.expect("eab");
    assert_eq!(
        (eab.kid.as_str(), eab.hmac_key_env.as_str()),
        ("kid-1", "ACME_EAB_KEY")
    );
}

#[test]
fn acme_without_the_section_is_refused() {
    expect(
        &format!("{SERVER}\n{ACME_HOST}"),
        "host[0].acme",
        "there is no [acme] section",
    );
}

#[test]
fn acme_is_one_certificate_source() {
    expect(
        &text("", "", &format!("{ACME_HOST}internal = true\n")),
        "host[0]",
        "several certificate sources (internal = true, acme = true)",
    );
}

#[test]
fn wildcards_need_dns_01() {
    let host = "[[host]]\nfqdn = \"app.example.org\"\naliases = [\"*.apps.example.org\"]\n\
                acme = true\nupstream = \"http://10.0.0.11\"\n";
    expect(
        &text("", "", host),
        "host[0].acme",
        "\"*.apps.example.org\" is a wildcard name, which a CA validates only by dns-01; tls-alpn-01",
    );
}

#[test]
fn http_01_needs_the_plain_http_listener() {
    expect(
        &text("", "challenge = \"http-01\"\n", ACME_HOST),
        "acme.challenge",
        "server.http_redirect is not set",
    );
    expect(
        &text("", "challenge = \"dns-01\"\n", ACME_HOST),
        "acme.challenge",
        "\"dns-01\" is not supported",
    );
}

#[test]
fn the_section_is_checked_offline_with_paths() {
    let bad = format!(
        "{SERVER}\n[acme]\ndirectory = \"http://acme.example.org/dir\"\nemail = \"pki\"\n\
         eab_kid = \"kid\"\nkey = \"rsa1024\"\nrenew_before_days = 0\n\n{ACME_HOST}"
    );
    let all = problems(&bad);
    let paths: Vec<&str> = all.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "acme.directory",
            "acme.email",
            "acme.eab_hmac_key_env",
            "acme.key",
            "acme.renew_before_days"
        ],
        "{all:#?}"
    );
    assert!(
        all[0].message.contains("must start with https://"),
        "{all:#?}"
    );
    assert!(all[3].message.contains("expected one of: p256"), "{all:#?}");
    expect(
        &format!("{SERVER}\n[acme]\nemail = \"pki@example.org\"\n\n{ACME_HOST}"),
        "acme.directory",
        "missing: the ACME directory URL",
    );
}

#[test]
fn a_key_the_policy_refuses_is_refused_now() {
    expect(
        &text(
            "\n[policy]\nmin_rsa_bits = 3072\n",
            "key = \"rsa2048\"\n",
            ACME_HOST,
        ),
        "acme.key",
        "\"rsa2048\" makes RSA 2048-bit keys, and policy.min_rsa_bits requires >= 3072",
    );
}
