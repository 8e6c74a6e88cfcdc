//! Flagpost against a second IMAP server: Cyrus IMAP (the harness's [`Cyrus`]), so that the
//! mirror, the rights and the writes are not only proven on Dovecot. Cyrus differs where it
//! matters: shared folders are plain top-level mailboxes (`shared/support/Queue`), its rights
//! strings carry the obsolete `c`/`d`, new mailboxes get `anyone lrs`, negative entries are
//! common, and a session keeps a mailbox selected after another client deleted it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use flagpost_domain::Rights;
use flagpost_e2e::http::{Api, Reply};
use flagpost_e2e::{
    SERVICE_USER, eventually, flagpost_env, message, server_state_with, wait_mirror_equal,
};
use flagpost_harness::imap_client::quote;
use flagpost_harness::{Cyrus, ImapClient, ImapFixture, TestDatabase};
use serde_json::json;

use crate::Serve;

const QUEUE: &str = "shared/support/Queue";
const WAIT: Duration = Duration::from_secs(20);

/// A Cyrus with the service account, the `support` owner and two agents, and the shared folder
/// `shared/support/Queue`: `anyone lrs` (Cyrus's default), `flagpost lrswa`, `support` all but
/// `a`, `alice lrsw`, `-bob s` (bob keeps `l r` from `anyone`, loses `s`), and
/// `authenticated lrswi`, which on Cyrus names a user, not every logged-in one, and `carol w`
/// (carol: `anyone`'s `l r s` plus `w`).
async fn cyrus_fixture() -> Result<Cyrus> {
    cyrus_fixture_with(false).await
}

/// [`cyrus_fixture`], optionally with Cyrus's alternate namespace (see [`Cyrus::start_with`]).
async fn cyrus_fixture_with(altnamespace: bool) -> Result<Cyrus> {
    let cyrus = Cyrus::start_with(altnamespace).await?;
    for (user, pw) in [
        (SERVICE_USER, "service-pw"),
        ("support", "support-pw"),
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        cyrus.add_user(user, pw).await?;
    }
    cyrus
        .admin(&[
            "CREATE shared",
            "CREATE shared/support",
            "CREATE shared/support/Queue",
            "SETACL shared/support/Queue flagpost lrswa",
            "SETACL shared/support/Queue support lrswipkxte",
            "SETACL shared/support/Queue alice lrsw",
            "SETACL shared/support/Queue -bob s",
            // RFC 4314's union rule: carol's own entry adds to `anyone`'s (Dovecot's rule
            // would let it replace them).
            "SETACL shared/support/Queue carol w",
            // Not a special identifier on Cyrus (RFC 4314 leaves it to the server): only a
            // user of that name would get these rights, bob does not.
            "SETACL shared/support/Queue authenticated lrswi",
        ])
        .await?;
    Ok(cyrus)
}

fn env(cyrus: &Cyrus, db: &TestDatabase) -> Vec<(&'static str, String)> {
    let mut env = flagpost_env(cyrus, db);
    env.extend([
        ("FLAGPOST_ADMINS", Cyrus::ADMIN.to_owned()),
        ("FLAGPOST_FOLDER_POLL_SECS", "1".to_owned()),
        ("FLAGPOST_ACL_POLL_SECS", "1".to_owned()),
    ]);
    env
}

/// Waits until the mirror of `QUEUE` equals what `support` sees on the server.
async fn wait_equal(cyrus: &Cyrus, pool: &sqlx::PgPool, what: &str) -> Result<()> {
    wait_mirror_equal(cyrus, pool, "support", QUEUE, WAIT)
        .await
        .map(drop)
        .with_context(|| format!("waiting for {what}"))
}

