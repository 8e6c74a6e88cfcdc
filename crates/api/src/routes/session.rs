//! `POST /session`, `DELETE /session`, `GET /me`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Credential, Principal, SESSION_COOKIE, random_secret};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::ApiJson;
use crate::gateway::GatewayError;

/// Login with IMAP credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The IMAP user name.
    pub username: String,
    /// The IMAP password (checked with the IMAP server, never stored).
    pub password: String,
}

/// A user as the API describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// The IMAP user name.
    pub username: String,
    /// Whether the user is a service admin.
    pub admin: bool,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// Bearer token (also set as the `flagpost_session` cookie).
    pub token: String,
    /// When it stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Who logged in.
    pub user: UserOut,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    /// The IMAP user name the caller acts as.
    pub username: String,
    /// Whether it is a service admin.
    pub admin: bool,
    /// `read`, `write`, `acl` (all three for staff sessions).
    pub scopes: Vec<String>,
}

fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn valid_username(u: &str) -> bool {
    !u.is_empty() && u.len() <= 255 && !u.chars().any(char::is_control)
}

/// Log in with IMAP credentials.
#[utoipa::path(post, path = "/api/v1/session", operation_id = "login", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; also sets the `flagpost_session` cookie", body = SessionOut),
        (status = 400, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong user name or password", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 503, description = "The IMAP server cannot be reached or is not trusted", body = Problem, content_type = "application/problem+json"),
    ),
    security(()))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    if !valid_username(&req.username)
        || req.password.is_empty()
        || req.password.contains(['\r', '\n', '\0'])
    {
        return Err(ApiError::BadRequest(
            "username and password must be non-empty and free of control characters".into(),
        ));
    }
    state
        .throttle
        .before_attempt(&req.username, Some(addr.ip()))
        .map_err(ApiError::TooManyRequests)?;
    let acl_name = match state
        .gateway
        .verify_login(&req.username, &req.password)
        .await
    {
        Ok(name) => {
            state.throttle.succeeded(&req.username);
            (name != req.username).then_some(name)
        }
        Err(GatewayError::BadCredentials) => {
            state.throttle.failed(&req.username, Some(addr.ip()));
            tracing::info!(client.addr = %addr.ip(), "login refused");
            return Err(ApiError::Unauthorized(
                "invalid username or password".into(),
            ));
        }
        Err(GatewayError::InvalidArgument(d)) => return Err(ApiError::BadRequest(d)),
        Err(e) => {
            tracing::warn!(error = %e, "login: IMAP server unavailable");
            return Err(ApiError::Unavailable(
                "the IMAP server cannot be reached (or its certificate is not trusted)".into(),
            ));
        }
    };
    let jti = random_secret();
    if let Some(name) = &acl_name {
        tracing::info!(acl_name = %name, "login: the IMAP server's ACLs know this user by another name");
    }
    let (token, expires_at) = state.keys.issue(&req.username, acl_name.as_deref(), &jti)?;
    flagpost_store::auth::create_session(&state.pool, &jti, &req.username, expires_at).await?;
    let mut cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        state.keys.ttl.as_secs()
    );
    if is_https(&headers) {
        cookie.push_str("; Secure");
    }
    let body = SessionOut {
        token,
        expires_at,
        user: UserOut {
            admin: state.admins.contains(&req.username),
            username: req.username,
        },
    };
    let mut resp = ApiJson(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Log out: the session's token and cookie stop working at once.
#[utoipa::path(delete, path = "/api/v1/session", operation_id = "logout", tag = "session",
    responses(
        (status = 204, description = "Logged out; the cookie is cleared"),
        (status = 400, description = "The caller is an integration token, not a session", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    principal: Principal,
) -> ApiResult<Response> {
    let Credential::Session { id, .. } = &principal.credential else {
        return Err(ApiError::BadRequest(
            "integration tokens are revoked with DELETE /api/v1/tokens/{id}".into(),
        ));
    };
    flagpost_store::auth::revoke_session(&state.pool, id).await?;
    state.hub.revoked(&format!("session:{id}"));
    let mut cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    if is_https(&headers) {
        cookie.push_str("; Secure");
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(resp)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "getMe", tag = "session",
    responses(
        (status = 200, description = "The caller", body = MeOut),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(principal: Principal) -> ApiJson<MeOut> {
    ApiJson(MeOut {
        username: principal.username,
        admin: principal.admin,
        scopes: principal.scopes.names(),
    })
}
