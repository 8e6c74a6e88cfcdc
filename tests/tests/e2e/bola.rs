//! The authorisation matrix, derived from the OpenAPI document: every route × every kind of
//! caller gets the contract's status (§2: 401 without valid credentials, 404 without `l r` on the
//! folder, 403 without the action's right or the token's scope). A route added to the document
//! without a row here fails the test.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagpost_e2e::http::Api;
use flagpost_e2e::{eventually, flagpost_env, message, support_fixture};
use flagpost_harness::TestDatabase;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::Serve;

const SECRET: &str = "bola-test-secret-that-is-long-enough-0123456789";

/// What a route needs (contract §2, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Any authenticated caller.
    Me,
    /// The `read` scope; lists only what the caller can read.
    List,
    /// `l r` on the folder (or service admin) and the `read` scope.
    Read,
    /// Readable, plus `w`, plus the `write` scope.
    Write,
    /// Readable, plus `a` (or service admin), plus the `acl` scope.
    Acl,
    /// A service admin (with the `acl` scope).
    Admin,
    /// A staff session (tokens are revoked elsewhere).
    Logout,
}

fn need(method: &str, path: &str) -> Option<Need> {
    Some(match (method, path) {
        ("get", "/api/v1/me") => Need::Me,
        ("delete", "/api/v1/session") => Need::Logout,
        (
            "get",
            "/api/v1/folders" | "/api/v1/messages" | "/api/v1/events" | "/api/v1/events/stream",
        ) => Need::List,
        ("get", "/api/v1/folders/{id}" | "/api/v1/messages/{id}") => Need::Read,
        ("patch", "/api/v1/messages/{id}") => Need::Write,
        ("get", "/api/v1/folders/{id}/acl")
        | ("put" | "delete", "/api/v1/folders/{id}/acl/{identifier}") => Need::Acl,
        ("get" | "post", "/api/v1/tokens")
        | ("delete", "/api/v1/tokens/{id}")
        | ("get" | "post", "/api/v1/webhooks")
        | ("get" | "patch" | "delete", "/api/v1/webhooks/{id}")
        | ("get", "/api/v1/webhooks/{id}/deliveries")
        | ("post", "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay")
        | ("post", "/api/v1/webhooks/{id}/ping") => Need::Admin,
        _ => return None,
    })
}

/// Callers with valid credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// No rights on the folder (dave).
    NoRights,
    /// `lr` (bob).
    Reader,
    /// `lrsw` (alice).
    Writer,
    /// `lra` (erin).
    FolderAdmin,
    /// Service admin without IMAP rights (carol).
    ServiceAdmin,
    /// alice's token with only `read`.
    ReadToken,
    /// alice's token with only `write`.
    WriteToken,
}

