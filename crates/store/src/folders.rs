//! Folder rows: discovery results, checkpoints, sync state and the mirrored ACL.

use chrono::{DateTime, Utc};
use flagpost_domain::sync::{Checkpoint, SyncState};
use serde_json::json;
use sqlx::PgPool;

use crate::events::{EventType, NewEvent, append_events};

/// A mirrored folder.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FolderRow {
    /// Opaque id.
    pub id: i64,
    /// The raw (wire) name.
    pub imap_name: String,
    /// The readable name.
    pub name: String,
    /// Hierarchy delimiter.
    pub delimiter: Option<String>,
    /// Checkpoint: UIDVALIDITY.
    pub uidvalidity: Option<i64>,
    /// Checkpoint: HIGHESTMODSEQ.
    pub highest_modseq: Option<i64>,
    /// Checkpoint: UIDNEXT.
    pub uidnext: Option<i64>,
    /// `live`, `polling`, `connecting`, `error`.
    pub sync_state: String,
    /// Why the state is `error`.
    pub sync_error: Option<String>,
    /// Last completed sync.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Whether the ACL is mirrored (the service account holds `a`).
    pub acl_known: bool,
    /// The service account's MYRIGHTS.
    pub service_rights: Option<String>,
    /// Set while the folder is gone from LIST.
    pub removed_at: Option<DateTime<Utc>>,
}

impl FolderRow {
    /// The stored checkpoint, if a sync ever completed.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        Some(Checkpoint {
            uidvalidity: u32::try_from(self.uidvalidity?).ok()?,
            highest_modseq: self.highest_modseq.and_then(|m| u64::try_from(m).ok()),
            uidnext: self.uidnext.and_then(|u| u32::try_from(u).ok()),
        })
    }
}

const FOLDER_COLUMNS: &str = "id, imap_name, name, delimiter, uidvalidity, highest_modseq, uidnext, \
     sync_state, sync_error, last_synced_at, acl_known, service_rights, removed_at";

/// Records a folder LIST returned. A new folder, or one that comes back after it was removed,
/// gets a `folder.added` event. Returns the row and whether it was (re-)added.
pub async fn upsert_listed_folder(
    pool: &PgPool,
    imap_name: &str,
    name: &str,
    delimiter: Option<&str>,
) -> sqlx::Result<(FolderRow, bool)> {
    let mut tx = pool.begin().await?;
    // Writers take the event lock first, before any row lock, so no two can deadlock.
    crate::events::lock_event_writers(&mut tx).await?;
    let existing: Option<FolderRow> = sqlx::query_as(&format!(
        "SELECT {FOLDER_COLUMNS} FROM folders WHERE imap_name = $1 FOR UPDATE"
    ))
    .bind(imap_name)
    .fetch_optional(&mut *tx)
    .await?;
    let (row, added) = match existing {
        Some(row) if row.removed_at.is_none() => (row, false),
        Some(row) => {
            let row: FolderRow = sqlx::query_as(&format!(
                "UPDATE folders SET removed_at = NULL, name = $2, delimiter = $3 WHERE id = $1 RETURNING {FOLDER_COLUMNS}"
            ))
            .bind(row.id)
            .bind(name)
            .bind(delimiter)
            .fetch_one(&mut *tx)
            .await?;
            (row, true)
        }
        None => {
            let row: FolderRow = sqlx::query_as(&format!(
                "INSERT INTO folders (imap_name, name, delimiter) VALUES ($1, $2, $3) RETURNING {FOLDER_COLUMNS}"
            ))
            .bind(imap_name)
            .bind(name)
            .bind(delimiter)
            .fetch_one(&mut *tx)
            .await?;
            (row, true)
        }
    };
    if added {
        append_events(
            &mut tx,
            &[NewEvent {
                kind: EventType::FolderAdded,
                folder_id: row.id,
                message_id: None,
                data: json!({ "folder": { "id": row.id.to_string(), "name": row.name, "imap_name": row.imap_name } }),
            }],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((row, added))
}

/// Marks a folder removed (gone from LIST) with a `folder.removed` event. Its messages are
/// dropped: they are no longer on the server for this account.
pub async fn mark_folder_removed(pool: &PgPool, folder_id: i64) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    // Writers take the event lock first, before any row lock, so no two can deadlock.
    crate::events::lock_event_writers(&mut tx).await?;
    let updated = sqlx::query(
        "UPDATE folders SET removed_at = now(), uidvalidity = NULL, highest_modseq = NULL, uidnext = NULL
         WHERE id = $1 AND removed_at IS NULL",
    )
    .bind(folder_id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        sqlx::query("DELETE FROM messages WHERE folder_id = $1")
            .bind(folder_id)
            .execute(&mut *tx)
            .await?;
        // The ACL stays as last mirrored: it decides who reads the folder's past events and
        // this `folder.removed` (every reader of the folder, no one else).
        append_events(
            &mut tx,
            &[NewEvent {
                kind: EventType::FolderRemoved,
                folder_id,
                message_id: None,
                data: json!({}),
            }],
        )
        .await?;
    }
    tx.commit().await
}

/// Folders currently present on the server.
pub async fn active_folders(pool: &PgPool) -> sqlx::Result<Vec<FolderRow>> {
    sqlx::query_as(&format!(
        "SELECT {FOLDER_COLUMNS} FROM folders WHERE removed_at IS NULL ORDER BY id"
    ))
    .fetch_all(pool)
    .await
}

/// One folder by id.
pub async fn folder(pool: &PgPool, folder_id: i64) -> sqlx::Result<Option<FolderRow>> {
    sqlx::query_as(&format!(
        "SELECT {FOLDER_COLUMNS} FROM folders WHERE id = $1"
    ))
    .bind(folder_id)
    .fetch_optional(pool)
    .await
}

/// Sets a folder's sync state; a change of state (or of error text) appends
/// `folder.sync_changed`.
pub async fn set_sync_state(
    pool: &PgPool,
    folder_id: i64,
    state: SyncState,
    error: Option<&str>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    // Writers take the event lock first, before any row lock, so no two can deadlock.
    crate::events::lock_event_writers(&mut tx).await?;
    let changed = sqlx::query(
        "UPDATE folders SET sync_state = $2, sync_error = $3
         WHERE id = $1 AND (sync_state IS DISTINCT FROM $2 OR sync_error IS DISTINCT FROM $3)",
    )
    .bind(folder_id)
    .bind(state.as_str())
    .bind(error)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 1 {
        append_events(
            &mut tx,
            &[NewEvent {
                kind: EventType::FolderSyncChanged,
                folder_id,
                message_id: None,
                data: json!({ "state": state.as_str(), "error": error }),
            }],
        )
        .await?;
    }
    tx.commit().await
}

/// One mirrored ACL entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct AclEntry {
    /// The identifier (`-name` for a negative entry).
    pub identifier: String,
    /// Rights in canonical order.
    pub rights: String,
}

