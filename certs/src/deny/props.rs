//! Property tests (the `deny_list` fuzz target's checks, on stable, in seconds): any text
//! parses or names its bad lines in order, never panics; fingerprints pasted in any of
//! the forgiven styles are all found; one bad line refuses the whole file; the Windows
//! paste artefacts (BOM, U+200E, CRLF) change nothing.

use proptest::prelude::*;

use super::checks::check_text;
use super::*;

/// A fingerprint (SHA-1 or SHA-256, upper-case) as an administrator might paste it:
/// any case, a separator between byte pairs, invisible characters around, a comment.
fn pasted_fingerprint() -> impl Strategy<Value = (String, String)> {
    let hex = prop_oneof![
        proptest::collection::vec(any::<u8>(), 20),
        proptest::collection::vec(any::<u8>(), 32),
    ]
    .prop_map(|bytes| bytes.iter().map(|b| format!("{b:02X}")).collect::<String>());
    let separator = proptest::sample::select(vec!["", " ", ":", "\t", "\u{A0}", " : "]);
    let invisible =
        proptest::sample::select(vec!["", "\u{200E}", "\u{200F}", "\u{FEFF}", "\u{200B}"]);
    let comment = proptest::sample::select(vec!["", " # laptop 7", "#"]);
    (
        hex,
        any::<bool>(),
        separator,
        invisible,
        comment,
        any::<bool>(),
    )
        .prop_map(|(hex, lower, sep, invisible, comment, openssl)| {
            let written = if lower {
                hex.to_ascii_lowercase()
            } else {
                hex.clone()
            };
            let pairs: Vec<&str> = (0..written.len())
                .step_by(2)
                .map(|i| &written[i..i + 2])
                .collect();
            let label = match (openssl, hex.len()) {
                (false, _) => "",
                (true, 40) => "SHA1 Fingerprint=",
                (true, _) => "sha256 Fingerprint=",
            };
            let line = format!("{invisible}{label}{}{comment}", pairs.join(sep));
            (line, hex)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_never_panics(text in "(?s).{0,300}") {
        check_text(&text);
    }

    #[test]
    fn hex_ish_text_never_panics(
        text in "([0-9a-fA-F:# \u{200E}\u{FEFF}=\r\n]|SHA1 Fingerprint=|\n){0,120}",
    ) {
        check_text(&text);
    }

    #[test]
    fn every_pasted_fingerprint_is_found(
        lines in proptest::collection::vec(pasted_fingerprint(), 0..12),
        crlf in any::<bool>(),
    ) {
        let text: Vec<&str> = lines.iter().map(|(line, _)| line.as_str()).collect();
        let text = text.join(if crlf { "\r\n" } else { "\n" });
        let list = parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        for (_, hex) in &lines {
            prop_assert!(list.contains(hex), "{} missing from {:?}", hex, text);
        }
        check_text(&text);
    }

    #[test]
    fn one_bad_line_refuses_the_whole_file(
        lines in proptest::collection::vec(pasted_fingerprint(), 1..8),
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![Just("not a fingerprint"), Just("A90C5E1B"), Just("0x00")],
    ) {
        let mut text: Vec<String> = lines.into_iter().map(|(line, _)| line).collect();
        let at = at.index(text.len() + 1);
        text.insert(at, bad.to_owned());
        let err = parse(&text.join("\n")).expect_err("a file with a bad line was taken");
        prop_assert_eq!(err.bad_lines.len(), 1);
        prop_assert_eq!(err.first().line, at + 1);
    }
}
