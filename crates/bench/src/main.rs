//! `flagpost-bench`: Flagpost's performance figures, each measured as a ratio against a raw IMAP
//! client (the harness's line client) in the same run on the same private Dovecot, so the
//! figures hold on a noisy machine. Run it with `scripts/bench` (release build).
//!
//! Figures: initial sync of a big folder vs the raw FETCH of the same items; resync after a
//! reconnect with 10 changes + 3 expunges vs a raw QRESYNC EXAMINE, on a small and a big folder;
//! propagation from another client's STORE to the NOTIFY of the committed event; and, with
//! `--memory`, the RSS of `flagpost serve` watching 20 folders of 50k messages. `--initial-only N`
//! measures only the initial sync, over N rounds.
//!
//! `--api` runs the REST API and event stream figures instead (see `api.rs`); `--webhooks` the
//! webhook delivery figures (see `webhooks.rs`).

mod api;
mod webhooks;

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use flagpost_harness::{Dovecot, ImapClient, ImapFixture, TestDatabase};
use flagpost_imap::conn::Conn;
use flagpost_imap::connect::{ImapSettings, TlsMode};
use flagpost_store::PgPool;
use rand::Rng;
use sqlx::postgres::PgListener;

pub(crate) const SERVICE: &str = "flagpost";
pub(crate) const SERVICE_PW: &str = "service-pw";

struct Args {
    big: usize,
    small: usize,
    changes: usize,
    memory: bool,
    memory_only: bool,
    /// Only the initial-sync figure, over this many rounds (for profiling the first sync).
    initial_only: Option<usize>,
    api: Option<api::ApiArgs>,
    webhooks: Option<webhooks::WebhookArgs>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        big: 100_000,
        small: 10_000,
        changes: 200,
        memory: false,
        memory_only: false,
        initial_only: None,
        api: None,
        webhooks: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || -> Result<usize> {
            it.next()
                .context("missing value")?
                .parse()
                .context("not a number")
        };
        match flag.as_str() {
            "--big" => a.big = num()?,
            "--small" => a.small = num()?,
            "--changes" => a.changes = num()?,
            "--memory" => a.memory = true,
            "--initial-only" => a.initial_only = Some(num()?.max(1)),
            "--memory-only" => {
                a.memory = true;
                a.memory_only = true;
            }
            "--api" => {
                a.api.get_or_insert_with(Default::default);
            }
            api_flag if api_flag.starts_with("--api-") => {
                let n = num()?;
                let api = a.api.get_or_insert_with(Default::default);
                match api_flag {
                    "--api-messages" => api.messages = n,
                    "--api-folders" => api.folders = n,
                    "--api-clients" => api.clients = n,
                    "--api-warmup" => api.warmup = Duration::from_secs(n as u64),
                    "--api-secs" => api.secs = Duration::from_secs(n as u64),
                    "--api-streams" => api.streams = n,
                    "--api-rounds" => api.rounds = n,
                    "--api-patches" => api.patches = n,
                    "--api-subscribers" => api.subscribers = n,
                    other => bail!("unknown argument {other}"),
                }
            }
            "--webhooks" => {
                a.webhooks.get_or_insert_with(Default::default);
            }
            hook_flag if hook_flag.starts_with("--webhooks-") => {
                let n = num()?;
                let hooks = a.webhooks.get_or_insert_with(Default::default);
                match hook_flag {
                    "--webhooks-events" => hooks.events = n,
                    "--webhooks-hooks" => hooks.hooks = n,
                    "--webhooks-rate" => hooks.rate = n,
                    "--webhooks-batch" => hooks.batch = n,
                    other => bail!("unknown argument {other}"),
                }
            }
            other => {
                bail!(
                    "unknown argument {other}; use --big N --small N --changes N [--memory | --memory-only | --initial-only ROUNDS], or --api [--api-messages N --api-folders N --api-clients N --api-warmup S --api-secs S --api-streams N --api-rounds N --api-patches N --api-subscribers N], or --webhooks [--webhooks-events N --webhooks-hooks N --webhooks-rate N --webhooks-batch N]"
                )
            }
        }
    }
    Ok(a)
}

