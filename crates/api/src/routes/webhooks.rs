//! `/webhooks` (service admins): subscriptions, their delivery log, replay and ping.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use flagpost_store::webhooks::{DeliveryRow, WebhookChange, WebhookRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Params, parse_id};

/// Event types a webhook may subscribe to.
pub const EVENT_TYPES: [&str; 8] = [
    "message.added",
    "message.updated",
    "message.removed",
    "folder.added",
    "folder.removed",
    "folder.reset",
    "folder.acl_changed",
    "folder.sync_changed",
];

/// A webhook to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Where to POST events (http or https).
    pub url: String,
    /// The IMAP user whose rights decide which folders' events it receives (default: the
    /// caller).
    pub identity: Option<String>,
    /// Event types to send (default: all).
    pub events: Option<Vec<String>>,
    /// Folder ids to send events of (default: every folder the identity may read).
    pub folders: Option<Vec<String>>,
}

/// A change to a webhook; absent fields stay as they are, `null` filters mean "all".
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New event types (`null`: all).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    /// New folder ids (`null`: all the identity may read).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub folders: Option<Option<Vec<String>>>,
    /// Enable or disable (re-enabling skips what happened while it was off).
    pub enabled: Option<bool>,
}

fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A webhook (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    /// Opaque id.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// The IMAP user whose rights decide what it receives.
    pub identity: String,
    /// Event types (null: all).
    pub events: Option<Vec<String>>,
    /// Folder ids (null: all the identity may read).
    pub folders: Option<Vec<String>>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled, e.g. the receiver answered 410.
    pub disabled_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A new webhook, with its signing secret: shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// Standard Webhooks signing secret (`whsec_…`).
    pub secret: String,
}

/// Webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// All webhooks.
    pub webhooks: Vec<WebhookOut>,
}

/// One delivery of one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// Opaque id.
    pub id: String,
    /// The event (also the `webhook-id` header).
    pub event_id: i64,
    /// Attempts made.
    pub attempt: i32,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// The receiver's last HTTP status.
    pub response_status: Option<i32>,
    /// The receiver's last answer, truncated to 1 KiB.
    pub response_body: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The last attempt's duration.
    pub duration_ms: Option<i32>,
    /// When the last attempt was made.
    pub at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The latest 100 deliveries, newest first.
    pub deliveries: Vec<DeliveryOut>,
}

/// What a ping did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PingOut {
    /// Whether the receiver answered 2xx.
    pub delivered: bool,
    /// Its HTTP status.
    pub response_status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

fn out(w: WebhookRow) -> WebhookOut {
    WebhookOut {
        id: w.id.to_string(),
        url: w.url,
        identity: w.identity,
        events: w.events,
        folders: w.folders.map(|f| f.iter().map(i64::to_string).collect()),
        enabled: w.enabled,
        disabled_reason: w.disabled_reason,
        created_at: w.created_at,
    }
}

fn delivery_out(d: DeliveryRow) -> DeliveryOut {
    DeliveryOut {
        id: d.id.to_string(),
        event_id: d.event_id,
        attempt: d.attempt,
        next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
        status: d.status,
        response_status: d.response_status,
        response_body: d.response_body,
        error: d.error,
        duration_ms: d.duration_ms,
        at: d.at,
    }
}

fn check_events(events: &[String]) -> ApiResult<Vec<String>> {
    if let Some(bad) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unknown event type {bad:?} (known: {})",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut v = events.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

async fn check_folders(state: &AppState, folders: &[String]) -> ApiResult<Vec<i64>> {
    let known = flagpost_store::folders::active_folders(&state.pool).await?;
    folders
        .iter()
        .map(|f| {
            parse_id(f)
                .filter(|id| known.iter().any(|k| k.id == *id))
                .ok_or_else(|| ApiError::BadRequest(format!("no watched folder has id {f:?}")))
        })
        .collect()
}

async fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    crate::webhooks::check_url(url, state.webhook_config.allow_private)
        .await
        .map(|u| u.to_string())
        .map_err(|e| ApiError::BadRequest(format!("webhook URL refused: {e}")))
}

async fn find(state: &AppState, id: &str) -> ApiResult<WebhookRow> {
    let id = parse_id(id).ok_or_else(|| ApiError::NotFound("no such webhook".into()))?;
    flagpost_store::webhooks::webhook(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such webhook".into()))
}

const ADMIN_ONLY: &str = "Not a service admin (or lacking the acl scope)";

/// Creates a webhook (service admins).
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "createWebhook", tag = "webhooks",
    request_body = WebhookCreate,
    responses(
        (status = 201, description = "Created; the secret is shown only now", body = WebhookCreated),
        (status = 400, description = "Invalid URL (scheme, private target), event type or folder", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
    ApiJson(req): ApiJson<WebhookCreate>,
) -> ApiResult<impl IntoResponse> {
    params.only(&[])?;
    principal.need_admin()?;
    let url = check_url(&state, &req.url).await?;
    let identity = req.identity.unwrap_or_else(|| principal.username.clone());
    if identity.is_empty() || identity.len() > 255 || identity.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "identity must be an IMAP user name".into(),
        ));
    }
    let events = req.events.as_deref().map(check_events).transpose()?;
    let folders = match &req.folders {
        Some(f) => Some(check_folders(&state, f).await?),
        None => None,
    };
    let secret = crate::webhooks::new_secret();
    let row = flagpost_store::webhooks::create_webhook(
        &state.pool,
        &url,
        &identity,
        events.as_deref(),
        folders.as_deref(),
        &secret,
        &principal.username,
    )
    .await?;
    state.webhooks_changed.notify_one();
    tracing::info!(webhook.id = row.id, by = %principal.username, "webhook created");
    Ok((
        StatusCode::CREATED,
        ApiJson(WebhookCreated {
            webhook: out(row),
            secret,
        }),
    ))
}

