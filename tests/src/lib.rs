//! Shared helpers for Flagpost's end-to-end tests: a support-team fixture on the harness's
//! Dovecot, and running the `flagpost` binary against it.

use std::time::{Duration, Instant};

use anyhow::Result;
use flagpost_harness::{Dovecot, TestDatabase};

/// The service account's user name in fixtures.
pub const SERVICE_USER: &str = "flagpost";

/// A Dovecot with a `support` owner, the `flagpost` service account and two agents, and the
/// shared folders `Queue` and `Billing` (service account: `lr` + `a` on Queue, `lr` on Billing).
pub async fn support_fixture() -> Result<Dovecot> {
    let dovecot = Dovecot::start().await?;
    dovecot.add_user("support", "support-pw")?;
    dovecot.add_user(SERVICE_USER, "service-pw")?;
    dovecot.add_user("alice", "alice-pw")?;
    dovecot.add_user("bob", "bob-pw")?;
    for folder in ["Queue", "Billing"] {
        dovecot.create_folder("support", folder).await?;
    }
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lra")
        .await?;
    dovecot
        .set_acl("support", "Billing", SERVICE_USER, "lr")
        .await?;
    Ok(dovecot)
}

/// The environment that points `flagpost` at `dovecot` (implicit TLS, fixture CA) and `db`.
pub fn flagpost_env(dovecot: &Dovecot, db: &TestDatabase) -> Vec<(&'static str, String)> {
    vec![
        ("FLAGPOST_DATABASE_URL", db.url()),
        ("FLAGPOST_IMAP_HOST", "localhost".to_owned()),
        ("FLAGPOST_IMAP_PORT", dovecot.imaps_port().to_string()),
        ("FLAGPOST_IMAP_TLS", "implicit".to_owned()),
        (
            "FLAGPOST_IMAP_CA_FILE",
            dovecot.ca_file().display().to_string(),
        ),
        ("FLAGPOST_IMAP_USER", SERVICE_USER.to_owned()),
        ("FLAGPOST_IMAP_PASSWORD", "service-pw".to_owned()),
        ("FLAGPOST_FOLDERS", "shared/support/*".to_owned()),
    ]
}

/// Polls `check` every 20 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
