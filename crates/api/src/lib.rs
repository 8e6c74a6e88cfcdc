//! Flagpost's HTTP side: the axum router with the REST API of contract §5, authentication,
//! authorisation by the mirrored IMAP ACLs, the live event stream, OpenAPI, metrics, health
//! and the embedded dashboard.

pub mod auth;
pub mod authz;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod hub;
pub mod listing_cache;
pub mod openapi;
pub mod routes;
mod web;
pub mod webhooks;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use flagpost_store::PgPool;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::auth::{LoginThrottle, SessionKeys};
use crate::authz::Access;
use crate::error::{ApiError, problem_response};
use crate::gateway::ImapGateway;
use crate::hub::Hub;

/// Request bodies larger than this are refused (413).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the HTTP side is configured with.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The IMAP account that watches the folders (its MYRIGHTS are exact).
    pub service_user: String,
    /// Service admins (`FLAGPOST_ADMINS`).
    pub admins: Vec<String>,
    /// The HS256 key (`FLAGPOST_JWT_SECRET`); `None`: generated once and kept in the database.
    pub jwt_secret: Option<Vec<u8>>,
    /// How long a staff session lasts.
    pub session_ttl: Duration,
    /// Origins allowed by CORS; empty: CORS is off.
    pub cors_origins: Vec<String>,
    /// Webhook delivery settings.
    pub webhooks: webhooks::WebhookConfig,
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// The IMAP operations.
    pub gateway: Arc<dyn ImapGateway>,
    /// Session signing keys.
    pub keys: Arc<SessionKeys>,
    /// Service admins.
    pub admins: Arc<HashSet<String>>,
    /// Login throttle.
    pub throttle: Arc<LoginThrottle>,
    /// The live feed.
    pub hub: Hub,
    /// Cancelled on shutdown: streams end.
    pub shutdown: CancellationToken,
    /// Webhook delivery settings.
    pub webhook_config: webhooks::WebhookConfig,
    /// Signalled when webhooks change, so the worker looks at once.
    pub webhooks_changed: Arc<tokio::sync::Notify>,
    shutting_down: Arc<AtomicBool>,
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// Builds the state: resolves the JWT key (generating and storing one if none is
    /// configured).
    pub async fn new(
        config: &ApiConfig,
        pool: PgPool,
        gateway: Arc<dyn ImapGateway>,
        metrics: Option<PrometheusHandle>,
        shutdown: CancellationToken,
    ) -> sqlx::Result<AppState> {
        let secret = match &config.jwt_secret {
            Some(s) => s.clone(),
            None => flagpost_store::auth::setting_or_insert(&pool, "jwt_secret", || {
                format!("{}{}", auth::random_secret(), auth::random_secret())
            })
            .await?
            .into_bytes(),
        };
        let hub = Hub::new(config.service_user.as_str().into());
        hub.load_access(&pool).await?;
        Ok(AppState {
            gateway,
            keys: Arc::new(SessionKeys::new(&secret, config.session_ttl)),
            admins: Arc::new(config.admins.iter().cloned().collect()),
            throttle: Arc::default(),
            hub,
            shutdown,
            webhook_config: config.webhooks.clone(),
            webhooks_changed: Arc::default(),
            shutting_down: Arc::default(),
            metrics,
            pool,
        })
    }

    /// The current ACL snapshot (kept fresh by the hub; handlers that change an ACL refresh it
    /// before they answer).
    pub async fn access(&self) -> Result<Arc<Access>, ApiError> {
        Ok(self.hub.access())
    }

    /// Re-reads the ACL snapshot now (after this process changed an ACL).
    pub async fn refresh_access(&self) -> Result<Arc<Access>, ApiError> {
        Ok(self.hub.load_access(&self.pool).await?)
    }
}

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install_metrics() -> Option<PrometheusHandle> {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .set_buckets(&buckets)
        .ok()?
        .install_recorder()
        .ok()
}

/// The application's router.
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    use routes::{acl, events, folders, messages, session, tokens, webhooks};
    let api = Router::new()
        .route("/session", post(session::login).delete(session::logout))
        .route("/me", get(session::me))
        .route("/folders", get(folders::list))
        .route("/folders/{id}", get(folders::get))
        .route("/folders/{id}/acl", get(acl::get))
        .route(
            "/folders/{id}/acl/{identifier}",
            put(acl::put).delete(acl::delete),
        )
        .route("/messages", get(messages::list))
        .route("/messages/{id}", get(messages::get).patch(messages::patch))
        .route("/events", get(events::list))
        .route("/events/stream", get(events::stream))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/replay",
            post(webhooks::replay),
        )
        .route("/webhooks/{id}/ping", post(webhooks::ping))
        .fallback(api_not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let mut app = Router::new()
        .nest("/api/v1", api)
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(web::docs))
        .fallback(web::dashboard)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(observe))
        .with_state(state);
    if !config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PATCH,
                    Method::PUT,
                    Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    "last-event-id".parse().expect("valid header name"),
                ])
                .expose_headers([header::ETAG, header::RETRY_AFTER])
                .allow_credentials(true),
        );
    }
    app
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Records request latency and status, turns bare 4xx/5xx responses (e.g. axum's own
/// rejections) into problem documents, and adds security headers.
async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut resp = next.run(req).await;
    let status = resp.status();
    let is_problem_or_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem_or_json {
        let detail = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
            StatusCode::BAD_REQUEST => "malformed request (path, header or body)".to_owned(),
            s => s.canonical_reason().unwrap_or("error").to_lowercase(),
        };
        let headers = resp.headers().clone();
        resp = problem_response(status, "http", detail);
        for (k, v) in headers.iter() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                resp.headers_mut().insert(k, v.clone());
            }
        }
    }
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    metrics::histogram!(
        "flagpost_http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route,
        "status" => status.as_u16().to_string()
    )
    .record(start.elapsed().as_secs_f64());
    resp
}

async fn livez() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and every known migration is applied; 503 while shutting
/// down so load balancers stop sending traffic first.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutting_down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "shutting down" })),
        );
    }
    let known = flagpost_store::MIGRATOR.iter().count();
    match flagpost_store::applied_versions(&state.pool).await {
        Ok(applied) if applied.len() >= known => {
            (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
        }
        Ok(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "migrations pending" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "database unreachable" })),
            )
        }
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut body = state
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    // Watcher states are read from the mirror, so they hold across restarts and processes.
    if let Ok(counts) = flagpost_store::api::sync_state_counts(&state.pool).await {
        body.push_str("# HELP flagpost_folders Watched folders by sync state.\n");
        body.push_str("# TYPE flagpost_folders gauge\n");
        for (s, n) in counts {
            body.push_str(&format!("flagpost_folders{{state=\"{s}\"}} {n}\n"));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::openapi_json(),
    )
        .into_response()
}

/// Serves the router on `listener` until `shutdown` is cancelled; then `/readyz` answers 503
/// and the event streams end, while requests are still served until `drained` completes (the
/// caller's own shutdown, e.g. the watchers logging out), and only then does the listener
/// close and in-flight requests drain.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &ApiConfig,
    drained: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let flag = state.shutting_down.clone();
    let hub = tokio::spawn(state.hub.clone().run(state.pool.clone(), shutdown.clone()));
    let worker = tokio::spawn(webhooks::run(state.clone(), shutdown.clone()));
    let app = router(state, config);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.cancelled().await;
        flag.store(true, Ordering::SeqCst);
        drained.await;
    })
    .await;
    let _ = hub.await;
    let _ = worker.await;
    result
}
