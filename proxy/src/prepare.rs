//! From a checked config to certificates ready to serve: load every host's files,
//! hold each to the policy, and collect every violation before anything is bound.
//!
//! [`inspect`] is the one pass over every file a configuration names (certificates, keys,
//! `.pfx` and password files, `tls.trust`, `upstream_ca`, client CAs, deny lists, ticket
//! keys), each read and checked once; `check` prints it, and [`prepare`] (start and a
//! configuration reload) turns it into what is served. So `check` and `run` agree by
//! construction: same problems, same words, same order.

use std::sync::Arc;
use std::time::SystemTime;

use certfront_certs::inspect::CertInfo;
use certfront_certs::{
    CertError, CertSource, InternalCa, Policy, Report, SharedChecks, TrustAnchors,
};
use certfront_config::Config;

use certfront_certs::deny::DenyList;
use certfront_certs::store::Served;

use crate::error::{ClientAuthError, Problem, Refused};
use crate::mtls::ClientAuthFiles;

/// Everything `run` needs, loaded and checked; nothing is bound yet.
pub struct Prepared {
    pub(crate) config: Config,
    pub(crate) ca: Option<Arc<InternalCa>>,
    pub(crate) trust: TrustAnchors,
    /// One per `config.hosts`, same order.
    pub(crate) hosts: Vec<PreparedHost>,
    pub(crate) warnings: Vec<String>,
    /// `[acme]` resolved, when some host uses it: the engine starts once listeners are bound.
    pub(crate) acme: Option<certfront_acme::Settings>,
}

/// One host as the pass read it, for the snapshot to build from without reading again.
pub(crate) struct PreparedHost {
    /// `None` only for an `acme = true` host that has no usable certificate yet (it serves
    /// nothing until the ACME engine stores one).
    pub served: Option<Served>,
    pub client_auth: Option<ClientAuthFiles>,
    pub upstream_ca: Option<TrustAnchors>,
}

/// A host's verdict, as `check` prints it.
pub(crate) struct HostVerdict {
    pub fqdn: String,
    pub served: Option<Served>,
    /// The leaf's facts whenever the files could be read, violations or not.
    pub info: Option<CertInfo>,
    pub violations: Vec<Problem>,
    pub warnings: Vec<String>,
    pub client_auth: Option<ClientAuthFiles>,
    pub upstream_ca: Option<TrustAnchors>,
}

/// What one pass found in a configuration's files: `check` prints it, [`prepare`] serves
/// it when nothing is wrong.
pub(crate) struct Inspection {
    pub config: Config,
    pub ca: Option<Arc<InternalCa>>,
    /// `None` when `tls.trust` or the internal CA could not be loaded (nothing else is
    /// checked then: every chain rule needs them).
    pub trust: Option<TrustAnchors>,
    /// One per `config.hosts`, same order (empty when `trust` is `None`).
    pub hosts: Vec<HostVerdict>,
    /// Problems of no single host (trust anchors, ticket keys, `[acme]`).
    pub before: Vec<Problem>,
    pub after: Vec<Problem>,
    pub warnings: Vec<String>,
    pub acme: Option<certfront_acme::Settings>,
}

impl Inspection {
    /// Every problem, in the order `check` and `run` print them.
    pub(crate) fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.before
            .iter()
            .chain(self.hosts.iter().flat_map(|h| &h.violations))
            .chain(&self.after)
    }
}

/// Loads the trust anchors and the internal CA (when a host asks for it).
pub(crate) fn anchors(config: &Config) -> Result<(Option<Arc<InternalCa>>, TrustAnchors), Problem> {
    let ca = if config
        .hosts
        .iter()
        .any(|h| matches!(h.source, CertSource::Internal))
    {
        // The root's name constraints cover the domains of every internal host.
        let internal_names: Vec<String> = config
            .hosts
            .iter()
            .filter(|h| matches!(h.source, CertSource::Internal))
            .flat_map(|h| h.names())
            .collect();
        let ca = InternalCa::load_or_create(&config.server.state_dir, &internal_names)
            .map_err(Problem::InternalCa)?;
        Some(Arc::new(ca))
    } else {
        None
    };
    let extra: Vec<_> = ca.iter().map(|ca| ca.root_der()).collect();
    let trust = TrustAnchors::new(true, &config.tls.trust, &extra).map_err(Problem::Trust)?;
    Ok((ca, trust))
}

/// A host's certificate load, as a problem naming the host: an internal host without a
/// CA is said in those words.
pub(crate) fn load_problem(fqdn: &str, source: CertError) -> Problem {
    match source {
        CertError::InternalSource => Problem::NoInternalCa {
            host: fqdn.to_owned(),
        },
        source => Problem::Cert {
            host: fqdn.to_owned(),
            source,
        },
    }
}

