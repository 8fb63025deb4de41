//! What a candidate is and what applying it does: an unchanged host keeps its site (and
//! its connections), a changed one is retired; a kept host's new certificate, new hosts'
//! metric series and slot writers all wait for `apply`; a candidate that fails to build
//! leaves nothing behind.

use super::*;
use crate::testpki::{TestPki, host};

fn prepared(pki: &TestPki, hosts: &str) -> Prepared {
    crate::prepare::prepare(pki.config(hosts)).unwrap_or_else(|e| panic!("{e}"))
}

fn render(metrics: &Metrics) -> String {
    String::from_utf8(metrics.render()).expect("utf-8")
}

struct Running {
    pki: TestPki,
    snapshot: Snapshot,
    writers: Writers,
    metrics: Arc<Metrics>,
}

/// app.test and api.test, put in force.
fn running() -> Running {
    let pki = TestPki::new();
    pki.leaf("app", &["app.test"]);
    pki.leaf("api", &["api.test"]);
    let metrics = Arc::new(Metrics::new());
    let hosts = host("app.test", "app", "a") + &host("api.test", "api", "b");
    let mut writers = Writers::default();
    let (snapshot, retired) = Snapshot::build(prepared(&pki, &hosts), None, &metrics)
        .expect("build")
        .apply(&metrics, &mut writers);
    assert!(retired.is_empty());
    Running {
        pki,
        snapshot,
        writers,
        metrics,
    }
}

#[test]
fn an_unchanged_host_keeps_its_site_and_a_changed_one_is_retired() {
    let r = running();
    let hosts = host("app.test", "app", "a") + &host("api.test", "api", "changed");
    let metrics = render(&r.metrics);
    let built =
        Snapshot::build(prepared(&r.pki, &hosts), Some(&r.snapshot), &r.metrics).expect("build");
    let (old_app, new_app) = (r.snapshot.site("app.test"), built.snapshot.site("app.test"));
    assert!(
        Arc::ptr_eq(old_app.unwrap(), new_app.unwrap()),
        "app.test was rebuilt"
    );
    let retired: Vec<&str> = built.retired.iter().map(|s| s.fqdn.as_str()).collect();
    assert_eq!(retired, ["api.test"]);
    assert_eq!(built.new_hosts, ["api.test"]);
    assert!(built.cert_updates.is_empty());
    assert!(
        Arc::ptr_eq(&r.snapshot.tls, &built.snapshot.tls),
        "TLS state not reused"
    );
    assert_eq!(render(&r.metrics), metrics, "building changed the metrics");

    let mut writers = r.writers;
    let (snapshot, retired) = built.apply(&r.metrics, &mut writers);
    assert_eq!(retired.len(), 1);
    // The new api.test site is written by the writer the reloader now holds; the
    // retired one's writer is gone.
    let api = snapshot.site("api.test").expect("api.test");
    assert!(
        api.cert
            .is_written_by(writers.get("api.test").expect("writer"))
    );
    assert!(
        !retired[0]
            .cert
            .is_written_by(writers.get("api.test").expect("writer"))
    );
    let app = snapshot.site("app.test").expect("app.test");
    assert!(
        app.cert
            .is_written_by(writers.get("app.test").expect("writer"))
    );
}

#[test]
fn a_kept_hosts_new_certificate_is_served_only_once_applied() {
    let r = running();
    let first = r.snapshot.site("app.test").unwrap().cert.load().unwrap();
    let next = r.pki.leaf("app", &["app.test"]);
    let hosts = host("app.test", "app", "a") + &host("api.test", "api", "b");
    let metrics = render(&r.metrics);
    let built =
        Snapshot::build(prepared(&r.pki, &hosts), Some(&r.snapshot), &r.metrics).expect("build");
    assert!(built.retired.is_empty());
    assert_eq!(built.cert_updates.len(), 1);
    let app = built.snapshot.site("app.test").unwrap().clone();
    assert_eq!(app.cert.load().unwrap().info.serial, first.info.serial);
    assert_eq!(render(&r.metrics), metrics, "building changed the metrics");

    let mut writers = r.writers;
    built.apply(&r.metrics, &mut writers);
    assert_eq!(app.cert.load().unwrap().info.serial, next);
    assert!(render(&r.metrics).contains(&next));
}

#[test]
fn a_candidate_that_fails_to_build_leaves_nothing_behind() {
    let r = running();
    let first = r.snapshot.site("app.test").unwrap().cert.load().unwrap();
    // app.test gets a new certificate, and a new host's client CA holds no certificate
    // by the time the verifier is built: the build fails after app.test's update was
    // planned.
    r.pki.leaf("app", &["app.test"]);
    r.pki.leaf("new", &["new.test"]);
    let hosts = host("app.test", "app", "a")
        + &host("api.test", "api", "b")
        + &host("new.test", "new", "c")
        + "[host.client_auth]\nca = \"root.pem\"\n";
    let mut candidate = prepared(&r.pki, &hosts);
    // Emptied after prepare, so that only the build meets it.
    let files = candidate.hosts[2]
        .client_auth
        .as_mut()
        .expect("client auth");
    files.ca = TrustAnchors::new(false, &[], &[]).unwrap();
    let metrics = render(&r.metrics);
    let result = Snapshot::build(candidate, Some(&r.snapshot), &r.metrics);
    assert!(result.is_err(), "the build did not fail");
    let app = r.snapshot.site("app.test").unwrap();
    assert_eq!(app.cert.load().unwrap().info.serial, first.info.serial);
    assert_eq!(
        render(&r.metrics),
        metrics,
        "a failed build changed the metrics"
    );
    assert!(!metrics.contains("new.test"));
}
