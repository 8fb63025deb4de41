//! The certfront binary: everything lives in the library, see `certfront::main`.
#![forbid(unsafe_code)]

/// mimalloc rather than glibc malloc: the request path allocates small, short-lived
/// buffers on every worker thread (one per core), where glibc's arenas spent ~8% of the
/// CPU (profile in the issue 9 closing note, measured with two workers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    certfront::main()
}
