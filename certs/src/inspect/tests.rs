//! Inspection: exact key sizes, thumbprints as Windows shows them, odd dates.
use super::*;

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
