//! The REST API's reads, and its one write to the mirror: a flag change made through the API,
//! recorded at once so the caller reads its own write.
//!
//! Message JSON is rendered here from the row's columns ([`MessageColumns`]), equal to what the
//! SQL function `flagpost_message_json` (migration 0002) builds: building it in SQL cost
//! PostgreSQL about three quarters of a listing's time. The store's tests compare the two.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

use crate::events::{EventRow, EventType, NewEvent};
use crate::folders::AclEntry;

/// What the API needs to know of a folder to authorise a request: its ACL as mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderAcl {
    /// Folder id.
    pub folder_id: i64,
    /// Whether `entries` is the folder's ACL (false: the service account lacks `a`).
    pub acl_known: bool,
    /// The service account's MYRIGHTS.
    pub service_rights: Option<String>,
    /// The mirrored entries.
    pub entries: Vec<AclEntry>,
    /// Whether the folder is gone from LIST (its events stay readable by the same rules).
    pub removed: bool,
}

/// A folder's ACL as one row: id, acl_known, service_rights, removed, identifiers, rights.
type AclRow = (i64, bool, Option<String>, bool, Vec<String>, Vec<String>);

/// The ACL of every folder ever watched.
pub async fn acl_snapshot(pool: &PgPool) -> sqlx::Result<Vec<FolderAcl>> {
    let rows: Vec<AclRow> = sqlx::query_as(
        "SELECT f.id, f.acl_known, f.service_rights, f.removed_at IS NOT NULL,
                COALESCE(array_agg(a.identifier ORDER BY a.identifier) FILTER (WHERE a.identifier IS NOT NULL), '{}'),
                COALESCE(array_agg(a.rights ORDER BY a.identifier) FILTER (WHERE a.identifier IS NOT NULL), '{}')
         FROM folders f LEFT JOIN acl_entries a ON a.folder_id = f.id
         GROUP BY f.id ORDER BY f.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(folder_id, acl_known, service_rights, removed, ids, rights)| FolderAcl {
                folder_id,
                acl_known,
                service_rights,
                removed,
                entries: ids
                    .into_iter()
                    .zip(rights)
                    .map(|(identifier, rights)| AclEntry { identifier, rights })
                    .collect(),
            },
        )
        .collect())
}

/// A folder as the API shows it (without the caller's rights).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FolderView {
    /// Id.
    pub id: i64,
    /// Readable name.
    pub name: String,
    /// Wire name.
    pub imap_name: String,
    /// Messages not deleted.
    pub total: i64,
    /// Pending.
    pub pending: i64,
    /// Answered.
    pub answered: i64,
    /// Flagged and not deleted.
    pub flagged: i64,
    /// Deleted, not yet expunged.
    pub deleted: i64,
    /// `live`, `polling`, `connecting`, `error`.
    pub sync_state: String,
    /// Last completed sync.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Why the state is `error`.
    pub sync_error: Option<String>,
    /// Generation, for writes.
    pub uidvalidity: Option<i64>,
}

/// Watched folders among `ids`, by name, with their counts (kept by triggers, migration 0005).
pub async fn folder_views(pool: &PgPool, ids: &[i64]) -> sqlx::Result<Vec<FolderView>> {
    sqlx::query_as(
        "SELECT f.id, f.name, f.imap_name,
                COALESCE(c.pending + c.answered, 0) AS total,
                COALESCE(c.pending, 0) AS pending, COALESCE(c.answered, 0) AS answered,
                COALESCE(c.flagged, 0) AS flagged, COALESCE(c.deleted, 0) AS deleted,
                f.sync_state, f.last_synced_at, f.sync_error, f.uidvalidity
         FROM folders f
         LEFT JOIN folder_counts c ON c.folder_id = f.id
         WHERE f.id = ANY($1) AND f.removed_at IS NULL
         ORDER BY f.name, f.id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Which messages `GET /messages` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// Pending only.
    Pending,
    /// Answered only.
    Answered,
    /// Deleted (not yet expunged) only.
    Deleted,
    /// Pending and answered.
    Any,
}

/// The filter, order and page of `GET /messages`.
#[derive(Debug, Clone)]
pub struct MessageQuery<'a> {
    /// Folders to list (already restricted to what the caller may read).
    pub folders: &'a [i64],
    /// Status.
    pub status: StatusFilter,
    /// Flagged or not, or both.
    pub flagged: Option<bool>,
    /// Text in subject or sender (case-insensitive substring).
    pub text: Option<&'a str>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Resume after this (received_at, id) position.
    pub after: Option<(DateTime<Utc>, i64)>,
    /// Rows at most.
    pub limit: i64,
}

