//! The certificate rules of DESIGN "Certificate rules": every rule evaluated, every
//! violation reported, each naming the file, the rule, what was found and what is required.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;

use crate::error::CertError;
use crate::inspect::{CertInfo, KeyType, info_of, signature_facts};
use crate::load::{CertBundle, load};
use crate::names::covers;
use crate::policy::{HashAlg, Policy};
use crate::source::{CertSource, PasswordSource};
use crate::trust::TrustAnchors;

mod chain;
mod keys;
#[cfg(test)]
mod tests;
mod usage;
mod validity;

use chain::check_chain;
use keys::{check_key_file_mode, check_key_match};
use usage::{check_ext_key_usage, check_key_usage};
use validity::check_validity;

/// Which rule a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    Name,
    KeySize,
    Signature,
    KeyUsage,
    ExtendedKeyUsage,
    Validity,
    KeyMatch,
    Chain,
    KeyFileMode,
    /// The files could not be read at all.
    Load,
}

impl Rule {
    /// The rule's name in messages (and a good metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Name => "name",
            Rule::KeySize => "key size",
            Rule::Signature => "signature",
            Rule::KeyUsage => "key usage",
            Rule::ExtendedKeyUsage => "extended key usage",
            Rule::Validity => "validity",
            Rule::KeyMatch => "key match",
            Rule::Chain => "chain",
            Rule::KeyFileMode => "key file mode",
            Rule::Load => "load",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule: `{file}: {rule}: {detail}`.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The file holding the offending thing (cert file, key file, or the .pfx).
    pub file: PathBuf,
    pub rule: Rule,
    /// What was found and what is required.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file.display(), self.rule, self.detail)
    }
}

/// A host's verdict: empty `violations` means the certificate may be served.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Expiry within `expiry_warning_days`, a key readable by group/others (mode "warn").
    pub warnings: Vec<String>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    fn violate(&mut self, file: &Path, rule: Rule, detail: String) {
        self.violations.push(Violation {
            file: file.to_owned(),
            rule,
            detail,
        });
    }
}

/// Where the certificate and the key of a source live, for naming them in messages.
pub(crate) fn files_of(source: &CertSource) -> (PathBuf, Option<PathBuf>) {
    match source {
        CertSource::Pem { cert, key } => (cert.clone(), Some(key.clone())),
        CertSource::Pfx { path, .. } => (path.clone(), Some(path.clone())),
        CertSource::Internal => (PathBuf::from("(internal CA)"), None),
    }
}

/// Holds `bundle` to every rule for every name in `names` (fqdn and aliases) at `now`.
pub fn check(
    names: &[String],
    source: &CertSource,
    bundle: &CertBundle,
    policy: &Policy,
    trust: &TrustAnchors,
    now: SystemTime,
) -> Report {
    let (cert_file, key_file) = files_of(source);
    let mut report = Report::default();
    let key = Some((bundle, key_file.as_deref()));
    let rules = Rules {
        names,
        cert_file: &cert_file,
        chain: &bundle.chain,
        policy,
        trust,
        now,
    };
    if rules.run(&mut report, key) {
        if let Some(key_file) = key_file {
            check_key_file_mode(
                &mut report,
                &key_file,
                "the private key",
                policy.key_file_mode,
            );
        }
        if let CertSource::Pfx {
            password: PasswordSource::File(password_file),
            ..
        } = source
        {
            check_key_file_mode(
                &mut report,
                password_file,
                "the .pfx password",
                policy.key_file_mode,
            );
        }
    }
    report
}

/// Every rule that needs no private key (all but key match and key file mode), for a
/// certificate file checked before it is installed (`certs inspect --check`). `names`
/// may be empty: the name rule then has nothing to check.
pub fn check_certificate(
    names: &[String],
    cert_file: &Path,
    chain: &[CertificateDer<'static>],
    policy: &Policy,
    trust: &TrustAnchors,
    now: SystemTime,
) -> Report {
    let mut report = Report::default();
    let rules = Rules {
        names,
        cert_file,
        chain,
        policy,
        trust,
        now,
    };
    rules.run(&mut report, None);
    report
}

/// What the rules look at.
struct Rules<'a> {
    names: &'a [String],
    cert_file: &'a Path,
    chain: &'a [CertificateDer<'static>],
    policy: &'a Policy,
    trust: &'a TrustAnchors,
    now: SystemTime,
}

