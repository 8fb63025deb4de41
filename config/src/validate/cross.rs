//! Rules across hosts: a name belongs to one host only, and `default_host`
//! must be one of the hosts' names.

use std::collections::HashMap;

use super::Validator;

/// Every normalized name seen so far, with where it was first claimed.
#[derive(Default)]
pub(super) struct Claimed {
    names: HashMap<String, Claim>,
}

struct Claim {
    host: usize,
    /// The TOML path that claimed it, e.g. `host[0].aliases[1]`.
    path: String,
    /// The claiming host's fqdn, to name the host in messages.
    fqdn: String,
}

impl Validator<'_> {
    /// Records host `i`'s names, noting a name listed twice in the host or
    /// already claimed by an earlier host (certificates for one name must not
    /// conflict, and SNI could not tell which host is meant).
    pub(super) fn claim_names(
        &mut self,
        claimed: &mut Claimed,
        i: usize,
        fqdn: Option<String>,
        aliases: Vec<String>,
    ) {
        let this_fqdn = fqdn.clone().unwrap_or_default();
        let named = fqdn
            .map(|f| (format!("host[{i}].fqdn"), f))
            .into_iter()
            .chain(
                aliases
                    .into_iter()
                    .enumerate()
                    .map(|(j, a)| (format!("host[{i}].aliases[{j}]"), a)),
            );
        for (path, name) in named {
            if name.is_empty() {
                continue; // already reported as an invalid name
            }
            match claimed.names.get(&name) {
                Some(first) if first.host == i => {
                    let message = format!("{name:?} is already {}: list a name once", first.path);
                    self.problem(path, message);
                }
                Some(first) => {
                    let message = format!(
                        "{name:?} is claimed by host[{}] ({:?}) and host[{i}] ({this_fqdn:?}): \
                         a name must belong to one host only",
                        first.host, first.fqdn
                    );
                    self.problem(path, message);
                }
                None => {
                    let claim = Claim {
                        host: i,
                        path,
                        fqdn: this_fqdn.clone(),
                    };
                    claimed.names.insert(name, claim);
                }
            }
        }
    }

    /// Resolves `tls.default_host` (an fqdn or an alias) to its host's fqdn.
    pub(super) fn default_host(&mut self, name: &str, claimed: &Claimed) -> Option<String> {
        if let Some(claim) = claimed.names.get(&crate::names::normalize(name)) {
            return Some(claim.fqdn.clone());
        }
        let mut known: Vec<&Claim> = claimed.names.values().collect();
        known.sort_by_key(|c| c.host);
        let known: Vec<&str> = known
            .iter()
            .filter(|c| c.path.ends_with(".fqdn"))
            .map(|c| c.fqdn.as_str())
            .collect();
        let message = format!(
            "{name:?} is not the fqdn or an alias of any [[host]] (hosts: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
        self.problem("tls.default_host", message);
        None
    }
}
