//! Unit tests of the debounce, the coalescing of watcher events and time arithmetic.

use super::*;

fn key(fqdn: &str) -> WatchKey {
    WatchKey::HostCert(Arc::from(fqdn))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn one_event_is_read_after_the_debounce() {
    let t0 = Instant::now();
    assert_eq!(reload_at(t0, t0), t0 + DEBOUNCE);
}

#[test]
fn each_event_postpones_the_read_while_the_burst_is_young() {
    let t0 = Instant::now();
    assert_eq!(reload_at(t0, t0 + ms(150)), t0 + ms(150) + DEBOUNCE);
    assert_eq!(reload_at(t0, t0 + ms(1000)), t0 + ms(1200));
}

#[test]
fn a_directory_that_never_stops_changing_is_read_at_the_ceiling() {
    let t0 = Instant::now();
    // an event every 50 ms for a minute: the read is never later than MAX_DELAY
    let mut last = t0;
    for _ in 0..1200 {
        last += ms(50);
        assert!(reload_at(t0, last) <= t0 + MAX_DELAY);
    }
    assert_eq!(reload_at(t0, last), t0 + MAX_DELAY);
    assert!(MAX_DELAY + DEBOUNCE < Duration::from_secs(5));
}

#[test]
fn changes_coalesce_instead_of_queueing() {
    let changes = Changes::default();
    for _ in 0..100_000 {
        changes.mark(&[key("c"), key("a")]);
    }
    changes.mark(&[key("b")]);
    assert_eq!(
        changes.take().into_iter().collect::<Vec<_>>(),
        [key("a"), key("b"), key("c")]
    );
    assert!(changes.take().is_empty());
}

#[tokio::test]
async fn a_mark_wakes_the_reloader_once_even_before_it_waits() {
    let changes = Changes::default();
    changes.mark(&[key("a")]);
    changes.mark(&[WatchKey::Config]);
    // the permit was stored: this returns at once
    tokio::time::timeout(Duration::from_secs(5), changes.wake.notified())
        .await
        .expect("woken");
    // and only one permit was stored for the two marks
    let again = tokio::time::timeout(ms(50), changes.wake.notified()).await;
    assert!(again.is_err());
}

#[test]
fn later_never_panics() {
    assert!(later(Duration::MAX) > Instant::now());
    assert!(later(Duration::from_secs(u64::MAX / 2)) > Instant::now());
}
