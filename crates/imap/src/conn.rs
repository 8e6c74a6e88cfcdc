//! One logged-in connection as the watchers use it: capabilities, `EXAMINE`, commands whose
//! unsolicited side effects (EXISTS, EXPUNGE, VANISHED, FETCH) are noted rather than lost, and
//! IDLE (RFC 2177) driven by hand, because async-imap's IDLE handle only detects silence.
//!
//! Any error here means the session can no longer be trusted (see IMAP-NOTES: an unparseable line
//! wedges async-imap): callers drop the connection, reconnect and resync.

use std::time::Duration;

use flagpost_domain::sync::Checkpoint;
use imap_proto::{MailboxDatum, Response, ResponseCode, Status, StatusAttribute};
use tokio_util::sync::CancellationToken;

use crate::command::quote;
use crate::connect::{ConnectError, ImapSettings, Session, login};
use crate::fetch::FetchData;

/// Reads one response within a deadline. (A macro because async-imap does not export the type
/// `read_response` yields, so no function can name it.)
macro_rules! read_within {
    ($session:expr, $timeout:expr) => {
        match tokio::time::timeout($timeout, $session.read_response()).await {
            Err(_) => Err(ConnectError::Timeout($timeout)),
            Ok(Err(e)) => Err(ConnectError::Io(e)),
            Ok(Ok(None)) => Err(closed()),
            Ok(Ok(Some(r))) => Ok(r),
        }
    };
}

/// How long a liveness check (NOOP, or the end of an IDLE) may take on a healthy link.
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one command may take before the connection is declared dead.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What the server can do, as far as Flagpost cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerCaps {
    /// RFC 2177.
    pub idle: bool,
    /// RFC 7162 CONDSTORE.
    pub condstore: bool,
    /// RFC 7162 QRESYNC (enabled on connect when offered).
    pub qresync: bool,
    /// RFC 4314.
    pub acl: bool,
    /// RFC 3691.
    pub unselect: bool,
    /// RFC 2971.
    pub id: bool,
}

impl ServerCaps {
    fn from_list(caps: &[String]) -> ServerCaps {
        let has = |c: &str| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
        ServerCaps {
            idle: has("IDLE"),
            condstore: has("CONDSTORE") || has("QRESYNC"),
            qresync: has("QRESYNC") && has("ENABLE"),
            acl: has("ACL"),
            unselect: has("UNSELECT"),
            id: has("ID"),
        }
    }
}

/// What EXAMINE reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selected {
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// UIDNEXT, if sent.
    pub uidnext: Option<u32>,
    /// HIGHESTMODSEQ; None when the server or this mailbox has no mod-sequences.
    pub highest_modseq: Option<u64>,
    /// EXISTS.
    pub exists: u32,
    /// The HIGHESTMODSEQ given in a QRESYNC select whose UIDVALIDITY matched: the changes and
    /// expunges since then came with the EXAMINE and wait in [`Conn::noticed`] (RFC 7162 §3.2.5).
    pub qresync_since: Option<u64>,
}

/// A `VANISHED` range wider than this is kept as a range, not expanded into UIDs (a server
/// may answer `VANISHED (EARLIER) 1:4000000000`).
pub const WIDE_VANISHED: u32 = 1024;

/// Unsolicited news seen while running commands.
#[derive(Debug, Clone, Default)]
pub struct Noticed {
    /// Something changed in the selected mailbox (EXISTS, EXPUNGE, FETCH, VANISHED).
    pub changed: bool,
    /// UIDs reported expunged by `VANISHED` (QRESYNC).
    pub vanished: Vec<u32>,
    /// `VANISHED` ranges too wide to list UID by UID ([`WIDE_VANISHED`]): a server may report
    /// UIDs that never existed (RFC 7162 §3.2.5.2), so these are matched against the mirror.
    pub vanished_ranges: Vec<(u32, u32)>,
    /// The latest EXISTS.
    pub exists: Option<u32>,
    /// FETCH responses that carried a UID.
    pub fetches: Vec<FetchData>,
}