/// One listed message: its keyset position and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageJson {
    /// Id.
    pub id: i64,
    /// Received time (INTERNALDATE), the sort key.
    pub received_at: DateTime<Utc>,
    /// The contract's message object, as JSON text.
    pub json: String,
}

/// The columns a message's JSON is rendered from (see [`MessageColumns::render`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageColumns {
    /// Id.
    pub id: i64,
    /// Folder.
    pub folder_id: i64,
    /// UID.
    pub uid: i64,
    /// Message-ID.
    pub message_id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Sender's name.
    pub from_name: Option<String>,
    /// Sender's address.
    pub from_address: Option<String>,
    /// `to_addresses` as JSON text.
    pub to_json: String,
    /// Date header.
    pub date: Option<DateTime<Utc>>,
    /// INTERNALDATE.
    pub received_at: DateTime<Utc>,
    /// RFC822.SIZE.
    pub size: i64,
    /// Flags.
    pub flags: Vec<String>,
    /// `pending`, `answered` or `deleted`.
    pub status: String,
    /// `\Flagged`.
    pub flagged: bool,
    /// `\Seen`.
    pub seen: bool,
    /// `flagpost_message_etag()`.
    pub etag: String,
    /// First mirrored.
    pub first_seen_at: DateTime<Utc>,
    /// When `\Answered` was first seen set.
    pub answered_at: Option<DateTime<Utc>>,
    /// Last flag change.
    pub updated_at: DateTime<Utc>,
}

/// The select list of [`MessageColumns`] for a `messages m`.
const MESSAGE_COLUMNS: &str = "m.id, m.folder_id, m.uid, m.message_id, m.subject, m.from_name,
    m.from_address, m.to_addresses::text AS to_json, m.date, m.received_at, m.size, m.flags,
    m.status, m.flagged, m.seen, flagpost_message_etag(m.modseq, m.flags) AS etag,
    m.first_seen_at, m.answered_at, m.updated_at";

impl MessageColumns {
    /// The contract's message object as JSON text, members in the order jsonb gives them.
    pub fn render(&self) -> String {
        use crate::json::{json_str, json_time};
        let mut j = String::with_capacity(512 + self.to_json.len());
        j.push_str("{\"id\":\"");
        j.push_str(&self.id.to_string());
        j.push_str("\",\"to\":");
        j.push_str(&self.to_json);
        j.push_str(",\"uid\":");
        j.push_str(&self.uid.to_string());
        j.push_str(",\"date\":");
        json_time(&mut j, self.date);
        j.push_str(",\"etag\":");
        json_str(&mut j, Some(&self.etag));
        j.push_str(",\"from\":{\"name\":");
        json_str(&mut j, self.from_name.as_deref());
        j.push_str(",\"address\":");
        json_str(&mut j, self.from_address.as_deref());
        j.push_str("},\"seen\":");
        j.push_str(if self.seen { "true" } else { "false" });
        j.push_str(",\"size\":");
        j.push_str(&self.size.to_string());
        j.push_str(",\"flags\":[");
        for (i, f) in self.flags.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            json_str(&mut j, Some(f));
        }
        j.push_str("],\"status\":");
        json_str(&mut j, Some(&self.status));
        j.push_str(",\"flagged\":");
        j.push_str(if self.flagged { "true" } else { "false" });
        j.push_str(",\"subject\":");
        json_str(&mut j, self.subject.as_deref());
        j.push_str(",\"folder_id\":\"");
        j.push_str(&self.folder_id.to_string());
        j.push_str("\",\"message_id\":");
        json_str(&mut j, self.message_id.as_deref());
        j.push_str(",\"updated_at\":");
        json_time(&mut j, Some(self.updated_at));
        j.push_str(",\"answered_at\":");
        json_time(&mut j, self.answered_at);
        j.push_str(",\"received_at\":");
        json_time(&mut j, Some(self.received_at));
        j.push_str(",\"first_seen_at\":");
        json_time(&mut j, Some(self.first_seen_at));
        j.push('}');
        j
    }
}

fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Lists messages by received time with a keyset, so pages stay stable under concurrent
/// change. The statement text varies with the filters so each variant gets a plan that uses
/// its index.
pub async fn list_messages(pool: &PgPool, q: &MessageQuery<'_>) -> sqlx::Result<Vec<MessageJson>> {
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.folder_id = ANY($1)");
    sql.push_str(match q.status {
        StatusFilter::Pending => " AND m.status = 'pending'",
        StatusFilter::Answered => " AND m.status = 'answered'",
        StatusFilter::Deleted => " AND m.status = 'deleted'",
        StatusFilter::Any => " AND NOT m.deleted",
    });
    match q.flagged {
        Some(true) => sql.push_str(" AND m.flagged"),
        Some(false) => sql.push_str(" AND NOT m.flagged"),
        None => {}
    }
    if q.text.is_some() {
        sql.push_str(
            " AND (m.subject ILIKE $2 OR m.from_name ILIKE $2 OR m.from_address ILIKE $2)",
        );
    }
    let (cmp, dir) = if q.newest_first {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if q.after.is_some() {
        sql.push_str(&format!(" AND (m.received_at, m.id) {cmp} ($3, $4)"));
    }
    sql.push_str(&format!(
        " ORDER BY m.received_at {dir}, m.id {dir} LIMIT $5"
    ));
    let (after_at, after_id) = match q.after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    let rows: Vec<MessageColumns> = sqlx::query_as(&sql)
        .bind(q.folders)
        .bind(q.text.map(like_pattern))
        .bind(after_at)
        .bind(after_id)
        .bind(q.limit)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|m| MessageJson {
            id: m.id,
            received_at: m.received_at,
            json: m.render(),
        })
        .collect())
}

/// One message with what a write needs.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRow {
    /// Id.
    pub id: i64,
    /// Folder.
    pub folder_id: i64,
    /// The folder's wire name.
    pub imap_name: String,
    /// Generation.
    pub uidvalidity: i64,
    /// UID.
    pub uid: i64,
    /// MODSEQ, where the server has CONDSTORE.
    pub modseq: Option<i64>,
    /// Flags.
    pub flags: Vec<String>,
    /// Entity tag (as in the JSON).
    pub etag: String,
    /// The contract's message object, as JSON text.
    pub json: String,
}

/// One message of a watched folder.
pub async fn message(pool: &PgPool, id: i64) -> sqlx::Result<Option<MessageRow>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        imap_name: String,
        uidvalidity: i64,
        modseq: Option<i64>,
        #[sqlx(flatten)]
        m: MessageColumns,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT f.imap_name, m.uidvalidity, m.modseq, {MESSAGE_COLUMNS}
         FROM messages m JOIN folders f ON f.id = m.folder_id
         WHERE m.id = $1 AND f.removed_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        let json = r.m.render();
        MessageRow {
            id: r.m.id,
            folder_id: r.m.folder_id,
            imap_name: r.imap_name,
            uidvalidity: r.uidvalidity,
            uid: r.m.uid,
            modseq: r.modseq,
            flags: r.m.flags,
            etag: r.m.etag,
            json,
        }
    }))
}

