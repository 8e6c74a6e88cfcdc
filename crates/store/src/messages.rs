//! Message rows: applying a sync's changes, with their events and the folder checkpoint, in
//! one transaction (one call of `flagpost_apply_changes()`, migrations 0006–0008).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use flagpost_domain::Flags;
use flagpost_domain::sync::{Checkpoint, FetchedMessage, FlagUpdate};
use serde_json::json;
use sqlx::{Connection, PgPool};

use crate::events::{EventType, NewEvent, append_events};
use crate::json::{json_str, json_time, pg_micros};

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

/// Changes made ready for [`apply_prepared`]: the column arrays of one server-side call and the
/// `message.added` JSON of the new messages. Building them costs CPU but no database time, so a
/// first sync prepares the next chunk while the previous one is being written.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    n_uids: Vec<i64>,
    n_modseqs: Vec<Option<i64>>,
    n_flags: Vec<String>,
    n_mids: Vec<Option<String>>,
    n_subjects: Vec<Option<String>>,
    n_fnames: Vec<Option<String>>,
    n_faddrs: Vec<Option<String>>,
    n_tos: Vec<String>,
    n_dates: Vec<Option<DateTime<Utc>>>,
    n_received: Vec<DateTime<Utc>>,
    n_sizes: Vec<i64>,
    n_etags: Vec<Option<String>>,
    n_json1: Vec<String>,
    n_json2: Vec<String>,
    n_json3: Vec<String>,
    u_uids: Vec<i64>,
    u_flags: Vec<String>,
    u_modseqs: Vec<Option<i64>>,
    r_uids: Vec<i64>,
    checkpoint: Option<Checkpoint>,
}

impl Prepared {
    /// Prepares `changes` for the mirror of `folder_id`.
    ///
    /// Messages fetched in full are inserted when new (those the mirror already has get their
    /// flags updated instead); a UID both fetched and in `flag_updates` takes the flags with the
    /// higher MODSEQ (the flag update when that cannot tell). Later entries for a UID win.
    pub fn new(folder_id: i64, changes: &Changes) -> Prepared {
        let mut updates: HashMap<u32, (&Flags, Option<u64>)> = HashMap::new();
        for u in &changes.flag_updates {
            updates.insert(u.uid, (&u.flags, u.modseq));
        }
        let mut fetched: Vec<&FetchedMessage> = changes.fetched.iter().rev().collect();
        // Stable sort of the reversed list, then dedup keeps the last entry for each UID.
        fetched.sort_by_key(|m| m.uid);
        fetched.dedup_by_key(|m| m.uid);
        let mut p = Prepared {
            checkpoint: changes.checkpoint,
            ..Prepared::default()
        };
        let folder = folder_id.to_string();
        for m in fetched {
            let (flags, modseq) = match updates.remove(&m.uid) {
                Some((f, ms)) if !(m.modseq.is_some() && ms.is_some() && m.modseq > ms) => (f, ms),
                _ => (&m.flags, m.modseq),
            };
            p.push_new(&folder, m, flags, modseq);
        }
        let mut updates: Vec<(u32, (&Flags, Option<u64>))> = updates.into_iter().collect();
        updates.sort_by_key(|u| u.0);
        for (uid, (flags, modseq)) in updates {
            p.u_uids.push(i64::from(uid));
            p.u_flags.push(pg_text_array(flags.as_slice()));
            p.u_modseqs.push(modseq.map(|m| m as i64));
        }
        p.r_uids = changes.removed.iter().map(|u| i64::from(*u)).collect();
        p.r_uids.sort_unstable();
        p.r_uids.dedup();
        p
    }

