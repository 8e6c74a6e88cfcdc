//! `POST /tokens`, `GET /tokens`, `DELETE /tokens/{id}` (service admins).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Principal, Scopes, new_token_secret, token_digest};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Params, parse_id};

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// A name to recognise it by.
    pub name: String,
    /// The IMAP user whose rights it acts with.
    pub identity: String,
    /// Any of `read`, `write`, `acl`.
    pub scopes: Vec<String>,
    /// When it stops working (default: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    /// Opaque id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The IMAP user it acts as.
    pub identity: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last use (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new token, with its secret: shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    /// Opaque id.
    pub id: String,
    /// The secret: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Name.
    pub name: String,
    /// The IMAP user it acts as.
    pub identity: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Live tokens, newest first.
    pub tokens: Vec<TokenOut>,
}

impl From<flagpost_store::auth::TokenRow> for TokenOut {
    fn from(t: flagpost_store::auth::TokenRow) -> TokenOut {
        TokenOut {
            id: t.id.to_string(),
            name: t.name,
            identity: t.identity,
            scopes: t.scopes,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
        }
    }
}

/// Checks a new token's fields; returns its scopes in canonical order.
pub fn validate_new_token(
    name: &str,
    identity: &str,
    scopes: &[String],
    expires_at: Option<DateTime<Utc>>,
) -> Result<Vec<String>, String> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err("name must be 1 to 200 characters without control characters".into());
    }
    if identity.is_empty() || identity.len() > 255 || identity.chars().any(char::is_control) {
        return Err(
            "identity must be an IMAP user name (1 to 255 bytes, no control characters)".into(),
        );
    }
    if scopes.is_empty() {
        return Err("scopes must name at least one of read, write, acl".into());
    }
    let parsed = Scopes::parse(scopes.iter().map(String::as_str))?;
    if expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err("expires_at must be in the future".into());
    }
    Ok(parsed.names())
}

/// Creates an integration token (service admins).
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "createToken", tag = "tokens",
    request_body = TokenCreate,
    responses(
        (status = 201, description = "Created; the secret is shown only now", body = TokenCreated),
        (status = 400, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service admin (or lacking the acl scope)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
    ApiJson(req): ApiJson<TokenCreate>,
) -> ApiResult<impl IntoResponse> {
    params.only(&[])?;
    principal.need_admin()?;
    let scopes = validate_new_token(&req.name, &req.identity, &req.scopes, req.expires_at)
        .map_err(ApiError::BadRequest)?;
    let secret = new_token_secret();
    let row = flagpost_store::auth::create_token(
        &state.pool,
        req.name.trim(),
        &req.identity,
        &scopes,
        &token_digest(&secret),
        Some(&principal.username),
        req.expires_at,
    )
    .await?;
    tracing::info!(token.id = row.id, by = %principal.username, "integration token created");
    Ok((
        StatusCode::CREATED,
        ApiJson(TokenCreated {
            id: row.id.to_string(),
            token: secret,
            name: row.name,
            identity: row.identity,
            scopes: row.scopes,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }),
    ))
}

/// Lists live integration tokens, without secrets (service admins).
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "listTokens", tag = "tokens",
    responses(
        (status = 200, description = "Tokens", body = TokenList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service admin (or lacking the acl scope)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<TokenList>> {
    params.only(&[])?;
    principal.need_admin()?;
    let tokens = flagpost_store::auth::list_tokens(&state.pool).await?;
    Ok(ApiJson(TokenList {
        tokens: tokens.into_iter().map(TokenOut::from).collect(),
    }))
}

/// Revokes a token at once; its open event streams end (service admins).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revokeToken", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a service admin (or lacking the acl scope)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<StatusCode> {
    params.only(&[])?;
    principal.need_admin()?;
    let id = parse_id(&id).ok_or_else(|| ApiError::NotFound("no such token".into()))?;
    if flagpost_store::auth::revoke_token(&state.pool, id).await? {
        state.hub.revoked(&format!("token:{id}"));
        tracing::info!(token.id = id, by = %principal.username, "integration token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such token".into()))
    }
}