/// The events that touched message `id`, oldest first (at most `limit`, the newest ones).
pub async fn message_history(pool: &PgPool, id: i64, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT * FROM (
             SELECT id, type, at, folder_id, message_id, data FROM events
             WHERE message_id = $1 ORDER BY id DESC LIMIT $2
         ) e ORDER BY id",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Announces a flag change about to be stored through the API by `actor` (before the IMAP
/// STORE), so that the watcher, should it see the result on the server first, names `actor` in
/// its event. Returns the announcement's id for [`record_flag_write`] / [`forget_flag_write`].
pub async fn announce_flag_write(
    pool: &PgPool,
    message_id: i64,
    adds: &[&str],
    removes: &[&str],
    actor: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "WITH old AS (DELETE FROM api_flag_writes WHERE at < now() - interval '2 minutes')
         INSERT INTO api_flag_writes (message_id, adds, removes, actor)
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(message_id)
    .bind(adds)
    .bind(removes)
    .bind(actor)
    .fetch_one(pool)
    .await
}

/// Withdraws an announcement whose STORE did not happen.
pub async fn forget_flag_write(pool: &PgPool, announcement: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM api_flag_writes WHERE id = $1")
        .bind(announcement)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records flags the IMAP server confirmed after a STORE made through the API, with the
/// `message.updated` event naming `actor`, so the caller reads its own write at once. The
/// watcher later sees the same flags and records nothing more. Returns the message as it is
/// now, or `None` when it is gone from the mirror (or from this generation).
pub async fn record_flag_write(
    pool: &PgPool,
    id: i64,
    uidvalidity: i64,
    flags: &[String],
    modseq: Option<i64>,
    actor: &str,
    announcement: Option<i64>,
) -> sqlx::Result<Option<MessageRow>> {
    let mut tx = pool.begin().await?;
    crate::events::lock_event_writers(&mut tx).await?;
    if let Some(a) = announcement {
        sqlx::query("DELETE FROM api_flag_writes WHERE id = $1")
            .bind(a)
            .execute(&mut *tx)
            .await?;
    }
    let current: Option<(i64, Vec<String>, Option<i64>)> = sqlx::query_as(
        "SELECT folder_id, flags, modseq FROM messages WHERE id = $1 AND uidvalidity = $2 FOR UPDATE",
    )
    .bind(id)
    .bind(uidvalidity)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((folder_id, before, old_modseq)) = current else {
        return Ok(None);
    };
    let f = flagpost_domain::Flags::new(flags.iter().cloned());
    let after: Vec<String> = f.as_slice().to_vec();
    // An older answer than what the mirror already has (the watcher was quicker) changes
    // nothing.
    let stale = matches!((old_modseq, modseq), (Some(old), Some(new)) if new < old);
    if !stale && after != before {
        sqlx::query(
            "UPDATE messages SET flags = $2, modseq = COALESCE($3, modseq), updated_at = now(),
                 answered_at = CASE
                     WHEN '\\Answered' = ANY ($2) AND NOT answered THEN now()
                     WHEN NOT ('\\Answered' = ANY ($2)) THEN NULL
                     ELSE answered_at END
             WHERE id = $1",
        )
        .bind(id)
        .bind(&after)
        .bind(modseq)
        .execute(&mut *tx)
        .await?;
        crate::events::append_events(
            &mut tx,
            &[NewEvent {
                kind: EventType::MessageUpdated,
                folder_id,
                message_id: Some(id),
                data: json!({
                    "before": { "flags": before },
                    "after": {
                        "flags": f.as_slice(),
                        "status": f.status().as_str(),
                        "flagged": f.flagged(),
                        "seen": f.seen(),
                    },
                    "actor": actor,
                }),
            }],
        )
        .await?;
    } else if !stale && modseq.is_some() {
        sqlx::query("UPDATE messages SET modseq = GREATEST(modseq, $2) WHERE id = $1")
            .bind(id)
            .bind(modseq)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    message(pool, id).await
}

/// The highest event id (0 when there is none).
pub async fn max_event_id(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
        .fetch_one(pool)
        .await
}

/// Watched folders per sync state (`live`, `polling`, `connecting`, `error`).
pub async fn sync_state_counts(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT s.state, count(f.id) FROM unnest(ARRAY['live', 'polling', 'connecting', 'error']) AS s(state)
         LEFT JOIN folders f ON f.sync_state = s.state AND f.removed_at IS NULL
         GROUP BY s.state ORDER BY s.state",
    )
    .fetch_all(pool)
    .await
}
