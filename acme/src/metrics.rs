//! The ACME metrics, registered in the proxy's registry (never a global one).

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// `certfront_acme_orders_total{host,result}` and `certfront_acme_renewal_failing{host}`.
#[derive(Clone)]
pub struct AcmeMetrics {
    /// result: `success` (issued, passed the rules, stored), `failure` (the CA or the
    /// network failed), `policy` (issued, but the certificate rules kept it out).
    pub orders: IntCounterVec,
    /// 1 from a failed order until the next one succeeds.
    pub renewal_failing: IntGaugeVec,
}

impl AcmeMetrics {
    pub fn new() -> AcmeMetrics {
        AcmeMetrics {
            orders: IntCounterVec::new(
                Opts::new(
                    "certfront_acme_orders_total",
                    "ACME orders by host and result (success, failure, policy: issued but refused by the certificate rules).",
                ),
                &["host", "result"],
            )
            .expect("metric"),
            renewal_failing: IntGaugeVec::new(
                Opts::new(
                    "certfront_acme_renewal_failing",
                    "1 while a host's last ACME order failed (the previous certificate, if any, is still served).",
                ),
                &["host"],
            )
            .expect("metric"),
        }
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.orders.clone()))?;
        registry.register(Box::new(self.renewal_failing.clone()))
    }

    /// Exports a host's series from the start (0 failing, 0 orders of each result), so an
    /// alert can tell "never failed" from "not scraped".
    pub fn host(&self, host: &str) {
        for result in ["success", "failure", "policy"] {
            self.orders.with_label_values(&[host, result]);
        }
        self.renewal_failing.with_label_values(&[host]).set(0);
    }
}

impl Default for AcmeMetrics {
    fn default() -> Self {
        AcmeMetrics::new()
    }
}
