//! A randomized model test of the mirror: hundreds of operations by another client, server-side
//! disconnects, UIDVALIDITY changes and Flagpost restarts over several folders; afterwards the
//! mirror must equal a fresh FETCH of the server, and replaying the event log must rebuild the
//! mirror exactly. The seed is printed; set `FLAGPOST_MODEL_SEED` to replay a run.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use flagpost_e2e::{
    FlagSet, SERVICE_USER, flag_set, flagpost_env, message, server_state, support_fixture,
    wait_mirror_equal,
};
use flagpost_harness::{ImapFixture, TestDatabase};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Serve;

const FOLDERS: [&str; 3] = ["Queue", "Billing", "Partners"];
const OPS: usize = 320;
const FLAGS: [&str; 4] = ["\\Answered", "\\Flagged", "\\Seen", "$Escalated"];

fn shared(folder: &str) -> String {
    format!("shared/support/{folder}")
}

#[tokio::test]
async fn random_operations_end_with_an_exact_mirror_and_a_replayable_feed() {
    let seed = flagpost_e2e::test_seed("FLAGPOST_MODEL_SEED");
    println!("model test seed: {seed} (FLAGPOST_MODEL_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let dovecot = support_fixture().await.unwrap();
    dovecot.create_folder("support", "Partners").await.unwrap();
    dovecot
        .set_acl("support", "Partners", SERVICE_USER, "lra")
        .await
        .unwrap();
    for f in FOLDERS {
        dovecot
            .set_acl("support", f, "alice", "lrswipte")
            .await
            .unwrap();
    }
    let mut uids: HashMap<&str, Vec<u32>> = HashMap::new();
    for f in FOLDERS {
        for i in 0..5 {
            let uid = dovecot
                .append(
                    "support",
                    f,
                    &message(&format!("{f} seed {i}"), "s@example.org"),
                )
                .await
                .unwrap();
            uids.entry(f).or_default().push(uid);
        }
    }
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);
    let mut serve = Some(Serve::start(&env).await.unwrap());
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5))
        .await
        .unwrap();

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for op in 0..OPS {
        let folder = FOLDERS[rng.random_range(0..FOLDERS.len())];
        let mailbox = shared(folder);
        let list = uids.entry(folder).or_default();
        let roll = rng.random_range(0..100);
        let kind = match roll {
            0..=39 if !list.is_empty() => "store",
            40..=64 => "append",
            65..=77 if !list.is_empty() => "expunge",
            78..=84 if !list.is_empty() => "move",
            85..=92 => "kick",
            93..=96 => "uidvalidity",
            97..=99 => "restart",
            _ => "append",
        };
        *counts.entry(kind).or_default() += 1;
        let ctx = || format!("seed {seed}, op {op} ({kind} on {folder})");
        match kind {
            "store" => {
                let uid = list[rng.random_range(0..list.len())];
                let flag = FLAGS[rng.random_range(0..FLAGS.len())];
                let sign = if rng.random_bool(0.6) { '+' } else { '-' };
                dovecot
                    .store("alice", &mailbox, uid, &format!("{sign}FLAGS ({flag})"))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
            }
            "append" => {
                let flags = if rng.random_bool(0.3) {
                    "\\Flagged"
                } else {
                    ""
                };
                let uid = dovecot
                    .append_with_flags(
                        "alice",
                        &mailbox,
                        flags,
                        &message(&format!("op {op}"), "m@example.org"),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                list.push(uid);
            }
            "expunge" => {
                let i = rng.random_range(0..list.len());
                let uid = list.swap_remove(i);
                dovecot
                    .expunge("alice", &mailbox, uid)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
            }
            "move" => {
                let i = rng.random_range(0..list.len());
                let uid = list.swap_remove(i);
                let target = FOLDERS.iter().copied().find(|f| *f != folder).unwrap();
                let mut c = dovecot.client("alice").await.unwrap();
                c.command_ok(&format!("SELECT \"{mailbox}\""))
                    .await
                    .unwrap();
                c.command_ok(&format!("UID MOVE {uid} \"{}\"", shared(target)))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                c.logout().await;
                let now = server_state(&dovecot, "alice", &shared(target))
                    .await
                    .unwrap();
                uids.insert(target, now.keys().copied().collect());
            }
            "kick" => {
                dovecot
                    .kick(SERVICE_USER)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
            }
            "uidvalidity" => {
                let uv = rng.random_range(1..u32::MAX);
                dovecot
                    .set_uidvalidity("support", folder, uv)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx()));
                // Dovecot tells a session that has the folder open only when it selects again.
                dovecot.kick(SERVICE_USER).await.unwrap();
            }
            "restart" => {
                let running = serve.take().unwrap();
                assert!(running.stop().await.unwrap().success(), "{}", ctx());
                serve = Some(Serve::start(&env).await.unwrap());
            }
            _ => unreachable!(),
        }
    }
    println!("operations: {counts:?}");

    for f in FOLDERS {
        wait_mirror_equal(
            &dovecot,
            &pool,
            SERVICE_USER,
            &shared(f),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "seed {seed}: {e}\nlog:\n{}",
                serve.as_ref().unwrap().log_text()
            )
        });
    }

    // Replaying the whole feed rebuilds exactly the mirror.
    let events: Vec<(String, i64, Option<i64>, serde_json::Value)> =
        sqlx::query_as("SELECT type, folder_id, message_id, data FROM events ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut replay: BTreeMap<i64, (i64, FlagSet)> = BTreeMap::new();
    let flags_of =
        |v: &serde_json::Value| flag_set(v.as_array().unwrap().iter().map(|f| f.as_str().unwrap()));
    for (kind, folder, message, data) in &events {
        match kind.as_str() {
            "message.added" => {
                replay.insert(
                    message.unwrap(),
                    (*folder, flags_of(&data["message"]["flags"])),
                );
            }
            "message.updated" => {
                let entry = replay.get_mut(&message.unwrap()).unwrap_or_else(|| {
                    panic!("seed {seed}: update of unknown message {message:?}")
                });
                assert_eq!(
                    entry.1,
                    flags_of(&data["before"]["flags"]),
                    "seed {seed}: 'before' disagrees with the replay"
                );
                entry.1 = flags_of(&data["after"]["flags"]);
            }
            "message.removed" => {
                assert!(
                    replay.remove(&message.unwrap()).is_some(),
                    "seed {seed}: removal of unknown message"
                );
            }
            "folder.reset" | "folder.removed" => replay.retain(|_, (f, _)| f != folder),
            _ => {}
        }
    }
    let mirror: Vec<(i64, i64, Vec<String>)> =
        sqlx::query_as("SELECT id, folder_id, flags FROM messages ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mirror: BTreeMap<i64, (i64, FlagSet)> = mirror
        .into_iter()
        .map(|(id, f, flags)| (id, (f, flag_set(flags.iter().map(String::as_str)))))
        .collect();
    assert_eq!(
        replay, mirror,
        "seed {seed}: replaying the events does not rebuild the mirror"
    );
    // The counts the triggers kept through all of it equal a fresh count.
    let kept: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT f.id, COALESCE(c.pending, 0), COALESCE(c.answered, 0), COALESCE(c.flagged, 0),
                COALESCE(c.deleted, 0)
         FROM folders f LEFT JOIN folder_counts c ON c.folder_id = f.id ORDER BY f.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let fresh: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT f.id, count(m.id) FILTER (WHERE m.status = 'pending'),
                count(m.id) FILTER (WHERE m.status = 'answered'),
                count(m.id) FILTER (WHERE m.flagged AND NOT m.deleted),
                count(m.id) FILTER (WHERE m.deleted)
         FROM folders f LEFT JOIN messages m ON m.folder_id = f.id GROUP BY f.id ORDER BY f.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        kept, fresh,
        "seed {seed}: the kept folder counts drifted from a fresh count"
    );
    assert!(serve.take().unwrap().stop().await.unwrap().success());
}
