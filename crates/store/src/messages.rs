//! Message rows: applying a sync's changes, with their events and the folder checkpoint, in
//! one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use flagpost_domain::Flags;
use flagpost_domain::sync::{Address, Checkpoint, FetchedMessage, FlagUpdate};
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};

use crate::events::{EventType, NewEvent, append_events};
use crate::folders::write_checkpoint;

/// The changes one sync step found in a folder generation (one UIDVALIDITY).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Messages fetched in full: inserted when new, flags updated when known.
    pub fetched: Vec<FetchedMessage>,
    /// Flag changes of messages the mirror has (unknown UIDs are ignored: fetch them in full).
    pub flag_updates: Vec<FlagUpdate>,
    /// Expunged UIDs.
    pub removed: Vec<u32>,
    /// The checkpoint that covers these changes, written in the same transaction.
    pub checkpoint: Option<Checkpoint>,
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.fetched.is_empty()
            && self.flag_updates.is_empty()
            && self.removed.is_empty()
            && self.checkpoint.is_none()
    }
}

/// What applying changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows inserted.
    pub added: usize,
    /// Rows whose flags changed.
    pub updated: usize,
    /// Rows removed.
    pub removed: usize,
    /// UIDs of flag updates the mirror does not have: fetch them in full. While any remain, the
    /// checkpoint was not written.
    pub unknown: Vec<u32>,
}

fn status_json(flags: &Flags) -> Value {
    json!({
        "flags": flags.as_slice(),
        "status": flags.status().as_str(),
        "flagged": flags.flagged(),
        "seen": flags.seen(),
    })
}

fn addresses_json(list: &[Address]) -> Value {
    Value::Array(
        list.iter()
            .map(|a| json!({ "name": a.name, "address": a.address }))
            .collect(),
    )
}

/// Applies `changes` to the mirror of `folder_id` generation `uidvalidity`, appends their events
/// and writes the checkpoint, all in one transaction: a crash replays the step, never skips it.
pub async fn apply_changes(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
    changes: &Changes,
) -> sqlx::Result<Applied> {
    let mut tx = pool.begin().await?;
    let applied = apply_in(&mut tx, folder_id, uidvalidity, changes).await?;
    tx.commit().await?;
    Ok(applied)
}

