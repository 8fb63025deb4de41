//! `import iis` on realistic IIS 8.5 and 10 files and on hostile ones; what it prints
//! must parse and validate as a certfront.toml.

use std::path::{Path, PathBuf};

use certfront_certs::{CertSource, PasswordSource};
use certfront_config::{Action, ClientAuthMode, Config};

use super::{ImportError, ImportIisArgs, MAX_INPUT_BYTES, convert};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/iis")
        .join(name)
}

fn args(config: PathBuf, netsh: Option<PathBuf>) -> ImportIisArgs {
    ImportIisArgs {
        config,
        netsh,
        iis_address: Some("10.20.0.20".parse().unwrap()),
        cert_dir: "/etc/certfront".into(),
        ccs_dir: "/mnt/ccs".into(),
    }
}

/// Converts, then validates the output as the config crate would read the file.
fn imported(config: &str, netsh: Option<&str>) -> (String, Config) {
    let (text, hosts) = convert(&args(fixture(config), netsh.map(fixture))).expect("convert");
    let parsed = certfront_config::parse(&text, Path::new("/etc/certfront"))
        .unwrap_or_else(|e| panic!("the output does not validate: {e}\n{text}"));
    assert_eq!(parsed.hosts.len(), hosts);
    assert!(parsed.warnings.is_empty(), "{:?}\n{text}", parsed.warnings);
    (text, parsed)
}

fn upstream(c: &Config, fqdn: &str) -> (String, Option<String>) {
    let Action::Upstream(ups) = &c.host(fqdn).unwrap().action else {
        panic!("{fqdn}: no upstream")
    };
    assert_eq!(ups.len(), 1);
    (ups[0].to_string(), ups[0].tls_name.clone())
}

#[test]
fn iis10_sites_become_hosts_that_validate() {
    let (text, c) = imported("iis10-applicationHost.config", Some("netsh-sslcert.txt"));
    let names: Vec<&str> = c.hosts.iter().map(|h| h.fqdn.as_str()).collect();
    assert_eq!(
        names,
        [
            "hcappserver.mycompany.com",
            "hcapp",
            "hctabletserver.mycompany.com",
            "portal.mycompany.com",
            "*.clinics.mycompany.com"
        ]
    );
    assert_eq!(
        c.server.listen,
        [
            "0.0.0.0:443".parse().unwrap(),
            "0.0.0.0:8443".parse().unwrap()
        ]
    );
    assert_eq!(c.server.http_redirect, Some("0.0.0.0:80".parse().unwrap()));
    // The thumbprint from netsh, beside the file to export it to.
    let app = text.find("fqdn = \"hcappserver.mycompany.com\"").unwrap();
    let export = text[app..]
        .find(
            "export certificate 3A1F9C0E2B7D4E5F60718293A4B5C6D7E8F90A1B (Cert:\\LocalMachine\\My)",
        )
        .unwrap();
    let pfx = text[app..]
        .find("pfx = \"/etc/certfront/hcappserver.mycompany.com.pfx\"")
        .unwrap();
    assert!(export < pfx, "{text}");
    assert!(
        text.contains("9BE4C1D2A3F4051627384950A1B2C3D4E5F60718 (Cert:\\LocalMachine\\WebHosting)")
    );
    assert_eq!(
        c.host("hcapp").unwrap().source,
        CertSource::Pfx {
            path: "/etc/certfront/hcapp.pfx".into(),
            password: PasswordSource::File("/etc/certfront/hcapp.pass".into()),
        }
    );
    // *:443 goes to --iis-address; a binding's own address is kept; the name is tls_name.
    assert_eq!(
        upstream(&c, "hcappserver.mycompany.com"),
        (
            "https://10.20.0.20:443".into(),
            Some("hcappserver.mycompany.com".into())
        )
    );
    assert_eq!(
        upstream(&c, "hctabletserver.mycompany.com").0,
        "https://10.20.0.21:443"
    );
    assert!(text.contains("also bound by site \"Homecare Tablet\" binding 10.20.0.21:8443"));
    assert!(text.contains("IIS had TLS 1.3 disabled"));
    // Client certificates: required on the portal's site, path-scoped on the tablet.
    let portal = c.host("portal.mycompany.com").unwrap();
    assert_eq!(
        portal.client_auth.as_ref().unwrap().mode,
        ClientAuthMode::Required
    );
    let tablet = c.host("hctabletserver.mycompany.com").unwrap();
    assert!(tablet.client_auth.is_none());
    assert!(
        text.contains("only under \"Homecare Tablet/api\""),
        "{text}"
    );
    assert!(c.host("hcapp").unwrap().client_auth.is_none());
    // What cannot be carried is named, with why.
    for skipped in [
        "net.tcp binding 808:*: WCF's binary framing",
        "net.pipe binding *: a local WCF transport",
        "http binding *:80:HCAppServer.MyCompany.com: plain HTTP",
    ] {
        assert!(text.contains(skipped), "{skipped:?} missing:\n{text}");
    }
}

