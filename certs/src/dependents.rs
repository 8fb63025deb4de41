//! The CA certificates a configuration depends on besides the served leaves (intermediates,
//! trust anchors, client and upstream CAs, the internal CA root), each with what an expiry
//! alert needs: role, a short subject, thumbprint and notAfter.
//!
//! Any of them expiring breaks clients as surely as an expired leaf: an intermediate in a
//! served chain, a `tls.trust` root the chain rule needs at the next reload, a
//! `client_auth.ca` every mutual-TLS client is verified against, an `upstream_ca` the
//! re-encrypted upstream connections need, the internal CA root behind the internal hosts.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;

use crate::inspect::{sha1_hex, unix_seconds};

/// Why certfront depends on a CA certificate; the order is the one listings use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaRole {
    /// A certificate after the leaf in a served chain (what clients build their path with).
    Intermediate,
    /// A root from a `tls.trust` file.
    Trust,
    /// A CA from a host's `client_auth.ca`.
    ClientCa,
    /// A CA from a host's `upstream_ca`.
    UpstreamCa,
    /// The root of certfront's internal CA.
    InternalCa,
}

impl CaRole {
    /// The `role` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CaRole::Intermediate => "intermediate",
            CaRole::Trust => "trust",
            CaRole::ClientCa => "client_ca",
            CaRole::UpstreamCa => "upstream_ca",
            CaRole::InternalCa => "internal_ca",
        }
    }
}

impl fmt::Display for CaRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One CA certificate certfront depends on, once per role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependedCa {
    pub role: CaRole,
    /// The subject's CN, else its first RDNs; at most [`SUBJECT_MAX_CHARS`] characters.
    pub subject: String,
    /// SHA-1 of the DER, upper-case hex (the Windows thumbprint).
    pub thumbprint: String,
    /// Unix seconds.
    pub not_after: i64,
    /// Where it was found (hosts for intermediates, file paths otherwise), first seen first,
    /// without repeats.
    pub origins: Vec<String>,
}

impl DependedCa {
    /// Whole days until notAfter (negative once expired), rounded down.
    pub fn days_left(&self, now: SystemTime) -> i64 {
        self.not_after
            .saturating_sub(unix_seconds(now))
            .div_euclid(86_400)
    }
}

/// A subject is a metric label: long enough to recognise, short enough to stay one line.
pub const SUBJECT_MAX_CHARS: usize = 64;

/// Lists the CAs behind `inputs` (role, origin, DER), once per (role, thumbprint), sorted by
/// role, then soonest notAfter first. A certificate that cannot be parsed is logged and
/// left out: every input has already been read by the loaders that use it, so this only
/// happens with an encoding those accept and x509-parser does not.
pub fn depended_cas<'a>(
    inputs: impl IntoIterator<Item = (CaRole, &'a str, &'a [u8])>,
) -> Vec<DependedCa> {
    let mut out: Vec<DependedCa> = Vec::new();
    let mut seen: HashMap<(CaRole, String), usize> = HashMap::new();
    // An intermediate that 10,000 hosts serve has 10,000 origins: listed once each by a
    // hash probe, not a scan of the list.
    let mut listed: HashSet<(usize, &str)> = HashSet::new();
    for (role, origin, der) in inputs {
        let thumbprint = sha1_hex(der);
        if let Some(&i) = seen.get(&(role, thumbprint.clone())) {
            if listed.insert((i, origin)) {
                out[i].origins.push(origin.to_owned());
            }
            continue;
        }
        let cert = match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => cert,
            Err(e) => {
                tracing::warn!(
                    role = role.as_str(),
                    origin,
                    thumbprint,
                    "a CA certificate cannot be parsed, its expiry is not watched: {e}"
                );
                continue;
            }
        };
        seen.insert((role, thumbprint.clone()), out.len());
        listed.insert((out.len(), origin));
        out.push(DependedCa {
            role,
            subject: short_subject(&cert),
            thumbprint,
            not_after: cert.validity().not_after.timestamp(),
            origins: vec![origin.to_owned()],
        });
    }
    out.sort_by(|a, b| {
        (a.role, a.not_after, &a.subject, &a.thumbprint).cmp(&(
            b.role,
            b.not_after,
            &b.subject,
            &b.thumbprint,
        ))
    });
    out
}

/// The CN when there is one (what people call a CA by), else the subject's RDNs in order;
/// control characters become spaces and the result is cut at [`SUBJECT_MAX_CHARS`].
fn short_subject(cert: &X509Certificate<'_>) -> String {
    let cn = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
        .map(str::trim)
        .filter(|cn| !cn.is_empty());
    let text = match cn {
        Some(cn) => cn.to_owned(),
        None => cert.subject().to_string(),
    };
    bounded(&text)
}

fn bounded(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return "(empty subject)".to_owned();
    }
    if clean.chars().count() <= SUBJECT_MAX_CHARS {
        return clean.to_owned();
    }
    let mut cut: String = clean.chars().take(SUBJECT_MAX_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
