//! The mirror supervisor: finds the watched folders (LIST, again every folder-poll interval),
//! gives each an IDLE watcher within the connection budget and polls the rest on one shared
//! connection, re-reads ACLs every ACL-poll interval (IMAP pushes no ACL changes), and stops
//! everything cleanly on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flagpost_domain::Right;
use flagpost_domain::sync::{Checkpoint, SyncState};
use flagpost_store::folders::{AclEntry, FolderRow};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::{Conn, StatusInfo};
use crate::connect::ConnectError;
use crate::sync::{SyncError, sync_selected};
use crate::watch::{Backoff, MirrorContext, watch_folder};

/// Settings of the supervisor.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Connection, account, database, poll interval.
    pub ctx: MirrorContext,
    /// LIST patterns (UTF-8).
    pub patterns: Vec<String>,
    /// Folder discovery interval.
    pub folder_poll: Duration,
    /// ACL re-read interval.
    pub acl_poll: Duration,
    /// IDLE connections at most.
    pub max_idle: usize,
}

/// Handle to ask the running mirror for an immediate ACL re-read (e.g. after the API changed an
/// ACL).
#[derive(Debug, Clone, Default)]
pub struct MirrorHandle {
    acl_refresh: Arc<Notify>,
}

impl MirrorHandle {
    /// Requests an ACL re-read of every folder as soon as possible.
    pub fn refresh_acls(&self) {
        self.acl_refresh.notify_one();
    }
}

struct Watcher {
    cancel: CancellationToken,
    /// Makes the watcher select its mailbox again (see [`cross_check`]).
    wake: Arc<Notify>,
}

/// How long a watched folder's mirror may take to catch up with a `STATUS` that disagreed with
/// it before its watcher is made to select the mailbox again: well above an IDLE push's delay
/// (Dovecot's ≈ 0.5 s) plus a small sync.
const RECHECK_GRACE: Duration = Duration::from_secs(3);

/// A watched folder whose `STATUS` disagreed with its mirror at discovery.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    folder_id: i64,
    status: StatusInfo,
    /// Messages mirrored (of the checkpoint's generation) when the `STATUS` was read.
    mirrored: i64,
}

/// Whether the server's `STATUS` of a folder is ahead of its mirror: another UIDVALIDITY, a
/// UIDNEXT past the checkpoint's (messages the watcher never reported), or another message
/// count. ([`recheck`] drops the count when the mirror moved meanwhile: a count that differs
/// while changes are being applied is no sign of a missed one.)
fn is_behind(cp: Option<Checkpoint>, status: &StatusInfo, mirrored: i64) -> bool {
    let Some(cp) = cp else {
        // No sync finished yet: the watcher is still on its first one.
        return false;
    };
    status.uidvalidity.is_some_and(|v| v != cp.uidvalidity)
        || matches!((status.uidnext, cp.uidnext), (Some(s), Some(c)) if s > c)
        || status.messages.is_some_and(|m| i64::from(m) != mirrored)
}

