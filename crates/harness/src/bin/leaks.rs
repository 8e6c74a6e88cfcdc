//! `flagpost-harness-leaks`: run after a test suite; fails when a Dovecot or PostgreSQL started by
//! the harness (anything whose command line names the harness folder) is still running, or when
//! an instance folder was left behind.
//!
//! Folders listed in the file `FLAGPOST_LEAKS_BASELINE` names (what was there before the run)
//! are not counted.
//!
//! Servers that are shutting down get a grace period (polled, not slept through). Instances are
//! named `<kind>-<test pid>-<suffix>`; those whose test process is still running belong to
//! another run in progress on the same machine and are not counted.

use std::time::{Duration, Instant};

/// The test process that owns the instance folder `name` (`dovecot-123-abc` → 123), when it is
/// still running.
fn owner_alive(name: &str) -> bool {
    name.split('-')
        .nth(1)
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// The instance folder a command line names under `root`, if any.
fn instance_of<'a>(cmdline: &'a str, root: &str) -> Option<&'a str> {
    let rest = &cmdline[cmdline.find(root)? + root.len()..];
    rest.trim_start_matches('/')
        .split(['/', ' ', '\'', '"'])
        .next()
}

fn leaked_processes(root: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // zombies are already dead; their parent just has not reaped them yet
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, s)| s.starts_with('Z'));
            let others = instance_of(&cmdline, root).is_some_and(owner_alive);
            (!zombie && cmdline.contains(root) && !others).then(|| {
                format!(
                    "pid {}: {}",
                    e.file_name().to_string_lossy(),
                    cmdline.trim()
                )
            })
        })
        .collect()
}

/// Instance folders that were there before the run (`FLAGPOST_LEAKS_BASELINE` names a file
/// listing them, one per line): left by an earlier, killed run, not by this one.
fn baseline() -> Vec<String> {
    std::env::var_os("FLAGPOST_LEAKS_BASELINE")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn leftover_dirs(root: &std::path::Path) -> Vec<String> {
    let before = baseline();
    std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| !owner_alive(&e.file_name().to_string_lossy()))
                .filter(|e| !before.contains(&e.file_name().to_string_lossy().into_owned()))
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Up to `n` files under `dir` (depth first), to tell which server left the folder behind.
fn sample_files(dir: &std::path::Path, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            if out.len() >= n {
                return out;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

fn main() {
    let root = flagpost_harness::harness_root();
    let root_str = root.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let procs = leaked_processes(&root_str);
        let dirs = leftover_dirs(&root);
        if procs.is_empty() && dirs.is_empty() {
            println!("harness leak check: no process or folder left under {root_str}");
            return;
        }
        if Instant::now() > deadline {
            eprintln!("harness leak check FAILED: left behind under {root_str}:");
            for p in &procs {
                eprintln!("  {p}");
            }
            for d in &dirs {
                eprintln!("  {d}, still holding:");
                for f in sample_files(std::path::Path::new(d), 8) {
                    eprintln!("    {f}");
                }
            }
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