/// What Cyrus's own `MYRIGHTS` grants the user of `c` on `mailbox`, in Flagpost's letters
/// (`c`/`d` dropped, as the contract's rights strings do); `None` when Cyrus answers NO, which
/// it does for a user without `l` ("Mailbox does not exist").
async fn myrights_in(c: &mut ImapClient, mailbox: &str) -> Result<Option<Rights>> {
    let r = c.command(&format!("MYRIGHTS {}", quote(mailbox)?)).await?;
    if !r.is_ok() {
        return Ok(None);
    }
    let Some(line) = r.untagged.iter().find(|l| l.starts_with("MYRIGHTS ")) else {
        bail!("no MYRIGHTS in {:?}", r.untagged);
    };
    let letters = line
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_matches('"');
    Ok(Some(Rights::from_server(letters)))
}

/// [`myrights_in`] on `QUEUE` for `user`, in a session of its own, as a rights string.
async fn myrights(cyrus: &Cyrus, user: &str) -> Result<String> {
    let mut c = cyrus.client(user).await?;
    let rights = myrights_in(&mut c, QUEUE).await?;
    c.logout().await;
    match rights {
        Some(r) => Ok(r.to_string()),
        None => bail!("{user} has no right on {QUEUE}"),
    }
}

/// `PATCH /messages/{id}` with `body` as `token`.
async fn patch(api: &Api, token: &str, id: &str, body: serde_json::Value) -> Result<Reply> {
    api.send(
        "PATCH",
        &format!("/api/v1/messages/{id}"),
        Some(token),
        Some(&body),
        &[],
    )
    .await
}

/// The caller's `my_rights` on the only folder it sees.
async fn listed_rights(api: &Api, token: &str) -> Result<(String, String)> {
    let r = api.get("/api/v1/folders", token).await?;
    let folders = r.json["folders"].as_array().cloned().unwrap_or_default();
    let [f] = folders.as_slice() else {
        bail!("expected one folder, got {}", r.text);
    };
    Ok((
        f["id"].as_str().unwrap_or_default().to_owned(),
        f["my_rights"].as_str().unwrap_or_default().to_owned(),
    ))
}

