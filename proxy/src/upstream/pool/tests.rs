//! Checkout refuses an idle connection the upstream wrote to or closed, even before the
//! reactor has seen it (the bytes are written, then checkout runs without yielding); the
//! idle timeout, the idle cap and the connection cap hold.

use std::io::Write;
use std::net::TcpListener;

use super::*;

/// A fresh connection to a new loopback peer, under one of `pool`'s permits, and that
/// peer.
async fn open(pool: &Pool) -> (H1, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tcp = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (peer, _) = listener.accept().expect("accept");
    let io = UpstreamIo::Plain(tcp);
    let probe = io.probe().expect("probe");
    let (tx, conn) = http1::handshake(TokioIo::new(io)).await.expect("handshake");
    let permit = pool.permits.clone().try_acquire_owned().expect("permit");
    (H1::new(tx, conn, probe, permit), peer)
}

/// A pool holding one idle connection to a fresh loopback peer, and that peer.
async fn pool_with_one_idle() -> (Arc<Pool>, std::net::TcpStream) {
    let pool = Pool::new(4, 4, Duration::from_secs(60), 1, Discards::detached());
    let (h1, peer) = open(&pool).await;
    pool.checkin(h1);
    (pool, peer)
}

/// Whether the peer sees its connection closed (EOF) within `limit`.
fn closed_within(peer: &std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    peer.set_read_timeout(Some(limit)).expect("timeout");
    let mut byte = [0u8; 1];
    matches!((&*peer).read(&mut byte), Ok(0))
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

#[tokio::test]
async fn connections_idle_for_the_timeout_are_closed_without_traffic() {
    let pool = Pool::new(8, 8, Duration::from_millis(200), 1, Discards::detached());
    let mut peers = Vec::new();
    for _ in 0..3 {
        let (h1, peer) = open(&pool).await;
        pool.checkin(h1);
        peers.push(peer);
    }
    assert_eq!(pool.permits.available_permits(), 5);
    // No checkout, no checkin: only the sweeper can close them.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let peers = tokio::task::spawn_blocking(move || {
        peers
            .iter()
            .all(|p| closed_within(p, Duration::from_secs(5)))
    });
    assert!(
        peers.await.expect("join"),
        "an idle connection outlived the idle timeout"
    );
    assert_eq!(pool.permits.available_permits(), 8, "permits come back");
}

#[tokio::test]
async fn the_idle_cap_is_for_the_whole_pool() {
    // Two workers' shards, a cap of 2 idle in all (below the connection cap, so counted).
    let pool = Pool::new(8, 2, Duration::from_secs(60), 2, Discards::detached());
    let mut peers = Vec::new();
    for _ in 0..4 {
        let (h1, peer) = open(&pool).await;
        pool.checkin(h1);
        peers.push(peer);
    }
    assert_eq!(
        pool.permits.available_permits(),
        6,
        "two idle are kept, two closed"
    );
}

#[tokio::test]
async fn at_the_connection_cap_an_idle_connection_gives_way() {
    let pool = Pool::new(2, 2, Duration::from_secs(60), 2, Discards::detached());
    let (a, _pa) = open(&pool).await;
    let (b, _pb) = open(&pool).await;
    pool.checkin(a);
    pool.checkin(b);
    assert_eq!(pool.permits.available_permits(), 0);
    assert!(pool.evict_idle());
    assert_eq!(
        pool.permits.available_permits(),
        1,
        "the evicted one's permit is free"
    );
    assert!(pool.evict_idle());
    assert!(!pool.evict_idle(), "nothing left to evict");
    assert_eq!(pool.permits.available_permits(), 2);
}
