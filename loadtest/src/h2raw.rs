//! Raw HTTP/2 frames, for the modes that send what a client library never would
//! (requests left unread, streams made to be reset).

/// The client's opening: the connection preface and an empty SETTINGS.
pub(crate) fn opening() -> Vec<u8> {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(4, 0, 0, &[]));
    bytes
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK, literals without Huffman: GET, https, `path`, `authority` (each < 127 bytes).
pub(crate) fn get_headers(path: &str, authority: &str) -> Vec<u8> {
    headers(0x82, path, authority)
}

/// [`get_headers`] for POST, with `content-length: 0`.
pub(crate) fn post_headers(path: &str, authority: &str) -> Vec<u8> {
    let mut h = headers(0x83, path, authority);
    h.extend_from_slice(&[0x5c, 1, b'0']);
    h
}

/// `method` is the static table's indexed field (0x82 GET, 0x83 POST).
fn headers(method: u8, path: &str, authority: &str) -> Vec<u8> {
    let mut h = vec![method, 0x87, 0x44, path.len() as u8];
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(&[0x41, authority.len() as u8]);
    h.extend_from_slice(authority.as_bytes());
    h
}