/// Lists webhooks (service admins).
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    responses(
        (status = 200, description = "Webhooks", body = WebhookList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<WebhookList>> {
    params.only(&[])?;
    principal.need_admin()?;
    let hooks = flagpost_store::webhooks::list_webhooks(&state.pool).await?;
    Ok(ApiJson(WebhookList {
        webhooks: hooks.into_iter().map(out).collect(),
    }))
}

/// One webhook (service admins).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<WebhookOut>> {
    params.only(&[])?;
    principal.need_admin()?;
    Ok(ApiJson(out(find(&state, &id).await?)))
}

/// Changes a webhook (service admins).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", operation_id = "patchWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The webhook after the change", body = WebhookOut),
        (status = 400, description = "Invalid URL, event type or folder", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
    ApiJson(req): ApiJson<WebhookPatch>,
) -> ApiResult<ApiJson<WebhookOut>> {
    params.only(&[])?;
    principal.need_admin()?;
    let hook = find(&state, &id).await?;
    let url = match &req.url {
        Some(u) => Some(check_url(&state, u).await?),
        None => None,
    };
    let events = match &req.events {
        Some(Some(e)) => Some(Some(check_events(e)?)),
        Some(None) => Some(None),
        None => None,
    };
    let folders = match &req.folders {
        Some(Some(f)) => Some(Some(check_folders(&state, f).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let row = flagpost_store::webhooks::update_webhook(
        &state.pool,
        hook.id,
        &WebhookChange {
            url,
            events,
            folders,
            enabled: req.enabled,
        },
    )
    .await?
    .ok_or_else(|| ApiError::NotFound("no such webhook".into()))?;
    state.webhooks_changed.notify_one();
    Ok(ApiJson(out(row)))
}

/// Deletes a webhook and its delivery log (service admins).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<StatusCode> {
    params.only(&[])?;
    principal.need_admin()?;
    let hook = find(&state, &id).await?;
    flagpost_store::webhooks::delete_webhook(&state.pool, hook.id).await?;
    state.webhooks_changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's latest deliveries (service admins).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "listDeliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "Deliveries, newest first", body = DeliveryList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<DeliveryList>> {
    params.only(&[])?;
    principal.need_admin()?;
    let hook = find(&state, &id).await?;
    let rows = flagpost_store::webhooks::list_deliveries(&state.pool, hook.id, 100).await?;
    Ok(ApiJson(DeliveryList {
        deliveries: rows.into_iter().map(delivery_out).collect(),
    }))
}

/// Sends a delivery's event again, now, with the same `webhook-id` (service admins).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/replay", operation_id = "replayDelivery", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("delivery_id" = String, Path, description = "Delivery id"),
    ),
    responses(
        (status = 202, description = "Queued as a new delivery, due now", body = DeliveryOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook or delivery", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
    params: Params,
    principal: Principal,
) -> ApiResult<impl IntoResponse> {
    params.only(&[])?;
    principal.need_admin()?;
    let hook = find(&state, &id).await?;
    let delivery =
        parse_id(&delivery_id).ok_or_else(|| ApiError::NotFound("no such delivery".into()))?;
    let row = flagpost_store::webhooks::replay(&state.pool, hook.id, delivery)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such delivery".into()))?;
    state.webhooks_changed.notify_one();
    Ok((StatusCode::ACCEPTED, ApiJson(delivery_out(row))))
}

/// Sends a test event (`webhook.ping`) now and reports the receiver's answer (service admins).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/ping", operation_id = "pingWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "What the receiver answered", body = PingOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = ADMIN_ONLY, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ping(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<PingOut>> {
    params.only(&[])?;
    principal.need_admin()?;
    let hook = find(&state, &id).await?;
    let id = format!("ping_{}", crate::auth::random_secret());
    let body = serde_json::json!({
        "id": id,
        "type": "webhook.ping",
        "at": Utc::now(),
        "data": { "webhook_id": hook.id.to_string() },
    })
    .to_string();
    let client = crate::webhooks::http_client(&state.webhook_config);
    let a = crate::webhooks::send(
        &client,
        &state.webhook_config,
        &hook.url,
        &hook.secret,
        &id,
        &body,
    )
    .await;
    if a.status == Some(410) {
        // The contract's rule for every send: a receiver that answers 410 is gone.
        flagpost_store::webhooks::disable_webhook(
            &state.pool,
            hook.id,
            "the receiver answered 410 Gone to a ping",
        )
        .await?;
        tracing::info!(
            webhook.id = hook.id,
            "webhook disabled: its receiver answered 410 to a ping"
        );
    }
    Ok(ApiJson(PingOut {
        delivered: a.delivered(),
        response_status: a.status,
        error: a.error,
        duration_ms: a.duration.as_millis() as u64,
    }))
}
