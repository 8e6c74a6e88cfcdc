//! Configuration (contract §4): every setting from the environment or a `--flag`, validated
//! into a [`Config`] that later code can trust. A bad or missing setting becomes one
//! [`ConfigError`] line naming it. Secrets are kept out of `Debug` and every message.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use flagpost_imap::{ImapSettings, TlsMode};

/// The raw settings as given (environment or flags), before validation.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RawConfig {
    /// PostgreSQL URL (also read from DATABASE_URL).
    #[arg(
        long,
        env = "FLAGPOST_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// IMAP server host.
    #[arg(long, env = "FLAGPOST_IMAP_HOST", global = true)]
    pub imap_host: Option<String>,
    /// IMAP server port [default: 993 for implicit TLS, else 143].
    #[arg(long, env = "FLAGPOST_IMAP_PORT", global = true)]
    pub imap_port: Option<String>,
    /// `implicit`, `starttls` or `none` [default: implicit].
    #[arg(long, env = "FLAGPOST_IMAP_TLS", global = true)]
    pub imap_tls: Option<String>,
    /// Allow `none` for a host that is not loopback [default: false].
    #[arg(long, env = "FLAGPOST_IMAP_ALLOW_PLAINTEXT", global = true)]
    pub imap_allow_plaintext: Option<String>,
    /// Extra CA certificate (PEM) to trust besides the system roots.
    #[arg(long, env = "FLAGPOST_IMAP_CA_FILE", global = true)]
    pub imap_ca_file: Option<PathBuf>,
    /// The service account's user name.
    #[arg(long, env = "FLAGPOST_IMAP_USER", global = true)]
    pub imap_user: Option<String>,
    /// The service account's password (prefer the environment or a file).
    #[arg(
        long,
        env = "FLAGPOST_IMAP_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub imap_password: Option<String>,
    /// A file holding the service account's password.
    #[arg(long, env = "FLAGPOST_IMAP_PASSWORD_FILE", global = true)]
    pub imap_password_file: Option<PathBuf>,
    /// Comma-separated IMAP LIST patterns of folders to watch [default: *].
    #[arg(long, env = "FLAGPOST_FOLDERS", global = true)]
    pub folders: Option<String>,
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "FLAGPOST_LISTEN", global = true)]
    pub listen: Option<String>,
    /// HS256 key for staff sessions, at least 32 bytes [default: generated, kept in the database].
    #[arg(
        long,
        env = "FLAGPOST_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,
    /// A file holding the JWT key.
    #[arg(long, env = "FLAGPOST_JWT_SECRET_FILE", global = true)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Comma-separated IMAP user names with service-admin powers.
    #[arg(long, env = "FLAGPOST_ADMINS", global = true)]
    pub admins: Option<String>,
    /// Seconds a staff session lasts [default: 43200, 12 hours].
    #[arg(long, env = "FLAGPOST_SESSION_TTL_SECS", global = true)]
    pub session_ttl_secs: Option<String>,
    /// Comma-separated origins allowed to call the API from a browser (CORS) [default: none,
    /// CORS off].
    #[arg(long, env = "FLAGPOST_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,
    /// Seconds between ACL re-reads [default: 60].
    #[arg(long, env = "FLAGPOST_ACL_POLL_SECS", global = true)]
    pub acl_poll_secs: Option<String>,
    /// Seconds between folder discoveries [default: 60].
    #[arg(long, env = "FLAGPOST_FOLDER_POLL_SECS", global = true)]
    pub folder_poll_secs: Option<String>,
    /// IDLE connections at most [default: 8].
    #[arg(long, env = "FLAGPOST_IMAP_MAX_CONNECTIONS", global = true)]
    pub imap_max_connections: Option<String>,
    /// Seconds of silence in IDLE after which the link is checked with NOOP (and IDLE
    /// re-issued) [default: 120; at most 1500, below RFC 2177's 29 minutes].
    #[arg(long, env = "FLAGPOST_IMAP_IDLE_CHECK_SECS", global = true)]
    pub imap_idle_check_secs: Option<String>,
    /// Seconds between polls of folders watched without IDLE [default: 5].
    #[arg(long, env = "FLAGPOST_IMAP_POLL_SECS", global = true)]
    pub imap_poll_secs: Option<String>,
    /// Allow webhook URLs resolving to private addresses [default: false].
    #[arg(long, env = "FLAGPOST_WEBHOOK_ALLOW_PRIVATE", global = true)]
    pub webhook_allow_private: Option<String>,
    /// Seconds per webhook delivery attempt [default: 10].
    #[arg(long, env = "FLAGPOST_WEBHOOK_TIMEOUT_SECS", global = true)]
    pub webhook_timeout_secs: Option<String>,
    /// Milliseconds before a failed webhook delivery is retried the first time; later retries
    /// grow from it, about a day in all [default: 5000].
    #[arg(long, env = "FLAGPOST_WEBHOOK_RETRY_BASE_MS", global = true)]
    pub webhook_retry_base_ms: Option<String>,
    /// Tracing filter [default: info].
    #[arg(long, env = "FLAGPOST_LOG", global = true)]
    pub log: Option<String>,
    /// `text` or `json` [default: text].
    #[arg(long, env = "FLAGPOST_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