    fn push_new(&mut self, folder: &str, m: &FetchedMessage, flags: &Flags, modseq: Option<u64>) {
        let e = &m.envelope;
        let modseq = modseq.map(|x| x as i64);
        let from_name = e.from.as_ref().and_then(|a| a.name.clone());
        let from_address = e.from.as_ref().and_then(|a| a.address.clone());
        let date = e.date.map(pg_micros);
        let received = pg_micros(m.received_at);
        let size = m.size as i64;

        let mut to = String::with_capacity(64);
        to.push('[');
        for (i, a) in e.to.iter().enumerate() {
            if i > 0 {
                to.push(',');
            }
            to.push_str("{\"name\":");
            json_str(&mut to, a.name.as_deref());
            to.push_str(",\"address\":");
            json_str(&mut to, a.address.as_deref());
            to.push('}');
        }
        to.push(']');

        // The contract's message JSON, as flagpost_message_json() builds it (migration 0002),
        // members in jsonb's key order, in three pieces around what the database adds:
        // {"id", [1: "to", "uid", "date"], "etag", [2: "from" … "message_id"], "updated_at",
        // [3: "answered_at", "received_at"], "first_seen_at"}.
        let mut j1 = String::with_capacity(to.len() + 64);
        j1.push_str("\"to\":");
        j1.push_str(&to);
        j1.push_str(",\"uid\":");
        j1.push_str(&m.uid.to_string());
        j1.push_str(",\"date\":");
        json_time(&mut j1, date);
        let mut j2 = String::with_capacity(384);
        j2.push_str("\"from\":{\"name\":");
        json_str(&mut j2, from_name.as_deref());
        j2.push_str(",\"address\":");
        json_str(&mut j2, from_address.as_deref());
        j2.push_str("},\"seen\":");
        j2.push_str(if flags.seen() { "true" } else { "false" });
        j2.push_str(",\"size\":");
        j2.push_str(&size.to_string());
        j2.push_str(",\"flags\":[");
        for (i, f) in flags.as_slice().iter().enumerate() {
            if i > 0 {
                j2.push(',');
            }
            json_str(&mut j2, Some(f));
        }
        j2.push_str("],\"status\":\"");
        j2.push_str(flags.status().as_str());
        j2.push_str("\",\"flagged\":");
        j2.push_str(if flags.flagged() { "true" } else { "false" });
        j2.push_str(",\"subject\":");
        json_str(&mut j2, e.subject.as_deref());
        j2.push_str(",\"folder_id\":\"");
        j2.push_str(folder);
        j2.push_str("\",\"message_id\":");
        json_str(&mut j2, e.message_id.as_deref());
        // A new row has no answered_at (only a later change to \Answered sets it).
        let mut j3 = String::with_capacity(64);
        j3.push_str("\"answered_at\":null,\"received_at\":");
        json_time(&mut j3, Some(received));

        self.n_uids.push(i64::from(m.uid));
        self.n_modseqs.push(modseq);
        self.n_flags.push(pg_text_array(flags.as_slice()));
        self.n_mids.push(e.message_id.clone());
        self.n_subjects.push(e.subject.clone());
        self.n_fnames.push(from_name);
        self.n_faddrs.push(from_address);
        self.n_tos.push(to);
        self.n_dates.push(date);
        self.n_received.push(received);
        self.n_sizes.push(size);
        // flagpost_message_etag(): the MODSEQ where there is one, else a digest of the flags
        // (computed by the database).
        self.n_etags
            .push(modseq.map(|ms| format!("\"\\\"m{ms}\\\"\"")));
        self.n_json1.push(j1);
        self.n_json2.push(j2);
        self.n_json3.push(j3);
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.n_uids.is_empty()
            && self.u_uids.is_empty()
            && self.r_uids.is_empty()
            && self.checkpoint.is_none()
    }

    /// Sets the checkpoint written with these changes.
    pub fn set_checkpoint(&mut self, checkpoint: Option<Checkpoint>) {
        self.checkpoint = checkpoint;
    }
}

/// Applies `changes` to the mirror of `folder_id` generation `uidvalidity`, appends their events
/// and writes the checkpoint, all in one transaction: a crash replays the step, never skips it.
pub async fn apply_changes(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
    changes: &Changes,
) -> sqlx::Result<Applied> {
    apply_prepared(
        pool,
        folder_id,
        uidvalidity,
        &Prepared::new(folder_id, changes),
    )
    .await
}

