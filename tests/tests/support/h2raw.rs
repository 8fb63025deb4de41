//! A raw HTTP/2 client, frame by frame, for what a well-behaved client library never sends
//! (floods, self-dependencies, broken header blocks).

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A TLS connection to `app.test` at `addr` that negotiated HTTP/2 (ALPN `h2`), the
/// server's certificate checked against `root`: the raw client's transport.
pub(crate) async fn connect_app(
    addr: std::net::SocketAddr,
    root: &CertificateDer<'static>,
) -> TlsStream<TcpStream> {
    super::client::connect(
        addr,
        "app.test",
        super::client::client_config(&[root], &[b"h2"]),
    )
    .await
    .expect("tls")
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A client's opening: the preface and an empty SETTINGS.
pub(crate) fn opening() -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(4, 0, 0, &[]));
    bytes
}

/// [`opening`], then a WINDOW_UPDATE of `connection_window` on the connection when given,
/// then a GET for each path (headers that end the stream) on streams 1, 3, 5, ...
pub(crate) fn hello(connection_window: Option<u32>, paths: &[&str]) -> Vec<u8> {
    let mut bytes = opening();
    if let Some(increment) = connection_window {
        bytes.extend(frame(8, 0, 0, &increment.to_be_bytes()));
    }
    for (stream, path) in (1u32..).step_by(2).zip(paths) {
        bytes.extend(frame(1, 0x4 | 0x1, stream, &get_headers(path)));
    }
    bytes
}

/// What a client must answer to `f`: the ACK of a SETTINGS or of a PING, when it is one.
pub(crate) fn ack(f: &Frame) -> Option<Vec<u8>> {
    match (f.kind, f.flags & 1, f.stream) {
        (4, 0, 0) => Some(frame(4, 1, 0, &[])),
        (6, 0, 0) => Some(frame(6, 1, 0, &f.payload)),
        _ => None,
    }
}

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
