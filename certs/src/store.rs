//! The certificate a host serves right now and how its last reload went, behind one
//! atomic pointer, with the writer apart from the readers.
//!
//! [`slot`] makes a host's slot and returns its one [`CertWriter`], held by the reloader,
//! and a [`CertReader`] that the TLS resolver, `/certs` and the metrics clone. The writer
//! builds a whole new [`SlotState`] (the certificate served *and* the reload status) away
//! from the handshake path and publishes it in one swap, so a reader never pairs a new
//! certificate with an old status. Handshakes read it lock-free ([`CertReader`] resolves);
//! old values are freed when the last handshake holding them finishes (arc-swap's
//! guarantee). A slot may start empty (a host waiting for its first ACME certificate):
//! its handshakes then fail until the first [`CertWriter::swap`].

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::CertError;
use crate::inspect::CertInfo;
use crate::load::CertBundle;
use crate::source::CertSource;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One loaded, checked certificate with what the admin endpoints show about it.
#[derive(Clone, Debug)]
pub struct Served {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    pub content_hash: [u8; 32],
    pub loaded_at: SystemTime,
}

/// The outcome of the last attempt to (re)load a host's files.
#[derive(Clone, Debug, Default)]
pub struct ReloadStatus {
    /// `None` before any reload was tried (the start-up load is not a reload).
    pub last_result: Option<ReloadResult>,
    pub last_error: Option<String>,
    pub last_attempt: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    Success,
    Failure,
}

/// What a slot holds at one moment: the certificate served (if any) and the status of the
/// reload that put it there or was refused since. Published whole, never edited in place.
#[derive(Debug, Default)]
pub struct SlotState {
    pub served: Option<Arc<Served>>,
    pub status: ReloadStatus,
}

/// What the writer and its readers share.
#[derive(Debug)]
struct Slot {
    fqdn: String,
    names: Vec<String>,
    source: CertSource,
    state: ArcSwap<SlotState>,
}

/// The one writer of a host's slot (not `Clone`): only the reloader holds it.
#[derive(Debug)]
pub struct CertWriter(Arc<Slot>);

/// A read-only view of a host's slot: the TLS resolver, `/certs`, metrics.
#[derive(Clone, Debug)]
pub struct CertReader(Arc<Slot>);

impl Served {
    /// What a checked bundle serves: its rustls key and its leaf's facts, loaded now.
    pub fn from_bundle(bundle: &CertBundle) -> Result<Served, CertError> {
        Ok(Served {
            key: bundle.certified_key()?,
            info: bundle.leaf_info()?,
            content_hash: bundle.content_hash,
            loaded_at: SystemTime::now(),
        })
    }
}

/// A host's slot, serving `served` from the start (`None`: empty until the first swap).
pub fn slot(
    fqdn: String,
    names: Vec<String>,
    source: CertSource,
    served: Option<Served>,
) -> (CertWriter, CertReader) {
    let slot = Arc::new(Slot {
        fqdn,
        names,
        source,
        state: ArcSwap::from_pointee(SlotState {
            served: served.map(Arc::new),
            status: ReloadStatus::default(),
        }),
    });
    (CertWriter(slot.clone()), CertReader(slot))
}

impl CertReader {
    pub fn fqdn(&self) -> &str {
        &self.0.fqdn
    }

    pub fn names(&self) -> &[String] {
        &self.0.names
    }

    pub fn source(&self) -> &CertSource {
        &self.0.source
    }

    /// The certificate and the reload status, as one consistent pair.
    pub fn state(&self) -> Arc<SlotState> {
        self.0.state.load_full()
    }

    /// What is served now (lock-free); `None` while an empty slot waits for its first swap.
    pub fn load(&self) -> Option<Arc<Served>> {
        self.0.state.load().served.clone()
    }

    /// Whether the slot serves a certificate (cheaper than [`CertReader::load`]).
    pub fn is_serving(&self) -> bool {
        self.0.state.load().served.is_some()
    }

    pub fn status(&self) -> ReloadStatus {
        self.0.state.load().status.clone()
    }

    /// Whether `writer` writes this slot.
    pub fn is_written_by(&self, writer: &CertWriter) -> bool {
        Arc::ptr_eq(&self.0, &writer.0)
    }
}

