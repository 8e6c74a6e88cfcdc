//! `GET /events` (the change feed) and `GET /events/stream` (the same, live, as Server-Sent
//! Events). A principal receives the events of a folder only while it may read that folder:
//! the feed checks at read time, the stream at every batch (see `hub`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Credential, Principal};
use crate::authz::{Access, not_found};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Params, parse_id};
use crate::hub::{EventOut, PAGE, WireEvent};

/// A page of the change feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Events with `id > after`, oldest first.
    pub events: Vec<EventOut>,
    /// Pass as `after` to continue.
    pub next_after: i64,
}

/// A stream that falls this far behind is told to `resync` instead of being replayed.
const RESYNC_BACKLOG: i64 = 50_000;

fn folder_filter(
    params: &Params,
    access: &Access,
    principal: &Principal,
) -> ApiResult<Option<Vec<i64>>> {
    let asked = params.all("folder");
    if asked.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::with_capacity(asked.len());
    for f in asked {
        let id = parse_id(f).ok_or_else(|| not_found("folder"))?;
        access.require_read(principal, id)?;
        ids.push(id);
    }
    Ok(Some(ids))
}

/// The change feed: events after `after`, of the folders the caller can read now.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "listEvents", tag = "events",
    params(
        ("after" = Option<i64>, Query, description = "Return events with a greater id (default 0)", minimum = 0),
        ("limit" = Option<i64>, Query, description = "1–1000, default 100", minimum = 1, maximum = 1000),
        ("folder" = Option<Vec<String>>, Query, description = "Only these folders (repeatable)", explode = true),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "Bad or unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A `folder` that does not exist or is not readable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Params,
    principal: Principal,
) -> ApiResult<ApiJson<EventList>> {
    params.only(&["after", "limit", "folder"])?;
    principal.need_scope(principal.scopes.read, "read")?;
    let after = params.int("after", 0, i64::MAX, 0)?;
    let limit = params.int("limit", 1, 1000, 100)?;
    let access = state.access().await?;
    let folders = match folder_filter(&params, &access, &principal)? {
        Some(ids) => ids,
        None => access.readable_events_folders(&principal),
    };
    let rows =
        flagpost_store::events::list_events(&state.pool, after, limit, Some(&folders)).await?;
    let next_after = rows.last().map_or(after, |r| r.id);
    if next_after > state.hub.head() {
        // This caller saw events the hub has not broadcast yet: its next listing must show
        // them too.
        state.hub.listings().invalidate();
    }
    Ok(ApiJson(EventList {
        events: rows.into_iter().map(EventOut::from).collect(),
        next_after,
    }))
}

/// The change feed, live, as Server-Sent Events.
#[utoipa::path(get, path = "/api/v1/events/stream", operation_id = "streamEvents", tag = "events",
    params(
        ("after" = Option<i64>, Query, description = "Start after this event id (default: now)", minimum = 0),
        ("folder" = Option<Vec<String>>, Query, description = "Only these folders (repeatable)", explode = true),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (sent by EventSource on reconnect; wins over `after`)"),
    ),
    responses(
        (status = 200, description = "An event stream: `id:` is the event id, `event:` its type, `data:` the event JSON. `event: resync` means events were skipped: reload state.",
         content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad or unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Token lacks the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A `folder` that does not exist or is not readable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    params: Params,
    headers: HeaderMap,
    principal: Principal,
) -> ApiResult<Response> {
    params.only(&["after", "folder"])?;
    principal.need_scope(principal.scopes.read, "read")?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be an event id".into()))?,
        ),
    };
    let after = params.int("after", 0, i64::MAX, -1)?;
    let access = state.access().await?;
    let only = folder_filter(&params, &access, &principal)?;
    // Subscribe before reading the head, so nothing falls between the two.
    let batches = state.hub.subscribe();
    let revocations = state.hub.revocations();
    let start = last_event_id
        .or((after >= 0).then_some(after))
        .unwrap_or_else(|| state.hub.head());
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(run_stream(
        state.clone(),
        principal,
        only,
        start,
        batches,
        revocations,
        tx,
    ));
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response())
}

struct Client {
    state: AppState,
    principal: Principal,
    only: Option<Vec<i64>>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    /// The position delivered so far: every event with a smaller or equal id was sent or was
    /// not for this client.
    sent: i64,
}

