//! Webhook delivery (contract §5, Standard Webhooks): a worker driven by the change feed.
//!
//! The supervisor wakes with every batch the hub broadcasts (and every second anyway), queues
//! the new events for each enabled webhook whose identity may read their folder
//! (`flagpost_store::webhooks::enqueue`), and runs one lane per webhook. A lane claims its
//! webhook's oldest pending delivery, checks again that the identity may read the folder now,
//! sends it, and records the outcome: at least once, in event order, one in flight. Failures
//! retry with growing, jittered delays (about a day in all, `Retry-After` honoured); a 410
//! disables the webhook. Everything lives in PostgreSQL, so a restart continues where it
//! stopped.
//!
//! SSRF: targets must be http(s); unless private targets are allowed, host names are resolved
//! by a resolver that refuses loopback, private, link-local, shared and multicast addresses, and
//! the connection goes to the address it returned. Redirects are never followed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use flagpost_store::webhooks::{AttemptRecord, Claim, WebhookRow};
use hmac::{Hmac, Mac};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::auth::{Credential, Principal, Scopes};
use crate::hub::EventOut;

/// Webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Allow targets on loopback / private / link-local addresses.
    pub allow_private: bool,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// The first retry delay; later ones grow from it (5 s by default: about a day in all).
    pub retry_base: Duration,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            allow_private: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
        }
    }
}

/// Retry delays as multiples of the base: 5 s, 30 s, 2 min, 5 min, 15 min, 30 min, 1 h, 2 h,
/// 4 h, 8 h, 8 h with the default base: the twelfth attempt, about 24 h after the first, is the
/// last.
const RETRY_STEPS: [u32; 11] = [1, 6, 24, 60, 180, 360, 720, 1440, 2880, 5760, 5760];
/// Attempts at most.
pub const MAX_ATTEMPTS: i32 = RETRY_STEPS.len() as i32 + 1;
/// Bytes of a receiver's answer kept in the delivery log.
const KEEP_BODY: usize = 1024;

/// The delay before attempt `attempt + 1` after attempt `attempt` failed, jittered by ±20 %.
pub fn retry_delay(base: Duration, attempt: i32) -> Duration {
    let step = RETRY_STEPS
        .get((attempt.max(1) - 1) as usize)
        .copied()
        .unwrap_or(5760);
    let d = base.mul_f64(f64::from(step));
    d.mul_f64(rand::random_range(0.8..1.2))
}

/// Whether `ip` is an address webhooks must not reach unless private targets are allowed:
/// loopback, unspecified, private (RFC 1918, IPv6 ULA), link-local (cloud metadata lives
/// there), shared CGNAT space, multicast, broadcast and documentation ranges, including
/// IPv4-mapped and NAT64 forms.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 = std::net::Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                );
                return forbidden_ip(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

/// Why a webhook URL is refused.
pub async fn check_url(url: &str, allow_private: bool) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https URLs are allowed, not {:?}",
            u.scheme()
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "credentials in the URL are not allowed (they would be stored and shown)".into(),
        );
    }
    let host = u.host_str().ok_or("the URL has no host")?.to_owned();
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 characters".into());
    }
    if allow_private {
        return Ok(u);
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match u.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        _ => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if let Some(a) = addrs.iter().find(|a| forbidden_ip(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, a loopback, private or link-local address \
             (set FLAGPOST_WEBHOOK_ALLOW_PRIVATE=true to allow)",
            a.ip()
        ));
    }
    Ok(u)
}

