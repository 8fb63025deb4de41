use super::*;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateSigningRequestDer, PrivateKeyDer};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// What the CSR file holds: subject, SAN dNSNames, and (server_auth, client_auth).
fn read_csr(path: &Path) -> (String, Vec<String>, (bool, bool)) {
    let der = CertificateSigningRequestDer::from_pem_file(path).unwrap();
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).unwrap();
    csr.verify_signature().expect("self-signed request");
    let subject = csr.certification_request_info.subject.to_string();
    let (mut sans, mut eku) = (Vec::new(), (false, false));
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(n) => sans.push((*n).to_owned()),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(e) => eku = (e.server_auth, e.client_auth),
            _ => {}
        }
    }
    (subject, sans, eku)
}

#[test]
fn key_names_round_trip() {
    for k in CsrKey::ALL {
        assert_eq!(k.as_str().parse::<CsrKey>().unwrap(), *k);
    }
    assert!("rsa1024".parse::<CsrKey>().unwrap_err().contains("p256"));
}

#[test]
fn writes_key_0600_and_csr_with_every_name_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let request = CsrRequest::new(&names(&[
        "HCAppServer.MyCompany.com.",
        "app.internal.example.org",
        "hcappserver.mycompany.com",
    ]));
    let files = write_csr(&request, &out).unwrap();
    assert_eq!(files.key, out.join("hcappserver.mycompany.com.key"));
    assert!(matches!(
        PrivateKeyDer::from_pem_file(&files.key).unwrap(),
        PrivateKeyDer::Pkcs8(_)
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (subject, sans, eku) = read_csr(&files.csr);
    assert_eq!(subject, "CN=HCAppServer.MyCompany.com");
    assert_eq!(
        sans,
        names(&["HCAppServer.MyCompany.com", "app.internal.example.org"])
    );
    assert_eq!(eku, (true, false));
}

#[test]
fn subject_fields_and_client_auth_are_requested() {
    let dir = tempfile::tempdir().unwrap();
    let request = CsrRequest {
        names: names(&["tablet.example.org"]),
        key: CsrKey::P384,
        extended_key_usage: vec![ExtKeyUsage::ClientAuth, ExtKeyUsage::ServerAuth],
        subject: CsrSubject {
            organization: Some("Example Home Care, Inc.".into()),
            organizational_unit: Some("IT Operations".into()),
            locality: Some("Kansas City".into()),
            state: Some("Missouri".into()),
            country: Some("us".into()),
        },
    };
    assert_eq!(
        request.purposes(),
        [ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth]
    );
    let files = write_csr(&request, dir.path()).unwrap();
    let (subject, _, eku) = read_csr(&files.csr);
    assert_eq!(
        subject,
        "C=US, ST=Missouri, L=Kansas City, O=Example Home Care, Inc., OU=IT Operations, CN=tablet.example.org"
    );
    assert_eq!(eku, (true, true));
}

#[test]
fn bad_subject_fields_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut request = CsrRequest::new(&names(&["app.example.org"]));
    for (country, ok) in [("USA", false), ("1A", false), ("", false), ("nl", true)] {
        request.subject.country = Some(country.into());
        let result = subject_fields(&request.subject);
        assert_eq!(result.is_ok(), ok, "{country:?}: {result:?}");
    }
    request.subject.country = Some("U".into());
    let err = write_csr(&request, dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--country \"U\": expected two letters, e.g. US or NL"
    );
    request.subject.country = None;
    request.subject.organization = Some("x".repeat(65));
    let err = write_csr(&request, dir.path()).unwrap_err();
    assert!(err.to_string().contains("1 to 64 characters"), "{err}");
    request.subject.organization = Some("line\nbreak".into());
    assert!(write_csr(&request, dir.path()).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn rsa_key_meets_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut request = CsrRequest::new(&names(&["*.Example.org"]));
    request.key = CsrKey::Rsa2048;
    let files = write_csr(&request, dir.path()).unwrap();
    assert_eq!(files.csr, dir.path().join("wildcard.example.org.csr"));
    let text = std::fs::read_to_string(&files.key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(read_csr(&files.csr).1, names(&["*.Example.org"]));
}

#[test]
fn never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.example.org.csr"), "keep me").unwrap();
    let request = CsrRequest::new(&names(&["App.example.org"]));
    let err = write_csr(&request, dir.path()).unwrap_err();
    assert!(matches!(err, CertError::Exists { .. }), "{err}");
    assert!(!dir.path().join("app.example.org.key").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.example.org.csr")).unwrap(),
        "keep me"
    );
}

#[test]
fn refuses_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_csr(
        &CsrRequest::new(&names(&["app.example.org", "bad name"])),
        dir.path(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"bad name\" is not a valid DNS name: label \"bad name\" contains ' '"),
        "{err}"
    );
    let err = write_csr(&CsrRequest::new(&names(&["*.org"])), dir.path()).unwrap_err();
    assert!(err.to_string().contains("at least two labels"), "{err}");
    let err = write_csr(&CsrRequest::new(&names(&["hc_app.corp.local"])), dir.path()).unwrap_err();
    assert!(err.to_string().contains("underscores"), "{err}");
    assert!(write_csr(&CsrRequest::new(&[]), dir.path()).is_err());
}
