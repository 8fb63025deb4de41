//! Many hosts, few certificate files: within one pass over the hosts (the start, `check`,
//! a reload of several hosts), hosts that name the same files under the same policy share
//! one read and parse of the files, one check of every rule but the name rule, and one
//! rustls key. Only the name rule runs per host, so 10,000 names under one wildcard
//! certificate cost one chain verification and one private-key parse, not 10,000.
//!
//! A pass is short, and what it keeps is what the files held when it first read them: a
//! host-by-host pass could have seen a write land between two hosts; a shared pass gives
//! every host the same content, which is what a rotation wants anyway.
//!
//! [`SharedChecks::load_host`] and [`SharedChecks::check_host`] are the one way a host's
//! certificate is read and held to its policy, whatever its source (files, `.pfx`, the
//! internal CA, the ACME store): the start, `check`, a certificate-file reload and a
//! configuration reload all call them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::ca::InternalCa;
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
    /// Issues the certificates of `internal = true` hosts.
    ca: Option<&'a InternalCa>,
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
            ca: None,
            now,
            files: HashMap::new(),
        }
    }

    /// The internal CA that issues for `internal = true` hosts in this pass.
    pub fn with_ca(mut self, ca: Option<&'a InternalCa>) -> Self {
        self.ca = ca;
        self
    }

    /// A host's certificate, from whatever source it names: issued now for its `names`
    /// by the internal CA (meeting `policy`), or its files, read once per pass.
    /// [`CertError::InternalSource`] when an internal host has no CA in this pass.
    pub fn load_host(
        &mut self,
        fqdn: &str,
        names: &[String],
        source: &CertSource,
        policy: &Policy,
    ) -> Result<HostFiles, CertError> {
        match source {
            CertSource::Internal => match self.ca {
                Some(ca) => ca.issue_for(fqdn, names, policy).map(HostFiles::Issued),
                None => Err(CertError::InternalSource),
            },
            files => self.load(files, policy).map(HostFiles::Shared),
        }
    }

    /// Every rule for a host answering `names`, on what [`SharedChecks::load_host`] read.
    pub fn check_host(
        &self,
        names: &[String],
        source: &CertSource,
        policy: &Policy,
        files: &HostFiles,
    ) -> Report {
        match files {
            HostFiles::Issued(bundle) => check(names, source, bundle, policy, self.trust, self.now),
            HostFiles::Shared(files) => self.check(names, files),
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

/// A host's certificate as a pass read it: issued for that host alone (internal CA), or
/// files shared with the other hosts of the pass that name them.
pub enum HostFiles {
    Issued(CertBundle),
    Shared(Arc<SharedFiles>),
}

impl HostFiles {
    /// The hash of what was read, compared with what is served.
    pub fn content_hash(&self) -> [u8; 32] {
        match self {
            HostFiles::Issued(bundle) => bundle.content_hash,
            HostFiles::Shared(files) => files.bundle.content_hash,
        }
    }

    /// What these files serve.
    pub fn served(&self) -> Result<Served, CertError> {
        match self {
            HostFiles::Issued(bundle) => Served::from_bundle(bundle),
            HostFiles::Shared(files) => files.served(),
        }
    }

    /// The leaf's facts, when it parses.
    pub fn info(&self) -> Option<CertInfo> {
        match self {
            HostFiles::Issued(bundle) => bundle.leaf_info().ok(),
            HostFiles::Shared(files) => files.info().cloned(),
        }
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
