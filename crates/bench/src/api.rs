//! `flagpost-bench --api`: the REST API and the live stream under load, against the real
//! `flagpost serve` binary (release build), a private Dovecot and PostgreSQL, with the load
//! generator in this process on the same machine.
//!
//! Set-up: `flagpost serve` watches one real Dovecot folder, `Live` (1,000 messages), which the
//! PATCH figure needs. Once its first folder discovery is done (it runs again only after
//! `FLAGPOST_FOLDER_POLL_SECS`, set to a day, and it would mark folders it does not LIST as
//! removed), 50 more folders with 1M messages, their ACLs and the service account's rights are
//! written straight into PostgreSQL with `INSERT … SELECT generate_series`, announced with one
//! `folder.added` event each (so the API's ACL snapshot takes them in), then `VACUUM ANALYZE`.
//! The mirror never touches those folders during the run.
//!
//! Figures:
//! 1. `GET /api/v1/messages?status=pending&limit=50` over every readable folder, 32 closed-loop
//!    keep-alive clients: latency percentiles and requests/s, with a staff session and with an
//!    integration token, plus a varied mix (folder filters, deep cursors, newest first,
//!    `status=any`). Also CPU time per request by process and PostgreSQL transactions per
//!    request, and each query's cost alone, to see what bounds the figure.
//! 2. SSE fan-out: 1,000 open `GET /api/v1/events/stream`; a flag change committed with its
//!    `message.updated` event (`append_events`, which NOTIFYs); commit → event received on every
//!    stream.
//! 3. `PATCH /api/v1/messages/{id}` → `message.updated` on other users' streams, against the raw
//!    IMAP `UID STORE` round trip on the same Dovecot in the same run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flagpost_harness::{Dovecot, ImapFixture, TestDatabase};
use flagpost_store::PgPool;
use flagpost_store::events::{EventType, NewEvent};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const SERVICE: &str = "flagpost";
const SERVICE_PW: &str = "service-pw";
/// The staff user whose requests are measured (`lr` on every bench folder, `lrsw` on `Live`).
pub(crate) const AGENT: &str = "agent";
const AGENT_PW: &str = "agent-pw";
/// Another user whose streams watch the PATCHes (`lr`).
const WATCHER: &str = "watcher";
const WATCHER_PW: &str = "watcher-pw";
const LIVE: &str = "shared/support/Live";
const LIVE_MESSAGES: usize = 1000;
const BENCH_PREFIX: &str = "shared/support/Bench";
/// Unmeasured PATCHes first.
const WARM_PATCHES: usize = 3;

/// Settings of the API benchmarks.
#[derive(Debug, Clone)]
pub struct ApiArgs {
    /// Messages seeded into PostgreSQL.
    pub messages: usize,
    /// Folders they are spread over.
    pub folders: usize,
    /// Concurrent HTTP clients for the listing.
    pub clients: usize,
    /// Warm-up before each measured listing run.
    pub warmup: Duration,
    /// Length of each measured listing run.
    pub secs: Duration,
    /// Open event streams for the fan-out.
    pub streams: usize,
    /// Committed changes for the fan-out.
    pub rounds: usize,
    /// PATCHes.
    pub patches: usize,
    /// Subscribers (another user's streams) watching the PATCHes.
    pub subscribers: usize,
}

impl Default for ApiArgs {
    fn default() -> ApiArgs {
        ApiArgs {
            messages: 1_000_000,
            folders: 50,
            clients: 32,
            warmup: Duration::from_secs(5),
            secs: Duration::from_secs(20),
            streams: 1000,
            rounds: 50,
            patches: 100,
            subscribers: 10,
        }
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Percentile `q` (0–1) of sorted samples, nearest rank.
pub(crate) fn pct<T: Copy>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64) * q).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

pub(crate) fn summary(mut v: Vec<Duration>) -> (Duration, Duration, Duration, Duration, Duration) {
    v.sort();
    (
        pct(&v, 0.5),
        pct(&v, 0.9),
        pct(&v, 0.99),
        *v.last().expect("samples"),
        v.iter().sum::<Duration>() / v.len() as u32,
    )
}

// ---------------------------------------------------------------------------------------------
// The server process

pub(crate) struct Server {
    child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    log: PathBuf,
}

