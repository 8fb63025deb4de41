//! A raw HTTP/2 client, frame by frame, for what a well-behaved client library never sends
//! (floods, self-dependencies, broken header blocks).

use tokio::io::{AsyncRead, AsyncReadExt};

/// An HTTP/2 frame: 24-bit length, type, flags, stream id.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HPACK: :method GET, :scheme https, :path /, :authority app.test (literal).
pub(crate) const GET_HEADERS: &[u8] = &[
    0x82, 0x87, 0x84, 0x41, 8, b'a', b'p', b'p', b'.', b't', b'e', b's', b't',
];

/// HPACK: :method GET, :scheme https, :path `path` (literal, indexed name), :authority
/// app.test.
pub(crate) fn get_headers(path: &str) -> Vec<u8> {
    let mut h = vec![0x82, 0x87, 0x44, path.len() as u8];
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(&[0x41, 8]);
    h.extend_from_slice(b"app.test");
    h
}

/// One frame read whole: type, flags, stream id, payload. `None` when the connection ends.
pub(crate) struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub(crate) async fn read_frame<S: AsyncRead + Unpin>(io: &mut S) -> Option<Frame> {
    let mut head = [0u8; 9];
    io.read_exact(&mut head).await.ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// HPACK: :method POST, :scheme https, :path /, :authority app.test, content-length: 0.
pub(crate) const POST_EMPTY_HEADERS: &[u8] = &[
    0x83, 0x87, 0x84, 0x41, 8, b'a', b'p', b'p', b'.', b't', b'e', b's', b't', 0x5c, 1, b'0',
];

/// Reads frames until GOAWAY (returns its error code) or the connection ends (`None`).
pub(crate) async fn goaway<S: AsyncRead + Unpin>(io: &mut S) -> Option<u32> {
    let mut head = [0u8; 9];
    loop {
        io.read_exact(&mut head).await.ok()?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await.ok()?;
        if head[3] == 7 && payload.len() >= 8 {
            return Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
        }
    }
}
