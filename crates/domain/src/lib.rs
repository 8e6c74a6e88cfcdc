//! Flagpost's domain: pure types and rules with no I/O.
//!
//! Everything here is decided by the IMAP RFCs, not by a particular server: message status from
//! flags (contract §1), RFC 4314 rights strings, and the modified UTF-7 folder-name encoding of
//! RFC 3501 §5.1.3. The one place where a server's own rules matter, effective rights
//! ([`acl`]), takes both RFC 4314 and Dovecot's precedence into account and grants no more than
//! either.

pub mod acl;
pub mod envelope;
pub mod mailbox_name;
pub mod message;
pub mod rights;
pub mod sync;

pub use acl::{
    AclContext, AclDialect, AclEntry, Applies, Identifier, IdentifierKind, dovecot_rights,
    dovecot_rights_with, effective_rights, effective_rights_with, rfc4314_rights,
    rfc4314_rights_with,
};
pub use mailbox_name::{decode_mailbox_name, encode_mailbox_name};
pub use message::{Flags, Status};
pub use rights::{Right, Rights, RightsError};
