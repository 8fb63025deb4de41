//! Reloading the whole configuration: parse and validate the file, load and check every
//! certificate and trust file, build a complete new configuration snapshot, and only then swap
//! it in. Anything wrong anywhere keeps the running snapshot and is reported.

use std::path::Path;
use std::sync::Arc;

use certfront_config::Config;

use crate::error::Problem;
use crate::metrics::Metrics;
use crate::snapshot::{Built, Snapshot};

/// A checked candidate, ready to be swapped in.
pub(super) struct Candidate {
    pub built: Built,
    /// Settings that changed in the file but only apply after a restart.
    pub restart_needed: Vec<String>,
    pub warnings: Vec<String>,
}

/// Builds a candidate from the file at `path` (blocking: file I/O, signature checks).
/// `Err` holds every problem, as `check` would print them.
pub(super) fn candidate(
    path: &Path,
    current: &Snapshot,
    metrics: &Arc<Metrics>,
) -> Result<Candidate, Vec<Problem>> {
    let mut config = certfront_config::load(path).map_err(|e| {
        e.to_string()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| Problem::Config(l.to_owned()))
            .collect::<Vec<_>>()
    })?;
    let restart_needed = keep_listeners(&current.config, &mut config);
    // A URL new to this configuration is downloaded now; the others have a cached copy.
    let fetch_warnings = crate::crlfetch::prime(&mut config, crate::crlfetch::When::Reload)
        .map_err(|problems| {
            problems
                .into_iter()
                .map(Problem::Config)
                .collect::<Vec<_>>()
        })?;
    let prepared = crate::prepare::prepare(config).map_err(|refused| refused.0)?;
    let mut warnings = prepared.warnings.clone();
    warnings.extend(fetch_warnings);
    let built =
        Snapshot::build(prepared, Some(current), metrics).map_err(|e| vec![Problem::Build(e)])?;
    Ok(Candidate {
        built,
        restart_needed,
        warnings,
    })
}

/// Listener addresses and connection limits belong to the listening sockets bound at
/// start: a new value is reported as needing a restart, and the running one is kept in
/// the new snapshot so it describes what really runs.
pub(super) fn keep_listeners(running: &Config, new: &mut Config) -> Vec<String> {
    let mut changed = Vec::new();
    let (server, limits) = (&running.server, &running.limits);
    let mut keep = |name: &str, differed: bool| {
        if differed {
            changed.push(name.to_owned());
        }
    };
    keep(
        "server.listen",
        restore(&mut new.server.listen, &server.listen),
    );
    keep(
        "server.admin",
        restore(&mut new.server.admin, &server.admin),
    );
    keep(
        "server.http_redirect",
        restore(&mut new.server.http_redirect, &server.http_redirect),
    );
    // The writer thread holds the file it opened at start (SIGUSR1 reopens that path).
    keep(
        "server.access_log_file",
        restore(&mut new.server.access_log_file, &server.access_log_file),
    );
    keep(
        "limits.max_connections",
        restore(&mut new.limits.max_connections, &limits.max_connections),
    );
    keep(
        "limits.redirect_max_connections",
        restore(
            &mut new.limits.redirect_max_connections,
            &limits.redirect_max_connections,
        ),
    );
    changed
}

/// Puts `running` back into `new`; whether they differed.
fn restore<T: PartialEq + Clone>(new: &mut T, running: &T) -> bool {
    if new == running {
        return false;
    }
    *new = running.clone();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let toml = format!(
            "[server]\nlisten = [\"127.0.0.1:8443\"]\n{extra}\n[[host]]\nfqdn = \"app.localhost\"\n\
             internal = true\nrespond = {{ body = \"x\" }}\n"
        );
        certfront_config::parse(&toml, Path::new("/tmp")).expect("config")
    }

    #[test]
    fn listener_changes_are_reported_and_not_applied() {
        let running = config("admin = \"127.0.0.1:9443\"");
        let mut new = config("admin = \"127.0.0.1:9444\"\ndrain_seconds = 5");
        new.server.listen = vec!["0.0.0.0:443".parse().unwrap()];
        new.limits.max_connections = 5;
        let changed = keep_listeners(&running, &mut new);
        assert_eq!(
            changed,
            ["server.listen", "server.admin", "limits.max_connections"]
        );
        assert_eq!(new.server.listen, running.server.listen);
        assert_eq!(new.server.admin, running.server.admin);
        assert_eq!(new.limits.max_connections, running.limits.max_connections);
        // Everything else applies.
        assert_eq!(new.server.drain_seconds, 5);
    }

    #[test]
    fn nothing_to_report_when_listeners_stay() {
        let running = config("");
        let mut new = config("drain_seconds = 3");
        assert!(keep_listeners(&running, &mut new).is_empty());
    }
}
