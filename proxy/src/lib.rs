//! certfront library
#![forbid(unsafe_code)]
