//! The certfront binary, as the end-to-end tests run it (same code as `proxy/src/main.rs`).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    certfront::cli::main()
}