fn expected(need: Need, caller: Caller) -> u16 {
    use Caller::*;
    let token = matches!(caller, ReadToken | WriteToken);
    match need {
        Need::Me => 200,
        Need::Logout => {
            if token {
                400
            } else {
                204
            }
        }
        Need::List => {
            if caller == WriteToken {
                403
            } else {
                200
            }
        }
        Need::Read => match caller {
            WriteToken => 403,
            NoRights => 404,
            _ => 200,
        },
        Need::Write => match caller {
            ReadToken | WriteToken => 403,
            NoRights => 404,
            Writer => 200,
            Reader | FolderAdmin | ServiceAdmin => 403,
        },
        Need::Acl => match caller {
            ReadToken | WriteToken => 403,
            NoRights => 404,
            FolderAdmin | ServiceAdmin => 200,
            Reader | Writer => 403,
        },
        Need::Admin => match caller {
            ServiceAdmin => 0, // 200, 201 or 204 by route
            _ => 403,
        },
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Credentials that must all be refused with 401.
fn bad_credentials(valid_session: &str) -> Vec<(&'static str, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = json!({ "alg": "HS256", "typ": "JWT" });
    let claims = |exp: i64| json!({ "iss": "flagpost", "aud": "flagpost-api", "sub": "carol", "exp": exp, "iat": now - 10, "jti": "forged" });
    let parts: Vec<&str> = valid_session.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("carol");
    vec![
        (
            "expired",
            sign(&header, &claims(now - 3600), SECRET.as_bytes()),
        ),
        (
            "tampered",
            format!("{}.{}.{}", parts[0], b64(&payload), parts[2]),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({ "alg": "none", "typ": "JWT" })),
                b64(&claims(now + 3600))
            ),
        ),
        (
            "wrong key",
            sign(
                &header,
                &claims(now + 3600),
                b"another-key-of-at-least-thirty-two-bytes!!",
            ),
        ),
        ("garbage", "not-a-token".to_owned()),
        (
            "unknown integration token",
            "fpt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
    ]
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_contract_says() {
    let dovecot = support_fixture().await.unwrap();
    dovecot.add_user_ready("carol", "carol-pw").await.unwrap();
    dovecot.add_user_ready("dave", "dave-pw").await.unwrap();
    dovecot.add_user_ready("erin", "erin-pw").await.unwrap();
    let service = flagpost_e2e::SERVICE_USER;
    dovecot
        .set_acl("support", "Queue", service, "lrswa")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", "alice", "lrsw")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", "bob", "lr")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", "erin", "lra")
        .await
        .unwrap();
    let uid = dovecot
        .append("support", "Queue", &message("BOLA", "x@example.com"))
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_ADMINS", "carol".into()));
    env.push(("FLAGPOST_JWT_SECRET", SECRET.into()));
    // Webhook targets on loopback (nothing listens there: deliveries just fail).
    env.push(("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "true".into()));
    let serve = Serve::start(&env).await.unwrap();
    let api = Api::new(serve.addr);

    let carol = api.login("carol", "carol-pw").await.unwrap();
    let (folder, msg) = eventually(
        std::time::Duration::from_secs(15),
        "the message mirrored",
        || async {
            let r = api.get("/api/v1/messages", &carol).await?;
            Ok(r.json["messages"].as_array().and_then(|m| {
                m.iter().find(|m| m["uid"] == uid).map(|m| {
                    (
                        m["folder_id"].as_str().unwrap().to_owned(),
                        m["id"].as_str().unwrap().to_owned(),
                    )
                })
            }))
        },
    )
    .await
    .unwrap();
    let make_token = |scopes: &[&str]| {
        let api = api.clone();
        let carol = carol.clone();
        let body = json!({ "name": "bola", "identity": "alice", "scopes": scopes });
        async move {
            let r = api
                .send("POST", "/api/v1/tokens", Some(&carol), Some(&body), &[])
                .await
                .unwrap();
            assert_eq!(r.status, 201, "{}", r.text);
            (
                r.json["token"].as_str().unwrap().to_owned(),
                r.json["id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let make_webhook = || {
        let api = api.clone();
        let carol = carol.clone();
        async move {
            let body = json!({ "url": "http://127.0.0.1:9/hook", "events": ["message.updated"] });
            let r = api
                .send("POST", "/api/v1/webhooks", Some(&carol), Some(&body), &[])
                .await
                .unwrap();
            assert_eq!(r.status, 201, "{}", r.text);
            r.json["id"].as_str().unwrap().to_owned()
        }
    };
    // A webhook with a delivery to replay: a flag change, then the (failing) attempt.
    let hook = make_webhook().await;
    dovecot
        .store("support", "Queue", uid, "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let delivery = eventually(std::time::Duration::from_secs(15), "a delivery", || async {
        let r = api
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &carol)
            .await?;
        Ok(r.json["deliveries"][0]["id"].as_str().map(str::to_owned))
    })
    .await
    .unwrap();
    let (read_token, _) = make_token(&["read"]).await;
    let (write_token, _) = make_token(&["write"]).await;

    let mut sessions = std::collections::HashMap::new();
    for (user, pw) in [
        ("dave", "dave-pw"),
        ("bob", "bob-pw"),
        ("alice", "alice-pw"),
        ("erin", "erin-pw"),
    ] {
        sessions.insert(user, api.login(user, pw).await.unwrap());
    }
    sessions.insert("carol", carol.clone());
    let doc: Value = serde_json::from_str(&flagpost_api::openapi::openapi_json()).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if path == "/api/v1/session" && method == "post" {
                // The one public route: no credentials needed, bad ones are 401.
                assert_eq!(
                    op["security"],
                    json!([{}]),
                    "login must be documented as public"
                );
                continue;
            }
            let need = need(method, path).unwrap_or_else(|| {
                panic!("{method} {path} has no row in the authorisation matrix")
            });
            let body = match need {
                Need::Write => Some(json!({ "flagged": true })),
                Need::Acl if method == "put" => Some(json!({ "rights": "l" })),
                Need::Admin if method == "post" && path == "/api/v1/tokens" => {
                    Some(json!({ "name": "t", "identity": "alice", "scopes": ["read"] }))
                }
                Need::Admin if method == "post" && path == "/api/v1/webhooks" => {
                    Some(json!({ "url": "http://127.0.0.1:9/hook" }))
                }
                Need::Admin if method == "patch" => Some(json!({ "enabled": true })),
                _ => None,
            };
            let concrete = |token_id: &str, webhook_id: &str| {
                let p = path
                    .replace("{identifier}", "zed")
                    .replace("/tokens/{id}", &format!("/tokens/{token_id}"))
                    .replace("/webhooks/{id}", &format!("/webhooks/{webhook_id}"))
                    .replace("{delivery_id}", &delivery);
                if p.starts_with("/api/v1/messages/") {
                    p.replace("{id}", &msg)
                } else {
                    p.replace("{id}", &folder)
                }
            };
            // Without valid credentials: 401, whatever else is wrong.
            let mut bad: Vec<(&str, Option<String>)> = vec![("no credentials", None)];
            bad.extend(
                bad_credentials(&carol)
                    .into_iter()
                    .map(|(k, t)| (k, Some(t))),
            );
            for (kind, token) in &bad {
                let r = api
                    .send(
                        &method.to_uppercase(),
                        &concrete("1", &hook),
                        token.as_deref(),
                        body.as_ref(),
                        &[],
                    )
                    .await
                    .unwrap();
                checked += 1;
                if r.status != 401 || r.header("content-type") != Some("application/problem+json") {
                    failures.push(format!(
                        "{method} {path} with {kind}: {} {}",
                        r.status, r.text
                    ));
                }
            }
            for caller in [
                Caller::NoRights,
                Caller::Reader,
                Caller::Writer,
                Caller::FolderAdmin,
                Caller::ServiceAdmin,
                Caller::ReadToken,
                Caller::WriteToken,
            ] {
                let user = match caller {
                    Caller::NoRights => "dave",
                    Caller::Reader => "bob",
                    Caller::Writer | Caller::ReadToken | Caller::WriteToken => "alice",
                    Caller::FolderAdmin => "erin",
                    Caller::ServiceAdmin => "carol",
                };
                let token = match caller {
                    Caller::ReadToken => read_token.clone(),
                    Caller::WriteToken => write_token.clone(),
                    // Logging out ends the session: use a fresh one.
                    _ if need == Need::Logout => {
                        api.login(user, &format!("{user}-pw")).await.unwrap()
                    }
                    _ => sessions[user].clone(),
                };
                let (_, victim) = make_token(&["read"]).await;
                // Deleting needs a webhook of its own; everything else uses the one with a delivery.
                let webhook = if method == "delete" && path == "/api/v1/webhooks/{id}" {
                    make_webhook().await
                } else {
                    hook.clone()
                };
                let url = concrete(&victim, &webhook);
                let reply = if path.ends_with("/stream") {
                    // Only the status matters; the stream stays open otherwise.
                    api.send_head_only(&url, &token).await.unwrap()
                } else {
                    api.send(
                        &method.to_uppercase(),
                        &url,
                        Some(&token),
                        body.as_ref(),
                        &[],
                    )
                    .await
                    .unwrap()
                    .status
                };
                checked += 1;
                let want = expected(need, caller);
                let ok = if want == 0 {
                    (200..300).contains(&reply)
                } else {
                    reply == want
                };
                if !ok {
                    failures.push(format!(
                        "{method} {path} as {caller:?}: got {reply}, want {want}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 200, "only {checked} checks");
}
