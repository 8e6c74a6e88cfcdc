//! A deliberately small, independent IMAP client for tests: "another IMAP client" that changes
//! mailboxes behind Flagpost's back, and a way to read the server's state directly.
//!
//! It speaks raw lines (RFC 3501 §2.2): tagged commands, untagged data, literals. It shares no
//! code with Flagpost's own IMAP layer, so a bug there cannot hide itself in a test.

use std::fmt;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::tls::{self, TestCertificates};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The completion of one command: its untagged lines and its tagged status.
#[derive(Debug, Clone)]
pub struct ImapResponse {
    /// Untagged lines (without the leading `* `), literals inlined.
    pub untagged: Vec<String>,
    /// `OK`, `NO` or `BAD`.
    pub status: String,
    /// The rest of the tagged line.
    pub text: String,
}

impl ImapResponse {
    /// Whether the command completed with `OK`.
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }

    /// Untagged lines whose first word is `kind` (case-insensitive), e.g. `ACL`, `LIST`.
    pub fn lines_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.untagged.iter().filter_map(move |l| {
            let (first, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
            first.eq_ignore_ascii_case(kind).then_some(rest)
        })
    }
}

/// A connected (and usually logged-in) raw IMAP client.
pub struct ImapClient {
    stream: BufStream<Box<dyn Io>>,
    next_tag: u32,
    /// The server's greeting line.
    pub greeting: String,
}

impl fmt::Debug for ImapClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapClient")
            .field("next_tag", &self.next_tag)
            .finish_non_exhaustive()
    }
}

impl ImapClient {
    /// Connects without TLS to 127.0.0.1:`port` and reads the greeting.
    pub async fn connect_plain(port: u16) -> Result<ImapClient> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        Self::from_stream(Box::new(tcp)).await
    }

    /// Connects with implicit TLS to 127.0.0.1:`port`, verifying the server against the
    /// fixture's CA, and reads the greeting.
    pub async fn connect_tls(port: u16, certs: &TestCertificates) -> Result<ImapClient> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let tls = certs
            .connector()?
            .connect(tls::server_name(), tcp)
            .await
            .context("TLS handshake with the fixture's Dovecot")?;
        Self::from_stream(Box::new(tls)).await
    }

    async fn from_stream(stream: Box<dyn Io>) -> Result<ImapClient> {
        let mut client = ImapClient {
            stream: BufStream::new(stream),
            next_tag: 1,
            greeting: String::new(),
        };
        client.greeting = client.read_line().await?;
        if !client.greeting.starts_with("* OK") {
            bail!("unexpected IMAP greeting: {}", client.greeting);
        }
        Ok(client)
    }

    /// `LOGIN user password`; fails unless the server says OK.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        let cmd = format!("LOGIN {} {}", quote(user)?, quote(password)?);
        let r = self.command(&cmd).await?;
        if !r.is_ok() {
            bail!("LOGIN as {user} failed: {} {}", r.status, r.text);
        }
        Ok(())
    }

    /// Sends one command (without tag) and reads everything up to its tagged completion.
    pub async fn command(&mut self, command: &str) -> Result<ImapResponse> {
        if command.contains(['\r', '\n']) {
            bail!("refusing to send a command containing CR or LF");
        }
        let tag = self.tag();
        self.stream
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.stream.flush().await?;
        self.read_until_tagged(&tag).await
    }

    /// Like [`ImapClient::command`], but fails unless the server says OK.
    pub async fn command_ok(&mut self, command: &str) -> Result<ImapResponse> {
        let r = self.command(command).await?;
        if !r.is_ok() {
            bail!("`{command}` failed: {} {}", r.status, r.text);
        }
        Ok(r)
    }

    /// APPENDs `message` (raw RFC 5322 bytes) to `mailbox` with `flags` (e.g. `\Seen`, may be
    /// empty) and returns the new UID from the `APPENDUID` response code (RFC 4315).
    pub async fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Result<u32> {
        let tag = self.tag();
        let head = format!(
            "{tag} APPEND {} ({flags}) {{{}}}\r\n",
            quote(mailbox)?,
            message.len()
        );
        self.stream.write_all(head.as_bytes()).await?;
        self.stream.flush().await?;
        let cont = self.read_line().await?;
        if !cont.starts_with('+') {
            bail!("APPEND to {mailbox} refused: {cont}");
        }
        self.stream.write_all(message).await?;
        self.stream.write_all(b"\r\n").await?;
        self.stream.flush().await?;
        let r = self.read_until_tagged(&tag).await?;
        if !r.is_ok() {
            bail!("APPEND to {mailbox} failed: {} {}", r.status, r.text);
        }
        let code = r
            .text
            .split_once("[APPENDUID ")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(code, _)| code.to_owned())
            .ok_or_else(|| anyhow!("APPEND gave no APPENDUID: {}", r.text))?;
        let uid = code
            .split_whitespace()
            .nth(1)
            .and_then(|u| u.parse().ok())
            .ok_or_else(|| anyhow!("bad APPENDUID: {code}"))?;
        Ok(uid)
    }

    /// `LOGOUT`, ignoring errors (the server may already be gone).
    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT").await;
    }

    fn tag(&mut self) -> String {
        let t = format!("t{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    async fn read_until_tagged(&mut self, tag: &str) -> Result<ImapResponse> {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_line().await?;
            if let Some(rest) = line.strip_prefix("* ") {
                untagged.push(rest.to_owned());
            } else if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                return Ok(ImapResponse {
                    untagged,
                    status: status.to_ascii_uppercase(),
                    text: text.to_owned(),
                });
            }
            // continuation requests or other tags are not expected here; skip them
        }
    }

    /// Reads one logical response line, with any literals (`{n}` / `{n+}`) inlined.
    async fn read_line(&mut self) -> Result<String> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self.stream.read_until(b'\n', &mut buf).await?;
            if n == 0 {
                bail!("IMAP connection closed by the server");
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            let literal = literal_len(&buf);
            out.extend_from_slice(&buf);
            match literal {
                Some(len) => {
                    let mut lit = vec![0u8; len];
                    self.stream.read_exact(&mut lit).await?;
                    out.extend_from_slice(&lit);
                }
                None => return Ok(String::from_utf8_lossy(&out).into_owned()),
            }
        }
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|b| *b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Quotes `s` as an IMAP quoted string (RFC 3501 §4.3); CR, LF, NUL and 8-bit characters cannot
/// be quoted and are refused.
pub fn quote(s: &str) -> Result<String> {
    if s.bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0 || b >= 0x80)
    {
        bail!("{s:?} cannot be sent as an IMAP quoted string");
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}
