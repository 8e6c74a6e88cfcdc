//! Bringing the mirror of the selected folder up to date with the server.
//!
//! Two ways, chosen by what the server and the stored checkpoint allow (RFC 7162 §3.1, §6):
//! - **incremental**: with a stored HIGHESTMODSEQ, `UID FETCH 1:* (UID FLAGS MODSEQ)
//!   (CHANGEDSINCE m [VANISHED])` returns only what changed, and with QRESYNC the expunged UIDs;
//!   without QRESYNC expunges are found by comparing UID sets when the message count disagrees.
//!   Cost grows with the number of changes, not with the folder's size.
//! - **full scan**: first sync, no CONDSTORE, or a new UIDVALIDITY: `UID FETCH 1:* (UID FLAGS)`
//!   compared with the mirror.
//!
//! - **first sync**: an empty mirror skips the flag scan and fetches the folder in full by
//!   sequence ranges.
//!
//! Either way messages the mirror does not have are fetched in full in chunks, and the new
//! checkpoint is written in the same transaction as the last changes, so a crash repeats work
//! but never skips a change. Chunks are fetched, prepared and written as a pipeline: the
//! connection reads the next chunk while PostgreSQL writes the previous two (a bounded channel
//! between them keeps memory flat).

use std::collections::{HashMap, HashSet};

use flagpost_domain::Flags;
use flagpost_domain::sync::{Checkpoint, FetchedMessage, FlagUpdate};
use flagpost_store::PgPool;
use flagpost_store::messages::{Applied, Changes, Prepared};
use tokio::sync::OwnedSemaphorePermit;

use crate::conn::Conn;
use crate::connect::ConnectError;
use crate::fetch::{FULL_ITEMS, FetchData, uid_set};

/// How many messages are fetched in full per command (and written per transaction). The first
/// chunks are smaller so that PostgreSQL starts writing early.
const CHUNK: usize = 2000;
const FIRST_CHUNKS: [usize; 2] = [500, 1000];

/// How many chunks are written at once: PostgreSQL inserts the rows of each on its own core
/// (see [`pipeline`]).
const WRITERS: usize = 2;

/// After adding this many rows in one step, refresh the planner's statistics.
const ANALYZE_AFTER: usize = 5000;

/// A failure of a sync step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The IMAP side failed; the connection must be dropped.
    #[error(transparent)]
    Imap(#[from] ConnectError),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// How a sync step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Only changes since the stored HIGHESTMODSEQ were fetched.
    Incremental,
    /// Every UID's flags were compared.
    FullScan,
}

/// What a sync step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The way it ran.
    pub kind: SyncKind,
    /// Whether UIDVALIDITY had changed (the old generation was dropped).
    pub reset: bool,
    /// Messages fetched in full.
    pub fetched_full: usize,
    /// Flag/UID records read from the server (the cost of the step).
    pub flag_records: usize,
    /// Rows written.
    pub applied: Applied,
}

/// `EXAMINE`s the folder for a sync, handing the server the stored checkpoint so that with
/// QRESYNC the changes since then arrive in the same round trip.
pub async fn examine_folder(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    imap_name: &str,
) -> Result<crate::conn::Selected, SyncError> {
    let t = std::time::Instant::now();
    let row = flagpost_store::folders::folder(pool, folder_id).await?;
    let read = t.elapsed();
    let stored = row.as_ref().and_then(|row| row.checkpoint());
    let known = stored.and_then(|cp| Some((cp.uidvalidity, cp.highest_modseq?)));
    let sel = conn.examine(imap_name, known).await?;
    tracing::debug!(
        folder.id = folder_id,
        read_us = read.as_micros() as u64,
        examine_us = (t.elapsed() - read).as_micros() as u64,
        qresync = sel.qresync_since.is_some(),
        "examined"
    );
    if row.is_some() {
        // The sync step that follows uses the same checkpoint (only this folder's watcher
        // writes it) instead of reading it again.
        conn.examined_with = Some((folder_id, stored));
    }
    Ok(sel)
}