impl Client {
    fn wants(&self, access: &Access, e: &WireEvent) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&e.folder_id))
            && access.can_read(&self.principal, e.folder_id)
    }

    async fn send(&mut self, e: &WireEvent) -> bool {
        let ev = Event::default()
            .id(e.id.to_string())
            .event(&*e.kind)
            .data(&*e.json);
        self.tx.send(Ok(ev)).await.is_ok()
    }

    /// Delivers events `(sent, to]` from the database, a page at a time.
    async fn catch_up(&mut self, to: i64) -> bool {
        while self.sent < to {
            let access = self.state.hub.access();
            let folders = match &self.only {
                Some(o) => o
                    .iter()
                    .copied()
                    .filter(|f| access.can_read(&self.principal, *f))
                    .collect(),
                None => access.readable_events_folders(&self.principal),
            };
            // Bounded by `to`: events committed after it are the hub's to deliver, and a page
            // that reached past it would otherwise be read again and again.
            let rows = match flagpost_store::events::list_events_until(
                &self.state.pool,
                self.sent,
                to,
                PAGE,
                Some(&folders),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: cannot read the feed");
                    return false;
                }
            };
            let full = rows.len() as i64 == PAGE;
            for row in rows {
                let id = row.id;
                if !self.send(&WireEvent::new(row)).await {
                    return false;
                }
                self.sent = id;
            }
            if !full {
                self.sent = self.sent.max(to);
            }
        }
        true
    }

    fn revoked_by(&self, what: &str) -> bool {
        match &self.principal.credential {
            Credential::Session { id, .. } => what.strip_prefix("session:") == Some(id.as_str()),
            Credential::Token { id } => {
                what.strip_prefix("token:") == Some(id.to_string().as_str())
            }
        }
    }
}

async fn run_stream(
    state: AppState,
    principal: Principal,
    only: Option<Vec<i64>>,
    start: i64,
    mut batches: broadcast::Receiver<Arc<crate::hub::Batch>>,
    mut revocations: broadcast::Receiver<Arc<str>>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    metrics::gauge!("flagpost_sse_clients").increment(1.0);
    let shutdown = state.shutdown.clone();
    let session_end = match &principal.credential {
        Credential::Session { expires_at, .. } => (*expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
        Credential::Token { .. } => Duration::from_secs(365 * 24 * 3600),
    };
    let expiry = tokio::time::sleep(session_end);
    tokio::pin!(expiry);
    let mut c = Client {
        state,
        principal,
        only,
        tx,
        sent: start,
    };
    // Browsers wait 3 s before reconnecting unless told otherwise; one second is enough.
    let hello = Event::default()
        .retry(Duration::from_secs(1))
        .comment("connected");
    let head = c.state.hub.head();
    let mut alive = c.tx.send(Ok(hello)).await.is_ok() && c.catch_up(head).await;
    while alive {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut expiry => break,
            _ = c.tx.closed() => break,
            r = revocations.recv() => match r {
                Ok(what) if c.revoked_by(&what) => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // A missed revocation must not keep a revoked stream open: re-check.
                    if !still_valid(&c).await { break; }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            b = batches.recv() => match b {
                Ok(batch) => {
                    if batch.from > c.sent {
                        alive = c.catch_up(batch.to).await;
                        continue;
                    }
                    for e in &batch.events {
                        if e.id <= c.sent { continue; }
                        if c.wants(&batch.access, e) && !c.send(e).await {
                            alive = false;
                            break;
                        }
                        c.sent = e.id;
                    }
                    c.sent = c.sent.max(batch.to);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let head = c.state.hub.head();
                    if head - c.sent > RESYNC_BACKLOG {
                        let ev = Event::default().event("resync").data(
                            serde_json::json!({ "after": head, "reason": "the stream fell too far behind; reload and continue from here" }).to_string(),
                        ).id(head.to_string());
                        if c.tx.send(Ok(ev)).await.is_err() { break; }
                        c.sent = head;
                    } else {
                        alive = c.catch_up(head).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    metrics::gauge!("flagpost_sse_clients").decrement(1.0);
}

async fn still_valid(c: &Client) -> bool {
    match &c.principal.credential {
        Credential::Session { id, .. } => {
            flagpost_store::auth::session_active(&c.state.pool, id, &c.principal.username)
                .await
                .unwrap_or(true)
        }
        Credential::Token { id } => flagpost_store::auth::token_active(&c.state.pool, *id)
            .await
            .unwrap_or(true),
    }
}