#[test]
fn ccs_bindings_take_the_share_file_name_with_underscore_for_a_wildcard() {
    let (text, c) = imported("iis10-applicationHost.config", Some("netsh-sslcert.txt"));
    let wildcard = c.host("*.clinics.mycompany.com").unwrap();
    let CertSource::Pfx { path, .. } = &wildcard.source else {
        panic!("{:?}", wildcard.source)
    };
    assert_eq!(path, Path::new("/mnt/ccs/_.clinics.mycompany.com.pfx"));
    assert!(wildcard.ccs && c.host("portal.mycompany.com").unwrap().ccs);
    assert!(!c.host("hcapp").unwrap().ccs);
    assert!(text.contains("[ccs]\npath = \"/mnt/ccs\""), "{text}");
    assert!(text.contains("IIS had legacy TLS disabled"));
}

#[test]
fn iis85_ip_bindings_and_server_wide_negotiate() {
    let (text, c) = imported("iis85-applicationHost.config", Some("netsh-sslcert.txt"));
    let names: Vec<&str> = c.hosts.iter().map(|h| h.fqdn.as_str()).collect();
    assert_eq!(names, ["ris.hospital.local", "images.hospital.local"]);
    // A non-SNI binding finds its certificate by IP:port.
    assert!(text.contains("C0FFEE00112233445566778899AABBCCDDEEFF00 (Cert:\\LocalMachine\\MY)"));
    assert_eq!(
        upstream(&c, "ris.hospital.local").0,
        "https://192.168.10.5:443"
    );
    assert_eq!(
        upstream(&c, "images.hospital.local").0,
        "https://[fd00::5]:443"
    );
    // SslNegotiateCert alone, server-wide: optional client certificates on every host.
    for h in &c.hosts {
        assert_eq!(
            h.client_auth.as_ref().unwrap().mode,
            ClientAuthMode::Optional,
            "{}",
            h.fqdn
        );
    }
    assert!(
        text.contains("site \"Imaging & Reports\""),
        "entities decoded: {text}"
    );
    for skipped in [
        "https binding 192.168.10.6:443: (certificate DEADBEEF00112233445566778899AABBCCDDEEFF): an IP-only binding",
        "ftp binding *:21:: FTP is not HTTP",
        "net.tcp binding 808:*",
    ] {
        assert!(text.contains(skipped), "{skipped:?} missing:\n{text}");
    }
}

#[test]
fn without_netsh_or_address_the_todos_say_what_to_fill_in() {
    let mut a = args(fixture("iis10-applicationHost.config"), None);
    a.iis_address = None;
    let (text, _) = convert(&a).unwrap();
    let c = certfront_config::parse(&text, Path::new("/etc/certfront")).unwrap();
    assert_eq!(
        upstream(&c, "hcapp").0,
        format!("https://{}:443", super::render::PLACEHOLDER_ADDRESS)
    );
    assert!(text.contains("TODO: the IIS server's IP address"));
    assert!(
        text.contains(
            "TODO: export this site's certificate (thumbprint: `netsh http show sslcert`"
        )
    );
}

