//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.
//!
//! Client errors carry a detail that helps the caller; a server error's cause is logged once,
//! here, and the response only says that something failed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

/// A failed request.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 401: no valid credentials.
    Unauthorized(String),
    /// 403: authenticated, but lacking the right or scope.
    Forbidden(String),
    /// 404: absent, or not visible to the caller.
    NotFound(String),
    /// 405.
    MethodNotAllowed,
    /// 409: the state does not allow it.
    Conflict(String),
    /// 412: `If-Match` did not match.
    PreconditionFailed(String),
    /// 413.
    PayloadTooLarge,
    /// 415.
    UnsupportedMediaType(String),
    /// 422: well-formed but invalid values.
    Unprocessable(String),
    /// 429 with `Retry-After` seconds.
    TooManyRequests(u64),
    /// 502: the IMAP server answered in a way Flagpost cannot use.
    BadGateway(String),
    /// 503: a dependency is unavailable.
    Unavailable(String),
    /// 500: logged, never shown.
    Internal(String),
}

impl ApiError {
    /// An internal error with its cause (logged when the response is built).
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(cause.to_string())
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", d.clone()),
            ApiError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, "unauthorized", d.clone()),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "forbidden", d.clone()),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not-found", d.clone()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this method is not allowed on this resource".into(),
            ),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", d.clone()),
            ApiError::PreconditionFailed(d) => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                d.clone(),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "the request body is too large".into(),
            ),
            ApiError::UnsupportedMediaType(d) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                d.clone(),
            ),
            ApiError::Unprocessable(d) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", d.clone())
            }
            ApiError::TooManyRequests(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                format!("too many attempts; try again in {secs} s"),
            ),
            ApiError::BadGateway(d) => (StatusCode::BAD_GATEWAY, "bad-gateway", d.clone()),
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", d.clone()),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred; it has been logged".into(),
            ),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::Unavailable("the database is unavailable".into())
            }
            e => ApiError::internal(format!("database: {e}")),
        }
    }
}

/// Renders a problem response.
pub fn problem_response(status: StatusCode, slug: &str, detail: String) -> Response {
    let body = Problem {
        kind: format!("urn:flagpost:problem:{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let (status, slug, detail) = self.parts();
        let mut resp = problem_response(status, slug, detail);
        if let ApiError::TooManyRequests(secs) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        resp
    }
}

/// Handlers' result.
pub type ApiResult<T> = Result<T, ApiError>;