/// A setting that is missing or invalid. Displays as one line that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong (never contains a secret's value).
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = self
            .var
            .trim_start_matches("FLAGPOST_")
            .to_ascii_lowercase()
            .replace('_', "-");
        write!(f, "{} (--{flag}): {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn cors_origins(raw: &Option<String>) -> Result<Vec<String>, ConfigError> {
    let origins = list(raw);
    for o in &origins {
        let ok = url::Url::parse(o).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.path() == "/"
                && !o.ends_with('/')
        });
        if !ok {
            return Err(err(
                "FLAGPOST_CORS_ORIGINS",
                format!("{o:?} is not an origin like https://desk.example.com"),
            ));
        }
    }
    Ok(origins)
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// A secret string: usable, but never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The IMAP part of the configuration.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Where and how to connect.
    pub settings: ImapSettings,
    /// The service account.
    pub user: String,
    /// Its password.
    pub password: Secret,
}

/// Validated configuration. Fields a command does not need may be `None`.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL URL.
    pub database_url: Option<Secret>,
    /// IMAP connection and service account.
    pub imap: Option<ImapConfig>,
    /// LIST patterns.
    pub folders: Vec<String>,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// JWT key, when configured.
    pub jwt_secret: Option<Secret>,
    /// Service admins.
    pub admins: Vec<String>,
    /// Staff session lifetime.
    pub session_ttl: Duration,
    /// CORS origins (empty: off).
    pub cors_origins: Vec<String>,
    /// ACL poll interval.
    pub acl_poll: Duration,
    /// Folder discovery interval.
    pub folder_poll: Duration,
    /// IDLE connection budget.
    pub imap_max_connections: usize,
    /// Poll interval of folders without IDLE.
    pub imap_poll: Duration,
    /// Silence in IDLE before a liveness check.
    pub imap_idle_check: Duration,
    /// Whether webhooks may target private addresses.
    pub webhook_allow_private: bool,
    /// Per-attempt webhook timeout.
    pub webhook_timeout: Duration,
    /// First webhook retry delay.
    pub webhook_retry_base: Duration,
    /// Tracing filter.
    pub log: String,
    /// Log format.
    pub log_format: LogFormat,
}

/// Which settings a command cannot run without.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The database URL.
    pub database: bool,
    /// IMAP host, user and password.
    pub imap: bool,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn parse_bool(var: &'static str, v: &Option<String>) -> Result<bool, ConfigError> {
    match non_empty(v).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(err(
            var,
            format!("{other:?} is not a boolean (use true or false)"),
        )),
    }
}

fn parse_secs(
    var: &'static str,
    v: &Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    parse_number(var, v, default, range).map(Duration::from_secs)
}

