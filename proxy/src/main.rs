//! The certfront binary: everything lives in the library, see `certfront::main`.
#![forbid(unsafe_code)]

/// mimalloc rather than glibc malloc: the request path allocates small, short-lived
/// buffers across two worker threads, where glibc's arenas spent ~8% of the CPU (profile
/// in the issue 9 closing note).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    certfront::main()
}