impl Server {
    /// Starts `flagpost serve` with the settings every benchmark uses, plus `env`.
    pub(crate) async fn start(
        dovecot: &Dovecot,
        db: &TestDatabase,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let exe = std::env::current_exe()?.with_file_name("flagpost");
        ensure!(
            exe.is_file(),
            "{} is missing: run `cargo build --release -p flagpost` (scripts/bench does)",
            exe.display()
        );
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let stderr = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(&exe)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FLAGPOST_DATABASE_URL", db.url())
            .env("FLAGPOST_IMAP_HOST", "localhost")
            .env("FLAGPOST_IMAP_PORT", dovecot.imaps_port().to_string())
            .env("FLAGPOST_IMAP_TLS", "implicit")
            .env("FLAGPOST_IMAP_CA_FILE", dovecot.ca_file())
            .env("FLAGPOST_IMAP_USER", SERVICE)
            .env("FLAGPOST_IMAP_PASSWORD", SERVICE_PW)
            .env("FLAGPOST_FOLDERS", LIVE)
            // One discovery at start, the next one after the run: the folders seeded straight
            // into PostgreSQL are not on the IMAP server and would be marked removed.
            .env("FLAGPOST_FOLDER_POLL_SECS", "86400")
            .env("FLAGPOST_ACL_POLL_SECS", "86400")
            .env("FLAGPOST_LISTEN", addr.to_string())
            .env("FLAGPOST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let pid = child.id().context("no pid")?;
        let server = Server {
            child,
            pid,
            base: format!("http://{addr}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!("flagpost serve did not listen; log:\n{}", server.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) async fn stop(mut self) -> Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (USER_HZ is 100 on Linux)

pub(crate) fn cpu_ticks(pid: u32) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

/// Processes whose CPU time is reported: Flagpost, PostgreSQL (the postmaster and its
/// children), Dovecot's processes are left out (idle during the reads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Procs {
    pub(crate) flagpost: u32,
    pub(crate) postmaster: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSample {
    flagpost: u64,
    postgres: u64,
    bench: u64,
    /// The whole machine (/proc/stat): busy (not idle, not iowait) and stolen by the host.
    busy: u64,
    steal: u64,
}

impl CpuSample {
    /// `(flagpost, postgres, bench, machine busy, steal)` in cores over `secs`.
    pub(crate) fn cores(&self, later: &CpuSample, secs: f64) -> [f64; 5] {
        let c = |a: u64, b: u64| b.saturating_sub(a) as f64 / 100.0 / secs;
        [
            c(self.flagpost, later.flagpost),
            c(self.postgres, later.postgres),
            c(self.bench, later.bench),
            c(self.busy, later.busy),
            c(self.steal, later.steal),
        ]
    }
}

pub(crate) fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    (get(0) + get(1) + get(2) + get(5) + get(6) + get(7), get(7))
}

impl Procs {
    pub(crate) fn sample(&self) -> CpuSample {
        let mut postgres = cpu_ticks(self.postmaster).map_or(0, |t| t.0);
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Some((t, ppid)) = cpu_ticks(pid)
                    && ppid == self.postmaster
                {
                    postgres += t;
                }
            }
        }
        let (busy, steal) = machine_ticks();
        CpuSample {
            flagpost: cpu_ticks(self.flagpost).map_or(0, |t| t.0),
            postgres,
            bench: cpu_ticks(std::process::id()).map_or(0, |t| t.0),
            busy,
            steal,
        }
    }
}

pub(crate) async fn xacts(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Seeding

/// Writes `folders` folders and `messages` messages into PostgreSQL, with ACLs granting
/// `agent` and `watcher` `lr`; returns the folder ids.
pub(crate) async fn seed(pool: &PgPool, folders: usize, messages: usize) -> Result<Vec<i64>> {
    let per = messages.div_ceil(folders) as i64;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO folders (imap_name, name, delimiter, uidvalidity, highest_modseq, uidnext,
                              sync_state, last_synced_at, acl_known, service_rights, acl_synced_at)
         SELECT $1 || lpad(g::text, 2, '0'), $1 || lpad(g::text, 2, '0'), '/',
                1700000000 + g, $3 + 1, $3 + 1, 'live', now(), true, 'lrswa', now()
         FROM generate_series(0, $2 - 1) g
         RETURNING id",
    )
    .bind(BENCH_PREFIX)
    .bind(folders as i64)
    .bind(per)
    .fetch_all(pool)
    .await?;
    sqlx::query(
        "INSERT INTO acl_entries (folder_id, identifier, rights)
         SELECT f, e.identifier, e.rights FROM unnest($1::bigint[]) f
         CROSS JOIN (VALUES ($2, 'lr'), ($3, 'lr'), ('bob', 'lrs'), ('carol', 'lrswi'),
                            ($4, 'lrswa')) e(identifier, rights)",
    )
    .bind(&ids)
    .bind(AGENT)
    .bind(WATCHER)
    .bind(SERVICE)
    .execute(pool)
    .await?;
    // Message g goes to folder g % n as UID g / n + 1; received times spread evenly over 180
    // days in UID order (plus up to a minute of jitter). h (0–99, hashed from g) picks the
    // state: 30 % pending (12 % unseen, 18 % seen), 2 % deleted, 8 % answered and flagged,
    // 60 % answered.
    sqlx::query(
        r#"INSERT INTO messages (folder_id, uidvalidity, uid, modseq, flags, message_id, subject,
                              from_name, from_address, to_addresses, date, received_at, size,
                              first_seen_at, answered_at, updated_at)
         SELECT f.id, f.uidvalidity, s.g / $2 + 1, s.g / $2 + 1, s.flags,
                format('<bench-%s@example.org>', s.g),
                (ARRAY['Invoice question', 'Login problem', 'Refund request', 'Feature idea',
                       'Re: Delivery delay', 'Password reset', 'Contract renewal'])[1 + s.g % 7]
                    || ' #' || s.g,
                'Customer ' || (s.g % 9973),
                'customer' || (s.g % 9973) || '@'
                    || (ARRAY['customer.example', 'client.example', 'partner.example',
                              'example.org'])[1 + s.g % 4],
                '[{"name": "Support", "address": "support@example.org"}]'::jsonb,
                s.r - interval '3 minutes', s.r, 1500 + (s.g * 7919) % 60000,
                s.r + interval '2 seconds',
                CASE WHEN '\Answered' = ANY (s.flags) THEN s.r + (s.h % 48) * interval '1 hour' END,
                CASE WHEN '\Answered' = ANY (s.flags) THEN s.r + (s.h % 48) * interval '1 hour'
                     ELSE s.r + interval '2 seconds' END
         FROM (
             SELECT g, h, now() - interval '180 days'
                        + g * (interval '180 days' / $1) + (h * 0.6) * interval '1 second' AS r,
                    CASE WHEN h < 12 THEN '{}'
                         WHEN h < 30 THEN '{"\\Seen"}'
                         WHEN h < 32 THEN '{"\\Deleted","\\Seen"}'
                         WHEN h < 40 THEN '{"\\Answered","\\Flagged","\\Seen"}'
                         ELSE '{"\\Answered","\\Seen"}' END::text[] AS flags
             FROM (SELECT g, abs(hashint4(g::int)) % 100 AS h
                   FROM generate_series(0, $1 - 1) g) x
         ) s
         JOIN folders f ON f.id = ($3::bigint[])[1 + s.g % $2]"#,
    )
    .bind(messages as i64)
    .bind(folders as i64)
    .bind(&ids)
    .execute(pool)
    .await?;
    // Announce the folders as the mirror would: the API's ACL snapshot follows folder events.
    let mut tx = pool.begin().await?;
    let events: Vec<NewEvent> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let name = format!("{BENCH_PREFIX}{i:02}");
            NewEvent {
                kind: EventType::FolderAdded,
                folder_id: *id,
                message_id: None,
                data: json!({ "folder": { "id": id.to_string(), "name": name, "imap_name": name } }),
            }
        })
        .collect();
    flagpost_store::events::append_events(&mut tx, &events).await?;
    tx.commit().await?;
    for t in ["messages", "folders", "acl_entries", "events"] {
        sqlx::query(&format!("VACUUM ANALYZE {t}"))
            .execute(pool)
            .await?;
    }
    Ok(ids)
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

