//! Who is calling: staff sessions (HS256 JWTs, revocable) and integration tokens (opaque,
//! stored as a digest), and the login throttle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// The session cookie's name (contract §5).
pub const SESSION_COOKIE: &str = "flagpost_session";
/// Integration tokens start with this, so they are recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "fpt_";
const ISSUER: &str = "flagpost";
const AUDIENCE: &str = "flagpost-api";

/// What an integration token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    /// Read folders, messages and events.
    pub read: bool,
    /// Change flags.
    pub write: bool,
    /// Read and change ACLs (and, for service admins, manage tokens).
    pub acl: bool,
}

impl Scopes {
    /// Every scope: staff sessions act with the user's full rights.
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
        acl: true,
    };

    /// Parses a list of scope names; unknown names are an error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut s = Scopes::default();
        for n in names {
            match n.trim() {
                "read" => s.read = true,
                "write" => s.write = true,
                "acl" => s.acl = true,
                other => {
                    return Err(format!(
                        "unknown scope {other:?} (expected read, write or acl)"
                    ));
                }
            }
        }
        Ok(s)
    }

    /// The scope names, in a fixed order.
    pub fn names(self) -> Vec<String> {
        [
            ("read", self.read),
            ("write", self.write),
            ("acl", self.acl),
        ]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| n.to_owned())
        .collect()
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A staff session (JWT id and expiry).
    Session {
        /// `jti`.
        id: String,
        /// `exp`.
        expires_at: DateTime<Utc>,
    },
    /// An integration token.
    Token {
        /// Its id.
        id: i64,
    },
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The IMAP user name it acts as.
    pub username: String,
    /// The name the IMAP server's ACLs know that user by, where it differs from `username`
    /// (found at login: e.g. `alice` for `alice@example.com`); rights are computed for it.
    pub acl_name: Option<String>,
    /// Whether that user is a service admin.
    pub admin: bool,
    /// What it may do.
    pub scopes: Scopes,
    /// How it authenticated.
    pub credential: Credential,
}

impl Principal {
    /// Refuses the request (403) unless the scope is held.
    pub fn need_scope(&self, held: bool, name: &str) -> Result<(), ApiError> {
        if held {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token lacks the {name:?} scope"
            )))
        }
    }

    /// Refuses the request (403) unless the caller is a service admin holding `acl` scope.
    pub fn need_admin(&self) -> Result<(), ApiError> {
        if !self.admin {
            return Err(ApiError::Forbidden(
                "only service admins (FLAGPOST_ADMINS) may do this".into(),
            ));
        }
        self.need_scope(self.scopes.acl, "acl")
    }

    /// The name whose ACL entries decide this principal's rights.
    pub fn rights_name(&self) -> &str {
        self.acl_name.as_deref().unwrap_or(&self.username)
    }

    /// A stable label for logs and event actors.
    pub fn actor(&self) -> String {
        self.username.clone()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    jti: String,
    /// The server's ACL name for `sub`, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acl: Option<String>,
}

/// Signs and checks staff sessions.
#[derive(Clone)]
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// How long a session lasts.
    pub ttl: Duration,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Keys from an HS256 secret (≥ 32 bytes, checked by the configuration).
    pub fn new(secret: &[u8], ttl: Duration) -> SessionKeys {
        // Only HS256 is accepted: `alg: none` and every other algorithm fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        SessionKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A signed session token for `username` (whose rights are those of `acl_name`, when
    /// given) with id `jti`, and its expiry.
    pub fn issue(
        &self,
        username: &str,
        acl_name: Option<&str>,
        jti: &str,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let now = Utc::now();
        let exp = now + chrono::Duration::from_std(self.ttl).map_err(ApiError::internal)?;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: username.into(),
            exp: exp.timestamp(),
            iat: now.timestamp(),
            jti: jti.into(),
            acl: acl_name.map(str::to_owned),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((
            token,
            DateTime::from_timestamp(exp.timestamp(), 0).unwrap_or(exp),
        ))
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// A new random secret: 256 bits, URL-safe base64.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The digest an integration token is stored under.
pub fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new integration token's secret.
pub fn new_token_secret() -> String {
    format!("{TOKEN_PREFIX}{}", random_secret())
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(v) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    match v.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be \"Bearer <token>\"".into(),
        )),
    }
}

