//! A small client for Flagpost's HTTP API in tests: JSON requests with a bearer token, and a
//! Server-Sent Events reader.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde_json::Value;

/// A response: status, headers and body (JSON when it parses).
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    /// Raw body.
    pub text: String,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Client for one Flagpost server.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://addr`.
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client for the server at `addr`.
    pub fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// Sends `method path` with an optional bearer token, JSON body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes())?,
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            json,
            text,
        })
    }

    /// `GET path` with a token.
    pub async fn get(&self, path: &str, token: &str) -> Result<Reply> {
        self.send("GET", path, Some(token), None, &[]).await
    }

    /// `GET path` and only the status: the body (e.g. an event stream) is not read.
    pub async fn send_head_only(&self, path: &str, token: &str) -> Result<u16> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }

    /// Logs in and returns the session token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String> {
        let r = self
            .send(
                "POST",
                "/api/v1/session",
                None,
                Some(&serde_json::json!({ "username": user, "password": password })),
                &[],
            )
            .await?;
        anyhow::ensure!(
            r.status == 200,
            "login of {user} failed: {} {}",
            r.status,
            r.text
        );
        Ok(r.json["token"].as_str().context("token")?.to_owned())
    }

    /// Opens the event stream at `path_and_query` with `token` and extra headers.
    pub async fn stream(
        &self,
        path_and_query: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Result<Sse> {
        let mut req = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(3600));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        anyhow::ensure!(resp.status() == 200, "stream: {}", resp.status());
        Ok(Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        })
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` (joined lines), parsed as JSON when possible.
    pub data: Value,
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open event stream.
pub struct Sse {
    body: ByteStream,
    buf: String,
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sse")
    }
}

impl Sse {
    /// The next event (comments skipped) within `timeout`; `None` on timeout or end.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if ev.event.is_none() && data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                let joined = data.join("\n");
                ev.data = serde_json::from_str(&joined).unwrap_or(Value::String(joined));
                return Ok(Some(ev));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Ok(None),
                Ok(Some(chunk)) => {
                    let chunk = chunk?;
                    self.buf
                        .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
                }
            }
        }
    }

    /// Whether the server ends the stream within `timeout` (events before the end are
    /// skipped).
    pub async fn ends_within(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return Ok(false),
                Ok(None) | Ok(Some(Err(_))) => return Ok(true),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Events until one satisfies `pred` (returned with those before it), or `timeout`.
    pub async fn until(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&SseEvent) -> bool,
    ) -> Result<Vec<SseEvent>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Some(ev) => {
                    let hit = pred(&ev);
                    seen.push(ev);
                    if hit {
                        return Ok(seen);
                    }
                }
                None => anyhow::bail!(
                    "no matching event within {timeout:?}; saw {:?}",
                    seen.iter().map(|e| (&e.event, &e.id)).collect::<Vec<_>>()
                ),
            }
        }
    }
}
