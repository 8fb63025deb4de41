//! Each decision of a host's certificate reload (unchanged, swap, pending, refuse) and what
//! applying it changes: deciding reads files and changes nothing live; `apply` changes the
//! slot, its status and the metrics together.

use std::sync::Arc;
use std::time::SystemTime;

use certfront_certs::store::ReloadResult;

use super::*;
use crate::snapshot::{Snapshot, Writers};
use crate::testpki::{TestPki, host};

struct Fixture {
    pki: TestPki,
    snapshot: Snapshot,
    writers: Writers,
    metrics: Arc<Metrics>,
    first_serial: String,
}

/// app.test serving `app.pem`, started the way `run` starts.
fn started() -> Fixture {
    let pki = TestPki::new();
    let first_serial = pki.leaf("app", &["app.test"]);
    let config = pki.config(&host("app.test", "app", "ok"));
    let prepared = crate::prepare::prepare(config).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(Metrics::new());
    let mut writers = Writers::default();
    let (snapshot, _) = Snapshot::build(prepared, None, &metrics)
        .expect("build")
        .apply(&metrics, &mut writers);
    Fixture {
        pki,
        snapshot,
        writers,
        metrics,
        first_serial,
    }
}

impl Fixture {
    fn site(&self) -> &Site {
        self.snapshot.site("app.test").expect("app.test")
    }

    fn decide(&self, trigger: Trigger) -> Outcome {
        let mut shared = SharedChecks::new(&self.snapshot.trust, SystemTime::now());
        reload_host(self.site(), trigger, &mut shared)
    }

    fn apply(&self, outcome: Outcome) -> Option<Arc<Served>> {
        let writer = self.writers.get("app.test").expect("a writer");
        apply(writer, &self.site().cert, outcome, &self.metrics)
    }

    fn serial(&self) -> String {
        self.site()
            .cert
            .load()
            .expect("serving")
            .info
            .serial
            .clone()
    }

    fn metrics(&self) -> String {
        String::from_utf8(self.metrics.render()).expect("utf-8")
    }

    fn reloads(&self, result: &str) -> u64 {
        self.metrics
            .cert_reloads
            .with_label_values(&["app.test", result])
            .get()
    }
}

#[test]
fn files_that_did_not_change_decide_unchanged_and_change_nothing() {
    let f = started();
    let metrics = f.metrics();
    let outcome = f.decide(Trigger::Rescan);
    assert!(matches!(outcome, Outcome::Unchanged), "{outcome:?}");
    assert!(f.apply(outcome).is_none());
    assert_eq!(f.serial(), f.first_serial);
    assert_eq!(f.site().cert.status().last_result, None);
    assert_eq!(f.metrics(), metrics);
}

#[test]
fn a_good_new_certificate_swaps_only_when_applied() {
    let f = started();
    let next = f.pki.leaf("app", &["app.test"]);
    let metrics = f.metrics();
    let outcome = f.decide(Trigger::Event);
    assert!(matches!(outcome, Outcome::Swap(_)), "{outcome:?}");
    // Decided, not applied: nothing a handshake, /certs or a scrape sees has moved.
    assert_eq!(f.serial(), f.first_serial);
    assert_eq!(f.metrics(), metrics);
    assert_eq!(f.site().cert.status().last_result, None);

    let swapped = f.apply(outcome).expect("swapped");
    assert_eq!(swapped.info.serial, next);
    let state = f.site().cert.state();
    assert_eq!(state.served.as_ref().expect("serving").info.serial, next);
    assert_eq!(state.status.last_result, Some(ReloadResult::Success));
    assert_eq!(f.reloads("success"), 1);
    assert!(
        f.metrics().contains(&next),
        "the new serial is not exported"
    );
    assert!(
        !f.metrics().contains(&f.first_serial),
        "the old serial is still exported"
    );
}

#[test]
fn a_new_key_without_its_certificate_waits_on_an_event_and_is_refused_on_a_rescan() {
    let f = started();
    f.pki.new_key("app");
    let outcome = f.decide(Trigger::Event);
    assert!(matches!(outcome, Outcome::Pending), "{outcome:?}");
    assert!(f.apply(outcome).is_none());
    assert_eq!(f.serial(), f.first_serial);
    assert_eq!(f.site().cert.status().last_result, None);
    assert_eq!(f.reloads("failure"), 0);

    // A re-scan sees a pair that stays mismatched: a failure, reported.
    let outcome = f.decide(Trigger::Rescan);
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
}

#[test]
fn a_certificate_that_violates_is_refused_and_the_last_good_one_stays() {
    let f = started();
    f.pki.leaf("app", &["other.test"]);
    let metrics = f.metrics();
    let outcome = f.decide(Trigger::Event);
    let Outcome::Failed(problems) = &outcome else {
        panic!("not refused: {outcome:?}");
    };
    assert!(
        problems.iter().any(|p| p.to_string().contains("app.test")),
        "{problems:?}"
    );
    assert_eq!(f.metrics(), metrics, "deciding changed the metrics");
    assert!(f.apply(outcome).is_none());
    assert_eq!(f.serial(), f.first_serial);
    let status = f.site().cert.status();
    assert_eq!(status.last_result, Some(ReloadResult::Failure));
    assert!(status.last_error.is_some_and(|e| e.contains("app.test")));
    assert_eq!(f.reloads("failure"), 1);
    assert_eq!(
        f.metrics
            .cert_reload_failing
            .with_label_values(&["app.test"])
            .get(),
        1
    );

    // A good certificate afterwards is taken.
    f.pki.leaf("app", &["app.test"]);
    let outcome = f.decide(Trigger::Event);
    assert!(matches!(outcome, Outcome::Swap(_)), "{outcome:?}");
}
