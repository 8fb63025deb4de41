//! Many hosts, few certificate files: within one pass over the hosts (the start, `check`,
//! a reload of several hosts), hosts that name the same files under the same policy share
//! one read and parse of the files, one check of every rule but the name rule, and one
//! rustls key. Only the name rule runs per host, so 10,000 names under one wildcard
//! certificate cost one chain verification and one private-key parse, not 10,000.
//!
//! A pass is short, and what it keeps is what the files held when it first read them: a
//! host-by-host pass could have seen a write land between two hosts; a shared pass gives
//! every host the same content, which is what a rotation wants anyway.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::check::{Report, check, check_names, common_name_of, files_of};
use crate::error::CertError;
use crate::inspect::CertInfo;
use crate::load::{CertBundle, load};
use crate::policy::Policy;
use crate::source::CertSource;
use crate::store::Served;
use crate::trust::TrustAnchors;

#[cfg(test)]
mod tests;

/// The files read in one pass, by source and policy.
pub struct SharedChecks<'a> {
    trust: &'a TrustAnchors,
    now: SystemTime,
    /// Few policies per source (usually one), so a short list after the hash probe.
    files: HashMap<CertSource, Vec<(Policy, Arc<SharedFiles>)>>,
}

/// One source's files as read in this pass, and what was worked out from them so far.
pub struct SharedFiles {
    pub bundle: CertBundle,
    source: CertSource,
    policy: Policy,
    /// The leaf's facts; `None` when it does not parse (the file rules then say so).
    info: OnceLock<Option<CertInfo>>,
    /// Every rule but the name rule: [`check`] with no names.
    report: OnceLock<Report>,
    /// What the files serve; `None` when the key is unusable (each host then asks again,
    /// to report its own error).
    served: OnceLock<Option<Served>>,
}

impl<'a> SharedChecks<'a> {
    /// A new pass: rules are evaluated against `trust` at `now`.
    pub fn new(trust: &'a TrustAnchors, now: SystemTime) -> Self {
        SharedChecks {
            trust,
            now,
            files: HashMap::new(),
        }
    }

    /// `source`'s files, read and parsed once per pass and policy. A failure to load is
    /// not kept: every host naming the files reports it, and a file that appears during
    /// the pass is seen by the hosts after it.
    pub fn load(
        &mut self,
        source: &CertSource,
        policy: &Policy,
    ) -> Result<Arc<SharedFiles>, CertError> {
        if let Some(found) = self
            .files
            .get(source)
            .and_then(|list| list.iter().find(|(p, _)| p == policy))
        {
            return Ok(found.1.clone());
        }
        let files = Arc::new(SharedFiles {
            bundle: load(source)?,
            source: source.clone(),
            policy: policy.clone(),
            info: OnceLock::new(),
            report: OnceLock::new(),
            served: OnceLock::new(),
        });
        self.files
            .entry(source.clone())
            .or_default()
            .push((policy.clone(), files.clone()));
        Ok(files)
    }

    /// What [`check`] says about `files` for a host answering `names`, violations in the
    /// same order: the name rule now, the other rules once per files and pass.
    pub fn check(&self, names: &[String], files: &SharedFiles) -> Report {
        let shared = files.report.get_or_init(|| {
            check(
                &[],
                &files.source,
                &files.bundle,
                &files.policy,
                self.trust,
                self.now,
            )
        });
        let mut report = Report::default();
        if let Some(info) = files.info() {
            let (cert_file, _) = files_of(&files.source);
            let leaf = files.bundle.chain.first();
            check_names(&mut report, &cert_file, names, info, || {
                leaf.and_then(|der| common_name_of(der))
            });
        }
        report.violations.extend(shared.violations.iter().cloned());
        report.warnings.extend(shared.warnings.iter().cloned());
        report
    }

    /// The trust anchors the chain rule verifies against.
    pub fn trust(&self) -> &'a TrustAnchors {
        self.trust
    }

    /// The instant the rules are evaluated at.
    pub fn now(&self) -> SystemTime {
        self.now
    }
}

impl SharedFiles {
    /// The leaf's facts (parsed once).
    pub fn info(&self) -> Option<&CertInfo> {
        self.info
            .get_or_init(|| self.bundle.leaf_info().ok())
            .as_ref()
    }

    /// What the files serve, made once per pass (parsing the private key is the costly
    /// part); each host gets its own copy of the facts and shares the rustls key.
    pub fn served(&self) -> Result<Served, CertError> {
        match self
            .served
            .get_or_init(|| Served::from_bundle(&self.bundle).ok())
        {
            Some(served) => Ok(served.clone()),
            None => Served::from_bundle(&self.bundle),
        }
    }
}
