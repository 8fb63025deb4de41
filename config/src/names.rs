//! DNS name syntax for `fqdn`, `aliases` and upstream hosts.
//!
//! Names are compared in `certfront_certs::names::normalize` form (re-exported
//! here). The syntax checks are the config's own: unlike the certs crate's yes/no
//! `is_valid_dns_name`, their messages say *why* a name is refused.

use std::net::IpAddr;

pub(crate) use certfront_certs::names::normalize;

/// Checks a normalized host name: labels of 1-63 letters, digits and `-` (no
/// leading or trailing `-`), at most 253 characters, optionally a leading `*.`
/// wildcard label. Returns why the name is refused.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    check_labels(name, true, false)
}

/// Like [`check_dns_name`] without wildcards, allowing `_`: upstream hosts are
/// resolved, never matched against certificates, and container or Windows host
/// names sometimes carry underscores that resolvers accept.
pub(crate) fn check_upstream_host_name(name: &str) -> Result<(), String> {
    check_labels(name, false, true)
}

fn check_labels(name: &str, allow_wildcard: bool, allow_underscore: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err("an IP address, not a DNS name (clients send no SNI for an IP)".into());
    }
    if name.len() > 253 {
        return Err(format!("{} characters, at most 253 allowed", name.len()));
    }
    let rest = match name.strip_prefix("*.") {
        Some(rest) if allow_wildcard => rest,
        Some(_) => return Err("a wildcard is not allowed here".into()),
        None => name,
    };
    if rest.is_empty() {
        return Err("a wildcard needs a domain after \"*.\"".into());
    }
    let labels: Vec<&str> = rest.split('.').collect();
    for label in &labels {
        check_label(label, allow_underscore)?;
    }
    // "10.0.0" or "1.2.3.999" look like addresses; a name ending in a numeric
    // label is refused the way URL parsers refuse it.
    if let Some(last) = labels.last()
        && last.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "last label \"{last}\" is all digits: neither a DNS name nor an IPv4 address"
        ));
    }
    Ok(())
}

fn check_label(label: &str, allow_underscore: bool) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label (two dots in a row, or a leading dot)".into());
    }
    if label == "*" {
        return Err("\"*\" is allowed only as the whole leftmost label".into());
    }
    if label.len() > 63 {
        return Err(format!(
            "label \"{label}\" has {} characters, at most 63 allowed",
            label.len()
        ));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || (allow_underscore && b == b'_');
    if let Some(bad) = label.chars().find(|c| !c.is_ascii() || !allowed(*c as u8)) {
        let hint = if bad.is_ascii() {
            ""
        } else {
            " (write international names in their xn-- form)"
        };
        let what = if allow_underscore {
            "letters, digits, \"-\" and \"_\""
        } else {
            "letters, digits and \"-\""
        };
        return Err(format!(
            "label \"{label}\" contains {bad:?}: only {what} are allowed{hint}"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label \"{label}\" starts or ends with \"-\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_trailing_dot() {
        assert_eq!(normalize("App.Example.ORG."), "app.example.org");
        assert_eq!(normalize("app.example.org"), "app.example.org");
    }

    #[test]
    fn accepts_usual_names() {
        for name in [
            "app.example.org",
            "*.example.org",
            "portal",
            "xn--bcher-kva.example",
            "a-1.b2",
        ] {
            assert_eq!(check_dns_name(name), Ok(()), "{name}");
        }
        let long = format!("{}.example.org", "a".repeat(63));
        assert_eq!(check_dns_name(&long), Ok(()));
    }

    #[test]
    fn refuses_bad_names() {
        let cases = [
            ("", "empty name"),
            ("app..example.org", "empty label"),
            (".example.org", "empty label"),
            ("app_1.example.org", "contains '_'"),
            ("-app.example.org", "starts or ends with \"-\""),
            ("app-.example.org", "starts or ends with \"-\""),
            ("a.*.example.org", "whole leftmost label"),
            ("*", "\"*\" is allowed only"),
            ("*.", "needs a domain"),
            ("f*o.example.org", "contains '*'"),
            ("10.0.0.1", "an IP address"),
            ("::1", "an IP address"),
            ("10.0.0", "all digits"),
            ("bücher.example", "xn--"),
            ("app example.org", "contains ' '"),
        ];
        for (name, expected) in cases {
            let err = check_dns_name(name).unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
        }
        let label = "a".repeat(64);
        assert!(check_dns_name(&label).unwrap_err().contains("at most 63"));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(check_dns_name(&long).unwrap_err().contains("at most 253"));
    }

    #[test]
    fn upstream_names_allow_underscore_not_wildcard() {
        assert_eq!(check_upstream_host_name("iis_01.corp"), Ok(()));
        assert!(
            check_upstream_host_name("*.corp")
                .unwrap_err()
                .contains("wildcard")
        );
    }
}
