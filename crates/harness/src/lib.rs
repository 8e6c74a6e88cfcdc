//! Private, throwaway Dovecot and PostgreSQL instances for Flagpost's tests (and for
//! `flagpost demo`).
//!
//! Everything is started from the installed Debian packages (`dovecot-imapd`, `postgresql`) on
//! free loopback ports, in its own folder under [`harness_root`], and stopped when the owning
//! value is dropped — also when a test panics. As a second line of defence every server runs
//! under a small `sh` supervisor that holds a pipe from the test process: when the test process
//! dies for any reason (even SIGKILL) the pipe closes and the supervisor stops the server and
//! removes its folder. `flagpost-harness-leaks` checks after a suite that nothing was left.

pub mod cyrus;
pub mod dovecot;
pub mod fixture;
pub mod imap_client;
pub mod postgres;
mod process;
pub mod tls;

use std::path::PathBuf;

pub use cyrus::Cyrus;
pub use dovecot::{Dovecot, DovecotOptions};
pub use fixture::{Accounts, ImapFixture};
pub use imap_client::{ImapClient, ImapResponse};
pub use postgres::TestDatabase;

/// The folder under which every harness instance lives, one sub-folder each.
///
/// `FLAGPOST_HARNESS_DIR` overrides it; the default is `flagpost-harness` in the system's temp
/// folder. Every folder on the way must be traversable by other users (Dovecot's mail processes
/// run as the `dovecot` user), which `/tmp` is.
pub fn harness_root() -> PathBuf {
    std::env::var_os("FLAGPOST_HARNESS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("flagpost-harness"))
}

/// Creates [`harness_root`] if needed: world-writable with the sticky bit, like `/tmp`, so that a
/// supervisor running as another user (e.g. `postgres`) can remove its own instance folder.
pub(crate) fn prepare_root() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let root = harness_root();
    std::fs::create_dir_all(&root)?;
    if std::fs::metadata(&root)?.permissions().mode() & 0o7777 != 0o1777 {
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1777))?;
    }
    Ok(root)
}

/// Removes an instance folder, retrying for a few seconds: a server's child processes (Dovecot's
/// `imap` processes writing their indexes, say) can still be creating files for a moment after
/// the master process exited, and a single `remove_dir_all` then fails half-way with
/// "directory not empty", leaving the folder behind.
pub(crate) fn remove_instance_dir(dir: &std::path::Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                if std::time::Instant::now() >= deadline {
                    eprintln!("flagpost-harness: could not remove {}: {e}", dir.display());
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            _ => return,
        }
    }
}

/// A free TCP port on 127.0.0.1 at the time of the call.
pub(crate) fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// A short random suffix for names that must not collide across parallel tests.
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}