/// A watcher's connection.
#[derive(Debug)]
pub struct Conn {
    session: Session,
    /// Capabilities after login.
    pub caps: ServerCaps,
    /// Capabilities as listed.
    pub capability_list: Vec<String>,
    /// The mailbox selected (read-only) now.
    pub selected: Option<Selected>,
    /// News noticed since last taken.
    pub noticed: Noticed,
    /// The folder and stored checkpoint the last [`crate::sync::examine_folder`] used, so the
    /// sync step right after it need not read them again.
    pub(crate) examined_with: Option<(i64, Option<Checkpoint>)>,
}

/// Why IDLE returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleEnd {
    /// The server reported a change in the mailbox.
    Changed,
    /// The wait elapsed without news (time for a liveness check or an IDLE refresh).
    Elapsed,
    /// Shutdown was requested.
    Cancelled,
    /// The supervisor asked for the mailbox to be selected again (its `STATUS` is ahead of
    /// what this connection reported).
    Woken,
}

impl Conn {
    /// Logs in, reads the capabilities and enables QRESYNC where offered.
    pub async fn open(
        settings: &ImapSettings,
        user: &str,
        password: &str,
    ) -> Result<Conn, ConnectError> {
        let mut session = login(settings, user, password).await?;
        let capability_list = crate::command::capabilities(&mut session).await?;
        let caps = ServerCaps::from_list(&capability_list);
        let mut conn = Conn {
            session,
            caps,
            capability_list,
            selected: None,
            noticed: Noticed::default(),
            examined_with: None,
        };
        if caps.qresync {
            conn.run("ENABLE QRESYNC", |_| {}).await?;
        }
        Ok(conn)
    }

    /// The underlying session, for one-off commands.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Runs `command`, handing FETCH data (with a UID) to `on_fetch` and noting every other
    /// mailbox change in [`Conn::noticed`].
    pub async fn run(
        &mut self,
        command: &str,
        mut on_fetch: impl FnMut(FetchData),
    ) -> Result<Vec<OtherData>, ConnectError> {
        let noticed = &mut self.noticed;
        let mut other = Vec::new();
        let fut = crate::command::run_raw(&mut self.session, command, |r, raw| {
            match r {
                Response::Fetch(_, attrs) => {
                    let d = FetchData::from_attributes_in(attrs, raw);
                    if d.uid.is_some() {
                        on_fetch(d);
                    } else {
                        // another session's change without UID: resync to be sure
                        noticed.changed = true;
                    }
                }
                other_r => note(noticed, other_r, &mut other),
            }
        });
        tokio::time::timeout(COMMAND_TIMEOUT, fut)
            .await
            .map_err(|_| ConnectError::Timeout(COMMAND_TIMEOUT))??;
        self.check_uidvalidity(&other)?;
        Ok(other)
    }

    /// A new UIDVALIDITY announced while a folder is selected (RFC 3501 §2.3.1.1) voids every
    /// UID this session knows: the session is given up, and the reconnect's EXAMINE finds the
    /// new generation and resets the folder.
    fn check_uidvalidity(&self, other: &[OtherData]) -> Result<(), ConnectError> {
        let Some(sel) = self.selected else {
            return Ok(());
        };
        for o in other {
            if let OtherData::UidValidity(v) = o
                && *v != sel.uidvalidity
            {
                return Err(ConnectError::Protocol(format!(
                    "the server announced UIDVALIDITY {v} for the selected folder (was {})",
                    sel.uidvalidity
                )));
            }
        }
        Ok(())
    }

