//! The REST API and the live stream end to end: staff log in with their Dovecot passwords, see
//! exactly the folders and events their IMAP rights allow, change flags and ACLs through the
//! API (written to the IMAP server), and resume streams without missing anything.

use std::time::Duration;

use anyhow::Result;
use flagpost_e2e::http::{Api, Sse};
use flagpost_e2e::{eventually, flagpost_env, message, server_state, support_fixture};
use flagpost_harness::{Dovecot, TestDatabase};
use serde_json::{Value, json};

use crate::Serve;

const WAIT: Duration = Duration::from_secs(15);

/// Folders: `Queue` (alice `lrsw`, bob `lr`), `Sales` (dave `lr`, bob `lr`), `Billing` (its ACL is
/// not mirrored: the service account lacks `a`). carol is a service admin without IMAP rights.
pub(crate) struct Fixture {
    pub(crate) dovecot: Dovecot,
    pub(crate) _db: TestDatabase,
    pub(crate) serve: Serve,
    pub(crate) api: Api,
    pub(crate) queue_uids: Vec<u32>,
    pub(crate) sales_uid: u32,
}

pub(crate) async fn fixture() -> Result<Fixture> {
    fixture_with(&[]).await
}

/// The fixture with extra `flagpost serve` settings.
pub(crate) async fn fixture_with(extra: &[(&'static str, String)]) -> Result<Fixture> {
    let dovecot = support_fixture().await?;
    dovecot.add_user_ready("carol", "carol-pw").await?;
    dovecot.add_user_ready("dave", "dave-pw").await?;
    dovecot.create_folder("support", "Sales").await?;
    // The service account stores flags on the users' behalf: it needs `w` and `s` besides `l r
    // a`; each user's own rights decide what Flagpost lets them do.
    for folder in ["Queue", "Sales"] {
        dovecot
            .set_acl("support", folder, flagpost_e2e::SERVICE_USER, "lrswa")
            .await?;
    }
    dovecot.set_acl("support", "Queue", "alice", "lrsw").await?;
    dovecot.set_acl("support", "Queue", "bob", "lr").await?;
    dovecot.set_acl("support", "Sales", "dave", "lr").await?;
    dovecot.set_acl("support", "Sales", "bob", "lr").await?;
    let mut queue_uids = Vec::new();
    for i in 0..3 {
        queue_uids.push(
            dovecot
                .append(
                    "support",
                    "Queue",
                    &message(&format!("Question {i}"), "customer@example.com"),
                )
                .await?,
        );
    }
    let sales_uid = dovecot
        .append("support", "Sales", &message("Offer", "lead@example.com"))
        .await?;
    let db = TestDatabase::create().await?;
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_ADMINS", "carol".into()));
    env.push(("FLAGPOST_ACL_POLL_SECS", "1".into()));
    env.extend(extra.iter().cloned());
    let serve = Serve::start(&env).await?;
    let api = Api::new(serve.addr);
    // Ready when the admin sees all three folders live with their messages.
    let admin = api.login("carol", "carol-pw").await?;
    eventually(WAIT, "folders mirrored", || async {
        let r = api.get("/api/v1/folders", &admin).await?;
        let folders = r.json["folders"].as_array().cloned().unwrap_or_default();
        let ready = folders.len() == 3
            && folders.iter().all(|f| f["sync"]["state"] == "live")
            && folders
                .iter()
                .map(|f| f["counts"]["total"].as_i64().unwrap_or(0))
                .sum::<i64>()
                == 4;
        Ok(ready.then_some(()))
    })
    .await?;
    Ok(Fixture {
        dovecot,
        _db: db,
        serve,
        api,
        queue_uids,
        sales_uid,
    })
}

impl Fixture {
    pub(crate) fn db_url(&self) -> String {
        self._db.url()
    }

    pub(crate) async fn folder_id(&self, token: &str, name: &str) -> Result<String> {
        let r = self.api.get("/api/v1/folders", token).await?;
        r.json["folders"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"].as_str().is_some_and(|n| n.ends_with(name)))
            .and_then(|f| f["id"].as_str().map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("folder {name} not visible: {}", r.text))
    }

    async fn message_id(&self, token: &str, folder: &str, uid: u32) -> Result<String> {
        let r = self
            .api
            .get(
                &format!("/api/v1/messages?folder={folder}&status=any&limit=500"),
                token,
            )
            .await?;
        r.json["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["uid"] == uid)
            .and_then(|m| m["id"].as_str().map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("uid {uid} not listed: {}", r.text))
    }
}

fn names(r: &Value) -> Vec<String> {
    let mut v: Vec<String> = r["folders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn staff_see_exactly_the_folders_their_imap_rights_allow_with_the_servers_counts() {
    let f = fixture().await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let dave = f.api.login("dave", "dave-pw").await.unwrap();
    let carol = f.api.login("carol", "carol-pw").await.unwrap();

    let r = f.api.get("/api/v1/me", &alice).await.unwrap();
    assert_eq!(
        r.json,
        json!({ "username": "alice", "admin": false, "scopes": ["read", "write", "acl"] })
    );

    let r = f.api.get("/api/v1/folders", &alice).await.unwrap();
    assert_eq!(names(&r.json), ["shared/support/Queue"], "{}", r.text);
    let queue = &r.json["folders"][0];
    assert_eq!(queue["my_rights"], "lrsw");
    // Counts equal the server's state.
    let server = server_state(&f.dovecot, "support", "Queue").await.unwrap();
    let answered = server
        .values()
        .filter(|fl| fl.contains("\\Answered"))
        .count() as i64;
    assert_eq!(queue["counts"]["total"], server.len() as i64);
    assert_eq!(queue["counts"]["answered"], answered);
    assert_eq!(queue["counts"]["pending"], server.len() as i64 - answered);

    let r = f.api.get("/api/v1/folders", &dave).await.unwrap();
    assert_eq!(names(&r.json), ["shared/support/Sales"]);
    let r = f.api.get("/api/v1/folders", &carol).await.unwrap();
    assert_eq!(names(&r.json).len(), 3, "admins read every watched folder");

    // Another user's folder answers 404, as if absent, also as a filter.
    let queue_id = f.folder_id(&alice, "Queue").await.unwrap();
    for path in [
        format!("/api/v1/folders/{queue_id}"),
        format!("/api/v1/messages?folder={queue_id}"),
        format!("/api/v1/events?folder={queue_id}"),
        "/api/v1/folders/999999".to_owned(),
    ] {
        let r = f.api.get(&path, &dave).await.unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json["status"], 404);
    }
    // Unknown parameters and bad values are 400 problems.
    let r = f
        .api
        .get("/api/v1/messages?colour=red", &alice)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json["detail"].as_str().unwrap().contains("colour"));
    let r = f
        .api
        .get("/api/v1/messages?limit=501", &alice)
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // Wrong password: 401 problem; no credentials: 401.
    let r = f
        .api
        .send(
            "POST",
            "/api/v1/session",
            None,
            Some(&json!({"username": "alice", "password": "nope"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = f
        .api
        .send("GET", "/api/v1/folders", None, None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    // Logout revokes that session at once.
    let r = f
        .api
        .send("DELETE", "/api/v1/session", Some(&dave), None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(f.api.get("/api/v1/me", &dave).await.unwrap().status, 401);
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_with_retry_after() {
    let f = fixture().await.unwrap();
    let mut last = 0;
    for _ in 0..6 {
        let r = f
            .api
            .send(
                "POST",
                "/api/v1/session",
                None,
                Some(&json!({"username": "bob", "password": "wrong"})),
                &[],
            )
            .await
            .unwrap();
        last = r.status;
        if r.status == 429 {
            let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!(secs > 0);
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert_eq!(last, 429, "the sixth failed attempt in a row is throttled");
    // Even the right password waits now.
    let r = f
        .api
        .send(
            "POST",
            "/api/v1/session",
            None,
            Some(&json!({"username": "bob", "password": "bob-pw"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn another_clients_change_reaches_authorised_streams_only_and_resumes_without_gaps() {
    let f = fixture().await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let dave = f.api.login("dave", "dave-pw").await.unwrap();
    let mut alice_stream = f
        .api
        .stream("/api/v1/events/stream", &alice, &[])
        .await
        .unwrap();
    let mut dave_stream = f
        .api
        .stream("/api/v1/events/stream", &dave, &[])
        .await
        .unwrap();

    // Another IMAP client flags a Queue message (alice may read it, dave may not) ...
    let uid = f.queue_uids[0];
    f.dovecot
        .store("support", "Queue", uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let got = alice_stream
        .until(WAIT, |e| e.event.as_deref() == Some("message.updated"))
        .await
        .unwrap();
    let ev = got.last().unwrap();
    assert_eq!(ev.data["data"]["after"]["flagged"], true);
    assert_eq!(ev.data["data"]["actor"], Value::Null);
    assert_eq!(ev.id.as_deref(), Some(ev.data["id"].to_string().as_str()));
    let queue_event_id: i64 = ev.data["id"].as_i64().unwrap();

    // ... then a Sales message, which dave may read: dave's stream must show it, and nothing of
    // Queue before it (events arrive in id order).
    f.dovecot
        .store("support", "Sales", f.sales_uid, "+FLAGS (\\Answered)")
        .await
        .unwrap();
    let seen = dave_stream
        .until(WAIT, |e| e.event.as_deref() == Some("message.updated"))
        .await
        .unwrap();
    let sales_id = f.folder_id(&dave, "Sales").await.unwrap();
    for e in &seen {
        assert_eq!(
            e.data["folder_id"],
            sales_id.as_str(),
            "dave got another folder's event: {e:?}"
        );
    }
    assert!(seen.last().unwrap().data["id"].as_i64().unwrap() > queue_event_id);

    // Resume: alice disconnects, three changes happen, and a stream resumed with
    // Last-Event-ID gets exactly the missed events.
    drop(alice_stream);
    for uid in &f.queue_uids {
        f.dovecot
            .store("support", "Queue", *uid, "+FLAGS (\\Seen)")
            .await
            .unwrap();
    }
    let after = format!("/api/v1/events?after={queue_event_id}");
    let missed: Vec<i64> = eventually(WAIT, "three missed events in the feed", || async {
        let r = f.api.get(&after, &alice).await?;
        let ids: Vec<i64> = r.json["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["id"].as_i64())
            .collect();
        Ok((ids.len() >= 3).then_some(ids))
    })
    .await
    .unwrap();
    assert_eq!(
        missed.len(),
        3,
        "only alice's three changes, none of Sales: {missed:?}"
    );
    let last_id = queue_event_id.to_string();
    let mut resumed = f
        .api
        .stream(
            "/api/v1/events/stream",
            &alice,
            &[("Last-Event-ID", &last_id)],
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < missed.len() {
        let e = resumed.next(WAIT).await.unwrap().expect("a missed event");
        got.push(e.data["id"].as_i64().unwrap());
    }
    assert_eq!(got, missed);
    assert!(
        resumed
            .next(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "nothing beyond the missed events"
    );
}

#[tokio::test]
async fn flag_changes_through_the_api_reach_the_server_and_respect_rights_and_if_match() {
    let f = fixture().await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let bob = f.api.login("bob", "bob-pw").await.unwrap();
    let dave = f.api.login("dave", "dave-pw").await.unwrap();
    let queue = f.folder_id(&alice, "Queue").await.unwrap();
    let uid = f.queue_uids[1];
    let id = f.message_id(&alice, &queue, uid).await.unwrap();
    let path = format!("/api/v1/messages/{id}");
    let before = f.api.get(&path, &alice).await.unwrap();
    assert_eq!(before.status, 200);
    let etag = before.json["etag"].as_str().unwrap().to_owned();
    assert_eq!(before.header("etag"), Some(etag.as_str()));

    // bob reads but lacks `w`: 403; dave cannot read: 404. Nothing changes.
    let body = json!({ "answered": true });
    let r = f
        .api
        .send("PATCH", &path, Some(&bob), Some(&body), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    let r = f
        .api
        .send("PATCH", &path, Some(&dave), Some(&body), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text);

    // Someone else changes the message; alice's stale If-Match gets 412 and changes nothing.
    f.dovecot
        .store("support", "Queue", uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let r = f
        .api
        .send(
            "PATCH",
            &path,
            Some(&alice),
            Some(&body),
            &[("If-Match", &etag)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 412, "{}", r.text);
    let server = server_state(&f.dovecot, "support", "Queue").await.unwrap();
    assert!(
        !server[&uid].contains("\\Answered"),
        "a 412 must change nothing"
    );

    // With the current etag it goes through, the server shows it, and the answer is the new state.
    let current = eventually(WAIT, "the flag change mirrored", || async {
        let r = f.api.get(&path, &alice).await?;
        Ok((r.json["flagged"] == true).then_some(r))
    })
    .await
    .unwrap();
    let etag = current.json["etag"].as_str().unwrap().to_owned();
    let r = f
        .api
        .send(
            "PATCH",
            &path,
            Some(&alice),
            Some(&body),
            &[("If-Match", &etag)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "answered");
    assert_eq!(r.json["flagged"], true);
    assert_ne!(r.json["etag"], etag.as_str());
    let server = server_state(&f.dovecot, "support", "Queue").await.unwrap();
    assert!(server[&uid].contains("\\Answered"));
    // The history names alice as the actor of that change.
    let detail = f.api.get(&path, &alice).await.unwrap();
    let actors: Vec<&Value> = detail.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message.updated")
        .map(|e| &e["data"]["actor"])
        .collect();
    assert!(actors.contains(&&json!("alice")), "{}", detail.text);

    // A malformed body is a 4xx problem.
    let r = f
        .api
        .send(
            "PATCH",
            &path,
            Some(&alice),
            Some(&json!({ "answered": "yes" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn acl_changes_flow_both_ways_and_a_revoked_right_stops_that_users_events() {
    let f = fixture().await.unwrap();
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let bob = f.api.login("bob", "bob-pw").await.unwrap();
    let queue = f.folder_id(&carol, "Queue").await.unwrap();

    // alice lacks `a`: 403; the admin reads the ACL.
    let acl_path = format!("/api/v1/folders/{queue}/acl");
    assert_eq!(f.api.get(&acl_path, &alice).await.unwrap().status, 403);
    let r = f.api.get(&acl_path, &carol).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);

    // Through the API → the server's GETACL.
    let r = f
        .api
        .send(
            "PUT",
            &format!("{acl_path}/dave"),
            Some(&carol),
            Some(&json!({ "rights": "lr" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json["entries"]
            .as_array()
            .unwrap()
            .contains(&json!({ "identifier": "dave", "rights": "lr" }))
    );
    let server_acl = f.dovecot.get_acl("support", "Queue").await.unwrap();
    assert!(
        server_acl.contains(&("dave".to_owned(), "lr".to_owned())),
        "{server_acl:?}"
    );
    // A right the server does not offer, and a line break, are 400.
    let r = f
        .api
        .send(
            "PUT",
            &format!("{acl_path}/dave"),
            Some(&carol),
            Some(&json!({ "rights": "lrz" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let r = f
        .api
        .send(
            "PUT",
            &format!("{acl_path}/dave%0D%0AA1%20DELETE%20x"),
            Some(&carol),
            Some(&json!({ "rights": "l" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    // Over IMAP → the API within the poll interval.
    f.dovecot
        .set_acl("support", "Queue", "carol", "lrs")
        .await
        .unwrap();
    eventually(WAIT, "the IMAP-side ACL change in the API", || async {
        let r = f.api.get(&acl_path, &carol).await?;
        Ok(r.json["entries"]
            .as_array()
            .is_some_and(|e| e.contains(&json!({ "identifier": "carol", "rights": "lrs" })))
            .then_some(()))
    })
    .await
    .unwrap();

    // bob streams Queue and Sales events from here on; then loses `r` on Queue. "Here" is
    // the feed's head as the admin sees it: a stream opened at "now" starts at the event
    // hub's position, which may still be before the ACL change above (committed, not yet
    // broadcast), and bob could read Queue when that one happened.
    let mut head = 0i64;
    loop {
        let r = f
            .api
            .get(&format!("/api/v1/events?after={head}&limit=1000"), &carol)
            .await
            .unwrap();
        let next = r.json["next_after"].as_i64().unwrap();
        if next == head {
            break;
        }
        head = next;
    }
    let mut bob_stream: Sse = f
        .api
        .stream(&format!("/api/v1/events/stream?after={head}"), &bob, &[])
        .await
        .unwrap();
    let r = f
        .api
        .send(
            "DELETE",
            &format!("{acl_path}/bob"),
            Some(&carol),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        f.api
            .get(&format!("/api/v1/folders/{queue}"), &bob)
            .await
            .unwrap()
            .status,
        404
    );
    // A Queue change, then a Sales change: bob sees the Sales one, and no Queue event before it.
    f.dovecot
        .store("support", "Queue", f.queue_uids[2], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let mut alice_stream = f
        .api
        .stream("/api/v1/events/stream?after=0", &alice, &[])
        .await
        .unwrap();
    alice_stream
        .until(WAIT, |e| {
            e.event.as_deref() == Some("message.updated")
                && e.data["data"]["after"]["flagged"] == true
        })
        .await
        .unwrap();
    f.dovecot
        .store("support", "Sales", f.sales_uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let sales = f.folder_id(&bob, "Sales").await.unwrap();
    let seen = bob_stream
        .until(WAIT, |e| e.event.as_deref() == Some("message.updated"))
        .await
        .unwrap();
    for e in &seen {
        assert_ne!(
            e.data["folder_id"],
            queue.as_str(),
            "bob still got a Queue event: {e:?}"
        );
    }
    assert_eq!(seen.last().unwrap().data["folder_id"], sales.as_str());
}

#[tokio::test]
async fn integration_tokens_act_within_their_scopes_and_stop_at_once_when_revoked() {
    let f = fixture().await.unwrap();
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    // Only service admins manage tokens.
    let create = json!({ "name": "helpdesk", "identity": "alice", "scopes": ["read"] });
    let r = f
        .api
        .send("POST", "/api/v1/tokens", Some(&alice), Some(&create), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = f
        .api
        .send("POST", "/api/v1/tokens", Some(&carol), Some(&create), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.json["token"].as_str().unwrap().to_owned();
    let token_id = r.json["id"].as_str().unwrap().to_owned();
    let listed = f.api.get("/api/v1/tokens", &carol).await.unwrap();
    assert!(!listed.text.contains(&token), "the secret is never listed");

    // It reads as alice; it cannot write without the scope.
    let r = f.api.get("/api/v1/folders", &token).await.unwrap();
    assert_eq!(names(&r.json), ["shared/support/Queue"]);
    let queue = f.folder_id(&token, "Queue").await.unwrap();
    let id = f.message_id(&token, &queue, f.queue_uids[0]).await.unwrap();
    let r = f
        .api
        .send(
            "PATCH",
            &format!("/api/v1/messages/{id}"),
            Some(&token),
            Some(&json!({ "flagged": true })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);

    // Revoked: 401 at once, and its open stream ends.
    let mut stream = f
        .api
        .stream("/api/v1/events/stream", &token, &[])
        .await
        .unwrap();
    let r = f
        .api
        .send(
            "DELETE",
            &format!("/api/v1/tokens/{token_id}"),
            Some(&carol),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        f.api.get("/api/v1/folders", &token).await.unwrap().status,
        401
    );
    assert!(
        stream.ends_within(WAIT).await.unwrap(),
        "the revoked token's stream ends"
    );
    let _ = &f.serve;
}

#[tokio::test]
async fn metrics_describe_the_service_and_shutdown_ends_open_streams() {
    let f = fixture().await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let mut stream = f
        .api
        .stream("/api/v1/events/stream", &alice, &[])
        .await
        .unwrap();
    f.dovecot
        .store("support", "Queue", f.queue_uids[0], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    stream
        .until(WAIT, |e| e.event.as_deref() == Some("message.updated"))
        .await
        .unwrap();

    let r = f
        .api
        .send("GET", "/metrics", None, None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    for series in [
        "flagpost_http_request_duration_seconds_bucket",
        "flagpost_sse_clients 1",
        "flagpost_folders{state=\"live\"} 3",
        "flagpost_imap_syncs_total{kind=\"full_scan\"}",
        "flagpost_events_written_total{type=\"message.updated\"}",
    ] {
        assert!(
            r.text.contains(series),
            "/metrics lacks {series}:\n{}",
            r.text
        );
    }

    // SIGTERM: the open stream ends and the process exits cleanly instead of waiting for it.
    let Fixture { serve, dovecot, .. } = f;
    let status = serve.stop().await.unwrap();
    assert!(status.success(), "flagpost serve exited with {status}");
    assert!(
        stream.ends_within(WAIT).await.unwrap(),
        "the stream ended with the server"
    );
    drop(dovecot);
}

#[tokio::test]
async fn tokens_made_on_the_command_line_work_and_revoke_at_once() {
    let f = fixture().await.unwrap();
    let env = vec![("FLAGPOST_DATABASE_URL", f.db_url())];
    let out = crate::run_flagpost(
        &[
            "token",
            "create",
            "--identity",
            "alice",
            "--scope",
            "read,write",
            "--name",
            "crm",
        ],
        &env,
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(
        token.starts_with("fpt_") && !token.contains(' '),
        "last line is the token alone: {stdout:?}"
    );

    let r = f.api.get("/api/v1/me", &token).await.unwrap();
    assert_eq!(
        r.json,
        json!({ "username": "alice", "admin": false, "scopes": ["read", "write"] })
    );

    let out = crate::run_flagpost(&["token", "list"], &env).await.unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("crm") && !listing.contains(&token),
        "{listing}"
    );
    let id = listing
        .lines()
        .find(|l| l.contains("crm"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let out = crate::run_flagpost(&["token", "revoke", &id], &env)
        .await
        .unwrap();
    assert!(out.status.success());
    // Revoked in another process: the server hears of it through NOTIFY and refuses at once
    // (within the notification's delivery, well under the credential cache's 10 s).
    eventually(
        Duration::from_secs(5),
        "the revoked token refused",
        || async { Ok((f.api.get("/api/v1/me", &token).await?.status == 401).then_some(())) },
    )
    .await
    .unwrap();
    // Bad scopes are a usage error.
    let out = crate::run_flagpost(
        &[
            "token",
            "create",
            "--identity",
            "alice",
            "--scope",
            "root",
            "--name",
            "x",
        ],
        &env,
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn login_answers_503_while_the_imap_server_is_down_and_the_mirror_stays_readable() {
    let mut f = fixture().await.unwrap();
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    f.dovecot.stop().await.unwrap();
    let r = f
        .api
        .send(
            "POST",
            "/api/v1/session",
            None,
            Some(&json!({ "username": "alice", "password": "alice-pw" })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // The mirror is still served, and the folders say why they are not live.
    let last = std::sync::Mutex::new(String::new());
    let folders = eventually(WAIT, "folders in error", || async {
        let r = f.api.get("/api/v1/folders", &carol).await?;
        let all_error = r.json["folders"]
            .as_array()
            .is_some_and(|fs| fs.iter().all(|f| f["sync"]["state"] == "error"));
        *last.lock().unwrap() = r.text.clone();
        Ok(all_error.then_some(r))
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; last folders: {}\nserve log:\n{}",
            last.lock().unwrap(),
            f.serve.log_text()
        )
    });
    assert!(
        folders.json["folders"][0]["sync"]["error"]
            .as_str()
            .is_some()
    );
    assert_eq!(folders.json["folders"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_openapi_command_prints_the_committed_document_and_the_server_serves_it() {
    let out = crate::run_flagpost(&["openapi"], &[]).await.unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .unwrap();
    assert_eq!(
        out.stdout, committed,
        "flagpost openapi must print openapi/openapi.json"
    );
    let f = fixture().await.unwrap();
    let served = f
        .api
        .send("GET", "/openapi.json", None, None, &[])
        .await
        .unwrap();
    assert_eq!(served.text.as_bytes(), committed.as_slice());
    let docs = f.api.send("GET", "/docs", None, None, &[]).await.unwrap();
    assert_eq!(docs.status, 200);
    assert!(docs.text.contains("/openapi.json") && !docs.text.contains("https://cdn"));
}

/// The pending listing, as ids.
async fn pending_ids(f: &Fixture, token: &str, folder: &str) -> Result<Vec<String>> {
    let r = f
        .api
        .get(
            &format!("/api/v1/messages?folder={folder}&status=pending"),
            token,
        )
        .await?;
    anyhow::ensure!(r.status == 200, "listing: {} {}", r.status, r.text);
    Ok(r.json["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect())
}

/// Listings are kept between requests (the hot query is the same for every agent); this proves
/// a kept page never hides a change from a caller who already knows of it: after its own PATCH,
/// after reading the change in the feed, and after receiving it on the stream.
#[tokio::test]
async fn a_listing_shows_every_change_its_caller_already_knows_of() {
    let f = fixture().await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let queue = f.folder_id(&alice, "Queue").await.unwrap();
    let mut ids = Vec::new();
    for uid in &f.queue_uids {
        ids.push(f.message_id(&alice, &queue, *uid).await.unwrap());
    }
    let all = pending_ids(&f, &alice, &queue).await.unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    // read twice: the second answer may come from the kept page
    assert_eq!(pending_ids(&f, &alice, &queue).await.unwrap(), all);

    // 1. Its own write: the very next listing no longer has the message as pending.
    let r = f
        .api
        .send(
            "PATCH",
            &format!("/api/v1/messages/{}", ids[0]),
            Some(&alice),
            Some(&json!({ "answered": true })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let now = pending_ids(&f, &alice, &queue).await.unwrap();
    assert!(!now.contains(&ids[0]), "own write hidden by a kept page");

    // 2. Another IMAP client's change, learnt from the change feed: the listing right after
    //    the event was read shows it.
    let head = f
        .api
        .get("/api/v1/events?limit=1000", &alice)
        .await
        .unwrap();
    let after = head.json["next_after"].as_i64().unwrap();
    f.dovecot
        .store("support", "Queue", f.queue_uids[1], "+FLAGS (\\Answered)")
        .await
        .unwrap();
    eventually(WAIT, "the change in the feed", || async {
        let r = f
            .api
            .get(&format!("/api/v1/events?after={after}"), &alice)
            .await?;
        let seen = r.json["events"].as_array().into_iter().flatten().any(|e| {
            e["message_id"] == ids[1].as_str() && e["data"]["after"]["status"] == "answered"
        });
        Ok(seen.then_some(()))
    })
    .await
    .unwrap();
    let now = pending_ids(&f, &alice, &queue).await.unwrap();
    assert!(!now.contains(&ids[1]), "feed event hidden by a kept page");

    // 3. The same learnt from the live stream.
    let mut sse = f
        .api
        .stream("/api/v1/events/stream", &alice, &[])
        .await
        .unwrap();
    f.dovecot
        .store("support", "Queue", f.queue_uids[2], "+FLAGS (\\Answered)")
        .await
        .unwrap();
    sse.until(WAIT, |e| {
        e.data["message_id"] == ids[2].as_str() && e.data["data"]["after"]["status"] == "answered"
    })
    .await
    .unwrap();
    let now = pending_ids(&f, &alice, &queue).await.unwrap();
    assert!(
        now.is_empty(),
        "stream event hidden by a kept page: {now:?}"
    );
}

/// A folder that leaves the IMAP server (or the service account's view) ends with a
/// `folder.removed` event that reaches every user who could read it, and its past events stay
/// in their feed: the folder's last mirrored ACL keeps deciding who reads its events. A user
/// who never could read it sees none of them.
#[tokio::test]
async fn readers_of_a_removed_folder_see_its_removal_and_keep_its_history() {
    let f = fixture_with(&[("FLAGPOST_FOLDER_POLL_SECS", "1".to_owned())])
        .await
        .unwrap();
    let dave = f.api.login("dave", "dave-pw").await.unwrap();
    let alice = f.api.login("alice", "alice-pw").await.unwrap();
    let sales_id = {
        let r = f.api.get("/api/v1/folders", &dave).await.unwrap();
        r.json["folders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["imap_name"] == "shared/support/Sales")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = f
        .api
        .get("/api/v1/events?after=0&limit=1000", &dave)
        .await
        .unwrap();
    assert!(
        before.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "message.added" && e["folder_id"] == sales_id.as_str()),
        "dave reads Sales: {:?}",
        before.json
    );
    f.dovecot
        .doveadm(&["mailbox", "delete", "-u", "support", "Sales"])
        .await
        .unwrap();
    let after = eventually(WAIT, "dave sees folder.removed of Sales", || async {
        let r = f
            .api
            .get("/api/v1/events?after=0&limit=1000", &dave)
            .await?;
        let events = r.json["events"].as_array().cloned().unwrap_or_default();
        let removed = events
            .iter()
            .any(|e| e["type"] == "folder.removed" && e["folder_id"] == sales_id.as_str());
        Ok(removed.then_some(events))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", f.serve.log_text()))
    .unwrap();
    assert!(
        after
            .iter()
            .any(|e| e["type"] == "message.added" && e["folder_id"] == sales_id.as_str()),
        "Sales' history is still in dave's feed"
    );
    let r = f.api.get("/api/v1/folders", &dave).await.unwrap();
    assert!(
        !r.json["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == sales_id.as_str()),
        "a removed folder is no longer listed"
    );
    let r = f
        .api
        .get("/api/v1/events?after=0&limit=1000", &alice)
        .await
        .unwrap();
    assert!(
        !r.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["folder_id"] == sales_id.as_str()),
        "alice never could read Sales"
    );
}
