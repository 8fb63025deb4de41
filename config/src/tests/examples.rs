//! Every file in `config/examples/` and the quick start `config/certfront.toml`
//! parse and validate; new examples are covered by being dropped in the folder.

use std::path::{Path, PathBuf};

use certfront_certs::{CertSource, PasswordSource};

use crate::{Action, ClientAuthMode, UnknownSni, load};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_validates() {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(config_dir().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
            // An example is what people copy: it must not carry a mistake `check` warns about.
            assert!(
                config.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                config.warnings
            );
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    for required in [
        "full.toml",
        "homecare.toml",
        "iis-ccs.toml",
        "iis-three-hosts.toml",
        "minimal.toml",
    ] {
        assert!(
            checked.iter().any(|c| c == required),
            "{required} missing from {checked:?}"
        );
    }
}

#[test]
fn full_example_is_the_design_example() {
    let c = load(&config_dir().join("examples/full.toml")).unwrap();
    let names: Vec<&str> = c.hosts.iter().map(|h| h.fqdn.as_str()).collect();
    assert_eq!(
        names,
        [
            "app.example.org",
            "tablet.example.org",
            "portal.example.org"
        ]
    );
    assert_eq!(c.tls.default_host.as_deref(), Some("app.example.org"));
    let Action::Upstream(ups) = &c.hosts[0].action else {
        panic!()
    };
    assert_eq!(ups.len(), 2);
    assert_eq!(c.hosts[2].upstream_host.as_deref(), Some("portal"));
    assert_eq!(
        c.hosts[2].client_auth.as_ref().unwrap().mode,
        ClientAuthMode::Required
    );
}

#[test]
fn iis_example_has_one_host_per_source() {
    let c = load(&config_dir().join("examples/iis-three-hosts.toml")).unwrap();
    assert_eq!(c.hosts.len(), 3);
    assert!(matches!(c.hosts[0].source, CertSource::Pem { .. }));
    assert!(matches!(
        c.hosts[1].source,
        CertSource::Pfx {
            password: PasswordSource::Env(_),
            ..
        }
    ));
    assert_eq!(c.hosts[2].source, CertSource::Internal);
    assert!(c.hosts[2].client_auth.is_some());
}

/// DESIGN "Configuration": no certificate files, no backend, CA in the
/// repository's `state/`, three hosts answering directly.
#[test]
fn quick_start_is_self_contained() {
    let file = config_dir().join("certfront.toml");
    let c = load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server.listen, ["127.0.0.1:8443".parse().unwrap()]);
    assert_eq!(c.server.admin, Some("127.0.0.1:9443".parse().unwrap()));
    assert_eq!(c.server.state_dir, config_dir().join("../state"));
    assert_eq!(c.tls.default_host.as_deref(), Some("app.localhost"));
    assert_eq!(c.tls.unknown_sni, UnknownSni::Reject);
    let names: Vec<&str> = c.hosts.iter().map(|h| h.fqdn.as_str()).collect();
    assert_eq!(
        names,
        ["app.localhost", "tablet.localhost", "portal.localhost"]
    );
    for host in &c.hosts {
        assert_eq!(host.source, CertSource::Internal, "{}", host.fqdn);
        let Action::Respond { status, body } = &host.action else {
            panic!("{}", host.fqdn)
        };
        assert_eq!(*status, 200);
        assert!(
            body.contains(&host.fqdn) && body.ends_with('\n'),
            "{body:?}"
        );
    }
    // Seen from the repository root, as `cargo run -- run` finds it: the CA
    // lands in the root's state/, and paths stay relative for short messages.
    let text = std::fs::read_to_string(&file).unwrap();
    let raw = crate::RawConfig::from_toml(&text).unwrap();
    let c = raw
        .validate(Path::new("config/certfront.toml"), Path::new("config"))
        .unwrap();
    assert_eq!(c.server.state_dir, Path::new("config/../state"));
}
