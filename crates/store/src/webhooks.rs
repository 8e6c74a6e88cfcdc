//! Webhooks and their deliveries: the queue the delivery worker drains in event order per
//! webhook, at least once, surviving restarts.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::events::EventRow;

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRow {
    /// Id.
    pub id: i64,
    /// Target URL.
    pub url: String,
    /// The IMAP user whose rights decide what it receives.
    pub identity: String,
    /// Event types (None: all).
    pub events: Option<Vec<String>>,
    /// Folder ids (None: all the identity may read).
    pub folders: Option<Vec<i64>>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled (e.g. the receiver answered 410).
    pub disabled_reason: Option<String>,
    /// Signing secret (`whsec_…`).
    pub secret: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

const WEBHOOK_COLUMNS: &str =
    "id, url, identity, events, folders, enabled, disabled_reason, secret, created_at";

/// Creates a webhook that receives events from now on.
pub async fn create_webhook(
    pool: &PgPool,
    url: &str,
    identity: &str,
    events: Option<&[String]>,
    folders: Option<&[i64]>,
    secret: &str,
    created_by: &str,
) -> sqlx::Result<WebhookRow> {
    sqlx::query_as(&format!(
        "INSERT INTO webhooks (url, identity, events, folders, secret, created_by, cursor)
         VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(max(id), 0) FROM events))
         RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(url)
    .bind(identity)
    .bind(events)
    .bind(folders)
    .bind(secret)
    .bind(created_by)
    .fetch_one(pool)
    .await
}

/// Every webhook, oldest first.
pub async fn list_webhooks(pool: &PgPool) -> sqlx::Result<Vec<WebhookRow>> {
    sqlx::query_as(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"
    ))
    .fetch_all(pool)
    .await
}

