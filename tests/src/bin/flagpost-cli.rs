//! The `flagpost` command line, built inside the e2e package so its tests always run the current
//! code (Cargo hands integration tests only their own package's binaries). Identical to
//! `crates/server/src/main.rs`.

fn main() -> std::process::ExitCode {
    flagpost::main()
}
