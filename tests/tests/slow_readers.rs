//! Clients that stop reading (`limits.send_timeout_seconds`): an HTTP/1.1 client that
//! reads nothing, and an HTTP/2 client that reads and answers PINGs but never opens its
//! flow-control window, are cut off after the send timeout, counted, and the upstream
//! connection behind their response is closed, not pooled half-read. An HTTP/2 client that
//! keeps one stream's window shut while its other streams stay busy loses that stream
//! (RST_STREAM), not its connection.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::support::backend::Backend;
use crate::support::client::{client_config, connect};
use crate::support::h2raw::{self, frame, get_headers};
use crate::support::{OneHost, eventually};

type Setup = OneHost;

/// `app.test` forwarding to a backend, with a 1 s send timeout and long other limits (so
/// only the send timeout can end what these tests hold).
async fn setup() -> Setup {
    OneHost::start(
        "slow readers root",
        "send_timeout_seconds = 1\nidle_timeout_seconds = 2\nbody_timeout_seconds = 600",
    )
    .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_never_opens_its_window_is_closed_whatever_pings_it_answers() {
    let s = setup().await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let (mut read, mut write) = tokio::io::split(tls);
    let big = format!("/big?bytes={BIG}");
    write
        .write_all(&h2raw::hello(None, &[&big, &big]))
        .await
        .expect("requests");
    let started = Instant::now();
    // Read every frame and answer every PING and SETTINGS, but never send WINDOW_UPDATE.
    let (mut data, mut pings) = (0usize, 0usize);
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let Some(f) = h2raw::read_frame(&mut read).await else {
                return "closed";
            };
            if let Some(ack) = h2raw::ack(&f) {
                pings += usize::from(f.kind == 6);
                write.write_all(&ack).await.expect("ack");
            }
            match f.kind {
                0 => data += f.payload.len(),
                7 => return "goaway",
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

/// What the client of [`one_stalled_stream_among_busy_ones_is_reset_and_the_rest_served`]
/// saw.
#[derive(Debug, Default)]
struct Seen {
    /// DATA bytes on stream 1, the stalled download.
    stalled_data: usize,
    /// When stream 1 got RST_STREAM (since the request) and its error code.
    reset: Option<(Duration, u32)>,
    /// Requests on other streams answered whole, before and after the reset.
    served_before: usize,
    served_after: usize,
    /// A request on another stream not answered within 5 s, or reset.
    failed: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stalled_stream_among_busy_ones_is_reset_and_the_rest_served() {
    let s = setup().await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let (mut read, mut write) = tokio::io::split(tls);
    // The connection window is opened wide at once, so only stream 1's own window (the
    // default 65,535 bytes, never opened) holds its download back.
    let hello = h2raw::hello(Some(0x4000_0000), &[&format!("/big?bytes={BIG}")]);
    write.write_all(&hello).await.expect("requests");
    let started = Instant::now();
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel(64);
    let reader = tokio::spawn(async move {
        while let Some(f) = h2raw::read_frame(&mut read).await {
            if frames_tx.send(f).await.is_err() {
                break;
            }
        }
    });
    // Every 100 ms a request on a new stream, one at a time; 15 more after the reset.
    let mut seen = Seen::default();
    let mut next_stream = 3u32;
    let mut pending: Option<(u32, Instant)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = started + Duration::from_secs(20);
    while Instant::now() < deadline && seen.failed.is_none() && seen.served_after < 15 {
        tokio::select! {
            f = frames.recv() => {
                let Some(f) = f else {
                    seen.failed = Some("connection closed".into());
                    break;
                };
                if let Some(ack) = h2raw::ack(&f) {
                    write.write_all(&ack).await.expect("ack");
                }
                match (f.kind, f.stream) {
                    (0, 1) => seen.stalled_data += f.payload.len(),
                    (3, 1) => {
                        let code = u32::from_be_bytes(f.payload[..4].try_into().expect("RST_STREAM code"));
                        seen.reset = Some((started.elapsed(), code));
                    }
                    (3, id) => seen.failed = Some(format!("stream {id} reset")),
                    (7, _) => seen.failed = Some("GOAWAY".into()),
                    (0 | 1, id) if f.flags & 1 == 1 && pending.is_some_and(|(p, _)| p == id) => {
                        pending = None;
                        if seen.reset.is_some() {
                            seen.served_after += 1;
                        } else {
                            seen.served_before += 1;
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => match pending {
                Some((id, since)) if since.elapsed() > Duration::from_secs(5) => {
                    seen.failed = Some(format!("stream {id} not answered in 5 s"));
                }
                Some(_) => {}
                None => {
                    write
                        .write_all(&frame(1, 0x4 | 0x1, next_stream, &get_headers("/echo")))
                        .await
                        .expect("request");
                    pending = Some((next_stream, Instant::now()));
                    next_stream += 2;
                }
            },
        }
    }
    reader.abort();
    let Some((took, code)) = seen.reset else {
        panic!("stream 1 was never reset: {seen:?}");
    };
    assert_eq!(code, 0x8, "RST_STREAM CANCEL expected: {seen:?}");
    assert!(took >= Duration::from_secs(1), "reset early: {seen:?}");
    assert!(seen.failed.is_none(), "{seen:?}");
    assert!(
        seen.stalled_data <= 65_535,
        "DATA beyond stream 1's window: {seen:?}"
    );
    // The other streams were served all along (the reset came after at least 1 s of
    // requests, one at a time, at most every 100 ms: 6 on a quiet machine), and after it.
    assert!(seen.served_before >= 2, "{seen:?}");
    assert_eq!(seen.served_after, 15, "{seen:?}");
    assert_eq!(send_timeouts(&s, "stream"), 1, "{seen:?}");
    assert_eq!(
        send_timeouts(&s, "flow_control"),
        0,
        "the connection counted as stalled"
    );
    assert!(
        eventually(Duration::from_secs(10), || s
            .backend
            .cut
            .load(Ordering::SeqCst)
            == 1)
        .await,
        "the upstream connection behind stream 1 is still open"
    );
    assert_eq!(open(&s), 1, "the client connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_whose_window_opens_slowly_but_steadily_is_not_reset() {
    let s = setup().await;
    let tls = h2raw::connect_app(s.running.tls_addrs[0], &s.ca.der).await;
    let (mut read, mut write) = tokio::io::split(tls);
    let hello = h2raw::hello(Some(0x4000_0000), &[&format!("/big?bytes={BIG}")]);
    write.write_all(&hello).await.expect("request");
    // 32 KiB more window for stream 1 every 300 ms, for 3.5 s: the stream waits on its
    // window most of the time, but never a whole second (the send timeout).
    let (mut data, mut reset) = (0usize, None);
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    let end = tokio::time::Instant::now() + Duration::from_millis(3_500);
    loop {
        tokio::select! {
            f = h2raw::read_frame(&mut read) => {
                let f = f.expect("connection open");
                if let Some(ack) = h2raw::ack(&f) {
                    write.write_all(&ack).await.expect("ack");
                }
                match (f.kind, f.stream) {
                    (0, 1) => data += f.payload.len(),
                    (3, 1) => reset = Some(f.payload),
                    (7, _) => panic!("GOAWAY after {data} bytes (stream 1 reset: {reset:?})"),
                    _ => {}
                }
            }
            _ = tick.tick() => {
                write
                    .write_all(&frame(8, 0, 1, &(32u32 << 10).to_be_bytes()))
                    .await
                    .expect("window update");
            }
            _ = tokio::time::sleep_until(end) => break,
        }
    }
    assert_eq!(reset, None, "stream 1 was reset after {data} bytes");
    // The first 64 KiB, then about 32 KiB per window update (11 of them).
    assert!(data > 65_535 + 8 * 32 * 1024, "only {data} bytes");
    assert_eq!(send_timeouts(&s, "stream"), 0);
    assert_eq!(send_timeouts(&s, "flow_control"), 0);
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

/// The certfront process's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Memory per stalled HTTP/2 client is bounded (the target: 256 KiB): 100 clients
/// each ask for a 64 MiB body, half of them read the socket but never open their window,
/// half never read at all. With the default send timeout (60 s) they are all still held
/// when the real certfront binary's RSS is read, 3 s after the last one settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_stalled_http2_client_is_bounded() {
    const CLIENTS: usize = 100;
    const LIMIT_KIB: u64 = 256;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let backend = Backend::start("iis").await;
    let (ca, toml) = OneHost::files(d, "stalled memory root", &backend.url(), "");
    std::fs::write(d.join("certfront.toml"), toml).expect("config");
    let proc = crate::support::Process::spawn(&d.join("certfront.toml"), d);
    let pid = proc.child.id();
    let config = client_config(&[&ca.der], &[b"h2"]);
    // One whole small response first, so what a first request allocates is in the baseline.
    let mut warm = connect(proc.addr, "app.test", config.clone())
        .await
        .expect("tls");
    warm.write_all(&h2raw::hello(None, &["/big?bytes=1000"]))
        .await
        .expect("warm-up");
    let whole = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(f) = h2raw::read_frame(&mut warm).await {
            if f.kind == 0 && f.stream == 1 && f.flags & 1 == 1 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(whole, Ok(true), "the warm-up response did not arrive whole");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);

    let mut held = Vec::new();
    let mut readers = Vec::new();
    for i in 0..CLIENTS {
        let mut tls = connect(proc.addr, "app.test", config.clone())
            .await
            .expect("tls");
        tls.write_all(&h2raw::hello(None, &[&format!("/big?bytes={BIG}")]))
            .await
            .expect("request");
        if i % 2 == 0 {
            // Reads everything, never sends WINDOW_UPDATE: certfront stops at the window.
            let (mut read, write) = tokio::io::split(tls);
            readers.push(tokio::spawn(async move {
                let _write = write;
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }));
        } else {
            // Reads nothing: the kernel's buffers fill, then certfront's writes block.
            held.push(tls);
        }
    }
    // Let every response reach its stall (bounded: the backend streams fast on loopback).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let per_client = after.saturating_sub(before) / CLIENTS as u64;
    eprintln!(
        "stalled HTTP/2 clients: RSS {before} KiB -> {after} KiB for {CLIENTS}: {per_client} KiB each"
    );
    assert!(
        per_client <= LIMIT_KIB,
        "{per_client} KiB per stalled client (RSS {before} -> {after} KiB), more than {LIMIT_KIB}"
    );
    for r in readers {
        r.abort();
    }
    drop(held);
    drop(proc);
}
