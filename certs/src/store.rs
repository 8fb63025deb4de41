//! The certificate a host serves right now, behind one atomic pointer.
//!
//! Handshakes read it lock-free ([`CertSlot::load`]); the reloader builds a whole new
//! [`Served`] away from the handshake path, checks it, then stores it in one swap. Old
//! values are freed when the last handshake holding them finishes (arc-swap's guarantee).
//! A slot may start empty (a host waiting for its first ACME certificate): its handshakes
//! then fail until the first store.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::error::CertError;
use crate::inspect::CertInfo;
use crate::load::CertBundle;
use crate::source::CertSource;
use arc_swap::ArcSwapOption;
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

/// A host's certificate slot: what it serves and where the files are.
#[derive(Debug)]
pub struct CertSlot {
    pub fqdn: String,
    pub names: Vec<String>,
    pub source: CertSource,
    served: ArcSwapOption<Served>,
    status: Mutex<ReloadStatus>,
}

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

impl CertSlot {
    pub fn new(fqdn: String, names: Vec<String>, source: CertSource, served: Served) -> Self {
        CertSlot {
            fqdn,
            names,
            source,
            served: ArcSwapOption::from_pointee(served),
            status: Mutex::new(ReloadStatus::default()),
        }
    }

    /// A slot that serves nothing until the first [`CertSlot::store`].
    pub fn empty(fqdn: String, names: Vec<String>, source: CertSource) -> Self {
        CertSlot {
            fqdn,
            names,
            source,
            served: ArcSwapOption::empty(),
            status: Mutex::new(ReloadStatus::default()),
        }
    }

    /// What is served now (lock-free); `None` while an empty slot waits for its first store.
    pub fn load(&self) -> Option<Arc<Served>> {
        self.served.load_full()
    }

    /// Whether the slot serves a certificate (cheaper than [`CertSlot::load`]).
    pub fn is_serving(&self) -> bool {
        self.served.load().is_some()
    }

    /// Swap in a checked certificate: one pointer store.
    pub fn store(&self, served: Served) {
        self.served.store(Some(Arc::new(served)));
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn record(&self, result: ReloadResult, error: Option<String>) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        status.last_result = Some(result);
        status.last_attempt = Some(now);
        if result == ReloadResult::Success {
            status.last_success = Some(now);
            status.last_error = None;
        } else {
            status.last_error = error;
        }
    }
}

/// The rustls resolver of one host: whatever the slot holds at handshake time.
#[derive(Debug)]
pub struct SlotResolver(pub Arc<CertSlot>);

impl ResolvesServerCert for SlotResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // None fails the handshake: an empty slot has nothing it may serve.
        self.0
            .served
            .load()
            .as_ref()
            .map(|served| served.key.clone())
    }
}