pub(crate) fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(3600))
        .build()?)
}

async fn login(client: &reqwest::Client, base: &str, user: &str, pw: &str) -> Result<String> {
    let r = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({ "username": user, "password": pw }))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await?;
    ensure!(status.is_success(), "login as {user}: {status} {body}");
    Ok(body["token"].as_str().context("no token")?.to_owned())
}

pub(crate) async fn create_token(pool: &PgPool, identity: &str, scopes: &[&str]) -> Result<String> {
    let secret = flagpost_api::auth::new_token_secret();
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    flagpost_store::auth::create_token(
        pool,
        &format!("bench-{identity}"),
        identity,
        &scopes,
        &flagpost_api::auth::token_digest(&secret),
        Some("flagpost-bench"),
        None,
    )
    .await?;
    Ok(secret)
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &str, auth: &str) -> Result<Value> {
    let r = client.get(url).bearer_auth(auth).send().await?;
    let status = r.status();
    let text = r.text().await?;
    ensure!(status.is_success(), "GET {url}: {status} {text}");
    Ok(serde_json::from_str(&text)?)
}

/// A keyset cursor as `GET /messages` writes them (`o|n` + received µs + `.` + id, base64url):
/// lets the mix start pages anywhere in the 180 days. Checked against the API before use.
fn cursor(received_micros: i64, id: i64, newest: bool) -> String {
    use base64::Engine;
    let dir = if newest { 'n' } else { 'o' };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{dir}{received_micros}.{id}"))
}

// ---------------------------------------------------------------------------------------------
// 1. The listing under load

struct LoadResult {
    latencies: Vec<Duration>,
    secs: f64,
    all_requests: u64,
    cpu: (CpuSample, CpuSample),
    xacts_per_request: f64,
}

