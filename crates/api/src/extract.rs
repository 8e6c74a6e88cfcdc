//! Request extractors whose rejections are problem documents: JSON bodies, query strings that
//! refuse unknown parameters, and ids in paths.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; a missing content type, bad syntax or wrong shape is a 4xx problem.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::JsonRejection;
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "the body must be JSON with Content-Type: application/json".into(),
            )),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::BadRequest(format!(
                "the body is not valid JSON: {}",
                e.body_text()
            ))),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::BadRequest(format!(
                "the body does not have the expected shape: {}",
                e.body_text()
            ))),
            Err(JsonRejection::BytesRejection(e)) => {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Err(ApiError::PayloadTooLarge)
                } else {
                    Err(ApiError::BadRequest(e.body_text()))
                }
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The query string as ordered pairs, for endpoints that take repeated keys and must refuse
/// unknown ones.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl Params {
    /// Refuses parameters not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::BadRequest(format!(
                "unknown query parameter {k:?} (allowed: {})",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The value of `key` given at most once.
    pub fn one(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == key);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(ApiError::BadRequest(format!(
                "query parameter {key:?} may be given only once"
            )));
        }
        Ok(first)
    }

    /// Every value of the repeatable `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An integer in `min..=max`, or `default`.
    pub fn int(&self, key: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        match self.one(key)? {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "query parameter {key:?} must be an integer from {min} to {max}"
                ))),
            },
        }
    }

    /// `true` or `false`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.one(key)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::BadRequest(format!(
                "query parameter {key:?} must be true or false"
            ))),
        }
    }
}

/// An id as it appears in a path or query: a positive integer in decimal. Anything else names
/// nothing, so a malformed id in a path is simply not found.
pub fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|n| *n > 0)
}

/// A JSON text already rendered (by PostgreSQL), sent as `application/json`.
#[derive(Debug, Clone)]
pub struct RawJson(pub bytes::Bytes);

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.0,
        )
            .into_response()
    }
}
