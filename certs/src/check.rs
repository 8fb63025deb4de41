//! The certificate rules of DESIGN "Certificate rules": every rule evaluated, every
//! violation reported, each naming the file, the rule, what was found and what is required.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::aws_lc_rs::default_provider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, Error as TlsError};
use rustls_pki_types::UnixTime;
use x509_parser::certificate::X509Certificate;

use crate::error::CertError;
use crate::inspect::{CertInfo, KeyType, info_of, signature_facts, unix_seconds};
use crate::keys::key_matches;
use crate::load::{CertBundle, load};
use crate::names::covers;
use crate::policy::{HashAlg, KeyFileMode, Policy};
use crate::source::CertSource;
use crate::trust::TrustAnchors;

#[cfg(test)]
mod tests;

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
fn files_of(source: &CertSource) -> (PathBuf, Option<PathBuf>) {
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
    let Some(leaf_der) = bundle.chain.first() else {
        report.violate(
            &cert_file,
            Rule::Load,
            "no certificate in the file".to_owned(),
        );
        return report;
    };
    let leaf = match x509_parser::parse_x509_certificate(leaf_der) {
        Ok((_, leaf)) => leaf,
        Err(e) => {
            report.violate(
                &cert_file,
                Rule::Load,
                format!("the leaf certificate cannot be parsed: {e}"),
            );
            return report;
        }
    };
    let info = info_of(&leaf, leaf_der);

    check_names(&mut report, &cert_file, names, &leaf, &info);
    check_key_size(&mut report, &cert_file, &info, policy);
    check_signatures(&mut report, &cert_file, bundle, policy);
    check_key_usage(&mut report, &cert_file, &info, policy);
    check_ext_key_usage(&mut report, &cert_file, &info, policy);
    check_validity(&mut report, &cert_file, &info, policy, now);
    check_key_match(&mut report, &cert_file, key_file.as_deref(), bundle, &leaf);
    if policy.require_chain {
        check_chain(&mut report, &cert_file, bundle, &info, trust, now);
    }
    if let Some(key_file) = key_file {
        check_key_file_mode(&mut report, &key_file, policy.key_file_mode);
    }
    report
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

fn check_names(
    report: &mut Report,
    file: &Path,
    names: &[String],
    leaf: &X509Certificate<'_>,
    info: &CertInfo,
) {
    let dns: Vec<&str> = info.dns_names().collect();
    for name in names {
        if dns.iter().any(|pattern| covers(pattern, name)) {
            continue;
        }
        let cn = leaf
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok());
        let detail = match (dns.is_empty(), cn) {
            (true, Some(cn)) => format!(
                "certificate covers [] (no DNS name in Subject Alternative Name; clients ignore the subject CN {cn}), not {name}"
            ),
            _ => format!("certificate covers [{}], not {name}", dns.join(", ")),
        };
        report.violate(file, Rule::Name, detail);
    }
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
fn check_signatures(report: &mut Report, file: &Path, bundle: &CertBundle, policy: &Policy) {
    for (i, der) in bundle.chain.iter().enumerate() {
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

fn check_key_usage(report: &mut Report, file: &Path, info: &CertInfo, policy: &Policy) {
    let required = match &info.key_type {
        KeyType::Rsa => &policy.rsa_key_usage,
        t if t.is_ec_like() => &policy.ec_key_usage,
        _ => return, // the key size rule already refuses unknown key types
    };
    if let Some(detail) = missing("KeyUsage", info.key_usage.as_deref(), required) {
        report.violate(file, Rule::KeyUsage, detail);
    }
}

fn check_ext_key_usage(report: &mut Report, file: &Path, info: &CertInfo, policy: &Policy) {
    if let Some(detail) = missing(
        "ExtendedKeyUsage",
        info.extended_key_usage.as_deref(),
        &policy.extended_key_usage,
    ) {
        report.violate(file, Rule::ExtendedKeyUsage, detail);
    }
}

/// "X extension missing" or "X holds a, b": `None` when every required value is present.
fn missing<T: PartialEq + fmt::Display>(
    ext: &str,
    found: Option<&[T]>,
    required: &[T],
) -> Option<String> {
    if required.is_empty() {
        return None;
    }
    let list = |items: &[T]| {
        items
            .iter()
            .map(T::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match found {
        None => Some(format!(
            "{ext} extension missing, policy requires {}",
            list(required)
        )),
        Some(found) if required.iter().all(|r| found.contains(r)) => None,
        Some([]) => Some(format!(
            "{ext} holds nothing, policy requires {}",
            list(required)
        )),
        Some(found) => Some(format!(
            "{ext} holds {}, policy requires {}",
            list(found),
            list(required)
        )),
    }
}

fn check_validity(
    report: &mut Report,
    file: &Path,
    info: &CertInfo,
    policy: &Policy,
    now: SystemTime,
) {
    let now_s = unix_seconds(now);
    if now_s < info.not_before {
        let days = (info.not_before - now_s).div_euclid(86_400);
        report.violate(
            file,
            Rule::Validity,
            format!(
                "not valid before {} ({}), policy requires a certificate valid now",
                date(info.not_before),
                in_days(days)
            ),
        );
    } else if now_s > info.not_after {
        let days = (now_s - info.not_after).div_euclid(86_400);
        let ago = match days {
            0 => "today".to_owned(),
            1 => "1 day ago".to_owned(),
            n => format!("{n} days ago"),
        };
        report.violate(
            file,
            Rule::Validity,
            format!("expired {} ({ago})", date(info.not_after)),
        );
    } else {
        let days = info.days_left(now);
        if days < i64::from(policy.expiry_warning_days) {
            report.warnings.push(format!(
                "{}: validity: expires {} ({}), within expiry_warning_days = {}",
                file.display(),
                date(info.not_after),
                in_days(days),
                policy.expiry_warning_days
            ));
        }
    }
}

fn in_days(days: i64) -> String {
    match days {
        0 => "today".to_owned(),
        1 => "in 1 day".to_owned(),
        n => format!("in {n} days"),
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time; years past 9999 fall back to the number.
pub(crate) fn date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("@{unix}"),
    }
}

fn check_key_match(
    report: &mut Report,
    cert_file: &Path,
    key_file: Option<&Path>,
    bundle: &CertBundle,
    leaf: &X509Certificate<'_>,
) {
    let file = key_file.unwrap_or(cert_file);
    match key_matches(&bundle.key, leaf.public_key()) {
        Ok(true) => {}
        Ok(false) => {
            // A common slip: the chain's order reversed, leaf last.
            let other = bundle.chain.iter().enumerate().skip(1).find(|(_, der)| {
                x509_parser::parse_x509_certificate(der)
                    .is_ok_and(|(_, c)| key_matches(&bundle.key, c.public_key()) == Ok(true))
            });
            let hint = match other {
                Some((i, _)) => format!(
                    "; it is the key of certificate #{} in {}: put the leaf first",
                    i + 1,
                    cert_file.display()
                ),
                None => String::new(),
            };
            report.violate(
                file,
                Rule::KeyMatch,
                format!(
                    "the private key does not belong to the leaf certificate {}{hint}",
                    leaf.subject()
                ),
            );
        }
        Err(why) => report.violate(file, Rule::KeyMatch, why),
    }
}

/// The verdict a TLS client would reach on the chain (rustls-webpki, server auth), name
/// aside (the name rule speaks for it). When the leaf itself is out of its validity the
/// validity rule already says so; the chain is then verified at the nearest instant of
/// the leaf's validity, so that "expired" is not reported twice and a broken chain behind
/// an expired leaf still shows.
fn check_chain(
    report: &mut Report,
    file: &Path,
    bundle: &CertBundle,
    info: &CertInfo,
    trust: &TrustAnchors,
    now: SystemTime,
) {
    let Some(leaf) = bundle.chain.first() else {
        return;
    };
    let at = unix_seconds(now)
        .clamp(info.not_before, info.not_after)
        .max(0);
    let at = UnixTime::since_unix_epoch(Duration::from_secs(at.unsigned_abs()));
    let result = ParsedCertificate::try_from(leaf).and_then(|parsed| {
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.roots(),
            &bundle.chain[1..],
            at,
            default_provider().signature_verification_algorithms.all,
        )
    });
    if let Err(e) = result {
        report.violate(file, Rule::Chain, chain_detail(&e, info));
    }
}

fn chain_detail(err: &TlsError, info: &CertInfo) -> String {
    const REQUIRED: &str = "policy requires a chain to a trust anchor";
    let TlsError::InvalidCertificate(err) = err else {
        return format!("cannot verify the chain: {err}; {REQUIRED}");
    };
    match err {
        CertificateError::UnknownIssuer => format!(
            "issuer {} is not a trust anchor and no intermediate in the file leads to one; {REQUIRED} \
             (add the intermediates after the leaf, or trust the private root in tls.trust or the system store)",
            info.issuer
        ),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!(
                "a certificate in the chain expired {}; {REQUIRED} valid now",
                date(not_after.as_secs() as i64)
            )
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "a certificate in the chain is not valid before {}; {REQUIRED} valid now",
            date(not_before.as_secs() as i64)
        ),
        CertificateError::Expired | CertificateError::NotValidYet => {
            format!("a certificate in the chain is outside its validity; {REQUIRED} valid now")
        }
        CertificateError::BadSignature => {
            format!("a signature in the chain does not verify (wrong intermediate?); {REQUIRED}")
        }
        #[allow(deprecated)]
        CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => format!(
            "a signature in the chain uses an algorithm TLS clients refuse (SHA-1, MD5, or an RSA key under 2048 bits); {REQUIRED}"
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!(
                "the chain is not valid for TLS server authentication (an ExtendedKeyUsage without server_auth); {REQUIRED}"
            )
        }
        CertificateError::BadEncoding => {
            format!("a certificate in the chain is malformed; {REQUIRED}")
        }
        CertificateError::UnhandledCriticalExtension => {
            format!(
                "a certificate in the chain has a critical extension TLS clients do not know; {REQUIRED}"
            )
        }
        other => format!("{other:?}; {REQUIRED}"),
    }
}

fn check_key_file_mode(report: &mut Report, file: &Path, mode: KeyFileMode) {
    if mode == KeyFileMode::Ignore {
        return;
    }
    let Some(bits) = file_mode(file) else { return };
    if bits & 0o077 == 0 {
        return;
    }
    let detail = format!(
        "mode {bits:04o} lets group or others read the private key, policy requires 0600 or stricter (chmod 600)"
    );
    match mode {
        KeyFileMode::Refuse => report.violate(file, Rule::KeyFileMode, detail),
        _ => report.warnings.push(format!(
            "{}: {}: {detail}",
            file.display(),
            Rule::KeyFileMode
        )),
    }
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<u32> {
    None
}