#[tokio::test]
async fn a_cyrus_server_is_mirrored_live_and_rights_and_writes_follow_its_acl() -> Result<()> {
    let cyrus = cyrus_fixture().await?;
    let db = TestDatabase::create().await?;
    let mut support = cyrus.client("support").await?;
    let first = support
        .append(
            QUEUE,
            "",
            &message("Printer on fire", "Ann <ann@example.org>"),
        )
        .await?;
    let second = support
        .append(
            QUEUE,
            "\\Flagged",
            &message("Refund", "Ben <ben@example.org>"),
        )
        .await?;
    support.logout().await;

    // `check` recognises the server by its ID, and with it the rule its ACLs follow.
    let out = crate::run_flagpost(&["check"], &env(&cyrus, &db)).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("server")
            && l.contains("Cyrus IMAPD (RFC 4314's union rule (Cyrus))")),
        "{stdout}"
    );

    let serve = Serve::start(&env(&cyrus, &db)).await?;
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5)).await?;
    wait_equal(&cyrus, &pool, "the first sync of the Cyrus folder").await?;

    // Another client's changes arrive through IDLE: a flag set by an agent, an expunge.
    let mut alice = cyrus.client("alice").await?;
    alice.command_ok(&format!("SELECT {QUEUE}")).await?;
    alice
        .command_ok(&format!("UID STORE {first} +FLAGS (\\Answered)"))
        .await?;
    alice.logout().await;
    wait_equal(&cyrus, &pool, "alice's \\Answered").await?;
    let mut support = cyrus.client("support").await?;
    support.command_ok(&format!("SELECT {QUEUE}")).await?;
    support
        .command_ok(&format!("UID STORE {second} +FLAGS (\\Deleted)"))
        .await?;
    support.command_ok(&format!("UID EXPUNGE {second}")).await?;
    support.logout().await;
    wait_equal(&cyrus, &pool, "the expunge").await?;
    let state: String = sqlx::query_scalar("SELECT sync_state FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await?;
    assert_eq!(state, "live", "watched through IDLE, not polled");

    // Rights: what the API computes from Cyrus's ACL is what Cyrus's MYRIGHTS says.
    let api = Api::new(serve.addr);
    for (user, pw) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        let token = api.login(user, pw).await?;
        let expected = myrights(&cyrus, user).await?;
        let (_, listed) = listed_rights(&api, &token).await?;
        assert_eq!(
            listed, expected,
            "{user}'s my_rights against Cyrus's MYRIGHTS"
        );
    }
    assert_eq!(
        myrights(&cyrus, "bob").await?,
        "lr",
        "the fixture's -bob s applies"
    );
    assert_eq!(
        myrights(&cyrus, "carol").await?,
        "lrsw",
        "Cyrus adds carol's entry up"
    );

    // An admin changes bob's entry through the API: SETACL on Cyrus, then the mirror.
    let admin = api
        .login(Cyrus::ADMIN, &cyrus.password(Cyrus::ADMIN)?)
        .await?;
    let (id, _) = listed_rights(&api, &admin).await?;
    let r = api
        .send(
            "PUT",
            &format!("/api/v1/folders/{id}/acl/bob"),
            Some(&admin),
            Some(&json!({"rights": "lrw"})),
            &[],
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        myrights(&cyrus, "bob").await?,
        "lrw",
        "Cyrus applied the SETACL"
    );
    let bob = api.login("bob", "bob-pw").await?;
    eventually(WAIT, "bob's new rights in the API", || async {
        Ok((listed_rights(&api, &bob).await?.1 == "lrw").then_some(()))
    })
    .await?;

    // With `w`, bob flags the message through the API: UID STORE on Cyrus.
    let msgs = api
        .get(&format!("/api/v1/messages?folder={id}"), &bob)
        .await?;
    let mid = msgs.json["messages"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let r = patch(&api, &bob, &mid, json!({"flagged": true})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let server = server_state_with(cyrus.client("support").await?, QUEUE).await?;
    assert!(
        server[&first].contains("\\Flagged") && server[&first].contains("\\Answered"),
        "the STORE reached Cyrus: {server:?}"
    );
    // And `s` stays refused: bob's negative entry still takes it away.
    let r = patch(&api, &bob, &mid, json!({"seen": true})).await?;
    assert_eq!(r.status, 403, "{}", r.text);
    serve.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_mailbox_deleted_and_created_again_under_a_live_watcher_is_mirrored_anew() -> Result<()> {
    // Cyrus keeps the watcher's session on the deleted mailbox (no BYE, no untagged NO) and its
    // IDLE then reports nothing about the new one under the same name: only Flagpost's STATUS
    // cross-check at each discovery pass can notice the new UIDVALIDITY.
    let cyrus = cyrus_fixture().await?;
    let db = TestDatabase::create().await?;
    let mut support = cyrus.client("support").await?;
    for subject in ["Old one", "Old two"] {
        support
            .append(QUEUE, "", &message(subject, "Ann <ann@example.org>"))
            .await?;
    }
    support.logout().await;
    let serve = Serve::start(&env(&cyrus, &db)).await?;
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5)).await?;
    wait_equal(&cyrus, &pool, "the first sync").await?;
    let before: i64 = sqlx::query_scalar("SELECT uidvalidity FROM folders WHERE imap_name = $1")
        .bind(QUEUE)
        .fetch_one(&pool)
        .await?;

    cyrus
        .admin(&[
            // Cyrus admins may delete only with `x` of their own.
            "SETACL shared/support/Queue cyrus x",
            "DELETE shared/support/Queue",
            "CREATE shared/support/Queue",
            "SETACL shared/support/Queue flagpost lrswa",
            "SETACL shared/support/Queue support lrswipkxte",
        ])
        .await?;
    let mut support = cyrus.client("support").await?;
    support
        .append(
            QUEUE,
            "\\Answered",
            &message("New one", "Cy <cy@example.org>"),
        )
        .await?;
    support.logout().await;

    wait_equal(&cyrus, &pool, "the new mailbox's message")
        .await
        .map_err(|e| anyhow::anyhow!("{e}\nflagpost log:\n{}", serve.log_text()))?;
    let (after, resets): (i64, i64) = sqlx::query_as(
        "SELECT f.uidvalidity, (SELECT count(*) FROM events e WHERE e.folder_id = f.id AND e.type = 'folder.reset')
         FROM folders f WHERE f.imap_name = $1",
    )
    .bind(QUEUE)
    .fetch_one(&pool)
    .await?;
    assert_ne!(after, before, "the mirror moved to the new UIDVALIDITY");
    assert_eq!(resets, 1, "one folder.reset for the new generation");
    let subjects: Vec<String> = sqlx::query_scalar(
        "SELECT m.subject FROM messages m JOIN folders f ON f.id = m.folder_id
         WHERE f.imap_name = $1 ORDER BY m.uid",
    )
    .bind(QUEUE)
    .fetch_all(&pool)
    .await?;
    assert_eq!(subjects, ["New one"], "only the new generation is mirrored");
    serve.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_cyrus_restart_and_changes_made_while_flagpost_was_away_are_caught_up() -> Result<()> {
    let mut cyrus = cyrus_fixture().await?;
    let db = TestDatabase::create().await?;
    let mut support = cyrus.client("support").await?;
    let mut uids = Vec::new();
    for n in 0..4 {
        uids.push(
            support
                .append(
                    QUEUE,
                    "",
                    &message(&format!("Ticket {n}"), "Ann <ann@example.org>"),
                )
                .await?,
        );
    }
    support.logout().await;
    let env = env(&cyrus, &db);
    let serve = Serve::start(&env).await?;
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5)).await?;
    wait_equal(&cyrus, &pool, "the first sync").await?;

    // The server restarts under the live watcher: it reconnects and keeps mirroring.
    cyrus.restart().await?;
    let mut support = cyrus.client("support").await?;
    support.command_ok(&format!("SELECT {QUEUE}")).await?;
    support
        .command_ok(&format!("UID STORE {} +FLAGS (\\Flagged)", uids[0]))
        .await?;
    support.logout().await;
    wait_equal(&cyrus, &pool, "a change after the server's restart")
        .await
        .map_err(|e| anyhow::anyhow!("{e}\nflagpost log:\n{}", serve.log_text()))?;

    // Changes while Flagpost is stopped: the restart's sync asks Cyrus only for what changed
    // (QRESYNC from the stored checkpoint), not for the whole folder.
    assert!(serve.stop().await?.success());
    let mut support = cyrus.client("support").await?;
    support.command_ok(&format!("SELECT {QUEUE}")).await?;
    support
        .command_ok(&format!("UID STORE {} +FLAGS (\\Answered)", uids[1]))
        .await?;
    support
        .command_ok(&format!("UID STORE {} +FLAGS (\\Deleted)", uids[2]))
        .await?;
    support
        .command_ok(&format!("UID EXPUNGE {}", uids[2]))
        .await?;
    support.logout().await;
    let mut support = cyrus.client("support").await?;
    support
        .append(QUEUE, "", &message("While away", "Bo <bo@example.org>"))
        .await?;
    support.logout().await;
    let serve = Serve::start(&env).await?;
    wait_equal(&cyrus, &pool, "the changes made while Flagpost was stopped").await?;
    let sync = eventually(WAIT, "the restart's sync log line", || async {
        Ok(serve
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "folder synced"))
    })
    .await?;
    assert_eq!(sync["fields"]["kind"], "Incremental", "{sync}");
    assert_eq!(
        sync["fields"]["fetched"], 1,
        "only the new message in full: {sync}"
    );
    assert_eq!(sync["fields"]["removed"], 1, "{sync}");
    assert!(serve.stop().await?.success());
    Ok(())
}

