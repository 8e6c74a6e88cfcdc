//! The IMAP *write* side the REST API needs: checking a user's login, changing a message's
//! system flags, and administering a folder's ACL.
//!
//! - [`verify_login`] checks a user's password with `LOGIN` over the configured transport
//!   (RFC 3501 §6.2.3), then `LOGOUT`s; nothing is kept.
//! - [`Writer`] holds one lazily opened service-account session and offers `UID STORE`
//!   (RFC 3501 §6.4.6, §6.4.8) with optional `UNCHANGEDSINCE` (RFC 7162 §3.1.3), and `SETACL`,
//!   `DELETEACL`, `GETACL`, `LISTRIGHTS`, `MYRIGHTS` (RFC 4314 §3.1–§3.5).
//!
//! # Arguments can never become commands
//! Every string argument is checked before anything is sent: CR, LF and NUL are refused
//! ([`WriteError::InvalidArgument`], [`LoginCheckError::InvalidInput`]), so no argument can end
//! a command line. Printable ASCII is sent as one quoted string ([`crate::command::quote`],
//! RFC 3501 §4.3: `"` and `\` escaped, `{5}` or spaces are just characters inside the quotes).
//! Folder names must already be modified UTF-7 (ASCII). User names and passwords with
//! non-ASCII characters are sent as literals (RFC 3501 §4.3, synchronizing: the server's `+`
//! is awaited before the bytes follow). ACL identifiers with non-ASCII characters are refused
//! (see [`Writer::set_acl`]).
//!
//! # Connection health
//! A command the server answers with `NO` or `BAD` leaves the session usable. Any I/O error, a
//! timeout ([`COMMAND_TIMEOUT`] per command) or an unexpected answer drops the session; the next
//! call opens a new one. A call that fails because a *reused* session turned out to be dead is
//! retried once on a fresh session, unless a conditional STORE had already been sent on it (its
//! outcome is unknown, and repeating it could report our own change as a conflict).
//! A session older than [`DEFAULT_MAX_SESSION_AGE`] is replaced before use, because Dovecot
//! keeps a session's rights from before an ACL change (see there).
//!
//! `CLOSE` is never sent (it would expunge `\Deleted` messages, RFC 3501 §6.4.2): after a STORE
//! the folder is left with `UNSELECT` (RFC 3691) when the server offers it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flagpost_domain::{Flags, Rights};
use imap_proto::{RequestId, Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use crate::command::{ImapArgError, quote};
use crate::connect::{ConnectError, ImapSettings, Io, Session, connect, login};
use crate::fetch::FetchData;

/// How long one command (including its literals) may take before the session is declared dead.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a [`Writer`] keeps one session before replacing it. Dovecot 2.3 keeps a session's
/// rights on a mailbox (MYRIGHTS, SELECT, STORE) from before another client changed the ACL
/// until the session runs GETACL on it; a fresh session sees the current ACL. So a right
/// revoked from the service account stops working within this age, like the ACL mirror's
/// default poll (`FLAGPOST_ACL_POLL_SECS`).
pub const DEFAULT_MAX_SESSION_AGE: Duration = Duration::from_secs(60);

/// The only flags [`Writer::store_flags`] ever sends (RFC 3501 §2.3.2 system flags; `\Deleted`
/// and `\Draft` are not Flagpost's to change).
pub const WRITABLE_FLAGS: [&str; 3] = ["\\Answered", "\\Flagged", "\\Seen"];

/// The letters [`Writer::set_acl`] accepts: RFC 4314 §2.1 rights, the obsolete RFC 2086 `c` and
/// `d` (§2.1.1), and the digits servers may define.
pub const RIGHT_LETTERS: &str = "lrswipkxteacd0123456789";

type Conn = async_imap::Connection<Box<dyn Io>>;

// ---------------------------------------------------------------------------------------------
// Login check
// ---------------------------------------------------------------------------------------------

/// Why [`verify_login`] did not confirm the credentials. Never carries the password.
#[derive(Debug, thiserror::Error)]
pub enum LoginCheckError {
    /// The user name or password is empty or holds CR, LF or NUL; nothing was sent.
    /// Suggested HTTP status: 400 (401 is defensible too: such a login can never succeed).
    #[error("the user name or password is empty or contains CR, LF or NUL")]
    InvalidInput,
    /// The server refused the login (`NO`, e.g. `[AUTHENTICATIONFAILED]`, or `BAD`).
    /// Suggested HTTP status: 401.
    #[error("the IMAP server refused the login: {0}")]
    BadCredentials(String),
    /// The server answered but cannot check logins now (`NO [UNAVAILABLE]`, `[SERVERBUG]`, or
    /// `[PRIVACYREQUIRED]` = it refuses passwords over this transport; RFC 5530).
    /// Suggested HTTP status: 503.
    #[error("the IMAP server cannot check the login now: {0}")]
    Unavailable(String),
    /// TLS failed: the server's certificate is not trusted (unknown CA, wrong name, expired), the
    /// CA file is unusable, or STARTTLS is not offered. Suggested HTTP status: 503.
    #[error("TLS with the IMAP server failed: {0}")]
    Tls(String),
    /// The server could not be reached or stopped answering (TCP, timeout, closed connection).
    /// Suggested HTTP status: 503.
    #[error("cannot reach the IMAP server: {0}")]
    Unreachable(ConnectError),
}

impl LoginCheckError {
    /// The HTTP status this error suggests (contract §5 `POST /session`).
    pub fn http_status(&self) -> u16 {
        match self {
            LoginCheckError::InvalidInput => 400,
            LoginCheckError::BadCredentials(_) => 401,
            LoginCheckError::Unavailable(_)
            | LoginCheckError::Tls(_)
            | LoginCheckError::Unreachable(_) => 503,
        }
    }

    fn from_connect(e: ConnectError) -> LoginCheckError {
        match tls_failure(&e) {
            Some(reason) => LoginCheckError::Tls(reason),
            None => LoginCheckError::Unreachable(e),
        }
    }
}

/// Whether `e` is a TLS failure (certificate not trusted, CA file unusable, no STARTTLS), and
/// why.
fn tls_failure(e: &ConnectError) -> Option<String> {
    match e {
        ConnectError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|tls| tls.to_string()),
        ConnectError::CaFile { .. } | ConnectError::NoStartTls => Some(e.to_string()),
        _ => None,
    }
}

