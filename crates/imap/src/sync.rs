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
//! Either way messages the mirror does not have are fetched in full in chunks, and the new
//! checkpoint is written in the same transaction as the last changes, so a crash repeats work
//! but never skips a change.

use std::collections::{HashMap, HashSet};

use flagpost_domain::Flags;
use flagpost_domain::sync::{Checkpoint, FetchedMessage, FlagUpdate};
use flagpost_store::PgPool;
use flagpost_store::messages::{Applied, Changes};

use crate::conn::Conn;
use crate::connect::ConnectError;
use crate::fetch::{FULL_ITEMS, FetchData, uid_set};

/// How many messages are fetched in full per command (and written per transaction).
const CHUNK: usize = 2500;

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
    let known = flagpost_store::folders::folder(pool, folder_id)
        .await?
        .and_then(|row| row.checkpoint())
        .and_then(|cp| Some((cp.uidvalidity, cp.highest_modseq?)));
    Ok(conn.examine(imap_name, known).await?)
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
    let row = flagpost_store::folders::folder(pool, folder_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let mut stored = row.checkpoint();
    let mut reset = false;
    let other_generation =
        flagpost_store::messages::has_other_generation(pool, folder_id, sel.uidvalidity).await?;
    if stored.is_some_and(|cp| cp.uidvalidity != sel.uidvalidity) || other_generation {
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
        raced = after.changed;
    }
    let flag_records = changed.len();
    let max_modseq = changed
        .iter()
        .filter_map(|d| d.modseq)
        .chain([since, sel.highest_modseq.unwrap_or(0)])
        .max();

    // Latest word per UID.
    let mut latest: HashMap<u32, FetchData> = HashMap::new();
    for d in changed {
        if let Some(uid) = d.uid {
            latest.insert(uid, d);
        }
    }
    let flag_updates: Vec<FlagUpdate> = latest
        .values()
        .filter_map(FetchData::as_flag_update)
        .collect();
    let removed = vanished;

    let checkpoint = Checkpoint {
        uidvalidity: uv,
        highest_modseq: max_modseq,
        uidnext: sel.uidnext,
    };
    // One transaction in the common case; messages the mirror lacks (new ones) are fetched in
    // full afterwards, and the checkpoint is written only once they are in.
    let first = Changes {
        fetched: Vec::new(),
        flag_updates,
        removed,
        checkpoint: Some(checkpoint),
    };
    let mut applied = apply(pool, folder_id, uv, first).await?;
    let mut fetched_full = 0;
    if !applied.unknown.is_empty() {
        let unknown = std::mem::take(&mut applied.unknown);
        let (n, added) = fetch_new(conn, pool, folder_id, uv, unknown).await?;
        fetched_full = n;
        add(&mut applied, added);
        let last = Changes {
            checkpoint: Some(checkpoint),
            ..Changes::default()
        };
        add(&mut applied, apply(pool, folder_id, uv, last).await?);
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
    let mirror: HashMap<u32, (Flags, Option<u64>)> =
        flagpost_store::messages::uid_flags(pool, folder_id, uv)
            .await?
            .into_iter()
            .map(|(uid, flags, modseq)| (uid, (flags, modseq)))
            .collect();

    let unknown: Vec<u32> = server
        .keys()
        .copied()
        .filter(|u| !mirror.contains_key(u))
        .collect();
    let (fetched_full, mut applied) = fetch_new(conn, pool, folder_id, uv, unknown).await?;
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

/// Fetches the messages `unknown` in full, in chunks, and writes each chunk while the next one
/// is being fetched, so the IMAP server, the parsing and PostgreSQL work at the same time.
/// No checkpoint is written here: a crash in between only repeats work.
async fn fetch_new(
    conn: &mut Conn,
    pool: &PgPool,
    folder_id: i64,
    uv: u32,
    unknown: Vec<u32>,
) -> Result<(usize, Applied), SyncError> {
    let mut applied = Applied::default();
    let mut fetched = 0;
    let mut writing: Option<tokio::task::JoinHandle<sqlx::Result<Applied>>> = None;
    let (mut t_fetch, mut t_wait) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for chunk in sorted(unknown).chunks(CHUNK) {
        let t = std::time::Instant::now();
        let msgs = fetch_full(conn, chunk).await?;
        t_fetch += t.elapsed();
        fetched += msgs.len();
        let t = std::time::Instant::now();
        if let Some(w) = writing.take() {
            add(&mut applied, join(w).await?);
        }
        t_wait += t.elapsed();
        let pool = pool.clone();
        writing = Some(tokio::spawn(async move {
            let changes = Changes {
                fetched: msgs,
                ..Changes::default()
            };
            flagpost_store::messages::apply_changes(&pool, folder_id, uv, &changes).await
        }));
    }
    if let Some(w) = writing {
        add(&mut applied, join(w).await?);
    }
    tracing::debug!(
        folder.id = folder_id,
        fetched,
        fetch_ms = t_fetch.as_millis() as u64,
        wait_for_db_ms = t_wait.as_millis() as u64,
        "fetched new messages"
    );
    Ok((fetched, applied))
}

async fn join(w: tokio::task::JoinHandle<sqlx::Result<Applied>>) -> Result<Applied, SyncError> {
    match w.await {
        Ok(r) => Ok(r?),
        Err(e) => Err(SyncError::Db(sqlx::Error::Protocol(format!(
            "writer task failed: {e}"
        )))),
    }
}

async fn fetch_full(conn: &mut Conn, uids: &[u32]) -> Result<Vec<FetchedMessage>, SyncError> {
    let modseq = if conn.selected.is_some_and(|s| s.highest_modseq.is_some()) {
        " MODSEQ"
    } else {
        ""
    };
    let mut out = Vec::with_capacity(uids.len());
    let mut skipped = 0usize;
    conn.run(
        &format!("UID FETCH {} ({FULL_ITEMS}{modseq})", uid_set(uids)),
        |d| match d.into_message() {
            Some(m) => out.push(m),
            None => skipped += 1,
        },
    )
    .await?;
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