#[allow(clippy::too_many_arguments)]
async fn load(
    client: &reqwest::Client,
    pool: &PgPool,
    procs: Procs,
    auth: &str,
    urls: Arc<Vec<String>>,
    clients: usize,
    warmup: Duration,
    secs: Duration,
) -> Result<LoadResult> {
    let x0 = xacts(pool).await?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_to = measure_from + secs;
    let all = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (client, urls, auth, all) =
            (client.clone(), urls.clone(), auth.to_owned(), all.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut rng = rand::rngs::StdRng::from_os_rng();
            while Instant::now() < measure_to {
                let url = &urls[rng.random_range(0..urls.len())];
                let t = Instant::now();
                let r = client.get(url).bearer_auth(&auth).send().await?;
                let status = r.status();
                let body = r.bytes().await?;
                let d = t.elapsed();
                if !status.is_success() {
                    bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
                }
                all.fetch_add(1, Ordering::Relaxed);
                if t >= measure_from && t + d <= measure_to {
                    lat.push(d);
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let c0 = procs.sample();
    tokio::time::sleep_until(measure_to.into()).await;
    let c1 = procs.sample();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    // Backends report their counters at most once a second, and an idle one only after 10 s.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let x1 = xacts(pool).await?;
    let all_requests = all.load(Ordering::Relaxed);
    Ok(LoadResult {
        latencies,
        secs: secs.as_secs_f64(),
        all_requests,
        cpu: (c0, c1),
        // minus the one reading x0
        xacts_per_request: (x1 - x0 - 1) as f64 / all_requests as f64,
    })
}

fn report_load(what: &str, r: LoadResult, targets: bool) -> (Duration, f64) {
    let n = r.latencies.len();
    let rps = n as f64 / r.secs;
    let (p50, p90, p99, max, mean) = summary(r.latencies);
    let (c0, c1) = r.cpu;
    let [fp, pg, lg, busy, steal] = c0.cores(&c1, r.secs);
    let per_req = |cores: f64| cores * r.secs * 1e6 / n as f64;
    let target = if targets {
        format!(
            " | p99 ≤ 10 ms and ≥ 3,000 req/s | {} |",
            if p99 <= Duration::from_millis(10) && rps >= 3000.0 {
                "yes"
            } else {
                "no"
            }
        )
    } else {
        " | — | — |".to_owned()
    };
    println!(
        "| {what} | p50 {} / p90 {} / p99 {} / max {} (mean {}) | {rps:.0} req/s{target}",
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max),
        ms(mean)
    );
    println!(
        "|   ↳ CPU per request | flagpost {:.0} µs, PostgreSQL {:.0} µs, load generator {:.0} µs (cores: {fp:.2} + {pg:.2} + {lg:.2}; whole machine {busy:.2} of 2 busy, of which {:.2} other processes, {steal:.2} stolen) | {:.2} PostgreSQL transactions per request | | |",
        per_req(fp),
        per_req(pg),
        per_req(lg),
        (busy - fp - pg - lg).max(0.0),
        r.xacts_per_request,
    );
    let _ = r.all_requests;
    (p99, rps)
}

/// Each query a listing request makes today, alone on one connection, the server idle.
async fn query_costs(pool: &PgPool, session_id: &str, token: &str, folders: &[i64]) -> Result<()> {
    let n = 300;
    let digest = flagpost_api::auth::token_digest(token);
    let mut rows = Vec::new();
    macro_rules! time {
        ($name:expr, $e:expr) => {{
            for _ in 0..20 {
                $e;
            }
            let t = Instant::now();
            for _ in 0..n {
                $e;
            }
            rows.push(($name, t.elapsed() / n));
        }};
    }
    time!(
        "session check (`session_active`)",
        flagpost_store::auth::session_active(pool, session_id, AGENT).await?
    );
    time!(
        "token lookup (`token_by_secret`)",
        flagpost_store::auth::token_by_secret(pool, &digest).await?
    );
    time!(
        "ACL snapshot (`acl_snapshot`, 51 folders)",
        flagpost_store::api::acl_snapshot(pool).await?
    );
    let q = |status, limit| flagpost_store::api::MessageQuery {
        folders,
        status,
        flagged: None,
        text: None,
        newest_first: false,
        after: None,
        limit,
    };
    time!(
        "listing, pending, limit 50, all folders (`list_messages`)",
        flagpost_store::api::list_messages(
            pool,
            &q(flagpost_store::api::StatusFilter::Pending, 50)
        )
        .await?
    );
    time!(
        "the same listing without the JSON (ids only)",
        sqlx::query_scalar::<_, i64>(
            "SELECT m.id FROM messages m WHERE m.folder_id = ANY($1) AND m.status = 'pending'
             ORDER BY m.received_at, m.id LIMIT 50"
        )
        .bind(folders)
        .fetch_all(pool)
        .await?
    );
    // What the JSON costs, piece by piece (same rows, same plan).
    let rows_of = |select: &str| {
        format!(
            "SELECT m.id, m.received_at, {select} FROM messages m
             WHERE m.folder_id = ANY($1) AND m.status = 'pending'
             ORDER BY m.received_at, m.id LIMIT 50"
        )
    };
    let json_built = |times: &str, build: &str, to: &str, flags: &str| {
        format!(
            "{build}('id', m.id::text, 'folder_id', m.folder_id::text, 'uid', m.uid,
              'message_id', m.message_id, 'subject', m.subject,
              'from', {build}('name', m.from_name, 'address', m.from_address),
              'to', m.to_addresses, 'date', {t_date}, 'received_at', {t_recv}, 'size', m.size,
              'flags', {to}(m.flags), 'status', m.status, 'flagged', m.flagged, 'seen', m.seen,
              'etag', {flags}, 'first_seen_at', {t_first}, 'answered_at', {t_ans},
              'updated_at', {t_upd})::text",
            t_date = times.replace('X', "m.date"),
            t_recv = times.replace('X', "m.received_at"),
            t_first = times.replace('X', "m.first_seen_at"),
            t_ans = times.replace('X', "m.answered_at"),
            t_upd = times.replace('X', "m.updated_at"),
        )
    };
    let variants = [
        (
            "  the JSON built inline with json_build_object (json, not jsonb)",
            rows_of(&json_built(
                "flagpost_time(X)",
                "json_build_object",
                "to_json",
                "flagpost_message_etag(m.modseq, m.flags)",
            )),
        ),
        (
            "  jsonb as today but times as plain timestamptz (no to_char)",
            rows_of(&json_built(
                "X",
                "jsonb_build_object",
                "to_jsonb",
                "flagpost_message_etag(m.modseq, m.flags)",
            )),
        ),
        (
            "  json_build_object, no to_char, etag from the modseq only",
            rows_of(&json_built(
                "X",
                "json_build_object",
                "to_json",
                "'\"m' || m.modseq || '\"'",
            )),
        ),
        (
            "  the row's columns only (JSON built by the app)",
            rows_of("m.*"),
        ),
    ];
    for (name, sql) in &variants {
        time!(*name, sqlx::query(sql).bind(folders).fetch_all(pool).await?);
    }
    time!(
        "`SELECT 1` (round trip through the pool)",
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(pool)
            .await?
    );
    for (name, d) in rows {
        println!(
            "|   ↳ query alone: {name} | {:.0} µs | | | |",
            d.as_secs_f64() * 1e6
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Event streams

#[derive(Debug)]
struct Arrival {
    id: i64,
    kind: String,
    message_id: Option<String>,
    actor: Option<String>,
    at: Instant,
}

/// Opens an event stream and forwards every event it receives, stamped on arrival; `ready`
/// fires with the first bytes (the `connected` comment).
async fn stream(
    client: reqwest::Client,
    url: String,
    auth: String,
    ready: mpsc::Sender<Result<()>>,
    out: mpsc::UnboundedSender<Arrival>,
    parse_data: bool,
) {
    let resp = match client.get(&url).bearer_auth(&auth).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let _ = ready
                .send(Err(anyhow::anyhow!("stream: {}", r.status())))
                .await;
            return;
        }
        Err(e) => {
            let _ = ready.send(Err(e.into())).await;
            return;
        }
    };
    let mut resp = resp;
    let mut buf = String::new();
    let mut announced = false;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            _ => return,
        };
        let at = Instant::now();
        if !announced {
            announced = true;
            let _ = ready.send(Ok(())).await;
        }
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), None);
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = value.parse::<i64>().ok(),
                    "event" => kind = value.to_owned(),
                    "data" => data = Some(value),
                    _ => {}
                }
            }
            let Some(id) = id else { continue };
            let (message_id, actor) = match (parse_data, data) {
                (true, Some(d)) => {
                    let v: Value = serde_json::from_str(d).unwrap_or_default();
                    (
                        v["message_id"].as_str().map(str::to_owned),
                        v["data"]["actor"].as_str().map(str::to_owned),
                    )
                }
                _ => (None, None),
            };
            if out
                .send(Arrival {
                    id,
                    kind,
                    message_id,
                    actor,
                    at,
                })
                .is_err()
            {
                return;
            }
        }
    }
}

