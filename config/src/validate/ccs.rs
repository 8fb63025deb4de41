//! `[ccs]` and `ccs = true`: IIS's Central Certificate Store resolved into the `.pfx`
//! source every other host uses (`<path>/<fqdn>.pfx`, `_.` for a wildcard's `*.`, the
//! one password file), so reload, last-good, watching and metrics need nothing new.

use std::path::PathBuf;

use certfront_certs::{CertSource, PasswordSource};

use super::Validator;
use crate::names::normalize;
use crate::raw::{RawCcs, RawHost};

/// `[ccs]`, resolved.
pub(super) struct Ccs {
    path: PathBuf,
    password_file: PathBuf,
}

impl Validator<'_> {
    /// Reads `[ccs]`; warns when no host uses it.
    pub(super) fn ccs(&mut self, raw: Option<RawCcs>, hosts: &[RawHost]) {
        let Some(raw) = raw else { return };
        let path = match raw.path {
            Some(p) => self.path("ccs.path", &p),
            None => {
                self.problem(
                    "ccs.path",
                    "missing: the Central Certificate Store folder (on Linux, where the share \
                     is mounted, e.g. \"/mnt/ccs\")",
                );
                PathBuf::new()
            }
        };
        let password_file = match raw.password_file {
            Some(p) => self.path("ccs.password_file", &p),
            None => {
                self.problem(
                    "ccs.password_file",
                    "missing: a file whose first line is the password of the store's .pfx \
                     files (IIS: Central Certificate Store > Certificate Private Key Password)",
                );
                PathBuf::new()
            }
        };
        if !hosts.iter().any(|h| h.ccs == Some(true)) {
            self.warn("ccs", "no host has ccs = true: the store is not used");
        }
        self.ccs = Some(Ccs {
            path,
            password_file,
        });
    }

    /// The source of a `ccs = true` host, or `None` (with a problem) without `[ccs]`.
    pub(super) fn ccs_source(&mut self, at: &str, raw: &RawHost) -> Option<CertSource> {
        let Some(ccs) = &self.ccs else {
            self.problem(
                format!("{at}.ccs"),
                "set, but there is no [ccs] table: add [ccs] with path (the store's folder) \
                 and password_file",
            );
            return None;
        };
        let fqdn = normalize(raw.fqdn.as_deref()?);
        Some(CertSource::Pfx {
            path: ccs.path.join(crate::ccs_file_name(&fqdn)),
            password: PasswordSource::File(ccs.password_file.clone()),
        })
    }
}
