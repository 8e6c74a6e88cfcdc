//! `GET /messages`, `GET /messages/{id}`, `PATCH /messages/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use flagpost_domain::Right;
use flagpost_store::api::{MessageQuery, StatusFilter};

use crate::listing_cache::ListingKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Principal;
use crate::authz::not_found;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Params, RawJson, parse_id};
use crate::gateway::{Expectation, FlagChange, FlagOutcome, GatewayError};
use crate::hub::EventOut;

/// A name and address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddressOut {
    /// Display name (RFC 2047 decoded).
    pub name: Option<String>,
    /// `local@domain`.
    pub address: Option<String>,
}

/// A message (contract §5 "Message").
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageOut {
    /// Opaque id.
    pub id: String,
    /// Its folder.
    pub folder_id: String,
    /// IMAP UID.
    pub uid: i64,
    /// `Message-ID` header.
    pub message_id: Option<String>,
    /// Subject (decoded).
    pub subject: Option<String>,
    /// First `From` address.
    pub from: AddressOut,
    /// `To` addresses.
    pub to: Vec<AddressOut>,
    /// `Date` header, when parseable.
    pub date: Option<String>,
    /// INTERNALDATE.
    pub received_at: String,
    /// RFC822.SIZE.
    pub size: i64,
    /// IMAP flags, sorted.
    pub flags: Vec<String>,
    /// `pending`, `answered` or `deleted`.
    pub status: String,
    /// `\Flagged`.
    pub flagged: bool,
    /// `\Seen` as the watching account sees it.
    pub seen: bool,
    /// Entity tag for `If-Match`.
    pub etag: String,
    /// When Flagpost first saw it.
    pub first_seen_at: String,
    /// When it became answered.
    pub answered_at: Option<String>,
    /// Last change of its flags.
    pub updated_at: String,
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// The messages, in the requested order.
    pub messages: Vec<MessageOut>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// A message with its history.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageDetail {
    /// The message.
    #[serde(flatten)]
    pub message: MessageOut,
    /// The events that touched it, oldest first (the latest 200).
    pub history: Vec<EventOut>,
}

/// A flag change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    /// Set or clear `\Answered` (needs `w`).
    pub answered: Option<bool>,
    /// Set or clear `\Flagged` (needs `w`).
    pub flagged: Option<bool>,
    /// Set or clear `\Seen` (needs `s`).
    pub seen: Option<bool>,
}

fn encode_cursor(at: DateTime<Utc>, id: i64, newest: bool) -> String {
    let dir = if newest { 'n' } else { 'o' };
    URL_SAFE_NO_PAD.encode(format!("{dir}{}.{id}", at.timestamp_micros()))
}

fn decode_cursor(c: &str, newest: bool) -> Option<(DateTime<Utc>, i64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let want = if newest { 'n' } else { 'o' };
    let rest = raw.strip_prefix(want)?;
    let (micros, id) = rest.split_once('.')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, id.parse().ok()?))
}