/// Applies prepared changes (see [`apply_changes`]) in one statement, so in one round trip and
/// one transaction: `flagpost_apply_changes()` (migrations 0006–0008) inserts, updates and
/// deletes with their events in that order under the event writers' lock (a call that only adds
/// messages inserts its rows before taking it), notifies listeners and writes the checkpoint
/// unless UIDs of flag updates are unknown.
pub async fn apply_prepared(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
    p: &Prepared,
) -> sqlx::Result<Applied> {
    let cp = p.checkpoint;
    let mut conn = pool.acquire().await?;
    let (added, updated, removed, unknown): (i32, i32, i32, Vec<i64>) = sqlx::query_as(
        "SELECT * FROM flagpost_apply_changes($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
             $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
    )
    .bind(crate::events::EVENT_WRITER_LOCK)
    .bind(crate::events::EVENTS_CHANNEL)
    .bind(folder_id)
    .bind(i64::from(uidvalidity))
    .bind(&p.n_uids)
    .bind(&p.n_modseqs)
    .bind(&p.n_flags)
    .bind(&p.n_mids)
    .bind(&p.n_subjects)
    .bind(&p.n_fnames)
    .bind(&p.n_faddrs)
    .bind(&p.n_tos)
    .bind(&p.n_dates)
    .bind(&p.n_received)
    .bind(&p.n_sizes)
    .bind(&p.n_etags)
    .bind(&p.n_json1)
    .bind(&p.n_json2)
    .bind(&p.n_json3)
    .bind(&p.u_uids)
    .bind(&p.u_flags)
    .bind(&p.u_modseqs)
    .bind(&p.r_uids)
    .bind(cp.is_some())
    .bind(cp.map(|c| i64::from(c.uidvalidity)))
    .bind(cp.and_then(|c| c.highest_modseq).map(|m| m as i64))
    .bind(cp.and_then(|c| c.uidnext).map(i64::from))
    .fetch_one(&mut *conn)
    .await?;
    if p.n_uids.len() > 100 {
        // A chunk of a first sync takes a few MB of bind buffer, which the connection would
        // otherwise keep for good (and every connection of the pool in turn).
        conn.shrink_buffers();
    }
    Ok(Applied {
        added: added as usize,
        updated: updated as usize,
        removed: removed as usize,
        unknown: unknown.into_iter().map(|u| u as u32).collect(),
    })
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

/// The mirrored UIDs of a folder generation that lie in any of `ranges` (inclusive).
pub async fn uids_in_ranges(
    pool: &PgPool,
    folder_id: i64,
    uidvalidity: u32,
    ranges: &[(u32, u32)],
) -> sqlx::Result<Vec<u32>> {
    let lo: Vec<i64> = ranges.iter().map(|r| i64::from(r.0)).collect();
    let hi: Vec<i64> = ranges.iter().map(|r| i64::from(r.1)).collect();
    let uids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT m.uid FROM unnest($3::bigint[], $4::bigint[]) AS r(lo, hi)
         JOIN messages m ON m.folder_id = $1 AND m.uidvalidity = $2 AND m.uid BETWEEN r.lo AND r.hi
         ORDER BY m.uid",
    )
    .bind(folder_id)
    .bind(i64::from(uidvalidity))
    .bind(&lo)
    .bind(&hi)
    .fetch_all(pool)
    .await?;
    Ok(uids.into_iter().map(|u| u as u32).collect())
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
    // Two probes of the (folder_id, uidvalidity, uid) index, not a scan of the folder.
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE folder_id = $1 AND uidvalidity < $2)
             OR EXISTS (SELECT 1 FROM messages WHERE folder_id = $1 AND uidvalidity > $2)",
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
/// instead of using the (folder, uidvalidity, uid) index. Only the mirror's key columns (and
/// the row count) are sampled: about 80 ms instead of 400 ms on 100k rows; autovacuum
/// refreshes the rest soon after such a bulk insert.
pub async fn analyze(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("ANALYZE messages (folder_id, uidvalidity, uid)")
        .execute(pool)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagpost_domain::sync::{Address, Envelope};
    use flagpost_harness::TestDatabase;

    async fn setup() -> (TestDatabase, PgPool, i64) {
        let db = TestDatabase::create().await.unwrap();
        let pool = crate::connect(&db.url(), std::time::Duration::from_secs(5))
            .await
            .unwrap();
        crate::migrate(&pool).await.unwrap();
        let (row, _) = crate::folders::upsert_listed_folder(&pool, "Queue", "Queue", Some("/"))
            .await
            .unwrap();
        (db, pool, row.id)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn message(uid: u32, flags: &[&str], modseq: Option<u64>) -> FetchedMessage {
        FetchedMessage {
            uid,
            flags: Flags::new(flags.iter().copied()),
            modseq,
            received_at: at("2026-11-20T08:00:00Z"),
            size: 505,
            envelope: Envelope {
                message_id: Some(format!("<m{uid}@example.org>")),
                subject: Some(format!("Subject {uid}")),
                from: Some(Address {
                    name: Some("Customer".to_owned()),
                    address: Some("c@example.org".to_owned()),
                }),
                to: vec![Address {
                    name: None,
                    address: Some("support@example.org".to_owned()),
                }],
                date: Some(at("2026-11-20T07:59:00Z")),
            },
        }
    }

    /// The `message.added` JSON built in Rust equals what the API reads through
    /// `flagpost_message_json()`, for odd values too.
    #[tokio::test]
    async fn added_events_carry_the_same_json_as_the_api() {
        let (_db, pool, folder) = setup().await;
        let mut odd = message(7, &["\\Answered", "$Label", "\\Deleted"], None);
        odd.envelope = Envelope {
            message_id: None,
            subject: Some(
                "Quote \" backslash \\ tab\t newline\n ctrl \u{1} émoji 🦀 \u{7f}".into(),
            ),
            from: None,
            to: vec![
                Address {
                    name: Some("A \"B\"".into()),
                    address: None,
                },
                Address {
                    name: None,
                    address: Some("x@y".into()),
                },
            ],
            date: Some(at("0099-01-02T03:04:05.123456Z")),
        };
        odd.received_at = at("1969-12-31T23:59:59.5Z");
        let mut far = message(8, &["\\Flagged", "\\Seen"], Some(u64::from(u32::MAX) + 5));
        far.envelope.date = Some(at("2026-11-20T07:59:00.000001Z"));
        far.envelope.to.clear();
        // Sub-microsecond times on both sides of PostgreSQL's epoch (2000) and of 1970, years
        // of five digits and year 0 (1 BC), empty and long strings, C1 controls, line and
        // paragraph separators, and keywords that need quoting in an array literal.
        let mut edges = message(10, &["$a,b", "NIL", "{x}", "\\Draft"], Some(1));
        edges.received_at = at("1999-12-31T23:59:59.9999995Z");
        edges.envelope = Envelope {
            message_id: Some(String::new()),
            subject: Some(format!(
                "\u{85}\u{2028}\u{2029}\u{feff}{}",
                "é".repeat(50_000)
            )),
            from: Some(Address {
                name: Some(String::new()),
                address: None,
            }),
            to: Vec::new(),
            date: Some(
                chrono::NaiveDate::from_ymd_opt(12345, 6, 7)
                    .and_then(|d| d.and_hms_nano_opt(8, 9, 10, 400))
                    .unwrap()
                    .and_utc(),
            ),
        };
        let mut early = message(11, &[], None);
        early.received_at = at("1969-07-20T20:17:40.0000009Z");
        early.envelope.date = Some(at("0000-03-01T00:00:00Z"));
        early.envelope.subject = None;
        let changes = Changes {
            fetched: vec![
                message(3, &[], Some(12)),
                odd,
                far,
                message(9, &["\\Seen"], None),
                edges,
                early,
            ],
            ..Changes::default()
        };
        let applied = apply_changes(&pool, folder, 42, &changes).await.unwrap();
        assert_eq!(applied.added, 6);
        let rows: Vec<(i64, bool, String, String)> = sqlx::query_as(
            "SELECT m.uid, e.data::jsonb = jsonb_build_object('message', flagpost_message_json(m)),
                    e.data::text, flagpost_message_json(m)::text
             FROM events e JOIN messages m ON m.id = e.message_id
             WHERE e.type = 'message.added' ORDER BY e.id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [3, 7, 8, 9, 10, 11],
            "events in UID order"
        );
        for (uid, same, event, api) in rows {
            assert!(same, "uid {uid}:\n event {event}\n api   {api}");
        }

        // The API's reads render the JSON in Rust: equal to the SQL function's, for these
        // rows and once answered_at and updated_at have moved too.
        apply_changes(
            &pool,
            folder,
            42,
            &Changes {
                flag_updates: vec![FlagUpdate {
                    uid: 3,
                    flags: Flags::new(["\\Answered"]),
                    modseq: Some(13),
                }],
                ..Changes::default()
            },
        )
        .await
        .unwrap();
        let expected: Vec<(i64, serde_json::Value)> =
            sqlx::query_as("SELECT m.id, flagpost_message_json(m) FROM messages m ORDER BY m.id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(expected.len(), 6);
        let mut listed = Vec::new();
        for status in [
            crate::api::StatusFilter::Any,
            crate::api::StatusFilter::Deleted,
        ] {
            listed.extend(
                crate::api::list_messages(
                    &pool,
                    &crate::api::MessageQuery {
                        folders: &[folder],
                        status,
                        flagged: None,
                        text: None,
                        newest_first: false,
                        after: None,
                        limit: 100,
                    },
                )
                .await
                .unwrap(),
            );
        }
        assert_eq!(listed.len(), 6);
        for (id, sql) in expected {
            let one = crate::api::message(&pool, id).await.unwrap().unwrap();
            let from_list = listed.iter().find(|m| m.id == id).unwrap();
            for (what, text) in [
                ("message()", &one.json),
                ("list_messages()", &from_list.json),
            ] {
                let rust: serde_json::Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{what} of {id} is not JSON ({e}): {text}"));
                assert_eq!(rust, sql, "{what} of message {id}");
            }
            assert_eq!(Some(one.etag.as_str()), sql["etag"].as_str());
        }
    }

    /// Flag changes, expunges, unknown UIDs and the checkpoint, as one call.
    #[tokio::test]
    async fn updates_removals_unknowns_and_the_checkpoint() {
        let (_db, pool, folder) = setup().await;
        let changes = Changes {
            fetched: (1..=5).map(|u| message(u, &[], Some(10))).collect(),
            ..Changes::default()
        };
        apply_changes(&pool, folder, 42, &changes).await.unwrap();
        let cp = Checkpoint {
            uidvalidity: 42,
            highest_modseq: Some(20),
            uidnext: Some(9),
        };
        let update = |uid, flags: &[&str], modseq| FlagUpdate {
            uid,
            flags: Flags::new(flags.iter().copied()),
            modseq: Some(modseq),
        };
        // An unknown UID keeps the checkpoint back, but the rest is applied.
        let applied = apply_changes(
            &pool,
            folder,
            42,
            &Changes {
                flag_updates: vec![
                    update(2, &["\\Answered"], 15),
                    update(3, &[], 16),
                    update(8, &["\\Seen"], 17),
                ],
                removed: vec![4, 5, 77],
                checkpoint: Some(cp),
                ..Changes::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (
                applied.added,
                applied.updated,
                applied.removed,
                applied.unknown
            ),
            (0, 1, 2, vec![8])
        );
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT highest_modseq FROM folders WHERE id = $1")
                .bind(folder)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(stored, None);
        let events: Vec<(String, serde_json::Value)> =
            sqlx::query_as("SELECT type, data FROM events WHERE type LIKE 'message.%' AND type <> 'message.added' ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            events,
            [
                (
                    "message.updated".to_owned(),
                    json!({"before": {"flags": []}, "after": {"flags": ["\\Answered"],
                           "status": "answered", "flagged": false, "seen": false}, "actor": null})
                ),
                ("message.removed".to_owned(), json!({"uid": 4})),
                ("message.removed".to_owned(), json!({"uid": 5})),
            ]
        );
        let (modseq, answered): (Option<i64>, bool) = sqlx::query_as(
            "SELECT modseq, answered_at IS NOT NULL FROM messages WHERE folder_id = $1 AND uid = 3",
        )
        .bind(folder)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((modseq, answered), (Some(16), false), "MODSEQ-only change");
        // A message fetched in full that the mirror has already is a flag update; with the
        // new one the checkpoint goes in.
        let mut again = message(2, &["\\Answered", "\\Seen"], Some(21));
        again.envelope.subject = Some("changed".into());
        let applied = apply_changes(
            &pool,
            folder,
            42,
            &Changes {
                fetched: vec![again, message(8, &["\\Seen"], Some(17))],
                checkpoint: Some(cp),
                ..Changes::default()
            },
        )
        .await
        .unwrap();
        assert_eq!((applied.added, applied.updated, applied.removed), (1, 1, 0));
        assert!(applied.unknown.is_empty());
        let (stored, answered_at): (Option<i64>, bool) = sqlx::query_as(
            "SELECT f.highest_modseq, m.answered_at IS NOT NULL FROM folders f
             JOIN messages m ON m.folder_id = f.id AND m.uid = 2 WHERE f.id = $1",
        )
        .bind(folder)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((stored, answered_at), (Some(20), true));
        let counts: (i64, i64) =
            sqlx::query_as("SELECT pending, answered FROM folder_counts WHERE folder_id = $1")
                .bind(folder)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(counts, (3, 1));
    }

    /// A UID both fetched in full and in the flag updates of one step takes the flags with the
    /// higher MODSEQ (the update's on a tie or without MODSEQ), and a UID fetched twice the
    /// later fetch.
    /// When the watcher sees a change made through the API before the API has recorded it,
    /// its event names the agent (the API's announcement), and only for that change.
    #[tokio::test]
    async fn the_watcher_names_the_agent_of_an_api_write_it_sees_first() {
        let (_db, pool, folder) = setup().await;
        let changes = Changes {
            fetched: (1..=3).map(|u| message(u, &[], Some(10))).collect(),
            ..Changes::default()
        };
        apply_changes(&pool, folder, 42, &changes).await.unwrap();
        let id_of = |uid: i64| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM messages WHERE folder_id = $1 AND uid = $2",
                )
                .bind(folder)
                .bind(uid)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        // alice answers 1 and bob flags 2 through the API (announced, their STOREs in flight).
        let a =
            crate::api::announce_flag_write(&pool, id_of(1).await, &["\\Answered"], &[], "alice")
                .await
                .unwrap();
        crate::api::announce_flag_write(&pool, id_of(2).await, &["\\Flagged"], &[], "bob")
            .await
            .unwrap();
        let update = |uid, flags: &[&str], modseq| FlagUpdate {
            uid,
            flags: Flags::new(flags.iter().copied()),
            modseq: Some(modseq),
        };
        // The watcher sees: 1 answered (alice's), 2 seen only (someone else's, not bob's
        // flag), 3 answered (another client's).
        apply_changes(
            &pool,
            folder,
            42,
            &Changes {
                flag_updates: vec![
                    update(1, &["\\Answered"], 11),
                    update(2, &["\\Seen"], 12),
                    update(3, &["\\Answered"], 13),
                ],
                ..Changes::default()
            },
        )
        .await
        .unwrap();
        let actors: Vec<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT message_id, data->'actor' FROM events WHERE type = 'message.updated' ORDER BY message_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            actors,
            [
                (id_of(1).await, json!("alice")),
                (id_of(2).await, json!(null)),
                (id_of(3).await, json!(null)),
            ]
        );
        // The API then records the same flags: nothing more is written, and its announcement
        // is gone.
        let row = crate::api::record_flag_write(
            &pool,
            id_of(1).await,
            42,
            &["\\Answered".to_owned()],
            Some(11),
            "alice",
            Some(a),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(row.flags, ["\\Answered"]);
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE type = 'message.updated'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(n, 3);
        let left: Vec<String> = sqlx::query_scalar("SELECT actor FROM api_flag_writes")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, ["bob"]);
    }

    #[tokio::test]
    async fn the_newer_word_on_a_uid_wins() {
        let (_db, pool, folder) = setup().await;
        let first = Changes {
            fetched: vec![message(1, &[], Some(10)), message(2, &[], Some(10))],
            ..Changes::default()
        };
        apply_changes(&pool, folder, 42, &first).await.unwrap();
        let update = |uid, flags: &[&str], modseq| FlagUpdate {
            uid,
            flags: Flags::new(flags.iter().copied()),
            modseq,
        };
        let step = Changes {
            fetched: vec![
                message(1, &["\\Seen"], Some(30)),
                message(2, &["\\Seen"], Some(20)),
                message(3, &["\\Seen"], Some(20)),
                message(3, &["\\Flagged"], Some(21)),
                message(4, &["\\Seen"], Some(20)),
            ],
            flag_updates: vec![
                update(1, &["\\Answered"], Some(25)),
                update(2, &["\\Answered"], Some(25)),
                update(4, &["\\Answered"], None),
            ],
            ..Changes::default()
        };
        let applied = apply_changes(&pool, folder, 42, &step).await.unwrap();
        assert_eq!((applied.added, applied.updated), (2, 2));
        let flags: Vec<(u32, Flags, Option<u64>)> = uid_flags(&pool, folder, 42).await.unwrap();
        assert_eq!(
            flags,
            [
                (1, Flags::new(["\\Seen"]), Some(30)),
                (2, Flags::new(["\\Answered"]), Some(25)),
                (3, Flags::new(["\\Flagged"]), Some(21)),
                (4, Flags::new(["\\Answered"]), None),
            ]
        );
    }

    /// A wide VANISHED range is matched against the mirror, never expanded.
    #[tokio::test]
    async fn uids_in_wide_ranges_are_the_mirrored_ones() {
        let (_db, pool, folder) = setup().await;
        let changes = Changes {
            fetched: [2, 5, 9, 4_000_000]
                .into_iter()
                .map(|u| message(u, &[], Some(10)))
                .collect(),
            ..Changes::default()
        };
        apply_changes(&pool, folder, 42, &changes).await.unwrap();
        let got = uids_in_ranges(&pool, folder, 42, &[(1, 5), (4, 9), (100, u32::MAX)])
            .await
            .unwrap();
        assert_eq!(got, [2, 5, 9, 4_000_000]);
        assert!(
            uids_in_ranges(&pool, folder, 43, &[(1, u32::MAX)])
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// The event stream's catch-up reads `(after, until]` a page at a time: a page never
    /// reaches past `until`, however many events follow, and the folder filter applies.
    #[tokio::test]
    async fn bounded_event_pages_stop_at_their_upper_bound() {
        let (_db, pool, folder) = setup().await;
        let changes = Changes {
            fetched: (1..=20).map(|u| message(u, &[], Some(10))).collect(),
            ..Changes::default()
        };
        apply_changes(&pool, folder, 42, &changes).await.unwrap();
        let ids: Vec<i64> = crate::events::list_events(&pool, 0, 100, None)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert!(ids.len() >= 20, "{ids:?}");
        let until = ids[9];
        let page = crate::events::list_events_until(&pool, ids[4], until, 100, Some(&[folder]))
            .await
            .unwrap();
        assert_eq!(
            page.iter().map(|e| e.id).collect::<Vec<_>>(),
            ids[5..=9].to_vec()
        );
        let limited = crate::events::list_events_until(&pool, 0, until, 3, None)
            .await
            .unwrap();
        assert_eq!(
            limited.iter().map(|e| e.id).collect::<Vec<_>>(),
            ids[..3].to_vec()
        );
        let other = crate::events::list_events_until(&pool, 0, until, 100, Some(&[folder + 1]))
            .await
            .unwrap();
        assert!(other.is_empty());
    }

    /// A chunk of a first sync repeated after a crash (its first half committed, the checkpoint
    /// not) hits the rows it wrote before: the plain INSERT fails on them and is repeated with
    /// ON CONFLICT, so only the new half is added, a flag that changed meanwhile becomes an
    /// update, and the folder's counts hold every message once.
    #[tokio::test]
    async fn a_repeated_first_sync_chunk_adds_only_what_is_new() {
        let (_db, pool, folder) = setup().await;
        let first = Changes {
            fetched: (1..=5).map(|u| message(u, &[], Some(10))).collect(),
            ..Changes::default()
        };
        assert_eq!(
            apply_changes(&pool, folder, 42, &first)
                .await
                .unwrap()
                .added,
            5
        );
        let again = Changes {
            fetched: (1..=10)
                .map(|u| {
                    let flags: &[&str] = if u == 2 { &["\\Answered"] } else { &[] };
                    message(u, flags, Some(if u == 2 { 12 } else { 10 }))
                })
                .collect(),
            checkpoint: Some(Checkpoint {
                uidvalidity: 42,
                highest_modseq: Some(12),
                uidnext: Some(11),
            }),
            ..Changes::default()
        };
        let applied = apply_changes(&pool, folder, 42, &again).await.unwrap();
        assert_eq!(
            (
                applied.added,
                applied.updated,
                applied.removed,
                applied.unknown
            ),
            (5, 1, 0, vec![])
        );
        let summary: (i64, i64, i64, i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM messages WHERE folder_id = $1),
                    (SELECT count(*) FROM events WHERE type = 'message.added'),
                    (SELECT count(DISTINCT message_id) FROM events WHERE type = 'message.added'),
                    (SELECT count(*) FROM events WHERE type = 'message.updated'),
                    (SELECT pending + answered FROM folder_counts WHERE folder_id = $1),
                    (SELECT highest_modseq FROM folders WHERE id = $1)",
        )
        .bind(folder)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(summary, (10, 10, 10, 1, 10, Some(12)));
    }

    /// Calls that only add messages insert their rows before the event writers' lock. Writers
    /// that race on the same UIDs (say two Flagpost processes on one database) neither fail
    /// nor duplicate: each message is added once, with one `message.added` event, the other
    /// writers' fetched flags become updates, and event ids still commit in order.
    #[tokio::test]
    async fn concurrent_writers_of_the_same_new_messages_add_each_once() {
        let (_db, pool, folder) = setup().await;
        let writers: Vec<_> = (0..6u32)
            .map(|w| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    // Every writer sees the same 300 UIDs; writer w has \Seen on UID w + 1.
                    let fetched = (1..=300)
                        .map(|u| {
                            let flags: &[&str] = if u == w + 1 { &["\\Seen"] } else { &[] };
                            message(u, flags, Some(u64::from(w) + 10))
                        })
                        .collect();
                    let changes = Changes {
                        fetched,
                        ..Changes::default()
                    };
                    apply_changes(&pool, folder, 42, &changes).await
                })
            })
            .collect();
        let mut added = 0;
        for w in writers {
            let applied = w.await.unwrap().expect("no writer fails on a race");
            added += applied.added;
        }
        assert_eq!(added, 300);
        let rows: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM messages WHERE folder_id = $1),
                    (SELECT count(DISTINCT message_id) FROM events WHERE type = 'message.added'),
                    (SELECT count(*) FROM events WHERE type = 'message.added')",
        )
        .bind(folder)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(rows, (300, 300, 300));
        // The mirror ends with the flags of whichever writer went last on each UID, and every
        // flag change on the way has its event.
        let updated: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE type = 'message.updated'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(
            updated > 0,
            "the later writers' flags were applied as updates"
        );
        let counts: (i64,) =
            sqlx::query_as("SELECT pending + answered FROM folder_counts WHERE folder_id = $1")
                .bind(folder)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(counts.0, 300);
    }

    /// Migrations 0006 to 0008 apply to a database that already holds a mirror at 0005, and the
    /// mirror then goes on from there; the statement triggers that replace the messages →
    /// folders foreign key still refuse a message of an unknown folder.
    #[tokio::test]
    async fn migrations_from_0005_apply_to_a_populated_database() {
        let db = TestDatabase::create().await.unwrap();
        let pool = crate::connect(&db.url(), std::time::Duration::from_secs(5))
            .await
            .unwrap();
        // The migrations up to 0005, as a deployment of the previous version ran them.
        let old = std::env::temp_dir().join(format!("flagpost-migrations-{}", std::process::id()));
        std::fs::create_dir_all(&old).unwrap();
        for m in crate::MIGRATOR.iter().filter(|m| m.version <= 5) {
            let name = format!("{:04}_{}.sql", m.version, m.description.replace(' ', "_"));
            std::fs::write(old.join(name), m.sql.as_bytes()).unwrap();
        }
        let previous = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
        assert_eq!(previous.iter().count(), 5);
        previous.run(&pool).await.unwrap();
        std::fs::remove_dir_all(&old).unwrap();
        let folder: i64 = sqlx::query_scalar(
            "INSERT INTO folders (imap_name, name, uidvalidity, highest_modseq, uidnext)
             VALUES ('Queue', 'Queue', 42, 5, 3) RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO messages (folder_id, uidvalidity, uid, modseq, flags, received_at)
             VALUES ($1, 42, 1, 4, '{}', now()), ($1, 42, 2, 5, '{\\Seen}', now())",
        )
        .bind(folder)
        .execute(&pool)
        .await
        .unwrap();

        sqlx::query(
            "INSERT INTO events (type, folder_id, data)
             VALUES ('folder.added', $1, '{\"folder\": {\"name\": \"Queue ✓\", \"id\": \"1\"}}')",
        )
        .bind(folder)
        .execute(&pool)
        .await
        .unwrap();

        assert_eq!(crate::migrate(&pool).await.unwrap(), [6, 7, 8]);
        // 0007: the event written as jsonb reads back the same from the json column.
        let data: serde_json::Value =
            sqlx::query_scalar("SELECT data FROM events WHERE type = 'folder.added'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(data, json!({"folder": {"name": "Queue ✓", "id": "1"}}));
        let update = FlagUpdate {
            uid: 1,
            flags: Flags::new(["\\Answered"]),
            modseq: Some(6),
        };
        let applied = apply_changes(
            &pool,
            folder,
            42,
            &Changes {
                fetched: vec![message(3, &[], Some(7))],
                flag_updates: vec![update],
                removed: vec![2],
                checkpoint: Some(Checkpoint {
                    uidvalidity: 42,
                    highest_modseq: Some(7),
                    uidnext: Some(4),
                }),
            },
        )
        .await
        .unwrap();
        assert_eq!((applied.added, applied.updated, applied.removed), (1, 1, 1));
        let uids: Vec<(u32, Flags, Option<u64>)> = uid_flags(&pool, folder, 42).await.unwrap();
        assert_eq!(
            uids,
            [
                (1, Flags::new(["\\Answered"]), Some(6)),
                (3, Flags::default(), Some(7))
            ]
        );
        let counts: (i64, i64) =
            sqlx::query_as("SELECT pending, answered FROM folder_counts WHERE folder_id = $1")
                .bind(folder)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(counts, (1, 1));

        let orphan = sqlx::query(
            "INSERT INTO messages (folder_id, uidvalidity, uid, received_at)
             VALUES ($1 + 1000, 42, 1, now())",
        )
        .bind(folder)
        .execute(&pool)
        .await
        .unwrap_err();
        assert_eq!(
            orphan.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("23503"),
            "foreign_key_violation: {orphan}"
        );
        let orphan = apply_changes(
            &pool,
            folder + 1000,
            42,
            &Changes {
                fetched: vec![message(1, &[], None)],
                ..Changes::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            orphan.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("23503"),
            "foreign_key_violation: {orphan}"
        );
    }
}
