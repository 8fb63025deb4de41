//! The chain rule: the verdict a TLS client would reach.

use std::path::Path;

use super::{Report, Rule};
use std::time::{Duration, SystemTime};

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::aws_lc_rs::default_provider;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, Error as TlsError};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::validity::date;
use crate::inspect::{CertInfo, unix_seconds};
use crate::trust::TrustAnchors;

/// The verdict a TLS client would reach on the chain (rustls-webpki, server auth), name
/// aside (the name rule speaks for it). When the leaf itself is out of its validity the
/// validity rule already says so; the chain is then verified at the nearest instant of
/// the leaf's validity, so that "expired" is not reported twice and a broken chain behind
/// an expired leaf still shows.
pub(super) fn check_chain(
    report: &mut Report,
    file: &Path,
    chain: &[CertificateDer<'static>],
    info: &CertInfo,
    trust: &TrustAnchors,
    now: SystemTime,
) {
    let Some(leaf) = chain.first() else {
        return;
    };
    let now_s = unix_seconds(now);
    // (`clamp` panics on an inverted range, which a broken certificate can carry)
    let at = if info.not_before <= info.not_after {
        now_s.clamp(info.not_before, info.not_after)
    } else {
        now_s
    }
    .max(0);
    let at = UnixTime::since_unix_epoch(Duration::from_secs(at.unsigned_abs()));
    let result = ParsedCertificate::try_from(leaf).and_then(|parsed| {
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &trust.roots(),
            &chain[1..],
            at,
            default_provider().signature_verification_algorithms.all,
        )
    });
    if let Err(e) = result {
        report.violate(file, Rule::Chain, chain_detail(&e, info, is_pfx_name(file)));
    }
}

/// A `.pfx`/`.p12` by its name: the missing-intermediate fix is then a Windows export option.
fn is_pfx_name(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"))
}

fn chain_detail(err: &TlsError, info: &CertInfo, pfx: bool) -> String {
    const REQUIRED: &str = "policy requires a chain to a trust anchor";
    let TlsError::InvalidCertificate(err) = err else {
        return format!("cannot verify the chain: {err}; {REQUIRED}");
    };
    match err {
        CertificateError::UnknownIssuer if pfx => format!(
            "issuer {} is not a trust anchor and no intermediate in the file leads to one; {REQUIRED} \
             (export the .pfx again on Windows with \"Include all certificates in the certification \
             path if possible\" checked, or Export-PfxCertificate -ChainOption BuildChain; or trust \
             the private root in tls.trust or the system store)",
            info.issuer
        ),
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

#[cfg(test)]
mod tests {

    use crate::check::Rule;
    use crate::check::tests::{Case, only, pass};
    use crate::policy::Policy;
    use crate::testutil::{Alg, Ca, Leaf, trust};
    use crate::trust::TrustAnchors;

    #[test]
    fn chain_rule_with_and_without_intermediate() {
        let root = Ca::root(Alg::Rsa);
        let inter = root.intermediate(Alg::P256);
        let anchors = trust(&[&root.der]);
        let leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
        pass(&Case::new(&inter, &leaf, &[&inter.der]).check(
            &["app.example.org"],
            &Policy::default(),
            &anchors,
        ));

        let report =
            Case::new(&inter, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
        let v = only(&report, Rule::Chain);
        assert!(
            v.detail
                .starts_with("issuer CN=test intermediate is not a trust anchor"),
            "{}",
            v.detail
        );
        assert!(
            v.detail
                .contains("policy requires a chain to a trust anchor"),
            "{}",
            v.detail
        );

        let lax = Policy {
            require_chain: false,
            ..Policy::default()
        };
        pass(&Case::new(&inter, &leaf, &[]).check(&["app.example.org"], &lax, &anchors));
    }

    /// A .pfx exported without its chain (IIS sent the intermediates from the Windows
    /// store): the fix named is the export option.
    #[test]
    fn a_pfx_without_its_intermediate_names_the_windows_export_option() {
        use rustls::CertificateError;
        let root = Ca::root(Alg::P256);
        let inter = root.intermediate(Alg::P256);
        let (der, _) = inter.issue(&Leaf::new(&["tablet.example.org"], Alg::P256));
        let info = crate::inspect::inspect(&der).unwrap();
        let err = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let pfx = super::chain_detail(&err, &info, super::is_pfx_name("/x/Tablet.PFX".as_ref()));
        assert!(
            pfx.contains("export the .pfx again on Windows with \"Include all certificates in the certification path if possible\""),
            "{pfx}"
        );
        let pem = super::chain_detail(&err, &info, super::is_pfx_name("/x/tablet.pem".as_ref()));
        assert!(
            pem.contains("add the intermediates after the leaf"),
            "{pem}"
        );
        assert!(!pem.contains("Windows"), "{pem}");
    }

    #[test]
    fn chain_rule_private_root() {
        let private = Ca::root(Alg::P256);
        let case = Case::new(
            &private,
            &Leaf::new(&["portal.example.org"], Alg::P256),
            &[],
        );
        let other = Ca::root(Alg::P256);
        let report = case.check(
            &["portal.example.org"],
            &Policy::default(),
            &trust(&[&other.der]),
        );
        only(&report, Rule::Chain);

        // trusted through a tls.trust file holding two roots
        let roots_file = case.dir.path().join("private-roots.pem");
        std::fs::write(
            &roots_file,
            crate::testutil::pem_chain(&[&other.der, &private.der]),
        )
        .unwrap();
        let anchors = TrustAnchors::new(false, &[roots_file], &[]).unwrap();
        assert_eq!(anchors.len(), 2);
        pass(&case.check(&["portal.example.org"], &Policy::default(), &anchors));
    }
}