/// One webhook.
pub async fn webhook(pool: &PgPool, id: i64) -> sqlx::Result<Option<WebhookRow>> {
    sqlx::query_as(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A change to a webhook; `None` leaves a field as it is. For `events` and `folders`,
/// `Some(None)` means "all".
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    /// New URL.
    pub url: Option<String>,
    /// New event filter.
    pub events: Option<Option<Vec<String>>>,
    /// New folder filter.
    pub folders: Option<Option<Vec<i64>>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Applies `change`. Re-enabling clears the disabled reason and skips what happened while the
/// webhook was off (its cursor moves to now), so a receiver is not flooded with stale events.
pub async fn update_webhook(
    pool: &PgPool,
    id: i64,
    change: &WebhookChange,
) -> sqlx::Result<Option<WebhookRow>> {
    sqlx::query_as(&format!(
        "UPDATE webhooks SET
             url = COALESCE($2, url),
             events = CASE WHEN $3 THEN $4 ELSE events END,
             folders = CASE WHEN $5 THEN $6 ELSE folders END,
             cursor = CASE WHEN $7 AND NOT enabled THEN (SELECT COALESCE(max(id), 0) FROM events) ELSE cursor END,
             disabled_reason = CASE WHEN $7 IS NOT NULL THEN NULL ELSE disabled_reason END,
             enabled = COALESCE($7, enabled),
             updated_at = now()
         WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(id)
    .bind(change.url.as_deref())
    .bind(change.events.is_some())
    .bind(change.events.clone().flatten())
    .bind(change.folders.is_some())
    .bind(change.folders.clone().flatten())
    .bind(change.enabled)
    .fetch_optional(pool)
    .await
}

/// Disables a webhook and records why (a receiver that answered 410 Gone to a ping). Returns
/// whether it existed.
pub async fn disable_webhook(pool: &PgPool, id: i64, reason: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE webhooks SET enabled = false, disabled_reason = $2, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(reason)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Deletes a webhook and its delivery log.
pub async fn delete_webhook(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
        > 0)
}

/// One delivery as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Id.
    pub id: i64,
    /// The event.
    pub event_id: i64,
    /// Attempts made.
    pub attempt: i32,
    /// `pending`, `delivered`, `failed`.
    pub status: String,
    /// The receiver's last HTTP status.
    pub response_status: Option<i32>,
    /// The receiver's last answer, truncated.
    pub response_body: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The last attempt's duration.
    pub duration_ms: Option<i32>,
    /// When the last attempt was made.
    pub at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: DateTime<Utc>,
}

const DELIVERY_COLUMNS: &str = "id, event_id, attempt, status, response_status, response_body, \
     error, duration_ms, at, next_attempt_at";

/// The latest deliveries of a webhook, newest first.
pub async fn list_deliveries(
    pool: &PgPool,
    webhook_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<DeliveryRow>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1
         ORDER BY id DESC LIMIT $2"
    ))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Queues the events after each enabled webhook's cursor that pass its type and folder filters
/// (at most `batch` events per call) and moves the cursors. Returns how many deliveries were
/// queued. Concurrent callers serialise on the webhook rows, so nothing is queued twice.
///
/// `readable(identity)` gives the folders an identity may read now; events of other folders are
/// not queued (and are checked again at delivery).
pub async fn enqueue(
    pool: &PgPool,
    batch: i64,
    readable: impl Fn(&str) -> Vec<i64>,
) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let hooks: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT id, cursor, identity FROM webhooks WHERE enabled ORDER BY id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    // Every id up to the visible maximum is final (event writers commit in id order).
    let low = hooks.iter().map(|h| h.1).min().unwrap_or(0);
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let head = head.min(low + batch);
    if head <= low {
        return Ok(0);
    }
    let ids: Vec<i64> = hooks.iter().map(|h| h.0).collect();
    let cursors: Vec<i64> = hooks.iter().map(|h| h.1).collect();
    // Folder filters by identity, as one text array per webhook (PostgreSQL has no ragged
    // arrays): "1,2,3".
    let readable_lists: Vec<String> = hooks
        .iter()
        .map(|h| {
            readable(&h.2)
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let queued = sqlx::query(
        "WITH w AS (
             SELECT u.id, u.cursor, string_to_array(NULLIF(u.readable, ''), ',')::bigint[] AS readable,
                    h.events, h.folders
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) AS u(id, cursor, readable)
             JOIN webhooks h ON h.id = u.id
         )
         INSERT INTO webhook_deliveries (webhook_id, event_id)
         SELECT w.id, e.id FROM w JOIN events e
             ON e.id > w.cursor AND e.id <= $4
            AND e.folder_id = ANY (COALESCE(w.readable, '{}'))
            AND (w.events IS NULL OR e.type = ANY (w.events))
            AND (w.folders IS NULL OR e.folder_id = ANY (w.folders))
         WHERE e.id > $5 AND e.id <= $4
         ORDER BY w.id, e.id",
    )
    .bind(&ids)
    .bind(&cursors)
    .bind(&readable_lists)
    .bind(head)
    .bind(low)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE webhooks SET cursor = GREATEST(cursor, $2) WHERE id = ANY ($1)")
        .bind(&ids)
        .bind(head)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(queued)
}

/// A claimed delivery: what to send, and where.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Delivery id.
    pub delivery_id: i64,
    /// Attempt number (1 for the first).
    pub attempt: i32,
    /// The event.
    pub event: EventRow,
    /// The webhook as it is at the claim (its row was locked while claiming).
    pub webhook: WebhookRow,
}

/// What claiming a webhook's head found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// This delivery is ours until the lease ends.
    Claimed(Box<Claimed>),
    /// The head is due at this time (or leased by someone until then).
    NotBefore(DateTime<Utc>),
    /// Nothing pending.
    Empty,
    /// Another worker holds this webhook right now (or it is disabled or gone).
    Busy,
}

