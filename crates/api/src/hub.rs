//! The event hub: one task follows the change feed for the whole process and fans it out to
//! every live stream.
//!
//! It wakes on `NOTIFY flagpost_events` (and every few seconds anyway, in case a notification
//! was lost while its connection reconnected), reads the new events once, renders each one's
//! JSON once, and broadcasts them in batches together with the ACL snapshot that authorises
//! them: the snapshot is re-read whenever a batch holds a folder event, so a revoked right
//! stops a stream's events from the very next batch.
//!
//! A batch says which id range it covers (`from` exclusive, `to` inclusive). A stream that
//! sees a batch start after the position it has delivered (it subscribed late, or lagged
//! behind the bounded channel) reads the gap from the database instead, so no stream misses an
//! event and none holds more than a page in memory.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use flagpost_store::PgPool;
use flagpost_store::events::EventRow;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::authz::Access;

/// Events per database read.
pub const PAGE: i64 = 500;
/// Batches a stream may fall behind before it reads from the database instead.
const CHANNEL_BATCHES: usize = 256;
/// How often the feed is read even without a notification.
const SAFETY_POLL: Duration = Duration::from_secs(2);
/// How often the ACL snapshot is re-read even without a folder event.
const ACCESS_RELOAD: Duration = Duration::from_secs(30);

/// An event as the API renders it (contract §5 "Event").
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    /// Strictly increasing id; resume with `after` = the last id seen.
    pub id: i64,
    /// `message.added`, `message.updated`, `message.removed`, `folder.added`,
    /// `folder.removed`, `folder.reset`, `folder.acl_changed`, `folder.sync_changed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was recorded.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The folder.
    pub folder_id: String,
    /// The message, for message events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Type-specific payload.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<EventRow> for EventOut {
    fn from(e: EventRow) -> EventOut {
        EventOut {
            id: e.id,
            kind: e.kind,
            at: e.at,
            folder_id: e.folder_id.to_string(),
            message_id: e.message_id.map(|m| m.to_string()),
            data: e.data,
        }
    }
}

/// One event ready to send: its id, folder and type for filtering, and its JSON.
#[derive(Debug, Clone)]
pub struct WireEvent {
    /// Id.
    pub id: i64,
    /// Folder.
    pub folder_id: i64,
    /// Type.
    pub kind: Arc<str>,
    /// The event's JSON.
    pub json: Arc<str>,
}

impl WireEvent {
    /// Renders a stored event.
    pub fn new(row: EventRow) -> WireEvent {
        let id = row.id;
        let folder_id = row.folder_id;
        let kind: Arc<str> = row.kind.as_str().into();
        let out = EventOut::from(row);
        let json: Arc<str> = serde_json::to_string(&out)
            .unwrap_or_else(|_| "{}".into())
            .into();
        WireEvent {
            id,
            folder_id,
            kind,
            json,
        }
    }
}

/// Events `(from, to]` and the ACLs that decide who may see them.
#[derive(Debug)]
pub struct Batch {
    /// The position before this batch.
    pub from: i64,
    /// The last id this batch covers.
    pub to: i64,
    /// The events, in id order.
    pub events: Vec<WireEvent>,
    /// Who may read which folder, as of this batch.
    pub access: Arc<Access>,
}

/// Shared handle to the hub.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    batches: broadcast::Sender<Arc<Batch>>,
    revocations: broadcast::Sender<Arc<str>>,
    head: AtomicI64,
    access: RwLock<Arc<Access>>,
    service_user: Arc<str>,
    credentials: crate::auth::CredentialCache,
    listings: crate::listing_cache::ListingCache,
}