/// Checks `user`'s `password` against the IMAP server: connects as `settings` says (TLS
/// verified as for the service account), sends `LOGIN` (RFC 3501 §6.2.3) and, when it
/// succeeds, `LOGOUT` (§6.1.3). Nothing is kept; the password is never logged.
///
/// Returns the name the server's ACLs know the user by: `user` itself, or the server's own
/// form of it found by [`acl_name_of_login`] (e.g. `alice` for the login `alice@example.com`).
///
/// Printable-ASCII credentials go as quoted strings; others as synchronizing literals
/// (§4.3), so any UTF-8 password works. Empty values and CR, LF or NUL are refused before
/// connecting ([`LoginCheckError::InvalidInput`]).
pub async fn verify_login(
    settings: &ImapSettings,
    user: &str,
    password: &str,
) -> Result<String, LoginCheckError> {
    let user_arg = login_arg(user)?;
    let password_arg = login_arg(password)?;
    let mut client = connect(settings)
        .await
        .map_err(LoginCheckError::from_connect)?;
    let pieces = [
        Piece::Text("LOGIN ".to_owned()),
        user_arg,
        Piece::Text(" ".to_owned()),
        password_arg,
    ];
    let done = exec_within(&mut client, "fp1", &pieces, false, |_| {})
        .await
        .map_err(LoginCheckError::from_connect)?;
    match done.status {
        Status::Ok => {
            // Best effort from here: the check already succeeded.
            let acl_name = acl_name_of_login(&mut client, user)
                .await
                .unwrap_or_else(|| user.to_owned());
            let logout = [Piece::Text("LOGOUT".to_owned())];
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                exec(&mut client, "fp2", &logout, false, |_| {}),
            )
            .await;
            Ok(acl_name)
        }
        Status::No
            if done.code.as_deref().is_some_and(|c| {
                ["UNAVAILABLE", "SERVERBUG", "PRIVACYREQUIRED"]
                    .iter()
                    .any(|k| c.eq_ignore_ascii_case(k))
            }) =>
        {
            Err(LoginCheckError::Unavailable(done.describe()))
        }
        _ => Err(LoginCheckError::BadCredentials(done.describe())),
    }
}

/// The name the server's ACLs use for the logged-in `login`, when it differs from the login.
///
/// A server may turn the login into another user name before it compares ACL identifiers:
/// Dovecot with `auth_username_format = %Ln` makes `Alice@Example.com` the user `alice`. The
/// user's own INBOX tells: its ACL lists the user under the server's name, with exactly the
/// rights MYRIGHTS gives the user there (Dovecot lists the owner's entry so; Cyrus and others
/// list the owner's own entry). A name is taken only if it is the single such entry and is the
/// login in another case or without its domain, so it cannot be another user's name. `None`
/// when the login is already the name, or when nothing certain is found (no ACL extension,
/// no such entry, or several).
async fn acl_name_of_login(client: &mut Conn, login: &str) -> Option<String> {
    if login == login.to_lowercase() && !login.contains('@') {
        // Lower case and no domain: the server has no other form of it to use.
        return None;
    }
    let mut entries: Vec<(String, Rights)> = Vec::new();
    let getacl = [Piece::Text("GETACL \"INBOX\"".to_owned())];
    let done = exec_within(client, "fp3", &getacl, false, |d| {
        if let Response::Acl(acl) = d {
            for e in &acl.acls {
                entries.push((
                    e.identifier.to_string(),
                    crate::folders::rights_of(&e.rights),
                ));
            }
        }
    })
    .await
    .ok()?;
    if done.status != Status::Ok {
        return None;
    }
    let mut mine = None;
    let myrights = [Piece::Text("MYRIGHTS \"INBOX\"".to_owned())];
    let done = exec_within(client, "fp4", &myrights, false, |d| {
        if let Response::MyRights(r) = d {
            mine = Some(crate::folders::rights_of(&r.rights));
        }
    })
    .await
    .ok()?;
    let mine = mine.filter(|_| done.status == Status::Ok)?;
    if entries.iter().any(|(id, _)| id == login) {
        // The server lists the login itself (Dovecot shows the owner's entry under the name it
        // knows the reader by): it is its own name, whatever else the ACL holds.
        return None;
    }
    let mut found = entries.iter().filter(|(id, rights)| {
        flagpost_domain::acl::may_be_servers_name_for(id, login) && *rights == mine
    });
    match (found.next(), found.next()) {
        (Some((id, _)), None) => Some(id.clone()),
        _ => None,
    }
}