fn parse_number(
    var: &'static str,
    v: &Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(s) = non_empty(v) else {
        return Ok(default);
    };
    let n: u64 = s
        .parse()
        .map_err(|_| err(var, format!("{s:?} is not a whole number")))?;
    if !range.contains(&n) {
        return Err(err(
            var,
            format!("{n} is out of range ({}..={})", range.start(), range.end()),
        ));
    }
    Ok(n)
}

fn read_secret_file(var: &'static str, path: &PathBuf) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(var, format!("cannot read {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn list(v: &Option<String>) -> Vec<String> {
    non_empty(v)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Config {
    /// Validates `raw`; `database_url_fallback` is `DATABASE_URL`, used when
    /// `FLAGPOST_DATABASE_URL` is unset.
    pub fn from_raw(
        raw: &RawConfig,
        database_url_fallback: Option<String>,
        needs: Needs,
    ) -> Result<Config, ConfigError> {
        // A bad URL is blamed on the variable it came from.
        let database_url = non_empty(&raw.database_url)
            .map(|s| (s.to_owned(), "FLAGPOST_DATABASE_URL"))
            .or_else(|| {
                database_url_fallback
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| (s, "DATABASE_URL"))
            });
        if let Some((url, var)) = &database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(err(var, "must be a postgres:// or postgresql:// URL"));
            }
            url::Url::parse(url).map_err(|e| err(var, format!("is not a valid URL ({e})")))?;
        } else if needs.database {
            return Err(err(
                "FLAGPOST_DATABASE_URL",
                "is not set (nor DATABASE_URL); give the PostgreSQL URL, e.g. postgres://flagpost@localhost/flagpost",
            ));
        }

        let tls = match non_empty(&raw.imap_tls)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("implicit") => TlsMode::Implicit,
            Some("starttls") => TlsMode::StartTls,
            Some("none") => TlsMode::None,
            Some(other) => {
                return Err(err(
                    "FLAGPOST_IMAP_TLS",
                    format!("{other:?} is not one of implicit, starttls, none"),
                ));
            }
        };
        let allow_plaintext =
            parse_bool("FLAGPOST_IMAP_ALLOW_PLAINTEXT", &raw.imap_allow_plaintext)?;
        let port = match non_empty(&raw.imap_port) {
            None => {
                if tls == TlsMode::Implicit {
                    993
                } else {
                    143
                }
            }
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                err(
                    "FLAGPOST_IMAP_PORT",
                    format!("{p:?} is not a TCP port (1-65535)"),
                )
            })?,
        };
        if let Some(ca) = &raw.imap_ca_file {
            if !ca.is_file() {
                return Err(err(
                    "FLAGPOST_IMAP_CA_FILE",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
            flagpost_imap::connect::check_ca_file(ca).map_err(|reason| {
                err(
                    "FLAGPOST_IMAP_CA_FILE",
                    format!("{} holds no usable CA certificate: {reason}", ca.display()),
                )
            })?;
        }
        let password = match (non_empty(&raw.imap_password), &raw.imap_password_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "FLAGPOST_IMAP_PASSWORD_FILE",
                    "is set together with FLAGPOST_IMAP_PASSWORD; set only one",
                ));
            }
            (Some(p), None) => Some(p.to_owned()),
            (None, Some(file)) => Some(read_secret_file("FLAGPOST_IMAP_PASSWORD_FILE", file)?),
            (None, None) => None,
        };
        let host = non_empty(&raw.imap_host).map(str::to_owned);
        if let Some(h) = &host {
            if h.contains(char::is_whitespace) || h.contains('/') {
                return Err(err(
                    "FLAGPOST_IMAP_HOST",
                    format!("{h:?} is not a host name"),
                ));
            }
            if tls == TlsMode::None && !is_loopback(h) && !allow_plaintext {
                return Err(err(
                    "FLAGPOST_IMAP_TLS",
                    format!(
                        "`none` sends the password in clear text; it is allowed only for a loopback host, not {h:?}, unless FLAGPOST_IMAP_ALLOW_PLAINTEXT=true"
                    ),
                ));
            }
        }
        let user = non_empty(&raw.imap_user).map(str::to_owned);
        let imap = match (host, user, password) {
            (Some(host), Some(user), Some(password)) => Some(ImapConfig {
                settings: ImapSettings {
                    host,
                    port,
                    tls,
                    ca_file: raw.imap_ca_file.clone(),
                    timeout: Duration::from_secs(20),
                },
                user,
                password: Secret(password),
            }),
            (host, user, password) if needs.imap => {
                let var = if host.is_none() {
                    "FLAGPOST_IMAP_HOST"
                } else if user.is_none() {
                    "FLAGPOST_IMAP_USER"
                } else {
                    debug_assert!(password.is_none());
                    "FLAGPOST_IMAP_PASSWORD"
                };
                let hint = match var {
                    "FLAGPOST_IMAP_HOST" => "is not set; give the IMAP server's host name",
                    "FLAGPOST_IMAP_USER" => "is not set; give the service account's user name",
                    _ => {
                        "is not set (nor FLAGPOST_IMAP_PASSWORD_FILE); give the service account's password"
                    }
                };
                return Err(err(var, hint));
            }
            _ => None,
        };

        let folders = {
            let f = list(&raw.folders);
            if f.is_empty() {
                vec!["*".to_owned()]
            } else {
                f
            }
        };
        for f in &folders {
            if f.contains(['\r', '\n', '\0']) {
                return Err(err(
                    "FLAGPOST_FOLDERS",
                    "patterns must not contain line breaks",
                ));
            }
        }

        let listen = match non_empty(&raw.listen) {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(s) => s.parse().map_err(|_| {
                err(
                    "FLAGPOST_LISTEN",
                    format!("{s:?} is not an address:port, e.g. 127.0.0.1:8080 or [::1]:8080"),
                )
            })?,
        };

        // A short key is blamed on the variable it came from.
        let jwt_secret = match (non_empty(&raw.jwt_secret), &raw.jwt_secret_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "FLAGPOST_JWT_SECRET_FILE",
                    "is set together with FLAGPOST_JWT_SECRET; set only one",
                ));
            }
            (Some(s), None) => Some((s.to_owned(), "FLAGPOST_JWT_SECRET")),
            (None, Some(file)) => Some((
                read_secret_file("FLAGPOST_JWT_SECRET_FILE", file)?,
                "FLAGPOST_JWT_SECRET_FILE",
            )),
            (None, None) => None,
        };
        if let Some((s, var)) = &jwt_secret
            && s.len() < 32
        {
            return Err(err(
                var,
                format!(
                    "is {} bytes long; HS256 keys must be at least 32 bytes",
                    s.len()
                ),
            ));
        }

        let log = non_empty(&raw.log).unwrap_or("info").to_owned();
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| {
            err(
                "FLAGPOST_LOG",
                format!("{log:?} is not a tracing filter ({e})"),
            )
        })?;
        let log_format = match non_empty(&raw.log_format)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "FLAGPOST_LOG_FORMAT",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };

        Ok(Config {
            database_url: database_url.map(|(url, _)| Secret(url)),
            imap,
            folders,
            listen,
            jwt_secret: jwt_secret.map(|(s, _)| Secret(s)),
            admins: list(&raw.admins),
            session_ttl: parse_secs(
                "FLAGPOST_SESSION_TTL_SECS",
                &raw.session_ttl_secs,
                43_200,
                60..=30 * 86_400,
            )?,
            cors_origins: cors_origins(&raw.cors_origins)?,
            acl_poll: parse_secs("FLAGPOST_ACL_POLL_SECS", &raw.acl_poll_secs, 60, 1..=86_400)?,
            folder_poll: parse_secs(
                "FLAGPOST_FOLDER_POLL_SECS",
                &raw.folder_poll_secs,
                60,
                1..=86_400,
            )?,
            imap_max_connections: parse_number(
                "FLAGPOST_IMAP_MAX_CONNECTIONS",
                &raw.imap_max_connections,
                8,
                1..=1000,
            )? as usize,
            imap_poll: parse_secs("FLAGPOST_IMAP_POLL_SECS", &raw.imap_poll_secs, 5, 1..=3600)?,
            imap_idle_check: parse_secs(
                "FLAGPOST_IMAP_IDLE_CHECK_SECS",
                &raw.imap_idle_check_secs,
                120,
                1..=1500,
            )?,
            webhook_allow_private: parse_bool(
                "FLAGPOST_WEBHOOK_ALLOW_PRIVATE",
                &raw.webhook_allow_private,
            )?,
            webhook_retry_base: Duration::from_millis(parse_number(
                "FLAGPOST_WEBHOOK_RETRY_BASE_MS",
                &raw.webhook_retry_base_ms,
                5000,
                1..=3_600_000,
            )?),
            webhook_timeout: parse_secs(
                "FLAGPOST_WEBHOOK_TIMEOUT_SECS",
                &raw.webhook_timeout_secs,
                10,
                1..=300,
            )?,
            log,
            log_format,
        })
    }
}