    /// `EXAMINE` (read-only, so watching never changes `\Recent` or anything else) with
    /// CONDSTORE where offered; with QRESYNC and a known `(uidvalidity, modseq)` the server
    /// reports what changed and vanished since then in the same round trip.
    pub async fn examine(
        &mut self,
        imap_name: &str,
        known: Option<(u32, u64)>,
    ) -> Result<Selected, ConnectError> {
        let arg = quote(imap_name).map_err(|e| ConnectError::Protocol(e.to_string()))?;
        let qresync = known.filter(|_| self.caps.qresync);
        let cmd = match qresync {
            Some((uv, modseq)) => format!("EXAMINE {arg} (QRESYNC ({uv} {modseq}))"),
            None if self.caps.condstore && !self.caps.qresync => {
                format!("EXAMINE {arg} (CONDSTORE)")
            }
            None => format!("EXAMINE {arg}"),
        };
        self.selected = None;
        self.examined_with = None;
        self.noticed = Noticed::default();
        let mut fetches = Vec::new();
        let other = self.run(&cmd, |d| fetches.push(d)).await?;
        let mut sel = Selected::default();
        let mut have_uidvalidity = false;
        for d in other {
            match d {
                OtherData::UidValidity(v) => {
                    sel.uidvalidity = v;
                    have_uidvalidity = true;
                }
                OtherData::UidNext(n) => sel.uidnext = Some(n),
                OtherData::HighestModSeq(m) => sel.highest_modseq = Some(m),
            }
        }
        sel.exists = self.noticed.exists.unwrap_or(0);
        if !have_uidvalidity || sel.uidvalidity == 0 {
            // RFC 3501 requires it; without it no UID can be trusted (and async-imap may be
            // wedged): treat the session as broken.
            return Err(ConnectError::Protocol(format!(
                "EXAMINE {imap_name:?} returned no UIDVALIDITY"
            )));
        }
        let vanished = std::mem::take(&mut self.noticed.vanished);
        let vanished_ranges = std::mem::take(&mut self.noticed.vanished_ranges);
        if let Some((uv, modseq)) = qresync
            && uv == sel.uidvalidity
        {
            sel.qresync_since = Some(modseq);
        }
        self.noticed = Noticed {
            exists: Some(sel.exists),
            ..Noticed::default()
        };
        if sel.qresync_since.is_some() {
            self.noticed.fetches = fetches;
            self.noticed.vanished = vanished;
            self.noticed.vanished_ranges = vanished_ranges;
        }
        self.selected = Some(sel);
        Ok(sel)
    }

    /// Takes the news noticed so far.
    pub fn take_noticed(&mut self) -> Noticed {
        let exists = self.noticed.exists;
        let mut n = std::mem::take(&mut self.noticed);
        self.noticed.exists = exists;
        n.exists = exists;
        n
    }

