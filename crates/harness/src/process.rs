//! A server process under a supervisor that stops it when the owning test process goes away.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command};

/// How a supervised server is stopped and what is cleaned after it.
#[derive(Debug, Clone)]
pub(crate) struct Supervision {
    /// Signal name for `kill` that asks the server to shut down (e.g. `TERM`, `INT`).
    pub stop_signal: &'static str,
    /// A folder to remove once the server has exited (only when the supervisor is abandoned,
    /// i.e. the test process died; a clean drop removes it itself).
    pub remove_dir: Option<PathBuf>,
    /// Run the server as this system user (via `runuser`), e.g. `postgres`.
    pub run_as: Option<String>,
}

/// A running server. Dropping it stops the server and waits for it (bounded).
#[derive(Debug)]
pub(crate) struct Supervised {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: Option<u32>,
}

impl Supervised {
    /// Starts `program args…` under an `sh` supervisor in a new process group.
    ///
    /// The supervisor waits for EOF on its stdin, which only this process holds; EOF comes when
    /// [`Supervised::stop`] runs, when the value is dropped, or when this process dies. Then it
    /// signals the server, waits for it, and (if abandoned) removes `remove_dir`.
    pub fn spawn(
        program: &Path,
        args: &[String],
        log: &Path,
        sup: &Supervision,
        envs: &[(&str, &str)],
    ) -> Result<Supervised> {
        let mut server_cmd = String::new();
        server_cmd.push_str(&shell_quote(&program.to_string_lossy()));
        for a in args {
            server_cmd.push(' ');
            server_cmd.push_str(&shell_quote(a));
        }
        let cleanup = match &sup.remove_dir {
            Some(d) => format!(
                // Its children first (this shell ignores the signal), then retried: they may
                // still be writing there for a moment.
                "if [ \"$clean\" = abandoned ]; then trap '' TERM; kill -TERM 0 2>/dev/null; n=0; \
                 while ! rm -rf {d} 2>/dev/null && [ $n -lt 100 ]; do n=$((n+1)); sleep 0.1; done; fi",
                d = shell_quote(&d.to_string_lossy())
            ),
            None => String::new(),
        };
        // `read` returns on EOF (abandoned: the owner died) or on a line (an orderly stop).
        // The server's children can outlive it for a moment (Dovecot's `imap` processes still
        // writing indexes into the instance folder, which then cannot be removed): the last
        // line kills whatever is left of this process group, this shell included. The group
        // holds nothing else, and while this shell lives its id cannot have been reused.
        let script = format!(
            "{server_cmd} </dev/null >>{log} 2>&1 &\n\
             server=$!\n\
             if read -r clean; then :; else clean=abandoned; fi\n\
             kill -{sig} \"$server\" 2>/dev/null\n\
             wait \"$server\"\n\
             {cleanup}\n\
             kill -KILL 0\n",
            log = shell_quote(&log.to_string_lossy()),
            sig = sup.stop_signal,
        );
        // With `run_as`, the supervisor itself runs as that user, so that it signals the server
        // directly rather than a `runuser` in between.
        let mut cmd = match &sup.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh"]);
                c
            }
            None => Command::new("sh"),
        };
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stdin = child.stdin.take();
        let pid = Some(child.id());
        Ok(Supervised {
            child: Some(child),
            stdin,
            pid,
        })
    }

    /// Whether the supervisor (and so the server) has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Asks the server to stop and waits up to `timeout`; past that the whole process group is
    /// killed.
    pub async fn stop(&mut self, timeout: Duration) -> Result<()> {
        self.request_stop();
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                self.kill_group();
                let _ = child.kill();
                child.wait()?;
                bail!("server did not stop within {timeout:?}; killed");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn request_stop(&mut self) {
        use std::io::Write;
        if let Some(stdin) = self.stdin.take() {
            // An orderly stop: a line tells the supervisor not to remove the folder (the owner
            // does that, and may restart the server in it).
            let mut stdin = stdin;
            let _ = stdin.write_all(b"orderly\n");
        }
    }

    fn kill_group(&self) {
        if let Some(pid) = self.pid {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    /// Blocking variant of [`Supervised::stop`] for `Drop`.
    pub fn stop_blocking(&mut self, timeout: Duration) {
        self.request_stop();
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    self.kill_group();
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop_blocking(Duration::from_secs(15));
    }
}

/// Quotes `s` for `sh` (single quotes, with embedded single quotes escaped).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Finds `name` on `PATH` or in the given extra folders.
pub(crate) fn find_program(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
