//! The traffic `rotate` keeps up while it rotates: keep-alive connections (HTTP/1.1 and HTTP/2 in turn) and a stream of new handshakes, each with one request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::client::{LoadBody, Sender};
use crate::target::{Proto, Target};

/// Counters shared by every load task and the poller.
#[derive(Default)]
pub(crate) struct Tally {
    stop: AtomicBool,
    pub requests_ok: AtomicU64,
    pub requests_failed: AtomicU64,
    pub handshakes_ok: AtomicU64,
    pub handshakes_failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn running(&self, deadline: Instant) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < deadline
    }

    pub(crate) fn note(&self, what: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(what);
    }

    pub(crate) fn request_failed(&self, what: String) {
        self.requests_failed.fetch_add(1, Ordering::Relaxed);
        self.note(format!("request: {what}"));
    }

    pub(crate) fn handshake_failed(&self, what: String) {
        self.handshakes_failed.fetch_add(1, Ordering::Relaxed);
        self.note(format!("handshake: {what}"));
    }

    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Starts `connections` keep-alive connections (even ones HTTP/1.1, odd ones HTTP/2)
/// and `handshakers` handshake loops; they run until [`Tally::stop`] or `deadline`.
pub(crate) fn start(
    h1: &Target,
    h2: &Target,
    connections: u32,
    handshakers: u32,
    deadline: Instant,
    tally: &Arc<Tally>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for i in 0..connections {
        let (target, proto) = if i % 2 == 0 {
            (h1.clone(), Proto::H1)
        } else {
            (h2.clone(), Proto::H2)
        };
        tasks.spawn(keep_alive(target, proto, deadline, tally.clone()));
    }
    for _ in 0..handshakers {
        tasks.spawn(handshaker(h1.clone(), deadline, tally.clone()));
    }
    tasks
}

async fn request(target: &Target, sender: &mut Sender) -> Result<(), String> {
    match tokio::time::timeout(
        target.timeout,
        sender.request(&target.sni, Method::GET, "/", LoadBody::empty()),
    )
    .await
    {
        Ok(Ok(a)) if a.status.is_success() => Ok(()),
        Ok(Ok(a)) => Err(format!("status {}, expected 2xx", a.status)),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {:?}", target.timeout)),
    }
}

/// One connection, requests back to back; a failed request counts and the connection is
/// reopened (a failing target costs one attempt per 50 ms at most).
async fn keep_alive(target: Target, proto: Proto, deadline: Instant, tally: Arc<Tally>) {
    while tally.running(deadline) {
        let mut sender = match Sender::open(&target, proto).await {
            Ok(s) => s,
            Err(e) => {
                tally.handshake_failed(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tally.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        while tally.running(deadline) {
            match request(&target, &mut sender).await {
                Ok(()) => {
                    tally.requests_ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tally.request_failed(format!("{} keep-alive: {e}", proto.name()));
                    break;
                }
            }
        }
    }
}

/// New connections one after the other: a full handshake and one HTTP/1.1 request each.
async fn handshaker(target: Target, deadline: Instant, tally: Arc<Tally>) {
    while tally.running(deadline) {
        let tls = match target.connect().await {
            Ok(t) => t,
            Err(e) => {
                tally.handshake_failed(format!("{e:#}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tally.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        let mut sender = match Sender::over(tls, Proto::H1).await {
            Ok(s) => s,
            Err(e) => {
                tally.request_failed(format!("HTTP/1.1 after a new handshake: {e:#}"));
                continue;
            }
        };
        match request(&target, &mut sender).await {
            Ok(()) => {
                tally.requests_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.request_failed(format!("HTTP/1.1 after a new handshake: {e}")),
        }
    }
}

/// The leaf (DER) a new full handshake is served now; counts the handshake.
pub(crate) async fn served_leaf(target: &Target, tally: &Tally) -> Option<Vec<u8>> {
    match target.connect().await {
        Ok(mut tls) => {
            tally.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            let _ = tls.shutdown().await;
            leaf
        }
        Err(e) => {
            tally.handshake_failed(format!("{e:#}"));
            None
        }
    }
}