    /// IDLE until the server reports a change, `wait` elapses or `cancel` fires; then `DONE`.
    pub async fn idle(
        &mut self,
        wait: Duration,
        cancel: &CancellationToken,
        wake: &tokio::sync::Notify,
    ) -> Result<IdleEnd, ConnectError> {
        let tag = self
            .session
            .run_command("IDLE")
            .await
            .map_err(ConnectError::from_imap)?;
        // Wait for the continuation request; untagged data before it still counts.
        loop {
            let resp = read_within!(self.session, LIVENESS_TIMEOUT)?;
            match resp.parsed() {
                Response::Continue { .. } => break,
                Response::Done { status, .. } => {
                    return Err(ConnectError::Command {
                        command: "IDLE".to_owned(),
                        status: format!("{status:?}").to_ascii_uppercase(),
                        text: String::new(),
                    });
                }
                r => self.note_idle(r)?,
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        let end = loop {
            if self.noticed.changed {
                break IdleEnd::Changed;
            }
            tokio::select! {
                _ = cancel.cancelled() => break IdleEnd::Cancelled,
                _ = wake.notified() => break IdleEnd::Woken,
                _ = tokio::time::sleep_until(deadline) => break IdleEnd::Elapsed,
                resp = self.session.read_response() => {
                    let Some(resp) = resp? else {
                        return Err(closed());
                    };
                    self.note_idle(resp.parsed())?;
                }
            }
        };
        self.session
            .run_command_untagged("DONE")
            .await
            .map_err(ConnectError::from_imap)?;
        loop {
            let resp = read_within!(self.session, LIVENESS_TIMEOUT)?;
            if let Response::Done { tag: t, status, .. } = resp.parsed()
                && *t == tag
            {
                if *status != Status::Ok {
                    return Err(ConnectError::Protocol(
                        "IDLE ended with an error".to_owned(),
                    ));
                }
                break;
            }
            self.note_idle(resp.parsed())?;
        }
        Ok(if self.noticed.changed && end != IdleEnd::Woken {
            IdleEnd::Changed
        } else {
            end
        })
    }

    fn note_idle(&mut self, r: &Response<'_>) -> Result<(), ConnectError> {
        if let Response::Data {
            status: Status::Bye,
            outcome,
        } = r
        {
            return Err(ConnectError::Protocol(format!(
                "the server closed the session: {}",
                outcome.information.as_deref().unwrap_or("BYE")
            )));
        }
        if let Response::Fetch(_, attrs) = r {
            let d = FetchData::from_attributes(attrs);
            self.noticed.changed = true;
            if d.uid.is_some() {
                self.noticed.fetches.push(d);
            }
            return Ok(());
        }
        let mut other = Vec::new();
        note(&mut self.noticed, r, &mut other);
        self.check_uidvalidity(&other)
    }

    /// Leaves the selected mailbox, if any. Without UNSELECT (RFC 3691), CLOSE: after EXAMINE
    /// it expunges nothing (RFC 3501 §6.4.2), and Flagpost's watchers only ever EXAMINE.
    pub async fn unselect(&mut self) -> Result<(), ConnectError> {
        if self.selected.is_some() {
            let leave = if self.caps.unselect {
                "UNSELECT"
            } else {
                "CLOSE"
            };
            self.run(leave, |_| {}).await?;
            self.selected = None;
            self.examined_with = None;
        }
        Ok(())
    }

    /// The server's own name from `ID NIL` (RFC 2971), e.g. `Dovecot` or `Cyrus IMAPD`; `None`
    /// without the ID extension, when refused, or when the server does not say.
    pub async fn server_name(&mut self) -> Result<Option<String>, ConnectError> {
        if !self.caps.id {
            return Ok(None);
        }
        match tokio::time::timeout(
            COMMAND_TIMEOUT,
            crate::command::server_name(&mut self.session),
        )
        .await
        {
            Err(_) => Err(ConnectError::Timeout(COMMAND_TIMEOUT)),
            Ok(r) => r,
        }
    }

    /// `STATUS` with the items that tell whether a folder moved. Never `SIZE` (async-imap cannot
    /// parse it). With a mailbox selected Dovecot answers for it too, but RFC 3501 §6.3.10 warns
    /// against it, so the poller does not keep one selected while asking.
    pub async fn status(&mut self, imap_name: &str) -> Result<StatusInfo, ConnectError> {
        let arg = quote(imap_name).map_err(|e| ConnectError::Protocol(e.to_string()))?;
        let items = if self.caps.condstore {
            "(UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ)"
        } else {
            "(UIDVALIDITY UIDNEXT MESSAGES)"
        };
        self.unselect().await?;
        let mut info = StatusInfo::default();
        let cmd = format!("STATUS {arg} {items}");
        let fut = crate::command::run(&mut self.session, &cmd, |r| {
            if let Response::MailboxData(MailboxDatum::Status { status, .. }) = r {
                for a in status {
                    match a {
                        StatusAttribute::HighestModSeq(m) => info.highest_modseq = Some(*m),
                        StatusAttribute::Messages(n) => info.messages = Some(*n),
                        StatusAttribute::UidNext(n) => info.uidnext = Some(*n),
                        StatusAttribute::UidValidity(v) => info.uidvalidity = Some(*v),
                        _ => {}
                    }
                }
            }
        });
        tokio::time::timeout(COMMAND_TIMEOUT, fut)
            .await
            .map_err(|_| ConnectError::Timeout(COMMAND_TIMEOUT))??;
        Ok(info)
    }

    /// `UID SEARCH ALL`: every UID in the selected mailbox.
    pub async fn uid_search_all(&mut self) -> Result<Vec<u32>, ConnectError> {
        let mut uids = Vec::new();
        let fut = crate::command::run(&mut self.session, "UID SEARCH ALL", |r| {
            if let Response::MailboxData(MailboxDatum::Search(list)) = r {
                uids.extend_from_slice(list);
            }
        });
        tokio::time::timeout(COMMAND_TIMEOUT, fut)
            .await
            .map_err(|_| ConnectError::Timeout(COMMAND_TIMEOUT))??;
        Ok(uids)
    }

    /// `NOOP`: a liveness check that also collects pending news. A link that does not answer
    /// within [`LIVENESS_TIMEOUT`] is dead.
    pub async fn noop(&mut self) -> Result<(), ConnectError> {
        tokio::time::timeout(LIVENESS_TIMEOUT, self.run("NOOP", |_| {}))
            .await
            .map_err(|_| ConnectError::Timeout(LIVENESS_TIMEOUT))?
            .map(drop)
    }

    /// `LOGOUT`, best effort.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

fn closed() -> ConnectError {
    ConnectError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the IMAP server closed the connection",
    ))
}

/// What `STATUS` reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusInfo {
    /// UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// UIDNEXT.
    pub uidnext: Option<u32>,
    /// MESSAGES.
    pub messages: Option<u32>,
    /// HIGHESTMODSEQ.
    pub highest_modseq: Option<u64>,
}

