//! The append-only change feed.
//!
//! Ids come from an identity sequence, and a sequence hands out numbers before commit: two
//! writers can commit in the opposite order of their ids, and a reader that already saw id 11
//! would never see id 10. So every transaction that appends events first takes one
//! transaction-level advisory lock, held until its commit. Ids are then allocated and become
//! visible in the same order, and `id > after` is a complete resume point. Writers are short
//! transactions, so the serialisation costs little; the `NOTIFY` sent in the same transaction
//! reaches listeners only after commit.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

/// The advisory lock key that orders event writers ("flagpost" in ASCII, truncated).
pub(crate) const EVENT_WRITER_LOCK: i64 = 0x666c_6167_706f_7374;

/// The channel `NOTIFY` announces new events on; the payload is the highest new id.
pub const EVENTS_CHANNEL: &str = "flagpost_events";

/// Event types (contract §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `message.added`
    MessageAdded,
    /// `message.updated`
    MessageUpdated,
    /// `message.removed`
    MessageRemoved,
    /// `folder.added`
    FolderAdded,
    /// `folder.removed`
    FolderRemoved,
    /// `folder.reset`
    FolderReset,
    /// `folder.acl_changed`
    FolderAclChanged,
    /// `folder.sync_changed`
    FolderSyncChanged,
}

impl EventType {
    /// The type's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageAdded => "message.added",
            EventType::MessageUpdated => "message.updated",
            EventType::MessageRemoved => "message.removed",
            EventType::FolderAdded => "folder.added",
            EventType::FolderRemoved => "folder.removed",
            EventType::FolderReset => "folder.reset",
            EventType::FolderAclChanged => "folder.acl_changed",
            EventType::FolderSyncChanged => "folder.sync_changed",
        }
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Type.
    pub kind: EventType,
    /// Folder.
    pub folder_id: i64,
    /// Message, for message events.
    pub message_id: Option<i64>,
    /// Payload.
    pub data: serde_json::Value,
}

/// Takes the event writers' lock for the rest of `tx`. Every transaction that appends events
/// must hold it before it allocates the first id, and takes it before any row lock so that
/// writers cannot deadlock. (Advisory locks are re-entrant: taking it twice is harmless.)
pub async fn lock_event_writers(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENT_WRITER_LOCK)
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// Announces events up to `max_id` to listeners when `tx` commits.
pub async fn notify(tx: &mut Transaction<'_, Postgres>, max_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(max_id.to_string())
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// Appends `events` in order inside `tx` (taking the writer lock) and notifies listeners on
/// commit. Returns the new ids.
pub async fn append_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewEvent],
) -> sqlx::Result<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    lock_event_writers(tx).await?;
    let ids = insert_events(tx, events).await?;
    notify(tx, ids.iter().max().copied().unwrap_or_default()).await?;
    Ok(ids)
}

/// Inserts `events` in order; the caller holds the writer lock and notifies.
pub(crate) async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewEvent],
) -> sqlx::Result<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let types: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let folders: Vec<i64> = events.iter().map(|e| e.folder_id).collect();
    let messages: Vec<Option<i64>> = events.iter().map(|e| e.message_id).collect();
    let data: Vec<serde_json::Value> = events.iter().map(|e| e.data.clone()).collect();
    // WITH ORDINALITY keeps the given order for the ids.
    sqlx::query_scalar(
        "INSERT INTO events (type, folder_id, message_id, data)
         SELECT t, f, m, d FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::jsonb[])
              WITH ORDINALITY AS u(t, f, m, d, n)
         ORDER BY n
         RETURNING id",
    )
    .bind(&types)
    .bind(&folders)
    .bind(&messages)
    .bind(&data)
    .fetch_all(&mut **tx)
    .await
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EventRow {
    /// Id; strictly increasing in commit order.
    pub id: i64,
    /// Type.
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// Folder.
    pub folder_id: i64,
    /// Message, for message events.
    pub message_id: Option<i64>,
    /// Payload.
    pub data: serde_json::Value,
}

/// Events with `id > after`, oldest first, optionally only of `folders`.
pub async fn list_events(
    pool: &PgPool,
    after: i64,
    limit: i64,
    folders: Option<&[i64]>,
) -> sqlx::Result<Vec<EventRow>> {
    list_events_until(pool, after, i64::MAX, limit, folders).await
}

/// Events with `after < id <= until`, oldest first, optionally only of `folders`.
pub async fn list_events_until(
    pool: &PgPool,
    after: i64,
    until: i64,
    limit: i64,
    folders: Option<&[i64]>,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT id, type, at, folder_id, message_id, data FROM events
         WHERE id > $1 AND id <= $4 AND ($3::bigint[] IS NULL OR folder_id = ANY($3))
         ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .bind(folders)
    .bind(until)
    .fetch_all(pool)
    .await
}
