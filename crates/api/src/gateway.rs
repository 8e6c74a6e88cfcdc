//! What the API needs from the IMAP server, as a trait: the `imap` and `api` crates do not
//! depend on each other, and `server` wires an implementation in.

use futures::future::BoxFuture;

/// Why an IMAP operation failed, in terms the HTTP layer can map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// LOGIN refused (401).
    #[error("invalid username or password")]
    BadCredentials,
    /// An argument that cannot be sent (400).
    #[error("{0}")]
    InvalidArgument(String),
    /// The server answered NO (403): e.g. the service account lacks a right.
    #[error("the IMAP server refused: {0}")]
    Refused(String),
    /// The folder's UIDVALIDITY changed or the message is gone (404).
    #[error("the message no longer exists on the IMAP server")]
    Gone,
    /// The server cannot be reached or is not trusted (503).
    #[error("the IMAP server is unavailable: {0}")]
    Unavailable(String),
}

/// A flag change to make with `UID STORE`.
#[derive(Debug, Clone)]
pub struct FlagChange<'a> {
    /// The folder's wire name.
    pub imap_name: &'a str,
    /// The generation the UID belongs to.
    pub uidvalidity: u32,
    /// The message.
    pub uid: u32,
    /// Flags to set (`\Answered`, `\Flagged`, `\Seen`).
    pub add: Vec<&'static str>,
    /// Flags to clear.
    pub remove: Vec<&'static str>,
    /// The condition of an `If-Match`.
    pub expect: Option<Expectation>,
}

/// What the message must still look like for a conditional change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `UNCHANGEDSINCE` this MODSEQ (RFC 7162 §3.1.3).
    ModSeq(u64),
    /// These flags (servers without CONDSTORE).
    Flags(Vec<String>),
}

/// The outcome of a flag change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagOutcome {
    /// Stored; the flags and MODSEQ the server reports now.
    Stored {
        /// Flags.
        flags: Vec<String>,
        /// MODSEQ.
        modseq: Option<u64>,
    },
    /// The condition failed: the message changed since.
    Conflict,
    /// The message no longer exists.
    Gone,
}

/// The IMAP operations the API performs.
pub trait ImapGateway: Send + Sync + std::fmt::Debug + 'static {
    /// Checks a user's password with LOGIN over the configured connection; returns the name
    /// the server's ACLs know the user by (the login itself, or the server's own form of it).
    fn verify_login<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<String, GatewayError>>;

    /// Stores flags as the service account.
    fn store_flags<'a>(
        &'a self,
        change: FlagChange<'a>,
    ) -> BoxFuture<'a, Result<FlagOutcome, GatewayError>>;

    /// The rights the server can grant `identifier` on the folder (LISTRIGHTS, limited by the
    /// `RIGHTS=` capability), as a rights string.
    fn grantable_rights<'a>(
        &'a self,
        imap_name: &'a str,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<String, GatewayError>>;

    /// SETACL (replace) on the server, then re-reads the folder's ACL into the mirror.
    fn set_acl<'a>(
        &'a self,
        folder_id: i64,
        imap_name: &'a str,
        identifier: &'a str,
        rights: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>>;

    /// DELETEACL on the server, then re-reads the folder's ACL into the mirror.
    fn delete_acl<'a>(
        &'a self,
        folder_id: i64,
        imap_name: &'a str,
        identifier: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>>;
}
