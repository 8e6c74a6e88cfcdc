//! One folder's watcher: connect, sync, then IDLE (or poll) until shutdown; on any failure
//! reconnect with jittered backoff and resync, so nothing is missed across disconnects.

use std::sync::Arc;
use std::time::Duration;

use flagpost_domain::sync::SyncState;
use flagpost_store::PgPool;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::conn::{Conn, IdleEnd};
use crate::connect::{ConnectError, ImapSettings};
use crate::sync::{SyncError, sync_selected};

/// Without MODSEQs, every how many quiet IDLE spells (of `idle_check` each) a full flag scan
/// looks for changes the server did not push: 5 × the default 2 minutes.
const FULL_RECHECK_SPELLS: u32 = 5;

/// Everything a watcher needs to reach the server and the database.
#[derive(Clone)]
pub struct MirrorContext {
    /// IMAP server.
    pub settings: ImapSettings,
    /// Service account.
    pub user: String,
    /// Its password (never logged).
    pub password: Arc<str>,
    /// The mirror.
    pub pool: PgPool,
    /// How often a folder without IDLE is polled.
    pub poll_interval: Duration,
    /// How long an IDLE may stay silent before the link is checked with NOOP (and IDLE is
    /// re-issued); far below the 29 minutes of RFC 2177.
    pub idle_check: Duration,
}

impl std::fmt::Debug for MirrorContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorContext")
            .field("settings", &self.settings)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl MirrorContext {
    /// Opens a connection as the service account.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        Conn::open(&self.settings, &self.user, &self.password).await
    }
}

/// Reconnect delays: exponential from 0.5 s to 60 s, with full jitter so many watchers do not
/// reconnect in lockstep (and servers that throttle fast reconnects are spared).
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff.
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let cap_ms = (500u64 << self.attempt.min(7)).min(60_000);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(rand::rng().random_range(cap_ms / 2..=cap_ms))
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// A watcher failure.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// IMAP or database.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<ConnectError> for WatchError {
    fn from(e: ConnectError) -> Self {
        WatchError::Sync(SyncError::Imap(e))
    }
}

impl From<sqlx::Error> for WatchError {
    fn from(e: sqlx::Error) -> Self {
        WatchError::Sync(SyncError::Db(e))
    }
}

impl WatchError {
    fn is_auth(&self) -> bool {
        matches!(self, WatchError::Sync(SyncError::Imap(e)) if e.is_auth())
    }
}

