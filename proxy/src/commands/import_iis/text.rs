//! Text for the generated file: TOML strings, and input text made safe inside comments.

use super::apphost::{SSL_CCS, SSL_SNI};

/// `, sslFlags=3 (SNI, Central Certificate Store)` for the binding comment; empty for 0.
pub(super) fn flags_text(flags: u32) -> String {
    let mut names = Vec::new();
    if flags & SSL_SNI != 0 {
        names.push("SNI");
    }
    if flags & SSL_CCS != 0 {
        names.push("Central Certificate Store");
    }
    if flags == 0 {
        return String::new();
    }
    if names.is_empty() {
        return format!(", sslFlags={flags}");
    }
    format!(", sslFlags={flags} ({})", names.join(", "))
}

/// An IPv6 address in brackets, as a URL needs it.
pub(super) fn bracket(address: &str) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// A TOML basic string. JSON's string escapes are a subset of TOML's, except that TOML
/// also refuses a raw DEL, which JSON leaves alone.
pub(super) fn toml_str(s: &str) -> String {
    serde_json::to_string(s)
        .expect("a string serializes")
        .replace('\u{7f}', "\\u007f")
}

/// Text from the input file inside a comment: one line, no control characters.
pub(super) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A site name or host name from the input, quoted inside a comment.
pub(super) fn quoted(s: &str) -> String {
    format!("\"{}\"", clean(s))
}
