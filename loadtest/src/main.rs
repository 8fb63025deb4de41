//! certfront-loadtest: the command line; every command lives in the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    certfront_loadtest::cli(std::env::args_os())
}
