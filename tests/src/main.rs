//! The certfront binary, as the end-to-end tests run it (same code as `proxy/src/main.rs`).
#![forbid(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    certfront::main()
}
