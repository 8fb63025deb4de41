//! DNS names for `fqdn`, `aliases` and upstream hosts: compared in
//! `certfront_certs::names::normalize` form, checked by the certs crate's one validator
//! (`certs csr` and the internal CA use the same, so the config never accepts a name
//! they would refuse).

use certfront_certs::names::{Allow, check_dns_name as check};

pub(crate) use certfront_certs::names::normalize;

/// Checks a normalized host name (wildcard allowed, underscore not); returns why it is refused.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    check(name, Allow::HOST).map_err(|e| e.to_string())
}

/// Checks a normalized upstream host name (underscore allowed, wildcard not).
pub(crate) fn check_upstream_host_name(name: &str) -> Result<(), String> {
    check(name, Allow::UPSTREAM).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_trailing_dot() {
        assert_eq!(normalize("App.Example.ORG."), "app.example.org");
        assert_eq!(normalize("app.example.org"), "app.example.org");
    }

    /// The cases the review found the two old validators disagreeing on.
    #[test]
    fn agrees_with_the_certs_crate() {
        assert!(
            check_dns_name("*.org")
                .unwrap_err()
                .contains("at least two labels")
        );
        assert!(
            check_dns_name("hc_app.corp.local")
                .unwrap_err()
                .contains("'_'")
        );
        assert!(check_dns_name("10.0.0").unwrap_err().contains("all digits"));
        assert_eq!(check_dns_name("*.example.org"), Ok(()));
        assert!(check_dns_name(&normalize("app.example.org..")).is_err());
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