fn login_arg(s: &str) -> Result<Piece, LoginCheckError> {
    if s.is_empty() {
        return Err(LoginCheckError::InvalidInput);
    }
    match quote(s) {
        Ok(q) => Ok(Piece::Text(q)),
        Err(ImapArgError::EightBit) => Ok(Piece::Literal(s.as_bytes().to_vec())),
        Err(ImapArgError::LineBreak) => Err(LoginCheckError::InvalidInput),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and results of the writer
// ---------------------------------------------------------------------------------------------

/// Why a [`Writer`] call failed. Each variant documents the HTTP status it suggests;
/// [`WriteError::http_status`] returns it.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// An argument was refused before anything was sent: CR/LF/NUL or non-ASCII in an
    /// identifier or folder name, a flag other than `\Answered`/`\Flagged`/`\Seen`, a letter
    /// outside [`RIGHT_LETTERS`], a flag both added and removed, UID 0. HTTP 400.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server answered `NO` (RFC 3501 §7.1.2), e.g. `[NOPERM]` (the service account lacks
    /// `a`), `[NONEXISTENT]` (no such folder). The session stays usable. HTTP 403 for
    /// `NOPERM`, 404 for `NONEXISTENT` and for a `SELECT` refused without a code (Dovecot's
    /// answer for a folder that is gone or invisible), else 409; `text` is the server's.
    #[error("the IMAP server refused {command}: {}{text}", code.as_deref().map(|c| format!("[{c}] ")).unwrap_or_default())]
    Refused {
        /// The command's name, e.g. `SETACL`.
        command: String,
        /// The response code in brackets (RFC 5530), e.g. `NOPERM`, if any.
        code: Option<String>,
        /// The server's human-readable text.
        text: String,
    },
    /// The server answered `BAD` (§7.1.3): it does not accept the value, e.g. Dovecot's
    /// "Invalid ACL right: 0". The session stays usable. HTTP 400.
    #[error("the IMAP server rejected {command}: {text}")]
    Rejected {
        /// The command's name.
        command: String,
        /// The server's text.
        text: String,
    },
    /// The service account may not change these flags in this folder: `SELECT` said
    /// `[READ-ONLY]`, or a flag is missing from `[PERMANENTFLAGS]` (RFC 3501 §7.1; Dovecot
    /// would otherwise silently drop it). Nothing was stored. HTTP 403.
    #[error("the IMAP service account may not change {flags:?} in {imap_name:?}")]
    NotPermitted {
        /// The folder.
        imap_name: String,
        /// The flags it may not change.
        flags: Vec<String>,
    },
    /// The folder's UIDVALIDITY is no longer the one the message was known under (RFC 3501
    /// §2.3.1.1): the UID means nothing now. HTTP 404 (the message as addressed is gone; 409 is
    /// defensible).
    #[error("UIDVALIDITY of {imap_name:?} is {actual}, not {expected}")]
    UidValidityChanged {
        /// The folder.
        imap_name: String,
        /// The UIDVALIDITY the caller gave.
        expected: u32,
        /// The server's.
        actual: u32,
    },
    /// [`Expect::ModSeq`] was asked but the server or this folder has no mod-sequences (no
    /// CONDSTORE, or `[NOMODSEQ]`, RFC 7162 §3.1.2). Nothing was stored. HTTP 412 (the
    /// precondition cannot hold); callers should use [`Expect::Flags`] there.
    #[error(
        "{imap_name:?} has no mod-sequences (no CONDSTORE): a MODSEQ precondition cannot be checked"
    )]
    ModSeqUnsupported {
        /// The folder.
        imap_name: String,
    },
    /// The service account's own login was refused (configuration problem). HTTP 503.
    #[error("the IMAP server refused the service account's login: {0}")]
    ServiceLogin(String),
    /// The server could not be reached, TLS failed, the connection broke or a command timed
    /// out. The session was dropped. HTTP 503.
    #[error("cannot reach the IMAP server: {0}")]
    Unreachable(ConnectError),
    /// The server answered something that makes no sense (e.g. `SELECT` without UIDVALIDITY).
    /// The session was dropped. HTTP 502.
    #[error("unexpected answer from the IMAP server: {0}")]
    Protocol(String),
}

impl WriteError {
    /// The HTTP status this error suggests (see each variant).
    pub fn http_status(&self) -> u16 {
        match self {
            WriteError::InvalidArgument(_) | WriteError::Rejected { .. } => 400,
            WriteError::Refused { command, code, .. } => match code.as_deref() {
                Some(c) if c.eq_ignore_ascii_case("NOPERM") => 403,
                Some(c) if c.eq_ignore_ascii_case("NONEXISTENT") => 404,
                // Dovecot refuses SELECT of a missing (or invisible) folder without a code
                None if command.eq_ignore_ascii_case("SELECT") => 404,
                _ => 409,
            },
            WriteError::NotPermitted { .. } => 403,
            WriteError::UidValidityChanged { .. } => 404,
            WriteError::ModSeqUnsupported { .. } => 412,
            WriteError::ServiceLogin(_) | WriteError::Unreachable(_) => 503,
            WriteError::Protocol(_) => 502,
        }
    }

    fn from_connect(e: ConnectError) -> WriteError {
        match e {
            ConnectError::Auth(text) => WriteError::ServiceLogin(text),
            ConnectError::Protocol(text) => WriteError::Protocol(text),
            ConnectError::Command {
                command,
                status,
                text,
            } => {
                let (code, text) = split_code(&text);
                if status == "BAD" {
                    WriteError::Rejected { command, text }
                } else {
                    WriteError::Refused {
                        command,
                        code,
                        text,
                    }
                }
            }
            other => WriteError::Unreachable(other),
        }
    }

    fn invalid(what: impl fmt::Display) -> WriteError {
        WriteError::InvalidArgument(what.to_string())
    }
}

/// A precondition for [`Writer::store_flags`] (the API's `If-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The message's MODSEQ must still be at most this: sent as `UNCHANGEDSINCE` (RFC 7162
    /// §3.1.3), so the server checks it atomically. Needs CONDSTORE.
    ModSeq(u64),
    /// The message's flags (without `\Recent`) must still be exactly these. The flags are
    /// fetched and compared first; where the folder has mod-sequences the STORE then carries
    /// `UNCHANGEDSINCE <fetched MODSEQ>`, which makes it atomic, otherwise it is best effort
    /// (a change between FETCH and STORE goes unnoticed).
    Flags(Vec<String>),
}

/// What [`Writer::store_flags`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored; the message's flags and MODSEQ as the server now reports them.
    Stored {
        /// All flags, sorted, without `\Recent` (as [`Flags`] keeps them).
        flags: Vec<String>,
        /// MODSEQ, when the folder has mod-sequences.
        modseq: Option<u64>,
    },
    /// The precondition failed (`[MODIFIED]`, or other flags than expected): nothing was
    /// stored. The message's current state.
    Conflict {
        /// All flags now, sorted, without `\Recent`.
        flags: Vec<String>,
        /// MODSEQ now, when the folder has mod-sequences.
        modseq: Option<u64>,
    },
    /// No message with this UID exists (any more) in the folder.
    Gone,
}

/// `LISTRIGHTS` (RFC 4314 §3.4): what may be granted to an identifier on a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRights {
    /// Rights the identifier always has (§3.7 "required").
    pub required: Rights,
    /// Rights that may be granted. imap-proto merges the optional groups of the reply into one
    /// list, so the grouping ("granted together") is not available; Dovecot lists every right as
    /// its own group anyway.
    pub optional: Rights,
    /// Every letter the server named, required first, each once, as sent (may include the
    /// obsolete `c`/`d` and digits that [`Rights`] does not model).
    pub letters: String,
}

// ---------------------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------------------

/// One service-account session for the API's writes: cheap to clone (`Arc`), `Send + Sync`.
///
/// The session is opened on first use and serialised by a tokio mutex: calls from many
/// requests queue up and run one at a time. See the module documentation for quoting,
/// timeouts and reconnects.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<WriterInner>,
}

struct WriterInner {
    settings: ImapSettings,
    user: String,
    password: String,
    max_session_age: Duration,
    live: tokio::sync::Mutex<Option<Live>>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("host", &self.inner.settings.host)
            .field("port", &self.inner.settings.port)
            .field("user", &self.inner.user)
            .finish_non_exhaustive()
    }
}