/// Response codes of interest from untagged OK lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherData {
    /// `[UIDVALIDITY n]`
    UidValidity(u32),
    /// `[UIDNEXT n]`
    UidNext(u32),
    /// `[HIGHESTMODSEQ n]`
    HighestModSeq(u64),
}

fn note(noticed: &mut Noticed, r: &Response<'_>, other: &mut Vec<OtherData>) {
    match r {
        Response::MailboxData(MailboxDatum::Exists(n)) => {
            if noticed.exists != Some(*n) && noticed.exists.is_some() {
                noticed.changed = true;
            }
            noticed.exists = Some(*n);
        }
        Response::Expunge(_) => {
            noticed.changed = true;
            noticed.exists = noticed.exists.map(|e| e.saturating_sub(1));
        }
        Response::Vanished { earlier, uids } => {
            // VANISHED (EARLIER) answers our own CHANGEDSINCE; only a live one is news.
            if !*earlier {
                noticed.changed = true;
            }
            for range in uids {
                if range.end().saturating_sub(*range.start()) < WIDE_VANISHED {
                    noticed.vanished.extend(range.clone());
                } else {
                    noticed.vanished_ranges.push((*range.start(), *range.end()));
                }
            }
            if !*earlier {
                let n: u64 = uids
                    .iter()
                    .map(|r| u64::from(r.end().saturating_sub(*r.start())) + 1)
                    .sum();
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                noticed.exists = noticed.exists.map(|e| e.saturating_sub(n));
            }
        }
        Response::Data { outcome, .. } => match &outcome.code {
            Some(ResponseCode::Alert) => {
                // RFC 3501 §7.1: the text MUST be shown to the user; for a daemon, the log.
                tracing::warn!(
                    alert = outcome.information.as_deref().unwrap_or(""),
                    "the IMAP server sent an alert"
                );
            }
            Some(ResponseCode::UidValidity(v)) => other.push(OtherData::UidValidity(*v)),
            Some(ResponseCode::UidNext(n)) => other.push(OtherData::UidNext(*n)),
            Some(ResponseCode::HighestModSeq(m)) => other.push(OtherData::HighestModSeq(*m)),
            _ => {}
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vanished(earlier: bool, uids: Vec<std::ops::RangeInclusive<u32>>) -> Response<'static> {
        Response::Vanished { earlier, uids }
    }

    /// Narrow VANISHED ranges are listed UID by UID; a wide one (a server may report UIDs
    /// that never existed) stays a range, and a live one still lowers EXISTS without
    /// overflowing.
    #[test]
    fn wide_vanished_ranges_are_kept_as_ranges() {
        let mut n = Noticed {
            exists: Some(10),
            ..Noticed::default()
        };
        let mut other = Vec::new();
        note(
            &mut n,
            &vanished(true, vec![3..=5, 1..=4_000_000_000, 9..=9]),
            &mut other,
        );
        assert_eq!(n.vanished, [3, 4, 5, 9]);
        assert_eq!(n.vanished_ranges, [(1, 4_000_000_000)]);
        assert_eq!(n.exists, Some(10));
        assert!(!n.changed);
        note(&mut n, &vanished(false, vec![0..=u32::MAX]), &mut other);
        assert!(n.changed);
        assert_eq!(n.exists, Some(0));
        assert_eq!(n.vanished_ranges.len(), 2);
    }
}