/// PowerShell 5's `netsh ... > sslcert.txt` writes UTF-16LE with a byte-order mark.
#[test]
fn netsh_output_saved_as_utf16_reads_like_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("netsh-sslcert.txt")).unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(
        text.replace('\n', "\r\n")
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    let utf16 = dir.path().join("sslcert.txt");
    std::fs::write(&utf16, bytes).unwrap();
    let config = fixture("iis10-applicationHost.config");
    let (from_utf8, _) =
        convert(&args(config.clone(), Some(fixture("netsh-sslcert.txt")))).unwrap();
    let (from_utf16, _) = convert(&args(config, Some(utf16))).unwrap();
    let body = |t: &str| t.lines().skip(3).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&from_utf8), body(&from_utf16));
    assert_eq!(super::netsh::parse(&text).len(), 7);
}

fn convert_text(dir: &Path, text: &[u8]) -> Result<(String, usize), ImportError> {
    let path = dir.join("applicationHost.config");
    std::fs::write(&path, text).unwrap();
    convert(&args(path, None))
}

#[test]
fn hostile_files_are_refused_with_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let err = convert_text(dir.path(), b"[server]\nlisten = 1\n").unwrap_err();
    assert!(matches!(err, ImportError::Xml { .. }), "{err}");
    assert!(
        err.to_string().contains("not an applicationHost.config"),
        "{err}"
    );

    // Billion laughs: refused at the DTD, before any entity exists.
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<configuration><system.applicationHost><sites><site name="&lol3;" id="1"><bindings>
<binding protocol="https" bindingInformation="*:443:a.example.org" /></bindings></site></sites>
</system.applicationHost></configuration>"#;
    let err = convert_text(dir.path(), laughs.as_bytes()).unwrap_err();
    let ImportError::Xml { source, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(source, roxmltree::Error::DtdDetected),
        "{source:?}"
    );

    // An external entity without a DTD is an unknown reference.
    let xxe = br#"<configuration><x>&xxe;</x></configuration>"#;
    assert!(matches!(
        convert_text(dir.path(), xxe).unwrap_err(),
        ImportError::Xml { .. }
    ));

    let huge = vec![b' '; MAX_INPUT_BYTES as usize + 1];
    let err = convert_text(dir.path(), &huge).unwrap_err();
    assert!(matches!(err, ImportError::TooLarge { .. }), "{err}");

    let err = convert_text(dir.path(), &[0xC3, 0x28, 0xA0]).unwrap_err();
    assert!(matches!(err, ImportError::NotText { .. }), "{err}");
}

#[test]
fn a_file_with_no_https_host_name_carries_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let xml = br#"<configuration><system.applicationHost><sites><site name="s" id="1"><bindings>
<binding protocol="https" bindingInformation="*:443:" />
<binding protocol="https" bindingInformation="*:443:bad_name.example.org" sslFlags="1" />
</bindings></site></sites></system.applicationHost></configuration>"#;
    let (text, hosts) = convert_text(dir.path(), xml).unwrap();
    assert_eq!(hosts, 0);
    assert!(text.contains("an IP-only binding without a host name"));
    assert!(
        text.contains("\"bad_name.example.org\" is not a valid DNS name"),
        "{text}"
    );
}

/// IIS bindings on the ports certfront would pick for its other listeners: the output
/// still validates (every listener on its own port).
#[test]
fn https_on_port_80_or_9443_moves_the_other_listeners_aside() {
    let dir = tempfile::tempdir().unwrap();
    let xml = br#"<configuration><system.applicationHost><sites><site name="s" id="1"><bindings>
<binding protocol="https" bindingInformation="*:80:a.example.org" sslFlags="1" />
<binding protocol="https" bindingInformation="*:9443:b.example.org" sslFlags="1" />
<binding protocol="http" bindingInformation="*:80:" />
<binding protocol="http" bindingInformation="*:8080:" />
</bindings></site></sites></system.applicationHost></configuration>"#;
    let (text, hosts) = convert_text(dir.path(), xml).unwrap();
    assert_eq!(hosts, 2);
    let c = certfront_config::parse(&text, Path::new("/etc/certfront"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        c.server.http_redirect,
        Some("0.0.0.0:8080".parse().unwrap())
    );
    assert_eq!(c.server.admin, Some("127.0.0.1:9444".parse().unwrap()));
}