async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    folder_id: i64,
    uidvalidity: u32,
    changes: &Changes,
) -> sqlx::Result<Applied> {
    let uv = i64::from(uidvalidity);
    // The mirror can always be rebuilt from the server, and the checkpoint commits atomically
    // with the changes: losing the last commits in a PostgreSQL crash only repeats a sync. So
    // these transactions need not wait for the WAL flush.
    // One round trip: the transaction's time, the event writers' lock (taken before any row
    // lock, see `events`), and no wait for the WAL flush.
    let (now,): (DateTime<Utc>,) = sqlx::query_as(
        "SELECT now(), pg_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)",
    )
    .bind(crate::events::EVENT_WRITER_LOCK)
    .fetch_one(&mut **tx)
    .await?;
    let mut max_event: Option<i64> = None;

    // Current state of every UID this step touches.
    let mut touched: Vec<i64> = changes.fetched.iter().map(|m| i64::from(m.uid)).collect();
    touched.extend(changes.flag_updates.iter().map(|u| i64::from(u.uid)));
    touched.extend(changes.removed.iter().map(|u| i64::from(*u)));
    let current: Vec<(i64, i64, Vec<String>)> = sqlx::query_as(
        "SELECT id, uid, flags FROM messages
         WHERE folder_id = $1 AND uidvalidity = $2 AND uid = ANY($3) FOR UPDATE",
    )
    .bind(folder_id)
    .bind(uv)
    .bind(&touched)
    .fetch_all(&mut **tx)
    .await?;
    let mut by_uid: HashMap<u32, (i64, Flags)> = current
        .into_iter()
        .map(|(id, uid, flags)| (uid as u32, (id, Flags::new(flags))))
        .collect();

    let mut events = Vec::new();
    let mut applied = Applied::default();

    // New messages, in UID order.
    let mut new: Vec<&FetchedMessage> = changes
        .fetched
        .iter()
        .filter(|m| !by_uid.contains_key(&m.uid))
        .collect();
    new.sort_by_key(|m| m.uid);
    new.dedup_by_key(|m| m.uid);
    if !new.is_empty() {
        let uids: Vec<i64> = new.iter().map(|m| i64::from(m.uid)).collect();
        let modseqs: Vec<Option<i64>> = new.iter().map(|m| m.modseq.map(|x| x as i64)).collect();
        let flags: Vec<String> = new
            .iter()
            .map(|m| pg_text_array(m.flags.as_slice()))
            .collect();
        let message_ids: Vec<Option<&str>> = new
            .iter()
            .map(|m| m.envelope.message_id.as_deref())
            .collect();
        let subjects: Vec<Option<&str>> =
            new.iter().map(|m| m.envelope.subject.as_deref()).collect();
        let from_names: Vec<Option<&str>> = new
            .iter()
            .map(|m| m.envelope.from.as_ref().and_then(|a| a.name.as_deref()))
            .collect();
        let from_addresses: Vec<Option<&str>> = new
            .iter()
            .map(|m| m.envelope.from.as_ref().and_then(|a| a.address.as_deref()))
            .collect();
        let tos: Vec<Value> = new.iter().map(|m| addresses_json(&m.envelope.to)).collect();
        let dates: Vec<Option<DateTime<Utc>>> = new.iter().map(|m| m.envelope.date).collect();
        let received: Vec<DateTime<Utc>> = new.iter().map(|m| m.received_at).collect();
        let sizes: Vec<i64> = new.iter().map(|m| m.size as i64).collect();
        // Insert the rows and their message.added events (JSON built by the same SQL function
        // the API reads messages with) in one statement, in UID order.
        let inserted: Vec<(i64, i64, Vec<String>, Option<i64>)> = sqlx::query_as(
            "WITH ins AS (
                 INSERT INTO messages (folder_id, uidvalidity, uid, modseq, flags, message_id, subject,
                     from_name, from_address, to_addresses, date, received_at, size,
                     first_seen_at, updated_at)
                 SELECT $1, $2, u.uid, u.modseq, u.flags::text[], u.mid, u.subject, u.fname, u.faddr,
                        u.tos, u.date, u.received, u.size, $14, $14
                 FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[],
                             $12::timestamptz[], $13::bigint[])
                      AS u(uid, modseq, flags, mid, subject, fname, faddr, tos, date, received, size)
                 ORDER BY u.uid
                 RETURNING *
             ),
             ev AS (
                 INSERT INTO events (type, folder_id, message_id, data)
                 SELECT 'message.added', ins.folder_id, ins.id,
                        jsonb_build_object('message', flagpost_message_json(ROW(ins.*)::messages))
                 FROM ins ORDER BY ins.uid
                 RETURNING id, message_id
             )
             SELECT ins.id, ins.uid, ins.flags, ev.id FROM ins LEFT JOIN ev ON ev.message_id = ins.id",
        )
        .bind(folder_id)
        .bind(uv)
        .bind(&uids)
        .bind(&modseqs)
        .bind(&flags)
        .bind(&message_ids)
        .bind(&subjects)
        .bind(&from_names)
        .bind(&from_addresses)
        .bind(&tos)
        .bind(&dates)
        .bind(&received)
        .bind(&sizes)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        for (id, uid, flags, event) in inserted {
            by_uid.insert(uid as u32, (id, Flags::new(flags)));
            max_event = max_event.max(event);
            applied.added += 1;
        }
    }

    // Flag changes: from full fetches of known messages and from flag updates; the last word
    // for a UID wins.
    let mut latest: HashMap<u32, (&Flags, Option<u64>)> = HashMap::new();
    for m in &changes.fetched {
        latest.insert(m.uid, (&m.flags, m.modseq));
    }
    for u in &changes.flag_updates {
        latest.insert(u.uid, (&u.flags, u.modseq));
    }
    let mut updates: Vec<(i64, &Flags, Option<u64>, Flags)> = Vec::new();
    for (uid, (flags, modseq)) in &latest {
        if let Some((id, before)) = by_uid.get(uid)
            && (*flags != before || modseq.is_some())
            && !new.iter().any(|m| m.uid == *uid)
        {
            updates.push((*id, flags, *modseq, before.clone()));
        }
    }
    updates.sort_by_key(|u| u.0);
    if !updates.is_empty() {
        let ids: Vec<i64> = updates.iter().map(|u| u.0).collect();
        let flags: Vec<String> = updates
            .iter()
            .map(|u| pg_text_array(u.1.as_slice()))
            .collect();
        let modseqs: Vec<Option<i64>> = updates.iter().map(|u| u.2.map(|m| m as i64)).collect();
        // Only rows whose flags really change get a new updated_at and an event; a MODSEQ-only
        // change (e.g. a keyword set and cleared) just moves the modseq.
        let changed: Vec<i64> = sqlx::query_scalar(
            "WITH u AS (SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) AS u(id, flags, modseq))
             UPDATE messages m SET
                 flags = u.flags::text[],
                 modseq = COALESCE(u.modseq, m.modseq),
                 updated_at = CASE WHEN m.flags IS DISTINCT FROM u.flags::text[] THEN $4 ELSE m.updated_at END,
                 answered_at = CASE
                     WHEN '\\Answered' = ANY (u.flags::text[]) AND NOT m.answered THEN $4
                     WHEN NOT ('\\Answered' = ANY (u.flags::text[])) THEN NULL
                     ELSE m.answered_at END
             FROM u WHERE m.id = u.id
             RETURNING m.id",
        )
        .bind(&ids)
        .bind(&flags)
        .bind(&modseqs)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
        debug_assert_eq!(changed.len(), ids.len());
        for (id, after, _, before) in &updates {
            if *after != before {
                events.push(NewEvent {
                    kind: EventType::MessageUpdated,
                    folder_id,
                    message_id: Some(*id),
                    data: json!({
                        "before": { "flags": before.as_slice() },
                        "after": status_json(after),
                        "actor": null,
                    }),
                });
                applied.updated += 1;
            }
        }
    }

    // Expunges.
    let mut removed: Vec<(u32, i64)> = changes
        .removed
        .iter()
        .filter_map(|uid| by_uid.get(uid).map(|(id, _)| (*uid, *id)))
        .collect();
    removed.sort();
    removed.dedup();
    if !removed.is_empty() {
        let ids: Vec<i64> = removed.iter().map(|r| r.1).collect();
        sqlx::query("DELETE FROM messages WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut **tx)
            .await?;
        for (uid, id) in &removed {
            events.push(NewEvent {
                kind: EventType::MessageRemoved,
                folder_id,
                message_id: Some(*id),
                data: json!({ "uid": uid }),
            });
        }
        applied.removed = removed.len();
    }

    crate::events::insert_events_and_notify(tx, &events, max_event).await?;
    applied.unknown = changes
        .flag_updates
        .iter()
        .map(|u| u.uid)
        .filter(|uid| !by_uid.contains_key(uid))
        .collect();
    if let Some(cp) = &changes.checkpoint
        && applied.unknown.is_empty()
    {
        write_checkpoint(tx, folder_id, cp).await?;
    }
    Ok(applied)
}

