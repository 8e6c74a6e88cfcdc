//! Connecting and logging in: implicit TLS, STARTTLS, or plain text on loopback; certificates
//! always verified (system roots plus an optional extra CA).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Anything a session can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

/// A logged-in IMAP session.
pub type Session = async_imap::Session<Box<dyn Io>>;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain connection upgraded with `STARTTLS` before login (RFC 3501 §6.2.1).
    StartTls,
    /// No TLS at all.
    None,
}

impl TlsMode {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::StartTls => "starttls",
            TlsMode::None => "none",
        }
    }
}

/// Where and how to reach the IMAP server.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// Host name or address; also the name the certificate must carry.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Transport protection.
    pub tls: TlsMode,
    /// An extra CA (PEM) to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Deadline for connecting, TLS and the greeting.
    pub timeout: Duration,
}

/// Why a connection or login failed. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP, TLS (including certificate verification) or a dropped connection.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The CA file could not be read.
    #[error("cannot use FLAGPOST_IMAP_CA_FILE {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("no answer from the IMAP server within {0:?}")]
    Timeout(Duration),
    /// The server refused the credentials.
    #[error("the IMAP server refused the login: {0}")]
    Auth(String),
    /// The server did not offer STARTTLS.
    #[error("the IMAP server does not offer STARTTLS")]
    NoStartTls,
    /// A command completed with NO or BAD.
    #[error("{command} failed: {status} {text}")]
    Command {
        /// The command's name.
        command: String,
        /// `NO` or `BAD`.
        status: String,
        /// The server's text.
        text: String,
    },
    /// Anything else the IMAP library reported.
    #[error("IMAP protocol error: {0}")]
    Protocol(String),
}

impl ConnectError {
    pub(crate) fn from_imap(e: async_imap::error::Error) -> ConnectError {
        match e {
            async_imap::error::Error::Io(io) => ConnectError::Io(io),
            other => ConnectError::Protocol(other.to_string()),
        }
    }

    /// Whether the server rejected the credentials (retrying will not help).
    pub fn is_auth(&self) -> bool {
        matches!(self, ConnectError::Auth(_))
    }
}

/// Adds the PEM certificates of `path` to `roots`: at least one, each a valid CA certificate.
fn add_ca_file(path: &std::path::Path, roots: &mut rustls::RootCertStore) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
        added += 1;
    }
    if added == 0 {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(())
}

/// Whether `path` holds CA certificates Flagpost can use (checked when the configuration is
/// read, so that a wrong file stops start-up instead of every connection).
pub fn check_ca_file(path: &std::path::Path) -> Result<(), String> {
    add_ca_file(path, &mut rustls::RootCertStore::empty())
}

fn tls_connector(settings: &ImapSettings) -> Result<tokio_rustls::TlsConnector, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A malformed system certificate is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    if let Some(path) = &settings.ca_file {
        let ca_err = |reason: String| ConnectError::CaFile {
            path: path.clone(),
            reason,
        };
        add_ca_file(path, &mut roots).map_err(ca_err)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConnectError::Protocol(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn server_name(host: &str) -> Result<ServerName<'static>, ConnectError> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| ConnectError::Protocol(format!("{host:?} is not a valid host name for TLS")))
}

/// Connects according to `settings` and returns a client that has read the greeting (and, for
/// STARTTLS, upgraded the connection), ready to log in.
pub async fn connect(
    settings: &ImapSettings,
) -> Result<async_imap::Client<Box<dyn Io>>, ConnectError> {
    tokio::time::timeout(settings.timeout, connect_inner(settings))
        .await
        .map_err(|_| ConnectError::Timeout(settings.timeout))?
}

async fn connect_inner(
    settings: &ImapSettings,
) -> Result<async_imap::Client<Box<dyn Io>>, ConnectError> {
    let tcp = TcpStream::connect((settings.host.as_str(), settings.port)).await?;
    tcp.set_nodelay(true)?;
    match settings.tls {
        TlsMode::Implicit => {
            let tls = tls_connector(settings)?
                .connect(server_name(&settings.host)?, tcp)
                .await?;
            let mut client = async_imap::Client::new(Box::new(tls) as Box<dyn Io>);
            read_greeting(&mut client).await?;
            Ok(client)
        }
        TlsMode::None => {
            let mut client = async_imap::Client::new(Box::new(tcp) as Box<dyn Io>);
            read_greeting(&mut client).await?;
            Ok(client)
        }
        TlsMode::StartTls => {
            let tcp = starttls_handshake(tcp).await?;
            let tls = tls_connector(settings)?
                .connect(server_name(&settings.host)?, tcp)
                .await?;
            // After STARTTLS there is no second greeting (RFC 3501 §6.2.1).
            Ok(async_imap::Client::new(Box::new(tls) as Box<dyn Io>))
        }
    }
}

async fn read_greeting(client: &mut async_imap::Client<Box<dyn Io>>) -> Result<(), ConnectError> {
    match client.read_response().await? {
        Some(_) => Ok(()),
        None => Err(ConnectError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the IMAP server closed the connection before its greeting",
        ))),
    }
}

