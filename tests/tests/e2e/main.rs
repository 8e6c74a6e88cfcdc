//! End-to-end tests: one binary, real Dovecot, real PostgreSQL, the real `flagpost` command.

mod api;
mod bola;
mod check;
mod config;
mod cyrus;
mod dashboard;
mod demo;
mod feed;
mod harness;
mod migrate;
mod mirror;
mod model;
mod ops;
mod rights;
mod schema;
mod webhooks;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result};

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

/// A running `flagpost serve`. Dropping it kills the process.
#[derive(Debug)]
pub struct Serve {
    child: Option<tokio::process::Child>,
    /// An `sh` that sends SIGTERM to the server when this test process dies (its stdin, held
    /// only here, then reaches EOF); disarmed with a line when the server ends in order.
    watchdog: Option<std::process::Child>,
    /// Its HTTP address.
    pub addr: std::net::SocketAddr,
    /// Its log (stderr), shared with a reader task.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serve {
    /// Starts `flagpost serve` with `envs` (plus a free listen port and JSON logs).
    pub async fn start(envs: &[(&str, String)]) -> Result<Serve> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Serve::start_at(([127, 0, 0, 1], port).into(), envs).await
    }

    /// Starts `flagpost serve` listening on `addr` (e.g. the address of a server that was
    /// stopped, to restart it where its clients expect it).
    pub async fn start_at(addr: std::net::SocketAddr, envs: &[(&str, String)]) -> Result<Serve> {
        let mut cmd = tokio::process::Command::new(flagpost_bin());
        cmd.arg("serve").env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("FLAGPOST_LISTEN", addr.to_string())
            .env("FLAGPOST_LOG_FORMAT", "json")
            .env("FLAGPOST_LOG", "info,flagpost_imap=debug");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().context("flagpost serve has a pid")?;
        let watchdog = std::process::Command::new("sh")
            .args(["-c", "read -r line || kill -TERM \"$1\" 2>/dev/null", "sh"])
            .arg(pid.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the watchdog of flagpost serve")?;
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let serve = Serve {
            child: Some(child),
            watchdog: Some(watchdog),
            addr,
            log,
        };
        flagpost_e2e::eventually(
            Duration::from_secs(30),
            "flagpost serve to listen",
            || async { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(drop)) },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\nlog:\n{}", serve.log_text()))?;
        Ok(serve)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the process (SIGKILL): no graceful shutdown.
    pub async fn kill(mut self) -> Result<()> {
        let mut child = self.child.take().expect("running");
        child.kill().await?;
        Ok(())
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(self) -> Result<std::process::ExitStatus> {
        self.terminate()?;
        self.wait_exit().await
    }

    /// Sends SIGTERM (once: a second one stops the server at once) without waiting.
    pub fn terminate(&self) -> Result<()> {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            )?;
        }
        Ok(())
    }

    /// Waits for the process to end (after [`Serve::terminate`]).
    pub async fn wait_exit(mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().expect("running");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
        Ok(status)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // The server ends here (stopped, killed, or killed on drop just after this): the
        // watchdog is told so and exits without signalling.
        if let Some(mut w) = self.watchdog.take() {
            use std::io::Write;
            if let Some(mut stdin) = w.stdin.take() {
                let _ = stdin.write_all(b"done\n");
            }
            let _ = w.try_wait();
        }
    }
}