/// How many full scans (first syncs, mostly) may run at once across all watchers: each holds a
/// folder's UID map in memory and long write transactions, so letting every watcher scan at
/// start-up would multiply memory and make small changes elsewhere wait.
static FULL_SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Syncs the mirror of `folder_id` with the mailbox selected on `conn`.
pub async fn sync_selected(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
) -> Result<SyncReport, SyncError> {
    let sel = conn
        .selected
        .ok_or_else(|| ConnectError::Protocol("no mailbox selected".to_owned()))?;
    let mut stored = match conn.examined_with.take() {
        Some((id, cp)) if id == folder_id => cp,
        _ => flagpost_store::folders::folder(pool, folder_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?
            .checkpoint(),
    };
    let mut reset = false;
    // A checkpoint is written only with rows of its own generation, and a reset drops every
    // row with it; rows of another generation can only be left by a first sync that never
    // finished (no checkpoint yet).
    let other_generation = match stored {
        Some(cp) => cp.uidvalidity != sel.uidvalidity,
        None => {
            flagpost_store::messages::has_other_generation(pool, folder_id, sel.uidvalidity).await?
        }
    };
    if other_generation {
        flagpost_store::messages::reset_folder(
            pool,
            folder_id,
            stored.map(|cp| cp.uidvalidity),
            sel.uidvalidity,
        )
        .await?;
        stored = None;
        reset = true;
    }
    let report = match stored {
        Some(cp) if cp.highest_modseq.is_some() && sel.highest_modseq.is_some() => {
            incremental(conn, pool, folder_id, cp).await?
        }
        _ => {
            let _permit = FULL_SCANS.acquire().await.expect("never closed");
            full_scan(conn, pool, folder_id).await?
        }
    };
    if report.applied.added >= ANALYZE_AFTER {
        flagpost_store::messages::analyze(pool).await?;
    }
    Ok(SyncReport { reset, ..report })
}

async fn incremental(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    cp: Checkpoint,
) -> Result<SyncReport, SyncError> {
    let sel = conn.selected.expect("checked by caller");
    let uv = sel.uidvalidity;
    let since = cp.highest_modseq.expect("checked by caller");
    let qresync = conn.caps.qresync;
    let before = conn.take_noticed();
    let mut changed: Vec<FetchData> = before.fetches;
    let mut vanished: Vec<u32> = before.vanished;
    let mut vanished_ranges = before.vanished_ranges;
    let exists = before.exists.unwrap_or(sel.exists);
    let mut raced = false;
    // After a QRESYNC EXAMINE from this checkpoint, the changes came with it.
    let already = sel.qresync_since == Some(since);
    conn.selected = Some(crate::conn::Selected {
        qresync_since: None,
        ..sel
    });
    if exists == 0 {
        // Empty now: whatever the mirror still has was expunged.
        vanished.extend(
            flagpost_store::messages::uid_flags(pool, folder_id, uv)
                .await?
                .into_iter()
                .map(|(uid, _, _)| uid),
        );
    } else if !already {
        let cmd = if qresync {
            format!("UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE {since} VANISHED)")
        } else {
            format!("UID FETCH 1:* (UID FLAGS MODSEQ) (CHANGEDSINCE {since})")
        };
        conn.run(&cmd, |d| changed.push(d)).await?;
        let after = conn.take_noticed();
        changed.extend(after.fetches);
        vanished.extend(after.vanished);
        vanished_ranges.extend(after.vanished_ranges);
        raced = after.changed;
    }
    let flag_records = changed.len();
    let max_modseq = changed
        .iter()
        .filter_map(|d| d.modseq)
        .chain([since, sel.highest_modseq.unwrap_or(0)])
        .max();

    // Everything said per UID, later responses over earlier ones.
    let mut latest: HashMap<u32, FetchData> = HashMap::new();
    for d in changed {
        if let Some(uid) = d.uid {
            match latest.entry(uid) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(d),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(d);
                }
            }
        }
    }
    // UIDs from UIDNEXT on are new to the mirror: a few are fetched in full now, so that they,
    // the flag changes, the expunges and the checkpoint go in one transaction. (Should one be
    // mirrored already, the write takes it as a flag update.) Many new messages (a mass
    // append while Flagpost was away) go through the chunked pipeline below instead, so that
    // memory and transactions stay bounded.
    let mut fresh: Vec<u32> = match cp.uidnext {
        Some(next) => latest.keys().copied().filter(|u| *u >= next).collect(),
        None => Vec::new(),
    };
    if fresh.len() > FIRST_CHUNKS[0] {
        fresh.clear();
    }
    fresh.sort_unstable();
    let fetched = if fresh.is_empty() {
        Vec::new()
    } else {
        fetch_full(conn, &uid_set(&fresh), true).await?
    };
    let mut fetched_full = fetched.len();
    let flag_updates: Vec<FlagUpdate> = latest
        .values()
        .filter(|d| d.uid.is_some_and(|u| fresh.binary_search(&u).is_err()))
        .filter_map(FetchData::as_flag_update)
        .collect();
    if !vanished_ranges.is_empty() {
        // Wide ranges: only the UIDs the mirror has in them are expunges to apply.
        vanished.extend(
            flagpost_store::messages::uids_in_ranges(pool, folder_id, uv, &vanished_ranges).await?,
        );
    }
    let removed = vanished;

    // UIDNEXT moves past every UID seen since: the EXAMINE's value is stale once IDLE reported
    // new messages (with CONDSTORE each new message has a MODSEQ above `since`, so every one
    // still on the server was in `changed`). The checkpoint commits only once all of them are
    // in, and the mirror's STATUS cross-check compares it with the server's UIDNEXT.
    let uidnext = [
        sel.uidnext,
        cp.uidnext,
        latest.keys().max().map(|u| u.saturating_add(1)),
    ]
    .into_iter()
    .flatten()
    .max()
    .filter(|_| sel.uidnext.is_some());
    let checkpoint = Checkpoint {
        uidvalidity: uv,
        highest_modseq: max_modseq,
        uidnext,
    };
    // One transaction (one round trip) in the common case; flag changes of messages the
    // mirror lacks make those be fetched in full afterwards, and the checkpoint is written only
    // once they are in.
    let first = Changes {
        fetched,
        flag_updates,
        removed,
        checkpoint: Some(checkpoint),
    };
    let t = std::time::Instant::now();
    let mut applied = apply(pool, folder_id, uv, first).await?;
    tracing::debug!(
        folder.id = folder_id,
        apply_us = t.elapsed().as_micros() as u64,
        "incremental changes applied"
    );
    if !applied.unknown.is_empty() {
        let unknown = std::mem::take(&mut applied.unknown);
        let (n, added) = fetch_new(conn, pool, folder_id, uv, unknown, Some(checkpoint)).await?;
        fetched_full += n;
        add(&mut applied, added);
    }
    if !qresync && exists > 0 {
        // Without VANISHED an expunge shows only as a message count that disagrees, once the
        // new messages are in. (The checkpoint may already be written: expunges do not move
        // it, so a crash here is caught by the same comparison next time.)
        let exists = conn.noticed.exists.unwrap_or(exists);
        let mirrored = flagpost_store::messages::count(pool, folder_id, uv).await?;
        if mirrored != i64::from(exists) {
            let missing = missing_on_server(conn, pool, folder_id, uv).await?;
            let gone = Changes {
                removed: missing,
                ..Changes::default()
            };
            add(&mut applied, apply(pool, folder_id, uv, gone).await?);
        }
    }
    if raced {
        // Something changed while this step ran: make the watcher run another one.
        conn.noticed.changed = true;
    }
    Ok(SyncReport {
        kind: SyncKind::Incremental,
        reset: false,
        fetched_full,
        flag_records,
        applied,
    })
}

