//! Unit tests of the whole pipeline: each validation rule with its path and
//! message, defaults, path resolution, parse errors, and every shipped example.

mod acme;
mod ccs;
mod examples;
mod hosts;
mod iis;
mod props;
mod server_tls;

use std::path::Path;

use crate::{Config, ConfigError, Problem, parse};

/// A valid `[server]` to put hosts under.
const SERVER: &str = "[server]\nlisten = [\"127.0.0.1:8443\"]\n";

/// A valid host body (after `[[host]]`).
const HOST: &str = "fqdn = \"app.example.org\"\ninternal = true\nupstream = \"http://10.0.0.11\"\n";

/// `SERVER` plus one `[[host]]` per body.
fn with_hosts(bodies: &[&str]) -> String {
    let mut text = SERVER.to_string();
    for body in bodies {
        text.push_str("\n[[host]]\n");
        text.push_str(body);
        text.push('\n');
    }
    text
}

fn valid(text: &str) -> Config {
    parse(text, Path::new("/etc/certfront")).unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new("/etc/certfront")) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected problems, got {other}"),
        Ok(_) => panic!("expected problems, the config is valid:\n{text}"),
    }
}

/// Asserts that exactly one problem sits at `path`, with `fragment` in its message.
fn expect(text: &str, path: &str, fragment: &str) {
    let all = problems(text);
    let at: Vec<&Problem> = all.iter().filter(|p| p.path == path).collect();
    assert_eq!(at.len(), 1, "one problem at {path} expected, got {all:#?}");
    assert!(
        at[0].message.contains(fragment),
        "{path}: {:?} lacks {fragment:?}",
        at[0].message
    );
}

fn parse_error(text: &str) -> String {
    match parse(text, Path::new("/etc/certfront")) {
        Err(ConfigError::Parse { message, .. }) => message,
        Err(other) => panic!("expected a parse error, got {other}"),
        Ok(_) => panic!("expected a parse error"),
    }
}

#[test]
fn all_problems_at_once() {
    let text = r#"
[server]
listen = ["0.0.0.0:443", "localhost:443"]

[tls]
min_version = "1.1"
default_host = "nowhere.example.org"

[[host]]
fqdn = "app.example.org"
cert = "app.pem"
upstream = "http://10.0.0.11/api"

[[host]]
fqdn = "APP.example.org."
pfx = "tablet.pfx"
respond = { status = 99 }

[limits]
max_connections = 0
"#;
    let all = problems(text);
    let paths: Vec<&str> = all.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "server.listen[1]",
            "tls.min_version",
            "host[0].key",
            "host[0].upstream",
            "host[1].pfx",
            "host[1].respond.status",
            "host[1].fqdn",
            "tls.default_host",
            "limits.max_connections",
        ],
        "{all:#?}"
    );
    let err = parse(text, Path::new("/etc/certfront")).unwrap_err();
    assert_eq!(err.messages().len(), all.len());
    assert_eq!(err.to_string().lines().count(), all.len());
    assert!(
        err.to_string()
            .starts_with("<inline>: server.listen[1]: not an address: \"localhost:443\"")
    );
}

#[test]
fn load_names_the_file_and_resolves_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("etc");
    std::fs::create_dir(&sub).unwrap();
    let file = sub.join("certfront.toml");
    let text = with_hosts(&[
        "fqdn = \"app.example.org\"\ncert = \"app/chain.pem\"\nkey = \"/abs/key.pem\"\nrespond = {}",
    ]);
    std::fs::write(&file, text).unwrap();
    let config = crate::load(&file).unwrap();
    assert_eq!(config.source, file);
    let crate::Host { source, .. } = &config.hosts[0];
    assert_eq!(
        *source,
        certfront_certs::CertSource::Pem {
            cert: sub.join("app/chain.pem"),
            key: "/abs/key.pem".into()
        }
    );
    assert_eq!(config.server.state_dir, sub.join("state"));

    std::fs::write(&file, "[server]\nlisten = []\n").unwrap();
    let err = crate::load(&file).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: server.listen: empty list", file.display())),
        "{err}"
    );

    let missing = sub.join("absent.toml");
    let err = crate::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read:", missing.display()))
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn relative_config_path_keeps_paths_relative() {
    let raw = crate::RawConfig::from_toml(&with_hosts(&[
        "fqdn = \"a.example.org\"\npfx = \"a.pfx\"\npfx_password_file = \"../secrets/a\"\nrespond = {}",
    ]))
    .unwrap();
    let config = raw
        .validate(Path::new("config/certfront.toml"), Path::new("config"))
        .unwrap();
    assert_eq!(
        config.hosts[0].source,
        certfront_certs::CertSource::Pfx {
            path: "config/a.pfx".into(),
            password: certfront_certs::PasswordSource::File("config/../secrets/a".into()),
        }
    );
    let config = crate::RawConfig::from_toml(&with_hosts(&[HOST]))
        .unwrap()
        .validate(Path::new("certfront.toml"), Path::new(""))
        .unwrap();
    assert_eq!(config.server.state_dir, Path::new("state"));
}

#[test]
fn unknown_keys_are_refused_with_line_and_column() {
    let message = parse_error(&format!("{SERVER}drain_secs = 3\n"));
    assert!(message.contains("line 3, column 1"), "{message}");
    assert!(message.contains("unknown field `drain_secs`"), "{message}");
    for text in [
        format!("{SERVER}[tls]\nmin_versoin = \"1.2\"\n"),
        format!("{SERVER}[policy]\nmin_rsa = 2048\n"),
        format!("{SERVER}[limits]\nmax_conns = 1\n"),
        format!("{SERVER}[bogus]\n"),
        with_hosts(&[&format!("{HOST}upsteam = \"x\"")]),
        with_hosts(&[&format!(
            "{HOST}[host.client_auth]\nca = \"c.pem\"\nmod = \"required\""
        )]),
        with_hosts(&[
            "fqdn = \"a.example.org\"\ninternal = true\nrespond = { status = 200, text = \"x\" }",
        ]),
    ] {
        let message = parse_error(&text);
        assert!(message.contains("unknown field"), "{message}");
        assert!(message.contains("line "), "{message}");
    }
    let err = parse(&format!("{SERVER}oops = 1\n"), Path::new("/")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("<inline>: TOML parse error at line 3"),
        "{err}"
    );
}

#[test]
fn wrong_types_are_refused_by_the_parser() {
    let message = parse_error(&with_hosts(&[
        "fqdn = \"a.example.org\"\ninternal = true\nupstream = 80",
    ]));
    assert!(
        message.contains("a URL, a table { url = \"...\", tls_name = \"...\" }, or a list"),
        "{message}"
    );
    let message = parse_error("[server]\nlisten = 443\n");
    assert!(
        message.contains("a string or a list of strings"),
        "{message}"
    );
    let message = parse_error(&format!("{SERVER}[policy]\nmin_rsa_bits = -1\n"));
    assert!(message.contains("min_rsa_bits"), "{message}");
    assert!(parse_error("this is not toml").contains("line 1"));
}

#[test]
fn empty_file_lists_what_is_missing() {
    let all = problems("");
    let paths: Vec<&str> = all.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["server.listen", "host"]);
    assert!(all[0].message.contains("at least one TLS listen address"));
    assert!(all[1].message.contains("at least one host"));
}