/// Watches `imap_name` (folder `folder_id`) until `cancel` fires. `idle` chooses IDLE; without
/// it (no IDLE on the server) the folder is polled on its own connection. `wake` makes the
/// watcher select the mailbox again and resync (the supervisor's `STATUS` saw the server ahead
/// of the mirror, e.g. the mailbox was deleted and created again under the watcher's feet).
pub async fn watch_folder(
    ctx: MirrorContext,
    folder_id: i64,
    imap_name: String,
    idle: bool,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let _ =
        flagpost_store::folders::set_sync_state(&ctx.pool, folder_id, SyncState::Connecting, None)
            .await;
    loop {
        let result = watch_once(
            &ctx,
            folder_id,
            &imap_name,
            idle,
            &wake,
            &cancel,
            &mut backoff,
        )
        .await;
        if cancel.is_cancelled() {
            return;
        }
        let Err(e) = result else { return };
        let reason = e.to_string();
        tracing::warn!(folder.id = folder_id, error = %reason, "watcher failed; reconnecting");
        metrics::counter!("flagpost_imap_reconnects_total").increment(1);
        let _ = flagpost_store::folders::set_sync_state(
            &ctx.pool,
            folder_id,
            SyncState::Error,
            Some(&reason),
        )
        .await;
        if e.is_auth() {
            // Retrying a refused login only risks locking the account: wait for a restart.
            cancel.cancelled().await;
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Counts a sync step for `/metrics`: resyncs by kind, UIDVALIDITY resets, and the changes
/// written (each one an event).
pub(crate) fn record_sync(report: &crate::sync::SyncReport) {
    let kind = match report.kind {
        crate::sync::SyncKind::Incremental => "incremental",
        crate::sync::SyncKind::FullScan => "full_scan",
    };
    metrics::counter!("flagpost_imap_syncs_total", "kind" => kind).increment(1);
    if report.reset {
        metrics::counter!("flagpost_imap_uidvalidity_resets_total").increment(1);
    }
    let a = &report.applied;
    metrics::counter!("flagpost_events_written_total", "type" => "message.added")
        .increment(a.added as u64);
    metrics::counter!("flagpost_events_written_total", "type" => "message.updated")
        .increment(a.updated as u64);
    metrics::counter!("flagpost_events_written_total", "type" => "message.removed")
        .increment(a.removed as u64);
}

async fn watch_once(
    ctx: &MirrorContext,
    folder_id: i64,
    imap_name: &str,
    idle: bool,
    wake: &Notify,
    cancel: &CancellationToken,
    backoff: &mut Backoff,
) -> Result<(), WatchError> {
    let mut conn = ctx.connect().await?;
    crate::sync::examine_folder(&mut conn, &ctx.pool, folder_id, imap_name).await?;
    let report = sync_selected(&mut conn, &ctx.pool, folder_id).await?;
    record_sync(&report);
    tracing::info!(folder.id = folder_id, kind = ?report.kind, reset = report.reset,
        fetched = report.fetched_full, flag_records = report.flag_records, added = report.applied.added,
        updated = report.applied.updated, removed = report.applied.removed, "folder synced");
    backoff.reset();
    let use_idle = idle && conn.caps.idle;
    let state = if use_idle {
        SyncState::Live
    } else {
        SyncState::Polling
    };
    flagpost_store::folders::set_sync_state(&ctx.pool, folder_id, state, None).await?;
    let mut quiet_spells: u32 = 0;
    loop {
        let mut reselect = false;
        let changed = if use_idle {
            match conn.idle(ctx.idle_check, cancel, wake).await? {
                IdleEnd::Cancelled => break,
                IdleEnd::Changed => true,
                IdleEnd::Woken => {
                    reselect = true;
                    true
                }
                IdleEnd::Elapsed => {
                    // Silence: prove the link is alive (a dead one fails here and reconnects).
                    conn.noop().await?;
                    quiet_spells += 1;
                    // A server need not push other sessions' flag changes during IDLE (RFC
                    // 2177 and RFC 3501 §7 let it send them, none makes it): each quiet spell
                    // ends with a look at what changed since the checkpoint. With MODSEQs
                    // that is one cheap CHANGEDSINCE; without, a full flag scan, so only
                    // every few spells.
                    let cheap = conn.selected.is_some_and(|s| s.highest_modseq.is_some());
                    conn.noticed.changed
                        || cheap
                        || quiet_spells.is_multiple_of(FULL_RECHECK_SPELLS)
                }
            }
        } else {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.notified() => reselect = true,
                _ = tokio::time::sleep(ctx.poll_interval) => {}
            }
            conn.noop().await?;
            true
        };
        if reselect {
            // The selected mailbox may no longer be the one under this name (a server such
            // as Cyrus keeps a session on a deleted mailbox): select it by name again, which
            // also reports a new UIDVALIDITY.
            tracing::info!(
                folder.id = folder_id,
                "the server's STATUS is ahead of the mirror: selecting the folder again"
            );
            metrics::counter!("flagpost_imap_reselects_total").increment(1);
            conn.unselect().await?;
            crate::sync::examine_folder(&mut conn, &ctx.pool, folder_id, imap_name).await?;
        }
        if changed {
            let report = sync_selected(&mut conn, &ctx.pool, folder_id).await?;
            record_sync(&report);
            tracing::debug!(folder.id = folder_id, kind = ?report.kind, flag_records = report.flag_records,
                added = report.applied.added, updated = report.applied.updated,
                removed = report.applied.removed, "folder resynced");
        }
    }
    conn.logout().await;
    Ok(())
}
