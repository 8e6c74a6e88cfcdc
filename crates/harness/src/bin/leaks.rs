//! `flagpost-harness-leaks`: run after a test suite; fails when a Dovecot or PostgreSQL started by
//! the harness (anything whose command line names the harness folder) is still running, or when
//! an instance folder was left behind.
//!
//! Servers that are shutting down get a grace period (polled, not slept through).

use std::time::{Duration, Instant};

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
            (!zombie && cmdline.contains(root)).then(|| {
                format!(
                    "pid {}: {}",
                    e.file_name().to_string_lossy(),
                    cmdline.trim()
                )
            })
        })
        .collect()
}

fn leftover_dirs(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default()
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
            for p in procs.iter().chain(dirs.iter()) {
                eprintln!("  {p}");
            }
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