fn message(i: usize) -> Vec<u8> {
    let senders = [
        "alice@customer.example",
        "bob@client.example",
        "carol@partner.example",
        "dave@example.org",
    ];
    let subjects = [
        "Invoice question",
        "Login problem",
        "Refund request",
        "Feature idea",
        "Re: Delivery delay",
    ];
    let body =
        "Hello support team,\r\nplease have a look at my account when you can.\r\nThanks.\r\n";
    format!(
        "From: Customer {i} <{}>\r\nTo: support@example.org\r\nSubject: {} #{i}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench-{i}@example.org>\r\n\r\n{body}",
        senders[i % senders.len()],
        subjects[i % subjects.len()],
    )
    .into_bytes()
}

fn seed(dovecot: &Dovecot, folder: &str, count: usize) -> Result<()> {
    let start = SystemTime::now() - Duration::from_secs(14 * 24 * 3600);
    dovecot.seed_maildir("support", folder, count, |i| {
        let flags = match i % 10 {
            0..=3 => "RS",
            4 => "FS",
            5 => "F",
            _ => "",
        };
        (
            message(i),
            start + Duration::from_secs(i as u64 * 7),
            flags.to_owned(),
        )
    })
}

fn settings(dovecot: &Dovecot) -> ImapSettings {
    ImapSettings {
        host: "localhost".to_owned(),
        port: dovecot.imaps_port(),
        tls: TlsMode::Implicit,
        ca_file: Some(dovecot.ca_file().to_owned()),
        timeout: Duration::from_secs(60),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn raw_full_fetch(dovecot: &Dovecot, mailbox: &str) -> Result<Duration> {
    let mut c = dovecot.client(SERVICE).await?;
    c.command_ok(&format!("EXAMINE \"{mailbox}\"")).await?;
    let t = Instant::now();
    let r = c
        .command_ok("UID FETCH 1:* (UID FLAGS MODSEQ INTERNALDATE RFC822.SIZE ENVELOPE)")
        .await?;
    let d = t.elapsed();
    anyhow::ensure!(!r.untagged.is_empty());
    c.logout().await;
    Ok(d)
}

async fn folder_id(pool: &PgPool, mailbox: &str) -> Result<i64> {
    let (row, _) =
        flagpost_store::folders::upsert_listed_folder(pool, mailbox, mailbox, Some("/")).await?;
    Ok(row.id)
}

async fn flagpost_sync(
    dovecot: &Dovecot,
    pool: &PgPool,
    id: i64,
    mailbox: &str,
) -> Result<(Duration, flagpost_imap::sync::SyncReport)> {
    let mut conn = Conn::open(&settings(dovecot), SERVICE, SERVICE_PW).await?;
    let t = Instant::now();
    flagpost_imap::sync::examine_folder(&mut conn, pool, id, mailbox).await?;
    let report = flagpost_imap::sync::sync_selected(&mut conn, pool, id).await?;
    let d = t.elapsed();
    conn.logout().await;
    Ok((d, report))
}

async fn initial_sync(
    dovecot: &Dovecot,
    pool: &PgPool,
    mailbox: &str,
    n: usize,
    rounds: usize,
) -> Result<()> {
    // Warm Dovecot's index and cache first, so both sides read a warm server.
    raw_full_fetch(dovecot, mailbox).await?;
    let mut raw = Vec::new();
    let mut ours = Vec::new();
    let id = folder_id(pool, mailbox).await?;
    for _ in 0..rounds {
        raw.push(raw_full_fetch(dovecot, mailbox).await?);
        sqlx::query("DELETE FROM messages WHERE folder_id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        // A first sync writes into a table without the previous round's 100k dead rows.
        sqlx::query("VACUUM messages").execute(pool).await?;
        sqlx::query("UPDATE folders SET uidvalidity = NULL, highest_modseq = NULL, uidnext = NULL WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        let (d, report) = flagpost_sync(dovecot, pool, id, mailbox).await?;
        anyhow::ensure!(
            report.applied.added == n,
            "synced {} of {n}",
            report.applied.added
        );
        ours.push(d);
    }
    let (raw, ours) = (median(raw), median(ours));
    println!(
        "| initial sync, {n} messages (median of {rounds}) | {} | {} | {:.2}× (target ≤ 1.5×) |",
        ms(raw),
        ms(ours),
        ours.as_secs_f64() / raw.as_secs_f64()
    );
    Ok(())
}

/// One round: 10 flag changes and 3 expunges while Flagpost is away, then the raw client's
/// QRESYNC EXAMINE and Flagpost's reconnect sync from the same checkpoint.
async fn resync_round(
    dovecot: &Dovecot,
    pool: &PgPool,
    id: i64,
    mailbox: &str,
    owner_folder: &str,
    round: usize,
) -> Result<(Duration, Duration)> {
    let (uv, modseq): (i64, i64) =
        sqlx::query_as("SELECT uidvalidity, highest_modseq FROM folders WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    let uids: Vec<i64> = sqlx::query_scalar(
        "SELECT uid FROM messages WHERE folder_id = $1 ORDER BY uid DESC LIMIT 13",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let mut c = dovecot.client("support").await?;
    c.command_ok(&format!("SELECT \"{owner_folder}\"")).await?;
    for uid in &uids[..10] {
        c.command_ok(&format!(
            "UID STORE {uid} +FLAGS.SILENT (\\Flagged $Round{round})"
        ))
        .await?;
    }
    for uid in &uids[10..] {
        c.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
            .await?;
        c.command_ok(&format!("UID EXPUNGE {uid}")).await?;
    }
    c.logout().await;

    let mut raw_client =
        ImapClient::connect_tls(dovecot.imaps_port(), dovecot.certificates()).await?;
    raw_client.login(SERVICE, SERVICE_PW).await?;
    raw_client.command_ok("ENABLE QRESYNC").await?;
    let t = Instant::now();
    let r = raw_client
        .command_ok(&format!("EXAMINE \"{mailbox}\" (QRESYNC ({uv} {modseq}))"))
        .await?;
    let raw = t.elapsed();
    anyhow::ensure!(
        r.untagged.iter().any(|l| l.starts_with("VANISHED")),
        "raw QRESYNC saw no VANISHED"
    );
    raw_client.logout().await;

    let (ours, report) = flagpost_sync(dovecot, pool, id, mailbox).await?;
    anyhow::ensure!(
        report.applied.updated == 10 && report.applied.removed == 3,
        "resync applied {:?}",
        report.applied
    );
    Ok((raw, ours))
}

async fn resync(
    dovecot: &Dovecot,
    pool: &PgPool,
    mailbox: &str,
    owner_folder: &str,
    n: usize,
) -> Result<(Duration, Duration)> {
    let id = folder_id(pool, mailbox).await?;
    flagpost_sync(dovecot, pool, id, mailbox).await?;
    let (mut raw, mut ours, mut above) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..7 {
        let (r, o) = resync_round(dovecot, pool, id, mailbox, owner_folder, round).await?;
        raw.push(r);
        ours.push(o);
        above.push(o.saturating_sub(r));
    }
    let (raw, ours, above) = (median(raw), median(ours), median(above));
    println!(
        "| resync after reconnect, {n} messages, 10 changes + 3 expunges (median of 7) | {} | {} | {:.2}× (target ≤ 3×) |",
        ms(raw),
        ms(ours),
        ours.as_secs_f64() / raw.as_secs_f64()
    );
    Ok((ours, above))
}

async fn propagation(
    dovecot: &Dovecot,
    pool: &PgPool,
    db: &TestDatabase,
    mailbox: &str,
    owner_folder: &str,
    changes: usize,
) -> Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cfg = flagpost_imap::mirror::MirrorConfig {
        ctx: flagpost_imap::watch::MirrorContext {
            settings: settings(dovecot),
            user: SERVICE.to_owned(),
            password: SERVICE_PW.into(),
            pool: pool.clone(),
            poll_interval: Duration::from_secs(5),
            idle_check: Duration::from_secs(120),
        },
        patterns: vec![mailbox.to_owned()],
        folder_poll: Duration::from_secs(3600),
        acl_poll: Duration::from_secs(3600),
        max_idle: 8,
    };
    let mirror = tokio::spawn(flagpost_imap::mirror::run_mirror(
        cfg,
        Default::default(),
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let live: Option<String> =
            sqlx::query_scalar("SELECT sync_state FROM folders WHERE imap_name = $1")
                .bind(mailbox)
                .fetch_optional(pool)
                .await?;
        if live.as_deref() == Some("live") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the watcher did not go live");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut listener = PgListener::connect(&db.url()).await?;
    listener
        .listen(flagpost_store::events::EVENTS_CHANNEL)
        .await?;
    let mut c = dovecot.client("support").await?;
    c.command_ok(&format!("SELECT \"{owner_folder}\"")).await?;
    let uids: Vec<i64> = sqlx::query_scalar(
        "SELECT m.uid FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.imap_name = $1",
    )
    .bind(mailbox)
    .fetch_all(pool)
    .await?;
    let mut lat = Vec::with_capacity(changes);
    let mut pick = 0;
    for i in 0..changes {
        // Set a flag on a random message, then clear it again: every STORE changes something.
        if i % 2 == 0 {
            pick = uids[rand::rng().random_range(0..uids.len())];
        }
        let (uid, sign) = (pick, if i % 2 == 0 { '+' } else { '-' });
        let before: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
            .fetch_one(pool)
            .await?;
        c.command_ok(&format!(
            "UID STORE {uid} {sign}FLAGS.SILENT ($Propagation)"
        ))
        .await?;
        let t = Instant::now();
        loop {
            let n = match tokio::time::timeout(Duration::from_secs(10), listener.recv()).await {
                Ok(n) => n?,
                Err(_) => {
                    let rows: Vec<(i64, String)> =
                        sqlx::query_as("SELECT id, type FROM events WHERE id > $1 ORDER BY id")
                            .bind(before)
                            .fetch_all(pool)
                            .await?;
                    bail!("no NOTIFY within 10 s after event {before}; events since: {rows:?}");
                }
            };
            if n.payload().parse::<i64>().unwrap_or(0) > before {
                break;
            }
        }
        lat.push(t.elapsed());
    }
    c.logout().await;
    shutdown.cancel();
    mirror.await?;
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "| propagation STORE → event committed + NOTIFY, {changes} changes | Dovecot IDLE delay ≈ 500 ms | p50 {} / p99 {} | target ≤ IDLE delay + 50 ms |",
        ms(p(0.5)),
        ms(p(0.99))
    );
    Ok(())
}

async fn memory(args: &Args) -> Result<()> {
    let dovecot = Dovecot::start().await?;
    dovecot.add_user("support", "support-pw")?;
    dovecot.add_user(SERVICE, SERVICE_PW)?;
    let per = 50_000;
    for i in 0..20 {
        let f = format!("Mem{i:02}");
        dovecot.create_folder("support", &f).await?;
        dovecot.set_acl("support", &f, SERVICE, "lra").await?;
        seed(&dovecot, &f, per)?;
    }
    let db = TestDatabase::create().await?;
    let exe = std::env::current_exe()?.with_file_name("flagpost");
    anyhow::ensure!(
        exe.is_file(),
        "{} is missing: run `cargo build --release -p flagpost` (scripts/bench does)",
        exe.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(&exe)
        .arg("serve")
        .env("FLAGPOST_DATABASE_URL", db.url())
        .env("FLAGPOST_IMAP_HOST", "localhost")
        .env("FLAGPOST_IMAP_PORT", dovecot.imaps_port().to_string())
        .env("FLAGPOST_IMAP_CA_FILE", dovecot.ca_file())
        .env("FLAGPOST_IMAP_USER", SERVICE)
        .env("FLAGPOST_IMAP_PASSWORD", SERVICE_PW)
        .env("FLAGPOST_FOLDERS", "shared/support/Mem*")
        .env("FLAGPOST_LISTEN", format!("127.0.0.1:{port}"))
        .env("FLAGPOST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("no pid")?;
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5)).await?;
    let t = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if n == (20 * per) as i64 {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(1800),
            "the mirror did not fill in 30 min"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let synced = t.elapsed();
    // Let the watchers settle into IDLE/polling.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
            .unwrap_or_default()
    };
    println!(
        "| memory, 20 folders × {per} watched | — | RSS {} MB (peak {} MB), mirror filled in {:.0} s | target ≤ 100 MB |",
        field("VmRSS:").parse::<u64>().unwrap_or(0) / 1024,
        field("VmHWM:").parse::<u64>().unwrap_or(0) / 1024,
        synced.as_secs_f64()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    child.wait().await?;
    let _ = args;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    if let Ok(filter) = std::env::var("FLAGPOST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "flagpost-bench on {} cores ({cpu}), {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        String::from_utf8_lossy(
            &std::process::Command::new("date")
                .arg("-u")
                .output()?
                .stdout
        )
        .trim()
    );
    println!();
    if let Some(api_args) = &args.api {
        return api::run(api_args).await;
    }
    if let Some(webhook_args) = &args.webhooks {
        return webhooks::run(webhook_args).await;
    }
    println!("| figure | raw IMAP client | Flagpost | ratio |");
    println!("|---|---|---|---|");

    if args.memory_only {
        return memory(&args).await;
    }
    let dovecot = Dovecot::start().await?;
    dovecot.add_user("support", "support-pw")?;
    dovecot.add_user(SERVICE, SERVICE_PW)?;
    for (f, n) in [("Big", args.big), ("Small", args.small)] {
        dovecot.create_folder("support", f).await?;
        dovecot.set_acl("support", f, SERVICE, "lra").await?;
        seed(&dovecot, f, n)?;
    }
    let db = TestDatabase::create().await?;
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(10)).await?;
    flagpost_store::migrate(&pool).await?;

    initial_sync(
        &dovecot,
        &pool,
        "shared/support/Big",
        args.big,
        args.initial_only.unwrap_or(3),
    )
    .await?;
    if args.initial_only.is_some() {
        pool.close().await;
        return Ok(());
    }
    // The repeated first syncs above leave dead rows behind: measure the rest on a settled
    // database, as a long-running deployment would have.
    sqlx::query("VACUUM ANALYZE messages")
        .execute(&pool)
        .await?;
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;
    let (small, small_above) =
        resync(&dovecot, &pool, "shared/support/Small", "Small", args.small).await?;
    let (big, big_above) = resync(&dovecot, &pool, "shared/support/Big", "Big", args.big).await?;
    println!(
        "| resync cost, {} vs {} messages | — | {} vs {} | {:.2}× (target within ±50 %) |",
        args.big,
        args.small,
        ms(big),
        ms(small),
        big.as_secs_f64() / small.as_secs_f64()
    );
    // The server's own QRESYNC EXAMINE grows with the folder; what Flagpost adds to it should
    // not (the median over the rounds of Flagpost's time minus the raw client's).
    println!(
        "| resync, Flagpost's time above the raw EXAMINE, {} vs {} messages | — | {} vs {} | {:.2}× (within ±50 %) |",
        args.big,
        args.small,
        ms(big_above),
        ms(small_above),
        big_above.as_secs_f64() / small_above.as_secs_f64().max(1e-6)
    );
    propagation(
        &dovecot,
        &pool,
        &db,
        "shared/support/Small",
        "Small",
        args.changes,
    )
    .await?;
    pool.close().await;
    drop(dovecot);
    if args.memory {
        memory(&args).await?;
    }
    Ok(())
}
