//! The validity rule, and the expiry warning.

use std::path::Path;

use super::{Report, Rule};
use std::time::SystemTime;

use crate::inspect::{CertInfo, unix_seconds};
use crate::policy::Policy;

pub(super) fn check_validity(
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::check::Rule;
    use crate::check::tests::{Case, only, pass};
    use crate::load::load;
    use crate::policy::Policy;
    use crate::testutil::{Alg, Ca, Leaf, trust};

    #[test]
    fn validity_rule_expired_and_not_yet_valid() {
        let ca = Ca::root(Alg::P256);
        let anchors = trust(&[&ca.der]);
        let now = OffsetDateTime::now_utc();
        let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
        leaf.not_before = now - Duration::days(400);
        leaf.not_after = now - Duration::days(3) - Duration::hours(1);
        let report =
            Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
        // the chain is otherwise fine: "expired" is said once, by the validity rule
        let expected = format!(
            "expired {} (3 days ago)",
            date(leaf.not_after.unix_timestamp())
        );
        assert_eq!(only(&report, Rule::Validity).detail, expected);

        leaf.not_before = now + Duration::days(12) + Duration::hours(1);
        leaf.not_after = now + Duration::days(400);
        let report =
            Case::new(&ca, &leaf, &[]).check(&["app.example.org"], &Policy::default(), &anchors);
        let expected = format!(
            "not valid before {} (in 12 days), policy requires a certificate valid now",
            date(leaf.not_before.unix_timestamp())
        );
        assert_eq!(only(&report, Rule::Validity).detail, expected);
    }

    #[test]
    fn validity_rule_warns_before_expiry() {
        let ca = Ca::root(Alg::P256);
        let mut leaf = Leaf::new(&["app.example.org"], Alg::Rsa);
        leaf.not_after = OffsetDateTime::now_utc() + Duration::days(10) + Duration::hours(1);
        let case = Case::new(&ca, &leaf, &[]);
        let report = case.check(&["app.example.org"], &Policy::default(), &trust(&[&ca.der]));
        pass(&report);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(
            report.warnings[0].contains("validity: expires"),
            "{}",
            report.warnings[0]
        );
        assert!(
            report.warnings[0].contains("(in 10 days), within expiry_warning_days = 30"),
            "{}",
            report.warnings[0]
        );
    }

    #[test]
    fn validity_until_year_9999_does_not_panic() {
        let ca = Ca::root(Alg::P256);
        let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
        leaf.not_after = rcgen::date_time_ymd(9999, 12, 31);
        let case = Case::new(&ca, &leaf, &[]);
        pass(&case.check(&["app.example.org"], &Policy::default(), &trust(&[&ca.der])));
        let info = load(&case.source).unwrap().leaf_info().unwrap();
        assert!(info.days_left(SystemTime::now()) > 2_900_000);
        assert_eq!(date(info.not_after), "9999-12-31");
    }

    #[test]
    fn inverted_validity_does_not_panic() {
        let ca = Ca::root(Alg::P256);
        let mut leaf = Leaf::new(&["app.example.org"], Alg::P256);
        std::mem::swap(&mut leaf.not_before, &mut leaf.not_after);
        let report = Case::new(&ca, &leaf, &[]).check(
            &["app.example.org"],
            &Policy::default(),
            &trust(&[&ca.der]),
        );
        assert!(
            report.violations.iter().any(|v| v.rule == Rule::Validity),
            "{:#?}",
            report.violations
        );
    }
}