/// Loads and checks one host's certificate through the one pipeline
/// ([`SharedChecks::load_host`]); the verdict holds every violation, formatted.
pub(crate) fn load_host(
    fqdn: &str,
    names: &[String],
    source: &CertSource,
    policy: &Policy,
    shared: &mut SharedChecks<'_>,
) -> HostVerdict {
    let files = match shared.load_host(fqdn, names, source, policy) {
        Ok(files) => files,
        Err(e) => {
            return HostVerdict {
                fqdn: fqdn.to_owned(),
                served: None,
                info: None,
                violations: vec![load_problem(fqdn, e)],
                warnings: Vec::new(),
                client_auth: None,
                upstream_ca: None,
            };
        }
    };
    let report = shared.check_host(names, source, policy, &files);
    verdict(fqdn, report, || files.served(), || files.info())
}

/// A host's verdict from its report: what it serves when nothing is violated.
fn verdict(
    fqdn: &str,
    report: Report,
    served: impl FnOnce() -> Result<Served, CertError>,
    info: impl FnOnce() -> Option<CertInfo>,
) -> HostVerdict {
    let warnings = report
        .warnings
        .iter()
        .map(|w| format!("host {fqdn:?}: {w}"))
        .collect();
    let mut violations: Vec<Problem> = report
        .violations
        .into_iter()
        .map(|violation| Problem::Violation {
            host: fqdn.to_owned(),
            violation,
        })
        .collect();
    let mut served_now = None;
    if violations.is_empty() {
        match served() {
            Ok(s) => served_now = Some(s),
            Err(source) => violations.push(Problem::Cert {
                host: fqdn.to_owned(),
                source,
            }),
        }
    }
    let info = match &served_now {
        Some(s) => Some(s.info.clone()),
        None => info(),
    };
    HostVerdict {
        fqdn: fqdn.to_owned(),
        served: served_now,
        info,
        violations,
        warnings,
        client_auth: None,
        upstream_ca: None,
    }
}

/// Every host's verdict, in config order.
pub(crate) fn verdicts(
    config: &Config,
    ca: Option<&InternalCa>,
    trust: &TrustAnchors,
    now: SystemTime,
) -> Vec<HostVerdict> {
    let mut shared = SharedChecks::new(trust, now).with_ca(ca);
    config
        .hosts
        .iter()
        .map(|h| {
            let mut verdict = load_host(&h.fqdn, &h.names(), &h.source, &h.policy, &mut shared);
            if h.acme {
                await_acme(&mut verdict);
            }
            verdict.client_auth =
                client_auth_files(h, &mut verdict.violations, &mut verdict.warnings);
            verdict.upstream_ca = upstream_ca(h, &mut verdict.violations);
            verdict
        })
        .collect()
}

/// An ACME host whose stored pair is missing or unusable is not a reason to refuse the
/// start: the engine orders a new one at once. Its problems become warnings that say so.
fn await_acme(verdict: &mut HostVerdict) {
    if verdict.violations.is_empty() {
        return;
    }
    let why: Vec<String> = std::mem::take(&mut verdict.violations)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let why = why.join("; ");
    verdict.warnings.push(format!(
        "host {:?}: waits for a certificate from ACME (no usable stored certificate: {why})",
        verdict.fqdn
    ));
}