/// Upstream Cyrus 3's default layout (`altnamespace: yes`): users, the service account among
/// them, see the shared folder as `Shared Folders/shared/support/Queue` (a prefix with a space),
/// while the admin creates it under its internal name. Discovery, the first sync, IDLE news
/// and the rights work under the name the service account sees.
#[tokio::test]
async fn cyrus_with_its_alternate_namespace_is_mirrored_under_shared_folders() -> Result<()> {
    const ALT_QUEUE: &str = "Shared Folders/shared/support/Queue";
    let cyrus = cyrus_fixture_with(true).await?;
    let db = TestDatabase::create().await?;
    let mut support = cyrus.client("support").await?;
    let uid = support
        .append(
            ALT_QUEUE,
            "",
            &message("Seen from afar", "Ann <ann@example.org>"),
        )
        .await?;
    support.logout().await;
    let mut env = env(&cyrus, &db);
    env.retain(|(k, _)| *k != "FLAGPOST_FOLDERS");
    env.push((
        "FLAGPOST_FOLDERS",
        "Shared Folders/shared/support/*".to_owned(),
    ));
    let serve = Serve::start(&env).await?;
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5)).await?;
    wait_mirror_equal(&cyrus, &pool, "support", ALT_QUEUE, WAIT).await?;

    let mut alice = cyrus.client("alice").await?;
    alice.command_ok(&format!("SELECT \"{ALT_QUEUE}\"")).await?;
    alice
        .command_ok(&format!("UID STORE {uid} +FLAGS (\\Answered)"))
        .await?;
    alice.logout().await;
    wait_mirror_equal(&cyrus, &pool, "support", ALT_QUEUE, WAIT)
        .await
        .context("alice's \\Answered under the alternate namespace")?;

    let api = Api::new(serve.addr);
    let token = api.login("alice", "alice-pw").await?;
    let r = api.get("/api/v1/folders", &token).await?;
    let folders = r.json["folders"].as_array().cloned().unwrap_or_default();
    let [f] = folders.as_slice() else {
        bail!("expected one folder, got {}", r.text);
    };
    assert_eq!(f["name"], ALT_QUEUE, "{}", r.text);
    assert_eq!(f["counts"]["answered"], 1, "{}", r.text);
    let mut c = cyrus.client("alice").await?;
    let server = myrights_in(&mut c, ALT_QUEUE).await?;
    c.logout().await;
    let server = server.context("alice has rights on the folder")?;
    assert_eq!(f["my_rights"], server.to_string(), "{}", r.text);
    assert!(serve.stop().await?.success());
    Ok(())
}