/// A new UIDVALIDITY: every stored UID of the folder is void (RFC 3501 §2.3.1.1). Drops the old
/// generation's rows, records `folder.reset` and clears the checkpoint, so the next sync fetches
/// the new generation in full.
pub async fn reset_folder(
    pool: &PgPool,
    folder_id: i64,
    old_uidvalidity: Option<u32>,
    new_uidvalidity: u32,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    // Writers take the event lock first, before any row lock, so no two can deadlock.
    crate::events::lock_event_writers(&mut tx).await?;
    sqlx::query("DELETE FROM messages WHERE folder_id = $1")
        .bind(folder_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE folders SET uidvalidity = NULL, highest_modseq = NULL, uidnext = NULL WHERE id = $1",
    )
    .bind(folder_id)
    .execute(&mut *tx)
    .await?;
    append_events(
        &mut tx,
        &[NewEvent {
            kind: EventType::FolderReset,
            folder_id,
            message_id: None,
            data: json!({ "uidvalidity_before": old_uidvalidity, "uidvalidity_after": new_uidvalidity }),
        }],
    )
    .await?;
    tx.commit().await
}

/// UIDs, flags and MODSEQs of the mirrored generation `uidvalidity` of a folder, by UID.
pub async fn uid_flags(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
) -> sqlx::Result<Vec<(u32, Flags, Option<u64>)>> {
    let rows: Vec<(i64, Vec<String>, Option<i64>)> = sqlx::query_as(
        "SELECT uid, flags, modseq FROM messages WHERE folder_id = $1 AND uidvalidity = $2 ORDER BY uid",
    )
    .bind(folder_id)
    .bind(i64::from(uidvalidity))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(uid, flags, modseq)| (uid as u32, Flags::new(flags), modseq.map(|m| m as u64)))
        .collect())
}

/// How many messages the mirror has for the folder generation.
pub async fn count(pool: &PgPool, folder_id: i64, uidvalidity: u32) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE folder_id = $1 AND uidvalidity = $2")
        .bind(folder_id)
        .bind(i64::from(uidvalidity))
        .fetch_one(pool)
        .await
}

/// Whether the mirror holds rows of another generation than `uidvalidity` (e.g. a first sync
/// interrupted before a UIDVALIDITY change).
pub async fn has_other_generation(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE folder_id = $1 AND uidvalidity <> $2)",
    )
    .bind(folder_id)
    .bind(i64::from(uidvalidity))
    .fetch_one(pool)
    .await
}

/// Which of `uids` the mirror has for the folder generation.
pub async fn known_uids(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
    uids: &[u32],
) -> sqlx::Result<Vec<u32>> {
    let uids: Vec<i64> = uids.iter().map(|u| i64::from(*u)).collect();
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT uid FROM messages WHERE folder_id = $1 AND uidvalidity = $2 AND uid = ANY($3)",
    )
    .bind(folder_id)
    .bind(i64::from(uidvalidity))
    .bind(&uids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|u| u as u32).collect())
}

/// Encodes a list of strings as a PostgreSQL array literal (for `UNNEST` of arrays of arrays,
/// which PostgreSQL cannot bind directly).
fn pg_text_array(items: &[String]) -> String {
    let mut out = String::from("{");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Refreshes the planner's statistics of `messages`. After a bulk first sync the planner would
/// otherwise still believe the table empty and filter `uid = ANY(..)` over the whole folder
/// instead of using the (folder, uidvalidity, uid) index.
pub async fn analyze(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("ANALYZE messages")
        .execute(pool)
        .await
        .map(drop)
}
