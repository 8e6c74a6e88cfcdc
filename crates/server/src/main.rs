//! The `flagpost` binary; everything lives in the library so tests run the same code.

/// mimalloc hands freed memory back to the system, where glibc's per-thread arenas keep it: after
/// a big first sync the service's resident size falls back instead of staying at its peak.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flagpost::main()
}