/// Identifiers of the random Cyrus ACLs that Flagpost resolves: the checked users, a user that
/// does not exist, and `anyone`.
const CYRUS_RESOLVABLE: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "anyone"];
/// Ones it cannot: a group, a case variant of a user, and names special on other servers
/// (`authenticated` is a user name on Cyrus, `anonymous` its anonymous login).
const CYRUS_UNRESOLVABLE: [&str; 4] = ["group:staff", "Alice", "authenticated", "anonymous"];
const CYRUS_USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// RFC 4314's union rule on a second server, many times over: random ACLs on one Cyrus folder
/// (1–6 entries over users, `anyone`, negatives, random letters of `lrswipkxtea`, and in about a
/// third of the rounds identifiers Flagpost cannot resolve). For each round and user, the rights
/// Flagpost computes from the folder's GETACL, as the API does for a Cyrus server, never exceed
/// what Cyrus's own MYRIGHTS says, and equal it when every entry is resolvable. Cyrus answers
/// MYRIGHTS with NO for a user without `l`: Flagpost must not grant `l` then. The seed is
/// printed; `FLAGPOST_CYRUS_RIGHTS_SEED` replays a run, `FLAGPOST_CYRUS_RIGHTS_ROUNDS` sets the
/// number of rounds (default 300).
#[tokio::test]
async fn random_acls_on_cyrus_give_exactly_its_myrights() -> Result<()> {
    use flagpost_domain::Right;
    use flagpost_domain::acl::{AclContext, AclDialect, AclEntry, effective_rights_with};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let seed = flagpost_e2e::test_seed("FLAGPOST_CYRUS_RIGHTS_SEED");
    let rounds = flagpost_e2e::env_count("FLAGPOST_CYRUS_RIGHTS_ROUNDS", 300);
    println!("cyrus rights seed: {seed} (FLAGPOST_CYRUS_RIGHTS_SEED={seed}), {rounds} rounds");
    let mut rng = StdRng::seed_from_u64(seed);

    let cyrus = Cyrus::start().await?;
    for user in CYRUS_USERS {
        cyrus.add_user(user, &format!("{user}-pw")).await?;
    }
    let folder = "shared/rights";
    cyrus
        .admin(&[
            &format!("CREATE {folder}"),
            &format!("DELETEACL {folder} anyone"),
        ])
        .await?;
    let mut admin = cyrus.client(Cyrus::ADMIN).await?;
    let mut sessions = Vec::new();
    for user in CYRUS_USERS {
        sessions.push((user, cyrus.client(user).await?));
    }
    let context = AclContext {
        dialect: AclDialect::Rfc4314,
        ..AclContext::default()
    };
    let letters = "lrswipkxtea";
    let (mut pairs, mut exact, mut hidden) = (0usize, 0usize, 0usize);
    let mut previous: Vec<String> = Vec::new();
    for round in 0..rounds {
        let unresolvable = rng.random_bool(0.3);
        let mut wanted: Vec<(String, String)> = Vec::new();
        for _ in 0..rng.random_range(1..=6) {
            let base = if unresolvable && rng.random_bool(0.4) {
                CYRUS_UNRESOLVABLE[rng.random_range(0..CYRUS_UNRESOLVABLE.len())]
            } else {
                CYRUS_RESOLVABLE[rng.random_range(0..CYRUS_RESOLVABLE.len())]
            };
            let sign = if rng.random_bool(0.3) { "-" } else { "" };
            let mut rights: String = letters.chars().filter(|_| rng.random_bool(0.45)).collect();
            if rights.is_empty() {
                rights.push('l');
            }
            wanted.retain(|(id, _)| *id != format!("{sign}{base}"));
            wanted.push((format!("{sign}{base}"), rights));
        }
        for id in previous.drain(..) {
            admin
                .command_ok(&format!("DELETEACL {folder} {id}"))
                .await?;
        }
        for (id, rights) in &wanted {
            admin
                .command_ok(&format!("SETACL {folder} {id} {rights}"))
                .await?;
            previous.push(id.clone());
        }
        let r = admin.command_ok(&format!("GETACL {folder}")).await?;
        let line = r
            .untagged
            .iter()
            .find(|l| l.starts_with("ACL "))
            .cloned()
            .unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().skip(2).collect();
        let acl: Vec<AclEntry> = words
            .chunks(2)
            .map(|c| AclEntry::from_server(c[0], c.get(1).copied().unwrap_or_default()))
            .collect();
        let resolvable = acl.iter().all(|e| {
            let id = e.identifier.trim_start_matches('-');
            CYRUS_RESOLVABLE.contains(&id)
        });
        for (user, session) in sessions.iter_mut() {
            let computed = effective_rights_with(&acl, user, &context);
            let answer = myrights_in(session, folder).await?;
            pairs += 1;
            let why = format!("round {round}, {user}, ACL {line:?} (seed {seed})");
            let Some(server) = answer else {
                // No `l`: Cyrus hides the folder, so must Flagpost.
                hidden += 1;
                assert!(
                    !computed.contains(Right::Lookup),
                    "{why}: computed {computed} where Cyrus says the folder does not exist"
                );
                continue;
            };
            assert_eq!(
                computed.minus(server),
                Rights::NONE,
                "{why}: computed {computed} exceeds MYRIGHTS {server}"
            );
            if resolvable {
                assert_eq!(computed, server, "{why}: resolvable, yet not MYRIGHTS");
                exact += 1;
            }
        }
    }
    println!("{pairs} user/ACL pairs, {exact} checked for equality, {hidden} hidden by Cyrus");
    assert!(
        exact > pairs / 3,
        "too few resolvable pairs: {exact} of {pairs}"
    );
    admin.logout().await;
    for (_, s) in sessions {
        s.logout().await;
    }
    Ok(())
}