impl Hub {
    /// A hub that has not read anything yet; [`Hub::run`] starts it.
    pub fn new(service_user: Arc<str>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                batches: broadcast::channel(CHANNEL_BATCHES).0,
                revocations: broadcast::channel(64).0,
                head: AtomicI64::new(0),
                access: RwLock::new(Arc::new(Access::new(
                    Vec::new(),
                    service_user.clone(),
                    flagpost_domain::acl::AclDialect::Unknown,
                ))),
                service_user,
                credentials: crate::auth::CredentialCache::default(),
                listings: crate::listing_cache::ListingCache::default(),
            }),
        }
    }

    /// The last event id broadcast.
    pub fn head(&self) -> i64 {
        self.inner.head.load(Ordering::SeqCst)
    }

    /// Rendered message listings, dropped whenever a batch of events goes out.
    pub fn listings(&self) -> &crate::listing_cache::ListingCache {
        &self.inner.listings
    }

    /// Recently validated credentials.
    pub fn credentials(&self) -> &crate::auth::CredentialCache {
        &self.inner.credentials
    }

    /// Forgets a revoked credential here and tells this process's streams.
    pub fn revoked(&self, what: &str) {
        self.inner.credentials.evict(what);
        let _ = self.inner.revocations.send(what.into());
    }

    /// The latest ACL snapshot.
    pub fn access(&self) -> Arc<Access> {
        self.inner
            .access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Receives every batch from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.inner.batches.subscribe()
    }

    /// Receives revocations (`session:<id>`, `token:<id>`) from now on.
    pub fn revocations(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.revocations.subscribe()
    }

    /// Reads the ACL snapshot from the database.
    pub async fn load_access(&self, pool: &PgPool) -> sqlx::Result<Arc<Access>> {
        let acls = flagpost_store::api::acl_snapshot(pool).await?;
        let server = flagpost_store::folders::server_name(pool).await?;
        let access = Arc::new(Access::new(
            acls,
            self.inner.service_user.clone(),
            flagpost_domain::acl::AclDialect::from_server_name(server.as_deref()),
        ));
        *self.inner.access.write().unwrap_or_else(|p| p.into_inner()) = access.clone();
        Ok(access)
    }

    /// Follows the feed until `shutdown`.
    pub async fn run(self, pool: PgPool, shutdown: CancellationToken) {
        loop {
            match flagpost_store::api::max_event_id(&pool).await {
                Ok(head) => {
                    self.inner.head.store(head, Ordering::SeqCst);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event hub: cannot read the feed's head; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        let _ = self.load_access(&pool).await;
        let mut listener = None;
        // ACL changes always come with a folder event, which reloads the snapshot; this is only
        // a backstop.
        let mut next_access_reload = tokio::time::Instant::now() + ACCESS_RELOAD;
        loop {
            if listener.is_none() {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut l) => {
                        if let Err(e) = l
                            .listen_all([
                                flagpost_store::events::EVENTS_CHANNEL,
                                flagpost_store::auth::REVOCATIONS_CHANNEL,
                            ])
                            .await
                        {
                            tracing::warn!(error = %e, "event hub: LISTEN failed");
                        } else {
                            listener = Some(l);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "event hub: cannot connect to listen"),
                }
                // Whatever happened while not listening is read now.
                self.read_new(&pool).await;
            }
            let notified = async {
                match listener.as_mut() {
                    Some(l) => Some(l.recv().await),
                    None => {
                        std::future::pending::<()>().await;
                        None
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(SAFETY_POLL) => {
                    self.read_new(&pool).await;
                    if tokio::time::Instant::now() >= next_access_reload {
                        let _ = self.load_access(&pool).await;
                        next_access_reload = tokio::time::Instant::now() + ACCESS_RELOAD;
                    }
                }
                n = notified => match n {
                    Some(Ok(n)) if n.channel() == flagpost_store::auth::REVOCATIONS_CHANNEL => {
                        self.revoked(n.payload());
                    }
                    Some(Ok(_)) => self.read_new(&pool).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "event hub: listener failed; reconnecting");
                        listener = None;
                    }
                    None => {}
                },
            }
        }
    }

    async fn read_new(&self, pool: &PgPool) {
        loop {
            let from = self.head();
            let rows = match flagpost_store::events::list_events(pool, from, PAGE, None).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "event hub: cannot read events");
                    return;
                }
            };
            let Some(last) = rows.last().map(|r| r.id) else {
                return;
            };
            let n = rows.len();
            let access = if rows.iter().any(|r| r.kind.starts_with("folder.")) {
                match self.load_access(pool).await {
                    Ok(a) => a,
                    Err(e) => {
                        // Without a fresh snapshot nothing is sent: retried on the next wake.
                        tracing::warn!(error = %e, "event hub: cannot read ACLs");
                        return;
                    }
                }
            } else {
                self.access()
            };
            metrics::counter!("flagpost_events_broadcast_total").increment(n as u64);
            let batch = Arc::new(Batch {
                from,
                to: last,
                events: rows.into_iter().map(WireEvent::new).collect(),
                access,
            });
            // Listings from before these events are outdated for anyone who gets them.
            self.inner.listings.invalidate();
            self.inner.head.store(last, Ordering::SeqCst);
            let _ = self.inner.batches.send(batch);
            if (n as i64) < PAGE {
                return;
            }
        }
    }
}