impl Rules<'_> {
    /// Every rule on the certificates, and key match when the key is given (the bundle
    /// and its key file); `false` when the leaf could not even be parsed.
    fn run(&self, report: &mut Report, key: Option<(&CertBundle, Option<&Path>)>) -> bool {
        let (file, policy) = (self.cert_file, self.policy);
        let Some(leaf_der) = self.chain.first() else {
            report.violate(file, Rule::Load, "no certificate in the file".to_owned());
            return false;
        };
        let leaf = match x509_parser::parse_x509_certificate(leaf_der) {
            Ok((_, leaf)) => leaf,
            Err(e) => {
                report.violate(
                    file,
                    Rule::Load,
                    format!("the leaf certificate cannot be parsed: {e}"),
                );
                return false;
            }
        };
        let info = info_of(&leaf, leaf_der);

        check_names(report, file, self.names, &info, || common_name(&leaf));
        check_key_size(report, file, &info, policy);
        check_signatures(report, file, self.chain, policy);
        check_key_usage(report, file, &info, policy);
        check_ext_key_usage(report, file, &info, policy);
        check_validity(report, file, &info, policy, self.now);
        if let Some((bundle, key_file)) = key {
            check_key_match(report, file, key_file, bundle, &leaf);
        }
        if policy.require_chain {
            check_chain(report, file, self.chain, &info, self.trust, self.now);
        }
        true
    }
}

/// Loads `source` then checks it; a load failure becomes one `Rule::Load` violation.
pub fn load_and_check(
    names: &[String],
    source: &CertSource,
    policy: &Policy,
    trust: &TrustAnchors,
    now: SystemTime,
) -> Result<(CertBundle, Report), Violation> {
    let bundle = load(source).map_err(|e| load_violation(source, &e))?;
    let report = check(names, source, &bundle, policy, trust, now);
    Ok((bundle, report))
}

/// A `CertError` as a `Rule::Load` violation naming the file the error is about.
pub fn load_violation(source: &CertSource, err: &CertError) -> Violation {
    Violation {
        file: err
            .path()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| files_of(source).0),
        rule: Rule::Load,
        detail: err.detail(),
    }
}

/// The name rule for `names` against the leaf's DNS names; `common_name` is asked only
/// when a name is not covered (the message mentions a CN that clients ignore).
pub(crate) fn check_names(
    report: &mut Report,
    file: &Path,
    names: &[String],
    info: &CertInfo,
    common_name: impl Fn() -> Option<String>,
) {
    let dns: Vec<&str> = info.dns_names().collect();
    for name in names {
        if dns.iter().any(|pattern| covers(pattern, name)) {
            continue;
        }
        let cn = common_name();
        let detail = match (dns.is_empty(), cn) {
            (true, Some(cn)) => format!(
                "certificate covers [] (no DNS name in Subject Alternative Name; clients ignore the subject CN {cn}), not {name}"
            ),
            _ => format!("certificate covers [{}], not {name}", dns.join(", ")),
        };
        report.violate(file, Rule::Name, detail);
    }
}

fn common_name(leaf: &X509Certificate<'_>) -> Option<String> {
    leaf.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// The leaf's subject CN, read from its DER.
pub(crate) fn common_name_of(leaf_der: &[u8]) -> Option<String> {
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der).ok()?;
    common_name(&leaf)
}

fn check_key_size(report: &mut Report, file: &Path, info: &CertInfo, policy: &Policy) {
    let bits = info.key_bits;
    let detail = match &info.key_type {
        KeyType::Rsa if bits < policy.min_rsa_bits => {
            format!(
                "RSA {bits} bits, policy requires >= {}",
                policy.min_rsa_bits
            )
        }
        KeyType::Rsa => return,
        KeyType::Other(what) => format!(
            "{what}, policy requires RSA >= {} or EC >= {} bits",
            policy.min_rsa_bits, policy.min_ec_bits
        ),
        ec if bits < policy.min_ec_bits => {
            format!(
                "{ec} ({bits} bits), policy requires EC >= {}",
                policy.min_ec_bits
            )
        }
        _ => return,
    };
    report.violate(file, Rule::KeySize, detail);
}

/// The leaf and every intermediate in the file; a self-signed root's own signature
/// protects nothing (clients trust it by its key), so it is not held to the rule.
fn check_signatures(
    report: &mut Report,
    file: &Path,
    chain: &[CertificateDer<'static>],
    policy: &Policy,
) {
    for (i, der) in chain.iter().enumerate() {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            report.violate(
                file,
                Rule::Load,
                format!("certificate #{} cannot be parsed", i + 1),
            );
            continue;
        };
        if i > 0 && cert.subject().as_raw() == cert.issuer().as_raw() {
            continue;
        }
        let (name, hash) = signature_facts(&cert.signature_algorithm);
        let whose = if i == 0 {
            String::new()
        } else {
            format!("intermediate {} ", cert.subject())
        };
        let min = policy.min_signature_hash;
        let found = match hash {
            Some(hash) if hash >= min => continue,
            Some(hash) => hash.to_string(),
            // Ed25519 hashes internally with SHA-512
            None if name == "Ed25519" => continue,
            None => "unknown hash".to_owned(),
        };
        let required = if min == HashAlg::Sha512 {
            min.to_string()
        } else {
            format!("{min} or stronger")
        };
        report.violate(
            file,
            Rule::Signature,
            format!("{whose}signed with {name} ({found}), policy requires {required}"),
        );
    }
}
