//! Each paste style the parser forgives, and each line it refuses.

use super::*;

const SHA1: &str = "A90C5E1B2F3D4C5B6A7980F1E2D3C4B5A6978899";
const SHA256: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

/// `hex` with a separator between byte pairs.
fn pairs(hex: &str, sep: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

fn only(text: &str) -> String {
    let list = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(list.len(), 1, "{text:?}");
    list.fingerprints.into_iter().next().unwrap()
}

#[test]
fn plain_fingerprints_comments_and_blank_lines() {
    let text = format!("# leaked 2026-11-01\n\n{SHA1}\n{SHA256}  # old tablet\n   \n");
    let list = parse(&text).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.contains(SHA1) && list.contains(SHA256));
    assert!(parse("").unwrap().is_empty());
    assert!(parse("# nothing denied yet\n").unwrap().is_empty());
}

#[test]
fn windows_dialog_paste() {
    // What the Details tab of the Windows certificate dialog copies: an invisible
    // left-to-right mark first, then byte pairs separated by spaces, in lower case.
    let pasted = format!("\u{200E}{}", pairs(&SHA1.to_lowercase(), " "));
    assert_eq!(only(&pasted), SHA1);
    // Right-to-left mark, zero-width space and a byte-order mark (Notepad's UTF-8) too.
    for mark in ['\u{200F}', '\u{200B}', '\u{FEFF}', '\u{AD}'] {
        assert_eq!(only(&format!("{mark}{SHA1}")), SHA1, "{mark:?}");
        assert_eq!(only(&format!("{SHA1}{mark}")), SHA1, "{mark:?}");
        let inside = format!("{}{mark}{}", &SHA1[..20], &SHA1[20..]);
        assert_eq!(only(&inside), SHA1, "{mark:?}");
    }
    assert_eq!(only(&format!("\u{FEFF}# list\r\n{SHA1}\r\n")), SHA1);
}

#[test]
fn separators_and_case() {
    for sep in [" ", ":", "\t", "\u{A0}", " : "] {
        assert_eq!(only(&pairs(SHA256, sep)), SHA256, "{sep:?}");
        assert_eq!(only(&pairs(&SHA256.to_lowercase(), sep)), SHA256, "{sep:?}");
    }
    assert_eq!(
        only(&pairs("a90C5e1b2F3d4c5b6a7980f1e2d3c4b5a6978899", ":")),
        SHA1
    );
}

#[test]
fn openssl_fingerprint_lines() {
    assert_eq!(
        only(&format!("SHA1 Fingerprint={}", pairs(SHA1, ":"))),
        SHA1
    );
    assert_eq!(
        only(&format!("sha256 Fingerprint={}\n", pairs(SHA256, ":"))),
        SHA256
    );
}

#[test]
fn crlf_line_ends() {
    let text = format!("# windows file\r\n{SHA1}\r\n\r\n{SHA256}\r\n");
    assert_eq!(parse(&text).unwrap().len(), 2);
}

#[test]
fn wrong_length_is_refused_with_line_and_text() {
    let text = format!("{SHA1}\n# ok\n{}\n", &SHA1[..39]);
    let err = parse(&text).unwrap_err();
    assert_eq!(err.bad_lines.len(), 1);
    let bad = err.first();
    assert_eq!((bad.line, bad.found.as_str()), (3, &SHA1[..39]));
    assert_eq!(bad.reason, BadLineReason::Length(39));
    assert_eq!(
        err.to_string(),
        format!(
            "line 3: {:?} 39 hex digits: a fingerprint has 40 (SHA-1, the Windows thumbprint) or 64 (SHA-256)",
            &SHA1[..39]
        )
    );
    // An MD5 (32 digits) is not accepted either.
    assert_eq!(
        parse("0123456789abcdef0123456789abcdef")
            .unwrap_err()
            .first()
            .reason,
        BadLineReason::Length(32)
    );
}

#[test]
fn non_hex_is_refused() {
    let err = parse(&format!("{SHA1}\nCN=dr-bob\n")).unwrap_err();
    assert_eq!(err.first().line, 2);
    assert_eq!(err.first().reason, BadLineReason::NotHex('N'));
    assert!(
        err.to_string()
            .contains("contains 'N', which is not a hex digit"),
        "{err}"
    );
    // a visible character that looks like a separator is still wrong: say which
    let err = parse(&pairs(SHA1, "-")).unwrap_err();
    assert_eq!(err.first().reason, BadLineReason::NotHex('-'));
    // an invisible character we do not forgive shows escaped in the message
    let err = parse(&format!("\u{180e}{SHA1}")).unwrap_err();
    assert!(err.to_string().contains("\\u{180e}"), "{err}");
}

#[test]
fn one_bad_line_refuses_the_whole_file_and_every_bad_line_is_named() {
    let mut text = format!("{SHA1}\n{SHA256}\n");
    for i in 0..7 {
        text.push_str(&format!("bad{i}\n"));
    }
    let err = parse(&text).unwrap_err();
    assert_eq!(err.bad_lines.len(), 7);
    let lines: Vec<usize> = err.bad_lines.iter().map(|b| b.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9]);
    let message = err.to_string();
    assert!(message.starts_with("line 3: \"bad0\""), "{message}");
    assert!(message.ends_with("; and 2 more bad lines"), "{message}");
}

#[test]
fn denies_by_sha1_or_sha256_of_the_certificate() {
    let der = b"not really DER, but hashes do not care";
    let by_sha1 = parse(&sha1_hex(der).to_lowercase()).unwrap();
    let by_sha256 = parse(&pairs(&sha256_hex(der), ":")).unwrap();
    assert!(by_sha1.denies(der) && by_sha256.denies(der));
    assert!(!by_sha1.denies(b"another certificate"));
    assert!(!DenyList::default().denies(der));
}

#[test]
fn read_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deny.txt");
    std::fs::write(&path, format!("\u{FEFF}{SHA1}\r\n")).unwrap();
    assert!(read(&path).unwrap().contains(SHA1));
    std::fs::write(&path, "nope\n").unwrap();
    let err = read(&path).unwrap_err();
    assert_eq!(err.path(), path);
    assert!(
        err.to_string().starts_with(&format!(
            "{}: line 1: \"nope\" contains 'n'",
            path.display()
        )),
        "{err}"
    );
    std::fs::write(&path, [0xff, 0xfe, b'A', 0]).unwrap();
    assert!(matches!(read(&path), Err(DenyFileError::NotText { .. })));
    let missing = dir.path().join("absent.txt");
    assert!(matches!(read(&missing), Err(DenyFileError::Read { .. })));
}
