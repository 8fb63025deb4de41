//! Tests of every certificate rule.