/// Reads the plain-text greeting, sends `STARTTLS` and waits for its `OK`. Nothing but these
/// lines is read, so no plaintext data can be injected into the TLS session that follows.
async fn starttls_handshake(tcp: TcpStream) -> Result<TcpStream, ConnectError> {
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if !line.starts_with("* OK") {
        return Err(ConnectError::Protocol(format!(
            "unexpected greeting: {}",
            line.trim_end()
        )));
    }
    reader.get_mut().write_all(b"s0 STARTTLS\r\n").await?;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(ConnectError::NoStartTls);
        }
        if let Some(rest) = line.strip_prefix("s0 ") {
            if rest.to_ascii_uppercase().starts_with("OK") {
                break;
            }
            return Err(ConnectError::NoStartTls);
        }
    }
    if !reader.buffer().is_empty() {
        return Err(ConnectError::Protocol(
            "the server sent data after STARTTLS OK before the TLS handshake".to_owned(),
        ));
    }
    Ok(reader.into_inner())
}

/// SASL PLAIN (RFC 4616): no authorization identity, the user, the password.
struct PlainAuth<'a> {
    user: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for PlainAuth<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.user.len() + self.password.len() + 2);
        out.push(0);
        out.extend_from_slice(self.user.as_bytes());
        out.push(0);
        out.extend_from_slice(self.password.as_bytes());
        out
    }
}

/// Response codes of a refused LOGIN that say the refusal is temporary (RFC 5530 §3): the
/// server is unavailable, busy, at a limit or failing, not refusing the credentials.
const TRANSIENT_LOGIN_CODES: [&str; 4] = ["[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]"];

/// What a `NO` to LOGIN means: a refusal of the credentials ([`ConnectError::Auth`], not
/// retried), unless its response code says it is temporary, which is retried like any other
/// failed command. async-imap hands over the text with the code in it when imap-proto does
/// not know the code (it knows none of RFC 5530's).
fn login_refused(text: String) -> ConnectError {
    let upper = text.to_ascii_uppercase();
    if TRANSIENT_LOGIN_CODES.iter().any(|c| upper.contains(c)) {
        ConnectError::Command {
            command: "LOGIN".to_owned(),
            status: "NO".to_owned(),
            text,
        }
    } else {
        ConnectError::Auth(text)
    }
}

/// Connects and logs in as `user`.
pub async fn login(
    settings: &ImapSettings,
    user: &str,
    password: &str,
) -> Result<Session, ConnectError> {
    let client = connect(settings).await?;
    // LOGIN takes quoted strings, which may hold only 7-bit text (RFC 3501 §4.3), and
    // async-imap cannot send literals: a user name or password beyond ASCII goes through
    // AUTHENTICATE PLAIN instead (RFC 4616, base64 of UTF-8).
    let login = async {
        if user.is_ascii() && password.is_ascii() {
            client.login(user, password).await
        } else {
            client
                .authenticate("PLAIN", PlainAuth { user, password })
                .await
        }
    };
    match tokio::time::timeout(settings.timeout, login).await {
        Err(_) => Err(ConnectError::Timeout(settings.timeout)),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(text), _))) => Err(login_refused(text)),
        Ok(Err((async_imap::error::Error::Validate(_), _))) => Err(ConnectError::Auth(
            "the user name or password contains a line break".to_owned(),
        )),
        Ok(Err((e, _))) => Err(ConnectError::from_imap(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// async-imap's text of a tagged NO whose code imap-proto does not know.
    fn no(info: &str) -> String {
        format!("code: None, info: Some({info:?})")
    }

    #[test]
    fn only_a_refusal_of_the_credentials_stops_the_retries() {
        for info in [
            "[AUTHENTICATIONFAILED] Authentication failed.",
            "[EXPIRED] Password expired",
            "Login failed",
        ] {
            assert!(login_refused(no(info)).is_auth(), "{info}");
        }
        for info in [
            "[UNAVAILABLE] Temporary authentication failure",
            "[InUse] Mailbox in use",
            "[LIMIT] Too many connections",
            "[SERVERBUG] Internal error",
        ] {
            assert!(!login_refused(no(info)).is_auth(), "{info}");
        }
    }
}