async fn full_scan(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
) -> Result<SyncReport, SyncError> {
    let sel = conn.selected.expect("checked by caller");
    let uv = sel.uidvalidity;
    let condstore = sel.highest_modseq.is_some();
    let noticed = conn.take_noticed();
    let exists = noticed.exists.unwrap_or(sel.exists);
    let mirror: HashMap<u32, (Flags, Option<u64>)> =
        flagpost_store::messages::uid_flags(pool, folder_id, uv)
            .await?
            .into_iter()
            .map(|(uid, flags, modseq)| (uid, (flags, modseq)))
            .collect();
    if mirror.is_empty() && exists > 0 {
        return first_sync(conn, pool, folder_id, exists).await;
    }
    // Only what the comparison needs is kept per message: big folders scan in little memory.
    let mut server: HashMap<u32, (Flags, Option<u64>)> = HashMap::new();
    if exists > 0 {
        let items = if condstore {
            "(UID FLAGS MODSEQ)"
        } else {
            "(UID FLAGS)"
        };
        conn.run(&format!("UID FETCH 1:* {items}"), |d| {
            if let (Some(uid), Some(flags)) = (d.uid, d.flags) {
                server.insert(uid, (flags, d.modseq));
            }
        })
        .await?;
    }
    // News that raced with the scan stays noticed, so the watcher runs another step.
    let flag_records = server.len();

    let unknown: Vec<u32> = server
        .keys()
        .copied()
        .filter(|u| !mirror.contains_key(u))
        .collect();
    let (fetched_full, mut applied) = fetch_new(conn, pool, folder_id, uv, unknown, None).await?;
    let flag_updates: Vec<FlagUpdate> = server
        .iter()
        .filter_map(|(uid, (flags, modseq))| {
            let (had, had_modseq) = mirror.get(uid)?;
            (flags != had || (modseq.is_some() && modseq != had_modseq)).then(|| FlagUpdate {
                uid: *uid,
                flags: flags.clone(),
                modseq: *modseq,
            })
        })
        .collect();
    let removed: Vec<u32> = mirror
        .keys()
        .copied()
        .filter(|u| !server.contains_key(u))
        .collect();
    let max_modseq = server
        .values()
        .filter_map(|(_, m)| *m)
        .chain(sel.highest_modseq)
        .max();
    let final_changes = Changes {
        fetched: Vec::new(),
        flag_updates,
        removed,
        checkpoint: Some(Checkpoint {
            uidvalidity: uv,
            highest_modseq: if condstore { max_modseq } else { None },
            uidnext: sel.uidnext,
        }),
    };
    add(
        &mut applied,
        apply(pool, folder_id, uv, final_changes).await?,
    );
    Ok(SyncReport {
        kind: SyncKind::FullScan,
        reset: false,
        fetched_full,
        flag_records,
        applied,
    })
}

