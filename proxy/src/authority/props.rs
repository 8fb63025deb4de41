//! Property tests (the `host` fuzz target's checks, on stable, in seconds): any bytes give a
//! host or an error, never a panic; an accepted host is the input split, nothing added or
//! decoded; and every well-formed host is parsed to exactly the parts it was built from.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// The shared check, on a parsed host.
fn check_split(data: &[u8], host: RequestHost<'_>) {
    crate::invariants::check_split(data, host.name, host.port, host.ip);
}

/// What a valid host is made of, and the text it is written as.
#[derive(Clone, Debug)]
enum Name {
    Dns(Vec<String>, bool),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => (proptest::collection::vec("[a-zA-Z0-9_-]{1,20}", 1..6), any::<bool>())
            .prop_map(|(labels, dot)| Name::Dns(labels, dot)),
        1 => any::<Ipv4Addr>().prop_map(Name::V4),
        1 => any::<Ipv6Addr>().prop_map(Name::V6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(host) = parse_host(&data) {
            check_split(&data, host);
        }
    }

    #[test]
    fn host_ish_text_never_panics(text in "[a-zA-Z0-9._:\\[\\]%@*-]{0,40}") {
        if let Ok(host) = parse_host(text.as_bytes()) {
            check_split(text.as_bytes(), host);
        }
    }

    /// Hosts one slip away from valid: doubled or missing dots, stray brackets and colons.
    #[test]
    fn nearly_valid_hosts_are_split_or_refused(
        labels in proptest::collection::vec(("[a-zA-Z0-9_-]{1,8}", proptest::sample::select(vec![".", "..", ""])), 1..4),
        prefix in proptest::sample::select(vec!["", ".", "[", ":"]),
        suffix in proptest::sample::select(vec!["", ".", "..", ":", ":443", ".:443", "..:443", "]", "]:1"]),
    ) {
        let mut text = prefix.to_owned();
        for (i, (label, dot)) in labels.iter().enumerate() {
            if i > 0 {
                text.push_str(dot);
            }
            text.push_str(label);
        }
        text.push_str(suffix);
        if let Ok(host) = parse_host(text.as_bytes()) {
            check_split(text.as_bytes(), host);
        }
    }

    /// The reference: a host written from known parts parses back to those parts.
    #[test]
    fn valid_hosts_parse_to_their_parts(name in name(), port in proptest::option::of(any::<u16>())) {
        let (written, expected, ip) = match &name {
            Name::Dns(labels, dot) => {
                let joined = labels.join(".");
                let written = if *dot { format!("{joined}.") } else { joined };
                // A name of four numeric labels is an IPv4 address.
                let ip = written.parse::<Ipv4Addr>().is_ok();
                (written.clone(), written, ip)
            }
            Name::V4(a) => (a.to_string(), a.to_string(), true),
            Name::V6(a) => (format!("[{a}]"), a.to_string(), true),
        };
        let text = match port {
            Some(p) => format!("{written}:{p}"),
            None => written,
        };
        let host = parse_host(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        prop_assert_eq!(host.name, expected.as_str());
        prop_assert_eq!(host.port, port);
        prop_assert_eq!(host.ip, ip);
    }

    /// One character no host has, anywhere in a valid host, refuses it.
    #[test]
    fn a_foreign_character_refuses(
        labels in proptest::collection::vec("[a-z0-9]{1,10}", 1..4),
        bad in proptest::sample::select(vec!['@', '/', ' ', '%', '*', '\\', '\r', '\n', '\0', '\u{e9}', '!', '?', '#']),
        at in any::<prop::sample::Index>(),
    ) {
        let mut text: Vec<char> = labels.join(".").chars().collect();
        let i = at.index(text.len() + 1);
        text.insert(i, bad);
        let text: String = text.into_iter().collect();
        prop_assert!(parse_host(text.as_bytes()).is_err(), "{:?} accepted", text);
    }
}
