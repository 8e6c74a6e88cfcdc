//! Flagpost's domain: pure types and rules with no I/O.
//!
//! Everything here is decided by the IMAP RFCs, not by a particular server: message status from
//! flags (contract §1), RFC 4314 rights strings, and the modified UTF-7 folder-name encoding of
//! RFC 3501 §5.1.3.

pub mod envelope;
pub mod mailbox_name;
pub mod message;
pub mod rights;
pub mod sync;

pub use mailbox_name::{decode_mailbox_name, encode_mailbox_name};
pub use message::{Flags, Status};
pub use rights::{Right, Rights, RightsError};