/// UIDs the mirror has but the server no longer does (`UID SEARCH ALL`; used without QRESYNC).
async fn missing_on_server(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    uv: u32,
) -> Result<Vec<u32>, SyncError> {
    let server: HashSet<u32> = conn.uid_search_all().await?.into_iter().collect();
    Ok(flagpost_store::messages::uid_flags(pool, folder_id, uv)
        .await?
        .into_iter()
        .map(|(uid, _, _)| uid)
        .filter(|u| !server.contains(u))
        .collect())
}

/// A first sync (the mirror has nothing of this generation): no flag scan to compare with,
/// the folder is fetched in full by message sequence ranges. Without a UID command in
/// between, the server sends no EXPUNGE (RFC 3501 §7.4.1), so the numbers hold throughout.
/// The checkpoint is the one of the EXAMINE: whatever changes meanwhile has a higher MODSEQ
/// and a UID from UIDNEXT on, and is fetched again by the next step.
async fn first_sync(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    exists: u32,
) -> Result<SyncReport, SyncError> {
    let sel = conn.selected.expect("checked by caller");
    let checkpoint = Checkpoint {
        uidvalidity: sel.uidvalidity,
        highest_modseq: sel.highest_modseq,
        uidnext: sel.uidnext,
    };
    let sets: Vec<String> = chunks(exists as usize)
        .map(|(from, to)| format!("{}:{}", from + 1, to))
        .collect();
    let (fetched_full, applied) = pipeline(
        conn,
        pool,
        folder_id,
        sel.uidvalidity,
        Source::Sequence(sets),
        Some(checkpoint),
    )
    .await?;
    Ok(SyncReport {
        kind: SyncKind::FullScan,
        reset: false,
        fetched_full,
        flag_records: fetched_full,
        applied,
    })
}