/// Opens `n` streams (in waves, so the listen backlog is not the test) and waits until each
/// has said hello.
async fn open_streams(
    client: &reqwest::Client,
    url: &str,
    auth: &str,
    n: usize,
    parse_data: bool,
) -> Result<(
    Vec<tokio::task::JoinHandle<()>>,
    mpsc::UnboundedReceiver<Arrival>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(n);
    let mut opened = 0;
    while opened < n {
        let wave = (n - opened).min(100);
        let (ready_tx, mut ready_rx) = mpsc::channel(wave);
        for _ in 0..wave {
            tasks.push(tokio::spawn(stream(
                client.clone(),
                url.to_owned(),
                auth.to_owned(),
                ready_tx.clone(),
                tx.clone(),
                parse_data,
            )));
        }
        for _ in 0..wave {
            tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
                .await
                .context("a stream did not open within 30 s")?
                .context("stream task ended")??;
        }
        opened += wave;
    }
    Ok((tasks, rx))
}

// ---------------------------------------------------------------------------------------------
// 2. Fan-out

#[allow(clippy::too_many_arguments)]
async fn fan_out(
    client: &reqwest::Client,
    procs: Procs,
    base: &str,
    pool: &PgPool,
    auth: &str,
    folder: i64,
    args: &ApiArgs,
) -> Result<()> {
    let url = format!("{base}/api/v1/events/stream");
    let (tasks, mut rx) = open_streams(client, &url, auth, args.streams, false).await?;
    let message_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM messages WHERE folder_id = $1 ORDER BY uid LIMIT $2")
            .bind(folder)
            .bind(args.rounds as i64)
            .fetch_all(pool)
            .await?;
    ensure!(message_ids.len() == args.rounds, "not enough messages");
    let mut all = Vec::with_capacity(args.streams * args.rounds);
    let mut last = Vec::with_capacity(args.rounds);
    let mut commits = Vec::with_capacity(args.rounds);
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    let (c0, t_cpu) = (procs.sample(), Instant::now());
    for (round, id) in message_ids.iter().enumerate() {
        // A real change: the message's flags and its event in one transaction, as the mirror
        // and the API write them.
        let mut tx = pool.begin().await?;
        let (folder_id, before): (i64, Vec<String>) =
            sqlx::query_as("SELECT folder_id, flags FROM messages WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let mut after = before.clone();
        after.push("\\Flagged".to_owned());
        let after = flagpost_domain::Flags::new(after);
        sqlx::query("UPDATE messages SET flags = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(after.as_slice())
            .execute(&mut *tx)
            .await?;
        let ids = flagpost_store::events::append_events(
            &mut tx,
            &[NewEvent {
                kind: EventType::MessageUpdated,
                folder_id,
                message_id: Some(*id),
                data: json!({
                    "before": { "flags": before },
                    "after": {
                        "flags": after.as_slice(),
                        "status": after.status().as_str(),
                        "flagged": after.flagged(),
                        "seen": after.seen(),
                    },
                    "actor": null,
                }),
            }],
        )
        .await?;
        let event = ids[0];
        let t0 = Instant::now();
        tx.commit().await?;
        commits.push(t0.elapsed());
        let mut got = 0;
        let mut latest = Duration::ZERO;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < args.streams {
            let a = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .with_context(|| {
                    format!(
                        "round {round}: only {got} of {} streams got event {event} within 10 s",
                        args.streams
                    )
                })?
                .context("streams ended")?;
            if a.id == event {
                let d = a.at.saturating_duration_since(t0);
                all.push(d);
                latest = latest.max(d);
                got += 1;
            }
        }
        last.push(latest);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c1 = procs.sample();
    let secs = t_cpu.elapsed().as_secs_f64();
    for t in &tasks {
        t.abort();
    }
    let [fp, pg, lg, busy, steal] = c0.cores(&c1, secs);
    let per_change = |cores: f64| cores * secs * 1e3 / args.rounds as f64;
    eprintln!(
        "fan-out, slowest stream per change (ms): {:?}",
        last.iter()
            .map(|d| (d.as_secs_f64() * 1e4).round() / 10.0)
            .collect::<Vec<_>>()
    );
    let (p50, p90, p99, max, _) = summary(all);
    let (l50, _, l99, _, _) = summary(last);
    let (c50, ..) = summary(commits);
    println!(
        "| SSE fan-out: commit → event received, {} streams × {} changes (clock starts before COMMIT; COMMIT itself p50 {}) | p50 {} / p90 {} / p99 {} / max {}; last of the {} streams per change: p50 {} / p99 {} | — | p99 ≤ 100 ms | {} |",
        args.streams,
        args.rounds,
        ms(c50),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max),
        args.streams,
        ms(l50),
        ms(l99),
        if p99 <= Duration::from_millis(100) {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "|   ↳ CPU per change (all {} streams) | flagpost {:.1} ms, load generator {:.1} ms, PostgreSQL {:.1} ms (whole machine {busy:.2} of 2 busy, of which {:.2} other processes, {steal:.2} stolen, over {secs:.0} s incl. 100 ms pauses) | | | |",
        args.streams,
        per_change(fp),
        per_change(lg),
        per_change(pg),
        (busy - fp - pg - lg).max(0.0),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. PATCH → other subscribers, against the raw STORE

#[allow(clippy::too_many_arguments)]
async fn patches(
    client: &reqwest::Client,
    base: &str,
    pool: &PgPool,
    dovecot: &Dovecot,
    agent: &str,
    watcher: &str,
    live: i64,
    args: &ApiArgs,
) -> Result<()> {
    let url = format!("{base}/api/v1/events/stream");
    let (tasks, mut rx) = open_streams(client, &url, watcher, args.subscribers, true).await?;
    ensure!(
        args.patches * 3 + WARM_PATCHES <= LIVE_MESSAGES,
        "at most {} PATCHes",
        (LIVE_MESSAGES - WARM_PATCHES) / 3
    );
    let mut targets: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, uid FROM messages WHERE folder_id = $1 ORDER BY uid LIMIT $2")
            .bind(live)
            .bind((args.patches + WARM_PATCHES) as i64)
            .fetch_all(pool)
            .await?;
    ensure!(
        targets.len() == args.patches + WARM_PATCHES,
        "not enough Live messages"
    );
    // The first PATCHes open the writer's IMAP session (TLS + LOGIN): not measured.
    for (id, _) in targets.drain(args.patches..) {
        let r = client
            .patch(format!("{base}/api/v1/messages/{id}"))
            .bearer_auth(agent)
            .json(&json!({ "flagged": true }))
            .send()
            .await?;
        ensure!(r.status().is_success(), "PATCH {id}: {}", r.status());
    }
    let mut to_event = Vec::new();
    let mut responses = Vec::new();
    let mut unattributed = 0;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}
    for (id, _) in &targets {
        let sid = id.to_string();
        let t0 = Instant::now();
        let r = client
            .patch(format!("{base}/api/v1/messages/{id}"))
            .bearer_auth(agent)
            .json(&json!({ "flagged": true }))
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        responses.push(t0.elapsed());
        ensure!(status.is_success(), "PATCH {id}: {status} {body}");
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < args.subscribers {
            let a = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .with_context(|| format!("PATCH {id}: {got} subscribers saw it within 10 s"))?
                .context("streams ended")?;
            // The first `message.updated` of that message is the change. It names the agent
            // when the API recorded it; when the mirror's watcher saw the STORE first (it was
            // already syncing the folder), the mirror's event comes first, without an actor,
            // and the API records nothing more.
            if a.kind == "message.updated" && a.message_id.as_deref() == Some(sid.as_str()) {
                to_event.push(a.at.saturating_duration_since(t0));
                got += 1;
                if a.actor.as_deref() != Some(AGENT) {
                    unattributed += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in &tasks {
        t.abort();
    }

    // The raw client on the same server, right after: one `UID STORE` round trip on a selected
    // folder, and the sequence Flagpost's writer sends per change (SELECT, UID STORE, UNSELECT
    // on its kept session).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut raw = Vec::new();
    let mut c = dovecot.client("support").await?;
    c.command_ok("SELECT \"Live\"").await?;
    for i in 0..args.patches {
        let uid = LIVE_MESSAGES - i;
        let t = Instant::now();
        c.command_ok(&format!("UID STORE {uid} +FLAGS (\\Flagged)"))
            .await?;
        raw.push(t.elapsed());
    }
    c.logout().await;
    let mut seq = Vec::new();
    let mut c = dovecot.client(SERVICE).await?;
    for i in 0..args.patches {
        let uid = LIVE_MESSAGES - args.patches - i;
        let t = Instant::now();
        c.command_ok(&format!("SELECT \"{LIVE}\"")).await?;
        c.command_ok(&format!("UID STORE {uid} +FLAGS (\\Seen)"))
            .await?;
        c.command_ok("UNSELECT").await?;
        seq.push(t.elapsed());
    }
    c.logout().await;

    let (e50, e90, e99, emax, _) = summary(to_event);
    let (r50, _, r99, _, _) = summary(responses);
    let (s50, _, s99, _, _) = summary(raw);
    let (q50, _, q99, _, _) = summary(seq);
    println!(
        "| PATCH → `message.updated` on another user's stream, {} PATCHes × {} subscribers | raw `UID STORE` p50 {} / p99 {}; raw SELECT + UID STORE + UNSELECT p50 {} / p99 {} | p50 {} / p90 {} / p99 {} / max {} (the PATCH response alone: p50 {} / p99 {}; {} of {} events came from the mirror, without actor) | {:.1}× the raw STORE, {:.1}× the raw sequence (p50) | p99 ≤ 50 ms | {} |",
        args.patches,
        args.subscribers,
        ms(s50),
        ms(s99),
        ms(q50),
        ms(q99),
        ms(e50),
        ms(e90),
        ms(e99),
        ms(emax),
        ms(r50),
        ms(r99),
        unattributed,
        args.patches * args.subscribers,
        e50.as_secs_f64() / s50.as_secs_f64(),
        e50.as_secs_f64() / q50.as_secs_f64(),
        if e99 <= Duration::from_millis(50) {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

pub(crate) fn live_message(i: usize) -> Vec<u8> {
    format!(
        "From: Customer {i} <customer{i}@customer.example>\r\nTo: support@example.org\r\nSubject: Live question #{i}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <live-{i}@example.org>\r\n\r\nHello support team,\r\nplease have a look.\r\n"
    )
    .into_bytes()
}

/// Prints a report's title and table header, then measures for 3 s how busy the machine is
/// before the run: other work skews every figure, so the report says how much there is.
pub(crate) async fn start_report(title: &str) {
    println!("{title}");
    println!();
    println!("| figure | result | throughput / baseline | target | met |");
    println!("|---|---|---|---|---|");
    let (b0, t0) = (machine_ticks().0, Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_busy = (machine_ticks().0 - b0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
    eprintln!("before the run, other processes kept {idle_busy:.2} of 2 cores busy");
}

/// Runs the three API figures and prints them as table rows.
pub async fn run(args: &ApiArgs) -> Result<()> {
    start_report(
        "API benchmarks: flagpost serve (release) + PostgreSQL + Dovecot + this load generator on the same machine",
    )
    .await;
    let dovecot = Dovecot::start().await?;
    dovecot.add_user("support", "support-pw")?;
    dovecot.add_user(SERVICE, SERVICE_PW)?;
    dovecot.add_user(AGENT, AGENT_PW)?;
    dovecot.add_user(WATCHER, WATCHER_PW)?;
    dovecot.create_folder("support", "Live").await?;
    dovecot.set_acl("support", "Live", SERVICE, "lrswa").await?;
    dovecot.set_acl("support", "Live", AGENT, "lrsw").await?;
    dovecot.set_acl("support", "Live", WATCHER, "lr").await?;
    let start = std::time::SystemTime::now() - Duration::from_secs(3 * 24 * 3600);
    dovecot.seed_maildir("support", "Live", LIVE_MESSAGES, |i| {
        (
            live_message(i),
            start + Duration::from_secs(i as u64 * 60),
            String::new(),
        )
    })?;

    let db = TestDatabase::create().await?;
    let log = std::env::temp_dir().join(format!("flagpost-bench-serve-{}.log", std::process::id()));
    let server = Server::start(&dovecot, &db, log, &[]).await?;
    let result = run_with(args, &dovecot, &db, &server).await;
    if result.is_err() {
        eprintln!("flagpost serve log:\n{}", server.log_text());
    }
    server.stop().await?;
    let _ = std::fs::remove_file(
        std::env::temp_dir().join(format!("flagpost-bench-serve-{}.log", std::process::id())),
    );
    result
}

/// Waits until the mirror has `Live` with its `messages`: its first folder discovery is done,
/// and folders seeded into PostgreSQL from now on stay as they are. Returns Live's id.
pub(crate) async fn wait_live(pool: &PgPool, messages: usize) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT f.id, f.sync_state, (SELECT count(*) FROM messages m WHERE m.folder_id = f.id)
             FROM folders f WHERE f.imap_name = $1",
        )
        .bind(LIVE)
        .fetch_optional(pool)
        .await
        .unwrap_or(None);
        if let Some((id, state, n)) = row
            && state == "live"
            && n == messages as i64
        {
            return Ok(id);
        }
        ensure!(
            Instant::now() < deadline,
            "Live was not mirrored within 2 min"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_with(
    args: &ApiArgs,
    dovecot: &Dovecot,
    db: &TestDatabase,
    server: &Server,
) -> Result<()> {
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(10)).await?;
    let base = server.base.as_str();
    let live = wait_live(&pool, LIVE_MESSAGES).await?;
    let t = Instant::now();
    let bench_folders = seed(&pool, args.folders, args.messages).await?;
    eprintln!(
        "seeded {} messages in {} folders in {:.0} s",
        args.messages,
        args.folders,
        t.elapsed().as_secs_f64()
    );

    let client = http_client()?;
    let session = login(&client, base, AGENT, AGENT_PW).await?;
    let token = create_token(&pool, AGENT, &["read", "write"]).await?;
    let watcher_token = create_token(&pool, WATCHER, &["read"]).await?;
    // Ready when the API knows the seeded folders.
    let last = *bench_folders.last().context("no folders")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .get(format!("{base}/api/v1/messages?folder={last}&limit=1"))
            .bearer_auth(&session)
            .send()
            .await?;
        if r.status().is_success() {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the API does not show the seeded folders: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = get_json(
        &client,
        &format!("{base}/api/v1/messages?status=pending&limit=50"),
        &session,
    )
    .await?;
    ensure!(
        first["messages"].as_array().map_or(0, Vec::len) == 50,
        "the listing returned {first}"
    );

    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    let procs = Procs {
        flagpost: server.pid,
        postmaster: cpu_ticks(backend as u32).map_or(0, |t| t.1),
    };

    // 1. The listing.
    let fixed = Arc::new(vec![format!(
        "{base}/api/v1/messages?status=pending&limit=50"
    )]);
    let r = load(
        &client,
        &pool,
        procs,
        &session,
        fixed.clone(),
        args.clients,
        args.warmup,
        args.secs,
    )
    .await?;
    report_load(
        &format!(
            "`GET /messages?status=pending&limit=50`, {} messages in {} folders, {} clients, staff session",
            args.messages, args.folders, args.clients
        ),
        r,
        true,
    );
    let r = load(
        &client,
        &pool,
        procs,
        &token,
        fixed.clone(),
        args.clients,
        args.warmup,
        args.secs,
    )
    .await?;
    report_load(
        &format!(
            "the same, integration token (`fpt_…`), {} clients",
            args.clients
        ),
        r,
        true,
    );
    // The same while the mirror changes: another IMAP client flips a flag in Live ten times a
    // second, so every kept listing is dropped about every 100 ms and rendered again.
    let churning = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let churn = {
        let mut c = dovecot.client("support").await?;
        let churning = churning.clone();
        tokio::spawn(async move {
            c.command_ok("SELECT \"Live\"").await?;
            let mut n = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while churning.load(Ordering::Relaxed) {
                tick.tick().await;
                // UIDs the PATCH phase (the lowest) and its raw client (the highest) leave alone
                let uid = 401 + n % 100;
                let op = if (n / 100).is_multiple_of(2) {
                    '+'
                } else {
                    '-'
                };
                c.command_ok(&format!("UID STORE {uid} {op}FLAGS (\\Flagged)"))
                    .await?;
                n += 1;
            }
            c.command_ok("UID STORE 401:500 -FLAGS (\\Flagged)").await?;
            c.logout().await;
            Ok::<u64, anyhow::Error>(n)
        })
    };
    let events_before = flagpost_store::api::max_event_id(&pool).await?;
    let r = load(
        &client,
        &pool,
        procs,
        &session,
        fixed.clone(),
        args.clients,
        args.warmup,
        args.secs,
    )
    .await?;
    churning.store(false, Ordering::Relaxed);
    let stores = churn.await??;
    let events = flagpost_store::api::max_event_id(&pool).await? - events_before;
    report_load(
        &format!(
            "the same while another client changes a flag 10×/s ({stores} `UID STORE`s, {events} events: every kept listing dropped each time), {} clients, staff session",
            args.clients
        ),
        r,
        true,
    );
    let r = load(
        &client,
        &pool,
        procs,
        &session,
        fixed.clone(),
        1,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .await?;
    report_load(
        "the same, 1 client (the unloaded latency), staff session",
        r,
        false,
    );
    let mix = varied_urls(&pool, base, &bench_folders).await?;
    for u in mix.iter().take(40) {
        get_json(&client, u, &session).await?;
    }
    let r = load(
        &client,
        &pool,
        procs,
        &session,
        Arc::new(mix),
        args.clients,
        args.warmup,
        args.secs,
    )
    .await?;
    report_load(
        &format!(
            "varied listings (1 or 3 folders, deep cursors, newest first, status=any, limit 50), {} clients, staff session",
            args.clients
        ),
        r,
        false,
    );
    let session_id: String = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE username = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(AGENT)
    .fetch_one(&pool)
    .await?;
    let mut readable = bench_folders.clone();
    readable.push(live);
    readable.sort_unstable();
    query_costs(&pool, &session_id, &token, &readable).await?;

    // 2. Fan-out.
    fan_out(
        &client,
        procs,
        base,
        &pool,
        &session,
        bench_folders[0],
        args,
    )
    .await?;

    // 3. PATCH → others' streams.
    patches(
        &client,
        base,
        &pool,
        dovecot,
        &session,
        &watcher_token,
        live,
        args,
    )
    .await?;
    pool.close().await;
    Ok(())
}

/// A mix of listings: one folder or three, starting at a random point of the 180 days
/// (cursor), oldest or newest first, pending or any.
async fn varied_urls(pool: &PgPool, base: &str, folders: &[i64]) -> Result<Vec<String>> {
    let (lo, hi): (i64, i64) = sqlx::query_as(
        "SELECT (extract(epoch FROM min(received_at)) * 1e6)::bigint,
                (extract(epoch FROM max(received_at)) * 1e6)::bigint FROM messages",
    )
    .fetch_one(pool)
    .await?;
    let mut rng = rand::rng();
    let mut urls = Vec::new();
    for i in 0..400 {
        let mut q = Vec::new();
        let pick = |rng: &mut rand::rngs::ThreadRng| folders[rng.random_range(0..folders.len())];
        match i % 4 {
            0 => q.push(format!("folder={}", pick(&mut rng))),
            1 => {
                for _ in 0..3 {
                    q.push(format!("folder={}", pick(&mut rng)));
                }
            }
            _ => {}
        }
        q.push(
            if i % 3 == 0 {
                "status=any"
            } else {
                "status=pending"
            }
            .to_owned(),
        );
        let newest = i % 5 == 0;
        if newest {
            q.push("sort=newest".to_owned());
        }
        if i % 2 == 0 {
            let at = rng.random_range(lo..hi);
            q.push(format!("cursor={}", cursor(at, 0, newest)));
        }
        q.push("limit=50".to_owned());
        urls.push(format!("{base}/api/v1/messages?{}", q.join("&")));
    }
    Ok(urls)
}
