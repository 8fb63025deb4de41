//! From a checked config to certificates ready to serve: load every host's files,
//! hold each to the policy, and collect every violation before anything is bound.

use std::sync::Arc;
use std::time::SystemTime;

use certfront_certs::inspect::CertInfo;
use certfront_certs::{
    CertError, CertSource, InternalCa, Policy, Report, SharedChecks, TrustAnchors,
};
use certfront_config::Config;

use certfront_certs::store::Served;

use crate::error::{ClientAuthError, Problem, Refused};

/// Everything `run` needs, loaded and checked; nothing is bound yet.
pub struct Prepared {
    pub(crate) config: Config,
    pub(crate) ca: Option<Arc<InternalCa>>,
    pub(crate) trust: TrustAnchors,
    /// One per `config.hosts`, same order.
    /// One per `config.hosts`, same order; `None` only for an `acme = true` host that has no
    /// usable certificate yet (it serves nothing until the ACME engine stores one).
    pub(crate) served: Vec<Option<Served>>,
    pub(crate) warnings: Vec<String>,
    /// `[acme]` resolved, when some host uses it: the engine starts once listeners are bound.
    pub(crate) acme: Option<certfront_acme::Settings>,
}

/// A host's verdict, as `check` prints it.
pub(crate) struct HostVerdict {
    pub fqdn: String,
    pub served: Option<Served>,
    /// The leaf's facts whenever the files could be read, violations or not.
    pub info: Option<CertInfo>,
    pub violations: Vec<Problem>,
    pub warnings: Vec<String>,
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
            verdict.violations.extend(client_auth_problems(h));
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

/// The files of `[host.client_auth]`: a CA that loads, and a deny list that parses.
fn client_auth_problems(host: &certfront_config::Host) -> Vec<Problem> {
    let Some(auth) = &host.client_auth else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let mut problem = |source| {
        problems.push(Problem::ClientAuth {
            host: host.fqdn.clone(),
            source,
        })
    };
    match TrustAnchors::new(false, std::slice::from_ref(&auth.ca), &[]) {
        Ok(anchors) if anchors.is_empty() => problem(ClientAuthError::NoCa {
            path: auth.ca.clone(),
        }),
        Ok(_) => {}
        Err(e) => problem(ClientAuthError::Ca(e)),
    }
    if let Some(deny) = &auth.deny
        && let Err(e) = crate::mtls::read_deny_list(deny)
    {
        problem(ClientAuthError::DenyList(e));
    }
    problems
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

/// Loads and checks everything; `Err` holds every problem of every host.
pub fn prepare(config: Config) -> Result<Prepared, Refused> {
    let (ca, trust) = anchors(&config)?;
    let results = verdicts(&config, ca.as_deref(), &trust, SystemTime::now());
    let (mut errors, mut warnings) = ticket_key_findings(&config);
    let mut served = Vec::with_capacity(results.len());
    for verdict in results {
        errors.extend(verdict.violations);
        warnings.extend(verdict.warnings);
        served.push(verdict.served);
    }
    let acme = match crate::acme::settings(&config) {
        Ok(acme) => acme,
        Err(e) => {
            errors.push(Problem::Acme(e));
            None
        }
    };
    if let Some(acme) = &acme
        && let Err(e) = crate::acme::create_dirs(&config, acme)
    {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(Refused(errors));
    }
    Ok(Prepared {
        config,
        ca,
        trust,
        served,
        warnings,
        acme,
    })
}