/// The files of `[host.client_auth]`: a CA that loads, a deny list that parses and CRLs
/// signed by that CA; `None` (and the problems pushed) when any does not.
fn client_auth_files(
    host: &certfront_config::Host,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Option<ClientAuthFiles> {
    let auth = host.client_auth.as_ref()?;
    let mut problem = |source| {
        problems.push(Problem::ClientAuth {
            host: host.fqdn.clone(),
            source,
        })
    };
    // Read once: the anchors and the certificates CRL signatures are checked against.
    let ca = match certfront_certs::read_certificates(&auth.ca, None)
        .and_then(|ders| Ok((TrustAnchors::from_file_ders(&auth.ca, &ders)?, ders)))
    {
        Ok((anchors, _)) if anchors.is_empty() => {
            problem(ClientAuthError::NoCa {
                path: auth.ca.clone(),
            });
            None
        }
        Ok(ca) => Some(ca),
        Err(e) => {
            problem(ClientAuthError::Ca(e));
            None
        }
    };
    let deny = match &auth.deny {
        Some(deny) => match crate::mtls::read_deny_list(deny) {
            Ok(list) => Some(list),
            Err(e) => {
                problem(ClientAuthError::DenyList(e));
                None
            }
        },
        None => Some(DenyList::default()),
    };
    let (ca, ca_ders) = ca?;
    let crls = match certfront_certs::crl::load(&auth.crl, &ca_ders, None) {
        Ok(crls) => Some(crls),
        Err(e) => {
            problem(ClientAuthError::Crl(e));
            None
        }
    };
    let crls = crls?;
    stale_crl_warnings(host, auth, &crls, warnings);
    Some(ClientAuthFiles {
        ca,
        ca_ders,
        deny: deny?,
        crls,
    })
}

/// A CRL past its nextUpdate is loaded (it is the newest the CA published) but said
/// loudly: with `crl_expired = "refuse"` its issuer's certificates are refused until a
/// fresh one is loaded.
fn stale_crl_warnings(
    host: &certfront_config::Host,
    auth: &certfront_config::ClientAuth,
    crls: &certfront_certs::crl::CrlSet,
    warnings: &mut Vec<String>,
) {
    let now = crate::clock::unix(SystemTime::now());
    for crl in crls.iter() {
        let Some(next) = crl.next_update.filter(|n| *n < now) else {
            continue;
        };
        let effect = match auth.crl_expired {
            certfront_config::CrlExpired::Refuse => {
                "every client certificate it covers is refused (crl_expired = \"refuse\") until a fresh CRL is loaded"
            }
            certfront_config::CrlExpired::Accept => {
                "its list is still enforced (crl_expired = \"accept\")"
            }
        };
        warnings.push(format!(
            "host {:?}: client_auth.crl {}: CRL of {:?} is past its nextUpdate ({}): {effect}",
            host.fqdn,
            crl.path.display(),
            crl.issuer,
            crate::clock::fmt_time(next),
        ));
    }
}

/// `upstream_ca`, read once: the extra roots an https upstream is verified against.
fn upstream_ca(host: &certfront_config::Host, problems: &mut Vec<Problem>) -> Option<TrustAnchors> {
    let path = host.upstream_ca.as_ref()?;
    match TrustAnchors::new(false, std::slice::from_ref(path), &[]) {
        Ok(anchors) => Some(anchors),
        Err(source) => {
            problems.push(Problem::UpstreamCa {
                host: host.fqdn.clone(),
                source,
            });
            None
        }
    }
}

/// `tls.ticket_key_file`: problems (the file is unusable) and warnings. Its mode is held
/// to `policy.key_file_mode` like a private key: whoever reads it can decrypt tickets.
pub(crate) fn ticket_key_findings(config: &Config) -> (Vec<Problem>, Vec<String>) {
    let Some(path) = config
        .tls
        .ticket_key_file
        .as_ref()
        .filter(|_| config.tls.resumption)
    else {
        return (Vec::new(), Vec::new());
    };
    if let Err(e) = crate::tickets::TicketKeys::load(path) {
        return (vec![Problem::TicketKeys(e)], Vec::new());
    }
    #[cfg(unix)]
    {
        use certfront_certs::KeyFileMode;
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let problem = Problem::TicketKeyMode {
                path: path.clone(),
                mode: meta.permissions().mode() & 0o777,
            };
            return match config.policy.key_file_mode {
                KeyFileMode::Refuse => (vec![problem], Vec::new()),
                KeyFileMode::Warn => (Vec::new(), vec![problem.to_string()]),
                KeyFileMode::Ignore => (Vec::new(), Vec::new()),
            };
        }
    }
    (Vec::new(), Vec::new())
}

/// Reads and checks every file `config` names, once; nothing is bound or served.
pub(crate) fn inspect(config: Config) -> Inspection {
    let (ca, trust) = match anchors(&config) {
        Ok((ca, trust)) => (ca, trust),
        Err(problem) => {
            return Inspection {
                config,
                ca: None,
                trust: None,
                hosts: Vec::new(),
                before: vec![problem],
                after: Vec::new(),
                warnings: Vec::new(),
                acme: None,
            };
        }
    };
    let hosts = verdicts(&config, ca.as_deref(), &trust, SystemTime::now());
    let (before, mut warnings) = ticket_key_findings(&config);
    for verdict in &hosts {
        warnings.extend(verdict.warnings.iter().cloned());
    }
    let mut after = Vec::new();
    // [acme] is checked offline: the EAB key's variable and acme.ca, not the server.
    let acme = match crate::acme::settings(&config) {
        Ok(acme) => acme,
        Err(e) => {
            after.push(Problem::Acme(e));
            None
        }
    };
    Inspection {
        config,
        ca,
        trust: Some(trust),
        hosts,
        before,
        after,
        warnings,
        acme,
    }
}

/// Loads and checks everything; `Err` holds every problem of every host.
pub fn prepare(config: Config) -> Result<Prepared, Refused> {
    let inspection = inspect(config);
    let Inspection {
        config,
        ca,
        trust,
        hosts,
        before,
        mut after,
        warnings,
        acme,
    } = inspection;
    // Only a start or reload creates the ACME directories; `check` changes nothing.
    if let Some(acme) = &acme
        && let Err(e) = crate::acme::create_dirs(&config, acme)
    {
        after.push(e);
    }
    let clean =
        before.is_empty() && after.is_empty() && hosts.iter().all(|h| h.violations.is_empty());
    let (Some(trust), true) = (trust, clean) else {
        return Err(Refused(
            before
                .into_iter()
                .chain(hosts.into_iter().flat_map(|h| h.violations))
                .chain(after)
                .collect(),
        ));
    };
    Ok(Prepared {
        config,
        ca,
        trust,
        hosts: hosts
            .into_iter()
            .map(|h| PreparedHost {
                served: h.served,
                client_auth: h.client_auth,
                upstream_ca: h.upstream_ca,
            })
            .collect(),
        warnings,
        acme,
    })
}
