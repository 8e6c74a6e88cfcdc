//! The mirror engine against a real Dovecot: every change another IMAP client makes reaches
//! PostgreSQL and the change feed, across restarts, kicks, server restarts and UIDVALIDITY
//! changes.

use std::time::Duration;

use flagpost_e2e::{
    SERVICE_USER, flagpost_env, message, mirror_state, support_fixture, wait_mirror_equal,
};
use flagpost_harness::dovecot::capabilities_without;
use flagpost_harness::{Dovecot, DovecotOptions, ImapFixture, TestDatabase};
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

/// Waits until `n` folders are `live` (watched over IDLE).
async fn wait_live(pool: &PgPool, n: i64, timeout: Duration, serve: &Serve) {
    flagpost_e2e::eventually(timeout, "live folders", || async {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM folders WHERE sync_state = 'live'")
                .fetch_one(pool)
                .await?;
        Ok((live == n).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
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
    // The restart's sync of Queue asked the server only for what changed. (The log line is
    // written just after the commit: wait for it.)
    let queue_id: i64 = sqlx::query_scalar("SELECT id FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .unwrap();
    let sync = flagpost_e2e::eventually(WAIT, "the sync log line for Queue", || async {
        Ok(serve
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "folder synced" && v["fields"]["folder.id"] == queue_id
            }))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    assert_eq!(sync["fields"]["kind"], "Incremental", "{sync}");
    let records = sync["fields"]["flag_records"].as_u64().unwrap();
    assert!(
        records <= 4,
        "the resync read {records} records for 4 changes: {sync}"
    );
    assert_eq!(sync["fields"]["fetched"], 1, "{sync}");
    assert!(serve.stop().await.unwrap().success());
}

/// Many messages arriving while Flagpost is stopped (more than a resync fetches inline, so
/// they go through the chunked fetch after the flag changes, in enough chunks that two are
/// written at once) are mirrored each exactly once, and the checkpoint ends up covering them.
#[tokio::test]
async fn a_mass_arrival_while_stopped_is_mirrored_without_loss_or_repeat() {
    let dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let mut uids = Vec::new();
    for i in 0..5 {
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

    let arrivals = 6_000;
    let received = std::time::SystemTime::now() - Duration::from_secs(3600);
    dovecot
        .seed_maildir("support", "Queue", arrivals, |i| {
            (
                message(&format!("bulk {i}"), "bulk@example.org"),
                received,
                if i % 3 == 0 { "S" } else { "" }.to_owned(),
            )
        })
        .unwrap();
    dovecot
        .store("alice", QUEUE, uids[1], "+FLAGS (\\Answered)")
        .await
        .unwrap();

    let serve = Serve::start(&env).await.unwrap();
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    let queue_id: i64 = sqlx::query_scalar("SELECT id FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .unwrap();
    let sync = flagpost_e2e::eventually(WAIT, "the sync log line for Queue", || async {
        Ok(serve
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["fields"]["message"] == "folder synced" && v["fields"]["folder.id"] == queue_id
            }))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    assert_eq!(sync["fields"]["kind"], "Incremental", "{sync}");
    assert_eq!(sync["fields"]["fetched"], arrivals, "{sync}");
    // One message.added per mirrored message, none twice.
    let (messages, added, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages WHERE folder_id = $1),
                count(*), count(DISTINCT message_id)
         FROM events WHERE folder_id = $1 AND type = 'message.added'",
    )
    .bind(queue_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((messages, added, distinct), (6_005, 6_005, 6_005));
    let (modseq, uidnext): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT highest_modseq, uidnext FROM folders WHERE id = $1")
            .bind(queue_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let max_uid: i64 = sqlx::query_scalar("SELECT max(uid) FROM messages WHERE folder_id = $1")
        .bind(queue_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        modseq.is_some() && uidnext > Some(max_uid),
        "checkpoint {modseq:?} {uidnext:?}"
    );
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
    // Dovecot tells connected clients only on the next select: force one with a kick (again
    // while none shows, in case the kick found the watcher between connections).
    let polls = std::sync::atomic::AtomicU32::new(0);
    flagpost_e2e::eventually(Duration::from_secs(30), "folder.reset", || async {
        if event_types(&pool, mark)
            .await
            .iter()
            .any(|e| e.1 == "folder.reset")
        {
            return Ok(Some(()));
        }
        // about every half second (polls are 20 ms apart)
        if polls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(25)
        {
            dovecot.kick(SERVICE_USER).await?;
        }
        Ok(None)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
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

async fn fallback_mirror(capabilities: Vec<String>) {
    let dovecot = Dovecot::start_with(DovecotOptions {
        capabilities: Some(capabilities),
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
    let caps = capabilities_without(|c| matches!(c, "CONDSTORE" | "QRESYNC"));
    fallback_mirror(caps).await;
}

#[tokio::test]
async fn a_server_with_condstore_but_without_qresync_finds_expunges_by_uid_sets() {
    let caps = capabilities_without(|c| c == "QRESYNC");
    fallback_mirror(caps).await;
}

#[tokio::test]
async fn a_server_without_idle_is_mirrored_exactly_by_polling() {
    let caps = capabilities_without(|c| c == "IDLE");
    fallback_mirror(caps).await;
}

/// Without IDLE on the server every folder is polled, and the connection budget still holds:
/// with `FLAGPOST_IMAP_MAX_CONNECTIONS=1` and four folders, one folder is polled on its own
/// connection and three on the shared one (two connections of the service account, not four),
/// and changes in every folder are mirrored. The server does not offer UNSELECT either, so the
/// shared poller leaves each folder with CLOSE before its next STATUS.
#[tokio::test]
async fn a_server_without_idle_keeps_to_the_connection_budget() {
    let caps = capabilities_without(|c| matches!(c, "IDLE" | "UNSELECT"));
    let dovecot = Dovecot::start_with(DovecotOptions {
        capabilities: Some(caps),
        ..DovecotOptions::default()
    })
    .await
    .unwrap();
    for (u, p) in [("support", "support-pw"), (SERVICE_USER, "service-pw")] {
        dovecot.add_user(u, p).unwrap();
    }
    let names = ["Queue", "Billing", "Sales", "Returns"];
    for name in names {
        dovecot.create_folder("support", name).await.unwrap();
        dovecot
            .set_acl("support", name, SERVICE_USER, "lr")
            .await
            .unwrap();
        dovecot
            .append("support", name, &message(name, "c@example.org"))
            .await
            .unwrap();
    }
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_IMAP_MAX_CONNECTIONS", "1".to_owned()));
    env.push(("FLAGPOST_IMAP_POLL_SECS", "1".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    for name in names {
        let folder = format!("shared/support/{name}");
        wait_mirror_equal(&dovecot, &pool, SERVICE_USER, &folder, WAIT)
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
            .unwrap();
    }
    flagpost_e2e::eventually(WAIT, "four polled folders on two connections", || async {
        let polling: i64 =
            sqlx::query_scalar("SELECT count(*) FROM folders WHERE sync_state = 'polling'")
                .fetch_one(&pool)
                .await?;
        // `doveadm who`: "user  count  proto  (pids)  (ips)" per user and protocol.
        let who = dovecot.doveadm(&["who", SERVICE_USER]).await?;
        let sessions: usize = who
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.first() == Some(&SERVICE_USER)).then(|| w.get(1)?.parse::<usize>().ok())?
            })
            .sum();
        Ok((polling == 4 && sessions == 2).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    for name in names {
        dovecot
            .append("support", name, &message("later", "d@example.org"))
            .await
            .unwrap();
    }
    for name in names {
        let folder = format!("shared/support/{name}");
        let state = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, &folder, WAIT)
            .await
            .unwrap();
        assert_eq!(state.len(), 2, "{folder}");
    }
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn folders_beyond_the_connection_budget_are_polled_and_still_mirrored() {
    let dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_IMAP_MAX_CONNECTIONS", "1".to_owned()));
    env.push(("FLAGPOST_IMAP_POLL_SECS", "1".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    let states = || async {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT imap_name, sync_state FROM folders ORDER BY id")
                .fetch_all(&pool)
                .await?;
        Ok::<_, anyhow::Error>(rows)
    };
    let got = flagpost_e2e::eventually(WAIT, "one live and one polled folder", || async {
        let s = states().await?;
        let live = s.iter().filter(|r| r.1 == "live").count();
        let polling = s.iter().filter(|r| r.1 == "polling").count();
        Ok((live == 1 && polling == 1).then_some(s))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    let polled = got.iter().find(|r| r.1 == "polling").unwrap().0.clone();
    let owner_name = polled.trim_start_matches("shared/support/").to_owned();
    let uid = dovecot
        .append("alice", &polled, &message("polled", "p@example.org"))
        .await
        .unwrap();
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, &polled, WAIT)
        .await
        .unwrap();
    dovecot
        .store("alice", &polled, uid, "+FLAGS (\\Answered)")
        .await
        .unwrap();
    dovecot.expunge("support", &owner_name, uid).await.unwrap();
    dovecot
        .append("alice", &polled, &message("polled 2", "p@example.org"))
        .await
        .unwrap();
    let state = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, &polled, WAIT)
        .await
        .unwrap();
    assert_eq!(state.len(), 1);
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn hostile_mail_and_odd_folder_names_are_mirrored_without_killing_the_watcher() {
    let dovecot = support_fixture().await.unwrap();
    let odd = ["Café Crème", "with space", "R&D \"quoted\"", "日本語"];
    for name in odd {
        dovecot.create_folder("support", name).await.unwrap();
        dovecot
            .set_acl("support", name, SERVICE_USER, "lr")
            .await
            .unwrap();
    }
    let long_subject = "x".repeat(100 * 1024);
    let hostile: Vec<Vec<u8>> = vec![
        b"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\nSubject: Caf\xe9 8-bit \xff\xfe\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <8bit@example.org>\r\n\r\nbody\r\n".to_vec(),
        b"From: broken@example.org\r\nSubject: =?UTF-8?B?!!!?= and =?unknown?Q?x?= and =?UTF-8?Q?unterminated\r\n\r\nbody\r\n".to_vec(),
        format!("From: long@example.org\r\nSubject: {long_subject}\r\n\r\nbody\r\n").into_bytes(),
        b"Subject: no from, no date, no message-id\r\n\r\nbody\r\n".to_vec(),
        b"\r\nno headers at all\r\n".to_vec(),
        b"From: \"O'Brien, \\\"Pat\\\"\" <pat@example.org>\r\nSubject: He said \"hi\" \\ bye\r\n\r\nbody\r\n".to_vec(),
        b"From: \"Evil\r\n Folded\" <evil@example.org>\r\nTo: undisclosed-recipients:;\r\nSubject: group syntax\r\nDate: yesterday at noon\r\n\r\nbody\r\n".to_vec(),
        // 8-bit text makes the server send the subject as a literal, whose backslashes are
        // data, not escapes.
        "From: raw@example.org\r\nSubject: Café \\\"q\\\" C:\\\\new\r\n\r\nbody\r\n".as_bytes().to_vec(),
    ];
    for raw in &hostile {
        dovecot.append("support", "Queue", raw).await.unwrap();
        dovecot.append("support", odd[0], raw).await.unwrap();
    }
    let db = TestDatabase::create().await.unwrap();
    let serve = Serve::start(&flagpost_env(&dovecot, &db)).await.unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
        .unwrap();
    for name in odd {
        let mailbox = format!("shared/support/{name}");
        wait_mirror_equal(&dovecot, &pool, SERVICE_USER, &mailbox, WAIT)
            .await
            .unwrap();
        let shown: String = sqlx::query_scalar("SELECT name FROM folders WHERE imap_name = $1")
            .bind(flagpost_domain::encode_mailbox_name(&mailbox))
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{mailbox}: {e}; log:\n{}", serve.log_text()));
        assert_eq!(shown, mailbox, "the readable name is decoded");
    }
    let subjects: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT m.subject FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.imap_name = $1 ORDER BY m.uid",
    )
    .bind(QUEUE)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(subjects.len(), hostile.len());
    let s0 = subjects[0].as_deref().unwrap();
    assert!(s0.starts_with("Café 8-bit"), "{s0:?}");
    let s1 = subjects[1].as_deref().unwrap();
    assert!(
        s1.contains("=?UTF-8?B?!!!?="),
        "broken words stay literal: {s1:?}"
    );
    let s2 = subjects[2].as_deref().unwrap();
    assert!(
        s2.chars().count() <= 1001 && s2.ends_with('…'),
        "{}",
        s2.len()
    );
    for s in subjects.iter().flatten() {
        assert!(!s.chars().any(char::is_control), "{s:?}");
    }
    let from: Option<String> = sqlx::query_scalar(
        "SELECT m.from_name FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.imap_name = $1 ORDER BY m.uid LIMIT 1",
    )
    .bind(QUEUE)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(from.as_deref(), Some("André"));
    let s6 = subjects[5].as_deref().unwrap();
    assert_eq!(
        s6, "He said \"hi\" \\ bye",
        "quoted-string escapes are undone"
    );
    assert_eq!(
        subjects[7].as_deref(),
        Some(r#"Café \"q\" C:\\new"#),
        "a literal is taken as it is"
    );

    // The watcher is alive: a later change still arrives.
    dovecot
        .store("support", "Queue", 1, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    let errors: i64 = sqlx::query_scalar("SELECT count(*) FROM folders WHERE sync_state = 'error'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(errors, 0, "{}", serve.log_text());
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn a_refused_login_shows_as_error_and_stops_retrying() {
    let mut dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let serve = Serve::start(&flagpost_env(&dovecot, &db)).await.unwrap();
    let pool = pool(&db).await;
    let state = |pool: PgPool| async move {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT sync_state, sync_error FROM folders WHERE imap_name = $1")
                .bind(QUEUE)
                .fetch_optional(&pool)
                .await?;
        Ok::<_, anyhow::Error>(row.unwrap_or_default())
    };
    flagpost_e2e::eventually(WAIT, "a live folder", || async {
        Ok((state(pool.clone()).await?.0 == "live").then_some(()))
    })
    .await
    .unwrap();
    // The service account's password changes under Flagpost, and the server restarts (which
    // cuts every session and surely re-reads the password file).
    dovecot.add_user(SERVICE_USER, "rotated-password").unwrap();
    dovecot.restart().await.unwrap();
    let error: String = flagpost_e2e::eventually(
        Duration::from_secs(40),
        "the folder to show the login error",
        || async {
            let (s, error) = state(pool.clone()).await?;
            let error = error.unwrap_or_default();
            Ok((s == "error" && error.contains("refused the login")).then_some(error))
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\nflagpost:\n{}\ndovecot:\n{}",
            serve.log_text(),
            dovecot.log()
        )
    })
    .unwrap();
    assert!(!error.contains("service-pw") && !error.contains("rotated-password"));
    // No retry storm: the log shows one failed login per watcher, not a loop.
    let attempts = || dovecot.log().matches("auth failed").count();
    let before = attempts();
    let quiet = flagpost_e2e::eventually(Duration::from_secs(5), "more login attempts", || async {
        Ok((attempts() > before + 1).then_some(()))
    })
    .await;
    assert!(
        quiet.is_err(),
        "Flagpost kept retrying a refused login:\n{}",
        dovecot.log()
    );
    assert!(serve.stop().await.unwrap().success());
}

/// The support fixture with one message in Queue, and a `serve` that has mirrored it.
struct Mirrored {
    dovecot: Dovecot,
    db: TestDatabase,
    env: Vec<(&'static str, String)>,
    serve: Serve,
    pool: PgPool,
}

async fn mirrored_queue() -> Mirrored {
    let dovecot = support_fixture().await.unwrap();
    dovecot
        .append("support", "Queue", &message("kept", "k@example.org"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    Mirrored {
        dovecot,
        db,
        env,
        serve,
        pool,
    }
}

#[tokio::test]
async fn serve_starts_and_reports_errors_while_the_imap_server_is_down() {
    let Mirrored {
        mut dovecot,
        db: _db,
        env,
        serve,
        pool,
    } = mirrored_queue().await;
    assert!(serve.stop().await.unwrap().success());

    dovecot.stop().await.unwrap();
    let mut env = env;
    env.push(("FLAGPOST_FOLDER_POLL_SECS", "2".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let states = flagpost_e2e::eventually(WAIT, "folders in error", || async {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT sync_state, sync_error FROM folders ORDER BY id")
                .fetch_all(&pool)
                .await?;
        Ok(rows.iter().all(|r| r.0 == "error").then_some(rows))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    assert!(
        states
            .iter()
            .all(|r| r.1.as_deref().is_some_and(|e| !e.is_empty())),
        "{states:?}"
    );
    // The mirror is still served: the health endpoint answers and the rows are there.
    let mut s = tokio::net::TcpStream::connect(serve.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert_eq!(mirror_state(&pool, QUEUE).await.unwrap().len(), 1);

    // When the server comes back, the watchers recover on their own.
    dovecot.restart().await.unwrap();
    wait_live(&pool, 2, Duration::from_secs(90), &serve).await;
    assert!(serve.stop().await.unwrap().success());
}

/// SIGTERM ends `serve` promptly and cleanly also when the IMAP server has just gone away under
/// its watchers (they are reconnecting, backing off, or half way through a sync).
#[tokio::test]
async fn serve_stops_on_sigterm_right_after_the_imap_server_went_away() {
    let Mirrored {
        mut dovecot,
        db: _db,
        serve,
        ..
    } = mirrored_queue().await;
    dovecot.stop().await.unwrap();
    let log = serve.log.clone();
    let status = serve.stop().await;
    let log = log.lock().unwrap().clone();
    let status = status.map_err(|e| anyhow::anyhow!("{e}\n{log}")).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
}

/// A `serve` whose stderr (its log) is a pipe nobody reads any more, say a log collector that
/// died, goes on mirroring and stops cleanly on SIGTERM: a log line that cannot be written is
/// dropped, it does not take down the task that logged it.
#[tokio::test]
async fn serve_with_a_closed_log_pipe_keeps_mirroring_and_stops_on_sigterm() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = tokio::process::Command::new(crate::flagpost_bin());
    cmd.arg("serve").env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in flagpost_env(&dovecot, &db) {
        cmd.env(k, v);
    }
    cmd.env("FLAGPOST_LISTEN", format!("127.0.0.1:{port}"))
        .env("FLAGPOST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    // Nobody reads the log from here on.
    drop(child.stderr.take());
    flagpost_e2e::eventually(WAIT, "flagpost serve to listen", || async {
        Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop))
    })
    .await
    .unwrap();
    let pool = pool(&db).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    dovecot
        .append(
            "support",
            "Queue",
            &message("after the log broke", "c@example.org"),
        )
        .await
        .unwrap();
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve ends within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Listens on a free loopback port and hands each accepted connection, with a new connection
/// to `upstream` on 127.0.0.1, to `carry` (a relay's own logic); returns the port.
async fn relay(
    upstream: u16,
    carry: impl Fn(tokio::net::TcpStream, tokio::net::TcpStream) + Send + 'static,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            if let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                carry(client, server);
            }
        }
    });
    port
}

/// A TCP relay that can silence the connections it carries without closing them: a link that
/// went dead somewhere on the way (no FIN, no RST, no data), the case IDLE alone never notices.
struct SilencingRelay {
    port: u16,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SilencingRelay {
    async fn start(upstream: u16) -> SilencingRelay {
        use std::sync::atomic::Ordering;
        let epoch = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let e = epoch.clone();
        let port = relay(upstream, move |client, server| {
            let born = e.load(Ordering::SeqCst);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut r, mut w) in [(cr, sw), (sr, cw)] {
                let e = e.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Once silenced, this connection's bytes go nowhere.
                        if e.load(Ordering::SeqCst) == born && w.write_all(&buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                });
            }
        })
        .await;
        SilencingRelay { port, epoch }
    }

    /// Silences every connection open now; new ones pass.
    fn silence_current(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A plaintext relay to Dovecot's IMAP port that plays a server which does not push other
/// sessions' flag changes during IDLE (RFC 2177 lets a server stay silent about them): every
/// untagged FETCH the server sends while the client is in IDLE is dropped; EXISTS, EXPUNGE
/// and everything else pass.
struct QuietFlagsRelay {
    port: u16,
    /// FETCH responses dropped so far.
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl QuietFlagsRelay {
    async fn start(upstream: u16) -> QuietFlagsRelay {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        let port = relay(upstream, move |client, server| {
            let idle = Arc::new(AtomicBool::new(false));
            let (cr, mut cw) = client.into_split();
            let (sr, mut sw) = server.into_split();
            // Client to server, line by line, noting when IDLE starts and ends.
            let in_idle = idle.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(cr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let text = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
                    if text == "DONE" {
                        in_idle.store(false, Ordering::SeqCst);
                    } else if text.ends_with(" IDLE") {
                        in_idle.store(true, Ordering::SeqCst);
                    }
                    if sw.write_all(&line).await.is_err() {
                        break;
                    }
                }
            });
            // Server to client, one whole response (literals included) at a time.
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sr);
                loop {
                    let mut response = Vec::new();
                    loop {
                        let start = response.len();
                        match r.read_until(b'\n', &mut response).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        // A line ending in `{n}` is followed by n bytes of literal.
                        let line = String::from_utf8_lossy(&response[start..]).into_owned();
                        let Some(n) = line
                            .trim_end()
                            .strip_suffix('}')
                            .and_then(|l| l.rsplit_once('{'))
                            .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok())
                        else {
                            break;
                        };
                        let mut literal = vec![0u8; n];
                        if r.read_exact(&mut literal).await.is_err() {
                            return;
                        }
                        response.extend_from_slice(&literal);
                    }
                    let untagged_fetch = response.starts_with(b"* ")
                        && String::from_utf8_lossy(&response)
                            .split_whitespace()
                            .nth(2)
                            .is_some_and(|w| w.eq_ignore_ascii_case("FETCH"));
                    if untagged_fetch && idle.load(Ordering::SeqCst) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    if cw.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        })
        .await;
        QuietFlagsRelay { port, dropped }
    }
}

/// A server that does not push other sessions' flag changes during IDLE (the relay above drops
/// them) still has them mirrored: each quiet IDLE spell ends with a look at what changed, with
/// MODSEQs a `CHANGEDSINCE` fetch, without them a full flag scan every fifth spell. Before
/// that, such a change waited for the folder's next pushed change or reconnect.
async fn unpushed_flag_changes_are_mirrored(capabilities: Option<Vec<String>>) {
    let dovecot = Dovecot::start_with(DovecotOptions {
        capabilities,
        ..DovecotOptions::default()
    })
    .await
    .unwrap();
    for (u, p) in [("support", "support-pw"), (SERVICE_USER, "service-pw")] {
        dovecot.add_user(u, p).unwrap();
    }
    dovecot.create_folder("support", "Queue").await.unwrap();
    dovecot
        .set_acl("support", "Queue", SERVICE_USER, "lr")
        .await
        .unwrap();
    let uid = dovecot
        .append("support", "Queue", &message("quiet", "q@example.org"))
        .await
        .unwrap();
    let relay = QuietFlagsRelay::start(dovecot.imap_port()).await;
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.retain(|(k, _)| !matches!(*k, "FLAGPOST_IMAP_PORT" | "FLAGPOST_IMAP_TLS"));
    env.push(("FLAGPOST_IMAP_PORT", relay.port.to_string()));
    env.push(("FLAGPOST_IMAP_TLS", "none".to_owned()));
    env.push(("FLAGPOST_IMAP_IDLE_CHECK_SECS", "1".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_live(&pool, 1, WAIT, &serve).await;
    wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .unwrap();
    dovecot
        .store("support", "Queue", uid, "+FLAGS (\\Answered \\Flagged)")
        .await
        .unwrap();
    let state = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
        .unwrap();
    assert!(
        state[&uid].contains("\\Answered") && state[&uid].contains("\\Flagged"),
        "{state:?}"
    );
    // The server did push the change, and the relay kept it from Flagpost.
    assert!(
        relay.dropped.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the relay dropped no FETCH: the test proved nothing"
    );
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn flag_changes_a_server_does_not_push_during_idle_are_mirrored() {
    unpushed_flag_changes_are_mirrored(None).await;
}

#[tokio::test]
async fn flag_changes_a_server_without_condstore_does_not_push_are_mirrored() {
    let caps = capabilities_without(|c| matches!(c, "CONDSTORE" | "QRESYNC"));
    unpushed_flag_changes_are_mirrored(Some(caps)).await;
}

#[tokio::test]
async fn a_silent_dead_link_is_noticed_and_reconnected() {
    let dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let relay = SilencingRelay::start(dovecot.imaps_port()).await;
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.retain(|(k, _)| *k != "FLAGPOST_IMAP_PORT");
    env.push(("FLAGPOST_IMAP_PORT", relay.port.to_string()));
    env.push(("FLAGPOST_IMAP_IDLE_CHECK_SECS", "2".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_live(&pool, 2, WAIT, &serve).await;
    // The links go silent; a change made now can only arrive over a new connection.
    relay.silence_current();
    let uid = dovecot
        .append(
            "alice",
            QUEUE,
            &message("during the outage", "o@example.org"),
        )
        .await
        .unwrap();
    let state = wait_mirror_equal(
        &dovecot,
        &pool,
        SERVICE_USER,
        QUEUE,
        Duration::from_secs(60),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    assert!(state.contains_key(&uid));
    assert!(
        serve.log_text().contains("timeout") || serve.log_text().contains("no answer"),
        "the dead link should have been declared dead:\n{}",
        serve.log_text()
    );
    assert!(serve.stop().await.unwrap().success());
}

#[tokio::test]
async fn readyz_answers_503_while_the_watchers_log_out_after_sigterm() {
    let dovecot = support_fixture().await.unwrap();
    grant_alice(&dovecot).await;
    let relay = SilencingRelay::start(dovecot.imaps_port()).await;
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.retain(|(k, _)| *k != "FLAGPOST_IMAP_PORT");
    env.push(("FLAGPOST_IMAP_PORT", relay.port.to_string()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_live(&pool, 2, WAIT, &serve).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/readyz", serve.addr);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    // The IMAP links go silent, so the watchers' DONE and LOGOUT wait for their timeouts:
    // the window in which the instance is stopping but not gone.
    relay.silence_current();
    serve.terminate().unwrap();
    let status = flagpost_e2e::eventually(
        Duration::from_secs(5),
        "/readyz to answer 503 while shutting down",
        || async {
            let r = http.get(&url).send().await?;
            Ok((r.status() != 200).then_some(r.status()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    assert_eq!(status, 503, "{}", serve.log_text());
    // Other requests are still answered meanwhile.
    let live = http
        .get(format!("http://{}/livez", serve.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let log = serve.log.clone();
    let exit = serve.wait_exit().await.unwrap();
    assert!(exit.success(), "{}", log.lock().unwrap());
}

/// Another server layout (as on Cyrus or Courier): `.` as the hierarchy separator, and the
/// shared folders under a prefix with a space, `Shared Folders.<owner>.`. Discovery with a
/// pattern in that layout, the first sync, IDLE news and the ACL mirror work as with `/`.
#[tokio::test]
async fn a_dot_separated_layout_under_a_prefix_with_a_space_is_mirrored() {
    let dovecot = Dovecot::start_with(flagpost_harness::dovecot::DovecotOptions {
        extra_config: "namespace inbox {\n  separator = .\n}\nnamespace shared {\n  separator = .\n  prefix = Shared Folders.%%u.\n}\n".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for (user, pw) in [
        ("support", "support-pw"),
        (SERVICE_USER, "service-pw"),
        ("alice", "alice-pw"),
    ] {
        dovecot.add_user_ready(user, pw).await.unwrap();
    }
    for folder in ["Queue", "Queue.Urgent"] {
        dovecot.create_folder("support", folder).await.unwrap();
        for (who, rights) in [(SERVICE_USER, "lra"), ("alice", "lrswipte")] {
            dovecot
                .set_acl("support", folder, who, rights)
                .await
                .unwrap();
        }
    }
    let queue = "Shared Folders.support.Queue";
    let urgent = "Shared Folders.support.Queue.Urgent";
    let first = dovecot
        .append("alice", queue, &message("before start", "a@example.org"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.retain(|(k, _)| *k != "FLAGPOST_FOLDERS");
    env.push(("FLAGPOST_FOLDERS", "Shared Folders.support.*".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    for mailbox in [queue, urgent] {
        wait_mirror_equal(&dovecot, &pool, SERVICE_USER, mailbox, WAIT)
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
            .unwrap();
    }
    let names: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT imap_name, delimiter FROM folders ORDER BY imap_name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        names,
        vec![
            (queue.to_owned(), Some(".".to_owned())),
            (urgent.to_owned(), Some(".".to_owned()))
        ]
    );
    // IDLE news from another client: a new message and a flag change.
    let second = dovecot
        .append("alice", urgent, &message("while live", "b@example.org"))
        .await
        .unwrap();
    dovecot
        .store("alice", queue, first, "+FLAGS (\\Answered)")
        .await
        .unwrap();
    let q = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, queue, WAIT)
        .await
        .unwrap();
    assert!(q[&first].contains("\\Answered"), "{q:?}");
    let u = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, urgent, WAIT)
        .await
        .unwrap();
    assert!(u.contains_key(&second));
    // The ACL mirror: alice's entry, so alice may read the folder through the API.
    let api = flagpost_e2e::http::Api::new(serve.addr);
    let token = api.login("alice", "alice-pw").await.unwrap();
    let listed = flagpost_e2e::eventually(WAIT, "alice's folders", || async {
        let r = api.get("/api/v1/folders", &token).await?;
        let n = r.json["folders"].as_array().map_or(0, Vec::len);
        Ok((n == 2).then_some(r.json))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    assert!(
        listed["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == queue && f["my_rights"] == "lrswipte"),
        "{listed}"
    );
    assert!(serve.stop().await.unwrap().success());
}

/// A server without the ACL extension (RFC 4314): the mirror still works, the ACL is recorded
/// as unknown without asking (no refused MYRIGHTS or GETACL each poll, one warning in all), so
/// staff see no folder while a service admin sees every one.
#[tokio::test]
async fn a_server_without_acl_is_mirrored_and_only_admins_see_its_folders() {
    let caps = capabilities_without(|c| c == "ACL" || c.starts_with("RIGHTS="));
    let dovecot = Dovecot::start_with(DovecotOptions {
        capabilities: Some(caps),
        ..DovecotOptions::default()
    })
    .await
    .unwrap();
    for (user, pw) in [
        ("support", "support-pw"),
        (SERVICE_USER, "service-pw"),
        ("alice", "alice-pw"),
        ("carol", "carol-pw"),
    ] {
        dovecot.add_user_ready(user, pw).await.unwrap();
    }
    dovecot.create_folder("support", "Queue").await.unwrap();
    for (who, rights) in [(SERVICE_USER, "lr"), ("alice", "lrsw")] {
        dovecot
            .set_acl("support", "Queue", who, rights)
            .await
            .unwrap();
    }
    let uid = dovecot
        .append("support", "Queue", &message("no ACL here", "n@example.org"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_ADMINS", "carol".to_owned()));
    env.push(("FLAGPOST_ACL_POLL_SECS", "1".to_owned()));
    env.push(("FLAGPOST_FOLDER_POLL_SECS", "1".to_owned()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    let state = wait_mirror_equal(&dovecot, &pool, SERVICE_USER, QUEUE, WAIT)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
        .unwrap();
    assert!(state.contains_key(&uid));
    let api = flagpost_e2e::http::Api::new(serve.addr);
    let carol = api.login("carol", "carol-pw").await.unwrap();
    let alice = api.login("alice", "alice-pw").await.unwrap();
    // Several ACL polls pass (one a second) while the admin's view is awaited.
    flagpost_e2e::eventually(WAIT, "the admin's folder list", || async {
        let r = api.get("/api/v1/folders", &carol).await?;
        Ok(r.text.contains("shared/support/Queue").then_some(()))
    })
    .await
    .unwrap();
    // Each discovery pass (with its ACL pass, both due every second here) logs in afresh:
    // wait for three of them besides the watcher's own login.
    flagpost_e2e::eventually(WAIT, "three discovery passes", || async {
        let logins = dovecot
            .log()
            .matches(&format!("Login: user=<{SERVICE_USER}>"))
            .count();
        Ok((logins >= 4).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dovecot.log()))
    .unwrap();
    let known: bool = sqlx::query_scalar("SELECT acl_known FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!known);
    let r = api.get("/api/v1/folders", &alice).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["folders"], serde_json::json!([]), "{}", r.text);
    let log = serve.log_text();
    assert_eq!(
        log.matches("does not offer the ACL extension").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("ACL not readable"), "{log}");
    assert!(serve.stop().await.unwrap().success());
}