/// The session cookie's value, if sent.
pub fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = match bearer(parts)? {
            Some(t) => t.to_owned(),
            None => match session_cookie(parts) {
                Some(c) if !c.is_empty() => c.to_owned(),
                _ => {
                    return Err(ApiError::Unauthorized(
                        "authentication required: log in (POST /api/v1/session) or send a bearer token"
                            .into(),
                    ));
                }
            },
        };
        authenticate(state, &presented).await
    }
}

/// How long a credential found valid in the database is trusted without asking again.
/// Revocations evict at once: in this process directly, from other processes through
/// `NOTIFY flagpost_revocations` (see `hub`); the TTL only bounds a notification lost while the
/// listener reconnected.
const CREDENTIAL_TTL: Duration = Duration::from_secs(10);

/// Recently validated sessions and tokens, so a request does not cost a database round trip
/// just to learn that its credential is still valid.
#[derive(Debug, Default)]
pub struct CredentialCache {
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    tokens: Mutex<HashMap<Vec<u8>, (flagpost_store::auth::TokenRow, Instant)>>,
}

impl CredentialCache {
    fn session(&self, jti: &str, username: &str) -> bool {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.get(jti)
            .is_some_and(|(u, at)| u == username && at.elapsed() < CREDENTIAL_TTL)
    }

    fn remember_session(&self, jti: &str, username: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 50_000 {
            map.retain(|_, (_, at)| at.elapsed() < CREDENTIAL_TTL);
        }
        map.insert(jti.to_owned(), (username.to_owned(), Instant::now()));
    }

    fn token(&self, digest: &[u8]) -> Option<flagpost_store::auth::TokenRow> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest)
            .filter(|(_, at)| at.elapsed() < CREDENTIAL_TTL)
            .map(|(row, _)| row.clone())
    }

    fn remember_token(&self, digest: Vec<u8>, row: flagpost_store::auth::TokenRow) {
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 50_000 {
            map.retain(|_, (_, at)| at.elapsed() < CREDENTIAL_TTL);
        }
        map.insert(digest, (row, Instant::now()));
    }

    /// Forgets a revoked credential (`session:<id>` or `token:<id>`).
    pub fn evict(&self, what: &str) {
        if let Some(jti) = what.strip_prefix("session:") {
            self.sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(jti);
        } else if let Some(id) = what
            .strip_prefix("token:")
            .and_then(|i| i.parse::<i64>().ok())
        {
            self.tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, (row, _)| row.id != id);
        }
    }
}

/// Resolves a presented bearer token or session cookie to the principal it stands for.
pub async fn authenticate(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    let invalid =
        || ApiError::Unauthorized("the session or token is invalid, expired or revoked".into());
    let cache = state.hub.credentials();
    if presented.starts_with(TOKEN_PREFIX) {
        let digest = token_digest(presented);
        let row = match cache.token(&digest) {
            Some(row) => row,
            None => {
                let row = flagpost_store::auth::token_by_secret(&state.pool, &digest)
                    .await?
                    .ok_or_else(invalid)?;
                cache.remember_token(digest, row.clone());
                row
            }
        };
        if row.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(invalid());
        }
        let scopes =
            Scopes::parse(row.scopes.iter().map(String::as_str)).map_err(ApiError::internal)?;
        return Ok(Principal {
            admin: state.admins.contains(&row.identity),
            username: row.identity,
            acl_name: None,
            scopes,
            credential: Credential::Token { id: row.id },
        });
    }
    let claims = state.keys.verify(presented).ok_or_else(invalid)?;
    if !cache.session(&claims.jti, &claims.sub) {
        if !flagpost_store::auth::session_active(&state.pool, &claims.jti, &claims.sub).await? {
            return Err(invalid());
        }
        cache.remember_session(&claims.jti, &claims.sub);
    }
    let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or_else(invalid)?;
    Ok(Principal {
        admin: state.admins.contains(&claims.sub),
        username: claims.sub,
        acl_name: claims.acl,
        scopes: Scopes::ALL,
        credential: Credential::Session {
            id: claims.jti,
            expires_at,
        },
    })
}

/// Counts login attempts per user name and per client address, so password guessing through
/// Flagpost is slower than it would be against the IMAP server directly.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    inner: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// Failed logins per user name within [`USER_WINDOW`].
const USER_FAILURES: u32 = 5;
const USER_WINDOW: Duration = Duration::from_secs(300);
/// Failed logins per client address within [`ADDR_WINDOW`] (whole offices share one address,
/// so successes are not counted).
const ADDR_FAILURES: u32 = 30;
const ADDR_WINDOW: Duration = Duration::from_secs(300);