/// The mirrored ACL of a folder, sorted by identifier.
pub async fn acl(pool: &PgPool, folder_id: i64) -> sqlx::Result<Vec<AclEntry>> {
    sqlx::query_as(
        "SELECT identifier, rights FROM acl_entries WHERE folder_id = $1 ORDER BY identifier",
    )
    .bind(folder_id)
    .fetch_all(pool)
    .await
}

/// Replaces the mirrored ACL (`entries = None`: unknown, the service account lacks `a`) and the
/// service account's own rights. Any difference appends `folder.acl_changed`.
pub async fn replace_acl(
    pool: &PgPool,
    folder_id: i64,
    entries: Option<&[AclEntry]>,
    service_rights: &str,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    // Writers take the event lock first, before any row lock, so no two can deadlock.
    crate::events::lock_event_writers(&mut tx).await?;
    let (acl_known, old_service): (bool, Option<String>) =
        sqlx::query_as("SELECT acl_known, service_rights FROM folders WHERE id = $1 FOR UPDATE")
            .bind(folder_id)
            .fetch_one(&mut *tx)
            .await?;
    let old: Vec<AclEntry> = sqlx::query_as(
        "SELECT identifier, rights FROM acl_entries WHERE folder_id = $1 ORDER BY identifier",
    )
    .bind(folder_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut new: Vec<AclEntry> = entries.map(<[AclEntry]>::to_vec).unwrap_or_default();
    new.sort();
    let changed = acl_known != entries.is_some()
        || old != new
        || old_service.as_deref() != Some(service_rights);
    if changed {
        sqlx::query("DELETE FROM acl_entries WHERE folder_id = $1")
            .bind(folder_id)
            .execute(&mut *tx)
            .await?;
        let ids: Vec<&str> = new.iter().map(|e| e.identifier.as_str()).collect();
        let rights: Vec<&str> = new.iter().map(|e| e.rights.as_str()).collect();
        sqlx::query(
            "INSERT INTO acl_entries (folder_id, identifier, rights)
             SELECT $1, * FROM UNNEST($2::text[], $3::text[])",
        )
        .bind(folder_id)
        .bind(&ids)
        .bind(&rights)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE folders SET acl_known = $2, service_rights = $3, acl_synced_at = now() WHERE id = $1",
        )
        .bind(folder_id)
        .bind(entries.is_some())
        .bind(service_rights)
        .execute(&mut *tx)
        .await?;
        append_events(
            &mut tx,
            &[NewEvent {
                kind: EventType::FolderAclChanged,
                folder_id,
                message_id: None,
                data: json!({ "acl_known": entries.is_some() }),
            }],
        )
        .await?;
    } else {
        sqlx::query("UPDATE folders SET acl_synced_at = now() WHERE id = $1")
            .bind(folder_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// The `settings` key of the IMAP server's name (its `ID`).
pub const SERVER_NAME_KEY: &str = "imap_server_name";

/// Records the IMAP server's name as its `ID` gave it (`None`: it did not say).
pub async fn record_server_name(pool: &PgPool, name: Option<&str>) -> sqlx::Result<()> {
    match name {
        Some(name) => {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
                 WHERE settings.value IS DISTINCT FROM EXCLUDED.value",
            )
            .bind(SERVER_NAME_KEY)
            .bind(name)
            .execute(pool)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM settings WHERE key = $1")
                .bind(SERVER_NAME_KEY)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// The IMAP server's name as its `ID` last gave it, if it did.
pub async fn server_name(pool: &PgPool) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(SERVER_NAME_KEY)
        .fetch_optional(pool)
        .await
}
