//! Prometheus metrics (DESIGN "Admin listener and metrics"). One registry, created by
//! `start` and passed down, never the global default. Label values come only from the
//! config and the certificates, so no client can add series.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use certfront_certs::DependedCa;
use certfront_certs::inspect::CertInfo;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric certfront exports.
pub struct Metrics {
    registry: Registry,
    cert_not_after: GaugeVec,
    cert_not_before: GaugeVec,
    pub(crate) cert_reloads: IntCounterVec,
    pub(crate) cert_reload_failing: IntGaugeVec,
    pub(crate) cert_last_reload_success: GaugeVec,
    pub(crate) tls_handshakes: IntCounterVec,
    pub connections_open: IntGaugeVec,
    pub(crate) http_requests: IntCounterVec,
    pub(crate) http_request_duration: HistogramVec,
    pub(crate) upstream_errors: IntCounterVec,
    pub(crate) upstream_discarded: IntCounterVec,
    pub send_timeouts: IntCounterVec,
    pub(crate) client_cert_rejections: IntCounterVec,
    pub deny_list_reload_failing: IntGaugeVec,
    crl_next_update: IntGaugeVec,
    crl_this_update: IntGaugeVec,
    crl_revoked: IntGaugeVec,
    pub(crate) crl_reload_failing: IntGaugeVec,
    pub(crate) crl_fetches: IntCounterVec,
    /// The CRL issuers exported per host, so a new set can remove the series of the old.
    crl_series: Mutex<HashMap<String, Vec<String>>>,
    pub config_reloads: IntCounterVec,
    pub config_reload_failing: prometheus::IntGauge,
    pub(crate) config_last_reload_success: prometheus::Gauge,
    /// `certfront_acme_orders_total`, `certfront_acme_renewal_failing` (issue 12).
    pub(crate) acme: certfront_acme::AcmeMetrics,
    /// The certificate labels exported per host, so a rotation can remove the old series.
    cert_series: Mutex<HashMap<String, [String; 3]>>,
    ca_not_after: GaugeVec,
    /// The CA certificates exported now (see [`crate::dependents`]), for `/certs` and so that
    /// the next set can remove the series of those no longer depended on.
    cas: Mutex<Vec<DependedCa>>,
    /// Access-log lines dropped because the writer fell behind (the queue was full).
    pub(crate) access_log_dropped: IntCounter,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let cert = ["host", "serial", "thumbprint", "issuer"];
        let m = Metrics {
            cert_not_after: GaugeVec::new(
                Opts::new("certfront_cert_not_after_timestamp_seconds", "notAfter of the certificate served for a host, as a Unix timestamp."),
                &cert,
            ).expect("metric"),
            cert_not_before: GaugeVec::new(
                Opts::new("certfront_cert_not_before_timestamp_seconds", "notBefore of the certificate served for a host, as a Unix timestamp."),
                &cert,
            ).expect("metric"),
            cert_reloads: IntCounterVec::new(
                Opts::new("certfront_cert_reloads_total", "Certificate reloads that read changed files, by result."),
                &["host", "result"],
            ).expect("metric"),
            cert_reload_failing: IntGaugeVec::new(
                Opts::new("certfront_cert_reload_failing", "1 while a host's files on disk are bad and its last good certificate is still served."),
                &["host"],
            ).expect("metric"),
            cert_last_reload_success: GaugeVec::new(
                Opts::new("certfront_cert_last_reload_success_timestamp_seconds", "When a host's certificate was last loaded successfully (start or reload), as a Unix timestamp."),
                &["host"],
            ).expect("metric"),
            tls_handshakes: IntCounterVec::new(
                Opts::new("certfront_tls_handshakes_total", "TLS handshakes by host (\"unknown\" for names no host serves), protocol version and result."),
                &["host", "version", "result"],
            ).expect("metric"),
            connections_open: IntGaugeVec::new(
                Opts::new("certfront_connections_open", "Client connections open, by listener."),
                &["listener"],
            ).expect("metric"),
            http_requests: IntCounterVec::new(
                Opts::new("certfront_http_requests_total", "HTTP requests answered, by host and status code."),
                &["host", "code"],
            ).expect("metric"),
            http_request_duration: HistogramVec::new(
                HistogramOpts::new("certfront_http_request_duration_seconds", "Time from request to response headers, by host.")
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
                &["host"],
            ).expect("metric"),
            upstream_errors: IntCounterVec::new(
                Opts::new("certfront_upstream_errors_total", "Failed exchanges with upstreams, by host and kind (connect, timeout, tls, protocol)."),
                &["host", "kind"],
            ).expect("metric"),
            upstream_discarded: IntCounterVec::new(
                Opts::new("certfront_upstream_connections_discarded_total", "Idle upstream connections closed instead of reused, by host and reason (unread_bytes, closed, error)."),
                &["host", "reason"],
            ).expect("metric"),
            send_timeouts: IntCounterVec::new(
                Opts::new("certfront_send_timeouts_total", "Client connections (or HTTP/2 streams) ended because the client took nothing for limits.send_timeout_seconds, by host and kind (write: a write stayed blocked; flow_control: every HTTP/2 request waited on the client's flow-control window, the connection was closed; stream: one HTTP/2 stream waited on its window and was reset, its connection kept)."),
                &["host", "kind"],
            ).expect("metric"),
            client_cert_rejections: IntCounterVec::new(
                Opts::new("certfront_client_cert_rejections_total", "Client certificates refused, by host and reason."),
                &["host", "reason"],
            ).expect("metric"),
            deny_list_reload_failing: IntGaugeVec::new(
                Opts::new("certfront_deny_list_reload_failing", "1 while a host's client-certificate deny list on disk is refused (a bad line) and the previous list is still applied."),
                &["host"],
            ).expect("metric"),
            crl_next_update: IntGaugeVec::new(
                Opts::new("certfront_crl_next_update_timestamp_seconds", "nextUpdate of each client-certificate CRL in force (Unix time), by host and issuer: past it, a fresh CRL is due."),
                &["host", "issuer"],
            ).expect("metric"),
            crl_this_update: IntGaugeVec::new(
                Opts::new("certfront_crl_this_update_timestamp_seconds", "thisUpdate of each client-certificate CRL in force (Unix time), by host and issuer."),
                &["host", "issuer"],
            ).expect("metric"),
            crl_revoked: IntGaugeVec::new(
                Opts::new("certfront_crl_revoked_certificates", "Certificates listed on each client-certificate CRL in force, by host and issuer."),
                &["host", "issuer"],
            ).expect("metric"),
            crl_reload_failing: IntGaugeVec::new(
                Opts::new("certfront_crl_reload_failing", "1 while a host's CRL files on disk are refused (corrupt, wrong signer, delta or older) and the previous set is still applied."),
                &["host"],
            ).expect("metric"),
            crl_fetches: IntCounterVec::new(
                Opts::new("certfront_crl_fetches_total", "Downloads of client_auth.crl_url by the refresher, by host and result: success (a new CRL cached and applied), unchanged, failure (no answer, HTTP error, too large, timeout) or refused (not a CRL of a client CA, a delta, or older)."),
                &["host", "result"],
            )
            .expect("valid metric"),
            crl_series: Mutex::new(HashMap::new()),
            acme: certfront_acme::AcmeMetrics::new(),
            cert_series: Mutex::new(HashMap::new()),
            config_reloads: IntCounterVec::new(
                Opts::new(
                    "certfront_config_reloads_total",
                    "Configuration reloads (config file or trust files changed, or SIGHUP), by result.",
                ),
                &["result"],
            )
            .expect("metric"),
            config_reload_failing: prometheus::IntGauge::new(
                "certfront_config_reload_failing",
                "1 while the configuration on disk is refused and the previous one is still in force.",
            )
            .expect("metric"),
            config_last_reload_success: prometheus::Gauge::new(
                "certfront_config_last_reload_success_timestamp_seconds",
                "When the configuration in force was loaded (start or last successful reload), as a Unix timestamp.",
            )
            .expect("metric"),
            ca_not_after: GaugeVec::new(
                Opts::new("certfront_ca_not_after_timestamp_seconds", "notAfter of a CA certificate certfront depends on (role: intermediate, trust, client_ca, upstream_ca, internal_ca), as a Unix timestamp."),
                &["role", "subject", "thumbprint"],
            ).expect("metric"),
            cas: Mutex::new(Vec::new()),
            access_log_dropped: IntCounter::new(
                "certfront_access_log_dropped_total",
                "Access-log lines dropped because the log writer fell behind (its queue was full).",
            )
            .expect("metric"),
            registry,
        };
        m.config_reloads.with_label_values(&["success"]);
        m.config_reloads.with_label_values(&["failure"]);
        m.config_last_reload_success.set(unix(SystemTime::now()));
        let build_info = IntGaugeVec::new(
            Opts::new(
                "certfront_build_info",
                "Always 1; the version label says which certfront runs.",
            ),
            &["version"],
        )
        .expect("metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(m.cert_not_after.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.cert_not_before.clone()),
            Box::new(m.cert_reloads.clone()),
            Box::new(m.cert_reload_failing.clone()),
            Box::new(m.cert_last_reload_success.clone()),
            Box::new(m.tls_handshakes.clone()),
            Box::new(m.connections_open.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_request_duration.clone()),
            Box::new(m.upstream_errors.clone()),
            Box::new(m.upstream_discarded.clone()),
            Box::new(m.send_timeouts.clone()),
            Box::new(m.client_cert_rejections.clone()),
            Box::new(m.deny_list_reload_failing.clone()),
            Box::new(m.crl_next_update.clone()),
            Box::new(m.crl_this_update.clone()),
            Box::new(m.crl_revoked.clone()),
            Box::new(m.crl_reload_failing.clone()),
            Box::new(m.crl_fetches.clone()),
            Box::new(m.config_reloads.clone()),
            Box::new(m.config_reload_failing.clone()),
            Box::new(m.config_last_reload_success.clone()),
            Box::new(m.ca_not_after.clone()),
            Box::new(m.access_log_dropped.clone()),
            Box::new(build_info),
        ] {
            m.registry.register(c).expect("unique metric names");
        }
        m.acme.register(&m.registry).expect("unique metric names");
        m
    }

    /// Adds a collector that reads its values when `/metrics` is rendered.
    pub(crate) fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        self.registry
            .register(collector)
            .expect("unique metric names");
    }

    /// Exports `info` as what `host` serves, replacing the series of what it served before.
    pub(crate) fn cert_served(&self, host: &str, info: &CertInfo, loaded_at: SystemTime) {
        let labels = [
            info.serial.clone(),
            info.sha1_thumbprint.clone(),
            info.issuer.clone(),
        ];
        let mut series = self.cert_series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = series.get(host).filter(|old| **old != labels) {
            let old = [host, old[0].as_str(), old[1].as_str(), old[2].as_str()];
            let _ = self.cert_not_after.remove_label_values(&old);
            let _ = self.cert_not_before.remove_label_values(&old);
        }
        let values = [
            host,
            labels[0].as_str(),
            labels[1].as_str(),
            labels[2].as_str(),
        ];
        self.cert_not_after
            .with_label_values(&values)
            .set(info.not_after as f64);
        self.cert_not_before
            .with_label_values(&values)
            .set(info.not_before as f64);
        series.insert(host.to_owned(), labels);
        drop(series);
        self.cert_last_reload_success
            .with_label_values(&[host])
            .set(unix(loaded_at));
        self.cert_reload_failing.with_label_values(&[host]).set(0);
    }

    /// A reload of changed files: counted by result; a failure raises the failing gauge.
    pub(crate) fn reload_result(&self, host: &str, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.cert_reloads.with_label_values(&[host, result]).inc();
        if !success {
            self.cert_reload_failing.with_label_values(&[host]).set(1);
        }
    }

    /// Registers a host with zeroed counters so that its series exist before any event.
    pub(crate) fn host(&self, host: &str) {
        self.cert_reloads.with_label_values(&[host, "success"]);
        self.cert_reloads.with_label_values(&[host, "failure"]);
        self.cert_reload_failing.with_label_values(&[host]).set(0);
    }

    /// Exports `cas` as the whole set of CA certificates depended on: the series of any CA
    /// not in it any more disappear.
    pub(crate) fn set_cas(&self, cas: Vec<DependedCa>) {
        let mut current = self.cas.lock().unwrap_or_else(|e| e.into_inner());
        let keep: HashSet<[&str; 3]> = cas.iter().map(ca_labels).collect();
        for old in current.iter().map(ca_labels).filter(|l| !keep.contains(l)) {
            let _ = self.ca_not_after.remove_label_values(&old);
        }
        for ca in &cas {
            self.ca_not_after
                .with_label_values(&ca_labels(ca))
                .set(ca.not_after as f64);
        }
        *current = cas;
    }

    /// The CA certificates exported now, as the last [`Metrics::set_cas`] gave them.
    pub(crate) fn cas(&self) -> Vec<DependedCa> {
        self.cas.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A configuration reload: counted; the failing gauge follows the result.
    pub(crate) fn config_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.config_reloads.with_label_values(&[result]).inc();
        self.config_reload_failing.set(i64::from(!success));
        if success {
            self.config_last_reload_success.set(unix(SystemTime::now()));
        }
    }

    /// Removes the gauges of a host the configuration no longer has, so that no expiry or
    /// reload alert fires for it. Counters stay: they are history, not state.
    pub(crate) fn forget_host(&self, host: &str) {
        let series = self
            .cert_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
        if let Some(old) = series {
            let old = [host, old[0].as_str(), old[1].as_str(), old[2].as_str()];
            let _ = self.cert_not_after.remove_label_values(&old);
            let _ = self.cert_not_before.remove_label_values(&old);
        }
        let _ = self.cert_reload_failing.remove_label_values(&[host]);
        let _ = self.cert_last_reload_success.remove_label_values(&[host]);
        let _ = self.deny_list_reload_failing.remove_label_values(&[host]);
        let _ = self.crl_reload_failing.remove_label_values(&[host]);
        self.remove_crl_series(host);
    }

    fn remove_crl_series(&self, host: &str) {
        let old = self
            .crl_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
        for issuer in old.into_iter().flatten() {
            let labels = [host, issuer.as_str()];
            let _ = self.crl_next_update.remove_label_values(&labels);
            let _ = self.crl_this_update.remove_label_values(&labels);
            let _ = self.crl_revoked.remove_label_values(&labels);
        }
    }

    /// Exports the CRLs a host enforces now (replacing the series of the set before).
    pub(crate) fn crls_in_force(&self, host: &str, crls: &certfront_certs::crl::CrlSet) {
        self.remove_crl_series(host);
        let mut issuers = Vec::new();
        for crl in crls.iter() {
            let labels = [host, crl.issuer.as_str()];
            self.crl_this_update
                .with_label_values(&labels)
                .set(crl.this_update);
            if let Some(next) = crl.next_update {
                self.crl_next_update.with_label_values(&labels).set(next);
            }
            self.crl_revoked
                .with_label_values(&labels)
                .set(crl.revoked as i64);
            issuers.push(crl.issuer.clone());
        }
        self.crl_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_owned(), issuers);
    }

    /// The text exposition format that Prometheus scrapes.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The labels of a CA's series: role, subject, thumbprint.