impl LoginThrottle {
    fn check(&self, key: &str, limit: u32, window: Duration) -> Result<(), u64> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get(key) {
            let elapsed = w.start.elapsed();
            if elapsed < window && w.count >= limit {
                return Err((window - elapsed).as_secs() + 1);
            }
        }
        Ok(())
    }

    fn bump(&self, key: String, window: Duration) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, w| w.start.elapsed() < USER_WINDOW.max(ADDR_WINDOW));
        }
        let w = map.entry(key).or_insert(Window {
            start: Instant::now(),
            count: 0,
        });
        if w.start.elapsed() >= window {
            *w = Window {
                start: Instant::now(),
                count: 0,
            };
        }
        w.count += 1;
    }

    /// Before an attempt: `Err(retry_after_secs)` when the user or the address is throttled.
    pub fn before_attempt(&self, username: &str, addr: Option<IpAddr>) -> Result<(), u64> {
        self.check(
            &format!("u:{}", username.to_lowercase()),
            USER_FAILURES,
            USER_WINDOW,
        )?;
        if let Some(ip) = addr {
            self.check(&format!("a:{ip}"), ADDR_FAILURES, ADDR_WINDOW)?;
        }
        Ok(())
    }

    /// After a refused password: counts against the user and the address.
    pub fn failed(&self, username: &str, addr: Option<IpAddr>) {
        self.bump(format!("u:{}", username.to_lowercase()), USER_WINDOW);
        if let Some(ip) = addr {
            self.bump(format!("a:{ip}"), ADDR_WINDOW);
        }
    }

    /// After a successful login: the user's failures are forgiven.
    pub fn succeeded(&self, username: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("u:{}", username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_only_with_the_same_key_and_hs256() {
        let keys = SessionKeys::new(&[7u8; 32], Duration::from_secs(60));
        let (token, _) = keys.issue("alice", None, "j1").unwrap();
        assert_eq!(keys.verify(&token).unwrap().sub, "alice");
        let other = SessionKeys::new(&[8u8; 32], Duration::from_secs(60));
        assert!(other.verify(&token).is_none(), "wrong key accepted");
        // alg: none with the same claims
        let mut parts = token.split('.');
        let (_, payload) = (parts.next().unwrap(), parts.next().unwrap());
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{none_header}.{payload}.")).is_none());
        // tampered payload
        let evil = URL_SAFE_NO_PAD.encode(
            br#"{"iss":"flagpost","aud":"flagpost-api","sub":"admin","exp":9999999999,"iat":0,"jti":"j1"}"#,
        );
        let sig = token.rsplit('.').next().unwrap();
        let header = token.split('.').next().unwrap();
        assert!(keys.verify(&format!("{header}.{evil}.{sig}")).is_none());
    }

    #[test]
    fn expired_sessions_are_refused() {
        let keys = SessionKeys::new(&[7u8; 32], Duration::from_secs(0));
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "alice".into(),
            exp: Utc::now().timestamp() - 60,
            iat: 0,
            jti: "x".into(),
            acl: None,
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&t).is_none());
    }

    #[test]
    fn scopes_parse_and_refuse_unknown_names() {
        assert_eq!(
            Scopes::parse(["read", "acl"]).unwrap().names(),
            ["read", "acl"]
        );
        assert!(Scopes::parse(["admin"]).is_err());
    }

    #[test]
    fn throttle_blocks_after_repeated_failures_and_forgives_success() {
        let t = LoginThrottle::default();
        for _ in 0..USER_FAILURES {
            assert!(t.before_attempt("bob", None).is_ok());
            t.failed("bob", None);
        }
        let wait = t.before_attempt("BOB", None).unwrap_err();
        assert!(wait > 0 && wait <= USER_WINDOW.as_secs() + 1);
        assert!(t.before_attempt("carol", None).is_ok());
        t.succeeded("bob");
        assert!(t.before_attempt("bob", None).is_ok());
    }

    #[test]
    fn throttle_blocks_an_address_that_guesses_many_users() {
        let t = LoginThrottle::default();
        let ip: IpAddr = [192, 0, 2, 1].into();
        for i in 0..ADDR_FAILURES {
            assert!(t.before_attempt(&format!("user{i}"), Some(ip)).is_ok());
            t.failed(&format!("user{i}"), Some(ip));
        }
        assert!(t.before_attempt("someone-else", Some(ip)).is_err());
        assert!(
            t.before_attempt("someone-else", Some([192, 0, 2, 2].into()))
                .is_ok()
        );
    }
}
