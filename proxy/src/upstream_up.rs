//! `certfront_upstream_up{host,upstream}`: 1 while an upstream takes requests, 0 while it
//! cools down after a failure. Read from the cool-down state when `/metrics` is rendered,
//! so the request path writes nothing for it and a host removed by a reload loses its
//! series at once.

use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::app::App;
use crate::sites::Route;

const NAME: &str = "certfront_upstream_up";
const HELP: &str = "1 while an upstream of a host takes requests, 0 while it is skipped after a failed connection (cool-down).";

pub(crate) struct UpstreamUp {
    app: Weak<App>,
    descs: Vec<Desc>,
}

impl UpstreamUp {
    /// Weak, as the app owns the registry this collector goes into.
    pub(crate) fn new(app: &Arc<App>) -> UpstreamUp {
        UpstreamUp {
            app: Arc::downgrade(app),
            descs: gauge().desc().into_iter().cloned().collect(),
        }
    }
}

fn gauge() -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(NAME, HELP), &["host", "upstream"]).expect("metric")
}

impl Collector for UpstreamUp {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(app) = self.app.upgrade() else {
            return Vec::new();
        };
        let up = gauge();
        for site in app.snapshot().table.sites() {
            if let Route::Upstream(ups) = &site.route {
                for (label, is_up) in ups.states() {
                    up.with_label_values(&[site.fqdn.as_str(), label])
                        .set(i64::from(is_up));
                }
            }
        }
        up.collect()
    }
}
