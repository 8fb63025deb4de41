//! RFC 6125 host name matching, the way TLS clients match a certificate's DNS names.
//!
//! Written by hand: rustls-webpki does the same matching but only as part of a full
//! verification, and we need a yes/no per name (and `sites` needs it for SNI routing).

use std::net::IpAddr;

/// Lower-case, trailing dot removed: the form names are compared and stored in.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether a certificate's dNSName `pattern` covers the host `name`: equal, or a
/// wildcard `*.rest` standing for exactly one whole leftmost label (`*.example.org`
/// covers `a.example.org`, never `example.org` nor `a.b.example.org`). Case-insensitive;
/// a trailing dot on either side is ignored.
///
/// Allocation-free: it runs on every proxied request (the Host check).
pub fn covers(pattern: &str, name: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let name = name.strip_suffix('.').unwrap_or(name);
    if pattern.is_empty() || name.is_empty() {
        return false;
    }
    if pattern.eq_ignore_ascii_case(name) {
        return true;
    }
    let Some(rest) = pattern.strip_prefix("*.") else {
        return false;
    };
    // `*.org` would cover a whole top-level domain; clients refuse it, so do we.
    if !rest.contains('.') || rest.contains('*') {
        return false;
    }
    match name.split_once('.') {
        Some((first, name_rest)) => {
            !first.is_empty() && !first.contains('*') && name_rest.eq_ignore_ascii_case(rest)
        }
        None => false,
    }
}

/// Which optional forms [`check_dns_name`] accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    /// A leading `*.` label (with at least two labels under it).
    pub wildcard: bool,
    /// `_` in labels.
    pub underscore: bool,
}

impl Allow {
    /// Names a host answers and a certificate carries: `fqdn`, `aliases`, `certs csr
    /// --fqdn`, the internal CA's leaves. Wildcards yes, underscores no.
    pub const HOST: Allow = Allow {
        wildcard: true,
        underscore: false,
    };
    /// Upstream host names: resolved, never matched against a certificate, so the
    /// underscores that container and Windows host names carry (and resolvers accept)
    /// are fine; a wildcard is meaningless.
    pub const UPSTREAM: Allow = Allow {
        wildcard: false,
        underscore: true,
    };
}

/// Why a name is not a DNS name certfront accepts; the message says what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("an IP address, not a DNS name (clients send no SNI for an IP)")]
    IpAddress,
    #[error("{0} characters, at most 253 allowed")]
    TooLong(usize),
    #[error("a wildcard is not allowed here")]
    WildcardNotAllowed,
    #[error("a wildcard needs a domain after \"*.\"")]
    WildcardAlone,
    #[error(
        "\"*.{0}\" would cover every name under a top-level domain: a wildcard needs at least two labels after \"*.\" (e.g. \"*.example.org\")"
    )]
    WildcardTooBroad(String),
    #[error("empty label (two dots in a row, or a leading or second trailing dot)")]
    EmptyLabel,
    #[error("\"*\" is allowed only as the whole leftmost label")]
    WildcardNotLeftmost,
    #[error("label \"{label}\" has {len} characters, at most 63 allowed", len = label.len())]
    LabelTooLong { label: String },
    #[error("label \"{label}\" contains {found:?}: only letters, digits{} are allowed{}",
        if *underscore { ", \"-\" and \"_\"" } else { " and \"-\"" },
        if found.is_ascii() { "" } else { " (write international names in their xn-- form)" })]
    Character {
        label: String,
        found: char,
        underscore: bool,
    },
    #[error(
        "label \"{0}\" contains '_': public CAs refuse underscores in certificate names, and Java/Android clients send no SNI for such a name; use \"-\""
    )]
    Underscore(String),
    #[error("label \"{0}\" starts or ends with \"-\"")]
    Hyphen(String),
    #[error(
        "last label \"{0}\" is all digits or a 0x hex number: neither a DNS name nor an IPv4 address"
    )]
    NumericLastLabel(String),
}

/// The one DNS-name syntax check of certfront (config, `certs csr`, the internal CA).
///
/// `name` is compared as given: pass it through [`normalize`] first (which drops the one
/// trailing dot a fully qualified name may have; a second one is an empty label).
/// Labels of 1 to 63 letters, digits and `-` (not first or last), at most 253 characters.
/// With `allow.wildcard`, the leftmost label may be `*`
/// followed by at least two labels (`*.example.org`; `*.org` would cover a whole
/// top-level domain, and clients refuse it). Two choices made once, here:
///
/// - **Underscores** are refused in host names ([`Allow::HOST`]): RFC 952/1123 host
///   names have none, public CAs stopped issuing them in 2019 (CA/Browser Forum ballot
///   SC12), and Java's `SNIHostName` (Android tablets, Java WCF clients) throws on them,
///   so such a client sends no SNI at all. Upstream names ([`Allow::UPSTREAM`]) may have
///   them: they are only resolved.
/// - **A numeric last label** (`10.0.0`, `host.0x1f`) is refused: URL parsers read such a
///   name as an IPv4 address, and rustls' `ServerName` refuses it, so no client could
///   reach it by that name.
pub fn check_dns_name(name: &str, allow: Allow) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(NameError::IpAddress);
    }
    if name.len() > 253 {
        return Err(NameError::TooLong(name.len()));
    }
    let rest = match name.strip_prefix("*.") {
        Some(_) if !allow.wildcard => return Err(NameError::WildcardNotAllowed),
        Some("") => return Err(NameError::WildcardAlone),
        Some(rest) => {
            if !rest.contains('.') && !rest.contains('*') {
                return Err(NameError::WildcardTooBroad(rest.to_owned()));
            }
            rest
        }
        None => name,
    };
    let mut last = "";
    for label in rest.split('.') {
        check_label(label, allow)?;
        last = label;
    }
    if is_numeric(last) {
        return Err(NameError::NumericLastLabel(last.to_owned()));
    }
    Ok(())
}