fn ca_labels(c: &DependedCa) -> [&str; 3] {
    [c.role.as_str(), c.subject.as_str(), c.thumbprint.as_str()]
}

/// The status codes whose `certfront_http_requests_total` series a site keeps resolved.
const COMMON_STATUS: [u16; 16] = [
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 421, 500, 502, 503, 504,
];

/// One host's `certfront_http_requests_total` series: the common codes resolved on first
/// use (no label hashing or lock per request), the rest looked up each time.
pub(crate) struct RequestCounts {
    vec: IntCounterVec,
    host: String,
    common: [OnceLock<IntCounter>; COMMON_STATUS.len()],
}

impl RequestCounts {
    pub(crate) fn new(vec: &IntCounterVec, host: &str) -> Self {
        RequestCounts {
            vec: vec.clone(),
            host: host.to_owned(),
            common: Default::default(),
        }
    }

    pub(crate) fn inc(&self, status: http::StatusCode) {
        match COMMON_STATUS.binary_search(&status.as_u16()) {
            Ok(i) => self.common[i]
                .get_or_init(|| self.vec.with_label_values(&[&self.host, status.as_str()]))
                .inc(),
            Err(_) => self
                .vec
                .with_label_values(&[&self.host, status.as_str()])
                .inc(),
        }
    }
}

#[cfg(test)]
mod request_counts {
    use super::*;

    #[test]
    fn every_status_lands_in_its_own_series() {
        let m = Metrics::new();
        let counts = RequestCounts::new(&m.http_requests, "app.test");
        assert!(COMMON_STATUS.is_sorted(), "binary search needs them sorted");
        for code in [200, 200, 404, 418, 418, 418, 504] {
            counts.inc(http::StatusCode::from_u16(code).unwrap());
        }
        let get = |code: &str| m.http_requests.with_label_values(&["app.test", code]).get();
        assert_eq!(
            (get("200"), get("404"), get("418"), get("504")),
            (2, 1, 3, 1)
        );
        assert_eq!(get("500"), 0);
    }
}
