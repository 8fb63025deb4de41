//! Fuzzes the client-certificate deny-list parser (`certfront_certs::deny::parse`): any
//! text gives a list or an error naming each bad line, never a panic; the result does
//! not depend on the paste artefacts the parser forgives (CRLF line ends, an invisible
//! U+200E or BOM before a line), and every fingerprint listed is found again.
#![no_main]

use certfront_certs::deny::{DenyListError, parse};
use libfuzzer_sys::fuzz_target;

/// The same list as pasted from the Windows certificate dialog into Notepad: BOM, U+200E
/// before every line, CRLF line ends.
fn as_pasted(text: &str) -> String {
    let mut out = String::from('\u{FEFF}');
    for line in text.split('\n') {
        if out.len() > 3 {
            out.push_str("\r\n");
        }
        out.push('\u{200E}');
        out.push_str(line);
    }
    out
}

/// What an error says, without the text of each line (the paste adds invisible characters).
fn lines_and_reasons(err: &DenyListError) -> Vec<(usize, String)> {
    err.bad_lines
        .iter()
        .map(|b| (b.line, b.reason.to_string()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse(&text);
    let line_count = text.lines().count();
    match &parsed {
        Ok(list) => {
            assert!(list.len() <= line_count, "more fingerprints than lines");
            // A line that is already a bare fingerprint is in the list.
            for line in text.lines() {
                let bare = line.trim();
                if (bare.len() == 40 || bare.len() == 64)
                    && bare.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    assert!(list.contains(&bare.to_ascii_uppercase()), "{bare} missing");
                }
            }
        }
        Err(err) => {
            assert!(!err.bad_lines.is_empty());
            let _ = err.first();
            assert!(!err.to_string().is_empty());
            let numbers: Vec<usize> = err.bad_lines.iter().map(|b| b.line).collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "lines out of order"
            );
            assert!(numbers.iter().all(|n| *n >= 1 && *n <= line_count));
        }
    }
    // Windows paste artefacts change nothing. Only for text without a carriage return or
    // a format character of its own, which the rewrite could merge with.
    if !text.contains(['\r', '\u{FEFF}', '\u{200E}']) {
        let pasted = parse(&as_pasted(&text));
        match (&parsed, &pasted) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "paste changed the list"),
            (Err(a), Err(b)) => assert_eq!(lines_and_reasons(a), lines_and_reasons(b)),
            _ => panic!("paste changed the outcome: {parsed:?} vs {pasted:?}"),
        }
    }
});