/// [`check_dns_name`] with [`Allow::HOST`], as a yes/no; one trailing dot is allowed.
pub fn is_valid_dns_name(name: &str) -> bool {
    check_dns_name(name.strip_suffix('.').unwrap_or(name), Allow::HOST).is_ok()
}

fn check_label(label: &str, allow: Allow) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label == "*" {
        return Err(NameError::WildcardNotLeftmost);
    }
    if label.len() > 63 {
        return Err(NameError::LabelTooLong {
            label: label.to_owned(),
        });
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || (allow.underscore && c == '_');
    if let Some(found) = label.chars().find(|c| !ok(*c)) {
        if found == '_' {
            return Err(NameError::Underscore(label.to_owned()));
        }
        return Err(NameError::Character {
            label: label.to_owned(),
            found,
            underscore: allow.underscore,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::Hyphen(label.to_owned()));
    }
    Ok(())
}

/// Decimal (`10`) or hexadecimal (`0x1f`): what URL parsers take for part of an IPv4 address.
fn is_numeric(label: &str) -> bool {
    let hex = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"));
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match() {
        assert!(covers("app.example.org", "app.example.org"));
        assert!(!covers("app.example.org", "tablet.example.org"));
        assert!(!covers("app.example.org", "example.org"));
        assert!(!covers("", ""));
    }

    #[test]
    fn case_and_trailing_dot_are_ignored() {
        assert!(covers("App.Example.ORG", "app.example.org"));
        assert!(covers("app.example.org.", "APP.example.org"));
        assert!(covers("*.Example.org", "Tablet.example.org."));
        assert_eq!(
            normalize("HCAppServer.MyCompany.com."),
            "hcappserver.mycompany.com"
        );
    }

    #[test]
    fn wildcard_covers_one_leftmost_label() {
        assert!(covers("*.example.org", "tablet.example.org"));
        assert!(!covers("*.example.org", "example.org"));
        assert!(!covers("*.example.org", "a.b.example.org"));
        assert!(!covers("*.example.org", ".example.org"));
        assert!(!covers("*.example.org", "app.example.com"));
    }

    #[test]
    fn wildcard_only_as_whole_leftmost_label() {
        assert!(!covers("app*.example.org", "app1.example.org"));
        assert!(!covers("a.*.example.org", "a.b.example.org"));
        assert!(!covers("*.*.example.org", "a.b.example.org"));
        assert!(!covers("*", "localhost"));
        assert!(!covers("*.org", "example.org"));
        // a name is never a pattern: a literal "*" in the host name does not widen anything
        assert!(!covers("a.example.org", "*.example.org"));
    }

    /// The one table of accepted and refused names, with the reason each is refused.
    #[test]
    fn dns_name_table() {
        for ok in [
            "app.example.org",
            "localhost",
            "portal",
            "app.localhost",
            "*.example.org",
            "*.hospital.example.org",
            "xn--bcher-kva.example",
            "a-1.b2",
            "10.0.0.a",
            "host.0xg1",
            "App.Example.ORG",
        ] {
            assert_eq!(check_dns_name(ok, Allow::HOST), Ok(()), "{ok}");
            assert!(is_valid_dns_name(ok), "{ok}");
        }
        assert!(is_valid_dns_name("x.org."));
        assert!(!is_valid_dns_name("x.org.."));
        let long_label_ok = format!("{}.example.org", "a".repeat(63));
        assert_eq!(check_dns_name(&long_label_ok, Allow::HOST), Ok(()));
        let cases = [
            ("", "empty name"),
            (".", "empty label"),
            ("*.org", "at least two labels after \"*.\""),
            ("*.localhost", "at least two labels"),
            ("*", "\"*\" is allowed only"),
            ("*.", "needs a domain"),
            ("a.*.example.org", "whole leftmost label"),
            ("*.*.example.org", "whole leftmost label"),
            ("f*o.example.org", "contains '*'"),
            ("app..example.org", "empty label"),
            (".example.org", "empty label"),
            ("hc_app.corp.local", "public CAs refuse underscores"),
            ("-app.example.org", "starts or ends with \"-\""),
            ("app-.example.org", "starts or ends with \"-\""),
            ("app example.org", "contains ' '"),
            ("tablet.example.org:443", "contains ':'"),
            ("bücher.example", "xn--"),
            ("10.0.0.1", "an IP address"),
            ("::1", "an IP address"),
            ("10.0.0", "last label \"0\" is all digits"),
            ("host.0x1f", "0x hex number"),
        ];
        for (name, expected) in cases {
            let err = check_dns_name(name, Allow::HOST).unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(!is_valid_dns_name(name), "{name}");
        }
        let err = check_dns_name(&"a".repeat(64), Allow::HOST).unwrap_err();
        assert!(err.to_string().contains("at most 63"), "{err}");
        let err = check_dns_name(&vec!["abcdefghi"; 26].join("."), Allow::HOST).unwrap_err();
        assert!(err.to_string().contains("at most 253"), "{err}");
    }

    #[test]
    fn upstream_names_allow_underscore_not_wildcard() {
        assert_eq!(check_dns_name("iis_01.corp", Allow::UPSTREAM), Ok(()));
        assert_eq!(
            check_dns_name("*.corp.example", Allow::UPSTREAM),
            Err(NameError::WildcardNotAllowed)
        );
        let err = check_dns_name("iis 01.corp", Allow::UPSTREAM).unwrap_err();
        assert!(
            err.to_string()
                .contains("only letters, digits, \"-\" and \"_\" are allowed"),
            "{err}"
        );
    }
}