/// Messages of the folders the caller can read, by waiting time, a page at a time.
#[utoipa::path(get, path = "/api/v1/messages", operation_id = "listMessages", tag = "messages",
    params(
        ("folder" = Option<Vec<String>>, Query, description = "Folder id (repeatable); default: every readable folder", explode = true),
        ("status" = Option<String>, Query, description = "`pending`, `answered`, `deleted` or `any` (pending and answered; the default)"),
        ("flagged" = Option<bool>, Query, description = "Only flagged (true) or unflagged (false) messages"),
        ("q" = Option<String>, Query, description = "Text in the subject or sender (case-insensitive)"),
        ("sort" = Option<String>, Query, description = "`oldest` (default) or `newest` received first"),
        ("limit" = Option<i64>, Query, description = "1–500, default 50", minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page", body = MessageList),
        (status = 400, description = "Bad or unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A `folder` that does not exist or is not readable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
) -> ApiResult<RawJson> {
    params.only(&[
        "folder", "status", "flagged", "q", "sort", "limit", "cursor",
    ])?;
    principal.need_scope(principal.scopes.read, "read")?;
    let status = match params.one("status")? {
        None | Some("any") => StatusFilter::Any,
        Some("pending") => StatusFilter::Pending,
        Some("answered") => StatusFilter::Answered,
        Some("deleted") => StatusFilter::Deleted,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "status must be pending, answered, deleted or any".into(),
            ));
        }
    };
    let newest_first = match params.one("sort")? {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(_) => return Err(ApiError::BadRequest("sort must be oldest or newest".into())),
    };
    let flagged = params.bool("flagged")?;
    let limit = params.int("limit", 1, 500, 50)?;
    let text = params.one("q")?.map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::BadRequest(
            "q is limited to 200 characters".into(),
        ));
    }
    let after = match params.one("cursor")? {
        None => None,
        Some(c) => Some(decode_cursor(c, newest_first).ok_or_else(|| {
            ApiError::BadRequest("cursor is not a next_cursor of this listing's sort order".into())
        })?),
    };
    let access = state.access().await?;
    let folders = {
        let asked = params.all("folder");
        if asked.is_empty() {
            access.readable_folders(&principal)
        } else {
            let mut ids = Vec::with_capacity(asked.len());
            for f in asked {
                let id = parse_id(f).ok_or_else(|| not_found("folder"))?;
                access.require_read(&principal, id)?;
                ids.push(id);
            }
            ids
        }
    };
    // Text searches vary too much to be worth keeping.
    let key = text.is_none().then(|| ListingKey {
        folders: folders.clone(),
        status,
        flagged,
        newest_first,
        after,
        limit,
    });
    let cache = state.hub.listings();
    if let Some(body) = key.as_ref().and_then(|k| cache.get(k)) {
        metrics::counter!("flagpost_listing_cache_total", "outcome" => "hit").increment(1);
        return Ok(RawJson(body));
    }
    let generation = cache.generation();
    let rows = flagpost_store::api::list_messages(
        &state.pool,
        &MessageQuery {
            folders: &folders,
            status,
            flagged,
            text,
            newest_first,
            after,
            limit,
        },
    )
    .await?;
    let next = if rows.len() as i64 == limit {
        rows.last()
            .map(|r| encode_cursor(r.received_at, r.id, newest_first))
    } else {
        None
    };
    let mut body = String::with_capacity(rows.iter().map(|r| r.json.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"messages\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&r.json);
    }
    body.push_str("],\"next_cursor\":");
    body.push_str(&serde_json::to_string(&next).map_err(ApiError::internal)?);
    body.push('}');
    let body = bytes::Bytes::from(body);
    if let Some(key) = key {
        metrics::counter!("flagpost_listing_cache_total", "outcome" => "miss").increment(1);
        cache.put(key, body.clone(), generation);
    }
    Ok(RawJson(body))
}

