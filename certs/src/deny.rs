//! Client-certificate deny lists: one fingerprint a line, parsed the way administrators
//! actually produce them, and refused whole when any line is not a fingerprint.
//!
//! What a pasted line may carry and still count (each seen in the field):
//! - invisible format characters: the Windows certificate dialog puts U+200E (left-to-right
//!   mark) before the thumbprint it shows; Notepad saves UTF-8 with a BOM (U+FEFF); web
//!   pages and chat tools add U+200B (zero-width space) or U+200F;
//! - spaces (the dialog shows `a9 0c 5e ...`), colons (`openssl x509 -fingerprint`,
//!   browsers), tabs and no-break spaces between the byte pairs, upper or lower case;
//! - openssl's whole output line, `SHA256 Fingerprint=AB:CD:...`;
//! - `#` comments, blank lines, CRLF line ends.
//!
//! A line that is still not 40 (SHA-1) or 64 (SHA-256) hex digits refuses the whole file:
//! a list applied in part would leave a certificate that the administrator meant to deny
//! working, silently. The caller keeps the previous list and says so loudly.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::inspect::{sha1_hex, sha256_hex};

/// How many bad lines an error lists before "and N more" (a log line stays readable).
const LISTED: usize = 5;

/// A parsed deny list: fingerprints as upper-case hex without separators, SHA-1 or SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DenyList {
    fingerprints: HashSet<String>,
}

impl DenyList {
    /// Whether the certificate `der` has its SHA-1 or SHA-256 fingerprint on the list.
    pub fn denies(&self, der: &[u8]) -> bool {
        !self.fingerprints.is_empty()
            && (self.fingerprints.contains(&sha1_hex(der))
                || self.fingerprints.contains(&sha256_hex(der)))
    }

    /// Whether this exact fingerprint (upper-case hex, no separators) is listed.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    /// Distinct fingerprints listed.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

/// Why one line is not a fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadLineReason {
    #[error("contains {0:?}, which is not a hex digit")]
    NotHex(char),
    #[error("{0} hex digits: a fingerprint has 40 (SHA-1, the Windows thumbprint) or 64 (SHA-256)")]
    Length(usize),
}

/// One line of a deny list that is not a fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based, as editors count.
    pub line: usize,
    /// The line as written (comment removed), for the message.
    pub found: String,
    pub reason: BadLineReason,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug quoting shows invisible characters as \u{...}, so what is wrong can be seen.
        write!(f, "line {}: {:?} {}", self.line, self.found, self.reason)
    }
}

/// A deny list with at least one bad line; every bad line is listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyListError {
    /// In file order; never empty.
    pub bad_lines: Vec<BadLine>,
}

impl DenyListError {
    /// The first bad line (the one a log line or a metric label leads with).
    pub fn first(&self) -> &BadLine {
        &self.bad_lines[0]
    }
}

impl fmt::Display for DenyListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, bad) in self.bad_lines.iter().take(LISTED).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{bad}")?;
        }
        if self.bad_lines.len() > LISTED {
            write!(f, "; and {} more bad lines", self.bad_lines.len() - LISTED)?;
        }
        Ok(())
    }
}

impl std::error::Error for DenyListError {}

/// A deny-list file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DenyFileError {
    #[error("{}: cannot read the deny list: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the deny list is not text (UTF-8); save it as UTF-8 or ASCII", path.display())]
    NotText { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: DenyListError,
    },
}

impl DenyFileError {
    pub fn path(&self) -> &Path {
        match self {
            DenyFileError::Read { path, .. }
            | DenyFileError::NotText { path }
            | DenyFileError::Invalid { path, .. } => path,
        }
    }
}

/// Parses deny-list text (see the module comment for what is forgiven).
pub fn parse(text: &str) -> Result<DenyList, DenyListError> {
    let mut fingerprints = HashSet::new();
    let mut bad_lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("");
        match fingerprint(content) {
            Ok(None) => {}
            Ok(Some(hex)) => {
                fingerprints.insert(hex);
            }
            Err(reason) => bad_lines.push(BadLine {
                line: n + 1,
                found: content.trim().to_owned(),
                reason,
            }),
        }
    }
    if bad_lines.is_empty() {
        Ok(DenyList { fingerprints })
    } else {
        Err(DenyListError { bad_lines })
    }
}

/// Reads and parses a deny-list file.
pub fn read(path: &Path) -> Result<DenyList, DenyFileError> {
    let bytes =
        crate::read::read_file(path, crate::read::FileKind::DenyList).map_err(|source| {
            DenyFileError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
    let text = String::from_utf8(bytes).map_err(|_| DenyFileError::NotText {
        path: path.to_owned(),
    })?;
    parse(&text).map_err(|source| DenyFileError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// One line without its comment: `None` when blank, else upper-case hex of the right length.
fn fingerprint(content: &str) -> Result<Option<String>, BadLineReason> {
    let content = strip_openssl_label(content);
    let mut hex = String::with_capacity(64);
    for c in content.chars() {
        if is_invisible(c) || c.is_whitespace() || c == ':' {
            continue;
        }
        if !c.is_ascii_hexdigit() {
            return Err(BadLineReason::NotHex(c));
        }
        hex.push(c.to_ascii_uppercase());
    }
    match hex.len() {
        0 => Ok(None),
        40 | 64 => Ok(Some(hex)),
        n => Err(BadLineReason::Length(n)),
    }
}

/// `SHA1 Fingerprint=AB:CD...` / `sha256 Fingerprint=...` (openssl x509 -fingerprint) -> the value.
fn strip_openssl_label(content: &str) -> &str {
    match content.split_once('=') {
        Some((label, value)) if label.trim().to_ascii_lowercase().ends_with("fingerprint") => value,
        _ => content,
    }
}

/// Zero-width and direction-mark characters (Unicode format characters): they render as
/// nothing, so an administrator cannot see or remove them in an editor.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}' // soft hyphen
            | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{FEFF}' // byte-order mark, zero-width no-break space
    )
}

#[doc(hidden)]
pub mod checks;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
