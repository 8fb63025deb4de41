//! Tests of the internal CA.