async fn readable_message(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<(
    flagpost_store::api::MessageRow,
    std::sync::Arc<crate::authz::Access>,
)> {
    let id = parse_id(id).ok_or_else(|| not_found("message"))?;
    let row = flagpost_store::api::message(&state.pool, id)
        .await?
        .ok_or_else(|| not_found("message"))?;
    let access = state.access().await?;
    access
        .require_read(principal, row.folder_id)
        .map_err(|e| match e {
            ApiError::NotFound(_) => not_found("message"),
            e => e,
        })?;
    Ok((row, access))
}

fn with_etag(body: String, etag: &str) -> Response {
    let mut resp = RawJson(body.into()).into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// One message with its history.
#[utoipa::path(get, path = "/api/v1/messages/{id}", operation_id = "getMessage", tag = "messages",
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message and the events that touched it", body = MessageDetail,
         headers(("ETag" = String, description = "The message's entity tag"))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message, or its folder is not readable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    principal: Principal,
) -> ApiResult<Response> {
    params.only(&[])?;
    principal.need_scope(principal.scopes.read, "read")?;
    let (row, _) = readable_message(&state, &principal, &id).await?;
    let history: Vec<EventOut> = flagpost_store::api::message_history(&state.pool, row.id, 200)
        .await?
        .into_iter()
        .map(EventOut::from)
        .collect();
    let mut v: serde_json::Value = serde_json::from_str(&row.json).map_err(ApiError::internal)?;
    v["history"] = serde_json::to_value(history).map_err(ApiError::internal)?;
    Ok(with_etag(v.to_string(), &row.etag))
}

/// Changes a message's flags on the IMAP server and returns it as it is now.
#[utoipa::path(patch, path = "/api/v1/messages/{id}", operation_id = "patchMessage", tag = "messages",
    params(
        ("id" = String, Path, description = "Message id"),
        ("If-Match" = Option<String>, Header, description = "The message's etag: change only if it is unchanged since (UNCHANGEDSINCE)"),
    ),
    request_body = MessagePatch,
    responses(
        (status = 200, description = "The message after the change", body = MessageOut,
         headers(("ETag" = String, description = "The new entity tag"))),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacking `w` (answered, flagged) or `s` (seen), or the write scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message, or its folder is not readable", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The message changed since the given etag", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The IMAP server is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    headers: HeaderMap,
    principal: Principal,
    ApiJson(change): ApiJson<MessagePatch>,
) -> ApiResult<Response> {
    params.only(&[])?;
    principal.need_scope(principal.scopes.write, "write")?;
    let (row, access) = readable_message(&state, &principal, &id).await?;
    let mut needed = Vec::new();
    if change.answered.is_some() || change.flagged.is_some() {
        needed.push(Right::Write);
    }
    if change.seen.is_some() {
        needed.push(Right::Seen);
    }
    access.require_rights(&principal, row.folder_id, &needed)?;

    let if_match = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::BadRequest("malformed If-Match".into()))?
                .trim()
                .to_owned(),
        ),
    };
    let conditional = match if_match.as_deref() {
        None | Some("*") => false,
        Some(tags) => {
            if !tags.split(',').any(|t| t.trim() == row.etag) {
                return Err(ApiError::PreconditionFailed(
                    "the message changed since that etag: reload it and try again".into(),
                ));
            }
            true
        }
    };
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for (want, flag) in [
        (change.answered, "\\Answered"),
        (change.flagged, "\\Flagged"),
        (change.seen, "\\Seen"),
    ] {
        match want {
            Some(true) => add.push(flag),
            Some(false) => remove.push(flag),
            None => {}
        }
    }
    if add.is_empty() && remove.is_empty() {
        return Ok(with_etag(row.json, &row.etag));
    }
    let expect = conditional.then(|| match row.modseq {
        Some(m) => Expectation::ModSeq(m as u64),
        None => Expectation::Flags(row.flags.clone()),
    });
    let (Ok(uidvalidity), Ok(uid)) = (u32::try_from(row.uidvalidity), u32::try_from(row.uid))
    else {
        return Err(ApiError::internal("stored UID out of range"));
    };
    // Should the watcher see the new flags on the server before this request records them, it
    // names this caller as the actor.
    let actor = principal.actor();
    let announcement =
        flagpost_store::api::announce_flag_write(&state.pool, row.id, &add, &remove, &actor)
            .await?;
    let stored = state
        .gateway
        .store_flags(FlagChange {
            imap_name: &row.imap_name,
            uidvalidity,
            uid,
            add,
            remove,
            expect,
        })
        .await;
    if !matches!(stored, Ok(FlagOutcome::Stored { .. })) {
        flagpost_store::api::forget_flag_write(&state.pool, announcement).await?;
    }
    let outcome = stored.map_err(|e| match e {
        GatewayError::Gone => not_found("message"),
        GatewayError::Refused(d) => ApiError::Forbidden(format!("the IMAP server refused: {d}")),
        GatewayError::InvalidArgument(d) => ApiError::BadRequest(d),
        GatewayError::BadCredentials | GatewayError::Unavailable(_) => {
            tracing::warn!(error = %e, "flag change: IMAP server unavailable");
            ApiError::Unavailable("the IMAP server is unavailable; nothing was changed".into())
        }
    })?;
    match outcome {
        FlagOutcome::Stored { flags, modseq } => {
            let now = flagpost_store::api::record_flag_write(
                &state.pool,
                row.id,
                row.uidvalidity,
                &flags,
                modseq.map(|m| m as i64),
                &actor,
                Some(announcement),
            )
            .await?
            .ok_or_else(|| not_found("message"))?;
            // The caller's next listing shows its own write.
            state.hub.listings().invalidate();
            metrics::counter!("flagpost_api_flag_changes_total").increment(1);
            Ok(with_etag(now.json, &now.etag))
        }
        FlagOutcome::Conflict => Err(ApiError::PreconditionFailed(
            "the message was changed by someone else since that etag; nothing was changed".into(),
        )),
        FlagOutcome::Gone => Err(not_found("message")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_the_other_order() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let c = encode_cursor(at, 42, false);
        assert_eq!(decode_cursor(&c, false), Some((at, 42)));
        assert_eq!(decode_cursor(&c, true), None);
        assert_eq!(decode_cursor("garbage!", false), None);
    }
}
