//! End-to-end tests: one binary, real Dovecot, real PostgreSQL, the real `flagpost` command.

mod check;
mod harness;
mod migrate;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::Result;

/// The `flagpost` binary built for these tests.
pub fn flagpost_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flagpost-cli"))
}

/// Runs `flagpost args…` with a clean environment plus `envs`, with a deadline.
pub async fn run_flagpost(args: &[&str], envs: &[(&str, String)]) -> Result<Output> {
    let mut cmd = tokio::process::Command::new(flagpost_bin());
    cmd.args(args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await??;
    Ok(out)
}
