//! What a certificate reload does with what it read: the decisions behind "bad files keep
//! the last good certificate" and "half a rotation waits", as plain functions.

use crate::check::{Rule, Violation};

/// What started a reload. A watcher event forgives a certificate/key mismatch, because the
/// other half of the rotation is usually still being written; a re-scan or a signal does
/// not (by then the files have been quiet for a long time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Event,
    Rescan,
    Signal,
}

/// What to do with a host's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The files hold what is served already.
    Unchanged,
    /// They pass every rule: serve them.
    Swap,
    /// Certificate and key do not match yet: keep serving, count no failure, look again.
    Pending,
    /// They violate a rule: keep serving the last good certificate, report the failure.
    Refuse,
}

/// Decides from the content hash of what is served, that of what was read, and the
/// violations the rules found in what was read.
pub fn decide(
    served_hash: &[u8; 32],
    read_hash: &[u8; 32],
    violations: &[Violation],
    trigger: Trigger,
) -> Decision {
    if served_hash == read_hash {
        return Decision::Unchanged;
    }
    if violations.is_empty() {
        return Decision::Swap;
    }
    let only_mismatch = violations.iter().all(|v| v.rule == Rule::KeyMatch);
    if only_mismatch && trigger == Trigger::Event {
        Decision::Pending
    } else {
        Decision::Refuse
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn violation(rule: Rule) -> Violation {
        Violation {
            file: PathBuf::from("app.pem"),
            rule,
            detail: "x".to_owned(),
        }
    }

    const OLD: [u8; 32] = [1; 32];
    const NEW: [u8; 32] = [2; 32];

    #[test]
    fn the_same_content_is_never_swapped_whatever_its_verdict() {
        let expired = [violation(Rule::Validity)];
        assert_eq!(
            decide(&OLD, &OLD, &expired, Trigger::Signal),
            Decision::Unchanged
        );
        assert_eq!(decide(&OLD, &OLD, &[], Trigger::Event), Decision::Unchanged);
    }

    #[test]
    fn good_new_files_are_swapped_in() {
        for t in [Trigger::Event, Trigger::Rescan, Trigger::Signal] {
            assert_eq!(decide(&OLD, &NEW, &[], t), Decision::Swap);
        }
    }

    #[test]
    fn half_a_rotation_waits_only_when_an_event_saw_it() {
        let mismatch = [violation(Rule::KeyMatch)];
        assert_eq!(
            decide(&OLD, &NEW, &mismatch, Trigger::Event),
            Decision::Pending
        );
        assert_eq!(
            decide(&OLD, &NEW, &mismatch, Trigger::Rescan),
            Decision::Refuse
        );
        assert_eq!(
            decide(&OLD, &NEW, &mismatch, Trigger::Signal),
            Decision::Refuse
        );
    }

    #[test]
    fn bad_files_keep_the_last_good_certificate() {
        let bad = [violation(Rule::KeyMatch), violation(Rule::Name)];
        assert_eq!(decide(&OLD, &NEW, &bad, Trigger::Event), Decision::Refuse);
        assert_eq!(
            decide(&OLD, &NEW, &[violation(Rule::KeySize)], Trigger::Event),
            Decision::Refuse
        );
    }
}
