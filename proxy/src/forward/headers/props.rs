//! Property tests (the `host` fuzz target's header checks, on stable, in seconds): after
//! `sanitize_request` no identity header, no hop-by-hop header and no header named by
//! `Connection` remains, and every other header is kept exactly as it came; the
//! X-Forwarded-For of an untrusted peer is the peer alone.

use proptest::prelude::*;

use super::*;
use crate::invariants::check_sanitize;

/// Header names a request may carry: identity headers in several spellings, hop-by-hop
/// ones, ordinary ones, and random tokens.
fn name() -> impl Strategy<Value = String> {
    let known = proptest::sample::select(vec![
        "Forwarded",
        "X-Real-IP",
        "X-ARR-ClientCert",
        "X-Client-Cert",
        "x-client-cert-chain",
        "X_Client_Cert",
        "x_forwarded_for",
        "True-Client-IP",
        "Front-End-Https",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "SOAPAction",
        "Content-Type",
        "Cookie",
        "Authorization",
        "X-Secret",
    ]);
    prop_oneof![
        3 => known.prop_map(str::to_owned),
        1 => "[A-Za-z0-9_!#$%&'*+.^`|~-]{1,16}",
    ]
}

/// A `Connection` value naming some headers, with the spacing clients use.
fn connection_value() -> impl Strategy<Value = String> {
    proptest::collection::vec((name(), "[ \t]{0,2}"), 0..4).prop_map(|tokens| {
        tokens
            .iter()
            .map(|(t, pad)| format!("{pad}{t}{pad}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn request_headers() -> impl Strategy<Value = HeaderMap> {
    let pair = prop_oneof![
        3 => (name(), "[ -~]{0,20}"),
        1 => (Just("Connection".to_owned()), connection_value()),
    ];
    proptest::collection::vec(pair, 0..16).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                map.append(n, v);
            }
        }
        map
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sanitizing_removes_exactly_what_it_must(original in request_headers()) {
        check_sanitize(&original);
    }

    #[test]
    fn x_forwarded_for_is_the_peer_unless_trusted(
        mut headers in request_headers(),
        trusted in any::<bool>(),
    ) {
        sanitize_request(&mut headers);
        let sent = headers.get(&X_FORWARDED_FOR).cloned();
        let peer = HeaderValue::from_static("192.0.2.7");
        let host = HeaderValue::from_static("app.example.org");
        add_forwarded(&mut headers, &peer, &host, trusted);
        prop_assert_eq!(headers.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        let xff = &headers[&X_FORWARDED_FOR];
        match sent {
            Some(sent) if trusted => {
                prop_assert!(xff.as_bytes().starts_with(sent.as_bytes()));
                prop_assert!(xff.as_bytes().ends_with(b", 192.0.2.7"));
            }
            _ => prop_assert_eq!(xff, &peer),
        }
        prop_assert_eq!(&headers[&X_FORWARDED_PROTO], "https");
        prop_assert_eq!(&headers[&X_FORWARDED_HOST], &host);
    }
}