/// `url` with any password replaced by `***`, for display.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> RawConfig {
        RawConfig {
            database_url: Some("postgres://u:pw@localhost/db".into()),
            imap_host: Some("imap.example.org".into()),
            imap_user: Some("flagpost".into()),
            imap_password: Some("hunter2hunter2".into()),
            ..RawConfig::default()
        }
    }

    const ALL: Needs = Needs {
        database: true,
        imap: true,
    };

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_raw(&full(), None, ALL).unwrap();
        let imap = c.imap.unwrap();
        assert_eq!(imap.settings.port, 993);
        assert_eq!(imap.settings.tls, TlsMode::Implicit);
        assert_eq!(c.folders, vec!["*"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.acl_poll, Duration::from_secs(60));
        assert_eq!(c.folder_poll, Duration::from_secs(60));
        assert_eq!(c.imap_max_connections, 8);
        assert!(!c.webhook_allow_private);
        assert_eq!(c.webhook_timeout, Duration::from_secs(10));
        assert_eq!(c.log, "info");
        assert_eq!(c.log_format, LogFormat::Text);
        let mut raw = full();
        raw.imap_tls = Some("starttls".into());
        assert_eq!(
            Config::from_raw(&raw, None, ALL)
                .unwrap()
                .imap
                .unwrap()
                .settings
                .port,
            143
        );
    }

    #[test]
    fn each_bad_setting_is_named_in_one_line() {
        type Edit = fn(&mut RawConfig);
        let cases: [(Edit, &str); 12] = [
            (|r| r.imap_host = None, "FLAGPOST_IMAP_HOST"),
            (|r| r.imap_user = None, "FLAGPOST_IMAP_USER"),
            (|r| r.imap_password = None, "FLAGPOST_IMAP_PASSWORD"),
            (|r| r.database_url = None, "FLAGPOST_DATABASE_URL"),
            (
                |r| r.database_url = Some("mysql://x".into()),
                "FLAGPOST_DATABASE_URL",
            ),
            (|r| r.listen = Some("8080".into()), "FLAGPOST_LISTEN"),
            (|r| r.imap_port = Some("99999".into()), "FLAGPOST_IMAP_PORT"),
            (|r| r.imap_tls = Some("ssl".into()), "FLAGPOST_IMAP_TLS"),
            (|r| r.imap_tls = Some("none".into()), "FLAGPOST_IMAP_TLS"),
            (
                |r| r.jwt_secret = Some("short".into()),
                "FLAGPOST_JWT_SECRET",
            ),
            (
                |r| r.acl_poll_secs = Some("soon".into()),
                "FLAGPOST_ACL_POLL_SECS",
            ),
            (|r| r.log_format = Some("xml".into()), "FLAGPOST_LOG_FORMAT"),
        ];
        for (edit, var) in cases {
            let mut raw = full();
            edit(&mut raw);
            let e = Config::from_raw(&raw, None, ALL).unwrap_err();
            assert_eq!(e.var, var);
            let line = e.to_string();
            assert!(line.starts_with(var), "{line}");
            assert!(!line.contains('\n'), "{line}");
            assert!(!line.contains("hunter2"), "{line}");
        }
    }

    #[test]
    fn plaintext_is_allowed_on_loopback_or_when_asked() {
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            let mut raw = full();
            raw.imap_tls = Some("none".into());
            raw.imap_host = Some(host.into());
            assert!(Config::from_raw(&raw, None, ALL).is_ok(), "{host}");
        }
        let mut raw = full();
        raw.imap_tls = Some("none".into());
        raw.imap_allow_plaintext = Some("true".into());
        assert!(Config::from_raw(&raw, None, ALL).is_ok());
    }

    #[test]
    fn database_url_falls_back_to_database_url_and_is_redacted() {
        let mut raw = full();
        raw.database_url = None;
        let c = Config::from_raw(&raw, Some("postgres://a:secret@h/d".into()), ALL).unwrap();
        let url = c.database_url.unwrap();
        assert_eq!(redact_url(url.expose()), "postgres://a:***@h/d");
        assert!(!format!("{url:?}").contains("secret"));
    }

    #[test]
    fn imap_port_defaults_by_tls_mode_and_an_explicit_port_wins() {
        for (tls, default) in [
            (None, 993),
            (Some("implicit"), 993),
            (Some("starttls"), 143),
            (Some("none"), 143),
        ] {
            let mut raw = full();
            raw.imap_host = Some("127.0.0.1".into());
            raw.imap_tls = tls.map(str::to_owned);
            let port = |raw: &RawConfig| {
                Config::from_raw(raw, None, ALL)
                    .unwrap()
                    .imap
                    .unwrap()
                    .settings
                    .port
            };
            assert_eq!(port(&raw), default, "{tls:?}");
            raw.imap_port = Some("10143".into());
            assert_eq!(port(&raw), 10143, "{tls:?}");
        }
    }

    #[test]
    fn a_bad_value_is_blamed_on_the_variable_it_came_from() {
        let mut raw = full();
        raw.database_url = None;
        let e = Config::from_raw(&raw, Some("mysql://x".into()), ALL).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        // FLAGPOST_DATABASE_URL wins over DATABASE_URL, so a bad fallback is not even read.
        let c = Config::from_raw(&full(), Some("mysql://x".into()), ALL).unwrap();
        assert_eq!(
            c.database_url.unwrap().expose(),
            "postgres://u:pw@localhost/db"
        );

        let dir = std::env::temp_dir().join(format!("flagpost-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jwt");
        std::fs::write(&file, "too short\n").unwrap();
        let mut raw = full();
        raw.jwt_secret_file = Some(file.clone());
        let e = Config::from_raw(&raw, None, ALL).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(e.var, "FLAGPOST_JWT_SECRET_FILE");
        assert!(!e.to_string().contains("too short"), "{e}");
    }

    #[test]
    fn a_secret_and_its_file_together_are_refused_rather_than_one_silently_winning() {
        let mut raw = full();
        raw.imap_password_file = Some("/nonexistent/password".into());
        let e = Config::from_raw(&raw, None, ALL).unwrap_err();
        assert_eq!(e.var, "FLAGPOST_IMAP_PASSWORD_FILE");
        assert!(e.to_string().contains("set only one"), "{e}");

        let mut raw = full();
        raw.jwt_secret = Some("0123456789abcdef0123456789abcdef".into());
        raw.jwt_secret_file = Some("/nonexistent/jwt".into());
        let e = Config::from_raw(&raw, None, ALL).unwrap_err();
        assert_eq!(e.var, "FLAGPOST_JWT_SECRET_FILE");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Config::from_raw(&full(), None, ALL).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains(":pw@"), "{dbg}");
    }
}
