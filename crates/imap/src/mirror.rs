//! The mirror supervisor: finds the watched folders (LIST, again every folder-poll interval),
//! gives each an IDLE watcher within the connection budget and polls the rest on one shared
//! connection, re-reads ACLs every ACL-poll interval (IMAP pushes no ACL changes), and stops
//! everything cleanly on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flagpost_domain::Right;
use flagpost_domain::sync::SyncState;
use flagpost_store::folders::{AclEntry, FolderRow};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn::Conn;
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
    loop {
        let acl_due = tokio::time::Instant::now() >= next_acl;
        match discover(&cfg, acl_due, &mut no_acl_noted).await {
            Ok((conn_caps_idle, folders)) => {
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
) -> Result<(bool, Vec<FolderRow>), SyncError> {
    let pool = &cfg.ctx.pool;
    let mut conn = cfg.ctx.connect().await?;
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
    let idle = conn.caps.idle;
    conn.logout().await;
    Ok((idle, rows))
}

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
            tracker.spawn(watch_folder(
                cfg.ctx.clone(),
                f.id,
                f.imap_name.clone(),
                server_idle,
                cancel.clone(),
            ));
            watchers.insert(f.id, Watcher { cancel });
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
