//! The change feed's promise: a reader that resumes with `after = N` never misses or repeats an
//! event, even while many writers commit concurrently (ids are handed out before commit, so
//! without the writer lock they could become visible out of order).

use std::collections::BTreeSet;
use std::time::Duration;

use flagpost_harness::TestDatabase;
use flagpost_store::events::{EventType, NewEvent, append_events, list_events};
use rand::Rng;
use serde_json::json;

#[tokio::test]
async fn concurrent_writers_never_make_a_resuming_reader_miss_or_repeat_an_event() {
    let db = TestDatabase::create().await.unwrap();
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    flagpost_store::migrate(&pool).await.unwrap();
    let mut folders = Vec::new();
    for i in 0..20 {
        let (row, _) = flagpost_store::folders::upsert_listed_folder(
            &pool,
            &format!("f{i}"),
            &format!("f{i}"),
            Some("/"),
        )
        .await
        .unwrap();
        folders.push(row.id);
    }
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");

    let done = tokio_util::sync::CancellationToken::new();
    // Writers and readers get pools of their own, so readers are never starved of connections
    // while writers hold transactions open.
    let writer_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&db.url())
        .await
        .unwrap();
    let reader_pool = flagpost_store::connect(&db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    let mut writers = Vec::new();
    for (w, folder) in folders.iter().copied().enumerate() {
        let pool = writer_pool.clone();
        writers.push(tokio::spawn(async move {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ w as u64);
            for n in 0..25 {
                let mut tx = pool.begin().await.unwrap();
                let count = rng.random_range(1..=3);
                let events: Vec<NewEvent> = (0..count)
                    .map(|k| NewEvent {
                        kind: EventType::MessageUpdated,
                        folder_id: folder,
                        message_id: None,
                        data: json!({ "writer": w, "n": n, "k": k }),
                    })
                    .collect();
                append_events(&mut tx, &events).await.unwrap();
                // Hold the transaction open a little after the insert: without ordering,
                // later ids would commit first.
                let pause = rng.random_range(0.0..0.015);
                sqlx::query("SELECT pg_sleep($1)")
                    .bind(pause)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    let mut readers = Vec::new();
    for r in 0..4 {
        let pool = reader_pool.clone();
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let start: i64 = {
                let max: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                if max == 0 {
                    0
                } else {
                    rand::rng().random_range(0..=max)
                }
            };
            let mut after = start;
            let mut seen = Vec::new();
            loop {
                let finished = done.is_cancelled();
                let page = list_events(&pool, after, 7 + r, None).await.unwrap();
                if page.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for e in &page {
                    seen.push(e.id);
                }
                after = page.last().unwrap().id;
            }
            (start, seen)
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.cancel();
    let all: Vec<i64> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    for r in readers {
        let (start, seen) = r.await.unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: ids not strictly increasing"
        );
        let expected: Vec<i64> = all.iter().copied().filter(|id| *id > start).collect();
        let got: BTreeSet<i64> = seen.iter().copied().collect();
        let missing: Vec<i64> = expected
            .iter()
            .copied()
            .filter(|id| !got.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: a reader from {start} missed {missing:?}"
        );
        assert_eq!(
            seen.len(),
            expected.len(),
            "seed {seed}: duplicates or extras"
        );
    }
    pool.close().await;
}

#[tokio::test]
async fn twenty_folders_changing_at_once_reach_feed_readers_without_gaps_or_repeats() {
    use flagpost_e2e::{SERVICE_USER, flagpost_env, message, support_fixture, wait_mirror_equal};

    let dovecot = support_fixture().await.unwrap();
    let folders: Vec<String> = (0..20).map(|i| format!("Team{i:02}")).collect();
    for f in &folders {
        dovecot.create_folder("support", f).await.unwrap();
        dovecot
            .set_acl("support", f, SERVICE_USER, "lr")
            .await
            .unwrap();
    }
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_FOLDERS", "shared/support/Team*".to_owned()));
    env.push(("FLAGPOST_IMAP_MAX_CONNECTIONS", "20".to_owned()));
    let serve = crate::Serve::start(&env).await.unwrap();
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    flagpost_e2e::eventually(Duration::from_secs(30), "20 live folders", || async {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM folders WHERE sync_state = 'live'")
                .fetch_one(&pool)
                .await?;
        Ok((live == 20).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();

    let done = tokio_util::sync::CancellationToken::new();
    let mut readers = Vec::new();
    for r in 0..4i64 {
        let pool = pool.clone();
        let done = done.clone();
        readers.push(tokio::spawn(async move {
            let max: i64 = sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM events")
                .fetch_one(&pool)
                .await
                .unwrap();
            let start = rand::rng().random_range(0..=max);
            let (mut after, mut seen) = (start, Vec::new());
            loop {
                let finished = done.is_cancelled();
                let page = list_events(&pool, after, 5 + r, None).await.unwrap();
                if page.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                seen.extend(page.iter().map(|e| e.id));
                after = page.last().unwrap().id;
            }
            (start, seen)
        }));
    }
    let dovecot = std::sync::Arc::new(dovecot);
    let mut writers = Vec::new();
    for f in folders.clone() {
        let dovecot = dovecot.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..6 {
                let uid = dovecot
                    .append(
                        "support",
                        &f,
                        &message(&format!("{f} {i}"), "w@example.org"),
                    )
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    dovecot
                        .store("support", &f, uid, "+FLAGS (\\Answered)")
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    for f in &folders {
        wait_mirror_equal(
            &*dovecot,
            &pool,
            SERVICE_USER,
            &format!("shared/support/{f}"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
    done.cancel();
    let all: Vec<i64> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let added: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE type = 'message.added'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(added, 120, "every append became one message.added");
    for r in readers {
        let (start, seen) = r.await.unwrap();
        let expected: Vec<i64> = all.iter().copied().filter(|id| *id > start).collect();
        assert_eq!(
            seen, expected,
            "a reader from {start} saw a different sequence"
        );
    }
    assert!(serve.stop().await.unwrap().success());
}
