//! What must hold for any deny-list text, checked by the `deny_list` fuzz target (on
//! nightly, fuzz/) and by the property tests (on stable, in CI): one copy of the checks.
//! Any text parses or names its bad lines in order, never panics; every bare fingerprint
//! line is in the list; the Windows paste artefacts (BOM, U+200E, CRLF) change nothing.

use super::{DenyListError, parse};

/// The same list as pasted from the Windows certificate dialog into Notepad.
fn as_pasted(text: &str) -> String {
    let mut out = String::from('\u{FEFF}');
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push('\u{200E}');
        out.push_str(line);
    }
    out
}

fn lines_and_reasons(err: &DenyListError) -> Vec<(usize, String)> {
    err.bad_lines
        .iter()
        .map(|b| (b.line, b.reason.to_string()))
        .collect()
}

/// Every check for one text; panics on the first that fails.
pub fn check_text(text: &str) {
    let parsed = parse(text);
    let line_count = text.lines().count();
    match &parsed {
        Ok(list) => {
            assert!(list.len() <= line_count);
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
            assert!(!err.bad_lines.is_empty() && !err.to_string().is_empty());
            let _ = err.first();
            let numbers: Vec<usize> = err.bad_lines.iter().map(|b| b.line).collect();
            assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
            assert!(numbers.iter().all(|n| (1..=line_count).contains(n)));
        }
    }
    if !text.contains(['\r', '\u{FEFF}', '\u{200E}']) {
        let pasted = parse(&as_pasted(text));
        match (&parsed, &pasted) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "paste changed the list"),
            (Err(a), Err(b)) => assert_eq!(lines_and_reasons(a), lines_and_reasons(b)),
            _ => panic!("paste changed the outcome: {parsed:?} vs {pasted:?}"),
        }
    }
}
