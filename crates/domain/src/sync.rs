//! What a folder sync produces: fetched messages, flag changes, expunges and the checkpoint that
//! covers them (RFC 7162 §3.1, §6).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::message::Flags;

/// One address of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    /// The display name, decoded (RFC 2047).
    pub name: Option<String>,
    /// `mailbox@host`.
    pub address: Option<String>,
}

/// The envelope fields Flagpost mirrors, decoded and made safe for display.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// `Message-ID`.
    pub message_id: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// The first `From` address.
    pub from: Option<Address>,
    /// Every `To` address.
    pub to: Vec<Address>,
    /// `Date`.
    pub date: Option<DateTime<Utc>>,
}

/// A message as fetched from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    /// UID (RFC 3501 §2.3.1.1).
    pub uid: u32,
    /// Flags.
    pub flags: Flags,
    /// MODSEQ, when the server has CONDSTORE.
    pub modseq: Option<u64>,
    /// INTERNALDATE.
    pub received_at: DateTime<Utc>,
    /// RFC822.SIZE.
    pub size: u64,
    /// Envelope.
    pub envelope: Envelope,
}

/// New flags of a message the mirror already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    /// UID.
    pub uid: u32,
    /// The flags now.
    pub flags: Flags,
    /// MODSEQ, when the server has CONDSTORE.
    pub modseq: Option<u64>,
}

/// How far the mirror of a folder reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// UIDVALIDITY of the generation mirrored.
    pub uidvalidity: u32,
    /// HIGHESTMODSEQ covered (None without CONDSTORE).
    pub highest_modseq: Option<u64>,
    /// UIDNEXT seen.
    pub uidnext: Option<u32>,
}

/// A folder's sync state as shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Watched through IDLE.
    Live,
    /// Watched by periodic polling.
    Polling,
    /// (Re)connecting.
    Connecting,
    /// Failing; see the error text.
    Error,
}

impl SyncState {
    /// The state's name as the API and the database spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Live => "live",
            SyncState::Polling => "polling",
            SyncState::Connecting => "connecting",
            SyncState::Error => "error",
        }
    }
}
