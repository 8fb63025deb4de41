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

/// Whether `name` may be configured as a host name: letters, digits, hyphens and
/// underscores in dot-separated labels of 1 to 63 characters, 253 in all; the leftmost
/// label may be `*` (followed by at least two labels). IP addresses are not DNS names.
pub fn is_valid_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 || name.parse::<IpAddr>().is_ok() {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    labels.iter().enumerate().all(|(i, label)| {
        if *label == "*" {
            return i == 0 && labels.len() >= 3;
        }
        // underscores appear in Windows host names and webpki accepts them
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
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

    #[test]
    fn valid_names() {
        for ok in [
            "app.example.org",
            "localhost",
            "app.localhost",
            "*.example.org",
            "HC_App.corp.local",
            "x.org.",
        ] {
            assert!(is_valid_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "*.org",
            "a.*.org",
            "app..org",
            "-app.org",
            "app-.org",
            "app example.org",
            "10.0.0.1",
            "::1",
            "tablet.example.org:443",
            "*",
        ] {
            assert!(!is_valid_dns_name(bad), "{bad}");
        }
        assert!(!is_valid_dns_name(&format!("{}.org", "a".repeat(64))));
    }
}
