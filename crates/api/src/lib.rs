//! Flagpost's HTTP side: the axum router and its graceful server. For now: liveness and
//! readiness; the REST API, stream and dashboard grow here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use flagpost_store::PgPool;
use tokio_util::sync::CancellationToken;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pool: PgPool,
    shutting_down: Arc<AtomicBool>,
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(state)
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

/// Serves the router on `listener` until `shutdown` is cancelled, then drains connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pool: PgPool,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = AppState {
        pool,
        shutting_down: Arc::new(AtomicBool::new(false)),
    };
    let flag = state.shutting_down.clone();
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            flag.store(true, Ordering::SeqCst);
        })
        .await
}
