//! Shared helpers for Flagpost's end-to-end tests: a support-team fixture on the harness's
//! Dovecot, and running the `flagpost` binary against it.

pub mod http;

use std::time::{Duration, Instant};

use anyhow::Result;
use flagpost_harness::{Dovecot, ImapFixture, TestDatabase};

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

/// The environment that points `flagpost` at the IMAP fixture `server` (implicit TLS, fixture
/// CA) and `db`.
pub fn flagpost_env(server: &impl ImapFixture, db: &TestDatabase) -> Vec<(&'static str, String)> {
    vec![
        ("FLAGPOST_DATABASE_URL", db.url()),
        ("FLAGPOST_IMAP_HOST", "localhost".to_owned()),
        ("FLAGPOST_IMAP_PORT", server.imaps_port().to_string()),
        ("FLAGPOST_IMAP_TLS", "implicit".to_owned()),
        (
            "FLAGPOST_IMAP_CA_FILE",
            server.ca_file().display().to_string(),
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

/// Waits until Dovecot's auth service accepts `password` for `user` (`doveadm auth test`,
/// which costs no login penalty): Dovecot re-reads the passwd file at most once a second.
pub async fn wait_until_dovecot_knows(dovecot: &Dovecot, user: &str, password: &str) -> Result<()> {
    eventually(
        Duration::from_secs(15),
        "Dovecot to know the user",
        || async {
            Ok(dovecot
                .doveadm(&["auth", "test", user, password])
                .await
                .ok()
                .map(drop))
        },
    )
    .await
}

/// A message's flags as a comparable set (without `\Recent`).
pub type FlagSet = std::collections::BTreeSet<String>;

/// UID → flags of `mailbox` as `user` sees it on the server (read-only EXAMINE).
pub async fn server_state(
    server: &impl ImapFixture,
    user: &str,
    mailbox: &str,
) -> Result<std::collections::BTreeMap<u32, FlagSet>> {
    let c = server.client(user).await?;
    server_state_with(c, &flagpost_domain::encode_mailbox_name(mailbox)).await
}

/// UID → flags of the mailbox `imap_name` (its wire name) as the logged-in client `c` sees it
/// (read-only EXAMINE); logs `c` out.
pub async fn server_state_with(
    mut c: flagpost_harness::ImapClient,
    imap_name: &str,
) -> Result<std::collections::BTreeMap<u32, FlagSet>> {
    let r = c
        .command_ok(&format!(
            "EXAMINE {}",
            flagpost_harness::imap_client::quote(imap_name)?
        ))
        .await?;
    let exists = r
        .untagged
        .iter()
        .find_map(|l| {
            l.strip_suffix(" EXISTS")
                .and_then(|n| n.parse::<u32>().ok())
        })
        .unwrap_or(0);
    let mut out = std::collections::BTreeMap::new();
    if exists > 0 {
        let r = c.command_ok("UID FETCH 1:* (UID FLAGS)").await?;
        for line in r.untagged.iter().filter(|l| l.contains(" FETCH (")) {
            let uid = line
                .split("UID ")
                .nth(1)
                .and_then(|s| s.split([' ', ')']).next())
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| anyhow::anyhow!("no UID in {line}"))?;
            let flags = line
                .split("FLAGS (")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .unwrap_or("");
            out.insert(uid, flag_set(flags.split_whitespace()));
        }
    }
    c.logout().await;
    Ok(out)
}

/// Normalises flags for comparison.
pub fn flag_set<'a>(flags: impl IntoIterator<Item = &'a str>) -> FlagSet {
    flagpost_domain::Flags::new(flags)
        .as_slice()
        .iter()
        .cloned()
        .collect()
}

/// UID → flags of the folder `imap_name` in the mirror.
pub async fn mirror_state(
    pool: &sqlx::PgPool,
    imap_name: &str,
) -> Result<std::collections::BTreeMap<u32, FlagSet>> {
    let rows: Vec<(i64, Vec<String>)> = sqlx::query_as(
        "SELECT m.uid, m.flags FROM messages m JOIN folders f ON f.id = m.folder_id
         WHERE f.imap_name = $1 AND f.removed_at IS NULL AND m.uidvalidity = f.uidvalidity
         ORDER BY m.uid",
    )
    .bind(imap_name)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(uid, flags)| (uid as u32, flag_set(flags.iter().map(String::as_str))))
        .collect())
}

/// Waits until the mirror of `mailbox` (as `user` names it) equals the server's state.
pub async fn wait_mirror_equal(
    server: &impl ImapFixture,
    pool: &sqlx::PgPool,
    user: &str,
    mailbox: &str,
    timeout: Duration,
) -> Result<std::collections::BTreeMap<u32, FlagSet>> {
    let imap_name = flagpost_domain::encode_mailbox_name(mailbox);
    let deadline = Instant::now() + timeout;
    loop {
        let on_server = server_state(server, user, mailbox).await?;
        let mirror = mirror_state(pool, &imap_name).await?;
        if on_server == mirror {
            return Ok(mirror);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "mirror of {mailbox} still differs after {timeout:?}\nserver: {on_server:?}\nmirror: {mirror:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A simple RFC 5322 message.
pub fn message(subject: &str, from: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@example.org\r\nSubject: {subject}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@example.org>\r\n\r\nHello.\r\n",
        flagpost_harness_id()
    )
    .into_bytes()
}

fn flagpost_harness_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The seed of a randomized test: the value of `var` when set (to replay a run), else a fresh
/// one. Tests print it.
pub fn test_seed(var: &str) -> u64 {
    use rand::Rng;
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random())
}

/// A count from the environment variable `var` when set, else `default`.
pub fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