/// The claim's one row: whether the webhook row was locked, the head found, and, when it was
/// due and is now ours, its attempt number, its event and the webhook.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    locked: bool,
    head: Option<i64>,
    not_before: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    attempt: Option<i32>,
    event_id: Option<i64>,
    event_type: Option<String>,
    event_at: Option<DateTime<Utc>>,
    event_folder_id: Option<i64>,
    event_message_id: Option<i64>,
    event_data: Option<serde_json::Value>,
    url: Option<String>,
    identity: Option<String>,
    events: Option<Vec<String>>,
    folders: Option<Vec<i64>>,
    enabled: Option<bool>,
    disabled_reason: Option<String>,
    secret: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

/// Claims webhook `id`'s oldest pending delivery (lowest event id) if it is due: one in
/// flight per webhook, in event order. The webhook row is locked with `SKIP LOCKED`, so workers
/// in other processes pass over a webhook being claimed instead of waiting; the lease keeps the
/// delivery ours while we send it, and lets it go back to the queue if we crash.
///
/// One statement, one round trip (a delivery's cost is mostly round trips). Its snapshot may
/// predate the commit of another worker that held the webhook row just before us, so the head
/// it reads may be stale: the `UPDATE` therefore checks status, due time and lease again on the
/// row's latest version (READ COMMITTED re-evaluates them there) and claims nothing when another
/// worker got there first. Its commit need not wait for the WAL flush: losing a claim in a
/// PostgreSQL crash only loses a lease and an attempt count, and the delivery is made again.
pub async fn claim_head(pool: &PgPool, id: i64, lease_secs: f64) -> sqlx::Result<Claim> {
    let row: ClaimRow = sqlx::query_as(
        "WITH hook AS (
             SELECT * FROM webhooks WHERE id = $1 AND enabled FOR UPDATE SKIP LOCKED
         ),
         head AS (
             SELECT d.id, d.next_attempt_at, d.lease_until FROM webhook_deliveries d
             WHERE d.webhook_id = $1 AND d.status = 'pending' AND EXISTS (SELECT 1 FROM hook)
             ORDER BY d.event_id, d.id LIMIT 1
         ),
         claimed AS (
             UPDATE webhook_deliveries d SET attempt = d.attempt + 1,
                 lease_until = now() + make_interval(secs => $2)
             FROM head
             WHERE d.id = head.id AND d.status = 'pending' AND d.next_attempt_at <= now()
               AND (d.lease_until IS NULL OR d.lease_until <= now())
             RETURNING d.id, d.attempt, d.event_id
         )
         SELECT EXISTS (SELECT 1 FROM hook) AS locked, head.id AS head,
                GREATEST(head.next_attempt_at, head.lease_until) AS not_before, now() AS now,
                claimed.attempt, e.id AS event_id, e.type AS event_type, e.at AS event_at,
                e.folder_id AS event_folder_id, e.message_id AS event_message_id,
                e.data AS event_data, hook.url, hook.identity, hook.events, hook.folders,
                hook.enabled, hook.disabled_reason, hook.secret, hook.created_at,
                set_config('synchronous_commit', 'off', true) AS async_commit
         FROM (SELECT 1) one
         LEFT JOIN hook ON true
         LEFT JOIN head ON true
         LEFT JOIN claimed ON true
         LEFT JOIN events e ON e.id = claimed.event_id",
    )
    .bind(id)
    .bind(lease_secs)
    .fetch_one(pool)
    .await?;
    if !row.locked {
        return Ok(Claim::Busy);
    }
    let Some(delivery_id) = row.head else {
        return Ok(Claim::Empty);
    };
    let claimed = (|| {
        Some(Claimed {
            delivery_id,
            attempt: row.attempt?,
            event: EventRow {
                id: row.event_id?,
                kind: row.event_type?,
                at: row.event_at?,
                folder_id: row.event_folder_id?,
                message_id: row.event_message_id,
                data: row.event_data?,
            },
            webhook: WebhookRow {
                id,
                url: row.url?,
                identity: row.identity?,
                events: row.events,
                folders: row.folders,
                enabled: row.enabled?,
                disabled_reason: row.disabled_reason,
                secret: row.secret?,
                created_at: row.created_at?,
            },
        })
    })();
    Ok(match claimed {
        Some(c) => Claim::Claimed(Box::new(c)),
        // Not due, leased, or taken by another worker since our snapshot.
        None => Claim::NotBefore(row.not_before.unwrap_or(row.now).max(row.now)),
    })
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// New status: `delivered`, `pending` (retry at `retry_at`) or `failed`.
    pub status: &'static str,
    /// When to retry (pending only).
    pub retry_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status.
    pub response_status: Option<i32>,
    /// Its answer, truncated.
    pub response_body: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: i32,
    /// Disable the webhook with this reason (410 Gone).
    pub disable: Option<String>,
}

