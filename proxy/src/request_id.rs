//! `X-Request-Id`: one per request, so a user's screenshot of an error page, the access-log
//! line and the upstream's own log can be matched. A client's id is kept only when the
//! peer is a trusted proxy (it already chose one); anyone else gets a new one.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::HeaderValue;
use http::header::HeaderName;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a trusted proxy; longer ones are replaced.
const MAX_LEN: usize = 200;

/// Ids `<48 random bits in hex>-<counter>`: unique across restarts and instances without
/// a system call or a lock per request.
pub(crate) struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> RequestIds {
        let mut bytes = [0u8; 8];
        // Without randomness (never seen) the ids are still unique within this process.
        let _ = aws_lc_rs::rand::fill(&mut bytes[2..]);
        RequestIds {
            prefix: u64::from_be_bytes(bytes),
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn generate(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let text = format!("{:012x}-{n}", self.prefix);
        let mut id =
            HeaderValue::from_maybe_shared(Bytes::from(text)).expect("hex digits and a dash");
        never_indexed(&mut id);
        id
    }

    /// The id for a request: the client's when `trusted` and well formed, else a new one.
    pub(crate) fn for_request(&self, sent: Option<&HeaderValue>, trusted: bool) -> HeaderValue {
        match sent {
            Some(v) if trusted && acceptable(v) => {
                let mut id = v.clone();
                never_indexed(&mut id);
                id
            }
            _ => self.generate(),
        }
    }
}

/// Marks an id so that HPACK (HTTP/2 responses, HTTP/2 upstreams) sends it as a literal
/// that is never indexed. Every id is new, so indexing one only evicts entries that
/// would be reused (`server`, `content-type`), and the encoder then walks a chain of
/// ~60 dead ids in its table for every response: marking them cut an HTTP/2 request from
/// 66,550 to 62,116 instructions (callgrind, issue 18's closing note).
fn never_indexed(id: &mut HeaderValue) {
    id.set_sensitive(true);
}

/// 1 to 200 visible ASCII characters: what fits in a log field and a screenshot.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| (0x21..0x7f).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_differ_and_share_the_process_prefix() {
        let ids = RequestIds::new();
        let (a, b) = (ids.generate(), ids.generate());
        assert_ne!(a, b);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.split_once('-').unwrap().0, b.split_once('-').unwrap().0);
        assert_eq!(a.split_once('-').unwrap().0.len(), 12);
    }

    #[test]
    fn a_client_id_is_kept_only_from_a_trusted_peer_and_only_when_sane() {
        let ids = RequestIds::new();
        let sent = HeaderValue::from_static("lb-7f3a");
        assert_eq!(ids.for_request(Some(&sent), true), sent);
        assert_ne!(ids.for_request(Some(&sent), false), sent);
        let spaced = HeaderValue::from_static("a b");
        assert_ne!(ids.for_request(Some(&spaced), true), spaced);
        let long = HeaderValue::from_str(&"x".repeat(201)).unwrap();
        assert_ne!(ids.for_request(Some(&long), true), long);
        assert_ne!(ids.for_request(None, true).len(), 0);
    }

    /// HPACK must never put an id in its dynamic table (see `never_indexed`).
    #[test]
    fn every_id_is_marked_never_indexed() {
        let ids = RequestIds::new();
        assert!(ids.generate().is_sensitive());
        let sent = HeaderValue::from_static("lb-7f3a");
        assert!(ids.for_request(Some(&sent), true).is_sensitive());
        assert!(ids.for_request(Some(&sent), false).is_sensitive());
    }
}
