//! Webhooks end to end: a local HTTP receiver gets the events of another IMAP client's
//! changes, signed (checked with the independent `standardwebhooks` crate), in order, retried,
//! surviving a killed server, and only for folders the webhook's identity may read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use flagpost_e2e::eventually;
use serde_json::{Value, json};

use crate::Serve;
use crate::api::{Fixture, fixture_with};

const WAIT: Duration = Duration::from_secs(20);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }
}

/// Scripted answers: status and an optional `Location`.
type Script = Arc<Mutex<VecDeque<(u16, Option<String>)>>>;

/// A local receiver that records every request and answers with scripted statuses (then 200).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Script,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .fallback(axum::routing::any(handle))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn answer(&self, status: u16, times: usize) {
        let mut s = self.script.lock().unwrap();
        for _ in 0..times {
            s.push_back((status, None));
        }
    }

    fn redirect(&self, to: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((302, Some(to.to_owned())));
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        eventually(WAIT, what, || async {
            let got = self.got();
            Ok(pred(&got).then_some(got))
        })
        .await
        .unwrap()
    }
}

async fn handle(State(r): State<Receiver>, headers: HeaderMap, body: String) -> impl IntoResponse {
    r.got.lock().unwrap().push(Received { headers, body });
    let (status, location) = r.script.lock().unwrap().pop_front().unwrap_or((200, None));
    let mut resp = (StatusCode::from_u16(status).unwrap(), "ok").into_response();
    if let Some(l) = location {
        resp.headers_mut().insert("location", l.parse().unwrap());
    }
    resp
}

