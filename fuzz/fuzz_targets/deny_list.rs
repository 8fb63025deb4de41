//! Fuzzes the client-certificate deny-list parser (`certfront_certs::deny::parse`): any
//! text gives a list or an error naming each bad line, never a panic; the result does
//! not depend on the paste artefacts the parser forgives (CRLF line ends, an invisible
//! U+200E or BOM before a line), and every fingerprint listed is found again. The checks
//! are `certfront_certs::deny::checks`, which the property tests run on stable too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    certfront_certs::deny::checks::check_text(&String::from_utf8_lossy(data));
});
