//! `flagpost-bench --webhooks`: webhook delivery throughput and latency, against the real
//! `flagpost serve` binary (release build), PostgreSQL and a receiver in this process.
//!
//! Set-up: `flagpost serve` with `FLAGPOST_WEBHOOK_ALLOW_PRIVATE=true` (the receiver listens on
//! 127.0.0.1); one folder of 2 × `events` messages seeded straight into PostgreSQL (as `--api`
//! does), readable by `agent`; a service admin creates `hooks` webhooks through the API, each
//! for `agent`, `message.updated` of that folder, pointing at its own path of the receiver.
//! Every webhook receives every event: `events` events make `hooks × events` deliveries, and
//! "deliveries/s" counts them all (the benchmark target's "in total across 10 webhooks").
//!
//! Events are flag changes written through `flagpost_store::messages::apply_changes`, the
//! mirror's own write path (rows, events and NOTIFY in one transaction). An event's commit time
//! is taken when `apply_changes` returns (COMMIT acknowledged); its delivery time when the
//! receiver's handler has the whole request (headers, body, signature checked).
//!
//! Figures:
//! 1. Burst: `events` flag changes committed as fast as one writer can (`batch` per
//!    transaction, as a sync step writes them); first commit → last delivery gives the
//!    deliveries/s the worker sustains with a full queue. CPU per delivery by process and
//!    PostgreSQL transactions per delivery say what bounds it.
//! 2. Baseline, same run: a raw HTTP client (reqwest, no database) POSTing the same bodies with
//!    the same Standard Webhooks headers, one lane per webhook, one request in flight per lane,
//!    to the same receiver.
//! 3. Paced: `events` more changes, one per transaction, at `rate / hooks` events/s, so `rate`
//!    deliveries/s are offered; event committed → delivery received, p50/p99, and the rate
//!    delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use flagpost_domain::Flags;
use flagpost_domain::sync::FlagUpdate;
use flagpost_harness::{Dovecot, TestDatabase};
use flagpost_store::PgPool;
use flagpost_store::messages::Changes;
use serde_json::{Value, json};

use crate::api::{
    AGENT, Procs, Server, cpu_ticks, create_token, get_json, http_client, live_message, ms, seed,
    summary, wait_live, xacts,
};

/// The service admin who creates the webhooks.
const ADMIN: &str = "benchadmin";
/// The keyword the changes set (paced phase: cleared again on other messages).
const KEYWORD: &str = "$WebhookBench";
/// Messages of the real folder `Live`.
const LIVE_MESSAGES: usize = 10;

/// Settings of the webhook benchmark.
#[derive(Debug, Clone)]
pub struct WebhookArgs {
    /// Events per phase.
    pub events: usize,
    /// Webhooks, each receiving every event.
    pub hooks: usize,
    /// Deliveries/s offered in the paced phase (events/s × hooks).
    pub rate: usize,
    /// Events per transaction in the burst.
    pub batch: usize,
}

