//! The certfront binary: everything lives in the library, see `certfront::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    certfront::cli::main()
}
