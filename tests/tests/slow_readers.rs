//! Clients that stop reading (`limits.send_timeout_seconds`): an HTTP/1.1 client that
//! reads nothing, and an HTTP/2 client that reads and answers PINGs but never opens its
//! flow-control window, are cut off after the send timeout, counted, and the upstream
//! connection behind their response is closed, not pooled half-read.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{client_config, connect};
use crate::support::pki::TestCa;
use crate::support::{eventually, start};

struct Setup {
    _dir: tempfile::TempDir,
    ca: TestCa,
    backend: Backend,
    running: certfront::Running,
}

/// `app.test` forwarding to a backend, with a 1 s send timeout and long other limits (so
/// only the send timeout can end what these tests hold).
async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = TestCa::new("slow readers root");
    std::fs::write(d.join("root.pem"), &ca.pem).expect("root");
    ca.leaf(&["app.test"]).write(d, "app");
    let backend = Backend::start("iis").await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ntrust = [\"root.pem\"]\n\
         [limits]\nsend_timeout_seconds = 1\nidle_timeout_seconds = 2\nbody_timeout_seconds = 600\n\
         [[host]]\nfqdn = \"app.test\"\ncert = \"app.pem\"\nkey = \"app-key.pem\"\nupstream = \"{}\"\n",
        backend.url()
    );
    let running = start(&toml, d).await;
    Setup {
        _dir: dir,
        ca,
        backend,
        running,
    }
}

fn send_timeouts(s: &Setup, kind: &str) -> u64 {
    s.running
        .app
        .metrics
        .send_timeouts
        .with_label_values(&["app.test", kind])
        .get()
}

fn open(s: &Setup) -> i64 {
    s.running
        .app
        .metrics
        .connections_open
        .with_label_values(&["127.0.0.1:0"])
        .get()
}

/// Reads until the peer closes (true) or `limit` bytes or 10 s pass (false).
async fn drains_to_close<S: AsyncRead + Unpin>(io: &mut S, limit: u64) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    tokio::time::timeout(Duration::from_secs(10), async {
        while total < limit {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => total += n as u64,
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// An HTTP/1.1 connection to app.test that has asked for a body of `bytes`.
async fn request_big(
    s: &Setup,
    bytes: u64,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = connect(
        s.running.tls_addrs[0],
        "app.test",
        client_config(&[&s.ca.der], &[b"http/1.1"]),
    )
    .await
    .expect("tls");
    tls.write_all(format!("GET /big?bytes={bytes} HTTP/1.1\r\nHost: app.test\r\n\r\n").as_bytes())
        .await
        .expect("request");
    tls
}

/// 64 MiB is far more than every buffer between the backend and the client can hold.
const BIG: u64 = 64 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_that_stops_reading_is_closed_and_its_upstream_released() {
    let s = setup().await;
    let mut tls = request_big(&s, BIG).await;
    let started = Instant::now();
    // Read nothing: the buffers fill, certfront's write blocks, the send timeout runs.
    assert!(
        eventually(Duration::from_secs(15), || send_timeouts(&s, "write") == 1).await,
        "no send timeout counted"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "cut off early: {took:?}");
    assert!(
        eventually(Duration::from_secs(10), || s
            .backend
            .ended
            .load(Ordering::SeqCst)
            == 1)
        .await,
        "the upstream connection behind the response is still open"
    );
    assert!(
        eventually(Duration::from_secs(10), || open(&s) == 0).await,
        "the client connection is still counted open"
    );
    // What was in flight reaches the client, then the close: far less than the body.
    assert!(
        drains_to_close(&mut tls, BIG).await,
        "client connection not closed"
    );
    assert_eq!(send_timeouts(&s, "flow_control"), 0);
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK: :method GET, :scheme https, :path (literal, indexed name), :authority app.test.
fn get_headers(path: &str) -> Vec<u8> {
    let mut h = vec![0x82, 0x87, 0x44, path.len() as u8];
    h.extend_from_slice(path.as_bytes());
    h.extend_from_slice(&[0x41, 8]);
    h.extend_from_slice(b"app.test");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_never_opens_its_window_is_closed_whatever_pings_it_answers() {
    let s = setup().await;
    let tls = connect(
        s.running.tls_addrs[0],
        "app.test",
        client_config(&[&s.ca.der], &[b"h2"]),
    )
    .await
    .expect("tls");
    let (mut read, mut write) = tokio::io::split(tls);
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(4, 0, 0, &[]));
    for stream in [1u32, 3] {
        hello.extend(frame(
            1,
            0x4 | 0x1,
            stream,
            &get_headers(&format!("/big?bytes={BIG}")),
        ));
    }
    write.write_all(&hello).await.expect("requests");
    let started = Instant::now();
    // Read every frame and answer every PING and SETTINGS, but never send WINDOW_UPDATE.
    let (mut data, mut pings) = (0usize, 0usize);
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        let mut head = [0u8; 9];
        loop {
            if read.read_exact(&mut head).await.is_err() {
                return "closed";
            }
            let len =
                (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            if read.read_exact(&mut payload).await.is_err() {
                return "closed";
            }
            match (head[3], head[4] & 1) {
                (0, _) => data += len,
                (4, 0) => write
                    .write_all(&frame(4, 1, 0, &[]))
                    .await
                    .expect("settings ack"),
                (6, 0) => {
                    pings += 1;
                    write
                        .write_all(&frame(6, 1, 0, &payload))
                        .await
                        .expect("ping ack");
                }
                (7, _) => return "goaway",
                _ => {}
            }
        }
    })
    .await
    .expect("the stalled connection was not closed within 15 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "cut off early: {took:?} ({outcome})"
    );
    // The default window lets 64 KiB through, for both streams together.
    assert!(
        data <= 65_535,
        "{data} bytes of DATA beyond the client's window"
    );
    assert_eq!(send_timeouts(&s, "flow_control"), 1, "pings: {pings}");
    assert!(
        eventually(Duration::from_secs(10), || s
            .backend
            .ended
            .load(Ordering::SeqCst)
            >= 2)
        .await,
        "the upstream connections behind the responses are still open ({} ended)",
        s.backend.ended.load(Ordering::SeqCst)
    );
    assert!(
        eventually(Duration::from_secs(10), || open(&s) == 0).await,
        "the client connection is still counted open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_slowly_but_steadily_is_not_cut_off() {
    let s = setup().await;
    let size: u64 = 4 << 20;
    let mut tls = request_big(&s, size).await;
    // 256 KiB every 300 ms: slow, but never a second without progress.
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let started = Instant::now();
    while total < size && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // One read returns at most a TLS record (16 KiB): read the whole 256 KiB.
        let want = buf
            .len()
            .min(usize::try_from(size - total).unwrap_or(usize::MAX));
        let mut got = 0;
        while got < want {
            let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf[got..want]))
                .await
                .expect("data in time")
                .expect("read");
            assert!(n > 0, "closed after {} bytes", total + got as u64);
            got += n;
        }
        total += got as u64;
    }
    assert!(total >= size, "only {total} bytes");
    assert_eq!(send_timeouts(&s, "write"), 0);
}
