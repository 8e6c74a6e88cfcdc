//! Raw commands and argument quoting.
//!
//! async-imap sends some arguments unquoted (LIST patterns) and has no ACL commands, so every
//! argument Flagpost puts into a command goes through [`quote`]: a quoted string (RFC 3501 §4.3)
//! that refuses CR, LF and NUL, so no argument can end a command line and start another.

use imap_proto::{Response, Status};

use crate::connect::{ConnectError, Session};

/// An argument that cannot be sent safely as an IMAP quoted string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImapArgError {
    /// CR, LF or NUL would end or corrupt the command line.
    #[error("IMAP arguments must not contain CR, LF or NUL")]
    LineBreak,
    /// Quoted strings are 7-bit (RFC 3501 §4.3); names must be modified UTF-7 first.
    #[error("IMAP quoted strings must be 7-bit ASCII (encode mailbox names as modified UTF-7)")]
    EightBit,
}

/// Quotes `s` as an IMAP quoted string.
pub fn quote(s: &str) -> Result<String, ImapArgError> {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(ImapArgError::LineBreak);
    }
    if !s.is_ascii() {
        return Err(ImapArgError::EightBit);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// Sends `command` and hands every response before its tagged completion to `on_data`.
///
/// A `NO` or `BAD` completion becomes [`ConnectError::Command`]; a closed connection becomes
/// [`ConnectError::Io`]. Every untagged response is consumed here, none is left for
/// async-imap's bounded unsolicited channel, so it cannot fill up.
pub async fn run(
    session: &mut Session,
    command: &str,
    mut on_data: impl FnMut(&Response<'_>),
) -> Result<(), ConnectError> {
    run_raw(session, command, |r, _| on_data(r)).await
}

/// [`run`], handing `on_data` each response's bytes too (to tell literals from quoted
/// strings: [`crate::fetch::unescape_in`]).
pub async fn run_raw(
    session: &mut Session,
    command: &str,
    mut on_data: impl FnMut(&Response<'_>, &[u8]),
) -> Result<(), ConnectError> {
    let tag = session
        .run_command(command)
        .await
        .map_err(ConnectError::from_imap)?;
    loop {
        let Some(resp) = session.read_response().await? else {
            return Err(ConnectError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the IMAP server closed the connection",
            )));
        };
        if let Response::Done {
            tag: done_tag,
            status,
            outcome,
        } = resp.parsed()
            && *done_tag == tag
        {
            return match status {
                Status::Ok => Ok(()),
                _ => Err(ConnectError::Command {
                    command: command.split(' ').next().unwrap_or("").to_owned(),
                    status: format!("{status:?}").to_ascii_uppercase(),
                    text: outcome.information.as_deref().unwrap_or("").to_owned(),
                }),
            };
        }
        on_data(resp.parsed(), resp.borrow_owner());
    }
}

/// `CAPABILITY`, in the order the server lists them.
pub async fn capabilities(session: &mut Session) -> Result<Vec<String>, ConnectError> {
    let mut caps = Vec::new();
    run(session, "CAPABILITY", |d| {
        if let Response::Capabilities(list) = d {
            caps.extend(list.iter().map(|c| match c {
                imap_proto::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
                imap_proto::Capability::Auth(a) => format!("AUTH={a}"),
                imap_proto::Capability::Atom(a) => a.to_string(),
            }));
        }
    })
    .await?;
    Ok(caps)
}

/// The server's own name from `ID NIL` (RFC 2971), e.g. `Dovecot` or `Cyrus IMAPD`; `None` when
/// the server refuses the command or does not say. Ask only where `ID` is offered.
pub async fn server_name(session: &mut Session) -> Result<Option<String>, ConnectError> {
    let mut name = None;
    let r = run(session, "ID NIL", |r| {
        if let Response::Id(Some(fields)) = r {
            // Field names are case-insensitive (RFC 2971 §3.3).
            name = fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("name"))
                .map(|(_, v)| v.to_string());
        }
    })
    .await;
    match r {
        Ok(()) => Ok(name),
        Err(ConnectError::Command { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_refuses_line_breaks() {
        let cases: [(&str, Result<&str, ImapArgError>); 7] = [
            ("Queue", Ok("\"Queue\"")),
            ("a\"b", Ok("\"a\\\"b\"")),
            ("back\\slash", Ok("\"back\\\\slash\"")),
            ("{5}", Ok("\"{5}\"")),
            ("x\r\nA1 DELETE INBOX", Err(ImapArgError::LineBreak)),
            ("nul\0", Err(ImapArgError::LineBreak)),
            ("Café", Err(ImapArgError::EightBit)),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input).as_deref(), want.as_deref(), "input {input:?}");
        }
    }
}