/// A logged-in session and what the server offers.
struct Live {
    session: Session,
    opened: std::time::Instant,
    caps: Vec<String>,
    next_tag: u64,
    /// A conditional STORE was sent during the current call: do not retry it blindly.
    conditional_sent: bool,
    /// Calls made on this session, the current one included.
    calls: u64,
    /// The last call was refused for missing rights that a fresh session might have.
    rights_maybe_stale: bool,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$live: &mut Live` bound to the writer's session (opening it first if
/// needed). A dead reused session is dropped and `$body` retried once on a fresh one; any other
/// connection failure drops the session. (A macro rather than a function taking an async
/// closure: such a closure's future cannot be shown `Send` for every borrow lifetime.)
macro_rules! with_live {
    ($writer:expr, $live:ident => $body:expr) => {{
        let writer: &Writer = $writer;
        let mut guard = writer.inner.live.lock().await;
        let mut retried = false;
        loop {
            if guard
                .as_ref()
                .is_some_and(|l| l.opened.elapsed() > writer.inner.max_session_age)
            {
                *guard = None;
            }
            let reused = guard.is_some();
            if !reused {
                *guard = Some(writer.open().await?);
            }
            let result = {
                let Some($live) = guard.as_mut() else {
                    unreachable!("the session was just opened");
                };
                $live.conditional_sent = false;
                $live.rights_maybe_stale = false;
                $live.calls += 1;
                $body
            };
            let conditional_sent = guard.as_ref().is_some_and(|l| l.conditional_sent);
            match result {
                Err(WriteError::Unreachable(e)) => {
                    *guard = None;
                    if reused && !retried && !conditional_sent {
                        tracing::debug!(error = %e, "IMAP write session was dead; reconnecting once");
                        retried = true;
                        continue;
                    }
                    break Err(WriteError::Unreachable(e));
                }
                Err(e @ WriteError::Protocol(_)) => {
                    *guard = None;
                    break Err(e);
                }
                other => break other,
            }
        }
    }};
}

impl Writer {
    /// A writer that logs in as `user` with `password` when first needed.
    pub fn new(
        settings: ImapSettings,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Writer {
        Writer {
            inner: Arc::new(WriterInner {
                settings,
                user: user.into(),
                password: password.into(),
                max_session_age: DEFAULT_MAX_SESSION_AGE,
                live: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The same writer with sessions replaced once older than `age` (default
    /// [`DEFAULT_MAX_SESSION_AGE`]). Call before sharing the writer (clones made earlier keep
    /// the old value).
    #[must_use]
    pub fn with_max_session_age(self, age: Duration) -> Writer {
        let i = &self.inner;
        Writer {
            inner: Arc::new(WriterInner {
                settings: i.settings.clone(),
                user: i.user.clone(),
                password: i.password.clone(),
                max_session_age: age,
                live: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Adds and removes system flags on message `uid` of `imap_name` (modified UTF-7, as on
    /// the wire) with `UID STORE` (RFC 3501 §6.4.6, §6.4.8).
    ///
    /// - Only `\Answered`, `\Flagged` and `\Seen` may appear in `add`/`remove`
    ///   (case-insensitive); a flag in both is refused.
    /// - The folder is `SELECT`ed (read-write), with `(CONDSTORE)` where the server offers it
    ///   (RFC 7162 §3.1.8); its UIDVALIDITY must equal `uidvalidity`
    ///   ([`WriteError::UidValidityChanged`]); `[READ-ONLY]` or a flag missing from
    ///   `[PERMANENTFLAGS]` gives [`WriteError::NotPermitted`] before anything is stored (after
    ///   asking once more on a fresh session if the refusing one was used before: Dovecot keeps
    ///   a session's rights from before an ACL change).
    /// - `expect` makes the change conditional (see [`Expect`]); a failed precondition gives
    ///   [`StoreOutcome::Conflict`] with the current state and leaves the message alone. When
    ///   both adding and removing, the precondition rides on the first STORE (`+FLAGS`); the
    ///   second (`-FLAGS`) follows unconditionally.
    /// - The result carries the flags and MODSEQ from the server's FETCH response to the last
    ///   STORE, or from an explicit `UID FETCH uid (UID FLAGS MODSEQ)`.
    /// - A UID that does not exist gives [`StoreOutcome::Gone`] (a UID STORE on it is not an
    ///   error in IMAP, §6.4.8).
    pub async fn store_flags(
        &self,
        imap_name: &str,
        uidvalidity: u32,
        uid: u32,
        add: &[&str],
        remove: &[&str],
        expect: Option<Expect>,
    ) -> Result<StoreOutcome, WriteError> {
        let mailbox = mailbox_arg(imap_name)?;
        if uid == 0 {
            return Err(WriteError::invalid(
                "UID 0 does not exist (RFC 3501 §2.3.1.1)",
            ));
        }
        let add = system_flags(add)?;
        let remove = system_flags(remove)?;
        if let Some(both) = add.iter().find(|f| remove.contains(f)) {
            return Err(WriteError::invalid(format!(
                "{both} is both added and removed"
            )));
        }
        let req = StoreRequest {
            mailbox,
            imap_name,
            uidvalidity,
            uid,
            add,
            remove,
            expect,
        };
        let first = with_live!(self, live => live.store(&req).await);
        if matches!(first, Err(WriteError::NotPermitted { .. })) {
            let mut guard = self.inner.live.lock().await;
            if guard.as_ref().is_some_and(|l| l.rights_maybe_stale) {
                // Dovecot keeps a session's rights from before an ACL change: a right granted
                // to the service account since then shows only in a new session.
                *guard = None;
                drop(guard);
                return with_live!(self, live => live.store(&req).await);
            }
        }
        first
    }

    /// `SETACL` (RFC 4314 §3.1): `identifier` gets exactly `rights` on `imap_name` (replacing
    /// what it had). A negative entry is the identifier `-name` (§2). An empty `rights`
    /// removes every right the entry grants.
    ///
    /// `identifier` must be non-empty printable ASCII: CR, LF, NUL and non-ASCII characters are
    /// refused ([`WriteError::InvalidArgument`]) before anything is sent. (Non-ASCII would need
    /// a literal; user names here are ASCII, and an 8-bit identifier stored on the server
    /// would come back in every GETACL, where the mirror and other clients must parse it, so
    /// Flagpost does not create one.) Quotes, backslashes, spaces and `{5}` are sent inside
    /// one quoted string. `rights` may use only [`RIGHT_LETTERS`]; `+`/`-` modifiers are
    /// refused (this is a replace). The server may still refuse a letter (`BAD` →
    /// [`WriteError::Rejected`]; Dovecot refuses digits) and may expand obsolete `c`/`d`
    /// (Dovecot stores `c` as `k`, `d` as `xte`).
    pub async fn set_acl(
        &self,
        imap_name: &str,
        identifier: &str,
        rights: &str,
    ) -> Result<(), WriteError> {
        let cmd = format!(
            "SETACL {} {} {}",
            mailbox_arg(imap_name)?,
            identifier_arg(identifier)?,
            rights_arg(rights)?
        );
        with_live!(self, live => live.simple(&cmd).await)
    }

    /// `DELETEACL` (RFC 4314 §3.2): removes `identifier`'s entry from `imap_name`'s ACL.
    /// Deleting an entry that does not exist succeeds on Dovecot. Arguments are checked as for
    /// [`Writer::set_acl`].
    pub async fn delete_acl(&self, imap_name: &str, identifier: &str) -> Result<(), WriteError> {
        let cmd = format!(
            "DELETEACL {} {}",
            mailbox_arg(imap_name)?,
            identifier_arg(identifier)?
        );
        with_live!(self, live => live.simple(&cmd).await)
    }

    /// `LISTRIGHTS` (RFC 4314 §3.4): which rights `identifier` always has and which may be
    /// granted on `imap_name`. Needs the `a` right.
    pub async fn list_rights(
        &self,
        imap_name: &str,
        identifier: &str,
    ) -> Result<ListedRights, WriteError> {
        let cmd = format!(
            "LISTRIGHTS {} {}",
            mailbox_arg(imap_name)?,
            identifier_arg(identifier)?
        );
        with_live!(self, live => live.list_rights(&cmd).await)
    }

    /// `GETACL` (RFC 4314 §3.3) via [`crate::folders::get_acl`]: (identifier, rights) pairs.
    /// Needs the `a` right.
    pub async fn get_acl(&self, imap_name: &str) -> Result<Vec<(String, Rights)>, WriteError> {
        mailbox_arg(imap_name)?;
        with_live!(self, live => within(crate::folders::get_acl(&mut live.session, imap_name)).await)
    }

    /// `MYRIGHTS` (RFC 4314 §3.5) via [`crate::folders::my_rights`]: the service account's own
    /// rights on `imap_name`.
    pub async fn my_rights(&self, imap_name: &str) -> Result<Rights, WriteError> {
        mailbox_arg(imap_name)?;
        with_live!(self, live => within(crate::folders::my_rights(&mut live.session, imap_name)).await)
    }

    /// The letters of the server's `RIGHTS=` capability (RFC 4314 §2.1; Dovecot: `texk`): the
    /// rights it offers beyond `l r s w i p a`, which every ACL server supports. `None` when
    /// the server does not announce it. Opens the session if needed.
    pub async fn rights_capability(&self) -> Result<Option<String>, WriteError> {
        with_live!(self, live => Ok(live.caps.iter().find_map(|c| {
            c.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("RIGHTS="))
                .map(|_| c[7..].to_owned())
        })))
    }

    /// The capabilities the server listed after the service account's login, in its order.
    /// Opens the session if needed.
    pub async fn capabilities(&self) -> Result<Vec<String>, WriteError> {
        with_live!(self, live => Ok(live.caps.clone()))
    }

    async fn open(&self) -> Result<Live, WriteError> {
        let i = &self.inner;
        let mut session = login(&i.settings, &i.user, &i.password)
            .await
            .map_err(WriteError::from_connect)?;
        let caps = within(crate::command::capabilities(&mut session)).await?;
        Ok(Live {
            session,
            opened: std::time::Instant::now(),
            caps,
            next_tag: 1,
            conditional_sent: false,
            calls: 0,
            rights_maybe_stale: false,
        })
    }
}

/// Runs a command future of the shared helpers with [`COMMAND_TIMEOUT`].
async fn within<T>(fut: impl Future<Output = Result<T, ConnectError>>) -> Result<T, WriteError> {
    tokio::time::timeout(COMMAND_TIMEOUT, fut)
        .await
        .map_err(|_| WriteError::Unreachable(ConnectError::Timeout(COMMAND_TIMEOUT)))?
        .map_err(WriteError::from_connect)
}

struct StoreRequest<'a> {
    mailbox: String,
    imap_name: &'a str,
    uidvalidity: u32,
    uid: u32,
    add: Vec<&'static str>,
    remove: Vec<&'static str>,
    expect: Option<Expect>,
}

impl StoreRequest<'_> {
    fn check_uidvalidity(&self, sel: &SelectInfo) -> Result<(), WriteError> {
        let actual = sel.uidvalidity.unwrap_or(0);
        if actual == self.uidvalidity {
            return Ok(());
        }
        Err(WriteError::UidValidityChanged {
            imap_name: self.imap_name.to_owned(),
            expected: self.uidvalidity,
            actual,
        })
    }
}

/// What SELECT reported.
#[derive(Debug, Default)]
struct SelectInfo {
    uidvalidity: Option<u32>,
    highest_modseq: Option<u64>,
    nomodseq: bool,
    permanent_flags: Option<Vec<String>>,
    read_only: bool,
}

impl Live {
    fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    fn condstore(&self) -> bool {
        self.has("CONDSTORE") || self.has("QRESYNC")
    }

    /// Sends `command` (already safely built) and reads to its completion.
    async fn exec(
        &mut self,
        command: &str,
        on_data: impl FnMut(&Response<'_>),
    ) -> Result<Done, WriteError> {
        let tag = format!("fpw{}", self.next_tag);
        self.next_tag += 1;
        let pieces = [Piece::Text(command.to_owned())];
        let literal_plus = self.has("LITERAL+");
        exec_within(&mut self.session, &tag, &pieces, literal_plus, on_data)
            .await
            .map_err(WriteError::from_connect)
    }

    /// A command whose only interesting answer is OK.
    async fn simple(&mut self, command: &str) -> Result<(), WriteError> {
        self.exec(command, |_| {}).await?.ok(command)
    }

    async fn list_rights(&mut self, command: &str) -> Result<ListedRights, WriteError> {
        let mut listed = None;
        self.exec(command, |d| {
            if let Response::ListRights(lr) = d {
                let mut letters = String::new();
                for c in lr
                    .required
                    .iter()
                    .chain(&lr.optional)
                    .map(|r| char::from(*r))
                {
                    if !letters.contains(c) {
                        letters.push(c);
                    }
                }
                let as_rights = |v: &[imap_proto::rfc4314::AclRight]| {
                    Rights::from_server(&v.iter().map(|r| char::from(*r)).collect::<String>())
                };
                listed = Some(ListedRights {
                    required: as_rights(&lr.required),
                    optional: as_rights(&lr.optional),
                    letters,
                });
            }
        })
        .await?
        .ok(command)?;
        listed.ok_or_else(|| WriteError::Protocol("LISTRIGHTS returned no LISTRIGHTS line".into()))
    }

    async fn select(&mut self, mailbox: &str) -> Result<SelectInfo, WriteError> {
        let cmd = if self.condstore() {
            format!("SELECT {mailbox} (CONDSTORE)")
        } else {
            format!("SELECT {mailbox}")
        };
        let mut info = SelectInfo::default();
        let done = self
            .exec(&cmd, |d| {
                if let Response::Data {
                    status: Status::Ok,
                    outcome,
                } = d
                {
                    match &outcome.code {
                        Some(ResponseCode::UidValidity(v)) => info.uidvalidity = Some(*v),
                        Some(ResponseCode::HighestModSeq(m)) => info.highest_modseq = Some(*m),
                        Some(ResponseCode::PermanentFlags(list)) => {
                            info.permanent_flags =
                                Some(list.iter().map(|f| f.to_string()).collect());
                        }
                        Some(_) => {}
                        None => {
                            let text = outcome.information.as_deref().unwrap_or("");
                            if split_code(text)
                                .0
                                .is_some_and(|c| c.eq_ignore_ascii_case("NOMODSEQ"))
                            {
                                info.nomodseq = true;
                            }
                        }
                    }
                }
            })
            .await?;
        info.read_only = done.read_only;
        done.ok("SELECT")?;
        if info.uidvalidity.is_none_or(|v| v == 0) {
            return Err(WriteError::Protocol(format!(
                "SELECT {mailbox} returned no UIDVALIDITY"
            )));
        }
        Ok(info)
    }

    /// `UID FETCH uid (UID FLAGS [MODSEQ])`: the message's current state, or `None` if the UID
    /// does not exist.
    async fn fetch(&mut self, uid: u32, modseq: bool) -> Result<Option<FetchData>, WriteError> {
        let items = if modseq {
            "UID FLAGS MODSEQ"
        } else {
            "UID FLAGS"
        };
        let cmd = format!("UID FETCH {uid} ({items})");
        let mut found = None;
        let done = self
            .exec(&cmd, |d| {
                if let Some(f) = fetch_of(d, uid) {
                    found = Some(f);
                }
            })
            .await?;
        match done.status {
            Status::Ok => Ok(found),
            // Dovecot: "NO Some of the requested messages no longer exist"
            Status::No if found.is_none() => Ok(None),
            _ => done.ok("UID FETCH").map(|()| found),
        }
    }

    async fn store(&mut self, req: &StoreRequest<'_>) -> Result<StoreOutcome, WriteError> {
        let result = self.store_selected(req).await;
        // Leave the folder (never CLOSE: it would expunge). A failure here only costs the
        // session, not the result.
        let broken = matches!(
            result,
            Err(WriteError::Unreachable(_) | WriteError::Protocol(_))
        );
        if !broken && self.has("UNSELECT") {
            match self.exec("UNSELECT", |_| {}).await {
                Ok(_) => {}
                Err(e @ (WriteError::Unreachable(_) | WriteError::Protocol(_))) => {
                    tracing::debug!(error = %e, "UNSELECT after STORE failed");
                    return result.and(Err(e));
                }
                Err(_) => {}
            }
        }
        result
    }

    async fn store_selected(&mut self, req: &StoreRequest<'_>) -> Result<StoreOutcome, WriteError> {
        let sel = self.select(&req.mailbox).await?;
        req.check_uidvalidity(&sel)?;
        let changing: Vec<&str> = req.add.iter().chain(&req.remove).copied().collect();
        let flags = not_permitted(&sel, &changing);
        if !flags.is_empty() {
            // A session used before may hold rights from before an ACL change (see
            // DEFAULT_MAX_SESSION_AGE): the writer asks again on a fresh one.
            self.rights_maybe_stale = self.calls > 1;
            return Err(WriteError::NotPermitted {
                imap_name: req.imap_name.to_owned(),
                flags,
            });
        }
        let modseqs = self.condstore() && !sel.nomodseq && sel.highest_modseq.is_some();

        // The precondition, as an UNCHANGEDSINCE value where the server can check it.
        let mut unchanged_since = None;
        match &req.expect {
            None => {}
            Some(Expect::ModSeq(n)) => {
                if !modseqs {
                    return Err(WriteError::ModSeqUnsupported {
                        imap_name: req.imap_name.to_owned(),
                    });
                }
                unchanged_since = Some(*n);
            }
            Some(Expect::Flags(expected)) => {
                let Some(now) = self.fetch(req.uid, modseqs).await? else {
                    return Ok(StoreOutcome::Gone);
                };
                let now_flags = now.flags.clone().unwrap_or_default();
                if now_flags != Flags::new(expected.iter().map(String::as_str)) {
                    return Ok(conflict(now));
                }
                unchanged_since = now.modseq.filter(|_| modseqs);
            }
        }

        let mut last: Option<FetchData> = None;
        let mut stores = 0;
        for (sign, flags) in [('+', &req.add), ('-', &req.remove)] {
            if flags.is_empty() {
                continue;
            }
            stores += 1;
            let condition = unchanged_since
                .take()
                .map(|n| format!("(UNCHANGEDSINCE {n}) "))
                .unwrap_or_default();
            if !condition.is_empty() {
                self.conditional_sent = true;
            }
            let cmd = format!(
                "UID STORE {} {condition}{sign}FLAGS ({})",
                req.uid,
                flags.join(" ")
            );
            let uid = req.uid;
            let mut seen = None;
            let done = self
                .exec(&cmd, |d| {
                    if let Some(f) = fetch_of(d, uid) {
                        seen = Some(f);
                    }
                })
                .await?;
            match done.status {
                Status::Ok
                    if done
                        .code
                        .as_deref()
                        .is_some_and(|c| c.to_ascii_uppercase().starts_with("MODIFIED")) =>
                {
                    // RFC 7162 §3.1.3: nothing was stored.
                    return Ok(match self.fetch(req.uid, modseqs).await? {
                        Some(now) => conflict(now),
                        None => StoreOutcome::Gone,
                    });
                }
                Status::Ok => last = seen,
                _ => {
                    // A NO may mean the message vanished under us (Dovecot: "Some of the
                    // requested messages no longer exist"): tell Gone from a real refusal.
                    if self.fetch(req.uid, false).await?.is_none() {
                        return Ok(StoreOutcome::Gone);
                    }
                    return Err(done.ok("UID STORE").err().unwrap_or_else(|| {
                        WriteError::Protocol("UID STORE failed without an error".into())
                    }));
                }
            }
        }

        // Without a change to make, the precondition alone decides.
        if stores == 0
            && let Some(n) = unchanged_since
        {
            return Ok(match self.fetch(req.uid, modseqs).await? {
                Some(now) if now.modseq.is_some_and(|m| m > n) => conflict(now),
                Some(now) => stored(now),
                None => StoreOutcome::Gone,
            });
        }
        let usable = last.filter(|f| f.flags.is_some() && (!modseqs || f.modseq.is_some()));
        let now = match usable {
            Some(f) => Some(f),
            None => self.fetch(req.uid, modseqs).await?,
        };
        Ok(match now {
            Some(now) => stored(now),
            None => StoreOutcome::Gone,
        })
    }
}

/// The flags of `changing` that the selected folder does not let the session change:
/// all of them when it is `[READ-ONLY]`, else those missing from `[PERMANENTFLAGS]` (none when
/// the server sent no PERMANENTFLAGS: RFC 3501 §7.1 then allows every flag).
fn not_permitted(sel: &SelectInfo, changing: &[&str]) -> Vec<String> {
    changing
        .iter()
        .filter(|f| {
            sel.read_only
                || sel
                    .permanent_flags
                    .as_ref()
                    .is_some_and(|p| !p.iter().any(|p| p.eq_ignore_ascii_case(f)))
        })
        .map(|f| (*f).to_owned())
        .collect()
}

fn stored(d: FetchData) -> StoreOutcome {
    StoreOutcome::Stored {
        flags: d.flags.unwrap_or_default().as_slice().to_vec(),
        modseq: d.modseq,
    }
}

fn conflict(d: FetchData) -> StoreOutcome {
    StoreOutcome::Conflict {
        flags: d.flags.unwrap_or_default().as_slice().to_vec(),
        modseq: d.modseq,
    }
}

/// The FETCH data of `uid` in `d`, if `d` is a FETCH for it that carries FLAGS.
fn fetch_of(d: &Response<'_>, uid: u32) -> Option<FetchData> {
    let Response::Fetch(_, attrs) = d else {
        return None;
    };
    let f = FetchData::from_attributes(attrs);
    (f.uid == Some(uid) && f.flags.is_some()).then_some(f)
}

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

fn mailbox_arg(imap_name: &str) -> Result<String, WriteError> {
    if imap_name.is_empty() {
        return Err(WriteError::invalid("the folder name is empty"));
    }
    quote(imap_name).map_err(|e| WriteError::invalid(format!("folder name {imap_name:?}: {e}")))
}

fn identifier_arg(identifier: &str) -> Result<String, WriteError> {
    if identifier.is_empty() || identifier == "-" {
        return Err(WriteError::invalid("the ACL identifier is empty"));
    }
    quote(identifier).map_err(|e| match e {
        ImapArgError::LineBreak => {
            WriteError::invalid("ACL identifiers must not contain CR, LF or NUL")
        }
        ImapArgError::EightBit => WriteError::invalid(
            "ACL identifiers must be ASCII (non-ASCII identifiers are not supported)",
        ),
    })
}

fn rights_arg(rights: &str) -> Result<String, WriteError> {
    if let Some(bad) = rights.chars().find(|c| !RIGHT_LETTERS.contains(*c)) {
        return Err(WriteError::invalid(format!(
            "{bad:?} is not an ACL right (allowed: {RIGHT_LETTERS})"
        )));
    }
    quote(rights).map_err(WriteError::invalid)
}

/// Canonical spellings of the flags in `flags`; anything but the three writable system flags
/// is refused.
fn system_flags(flags: &[&str]) -> Result<Vec<&'static str>, WriteError> {
    let mut out: Vec<&'static str> = Vec::new();
    for f in flags {
        let canonical = WRITABLE_FLAGS
            .iter()
            .find(|w| w.eq_ignore_ascii_case(f))
            .ok_or_else(|| {
                WriteError::invalid(format!(
                    "{f:?} cannot be changed through Flagpost (only \\Answered, \\Flagged, \\Seen)"
                ))
            })?;
        if !out.contains(canonical) {
            out.push(canonical);
        }
    }
    Ok(out)
}

/// `"[CODE args] text"` → (`CODE args`, `text`); text without a leading code → (None, text).
fn split_code(text: &str) -> (Option<String>, String) {
    if let Some(rest) = text.strip_prefix('[')
        && let Some((code, after)) = rest.split_once(']')
    {
        return (Some(code.to_owned()), after.trim_start().to_owned());
    }
    (None, text.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Raw command runner (quoted strings and literals)
// ---------------------------------------------------------------------------------------------

/// One piece of a command line.
enum Piece {
    /// Bytes sent as they are (command words, quoted strings made by [`quote`]).
    Text(String),
    /// An argument sent as a literal (RFC 3501 §4.3). Never holds CR, LF or NUL.
    Literal(Vec<u8>),
}

/// A tagged completion.
#[derive(Debug)]
struct Done {
    status: Status,
    /// `[READ-ONLY]` (imap-proto parses it).
    read_only: bool,
    /// A response code imap-proto does not parse, e.g. `MODIFIED 7`, `NOPERM`.
    code: Option<String>,
    /// The human-readable text.
    text: String,
}

impl Done {
    fn describe(&self) -> String {
        match &self.code {
            Some(c) => format!("[{c}] {}", self.text),
            None => self.text.clone(),
        }
    }

    /// `Ok` for an OK completion, else the refusal as a [`WriteError`].
    fn ok(self, command: &str) -> Result<(), WriteError> {
        let command = command.split(' ').next().unwrap_or("").to_owned();
        match self.status {
            Status::Ok => Ok(()),
            Status::No => Err(WriteError::Refused {
                command,
                code: self.code,
                text: self.text,
            }),
            Status::Bad => Err(WriteError::Rejected {
                command,
                text: self.describe(),
            }),
            other => Err(WriteError::Protocol(format!(
                "{command} completed with {other:?}"
            ))),
        }
    }
}

/// [`exec`] within [`COMMAND_TIMEOUT`].
async fn exec_within(
    conn: &mut Conn,
    tag: &str,
    pieces: &[Piece],
    literal_plus: bool,
    on_data: impl FnMut(&Response<'_>),
) -> Result<Done, ConnectError> {
    tokio::time::timeout(
        COMMAND_TIMEOUT,
        exec(conn, tag, pieces, literal_plus, on_data),
    )
    .await
    .map_err(|_| ConnectError::Timeout(COMMAND_TIMEOUT))?
}

/// Sends `tag` + `pieces` + CRLF and reads to the tagged completion, handing every other
/// response to `on_data` (so none is left for async-imap's unsolicited channel). A literal
/// waits for the server's continuation request unless `literal_plus` (RFC 7888 `{n+}`); if the
/// server completes the command instead, that completion is returned.
async fn exec(
    conn: &mut Conn,
    tag: &str,
    pieces: &[Piece],
    literal_plus: bool,
    mut on_data: impl FnMut(&Response<'_>),
) -> Result<Done, ConnectError> {
    let mut buf: Vec<u8> = Vec::with_capacity(128);
    buf.extend_from_slice(tag.as_bytes());
    buf.push(b' ');
    for piece in pieces {
        match piece {
            Piece::Text(t) => {
                if t.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err(ConnectError::Protocol(
                        "refusing to send a command containing CR, LF or NUL".into(),
                    ));
                }
                buf.extend_from_slice(t.as_bytes());
            }
            Piece::Literal(bytes) => {
                if bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err(ConnectError::Protocol(
                        "refusing to send a literal containing CR, LF or NUL".into(),
                    ));
                }
                if literal_plus {
                    buf.extend_from_slice(format!("{{{}+}}\r\n", bytes.len()).as_bytes());
                } else {
                    buf.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                    send(conn, &mut buf).await?;
                    if let Some(done) = read_until(conn, tag, true, &mut on_data).await? {
                        return Ok(done);
                    }
                }
                buf.extend_from_slice(bytes);
            }
        }
    }
    buf.extend_from_slice(b"\r\n");
    send(conn, &mut buf).await?;
    match read_until(conn, tag, false, &mut on_data).await? {
        Some(done) => Ok(done),
        None => Err(ConnectError::Protocol(
            "continuation request without a literal pending".into(),
        )),
    }
}

async fn send(conn: &mut Conn, buf: &mut Vec<u8>) -> Result<(), ConnectError> {
    let stream = conn.get_mut();
    stream.write_all(buf).await?;
    stream.flush().await?;
    buf.clear();
    Ok(())
}

/// imap-proto's `Status` is neither `Copy` nor `Clone`.
fn copy_status(s: &Status) -> Status {
    match s {
        Status::Ok => Status::Ok,
        Status::No => Status::No,
        Status::Bad => Status::Bad,
        Status::PreAuth => Status::PreAuth,
        Status::Bye => Status::Bye,
    }
}

/// Reads responses until `tag`'s completion (returned) or, when `want_continue`, a
/// continuation request (`None`). Continuation requests are otherwise ignored.
async fn read_until(
    conn: &mut Conn,
    tag: &str,
    want_continue: bool,
    on_data: &mut impl FnMut(&Response<'_>),
) -> Result<Option<Done>, ConnectError> {
    loop {
        let Some(resp) = conn.read_response().await? else {
            return Err(ConnectError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the IMAP server closed the connection",
            )));
        };
        match resp.parsed() {
            Response::Continue(_) if want_continue => return Ok(None),
            Response::Continue(_) => {}
            Response::Done {
                tag: RequestId(t),
                status,
                outcome,
            } if t == tag => {
                let (code, text) = split_code(outcome.information.as_deref().unwrap_or(""));
                return Ok(Some(Done {
                    status: copy_status(status),
                    read_only: matches!(outcome.code, Some(ResponseCode::ReadOnly)),
                    code,
                    text,
                }));
            }
            other => on_data(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_canonical_and_limited_to_three() {
        assert_eq!(
            system_flags(&["\\seen", "\\ANSWERED", "\\Seen"]).unwrap(),
            vec!["\\Seen", "\\Answered"]
        );
        for bad in [
            "\\Deleted",
            "\\Draft",
            "$Junk",
            "\\Seen\r\n",
            "(\\Seen)",
            "",
        ] {
            assert!(system_flags(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn identifiers_and_rights_are_quoted_or_refused() {
        assert_eq!(identifier_arg("a\"b").unwrap(), "\"a\\\"b\"");
        assert_eq!(identifier_arg("{5}").unwrap(), "\"{5}\"");
        assert_eq!(identifier_arg("-bob").unwrap(), "\"-bob\"");
        for bad in ["", "-", "x\r\nA1 DELETE INBOX", "x\n", "nul\0", "jürgen"] {
            assert!(identifier_arg(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rights_arg("lrswa0").unwrap(), "\"lrswa0\"");
        assert_eq!(rights_arg("").unwrap(), "\"\"");
        for bad in ["+lr", "-w", "l r", "lr\r\n", "L", "z", "lr\0"] {
            assert!(rights_arg(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn response_codes_are_split_off() {
        assert_eq!(
            split_code("[MODIFIED 7,9] Conditional store failed"),
            (
                Some("MODIFIED 7,9".to_owned()),
                "Conditional store failed".to_owned()
            )
        );
        assert_eq!(
            split_code("Store completed"),
            (None, "Store completed".to_owned())
        );
    }

    #[test]
    fn the_writer_and_its_futures_are_send_and_sync() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let w = Writer::new(
            ImapSettings {
                host: "localhost".into(),
                port: 1,
                tls: crate::TlsMode::Implicit,
                ca_file: None,
                timeout: Duration::from_secs(1),
            },
            "u",
            "p",
        );
        send_sync(&w);
        send(w.store_flags("f", 1, 1, &["\\Seen"], &[], None));
        send(w.set_acl("f", "i", "lr"));
        send(w.list_rights("f", "i"));
        send(w.get_acl("f"));
        send(w.rights_capability());
        let s = ImapSettings {
            host: "localhost".into(),
            port: 1,
            tls: crate::TlsMode::Implicit,
            ca_file: None,
            timeout: Duration::from_secs(1),
        };
        send(verify_login(&s, "u", "p"));
    }
}