/// A resolver that refuses forbidden addresses: reqwest connects only to what it returns.
#[derive(Debug)]
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| !forbidden_ip(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to forbidden addresses").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Builds the HTTP client deliveries use.
pub fn http_client(config: &WebhookConfig) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .user_agent(concat!("Flagpost-Webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(4);
    if !config.allow_private {
        b = b.dns_resolver(Arc::new(GuardedResolver));
    }
    b.build().unwrap_or_default()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` with the key decoded from the
/// `whsec_` secret (Standard Webhooks).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_else(|_| secret.as_bytes().to_vec());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A new signing secret: `whsec_` + 32 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The answer's start.
    pub body: Option<String>,
    /// Why it failed without an answer (or with a non-2xx one).
    pub error: Option<String>,
    /// `Retry-After`, when given.
    pub retry_after: Option<Duration>,
    /// Duration.
    pub duration: Duration,
}

impl Attempt {
    /// Whether the receiver accepted it.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends `body` as message `id` to `url`, signed with `secret`.
pub async fn send(
    client: &reqwest::Client,
    config: &WebhookConfig,
    url: &str,
    secret: &str,
    id: &str,
    body: &str,
) -> Attempt {
    let start = Instant::now();
    if let Err(e) = check_literal(url, config.allow_private) {
        return Attempt {
            status: None,
            body: None,
            error: Some(e),
            retry_after: None,
            duration: start.elapsed(),
        };
    }
    let ts = Utc::now().timestamp();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sign(secret, id, ts, body))
        .body(body.to_owned())
        .send()
        .await;
    match resp {
        Err(e) => Attempt {
            status: None,
            body: None,
            error: Some(error_chain(&e)),
            retry_after: None,
            duration: start.elapsed(),
        },
        Ok(mut r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let mut kept = Vec::new();
            while kept.len() < KEEP_BODY {
                match r.chunk().await {
                    Ok(Some(c)) => {
                        kept.extend_from_slice(&c[..c.len().min(KEEP_BODY - kept.len())])
                    }
                    _ => break,
                }
            }
            let error = (!(200..300).contains(&status)).then(|| {
                if (300..400).contains(&status) {
                    format!("the receiver answered {status} (redirects are not followed)")
                } else {
                    format!("the receiver answered {status}")
                }
            });
            Attempt {
                status: Some(status),
                body: Some(String::from_utf8_lossy(&kept).into_owned()),
                error,
                retry_after,
                duration: start.elapsed(),
            }
        }
    }
}

fn check_literal(url: &str, allow_private: bool) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("only http and https URLs are allowed".into());
    }
    let ip = match u.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if !allow_private && forbidden_ip(ip) {
        return Err(format!("{ip} is a loopback, private or link-local address"));
    }
    Ok(())
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v.trim()).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// The principal a webhook acts as.
pub fn webhook_principal(state: &AppState, identity: &str) -> Principal {
    Principal {
        username: identity.to_owned(),
        acl_name: None,
        admin: state.admins.contains(identity),
        scopes: Scopes {
            read: true,
            write: false,
            acl: false,
        },
        credential: Credential::Token { id: 0 },
    }
}

/// How long finished deliveries (delivered or failed) stay in the log and can be replayed.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Runs the delivery worker until `shutdown`; in-flight attempts finish first.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let client = http_client(&state.webhook_config);
    let mut batches = state.hub.subscribe();
    let mut lanes: HashMap<i64, (CancellationToken, Arc<Notify>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut last_backlog = Instant::now() - Duration::from_secs(60);
    // The first pruning a minute after start, then hourly.
    let mut next_prune = Instant::now() + Duration::from_secs(60);
    loop {
        // Queue what is new, then let the lanes look.
        let access = state.hub.access();
        loop {
            let queued = flagpost_store::webhooks::enqueue(&state.pool, 2000, |identity| {
                access.readable_events_folders(&webhook_principal(&state, identity))
            })
            .await;
            match queued {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: cannot queue deliveries");
                    break;
                }
            }
        }
        match flagpost_store::webhooks::list_webhooks(&state.pool).await {
            Ok(hooks) => {
                let enabled: HashMap<i64, WebhookRow> = hooks
                    .into_iter()
                    .filter(|h| h.enabled)
                    .map(|h| (h.id, h))
                    .collect();
                lanes.retain(|id, (cancel, _, _)| {
                    let keep = enabled.contains_key(id);
                    if !keep {
                        cancel.cancel();
                    }
                    keep
                });
                for (id, _) in enabled {
                    let (_, wake, _) = lanes.entry(id).or_insert_with(|| {
                        let cancel = shutdown.child_token();
                        let wake = Arc::new(Notify::new());
                        let task = tokio::spawn(lane(
                            state.clone(),
                            client.clone(),
                            id,
                            wake.clone(),
                            cancel.clone(),
                        ));
                        (cancel, wake, task)
                    });
                    wake.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot list webhooks"),
        }
        if last_backlog.elapsed() > Duration::from_secs(5) {
            last_backlog = Instant::now();
            if let Ok(backlog) = flagpost_store::webhooks::backlog(&state.pool).await {
                for (id, n) in backlog {
                    metrics::gauge!("flagpost_webhook_backlog", "webhook" => id.to_string())
                        .set(n as f64);
                }
            }
        }
        if Instant::now() >= next_prune {
            next_prune = Instant::now() + Duration::from_secs(3600);
            match flagpost_store::webhooks::prune_deliveries(&state.pool, DELIVERY_RETENTION).await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(removed = n, "webhooks: old deliveries removed from the log")
                }
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot prune the delivery log"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = batches.recv() => {}
            _ = state.webhooks_changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for (_, (cancel, _, task)) in lanes {
        cancel.cancel();
        let _ =
            tokio::time::timeout(state.webhook_config.timeout + Duration::from_secs(2), task).await;
    }
}

async fn lane(
    state: AppState,
    client: reqwest::Client,
    webhook_id: i64,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let config = state.webhook_config.clone();
    let lease = (config.timeout + Duration::from_secs(5)).as_secs_f64();
    while !cancel.is_cancelled() {
        let wait = match flagpost_store::webhooks::claim_head(&state.pool, webhook_id, lease).await
        {
            Ok(Claim::Claimed(c)) => {
                deliver(&state, &client, &config, webhook_id, *c).await;
                continue;
            }
            Ok(Claim::NotBefore(t)) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            Ok(Claim::Empty) => Duration::from_secs(5),
            Ok(Claim::Busy) => Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(webhook.id = webhook_id, error = %e, "webhooks: cannot claim a delivery");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}

async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    config: &WebhookConfig,
    webhook_id: i64,
    c: flagpost_store::webhooks::Claimed,
) {
    let hook = &c.webhook;
    // Authorised at the moment of delivery: the identity must still read the folder, and the
    // filters may have changed since the event was queued.
    let principal = webhook_principal(state, &hook.identity);
    let allowed = state.hub.access().can_read(&principal, c.event.folder_id)
        && hook
            .events
            .as_ref()
            .is_none_or(|t| t.contains(&c.event.kind))
        && hook
            .folders
            .as_ref()
            .is_none_or(|f| f.contains(&c.event.folder_id));
    if !allowed {
        tracing::debug!(
            webhook.id = webhook_id,
            event.id = c.event.id,
            "webhooks: not readable now; dropped"
        );
        let _ = flagpost_store::webhooks::drop_delivery(&state.pool, c.delivery_id).await;
        return;
    }
    let event_id = c.event.id.to_string();
    let body = serde_json::to_string(&EventOut::from(c.event)).unwrap_or_default();
    let attempt = send(client, config, &hook.url, &hook.secret, &event_id, &body).await;
    let outcome = if attempt.delivered() {
        "delivered"
    } else if attempt.status == Some(410) {
        "gone"
    } else if c.attempt >= MAX_ATTEMPTS {
        "failed"
    } else {
        "retry"
    };
    metrics::counter!("flagpost_webhook_deliveries_total", "outcome" => outcome).increment(1);
    metrics::histogram!("flagpost_webhook_attempt_duration_seconds")
        .record(attempt.duration.as_secs_f64());
    let retry_at = (outcome == "retry").then(|| {
        let delay = attempt
            .retry_after
            .map(|d| d.min(Duration::from_secs(86_400)))
            .unwrap_or_else(|| retry_delay(config.retry_base, c.attempt));
        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
    });
    let record = AttemptRecord {
        status: match outcome {
            "delivered" => "delivered",
            "retry" => "pending",
            _ => "failed",
        },
        retry_at,
        response_status: attempt.status.map(i32::from),
        response_body: attempt.body.clone(),
        error: attempt.error.clone(),
        duration_ms: attempt.duration.as_millis().min(i32::MAX as u128) as i32,
        disable: (outcome == "gone").then(|| "the receiver answered 410 Gone".to_owned()),
    };
    if outcome != "delivered" {
        tracing::info!(webhook.id = webhook_id, event.id = %event_id, attempt = c.attempt, outcome,
            error = attempt.error.as_deref().unwrap_or(""), "webhook delivery not accepted");
    }
    if let Err(e) =
        flagpost_store::webhooks::record_attempt(&state.pool, webhook_id, c.delivery_id, &record)
            .await
    {
        // The lease runs out and the delivery is attempted again: at least once.
        tracing::warn!(webhook.id = webhook_id, error = %e, "webhooks: cannot record an attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap()), "{ip} must be forbidden");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(!forbidden_ip(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn retry_delays_grow_to_about_a_day_in_all() {
        let base = Duration::from_secs(5);
        let total: f64 = RETRY_STEPS
            .iter()
            .map(|step| base.as_secs_f64() * f64::from(*step))
            .sum();
        assert!((20.0 * 3600.0..30.0 * 3600.0).contains(&total), "{total} s");
        let d1 = retry_delay(base, 1).as_secs_f64();
        assert!((4.0..6.0).contains(&d1), "{d1}");
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert!(parse_retry_after("nonsense").is_none());
    }

    #[tokio::test]
    async fn urls_other_than_public_http_are_refused() {
        for url in [
            "file:///etc/passwd",
            "ftp://example.com/",
            "http://127.0.0.1/hook",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://user:pw@example.com/",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url} accepted");
        }
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_url("ftp://example.com/", true).await.is_err());
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1614265330;
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, ts, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
