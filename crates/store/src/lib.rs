//! The only crate that speaks SQL: the connection pool, the migrations over the top-level
//! `migrations/` folder, and every query of the mirror and the change feed.

pub mod api;
pub mod auth;
pub mod events;
pub mod folders;
mod json;
pub mod messages;
pub mod webhooks;

use std::time::Duration;

pub use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The embedded migrations of `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Opens a connection pool to `url`, failing within `timeout` when the server does not answer.
pub async fn connect(url: &str, timeout: Duration) -> sqlx::Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(timeout)
        // A broken connection fails its query and is dropped then; pinging before every
        // acquire would add a round trip to each of the mirror's many short queries.
        .test_before_acquire(false)
        .connect_with(options.application_name("flagpost"))
        .await
}

/// Applies every pending migration; a no-op when the database is current.
///
/// Returns the versions that were applied now.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, sqlx::migrate::MigrateError> {
    let before = applied_versions(pool).await.unwrap_or_default();
    MIGRATOR.run(pool).await?;
    let after = applied_versions(pool).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

/// The migration versions recorded as applied (empty when none ever ran).
pub async fn applied_versions(pool: &PgPool) -> sqlx::Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// The server's version (`SHOW server_version`).
pub async fn server_version(pool: &PgPool) -> sqlx::Result<String> {
    sqlx::query_scalar("SHOW server_version")
        .fetch_one(pool)
        .await
}
