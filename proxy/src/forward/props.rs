//! Property tests (the `host` fuzz target's admission checks, on stable, in seconds): a
//! request is admitted to a host only when a reference router (exact names first, then a
//! one-label wildcard) sends its name there, and only for a name the request carries; the
//! redirect listener's `Location` is always `https://` + a served name, normalized.

use proptest::prelude::*;

use super::*;
use crate::invariants::{SITES, check_admission, reference_route, table};
use crate::redirect::location;

/// Host values near the served names: case, trailing dots, ports, other labels.
fn host_value() -> impl Strategy<Value = String> {
    let base = proptest::sample::select(vec![
        "admin.wild.test",
        "x.wild.test",
        "a.b.wild.test",
        "wild.test",
        ".wild.test",
        "app.example.org",
        "app.internal.example.org",
        "example.org",
        "10.0.0.1",
        "[::1]",
    ]);
    let case = any::<bool>();
    let dot = proptest::sample::select(vec!["", ".", ".."]);
    let port = proptest::sample::select(vec!["", ":443", ":8443", ":", ":99999", ":0443"]);
    prop_oneof![
        4 => (base, case, dot, port).prop_map(|(b, upper, dot, port)| {
            let b = if upper { b.to_ascii_uppercase() } else { b.to_owned() };
            format!("{b}{dot}{port}")
        }),
        1 => "[a-zA-Z0-9._:\\[\\]@*-]{0,30}",
    ]
}

fn request() -> impl Strategy<Value = (Method, Uri, Version, HeaderMap)> {
    let method = proptest::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::CONNECT,
        Method::TRACE,
        Method::OPTIONS,
    ]);
    let uri = prop_oneof![
        2 => Just("/".to_owned()),
        1 => host_value().prop_map(|h| format!("https://{h}/Service.svc")),
    ];
    let version = prop_oneof![Just(Version::HTTP_11), Just(Version::HTTP_2)];
    let hosts = proptest::collection::vec(host_value(), 0..3);
    (method, uri, version, hosts).prop_filter_map("a URI http accepts", |(m, u, v, hosts)| {
        let uri: Uri = u.parse().ok()?;
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(header::HOST, HeaderValue::from_str(&h).ok()?);
        }
        Some((m, uri, v, headers))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_request_reaches_only_the_host_its_name_selects(
        (method, uri, version, headers) in request(),
    ) {
        for (i, site) in table().sites().iter().enumerate() {
            prop_assert_eq!(&*site.fqdn, SITES[i][0]);
        }
        check_admission(&method, version, &uri, &headers);
    }

    #[test]
    fn redirects_go_to_a_served_name_only(host in host_value(), https_port in any::<u16>()) {
        let Ok(value) = HeaderValue::from_str(&host) else { return Ok(()) };
        let Some(loc) = location(|n| table().by_name(n).is_some(), Some(&value), "/x?y=1", https_port) else {
            return Ok(());
        };
        let parsed = parse_host(value.as_bytes()).unwrap();
        prop_assert!(!parsed.ip);
        prop_assert!(reference_route(parsed.name).is_some());
        let name = parsed.name.strip_suffix('.').unwrap_or(parsed.name).to_ascii_lowercase();
        let expected = match https_port {
            443 => format!("https://{name}/x?y=1"),
            p => format!("https://{name}:{p}/x?y=1"),
        };
        prop_assert_eq!(loc, expected);
    }
}
