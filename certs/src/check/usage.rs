//! The key usage and extended key usage rules.

use std::path::Path;

use super::{Report, Rule};
use crate::inspect::{CertInfo, KeyType};
use crate::policy::Policy;
use std::fmt;

pub(super) fn check_key_usage(report: &mut Report, file: &Path, info: &CertInfo, policy: &Policy) {
    let required = match &info.key_type {
        KeyType::Rsa => &policy.rsa_key_usage,
        t if t.is_ec_like() => &policy.ec_key_usage,
        _ => return, // the key size rule already refuses unknown key types
    };
    if let Some(detail) = missing("KeyUsage", info.key_usage.as_deref(), required) {
        report.violate(file, Rule::KeyUsage, detail);
    }
}

pub(super) fn check_ext_key_usage(
    report: &mut Report,
    file: &Path,
    info: &CertInfo,
    policy: &Policy,
) {
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

#[cfg(test)]
mod tests {

    use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};

    use crate::check::Rule;
    use crate::check::tests::{Case, only, pass, rules};
    use crate::policy::{ExtKeyUsage, Policy};
    use crate::testutil::{Alg, Ca, Leaf, trust};

    #[test]
    fn key_usage_rule() {
        let ca = Ca::root(Alg::P256);
        let anchors = trust(&[&ca.der]);
        let mut leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
        leaf.ku = vec![Ku::DigitalSignature];
        let report =
            Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
        assert_eq!(
            only(&report, Rule::KeyUsage).detail,
            "KeyUsage holds digital_signature, policy requires digital_signature, key_encipherment"
        );
        leaf.ku = vec![];
        let report =
            Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
        assert_eq!(
            only(&report, Rule::KeyUsage).detail,
            "KeyUsage extension missing, policy requires digital_signature, key_encipherment"
        );
        // ECDSA needs digital_signature only
        let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
        pass(&Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors));
        leaf.ku = vec![Ku::KeyAgreement];
        let report =
            Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
        assert_eq!(
            only(&report, Rule::KeyUsage).detail,
            "KeyUsage holds key_agreement, policy requires digital_signature"
        );
    }

    #[test]
    fn extended_key_usage_rule() {
        let ca = Ca::root(Alg::P256);
        let anchors = trust(&[&ca.der]);
        let mut leaf = Leaf::new(&["sts.example.org"], Alg::Rsa);
        leaf.eku = vec![];
        let report =
            Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &Policy::default(), &anchors);
        assert_eq!(
            only(&report, Rule::ExtendedKeyUsage).detail,
            "ExtendedKeyUsage extension missing, policy requires server_auth"
        );

        let both = Policy {
            extended_key_usage: vec![ExtKeyUsage::ServerAuth, ExtKeyUsage::ClientAuth],
            ..Policy::default()
        };
        leaf.eku = vec![Eku::ServerAuth];
        let report = Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &both, &anchors);
        assert_eq!(
            only(&report, Rule::ExtendedKeyUsage).detail,
            "ExtendedKeyUsage holds server_auth, policy requires server_auth, client_auth"
        );
        leaf.eku = vec![Eku::ServerAuth, Eku::ClientAuth];
        pass(&Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &both, &anchors));

        // a client-only certificate: clients refuse it as well, so the chain rule agrees
        leaf.eku = vec![Eku::ClientAuth];
        let report =
            Case::new(&ca, &leaf, &[]).check(&["sts.example.org"], &Policy::default(), &anchors);
        assert_eq!(rules(&report), [Rule::ExtendedKeyUsage, Rule::Chain]);
    }
}
