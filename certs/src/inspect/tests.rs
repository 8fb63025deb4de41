//! Inspection: exact key sizes, thumbprints as Windows shows them, odd dates.
use super::*;
use rustls_pki_types::CertificateDer;

#[test]
fn bit_length_is_exact() {
    assert_eq!(bit_length(&[0x00, 0x80, 0, 0]), 24);
    assert_eq!(bit_length(&[0x00, 0x7f, 0]), 15);
    assert_eq!(bit_length(&[0x01]), 1);
    assert_eq!(bit_length(&[0, 0]), 0);
    assert_eq!(bit_length(&[]), 0);
}

#[test]
fn serial_strips_leading_zeros() {
    assert_eq!(serial_hex(&[0x00, 0x0a, 0xbc]), "0ABC");
    assert_eq!(serial_hex(&[0x00]), "0");
}

#[test]
fn digests_are_upper_hex() {
    assert_eq!(sha1_hex(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    assert_eq!(
        sha256_hex(b"abc"),
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    );
}

#[test]
fn days_left_rounds_down_and_goes_negative() {
    let mut info = crate::testutil::leaf_info_stub();
    info.not_after = 10 * 86_400;
    assert_eq!(info.days_left(UNIX_EPOCH), 10);
    info.not_after = 3600;
    assert_eq!(
        info.days_left(UNIX_EPOCH + std::time::Duration::from_secs(7200)),
        -1
    );
}

fn fixture_info(name: &str) -> CertInfo {
    let certs = crate::load::read_certificates(&crate::testutil::fixture(name), None).unwrap();
    inspect(&certs[0]).unwrap()
}

#[test]
fn facts_as_openssl_and_windows_show_them() {
    // expected values from `openssl x509 -noout -serial -fingerprint -sha1 -sha256`
    let info = fixture_info("good.pem");
    assert_eq!(info.subject, "CN=good.example.org");
    assert_eq!(info.issuer, "CN=certfront fixture root");
    assert_eq!(info.sans, ["good.example.org"]);
    // whole bytes, as Windows shows it; only the DER sign byte 00 would be dropped
    assert_eq!(info.serial, "0C075192D0AD276E55226042FD61148306F1DA02");
    assert_eq!(
        info.sha1_thumbprint,
        "A37EDA29E48F6B60E7B512B7FDBBEB76F9D0B978"
    );
    assert_eq!(
        info.sha256_fingerprint,
        "C8B77181B42327F88661E92AB0FC8764D8A35A1B72B562D6568CE01416DFEAB8"
    );
    assert_eq!((info.key_type.clone(), info.key_bits), (KeyType::Rsa, 2048));
    assert_eq!(info.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(info.signature_hash, Some(HashAlg::Sha256));
    assert_eq!(
        info.key_usage,
        Some(vec![KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment])
    );
    assert_eq!(info.extended_key_usage, Some(vec![ExtKeyUsage::ServerAuth]));
    assert!(!info.is_ca);
    assert!(info.not_after - info.not_before >= 36_500 * 86_400);
}

#[test]
fn key_types_and_exact_sizes() {
    assert_eq!(fixture_info("rsa1024.pem").key_bits, 1024);
    let ec = fixture_info("ec.pem");
    assert_eq!(
        (ec.key_type.to_string(), ec.key_bits),
        ("EC P-256".to_owned(), 256)
    );
    let sha1 = fixture_info("sha1.pem");
    assert_eq!(sha1.signature_algorithm, "sha1WithRSAEncryption");
    assert_eq!(sha1.signature_hash, Some(HashAlg::Sha1));
    let root = fixture_info("ca.pem");
    assert!(root.is_ca);
    assert_eq!(root.extended_key_usage, None);
    for (alg, shown, bits) in [
        (crate::testutil::Alg::P384, "EC P-384", 384),
        (crate::testutil::Alg::Ed25519, "Ed25519", 256),
    ] {
        let ca = crate::testutil::Ca::root(alg);
        let info = inspect(&ca.der).unwrap();
        assert_eq!(
            (info.key_type.to_string().as_str(), info.key_bits),
            (shown, bits)
        );
    }
}

#[test]
fn inventory_json() {
    let json = serde_json::to_value(fixture_info("ec.pem")).unwrap();
    assert_eq!(json["key_type"], "EC P-256");
    assert_eq!(json["signature_hash"], "sha256");
    assert_eq!(
        json["key_usage"],
        serde_json::json!(["digital_signature", "key_encipherment"])
    );
    assert_eq!(
        json["extended_key_usage"],
        serde_json::json!(["server_auth"])
    );
    assert_eq!(json["sans"], serde_json::json!(["ec.example.org"]));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let err = inspect(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01])).unwrap_err();
    assert!(
        err.to_string().starts_with("certificate cannot be parsed"),
        "{err}"
    );
}
