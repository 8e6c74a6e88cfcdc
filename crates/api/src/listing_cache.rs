//! Rendered `GET /messages` pages, kept until the mirror changes.
//!
//! The dashboard's hot query — pending messages of every folder the agent may read, first
//! page — is the same for every agent with the same rights and changes a few times a second at
//! most, while rendering it costs PostgreSQL about 2 ms of CPU. So pages are kept, keyed by
//! the normalised query including the caller's readable folders (a change of rights is a
//! different key), and all of them are dropped whenever the mirror changes:
//!
//! - the event hub bumps the generation for every batch of events before it broadcasts it, so a
//!   client reacting to a streamed event never reads a page from before that event;
//! - a flag change made through the API bumps it after its commit (read your own writes);
//! - a change-feed read that sees events the hub has not broadcast yet bumps it too, so a client
//!   that read an event from `GET /events` never lists messages from before it.
//!
//! A page is stored only if the generation did not move while it was being read, so a slow
//! query that raced a change cannot put an outdated page back. What changes without an event
//! (a MODSEQ that moved with no flag change, e.g. a keyword set and cleared by another client)
//! can leave a page's `etag` behind until the next event; a PATCH with it answers 412 and the
//! client re-reads the message, which is what that etag change means anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use flagpost_store::api::StatusFilter;

/// Pages kept at most (about 30 KB each at the default limit); when full, all are dropped.
const CAPACITY: usize = 512;

/// What a page depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListingKey {
    /// The folders listed (what the caller may read, or asked for), in the caller's order.
    pub folders: Vec<i64>,
    /// Status filter.
    pub status: StatusFilter,
    /// Flagged filter.
    pub flagged: Option<bool>,
    /// Newest first.
    pub newest_first: bool,
    /// Keyset position.
    pub after: Option<(DateTime<Utc>, i64)>,
    /// Page size.
    pub limit: i64,
}

/// The cache (one per process, shared by all requests).
#[derive(Debug, Default)]
pub struct ListingCache {
    generation: AtomicU64,
    pages: Mutex<Pages>,
}

#[derive(Debug, Default)]
struct Pages {
    generation: u64,
    map: HashMap<ListingKey, Bytes>,
}

impl ListingCache {
    /// Forgets every page: the mirror changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The generation to pass to [`ListingCache::put`]; read before the query starts.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The page for `key`, if one is kept for the current generation.
    pub fn get(&self, key: &ListingKey) -> Option<Bytes> {
        let now = self.generation();
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if pages.generation != now {
            pages.map.clear();
            pages.generation = now;
            return None;
        }
        pages.map.get(key).cloned()
    }

    /// Keeps `body` for `key`, unless the mirror changed since `generation` (read before the
    /// page's query started).
    pub fn put(&self, key: ListingKey, body: Bytes, generation: u64) {
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.generation();
        if now != generation {
            return;
        }
        if pages.generation != now {
            pages.map.clear();
            pages.generation = now;
        }
        if pages.map.len() >= CAPACITY {
            pages.map.clear();
        }
        pages.map.insert(key, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(limit: i64) -> ListingKey {
        ListingKey {
            folders: vec![1, 2],
            status: StatusFilter::Pending,
            flagged: None,
            newest_first: false,
            after: None,
            limit,
        }
    }

    #[test]
    fn a_page_is_served_until_the_mirror_changes() {
        let c = ListingCache::default();
        let g = c.generation();
        c.put(key(50), Bytes::from_static(b"page"), g);
        assert_eq!(c.get(&key(50)).as_deref(), Some(&b"page"[..]));
        assert_eq!(c.get(&key(51)), None, "another query is another page");
        c.invalidate();
        assert_eq!(c.get(&key(50)), None);
    }

    #[test]
    fn a_page_read_across_a_change_is_not_kept() {
        let c = ListingCache::default();
        let g = c.generation();
        // the query ran while an event was committed and broadcast
        c.invalidate();
        c.put(key(50), Bytes::from_static(b"outdated"), g);
        assert_eq!(c.get(&key(50)), None);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = ListingCache::default();
        let g = c.generation();
        for i in 0..(CAPACITY as i64 + 10) {
            c.put(key(i), Bytes::from_static(b"p"), g);
        }
        let kept = c.pages.lock().unwrap().map.len();
        assert!(kept <= CAPACITY, "{kept} pages kept");
    }
}