/// Records an attempt and releases the lease (and disables the webhook on a 410), in one
/// statement. Its commit need not wait for the WAL flush: a record lost in a PostgreSQL crash
/// means the delivery is made again (at least once), and since the WAL is lost only from some
/// point on, a later delivery's record never survives an earlier one's.
pub async fn record_attempt(
    pool: &PgPool,
    webhook_id: i64,
    delivery_id: i64,
    r: &AttemptRecord,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH recorded AS (
             UPDATE webhook_deliveries SET status = $2,
                 next_attempt_at = COALESCE($3, next_attempt_at),
                 lease_until = NULL, response_status = $4, response_body = $5, error = $6,
                 duration_ms = $7, at = now()
             WHERE id = $1
         ),
         disabled AS (
             UPDATE webhooks SET enabled = false, disabled_reason = $9, updated_at = now()
             WHERE id = $8 AND $9::text IS NOT NULL
         )
         SELECT set_config('synchronous_commit', 'off', true)",
    )
    .bind(delivery_id)
    .bind(r.status)
    .bind(r.retry_at)
    .bind(r.response_status)
    .bind(r.response_body.as_deref())
    .bind(r.error.as_deref())
    .bind(r.duration_ms)
    .bind(webhook_id)
    .bind(r.disable.as_deref())
    .execute(pool)
    .await
    .map(drop)
}

/// Drops a claimed delivery the webhook may no longer receive (its identity lost the right).
pub async fn drop_delivery(pool: &PgPool, delivery_id: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1")
        .bind(delivery_id)
        .execute(pool)
        .await
        .map(drop)
}

/// Queues delivery `delivery_id` of webhook `webhook_id` again, as a new delivery due now.
/// Returns the new delivery, or `None` when there is no such delivery.
pub async fn replay(
    pool: &PgPool,
    webhook_id: i64,
    delivery_id: i64,
) -> sqlx::Result<Option<DeliveryRow>> {
    sqlx::query_as(&format!(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, replay)
         SELECT webhook_id, event_id, true FROM webhook_deliveries WHERE id = $2 AND webhook_id = $1
         RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(webhook_id)
    .bind(delivery_id)
    .fetch_optional(pool)
    .await
}

/// Removes finished deliveries (delivered or failed) whose last attempt is older than `keep`,
/// a batch at a time; pending ones always stay. Returns how many were removed.
pub async fn prune_deliveries(pool: &PgPool, keep: std::time::Duration) -> sqlx::Result<u64> {
    let mut removed = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE status <> 'pending'
                   AND COALESCE(at, created_at) < now() - make_interval(secs => $1)
                 LIMIT 5000)",
        )
        .bind(keep.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected();
        removed += n;
        if n < 5000 {
            return Ok(removed);
        }
    }
}

/// Pending deliveries per enabled webhook.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(
        "SELECT w.id, count(d.id) FROM webhooks w
         LEFT JOIN webhook_deliveries d ON d.webhook_id = w.id AND d.status = 'pending'
         WHERE w.enabled GROUP BY w.id ORDER BY w.id",
    )
    .fetch_all(pool)
    .await
}