impl CertWriter {
    /// A reader of this slot.
    pub fn reader(&self) -> CertReader {
        CertReader(self.0.clone())
    }

    pub fn fqdn(&self) -> &str {
        &self.0.fqdn
    }

    /// Serves `served` from now on, with a successful reload status when `reloaded` (a
    /// start-up or new-configuration certificate is not a reload): one pointer store.
    pub fn swap(&self, served: Served, reloaded: bool) {
        let old = self.0.state.load();
        let status = if reloaded {
            succeeded()
        } else {
            old.status.clone()
        };
        self.0.state.store(Arc::new(SlotState {
            served: Some(Arc::new(served)),
            status,
        }));
    }

    /// Records a reload outcome that keeps what is served: a refusal and its reason, or
    /// (`None`) files that are back to what is served.
    pub fn record(&self, error: Option<String>) {
        let old = self.0.state.load();
        let status = match error {
            None => succeeded(),
            Some(error) => ReloadStatus {
                last_result: Some(ReloadResult::Failure),
                last_error: Some(error),
                last_attempt: Some(SystemTime::now()),
                last_success: old.status.last_success,
            },
        };
        self.0.state.store(Arc::new(SlotState {
            served: old.served.clone(),
            status,
        }));
    }
}

fn succeeded() -> ReloadStatus {
    let now = SystemTime::now();
    ReloadStatus {
        last_result: Some(ReloadResult::Success),
        last_error: None,
        last_attempt: Some(now),
        last_success: Some(now),
    }
}

/// The rustls resolver of one host: whatever the slot holds at handshake time.
impl ResolvesServerCert for CertReader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // None fails the handshake: an empty slot has nothing it may serve.
        self.0
            .state
            .load()
            .served
            .as_ref()
            .map(|served| served.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Alg, Ca, Leaf, leaf_info_stub};
    use rustls_pki_types::PrivatePkcs8KeyDer;

    fn served(serial: &str) -> Served {
        let (der, key) = Ca::root(Alg::P256).issue(&Leaf::new(&["a.test"], Alg::P256));
        let key = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
        let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
        Served {
            key: Arc::new(CertifiedKey::new(vec![der], key)),
            info: CertInfo {
                serial: serial.to_owned(),
                ..leaf_info_stub()
            },
            content_hash: [0; 32],
            loaded_at: SystemTime::now(),
        }
    }

    #[test]
    fn a_swap_publishes_certificate_and_status_together() {
        let (writer, reader) = slot(
            "a.test".into(),
            vec!["a.test".into()],
            CertSource::Internal,
            None,
        );
        assert!(!reader.is_serving());
        assert!(reader.status().last_result.is_none());
        let before = reader.state();
        writer.swap(served("01"), true);
        // The state read before is still whole: the old pair, never half of the new one.
        assert!(before.served.is_none() && before.status.last_result.is_none());
        let now = reader.state();
        assert_eq!(now.served.as_ref().unwrap().info.serial, "01");
        assert_eq!(now.status.last_result, Some(ReloadResult::Success));
        assert!(reader.is_written_by(&writer));
    }

    #[test]
    fn a_refusal_keeps_the_certificate_and_a_later_success_clears_the_error() {
        let (writer, reader) = slot(
            "a.test".into(),
            vec![],
            CertSource::Internal,
            Some(served("01")),
        );
        writer.record(Some("bad key".into()));
        let state = reader.state();
        assert_eq!(state.served.as_ref().unwrap().info.serial, "01");
        assert_eq!(state.status.last_result, Some(ReloadResult::Failure));
        assert_eq!(state.status.last_error.as_deref(), Some("bad key"));
        assert!(state.status.last_success.is_none());
        writer.record(None);
        assert_eq!(reader.status().last_result, Some(ReloadResult::Success));
        assert!(reader.status().last_error.is_none());
        // a start-up or new-config certificate is no reload: the status stays
        writer.swap(served("02"), false);
        assert_eq!(reader.load().unwrap().info.serial, "02");
        assert_eq!(reader.status().last_result, Some(ReloadResult::Success));
    }
}