impl Default for WebhookArgs {
    fn default() -> WebhookArgs {
        WebhookArgs {
            events: 10_000,
            hooks: 10,
            rate: 1000,
            batch: 100,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// One request the receiver accepted.
#[derive(Debug, Clone, Copy)]
struct Received {
    hook: usize,
    event: i64,
    at: Instant,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    count: Arc<AtomicUsize>,
    /// Requests refused (bad or missing headers, bad signature).
    refused: Arc<AtomicUsize>,
    /// Each webhook's secret, known once they are created.
    secrets: Arc<OnceLock<Vec<String>>>,
    /// One delivered body, for the baseline.
    sample: Arc<Mutex<Option<Bytes>>>,
}

impl Receiver {
    /// Waits until `n` requests in all have been accepted, or fails when none came for
    /// `stall`.
    async fn wait_for(&self, n: usize, stall: Duration) -> Result<()> {
        let mut seen = self.count.load(Ordering::Relaxed);
        let mut progress = Instant::now();
        while seen < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.count.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                progress = Instant::now();
            } else if progress.elapsed() > stall {
                bail!(
                    "the receiver has {seen} of {n} deliveries and got none for {} s ({} refused)",
                    stall.as_secs(),
                    self.refused.load(Ordering::Relaxed)
                );
            }
        }
        Ok(())
    }

    fn take(&self) -> Vec<Received> {
        self.count.store(0, Ordering::Relaxed);
        std::mem::take(&mut *self.got.lock().expect("receiver lock"))
    }
}

/// `POST /hook/{n}`: accepts a Standard Webhooks request whose signature verifies with webhook
/// `n`'s secret, and records when it arrived.
async fn receive(
    State(r): State<Receiver>,
    Path(hook): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = (|| {
        let id = header("webhook-id")?;
        let ts: i64 = header("webhook-timestamp")?.parse().ok()?;
        let signature = header("webhook-signature")?;
        let secret = r.secrets.get()?.get(hook)?;
        let body = std::str::from_utf8(&body).ok()?;
        (flagpost_api::webhooks::sign(secret, id, ts, body) == signature).then_some(())?;
        id.parse::<i64>().ok()
    })();
    let Some(event) = verified else {
        r.refused.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    r.got
        .lock()
        .expect("receiver lock")
        .push(Received { hook, event, at });
    r.count.fetch_add(1, Ordering::Relaxed);
    let mut sample = r.sample.lock().expect("receiver lock");
    if sample.is_none() {
        *sample = Some(body);
    }
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> Result<(Receiver, String, tokio::task::JoinHandle<()>)> {
    let receiver = Receiver::default();
    let app = axum::Router::new()
        .route("/hook/{n}", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((receiver, base, task))
}

// ---------------------------------------------------------------------------------------------
// Producing events

/// A seeded message the changes touch.
#[derive(Debug, Clone)]
struct Target {
    id: i64,
    uid: u32,
    flags: Vec<String>,
}

/// Commits one `message.updated` per target (adding the keyword), `per_tx` per transaction
/// through the mirror's write path, at most one transaction per `interval`. Returns each
/// message's commit time.
async fn produce(
    pool: &PgPool,
    folder: i64,
    uidvalidity: u32,
    targets: &[Target],
    per_tx: usize,
    interval: Option<Duration>,
    modseq: &mut u64,
) -> Result<HashMap<i64, Instant>> {
    let mut committed = HashMap::with_capacity(targets.len());
    let start = tokio::time::Instant::now();
    for (i, chunk) in targets.chunks(per_tx.max(1)).enumerate() {
        if let Some(interval) = interval {
            tokio::time::sleep_until(start + interval * i as u32).await;
        }
        let flag_updates = chunk
            .iter()
            .map(|t| {
                *modseq += 1;
                let mut flags = t.flags.clone();
                flags.push(KEYWORD.to_owned());
                FlagUpdate {
                    uid: t.uid,
                    flags: Flags::new(flags),
                    modseq: Some(*modseq),
                }
            })
            .collect();
        let changes = Changes {
            flag_updates,
            ..Changes::default()
        };
        let applied =
            flagpost_store::messages::apply_changes(pool, folder, uidvalidity, &changes).await?;
        let at = Instant::now();
        ensure!(
            applied.updated == chunk.len(),
            "a change did not apply: {applied:?}"
        );
        for t in chunk {
            committed.insert(t.id, at);
        }
    }
    Ok(committed)
}

/// The `message.updated` events of `folder` after `after`: event id → message id.
async fn events_after(pool: &PgPool, folder: i64, after: i64) -> Result<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, message_id FROM events
         WHERE folder_id = $1 AND id > $2 AND type = 'message.updated'",
    )
    .bind(folder)
    .bind(after)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn max_event(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
            .fetch_one(pool)
            .await?,
    )
}

/// What a phase's deliveries show.
struct Outcome {
    /// Commit → received, every delivery.
    latencies: Vec<Duration>,
    /// The last delivery's arrival.
    last: Instant,
    /// Deliveries per webhook that arrived out of event order, and repeated ones.
    out_of_order: usize,
    duplicates: usize,
}

/// Matches the deliveries to their events' commit times and checks that each webhook got
/// every event once, in order.
fn outcome(
    got: &[Received],
    hooks: usize,
    events: &HashMap<i64, i64>,
    committed: &HashMap<i64, Instant>,
) -> Result<Outcome> {
    let mut latencies = Vec::with_capacity(got.len());
    let mut last_id = vec![0i64; hooks];
    let mut seen: Vec<std::collections::HashSet<i64>> = vec![Default::default(); hooks];
    let (mut out_of_order, mut duplicates) = (0, 0);
    let mut last = None::<Instant>;
    for r in got {
        let message = events
            .get(&r.event)
            .with_context(|| format!("delivered event {} is not one of this phase", r.event))?;
        let at = committed
            .get(message)
            .context("an event of an unknown message")?;
        latencies.push(r.at.saturating_duration_since(*at));
        if !seen[r.hook].insert(r.event) {
            duplicates += 1;
        }
        if r.event < last_id[r.hook] {
            out_of_order += 1;
        }
        last_id[r.hook] = last_id[r.hook].max(r.event);
        last = Some(last.map_or(r.at, |l| l.max(r.at)));
    }
    for (hook, s) in seen.iter().enumerate() {
        ensure!(
            s.len() == events.len(),
            "webhook {hook} received {} of {} events",
            s.len(),
            events.len()
        );
    }
    Ok(Outcome {
        latencies,
        last: last.context("nothing delivered")?,
        out_of_order,
        duplicates,
    })
}

/// The slowest commit → received per second of commits since `start`, to see whether slow
/// deliveries come in bursts.
fn slowest_per_second(
    got: &[Received],
    events: &HashMap<i64, i64>,
    committed: &HashMap<i64, Instant>,
    start: Instant,
) -> Vec<u64> {
    let mut slowest: Vec<u64> = Vec::new();
    for r in got {
        let Some(at) = events.get(&r.event).and_then(|m| committed.get(m)) else {
            continue;
        };
        let second = at.saturating_duration_since(start).as_secs() as usize;
        if slowest.len() <= second {
            slowest.resize(second + 1, 0);
        }
        let d = r.at.saturating_duration_since(*at).as_millis() as u64;
        slowest[second] = slowest[second].max(d);
    }
    slowest
}

// ---------------------------------------------------------------------------------------------
// The baseline

/// `hooks` lanes, each POSTing `per_lane` copies of `body` one after another, signed and with
/// the headers Flagpost sends, to the lane's path of the receiver. Returns the elapsed time and
/// every request's duration.
async fn baseline(
    base: &str,
    secrets: &[String],
    body: &str,
    per_lane: usize,
) -> Result<(Duration, Vec<Duration>)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let start = Instant::now();
    let mut lanes = Vec::new();
    for (hook, secret) in secrets.iter().enumerate() {
        let (client, secret, body) = (client.clone(), secret.clone(), body.to_owned());
        let url = format!("{base}/hook/{hook}");
        lanes.push(tokio::spawn(async move {
            let mut durations = Vec::with_capacity(per_lane);
            for i in 0..per_lane {
                let t = Instant::now();
                let id = (i + 1).to_string();
                let ts = chrono_now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header(
                        "webhook-signature",
                        flagpost_api::webhooks::sign(&secret, &id, ts, &body),
                    )
                    .body(body.clone())
                    .send()
                    .await?;
                ensure!(r.status().is_success(), "baseline POST: {}", r.status());
                r.bytes().await?;
                durations.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(durations)
        }));
    }
    let mut all = Vec::new();
    for lane in lanes {
        all.extend(lane.await??);
    }
    Ok((start.elapsed(), all))
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

// ---------------------------------------------------------------------------------------------

/// Runs the webhook figures and prints them as table rows.
pub async fn run(args: &WebhookArgs) -> Result<()> {
    ensure!(args.hooks > 0 && args.events > 0, "nothing to measure");
    crate::api::start_report(
        "Webhook benchmarks: flagpost serve (release) + PostgreSQL + the receiver and the event writer in this process, on the same machine",
    )
    .await;

    // `flagpost serve` watches a small real folder, `Live`: once it is mirrored, the first
    // folder discovery is done, and the folder seeded into PostgreSQL stays as it is (the
    // next discovery, a day later, would mark it removed).
    let dovecot = Dovecot::start().await?;
    dovecot.add_user("support", "support-pw")?;
    dovecot.add_user(crate::SERVICE, crate::SERVICE_PW)?;
    dovecot.create_folder("support", "Live").await?;
    dovecot
        .set_acl("support", "Live", crate::SERVICE, "lrswa")
        .await?;
    let now = std::time::SystemTime::now();
    dovecot.seed_maildir("support", "Live", LIVE_MESSAGES, |i| {
        (live_message(i), now, String::new())
    })?;
    let db = TestDatabase::create().await?;
    let log = std::env::temp_dir().join(format!(
        "flagpost-bench-webhooks-{}.log",
        std::process::id()
    ));
    let server = Server::start(
        &dovecot,
        &db,
        log.clone(),
        &[
            ("FLAGPOST_ADMINS", ADMIN),
            ("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await?;
    let result = run_with(args, &db, &server).await;
    if result.is_err() {
        eprintln!("flagpost serve log:\n{}", server.log_text());
    }
    server.stop().await?;
    let _ = std::fs::remove_file(log);
    result
}

async fn run_with(args: &WebhookArgs, db: &TestDatabase, server: &Server) -> Result<()> {
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(10)).await?;
    let base = server.base.as_str();
    wait_live(&pool, LIVE_MESSAGES).await?;
    let folder = *seed(&pool, 1, 2 * args.events)
        .await?
        .first()
        .context("no folder")?;
    let (uidvalidity, modseq): (i64, i64) =
        sqlx::query_as("SELECT uidvalidity, highest_modseq FROM folders WHERE id = $1")
            .bind(folder)
            .fetch_one(&pool)
            .await?;
    let targets: Vec<Target> = sqlx::query_as::<_, (i64, i64, Vec<String>)>(
        "SELECT id, uid, flags FROM messages WHERE folder_id = $1 ORDER BY uid",
    )
    .bind(folder)
    .fetch_all(&pool)
    .await?
    .into_iter()
    .map(|(id, uid, flags)| Target {
        id,
        uid: uid as u32,
        flags,
    })
    .collect();
    ensure!(targets.len() == 2 * args.events, "seeded {}", targets.len());
    let (burst_targets, paced_targets) = targets.split_at(args.events);

    let client = http_client()?;
    let admin = create_token(&pool, ADMIN, &["read", "write", "acl"]).await?;
    let agent = create_token(&pool, AGENT, &["read"]).await?;
    // Events of a folder the API does not know yet are not queued: wait until it does.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_json(&client, &format!("{base}/api/v1/folders/{folder}"), &agent)
        .await
        .is_err()
    {
        ensure!(
            Instant::now() < deadline,
            "the API does not show the seeded folder"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (receiver, receiver_base, receiver_task) = start_receiver().await?;
    let mut secrets = Vec::new();
    for hook in 0..args.hooks {
        let r = client
            .post(format!("{base}/api/v1/webhooks"))
            .bearer_auth(&admin)
            .json(&json!({
                "url": format!("{receiver_base}/hook/{hook}"),
                "identity": AGENT,
                "events": ["message.updated"],
                "folders": [folder.to_string()],
            }))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        ensure!(status.is_success(), "POST /webhooks: {status} {body}");
        secrets.push(body["secret"].as_str().context("no secret")?.to_owned());
    }
    receiver
        .secrets
        .set(secrets.clone())
        .map_err(|_| anyhow::anyhow!("secrets set twice"))?;

    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    let procs = Procs {
        flagpost: server.pid,
        postmaster: cpu_ticks(backend as u32).map_or(0, |t| t.1),
    };
    let deliveries = args.events * args.hooks;
    let stall = Duration::from_secs(30);

    // 1. Burst.
    let before = max_event(&pool).await?;
    let x0 = xacts(&pool).await?;
    let c0 = procs.sample();
    let start = Instant::now();
    let mut modseq = modseq as u64;
    let committed = produce(
        &pool,
        folder,
        uidvalidity as u32,
        burst_targets,
        args.batch,
        None,
        &mut modseq,
    )
    .await?;
    let written = start.elapsed();
    receiver.wait_for(deliveries, stall).await?;
    let c1 = procs.sample();
    let cpu_secs = start.elapsed().as_secs_f64();
    let got = receiver.take();
    let burst = outcome(
        &got,
        args.hooks,
        &events_after(&pool, folder, before).await?,
        &committed,
    )?;
    let burst_secs = burst.last.duration_since(start).as_secs_f64();
    let burst_rate = deliveries as f64 / burst_secs;
    // Backends report their counters at most once a second, and an idle one only after 10 s.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let x1 = xacts(&pool).await?;
    let [fp, pg, lg, busy, steal] = c0.cores(&c1, cpu_secs);
    let per_delivery = |cores: f64| cores * cpu_secs * 1e6 / deliveries as f64;

    // 2. Baseline.
    let sample = receiver
        .sample
        .lock()
        .expect("receiver lock")
        .clone()
        .context("no body received")?;
    let body = String::from_utf8(sample.to_vec())?;
    let (raw_elapsed, raw) = baseline(&receiver_base, &secrets, &body, args.events).await?;
    receiver.take();
    let raw_rate = deliveries as f64 / raw_elapsed.as_secs_f64();
    let (r50, _, r99, _, _) = summary(raw);

    // 3. Paced.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = max_event(&pool).await?;
    let per_sec = (args.rate as f64 / args.hooks as f64).max(0.001);
    let interval = Duration::from_secs_f64(1.0 / per_sec);
    let c0 = procs.sample();
    let start = Instant::now();
    let committed = produce(
        &pool,
        folder,
        uidvalidity as u32,
        paced_targets,
        1,
        Some(interval),
        &mut modseq,
    )
    .await?;
    let written_paced = start.elapsed();
    receiver.wait_for(deliveries, stall).await?;
    let c1 = procs.sample();
    let [pfp, ppg, plg, pbusy, psteal] = c0.cores(&c1, start.elapsed().as_secs_f64());
    let got = receiver.take();
    let paced = outcome(
        &got,
        args.hooks,
        &events_after(&pool, folder, before).await?,
        &committed,
    )?;
    let paced_rate = deliveries as f64 / paced.last.duration_since(start).as_secs_f64();
    eprintln!(
        "paced, the slowest delivery per second of commits (ms): {:?}",
        slowest_per_second(
            &got,
            &events_after(&pool, folder, before).await?,
            &committed,
            start
        )
    );
    let offered = deliveries as f64 / written_paced.as_secs_f64();

    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered' OR attempt <> 1",
    )
    .fetch_one(&pool)
    .await?;
    receiver_task.abort();

    let (b50, b90, b99, bmax, _) = summary(burst.latencies);
    let (p50, p90, p99, pmax, _) = summary(paced.latencies);
    println!(
        "| burst: {} events ({} per transaction, written in {:.1} s) to {} webhooks, each receiving every event: first commit → last of {deliveries} deliveries received | {burst_secs:.1} s; commit → received p50 {} / p90 {} / p99 {} / max {} (queueing: the writer is faster than the lanes) | {burst_rate:.0} deliveries/s; baseline {raw_rate:.0}/s → {:.2}× the baseline | ≥ 1,000 deliveries/s | {} |",
        args.events,
        args.batch,
        written.as_secs_f64(),
        args.hooks,
        ms(b50),
        ms(b90),
        ms(b99),
        ms(bmax),
        burst_rate / raw_rate,
        if burst_rate >= 1000.0 { "yes" } else { "no" }
    );
    println!(
        "|   ↳ CPU per delivery | flagpost {:.0} µs, PostgreSQL {:.0} µs, bench (writer + receiver) {:.0} µs (cores: {fp:.2} + {pg:.2} + {lg:.2}; whole machine {busy:.2} of 2 busy, of which {:.2} other processes, {steal:.2} stolen) | {:.1} PostgreSQL transactions per delivery | | |",
        per_delivery(fp),
        per_delivery(pg),
        per_delivery(lg),
        (busy - fp - pg - lg).max(0.0),
        (x1 - x0 - 1) as f64 / deliveries as f64,
    );
    println!(
        "| baseline: raw reqwest client, same signed bodies ({} bytes) and headers, {} lanes × {} POSTs, one in flight per lane, same receiver | request p50 {} / p99 {} | {raw_rate:.0} requests/s | — | — |",
        body.len(),
        args.hooks,
        args.events,
        ms(r50),
        ms(r99),
    );
    println!(
        "| paced: {} events, one per transaction, at {per_sec:.0} events/s ({offered:.0} deliveries/s offered) to {} webhooks: event committed → delivery received | p50 {} / p90 {} / p99 {} / max {} | {paced_rate:.0} deliveries/s delivered | p99 ≤ 100 ms at ≥ 1,000 deliveries/s | {} |",
        args.events,
        args.hooks,
        ms(p50),
        ms(p90),
        ms(p99),
        ms(pmax),
        // The writer's pacing and the last delivery's latency leave the delivered rate a
        // fraction under the offered one.
        if p99 <= Duration::from_millis(100) && paced_rate >= 1000.0 * 0.98 {
            "yes"
        } else {
            "no"
        }
    );
    println!(
        "|   ↳ CPU during the paced phase | cores: flagpost {pfp:.2}, PostgreSQL {ppg:.2}, bench {plg:.2}; whole machine {pbusy:.2} of 2 busy, of which {:.2} other processes, {psteal:.2} stolen | | | |",
        (pbusy - pfp - ppg - plg).max(0.0),
    );
    println!(
        "|   ↳ checks | every webhook got every event; out of order: {} + {}, repeated: {} + {}, refused by the receiver: {}, deliveries not `delivered` on the first attempt: {failed} | | | |",
        burst.out_of_order,
        paced.out_of_order,
        burst.duplicates,
        paced.duplicates,
        receiver.refused.load(Ordering::Relaxed),
    );
    pool.close().await;
    Ok(())
}