/// Chunk boundaries `[from, to)` over `0..n`: a few small chunks first, then [`CHUNK`].
fn chunks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut from = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if from >= n {
            return None;
        }
        let size = FIRST_CHUNKS.get(i).copied().unwrap_or(CHUNK);
        i += 1;
        let to = (from + size).min(n);
        let chunk = (from, to);
        from = to;
        Some(chunk)
    })
}

/// Fetches the messages `unknown` in full, in chunks, writing them as they come (see
/// [`pipeline`]); `last` is written with the last chunk.
async fn fetch_new(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    uv: u32,
    unknown: Vec<u32>,
    last: Option<Checkpoint>,
) -> Result<(usize, Applied), SyncError> {
    let uids = sorted(unknown);
    let sets: Vec<String> = chunks(uids.len())
        .map(|(from, to)| uid_set(&uids[from..to]))
        .collect();
    pipeline(conn, pool, folder_id, uv, Source::Uids(sets), last).await
}

/// What a [`pipeline`] fetches: `UID FETCH` of UID sets, or `FETCH` of sequence sets.
enum Source {
    Uids(Vec<String>),
    Sequence(Vec<String>),
}

/// Fetches chunks in full and writes each one in its own transaction: the IMAP reading and
/// the preparing of the rows (here) overlap the writing, done by [`WRITERS`] tasks behind a
/// channel, so PostgreSQL inserts two chunks side by side (`flagpost_apply_changes()` takes the
/// event writers' lock only for a chunk's events). Chunks may commit in any order, but `last`,
/// the checkpoint, goes with the last chunk, written only once every other chunk has
/// committed. An IMAP failure stops the fetching but lets the chunks already read be written:
/// a crash or error only repeats work, and never moves the checkpoint past a missing chunk.
async fn pipeline(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    uv: u32,
    source: Source,
    last: Option<Checkpoint>,
) -> Result<(usize, Applied), SyncError> {
    let (by_uid, sets) = match source {
        Source::Uids(sets) => (true, sets),
        Source::Sequence(sets) => (false, sets),
    };
    if sets.is_empty() {
        let applied = match last {
            Some(cp) => {
                let changes = Changes {
                    checkpoint: Some(cp),
                    ..Changes::default()
                };
                apply(pool, folder_id, uv, changes).await?
            }
            None => Applied::default(),
        };
        return Ok((0, applied));
    }
    // At most WRITERS + 1 chunks in memory: those being written and the next being fetched.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(WRITERS + 1));
    let (tx, rx) = tokio::sync::mpsc::channel::<(Prepared, OwnedSemaphorePermit)>(1);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    // Set by a writer that failed: fetching stops, the error is reported below.
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (pool, rx, broken) = (pool.clone(), rx.clone(), broken.clone());
            tokio::spawn(async move {
                let mut applied = Applied::default();
                let mut busy = std::time::Duration::ZERO;
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((p, slot)) = next else { break };
                    let t = std::time::Instant::now();
                    let written =
                        flagpost_store::messages::apply_prepared(&pool, folder_id, uv, &p).await;
                    busy += t.elapsed();
                    drop((p, slot));
                    match written {
                        Ok(a) => add(&mut applied, a),
                        Err(e) => {
                            broken.store(true, std::sync::atomic::Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Ok::<_, sqlx::Error>((applied, busy))
            })
        })
        .collect();
    let mut fetched = 0;
    let mut failed = None;
    let mut held_back = None;
    let (mut t_fetch, mut t_send) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let n = sets.len();
    for (i, set) in sets.iter().enumerate() {
        let t = std::time::Instant::now();
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        t_send += t.elapsed();
        if broken.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let t = std::time::Instant::now();
        let msgs = match fetch_full(conn, set, by_uid).await {
            Ok(msgs) => msgs,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        fetched += msgs.len();
        let mut p = Prepared::new(
            folder_id,
            &Changes {
                fetched: msgs,
                ..Changes::default()
            },
        );
        t_fetch += t.elapsed();
        if i + 1 == n && last.is_some() {
            // The checkpoint's chunk waits until every other chunk is in.
            p.set_checkpoint(last);
            held_back = Some(p);
            break;
        }
        if tx.send((p, slot)).await.is_err() {
            // The writers failed: their error is reported below.
            break;
        }
    }
    drop(tx);
    let mut written: Result<(Applied, std::time::Duration), SyncError> =
        Ok((Applied::default(), std::time::Duration::ZERO));
    for w in writers {
        let r = match w.await {
            Ok(r) => r.map_err(SyncError::Db),
            Err(e) => Err(SyncError::Db(sqlx::Error::Protocol(format!(
                "writer task failed: {e}"
            )))),
        };
        written = match (written, r) {
            (Ok((mut applied, busy)), Ok((a, b))) => {
                add(&mut applied, a);
                Ok((applied, busy + b))
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let (mut applied, mut busy) = written?;
    if let Some(p) = held_back {
        let t = std::time::Instant::now();
        add(
            &mut applied,
            flagpost_store::messages::apply_prepared(pool, folder_id, uv, &p).await?,
        );
        busy += t.elapsed();
    }
    tracing::debug!(
        folder.id = folder_id,
        fetched,
        fetch_ms = t_fetch.as_millis() as u64,
        wait_for_db_ms = t_send.as_millis() as u64,
        db_ms = busy.as_millis() as u64,
        "fetched new messages"
    );
    Ok((fetched, applied))
}

/// `UID FETCH` (or `FETCH`) of `set` with every item of a new message. FETCH responses without
/// an ENVELOPE are other sessions' flag changes, not answers: they are noted as news for the
/// next step.
async fn fetch_full(
    conn: &mut Conn,
    set: &str,
    by_uid: bool,
) -> Result<Vec<FetchedMessage>, SyncError> {
    let modseq = if conn.selected.is_some_and(|s| s.highest_modseq.is_some()) {
        " MODSEQ"
    } else {
        ""
    };
    let uid = if by_uid { "UID " } else { "" };
    // The responses per UID, in the order they came: a server may split one message's items
    // over several responses, and another session's flag change may arrive in between.
    let mut order: Vec<u32> = Vec::new();
    let mut by_uid: HashMap<u32, FetchData> = HashMap::new();
    let mut news = Vec::new();
    conn.run(&format!("{uid}FETCH {set} ({FULL_ITEMS}{modseq})"), |d| {
        let Some(u) = d.uid else {
            news.push(d);
            return;
        };
        match by_uid.entry(u) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(d),
            std::collections::hash_map::Entry::Vacant(e) => {
                order.push(u);
                e.insert(d);
            }
        }
    })
    .await?;
    let mut out = Vec::with_capacity(order.len());
    let mut skipped = 0usize;
    for u in order {
        let d = by_uid.remove(&u).expect("each UID once");
        if d.envelope.is_none() {
            // Not an answer: another session's flag change of a message outside this set.
            news.push(d);
            continue;
        }
        match d.into_message() {
            Some(m) => out.push(m),
            None => skipped += 1,
        }
    }
    if !news.is_empty() {
        conn.noticed.changed = true;
        conn.noticed.fetches.extend(news);
    }
    if skipped > 0 {
        tracing::warn!(skipped, "FETCH responses without UID or FLAGS were skipped");
    }
    Ok(out)
}

async fn apply(
    pool: &PgPool,
    folder_id: i64,
    uv: u32,
    changes: Changes,
) -> Result<Applied, SyncError> {
    if changes.is_empty() {
        return Ok(Applied::default());
    }
    Ok(flagpost_store::messages::apply_changes(pool, folder_id, uv, &changes).await?)
}

fn add(total: &mut Applied, a: Applied) {
    total.added += a.added;
    total.updated += a.updated;
    total.removed += a.removed;
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}
