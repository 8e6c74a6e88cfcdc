//! Staff sessions, integration tokens and the generated JWT key.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The channel revocations are announced on (payload `session:<id>` or `token:<id>`), so open
/// event streams of a revoked principal end at once, whichever process revoked it.
pub const REVOCATIONS_CHANNEL: &str = "flagpost_revocations";

/// Returns the value stored under `key`, storing `generate()` first when there is none. Safe
/// when several processes start at once: the first insert wins and everyone reads it.
pub async fn setting_or_insert(
    pool: &PgPool,
    key: &str,
    generate: impl FnOnce() -> String,
) -> sqlx::Result<String> {
    sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(generate())
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
}

/// Records a new staff session.
pub async fn create_session(
    pool: &PgPool,
    id: &str,
    username: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    // Expired sessions are of no use to anyone: drop a few on the way.
    sqlx::query(
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < now() - interval '1 day' LIMIT 100)",
    )
    .execute(pool)
    .await?;
    sqlx::query("INSERT INTO sessions (id, username, expires_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(username)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(drop)
}

/// Whether session `id` of `username` exists, is not revoked and has not expired.
pub async fn session_active(pool: &PgPool, id: &str, username: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND username = $2
                        AND revoked_at IS NULL AND expires_at > now())",
    )
    .bind(id)
    .bind(username)
    .fetch_one(pool)
    .await
}

/// Revokes session `id` and announces it. Returns whether it was active.
pub async fn revoke_session(pool: &PgPool, id: &str) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let n =
        sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(REVOCATIONS_CHANNEL)
        .bind(format!("session:{id}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n > 0)
}

/// An integration token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    /// Opaque id.
    pub id: i64,
    /// Name to recognise it by.
    pub name: String,
    /// The IMAP user it acts as.
    pub identity: String,
    /// `read`, `write`, `acl`.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last request made with it (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "id, name, identity, scopes, created_at, last_used_at, expires_at";

/// Stores a new token by the digest of its secret.
pub async fn create_token(
    pool: &PgPool,
    name: &str,
    identity: &str,
    scopes: &[String],
    secret_sha256: &[u8],
    created_by: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<TokenRow> {
    sqlx::query_as(&format!(
        "INSERT INTO api_tokens (name, identity, scopes, secret_sha256, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(name)
    .bind(identity)
    .bind(scopes)
    .bind(secret_sha256)
    .bind(created_by)
    .bind(expires_at)
    .fetch_one(pool)
    .await
}

/// The live (not revoked, not expired) token with this secret digest; marks it used.
pub async fn token_by_secret(
    pool: &PgPool,
    secret_sha256: &[u8],
) -> sqlx::Result<Option<TokenRow>> {
    // `last_used_at` moves at most once a minute, so busy integrations do not write a row
    // per request.
    sqlx::query_as(&format!(
        "WITH t AS (
             SELECT * FROM api_tokens WHERE secret_sha256 = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now())
         ), touched AS (
             UPDATE api_tokens a SET last_used_at = now() FROM t
             WHERE a.id = t.id AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '1 minute')
         )
         SELECT {TOKEN_COLUMNS} FROM t"
    ))
    .bind(secret_sha256)
    .fetch_optional(pool)
    .await
}

/// Whether token `id` is still live.
pub async fn token_active(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL
                        AND (expires_at IS NULL OR expires_at > now()))",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}

/// Live tokens, newest first.
pub async fn list_tokens(pool: &PgPool) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE revoked_at IS NULL ORDER BY id DESC"
    ))
    .fetch_all(pool)
    .await
}

/// Revokes token `id` at once and announces it. Returns whether a live token was revoked.
pub async fn revoke_token(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(REVOCATIONS_CHANNEL)
        .bind(format!("token:{id}"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n > 0)
}
