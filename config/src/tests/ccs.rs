//! `[ccs]` and `ccs = true`: IIS's Central Certificate Store as `.pfx` sources.

use std::path::PathBuf;

use certfront_certs::{CertSource, PasswordSource};

use super::{SERVER, expect, valid};

const UPSTREAM: &str = "upstream = \"http://10.0.0.11\"";

fn store(hosts: &str) -> String {
    format!("{SERVER}\n[ccs]\npath = \"/mnt/ccs\"\npassword_file = \"ccs.pass\"\n{hosts}")
}

#[test]
fn a_ccs_host_is_the_pfx_named_after_it_with_the_store_password() {
    let c = valid(&store(&format!(
        "[[host]]\nfqdn = \"App.Example.org\"\nccs = true\n{UPSTREAM}\n\
         [[host]]\nfqdn = \"*.clinics.example.org\"\nccs = true\n{UPSTREAM}\n"
    )));
    let password = PasswordSource::File(PathBuf::from("/etc/certfront/ccs.pass"));
    assert_eq!(
        c.hosts[0].source,
        CertSource::Pfx {
            path: "/mnt/ccs/app.example.org.pfx".into(),
            password: password.clone(),
        }
    );
    assert_eq!(
        c.hosts[1].source,
        CertSource::Pfx {
            path: "/mnt/ccs/_.clinics.example.org.pfx".into(),
            password,
        }
    );
    assert!(c.hosts.iter().all(|h| h.ccs));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn ccs_problems_name_their_path() {
    expect(
        &format!("{SERVER}[[host]]\nfqdn = \"a.example.org\"\nccs = true\n{UPSTREAM}\n"),
        "host[0].ccs",
        "there is no [ccs] table",
    );
    expect(
        &format!(
            "{SERVER}[ccs]\npassword_file = \"p\"\n[[host]]\nfqdn = \"a.example.org\"\nccs = true\n{UPSTREAM}\n"
        ),
        "ccs.path",
        "missing: the Central Certificate Store folder",
    );
    expect(
        &format!(
            "{SERVER}[ccs]\npath = \"/mnt/ccs\"\n[[host]]\nfqdn = \"a.example.org\"\nccs = true\n{UPSTREAM}\n"
        ),
        "ccs.password_file",
        "Certificate Private Key Password",
    );
    expect(
        &store(&format!(
            "[[host]]\nfqdn = \"a.example.org\"\nccs = true\npfx = \"a.pfx\"\npfx_password_file = \"p\"\n{UPSTREAM}\n"
        )),
        "host[0]",
        "several certificate sources (pfx, ccs = true)",
    );
}

#[test]
fn an_unused_store_is_a_warning() {
    let c = valid(&store(&format!(
        "[[host]]\nfqdn = \"a.example.org\"\ninternal = true\n{UPSTREAM}\n"
    )));
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].path, "ccs");
}