/// Runs the mirror until `shutdown` fires; returns when every watcher has logged out.
pub async fn run_mirror(cfg: MirrorConfig, handle: MirrorHandle, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let mut watchers: HashMap<i64, Watcher> = HashMap::new();
    let polled: Arc<tokio::sync::Mutex<Vec<(i64, String)>>> = Arc::default();
    let poller_cancel = shutdown.child_token();
    let mut backoff = Backoff::new();
    let mut next_acl = tokio::time::Instant::now();
    let mut poller_started = false;
    let mut no_acl_noted = false;
    let woken: Arc<std::sync::Mutex<HashMap<i64, u32>>> = Arc::default();
    loop {
        let acl_due = tokio::time::Instant::now() >= next_acl;
        let watched: Vec<i64> = watchers.keys().copied().collect();
        match discover(&cfg, acl_due, &mut no_acl_noted, &watched).await {
            Ok((conn_caps_idle, folders, suspects)) => {
                backoff.reset();
                if acl_due {
                    next_acl = tokio::time::Instant::now() + cfg.acl_poll;
                }
                reconcile(
                    &cfg,
                    &tracker,
                    &shutdown,
                    &mut watchers,
                    &polled,
                    conn_caps_idle,
                    folders,
                )
                .await;
                if !suspects.is_empty() {
                    let wakes: Vec<(Suspect, Arc<Notify>)> = suspects
                        .into_iter()
                        .filter_map(|s| Some((s, watchers.get(&s.folder_id)?.wake.clone())))
                        .collect();
                    tracker.spawn(recheck(
                        cfg.ctx.pool.clone(),
                        wakes,
                        woken.clone(),
                        shutdown.child_token(),
                    ));
                }
                if !poller_started && !polled.lock().await.is_empty() {
                    poller_started = true;
                    tracker.spawn(poll_folders(
                        cfg.ctx.clone(),
                        polled.clone(),
                        poller_cancel.clone(),
                    ));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(error = %reason, "folder discovery failed");
                if let Ok(rows) = flagpost_store::folders::active_folders(&cfg.ctx.pool).await {
                    for row in rows.iter().filter(|r| !watchers.contains_key(&r.id)) {
                        let _ = flagpost_store::folders::set_sync_state(
                            &cfg.ctx.pool,
                            row.id,
                            SyncState::Error,
                            Some(&reason),
                        )
                        .await;
                    }
                }
                // A refused login will not fix itself quickly: try again at the discovery
                // interval, not in a backoff loop that could lock the account.
                let delay = if matches!(&e, SyncError::Imap(c) if c.is_auth()) {
                    cfg.folder_poll
                } else {
                    backoff.next_delay().min(cfg.folder_poll)
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        }
        let next_discovery = tokio::time::Instant::now() + cfg.folder_poll;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(next_discovery.min(next_acl)) => {}
            _ = handle.acl_refresh.notified() => { next_acl = tokio::time::Instant::now(); }
        }
    }
    for w in watchers.values() {
        w.cancel.cancel();
    }
    poller_cancel.cancel();
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some watchers did not stop within 10 s");
    }
}

/// One discovery pass on a fresh connection: LIST, record folders, and (when due) the ACLs.
/// `no_acl_noted`: whether the server's lack of the ACL extension was logged already.
async fn discover(
    cfg: &MirrorConfig,
    acl_due: bool,
    no_acl_noted: &mut bool,
    watched: &[i64],
) -> Result<(bool, Vec<FolderRow>, Vec<Suspect>), SyncError> {
    let pool = &cfg.ctx.pool;
    let mut conn = cfg.ctx.connect().await?;
    // Who the server is decides how its ACLs read (`authenticated` is every user on Dovecot
    // only): recorded before the ACLs, so the API's snapshot after them sees it.
    let server = conn.server_name().await?;
    flagpost_store::folders::record_server_name(pool, server.as_deref()).await?;
    let listed = crate::folders::list_folders(conn.session(), &cfg.patterns).await?;
    let mut rows = Vec::with_capacity(listed.len());
    for f in &listed {
        let (row, added) = flagpost_store::folders::upsert_listed_folder(
            pool,
            &f.imap_name,
            &f.name,
            f.delimiter.as_deref(),
        )
        .await?;
        if added {
            tracing::info!(folder.id = row.id, "folder added");
        }
        rows.push(row);
    }
    for gone in flagpost_store::folders::active_folders(pool).await? {
        if !listed.iter().any(|f| f.imap_name == gone.imap_name) {
            tracing::info!(folder.id = gone.id, "folder removed");
            flagpost_store::folders::mark_folder_removed(pool, gone.id).await?;
        }
    }
    if acl_due && !conn.caps.acl && !*no_acl_noted {
        *no_acl_noted = true;
        tracing::warn!(
            "the IMAP server does not offer the ACL extension (RFC 4314): no folder's rights \
             can be mirrored, so only service admins (FLAGPOST_ADMINS) see the folders"
        );
    }
    if acl_due {
        for row in &rows {
            if let Err(e) = refresh_acl(&mut conn, pool, row).await {
                match e {
                    SyncError::Imap(ConnectError::Command { .. }) => {
                        tracing::warn!(folder.id = row.id, error = %e, "ACL not readable");
                    }
                    other => return Err(other),
                }
            }
        }
    }
    let suspects = cross_check(&mut conn, pool, &rows, watched).await?;
    let idle = conn.caps.idle;
    conn.logout().await;
    Ok((idle, rows, suspects))
}

/// The safety net under IDLE: one `STATUS` per watched folder each discovery pass, compared
/// with its mirror. A watcher that should have heard of a change but did not (a server that
/// keeps the session on a mailbox deleted and created again, as Cyrus does, or one that
/// misses a notification) is found here; [`recheck`] wakes it if the mirror has not caught up
/// after a grace period.
async fn cross_check(
    conn: &mut Conn,
    pool: &flagpost_store::PgPool,
    rows: &[FolderRow],
    watched: &[i64],
) -> Result<Vec<Suspect>, SyncError> {
    let mut suspects = Vec::new();
    for row in rows.iter().filter(|r| watched.contains(&r.id)) {
        let Some(cp) = row.checkpoint() else { continue };
        let status = match conn.status(&row.imap_name).await {
            Ok(s) => s,
            Err(e @ ConnectError::Command { .. }) => {
                // Gone since the LIST, or not for this account: the watcher will tell.
                tracing::debug!(folder.id = row.id, error = %e, "STATUS refused");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mirrored = flagpost_store::messages::count(pool, row.id, cp.uidvalidity).await?;
        if is_behind(Some(cp), &status, mirrored) {
            suspects.push(Suspect {
                folder_id: row.id,
                status,
                mirrored,
            });
        }
    }
    Ok(suspects)
}

/// After [`RECHECK_GRACE`], wakes the watchers whose mirror is still behind the `STATUS` that
/// disagreed with it (a count only if the mirror has not moved since). `woken` counts the
/// passes in a row that found a folder behind: a disagreement that selecting again does not
/// cure (a server whose STATUS counts differently from what it shows) is reported once and
/// then retried only every [`PERSISTENT_RETRY`] passes.
async fn recheck(
    pool: flagpost_store::PgPool,
    suspects: Vec<(Suspect, Arc<Notify>)>,
    woken: Arc<std::sync::Mutex<HashMap<i64, u32>>>,
    cancel: CancellationToken,
) {
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(RECHECK_GRACE) => {}
    }
    for (s, wake) in suspects {
        let Ok(Some(row)) = flagpost_store::folders::folder(&pool, s.folder_id).await else {
            continue;
        };
        let cp = row.checkpoint();
        let mirrored = match cp {
            Some(cp) => flagpost_store::messages::count(&pool, s.folder_id, cp.uidvalidity)
                .await
                .unwrap_or(s.mirrored),
            None => continue,
        };
        let status = if mirrored == s.mirrored {
            s.status
        } else {
            StatusInfo {
                messages: None,
                ..s.status
            }
        };
        let behind = row.removed_at.is_none() && is_behind(cp, &status, mirrored);
        let passes = {
            let mut woken = woken.lock().expect("not poisoned");
            if !behind {
                woken.remove(&s.folder_id);
                continue;
            }
            let n = woken.entry(s.folder_id).or_default();
            *n += 1;
            *n
        };
        if passes <= PERSISTENT_AFTER {
            tracing::info!(
                folder.id = s.folder_id,
                server = ?s.status,
                mirrored,
                "the folder's mirror is behind the server's STATUS: waking its watcher"
            );
        } else if passes == PERSISTENT_AFTER + 1 {
            tracing::warn!(
                folder.id = s.folder_id,
                server = ?s.status,
                mirrored,
                "the folder's mirror still disagrees with the server's STATUS after selecting \
                 it again {PERSISTENT_AFTER} times; retrying every {PERSISTENT_RETRY} passes"
            );
        } else if passes % PERSISTENT_RETRY != 0 {
            continue;
        }
        wake.notify_one();
    }
}

/// Passes in a row after which a disagreement counts as persistent (see [`recheck`]).
const PERSISTENT_AFTER: u32 = 3;
/// How often a persistent disagreement is still acted on, in passes.
const PERSISTENT_RETRY: u32 = 10;

async fn refresh_acl(
    conn: &mut Conn,
    pool: &flagpost_store::PgPool,
    row: &FolderRow,
) -> Result<(), SyncError> {
    if !conn.caps.acl {
        // Nothing to ask (MYRIGHTS and GETACL would only be refused): every right is unknown,
        // so the API grants nothing but to service admins.
        flagpost_store::folders::replace_acl(pool, row.id, None, "").await?;
        return Ok(());
    }
    let mine = crate::folders::my_rights(conn.session(), &row.imap_name).await?;
    let entries = if mine.contains(Right::Administer) {
        let acl = crate::folders::get_acl(conn.session(), &row.imap_name).await?;
        Some(
            acl.into_iter()
                .map(|(identifier, rights)| AclEntry {
                    identifier,
                    rights: rights.to_string(),
                })
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let changed =
        flagpost_store::folders::replace_acl(pool, row.id, entries.as_deref(), &mine.to_string())
            .await?;
    if changed {
        tracing::info!(
            folder.id = row.id,
            acl_known = entries.is_some(),
            "ACL changed"
        );
    }
    Ok(())
}

async fn reconcile(
    cfg: &MirrorConfig,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    watchers: &mut HashMap<i64, Watcher>,
    polled: &tokio::sync::Mutex<Vec<(i64, String)>>,
    server_idle: bool,
    folders: Vec<FolderRow>,
) {
    // Stop watchers of folders that are gone.
    watchers.retain(|id, w| {
        let keep = folders.iter().any(|f| f.id == *id);
        if !keep {
            w.cancel.cancel();
        }
        keep
    });
    let mut polled = polled.lock().await;
    polled.retain(|(id, _)| folders.iter().any(|f| f.id == *id));
    for f in &folders {
        if watchers.contains_key(&f.id) || polled.iter().any(|(id, _)| *id == f.id) {
            continue;
        }
        // Within the budget a folder has its own connection (polled on it when the server
        // has no IDLE); beyond it, the shared poller's.
        if watchers.len() < cfg.max_idle {
            let cancel = shutdown.child_token();
            let wake = Arc::new(Notify::new());
            tracker.spawn(watch_folder(
                cfg.ctx.clone(),
                f.id,
                f.imap_name.clone(),
                server_idle,
                wake.clone(),
                cancel.clone(),
            ));
            watchers.insert(f.id, Watcher { cancel, wake });
        } else {
            polled.push((f.id, f.imap_name.clone()));
        }
    }
}

/// Watches the folders beyond the IDLE budget on one shared connection: a cheap `STATUS` per
/// folder each poll interval, and a sync when it moved (always, without CONDSTORE, since STATUS
/// cannot show flag changes then).
async fn poll_folders(
    ctx: MirrorContext,
    folders: Arc<tokio::sync::Mutex<Vec<(i64, String)>>>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut conn: Option<Conn> = None;
    loop {
        let list = folders.lock().await.clone();
        let mut failed = None;
        for (id, imap_name) in &list {
            if conn.is_none() {
                match ctx.connect().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        failed = Some(SyncError::Imap(e));
                        break;
                    }
                }
            }
            let c = conn.as_mut().expect("connected above");
            match poll_one(c, &ctx, *id, imap_name).await {
                Ok(()) => {
                    let _ = flagpost_store::folders::set_sync_state(
                        &ctx.pool,
                        *id,
                        SyncState::Polling,
                        None,
                    )
                    .await;
                }
                Err(e) => {
                    let _ = flagpost_store::folders::set_sync_state(
                        &ctx.pool,
                        *id,
                        SyncState::Error,
                        Some(&e.to_string()),
                    )
                    .await;
                    failed = Some(e);
                    break;
                }
            }
        }
        let delay = match failed {
            Some(e) => {
                tracing::warn!(error = %e, "polling failed; reconnecting");
                conn = None;
                backoff.next_delay()
            }
            None => {
                backoff.reset();
                ctx.poll_interval
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    if let Some(c) = conn {
        c.logout().await;
    }
}

async fn poll_one(
    conn: &mut Conn,
    ctx: &MirrorContext,
    folder_id: i64,
    imap_name: &str,
) -> Result<(), SyncError> {
    let row = flagpost_store::folders::folder(&ctx.pool, folder_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    if let Some(cp) = row.checkpoint()
        && cp.highest_modseq.is_some()
    {
        let status = conn.status(imap_name).await?;
        let mirrored =
            flagpost_store::messages::count(&ctx.pool, folder_id, cp.uidvalidity).await?;
        if status.uidvalidity == Some(cp.uidvalidity)
            && status.highest_modseq == cp.highest_modseq
            && status.uidnext == cp.uidnext
            && status.messages == Some(mirrored as u32)
        {
            return Ok(());
        }
    }
    crate::sync::examine_folder(conn, &ctx.pool, folder_id, imap_name).await?;
    let report = sync_selected(conn, &ctx.pool, folder_id).await?;
    crate::watch::record_sync(&report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(uidvalidity: u32, uidnext: Option<u32>) -> Option<Checkpoint> {
        Some(Checkpoint {
            uidvalidity,
            highest_modseq: Some(40),
            uidnext,
        })
    }

    fn status(uidvalidity: u32, uidnext: u32, messages: Option<u32>) -> StatusInfo {
        StatusInfo {
            uidvalidity: Some(uidvalidity),
            uidnext: Some(uidnext),
            messages,
            // Expunges move it without telling an IDLE client: never a sign on its own.
            highest_modseq: Some(99),
        }
    }

    #[test]
    fn a_status_is_ahead_of_the_mirror_only_when_the_watcher_must_have_missed_something() {
        let cases = [
            // (checkpoint, status, mirrored, behind, why)
            (
                cp(7, Some(11)),
                status(7, 11, Some(10)),
                10,
                false,
                "in step but for HIGHESTMODSEQ",
            ),
            (
                cp(7, Some(11)),
                status(8, 1, Some(0)),
                10,
                true,
                "new UIDVALIDITY",
            ),
            (
                cp(7, Some(11)),
                status(7, 12, Some(11)),
                10,
                true,
                "UIDNEXT moved on",
            ),
            (
                cp(7, Some(11)),
                status(7, 11, Some(9)),
                10,
                true,
                "an expunge not mirrored",
            ),
            (
                cp(7, Some(12)),
                status(7, 11, Some(10)),
                10,
                false,
                "checkpoint ahead of a stale STATUS",
            ),
            (
                cp(7, None),
                status(7, 11, Some(10)),
                10,
                false,
                "no UIDNEXT known",
            ),
            (
                cp(7, Some(11)),
                status(7, 11, None),
                3,
                false,
                "count not asked",
            ),
            (
                None,
                status(7, 11, Some(10)),
                0,
                false,
                "first sync still running",
            ),
        ];
        for (cp, status, mirrored, behind, why) in cases {
            assert_eq!(is_behind(cp, &status, mirrored), behind, "{why}");
        }
    }
}