async fn webhook_fixture() -> Fixture {
    fixture_with(&[
        ("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("FLAGPOST_WEBHOOK_RETRY_BASE_MS", "50".into()),
    ])
    .await
    .unwrap()
}

async fn create(f: &Fixture, admin: &str, body: Value) -> Value {
    let r = f
        .api
        .send("POST", "/api/v1/webhooks", Some(admin), Some(&body), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

/// `POST /webhooks/{id}/ping` as `admin`.
async fn ping(f: &Fixture, hook_id: &str, admin: &str) -> flagpost_e2e::http::Reply {
    f.api
        .send(
            "POST",
            &format!("/api/v1/webhooks/{hook_id}/ping"),
            Some(admin),
            None,
            &[],
        )
        .await
        .unwrap()
}

fn updates(got: &[Received]) -> Vec<&Received> {
    got.iter()
        .filter(|r| r.json()["type"] == "message.updated")
        .collect()
}

#[tokio::test]
async fn another_clients_change_reaches_the_receiver_signed_per_standard_webhooks() {
    let f = webhook_fixture().await;
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let (receiver, url) = Receiver::start().await;
    let hook = create(&f, &carol, json!({ "url": url, "identity": "alice" })).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = f.api.get("/api/v1/webhooks", &carol).await.unwrap();
    assert!(
        !listed.text.contains(&secret),
        "the secret is shown only at creation"
    );

    f.dovecot
        .store("support", "Queue", f.queue_uids[0], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let got = receiver
        .wait_for("the flag change delivered", |g| !updates(g).is_empty())
        .await;
    let r = updates(&got)[0];
    let event = r.json();
    assert_eq!(event["data"]["after"]["flagged"], true);
    assert_eq!(
        r.webhook_id(),
        event["id"].to_string(),
        "webhook-id is the event id"
    );
    // An independent implementation verifies the signature.
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(r.body.as_bytes(), &r.headers)
        .expect("the signature verifies with the standardwebhooks crate");
    // A tampered body does not.
    assert!(verifier.verify(b"{}", &r.headers).is_err());

    // Replay sends the same event again with the same id.
    let hook_id = hook["id"].as_str().unwrap();
    // The receiver may have the request before the worker has recorded its 2xx answer.
    let delivery = eventually(WAIT, "the delivery recorded as delivered", || async {
        let log = f
            .api
            .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"), &carol)
            .await?;
        let d = log.json["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["event_id"] == event["id"])
            .cloned();
        Ok(d.filter(|d| d["status"] == "delivered"))
    })
    .await
    .unwrap();
    let before = receiver.got().len();
    let r = f
        .api
        .send(
            "POST",
            &format!(
                "/api/v1/webhooks/{hook_id}/deliveries/{}/replay",
                delivery["id"].as_str().unwrap()
            ),
            Some(&carol),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text);
    let got = receiver.wait_for("the replay", |g| g.len() > before).await;
    assert_eq!(got[before].webhook_id(), event["id"].to_string());

    // Ping answers with what the receiver said.
    let r = ping(&f, hook_id, &carol).await;
    assert_eq!(r.json["delivered"], true, "{}", r.text);

    // A ping answered 410 Gone disables the webhook, as any delivery answered so does.
    receiver.answer(410, 1);
    let r = ping(&f, hook_id, &carol).await;
    assert_eq!(r.json["delivered"], false, "{}", r.text);
    assert_eq!(r.json["response_status"], 410, "{}", r.text);
    let r = f
        .api
        .get(&format!("/api/v1/webhooks/{hook_id}"), &carol)
        .await
        .unwrap();
    assert_eq!(r.json["enabled"], false, "{}", r.text);
    assert!(
        r.json["disabled_reason"]
            .as_str()
            .unwrap_or("")
            .contains("410"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn failures_retry_the_same_event_before_later_ones_and_410_disables() {
    let f = webhook_fixture().await;
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let (receiver, url) = Receiver::start().await;
    let hook = create(
        &f,
        &carol,
        json!({ "url": url, "events": ["message.updated"] }),
    )
    .await;
    receiver.answer(500, 3);
    // Two changes: the second must wait for the first.
    f.dovecot
        .store("support", "Queue", f.queue_uids[0], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    f.dovecot
        .store("support", "Queue", f.queue_uids[1], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let got = receiver
        .wait_for("two events delivered", |g| g.len() >= 5)
        .await;
    let ids: Vec<String> = got.iter().map(Received::webhook_id).collect();
    assert_eq!(
        ids[0..4],
        [
            ids[0].clone(),
            ids[0].clone(),
            ids[0].clone(),
            ids[0].clone()
        ],
        "{ids:?}"
    );
    assert_ne!(ids[4], ids[0]);
    assert!(
        ids[4].parse::<i64>().unwrap() > ids[0].parse::<i64>().unwrap(),
        "in event order"
    );
    let hook_id = hook["id"].as_str().unwrap();
    let log = f
        .api
        .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"), &carol)
        .await
        .unwrap();
    let first = log.json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == ids[0].parse::<i64>().unwrap())
        .unwrap()
        .clone();
    assert_eq!(first["attempt"], 4);
    assert_eq!(first["status"], "delivered");

    // 410: the webhook is disabled and receives nothing more.
    receiver.answer(410, 1);
    f.dovecot
        .store("support", "Queue", f.queue_uids[2], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    eventually(WAIT, "the webhook disabled", || async {
        let r = f
            .api
            .get(&format!("/api/v1/webhooks/{hook_id}"), &carol)
            .await?;
        Ok((r.json["enabled"] == false).then_some(r))
    })
    .await
    .unwrap();
    let n = receiver.got().len();
    // A witness webhook is queued in the same step as every enabled one: once it has the next
    // event, the disabled webhook has had its chance to get it too.
    let (witness, witness_url) = Receiver::start().await;
    create(
        &f,
        &carol,
        json!({ "url": witness_url, "events": ["message.updated"] }),
    )
    .await;
    f.dovecot
        .store("support", "Queue", f.queue_uids[2], "-FLAGS (\\Flagged)")
        .await
        .unwrap();
    witness
        .wait_for("the witness's delivery", |g| !g.is_empty())
        .await;
    let log = f
        .api
        .get(&format!("/api/v1/webhooks/{hook_id}/deliveries"), &carol)
        .await
        .unwrap();
    let witnessed: i64 = witness.got()[0].webhook_id().parse().unwrap();
    assert!(
        !log.json["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event_id"].as_i64().unwrap() >= witnessed),
        "nothing queued for a disabled webhook: {}",
        log.text
    );
    assert_eq!(
        receiver.got().len(),
        n,
        "a disabled webhook receives nothing"
    );
}

#[tokio::test]
async fn a_killed_server_delivers_every_pending_event_after_restart() {
    let f = webhook_fixture().await;
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let (receiver, url) = Receiver::start().await;
    create(
        &f,
        &carol,
        json!({ "url": url, "events": ["message.updated"] }),
    )
    .await;
    receiver.answer(503, 1000);
    for uid in &f.queue_uids {
        f.dovecot
            .store("support", "Queue", *uid, "+FLAGS (\\Flagged)")
            .await
            .unwrap();
    }
    receiver
        .wait_for("a failing attempt", |g| !g.is_empty())
        .await;
    // Kill it hard while all three are pending, then let the receiver succeed.
    let Fixture {
        serve,
        dovecot,
        _db: db,
        api,
        ..
    } = f;
    let addr = serve.addr;
    let env = {
        let mut e = flagpost_e2e::flagpost_env(&dovecot, &db);
        e.push(("FLAGPOST_ADMINS", "carol".into()));
        e.push(("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "true".into()));
        e.push(("FLAGPOST_WEBHOOK_RETRY_BASE_MS", "50".into()));
        e
    };
    serve.kill().await.unwrap();
    receiver.script.lock().unwrap().clear();
    let first_failures = receiver.got().len();
    let _serve = Serve::start_at(addr, &env).await.unwrap();
    let got = receiver
        .wait_for("all three events delivered", |g| {
            let mut ids: Vec<String> = g[first_failures..]
                .iter()
                .map(Received::webhook_id)
                .collect();
            ids.dedup();
            ids.len() >= 3
        })
        .await;
    let mut ids: Vec<i64> = got[first_failures..]
        .iter()
        .map(|r| r.webhook_id().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "in order: {ids:?}");
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "each pending event once after the restart: {ids:?}"
    );
    drop(api);
}

#[tokio::test]
async fn a_webhook_only_receives_folders_its_identity_may_read_now() {
    let f = webhook_fixture().await;
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let (receiver, url) = Receiver::start().await;
    // dave reads Sales only.
    create(
        &f,
        &carol,
        json!({ "url": url, "identity": "dave", "events": ["message.updated"] }),
    )
    .await;
    let sales = f.folder_id(&carol, "Sales").await.unwrap();
    f.dovecot
        .store("support", "Queue", f.queue_uids[0], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    f.dovecot
        .store("support", "Sales", f.sales_uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let got = receiver
        .wait_for("the Sales event", |g| !g.is_empty())
        .await;
    assert!(
        got.iter().all(|r| r.json()["folder_id"] == sales.as_str()),
        "only Sales: {got:?}"
    );

    // Revoke dave's `r` on Sales over IMAP: later Sales events are not delivered.
    f.dovecot
        .set_acl("support", "Sales", "dave", "l")
        .await
        .unwrap();
    eventually(WAIT, "the ACL change mirrored", || async {
        let r = f
            .api
            .get(&format!("/api/v1/folders/{sales}/acl"), &carol)
            .await?;
        Ok(r.json["entries"]
            .as_array()
            .is_some_and(|e| e.contains(&json!({ "identifier": "dave", "rights": "l" })))
            .then_some(()))
    })
    .await
    .unwrap();
    let n = receiver.got().len();
    f.dovecot
        .store("support", "Sales", f.sales_uid, "-FLAGS (\\Flagged)")
        .await
        .unwrap();
    // A webhook that may read everything gets the unflag: then the first had its chance too.
    let (witness, witness_url) = Receiver::start().await;
    create(
        &f,
        &carol,
        json!({ "url": witness_url, "identity": "carol", "events": ["message.updated"] }),
    )
    .await;
    f.dovecot
        .store("support", "Sales", f.sales_uid, "+FLAGS (\\Answered)")
        .await
        .unwrap();
    witness
        .wait_for("the witness's delivery", |g| !g.is_empty())
        .await;
    // Queued in the same step as the witness's: nothing pending, nothing delivered.
    let hooks = f.api.get("/api/v1/webhooks", &carol).await.unwrap();
    let dave_hook = hooks.json["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["identity"] == "dave")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = f
        .api
        .get(&format!("/api/v1/webhooks/{dave_hook}/deliveries"), &carol)
        .await
        .unwrap();
    assert!(
        log.json["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered"),
        "{}",
        log.text
    );
    assert_eq!(receiver.got().len(), n, "no Sales event after dave lost r");
}

#[tokio::test]
async fn unsafe_targets_are_refused_and_redirects_not_followed() {
    // Without FLAGPOST_WEBHOOK_ALLOW_PRIVATE: loopback, private, metadata and non-http URLs.
    let f = fixture_with(&[]).await.unwrap();
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        "ftp://example.com/x",
    ] {
        let r = f
            .api
            .send(
                "POST",
                "/api/v1/webhooks",
                Some(&carol),
                Some(&json!({ "url": url })),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{url}: {}", r.text);
    }
    drop(f);

    // With private targets allowed (the receivers are local): a 302 is not followed.
    let f = webhook_fixture().await;
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let (target, target_url) = Receiver::start().await;
    let (redirector, url) = Receiver::start().await;
    redirector.redirect(&target_url);
    create(
        &f,
        &carol,
        json!({ "url": url, "events": ["message.updated"] }),
    )
    .await;
    f.dovecot
        .store("support", "Queue", f.queue_uids[0], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    // The redirect is a failure: the same event comes again, to the redirector.
    let got = redirector
        .wait_for("the retry after the redirect", |g| g.len() >= 2)
        .await;
    assert_eq!(got[0].webhook_id(), got[1].webhook_id());
    assert!(
        target.got().is_empty(),
        "the redirect target was never called"
    );
}

/// A migrated database of its own with one folder and then one webhook (to `receiver.invalid`,
/// never called), for the tests that drive the delivery queue through the store directly.
async fn database_with_a_webhook() -> (
    flagpost_harness::TestDatabase,
    flagpost_store::PgPool,
    i64,
    flagpost_store::webhooks::WebhookRow,
) {
    let db = flagpost_harness::TestDatabase::create().await.unwrap();
    let pool = flagpost_store::connect(&db.url(), Duration::from_secs(5))
        .await
        .unwrap();
    flagpost_store::migrate(&pool).await.unwrap();
    let (folder, _) = flagpost_store::folders::upsert_listed_folder(&pool, "f", "f", Some("/"))
        .await
        .unwrap();
    let hook = flagpost_store::webhooks::create_webhook(
        &pool,
        "http://receiver.invalid/",
        "agent",
        None,
        None,
        "whsec_c2VjcmV0",
        "admin",
    )
    .await
    .unwrap();
    (db, pool, folder.id, hook)
}

/// Workers in several processes (here: connections) compete for one webhook's queue: each
/// delivery is claimed once while its lease runs, and claims follow event order, even though a
/// claim reads the queue in one statement whose snapshot may predate another worker's commit.
#[tokio::test]
async fn competing_workers_claim_each_delivery_once_in_event_order() {
    use flagpost_store::events::{EventType, NewEvent, append_events};
    use flagpost_store::webhooks::{AttemptRecord, Claim};

    let (db, pool, folder, hook) = database_with_a_webhook().await;
    let events = 60;
    let mut tx = pool.begin().await.unwrap();
    let new: Vec<NewEvent> = (0..events)
        .map(|i| NewEvent {
            kind: EventType::FolderSyncChanged,
            folder_id: folder,
            message_id: None,
            data: json!({ "n": i }),
        })
        .collect();
    let ids = append_events(&mut tx, &new).await.unwrap();
    tx.commit().await.unwrap();
    let queued = flagpost_store::webhooks::enqueue(&pool, 1000, |_| vec![folder])
        .await
        .unwrap();
    assert_eq!(queued, events as u64);

    let workers_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&db.url())
        .await
        .unwrap();
    let claimed: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (pool, claimed) = (workers_pool.clone(), claimed.clone());
        workers.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            while tokio::time::Instant::now() < deadline {
                match flagpost_store::webhooks::claim_head(&pool, hook.id, 60.0)
                    .await
                    .unwrap()
                {
                    Claim::Claimed(c) => {
                        claimed.lock().unwrap().push(c.event.id);
                        let record = AttemptRecord {
                            status: "delivered",
                            retry_at: None,
                            response_status: Some(204),
                            response_body: None,
                            error: None,
                            duration_ms: 0,
                            disable: None,
                        };
                        flagpost_store::webhooks::record_attempt(
                            &pool,
                            hook.id,
                            c.delivery_id,
                            &record,
                        )
                        .await
                        .unwrap();
                    }
                    Claim::Empty => return,
                    Claim::NotBefore(_) | Claim::Busy => tokio::task::yield_now().await,
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        *claimed.lock().unwrap(),
        ids,
        "claims: each once, in event order"
    );
}

/// The delivery log does not grow forever: finished deliveries older than the retention go,
/// pending ones (however old) and recent ones stay.
#[tokio::test]
async fn old_finished_deliveries_are_pruned_and_pending_ones_kept() {
    let (_db, pool, _folder, hook) = database_with_a_webhook().await;
    // (event id, status, days since the last attempt)
    let rows = [
        (1, "delivered", 40),
        (2, "failed", 31),
        (3, "pending", 90),
        (4, "delivered", 29),
        (5, "failed", 1),
    ];
    for (event, status, days) in rows {
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event_id, status, at, created_at)
             VALUES ($1, $2, $3, now() - make_interval(days => $4),
                     now() - make_interval(days => $4 + 1))",
        )
        .bind(hook.id)
        .bind(event as i64)
        .bind(status)
        .bind(days)
        .execute(&pool)
        .await
        .unwrap();
    }
    let removed = flagpost_store::webhooks::prune_deliveries(
        &pool,
        flagpost_api::webhooks::DELIVERY_RETENTION,
    )
    .await
    .unwrap();
    assert_eq!(removed, 2);
    let left: Vec<i64> =
        sqlx::query_scalar("SELECT event_id FROM webhook_deliveries ORDER BY event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(left, [3, 4, 5]);
}
