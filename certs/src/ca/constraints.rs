//! The internal CA's X.509 name constraints: the DNS subtrees its root may issue for.
//!
//! The root's private key sits on disk in `state_dir`. Whoever reads it could issue
//! certificates that every client trusting `ca.pem` accepts; the constraints limit that to
//! the domains certfront was configured for (RFC 5280 4.2.1.10, enforced by rustls-webpki,
//! browsers, Windows, Java and Apple clients alike).
//!
//! The behaviour chosen for names added later:
//! - The subtrees are fixed when the root is created, from the internal hosts configured
//!   then: each name's parent domain (`app.hospital.example` -> `hospital.example`,
//!   `app.localhost` -> `localhost`), or the name itself when its parent would be a
//!   public top-level domain (`example.org` stays `example.org`, never `org`). So a host
//!   added later under the same domain (`tablet.hospital.example`) is issued as usual.
//! - A name outside every subtree is refused at start, `check` and reload, naming the
//!   subtrees and the fix (a new CA, which clients must import). certfront never re-signs
//!   its root with wider constraints by itself: clients hold their own copy of the root,
//!   with the old constraints, and would refuse the new leaf anyway.
//! - IP addresses are excluded altogether (the leaves carry DNS names only).
//! - A root made before constraints existed has none; it keeps working, with a warning.

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Single-label names that are reserved for private use and never delegated publicly
/// (RFC 6761 `localhost`, `test`; RFC 6762 `local`; ICANN's `internal`): a subtree there
/// covers only the administrator's own machines.
const PRIVATE_TLDS: &[&str] = &["localhost", "test", "local", "internal"];

/// The permitted DNS subtrees for a new root covering `names` (normalized, validated):
/// sorted, without duplicates or subtrees inside another.
pub(crate) fn subtrees_for(names: &[String]) -> Vec<String> {
    let mut subtrees: Vec<String> = names
        .iter()
        .map(|name| {
            let base = name.strip_prefix("*.").unwrap_or(name);
            match base.split_once('.') {
                Some((_, parent)) if parent.contains('.') || PRIVATE_TLDS.contains(&parent) => {
                    parent.to_owned()
                }
                _ => base.to_owned(),
            }
        })
        .collect();
    subtrees.sort();
    subtrees.dedup();
    let all = subtrees.clone();
    subtrees.retain(|s| !all.iter().any(|other| other != s && within(s, other)));
    subtrees
}

/// Whether the DNS name `name` (or wildcard `*.name`) lies in `subtree`: equal, or under it.
pub(crate) fn within(name: &str, subtree: &str) -> bool {
    name == subtree
        || name
            .strip_suffix(subtree)
            .is_some_and(|head| head.ends_with('.'))
}

/// The extension for a new root: `subtrees` permitted, every IPv4 and IPv6 address excluded.
pub(crate) fn extension(subtrees: &[String]) -> NameConstraints {
    NameConstraints {
        permitted_subtrees: subtrees
            .iter()
            .map(|s| GeneralSubtree::DnsName(s.clone()))
            .collect(),
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ],
    }
}

/// The permitted DNS subtrees of an existing root; `None` when it has no name constraints
/// (made by an older certfront) and so may issue for any name.
pub(crate) fn permitted(root: &X509Certificate<'_>) -> Option<Vec<String>> {
    let ext = root.name_constraints().ok().flatten()?;
    let permitted = ext.value.permitted_subtrees.as_ref()?;
    Some(
        permitted
            .iter()
            .filter_map(|s| match s.base {
                GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subtrees_are_the_parent_domains() {
        assert_eq!(
            subtrees_for(&names(&[
                "app.localhost",
                "tablet.localhost",
                "portal.localhost"
            ])),
            ["localhost"]
        );
        assert_eq!(
            subtrees_for(&names(&[
                "app.hospital.example",
                "*.clinic.hospital.example",
                "portal.example.org",
                "example.com",
                "intranet",
                "app.test",
            ])),
            [
                "example.com",
                "example.org",
                "hospital.example",
                "intranet",
                "test"
            ]
        );
        // never a public top-level domain
        assert_eq!(subtrees_for(&names(&["example.org"])), ["example.org"]);
        assert_eq!(subtrees_for(&names(&["*.example.org"])), ["example.org"]);
        assert!(subtrees_for(&[]).is_empty());
    }

    #[test]
    fn within_a_subtree() {
        assert!(within("localhost", "localhost"));
        assert!(within("app.localhost", "localhost"));
        assert!(within("a.b.example.org", "example.org"));
        assert!(within("*.example.org", "example.org"));
        assert!(!within("badexample.org", "example.org"));
        assert!(!within("example.org", "app.example.org"));
        assert!(!within("evil.com", "localhost"));
    }
}
