//! The mirror engine against a real Dovecot: every change another IMAP client makes reaches
//! PostgreSQL and the change feed, across restarts, kicks, server restarts and UIDVALIDITY
//! changes.

use std::time::Duration;

use flagpost_e2e::{
    SERVICE_USER, flagpost_env, message, mirror_state, support_fixture, wait_mirror_equal,
};
use flagpost_harness::{Dovecot, DovecotOptions, TestDatabase};
use flagpost_store::PgPool;

use crate::Serve;

const QUEUE: &str = "shared/support/Queue";
const BILLING: &str = "shared/support/Billing";
/// Dovecot pushes IDLE news after ~0.5 s; every wait here allows far more.
const WAIT: Duration = Duration::from_secs(15);

async fn pool(db: &TestDatabase) -> PgPool {
    flagpost_store::connect(&db.url(), Duration::from_secs(5))
        .await
        .unwrap()
}

async fn event_types(pool: &PgPool, after: i64) -> Vec<(i64, String, Option<i64>)> {
    sqlx::query_as("SELECT id, type, message_id FROM events WHERE id > $1 ORDER BY id")
        .bind(after)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn last_event(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until an event of `kind` appears after `after`.
async fn wait_event(pool: &PgPool, after: i64, kind: &str) -> i64 {
    flagpost_e2e::eventually(WAIT, kind, || async {
        Ok(event_types(pool, after)
            .await
            .into_iter()
            .find(|e| e.1 == kind)
            .map(|e| e.0))
    })
    .await
    .unwrap()
}

async fn grant_alice(dovecot: &Dovecot) {
    dovecot
        .set_acl("support", "Queue", "alice", "lrswipte")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Billing", "alice", "lrswipte")
        .await
        .unwrap();
}

#[tokio::test]
async fn every_change_by_another_client_reaches_the_mirror_and_the_feed() {
    let dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let first = dovecot
        .append("support", "Queue", &message("first", "a@example.org"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let serve = Serve::start(&flagpost_env(&dovecot, &db)).await.unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
        .unwrap();
    let types: Vec<String> = event_types(&pool, 0)
        .await
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert!(types.contains(&"folder.added".to_owned()), "{types:?}");
    assert!(types.contains(&"message.added".to_owned()), "{types:?}");

    // Each flag set and cleared by alice shows up as a message.updated.
    for change in [
        "+FLAGS (\\Answered)",
        "+FLAGS (\\Flagged)",
        "+FLAGS (\\Seen)",
        "-FLAGS (\\Answered \\Flagged)",
        "-FLAGS (\\Seen)",
    ] {
        let mark = last_event(&pool).await;
        dovecot.store("alice", QUEUE, first, change).await.unwrap();
        wait_event(&pool, mark, "message.updated").await;
        wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
            .await
            .unwrap();
    }
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE uid = $1")
        .bind(i64::from(first))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "pending");

    // Append, expunge, move.
    let mark = last_event(&pool).await;
    let second = dovecot
        .append("alice", QUEUE, &message("second", "b@example.org"))
        .await
        .unwrap();
    wait_event(&pool, mark, "message.added").await;
    let mark = last_event(&pool).await;
    dovecot.expunge("alice", QUEUE, first).await.unwrap();
    wait_event(&pool, mark, "message.removed").await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();

    let mut c = dovecot.client("alice").await.unwrap();
    c.command_ok(&format!("SELECT \"{QUEUE}\"")).await.unwrap();
    c.command_ok(&format!("UID MOVE {second} \"{BILLING}\""))
        .await
        .unwrap();
    c.logout().await;
    let queue = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    assert!(queue.is_empty(), "{queue:?}");
    let billing = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, BILLING, WAIT)
        .await
        .unwrap();
    assert_eq!(billing.len(), 1);

    // The added message carries the envelope.
    let (subject, from): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT subject, from_address FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.imap_name = $1")
            .bind(BILLING)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(subject.as_deref(), Some("second"));
    assert_eq!(from.as_deref(), Some("b@example.org"));

    let status = serve.stop().await.unwrap();
    assert!(status.success(), "serve exited with {status}");
}

#[tokio::test]
async fn changes_made_while_stopped_are_resynced_incrementally() {
    let dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let mut uids = Vec::new();
    for i in 0..40 {
        uids.push(
            dovecot
                .append(
                    "support",
                    "Queue",
                    &message(&format!("m{i}"), "c@example.org"),
                )
                .await
                .unwrap(),
        );
    }
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    assert!(serve.stop().await.unwrap().success());

    // While Flagpost is down: two flag changes, one append, one expunge.
    dovecot
        .store("alice", QUEUE, uids[3], "+FLAGS (\\Answered)")
        .await
        .unwrap();
    dovecot
        .store("alice", QUEUE, uids[7], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    dovecot
        .append("alice", QUEUE, &message("late", "d@example.org"))
        .await
        .unwrap();
    dovecot.expunge("alice", QUEUE, uids[9]).await.unwrap();

    let serve = Serve::start(&env).await.unwrap();
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    // The restart's sync of Queue asked the server only for what changed.
    let log = serve.log_text();
    let queue_id: i64 = sqlx::query_scalar("SELECT id FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .unwrap();
    let sync = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "folder synced" && v["fields"]["folder.id"] == queue_id)
        .unwrap_or_else(|| panic!("no sync log line for Queue:\n{log}"));
    assert_eq!(sync["fields"]["kind"], "Incremental", "{sync}");
    let records = sync["fields"]["flag_records"].as_u64().unwrap();
    assert!(
        records <= 4,
        "the resync read {records} records for 4 changes: {sync}"
    );
    assert_eq!(sync["fields"]["fetched"], 1, "{sync}");
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn kicks_server_restarts_and_uidvalidity_changes_lose_nothing() {
    let mut dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let uid = dovecot
        .append("support", "Queue", &message("x", "e@example.org"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let serve = Serve::start(&flagpost_env(&dovecot, &db)).await.unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();

    // A server-side disconnect during IDLE, then a change.
    flagpost_e2e::eventually(WAIT, "a live watcher", || async {
        let live: bool =
            sqlx::query_scalar("SELECT sync_state = 'live' FROM folders WHERE imap_name = $1")
                .bind(QUEUE)
                .fetch_one(&pool)
                .await?;
        Ok(live.then_some(()))
    })
    .await
    .unwrap();
    assert!(dovecot.kick(SERVICE_USER).await.unwrap() >= 1);
    dovecot
        .store("alice", QUEUE, uid, "+FLAGS (\\Answered)")
        .await
        .unwrap();
    wait_mirror_equal(
        &dovecot,
        &pool,
        SERVICE_USER,
        QUEUE,
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    // The whole server goes away and comes back; changes meanwhile are caught up.
    dovecot.stop().await.unwrap();
    dovecot.restart().await.unwrap();
    dovecot
        .store("alice", QUEUE, uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    dovecot
        .append("alice", QUEUE, &message("y", "f@example.org"))
        .await
        .unwrap();
    wait_mirror_equal(
        &dovecot,
        &pool,
        SERVICE_USER,
        QUEUE,
        Duration::from_secs(90),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();

    // A new UIDVALIDITY: folder.reset and a mirror of the new generation.
    let mark = last_event(&pool).await;
    let uv: i64 = sqlx::query_scalar("SELECT uidvalidity FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .unwrap();
    dovecot
        .set_uidvalidity("support", "Queue", (uv as u32).wrapping_add(77))
        .await
        .unwrap();
    // Dovecot tells connected clients only on the next select: force one with a kick.
    dovecot.kick(SERVICE_USER).await.unwrap();
    wait_event(&pool, mark, "folder.reset").await;
    wait_mirror_equal(
        &dovecot,
        &pool,
        SERVICE_USER,
        QUEUE,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let new_uv: i64 = sqlx::query_scalar("SELECT uidvalidity FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(new_uv, i64::from((uv as u32).wrapping_add(77)));
    assert_eq!(mirror_state(&pool, QUEUE).await.unwrap().len(), 2);
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn acls_are_mirrored_and_followed() {
    let dovecot = support_fixture().await.unwrap();
    dovecot
        .set_acl("support", "Queue", "alice", "lrs")
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_ACL_POLL_SECS", "1".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    let acl_of = |folder: &'static str| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT a.identifier, a.rights FROM acl_entries a JOIN folders f ON f.id = a.folder_id
                 WHERE f.imap_name = $1 ORDER BY 1",
            )
            .bind(folder)
            .fetch_all(&pool)
            .await
            .unwrap();
            rows
        }
    };
    flagpost_e2e::eventually(WAIT, "Queue's ACL", || async {
        let acl = acl_of(QUEUE).await;
        Ok((acl
            == vec![
                ("alice".to_owned(), "lrs".to_owned()),
                (SERVICE_USER.to_owned(), "lra".to_owned()),
            ])
        .then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {:?}\n{}", (), serve.log_text()))
    .unwrap();
    // Without `a` on Billing, its ACL is unknown and only MYRIGHTS is kept.
    let (known, rights): (bool, Option<String>) =
        sqlx::query_as("SELECT acl_known, service_rights FROM folders WHERE imap_name = $1")
            .bind(BILLING)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!known);
    assert_eq!(rights.as_deref(), Some("lr"));

    // An ACL change made over IMAP reaches the mirror within the poll interval.
    let mark = last_event(&pool).await;
    dovecot
        .set_acl("support", "Queue", "bob", "lr")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", "-alice", "s")
        .await
        .unwrap();
    wait_event(&pool, mark, "folder.acl_changed").await;
    flagpost_e2e::eventually(WAIT, "Queue's new ACL", || async {
        let acl = acl_of(QUEUE).await;
        Ok(acl
            .iter()
            .any(|e| e.0 == "-alice" && e.1 == "s")
            .then_some(()))
    })
    .await
    .unwrap();
    let acl = acl_of(QUEUE).await;
    assert!(
        acl.contains(&("bob".to_owned(), "lr".to_owned())),
        "{acl:?}"
    );
    assert!(serve.stop().await.unwrap().success());
}

async fn fallback_mirror(capabilities: Vec<&str>) {
    let dovecot = Dovecot::start_with(DovecotOptions {
        capabilities: Some(capabilities.into_iter().map(str::to_owned).collect()),
        ..DovecotOptions::default()
    })
    .await
    .unwrap();
    for (u, p) in [
        ("support", "support-pw"),
        (SERVICE_USER, "service-pw"),
        ("alice", "alice-pw"),
    ] {
        dovecot.add_user(u, p).unwrap();
    }
    dovecot.create_folder("support", "Queue").await.unwrap();
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lra")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", "alice", "lrswipte")
        .await
        .unwrap();
    let uid = dovecot
        .append("support", "Queue", &message("a", "a@example.org"))
        .await
        .unwrap();
    let gone = dovecot
        .append("support", "Queue", &message("b", "b@example.org"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_IMAP_POLL_SECS", "1".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    dovecot
        .store("alice", QUEUE, uid, "+FLAGS (\\Answered \\Flagged)")
        .await
        .unwrap();
    dovecot.expunge("alice", QUEUE, gone).await.unwrap();
    dovecot
        .append("alice", QUEUE, &message("c", "c@example.org"))
        .await
        .unwrap();
    let state = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
        .unwrap();
    assert_eq!(state.len(), 2);
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn a_server_without_condstore_is_mirrored_exactly() {
    let caps: Vec<&str> = flagpost_harness::dovecot::DEFAULT_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "CONDSTORE" && *c != "QRESYNC")
        .collect();
    fallback_mirror(caps).await;
}

#[tokio::test]
async fn a_server_without_idle_is_mirrored_exactly_by_polling() {
    let caps: Vec<&str> = flagpost_harness::dovecot::DEFAULT_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "IDLE")
        .collect();
    fallback_mirror(caps).await;
}
