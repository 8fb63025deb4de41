//! Checkout refuses an idle connection the upstream wrote to or closed, even before the
//! reactor has seen it (the bytes are written, then checkout runs without yielding).

use std::io::Write;
use std::net::TcpListener;

use super::*;

/// A pool holding one idle connection to a fresh loopback peer, and that peer.
async fn pool_with_one_idle() -> (Pool, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tcp = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (peer, _) = listener.accept().expect("accept");
    let io = UpstreamIo::Plain(tcp);
    let probe = io.probe().expect("probe");
    let (tx, conn) = http1::handshake(TokioIo::new(io)).await.expect("handshake");
    let pool = Pool::new(4, 4, Duration::from_secs(60), 1, Discards::detached());
    let permit = pool.permits.clone().try_acquire_owned().expect("permit");
    pool.checkin(H1::new(tx, conn, probe, permit));
    (pool, peer)
}

#[tokio::test]
async fn a_quiet_idle_connection_is_reused() {
    let (pool, _peer) = pool_with_one_idle().await;
    let h1 = pool.checkout().expect("the idle connection");
    assert!(h1.reused);
    for why in Discard::ALL {
        assert_eq!(pool.discards.get(why), 0, "{why:?}");
    }
}

#[tokio::test]
async fn bytes_sent_while_idle_discard_the_connection() {
    let (pool, mut peer) = pool_with_one_idle().await;
    // A whole response nobody asked for: a request sent now would read it as its own.
    peer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale")
        .expect("write");
    // No await between the write and the checkout: the reactor has not turned, so only
    // the kernel knows about these bytes.
    assert!(
        pool.checkout().is_none(),
        "reused a connection with unread bytes"
    );
    assert_eq!(pool.discards.get(Discard::UnreadBytes), 1);
    assert!(pool.checkout().is_none(), "the discarded one stays gone");
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_discarded() {
    let (pool, peer) = pool_with_one_idle().await;
    drop(peer);
    assert!(pool.checkout().is_none(), "reused a closed connection");
    assert_eq!(pool.discards.get(Discard::Closed), 1);
}
