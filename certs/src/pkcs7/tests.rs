//! PKCS#7 bundles: OpenSSL's (root listed first), hand-built ones in any order, PEM and
//! DER, inside "BEGIN CERTIFICATE" lines, and the refusals.

use std::fs;
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;

use super::*;
use crate::check::check;
use crate::load::{load, parse_certs, read_certificates};
use crate::policy::Policy;
use crate::source::CertSource;
use crate::testutil::{Alg, Ca, Leaf, fixture, set_mode, trust};

/// DER type-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    match len {
        0..=127 => out.push(len as u8),
        128..=255 => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// A certificates-only SignedData with `certs` in the given order, written independently
/// of the `cms` crate so the reader is tested against a second encoder.
pub(super) fn p7b(certs: &[&[u8]]) -> Vec<u8> {
    let signed_data = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    let data = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
    ];
    let body = [
        tlv(0x02, &[1]),            // version
        tlv(0x31, &[]),             // digestAlgorithms
        tlv(0x30, &data),           // encapContentInfo, no content
        tlv(0xa0, &certs.concat()), // [0] IMPLICIT certificates
        tlv(0x31, &[]),             // signerInfos
    ]
    .concat();
    tlv(
        0x30,
        &[&signed_data[..], &tlv(0xa0, &tlv(0x30, &body))].concat(),
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[test]
fn openssl_bundles_load_leaf_first_in_der_and_pem() {
    let good = CertificateDer::from_pem_file(fixture("good.pem")).unwrap();
    let root = CertificateDer::from_pem_file(fixture("ca.pem")).unwrap();
    for file in ["good-chain.p7b", "good-chain-pem.p7b"] {
        // the file lists the root first, as `openssl crl2pkcs7 -certfile ca.pem -certfile good.pem` wrote it
        let certs = read_certificates(&fixture(file), None).unwrap();
        assert_eq!(certs, [good.clone(), root.clone()], "{file}");
    }
    // a Windows .cer in DER
    assert_eq!(
        read_certificates(&fixture("good.cer"), None).unwrap(),
        [good]
    );
}

#[test]
fn a_p7b_chain_with_a_key_is_a_certificate_source_that_passes_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("good-key.pem");
    fs::copy(fixture("good-key.pem"), &key).unwrap();
    set_mode(&key, 0o600);
    let root = CertificateDer::from_pem_file(fixture("ca.pem")).unwrap();
    for file in ["good-chain.p7b", "good-chain-pem.p7b", "good.cer"] {
        let source = CertSource::Pem {
            cert: fixture(file),
            key: key.clone(),
        };
        let bundle = load(&source).unwrap();
        bundle.certified_key().unwrap();
        let names = vec!["good.example.org".to_owned()];
        let report = check(
            &names,
            &source,
            &bundle,
            &Policy::default(),
            &trust(&[&root]),
            SystemTime::now(),
        );
        assert!(
            report.is_ok() && report.warnings.is_empty(),
            "{file}: {report:#?}"
        );
    }
}

#[test]
fn any_order_is_put_in_chain_order() {
    let root = Ca::root(Alg::P256);
    let inter = root.intermediate(Alg::P256);
    let (leaf, _) = inter.issue(&Leaf::new(&["app.example.org"], Alg::P256));
    let unrelated = {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unrelated root");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    };
    let orders: [&[&[u8]]; 3] = [
        &[&root.der, &leaf, &inter.der],
        &[&inter.der, &root.der, &leaf],
        &[&leaf, &unrelated, &inter.der, &root.der],
    ];
    for order in orders {
        let certs = parse_certs(Path::new("x.p7b"), &p7b(order)).unwrap();
        assert_eq!(
            &certs[..3],
            [leaf.clone(), inter.der.clone(), root.der.clone()]
        );
        assert_eq!(certs.len(), order.len());
    }
    // PEM "PKCS7", and a bundle wrapped in "CERTIFICATE" lines, as some CAs send it
    let bundle = p7b(&[&root.der, &leaf, &inter.der]);
    for text in [pem("PKCS7", &bundle), pem("CERTIFICATE", &bundle)] {
        let certs = parse_certs(Path::new("x.p7b"), text.as_bytes()).unwrap();
        assert_eq!(certs, [leaf.clone(), inter.der.clone(), root.der.clone()]);
    }
    // only CA certificates (a bundle of roots, for tls.trust): all of them, in no set order
    let certs = parse_certs(Path::new("roots.p7b"), &p7b(&[&inter.der, &root.der])).unwrap();
    assert_eq!(certs.len(), 2);
    assert!(certs.contains(&inter.der) && certs.contains(&root.der));
}

#[test]
fn bad_bundles_are_named_errors() {
    let root = Ca::root(Alg::P256);
    let (a, _) = root.issue(&Leaf::new(&["a.example.org"], Alg::P256));
    let (b, _) = root.issue(&Leaf::new(&["b.example.org"], Alg::P256));
    let path = Path::new("/etc/certfront/two.p7b");
    let err = parse_certs(path, &p7b(&[&a, &b, &root.der])).unwrap_err();
    assert_eq!(err.path(), Some(path));
    let text = err.to_string();
    assert!(text.contains("holds 2 server certificates ("), "{text}");
    assert!(
        text.contains("CN=a.example.org") && text.contains("CN=b.example.org"),
        "{text}"
    );
    assert!(text.ends_with("expected one, with its chain"), "{text}");
    let err = parse_certs(path, &p7b(&[])).unwrap_err();
    assert!(matches!(err, CertError::NoCertificate { .. }), "{err}");
    let mut cut = p7b(&[&a]);
    cut.truncate(cut.len() - 10);
    assert!(parse_certs(path, &cut).is_err());
    let err = parse_certs(path, b"-----BEGIN PKCS7-----\nMIIB\n").unwrap_err();
    assert!(
        err.to_string().contains("END PKCS7-----\" is missing"),
        "{err}"
    );
    let err = parse_certs(path, b"-----BEGIN PKCS7-----\n!!!!\n-----END PKCS7-----\n").unwrap_err();
    assert!(err.to_string().contains("not valid base64"), "{err}");
}
