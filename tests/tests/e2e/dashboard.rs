//! The dashboard's browser tests (`web/tests/*.test.mjs`: node:test, playwright-core, Debian's
//! chromium, axe-core) against a real `flagpost serve`, a real Dovecot and a real PostgreSQL.
//!
//! This test builds the fixture those tests expect, serves their control endpoint ("another
//! IMAP client", see `web/tests/lib/harness.mjs`) and runs `node --test` on `web/tests/`. It
//! never skips: missing tools or a binary built without the dashboard fail with how to fix it.
//!
//! For the admin area's tests (`web/tests/admin.test.mjs`) the server has a service admin
//! (`FLAGPOST_ADMINS`) and allows webhooks to 127.0.0.1, where the control endpoint's
//! `POST /receiver` starts a receiver that records what it gets (`GET /receiver/requests`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail, ensure};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{any, get, post};
use flagpost_e2e::http::Api;
use flagpost_e2e::{SERVICE_USER, eventually, flagpost_env, message, server_state};
use flagpost_harness::imap_client::quote;
use flagpost_harness::{Dovecot, ImapFixture, TestDatabase};
use serde_json::{Value, json};

use crate::Serve;

/// The shared mailboxes' owner (its folders are `shared/support/…` to everyone else).
const OWNER: &str = "support";
/// The folder the tests act on: a few dozen messages, most of them pending.
const WORK: &str = "Queue";
/// The big folder for the performance test.
const BIG: &str = "Backlog";
const BIG_COUNT: usize = 10_000;
/// Staff: (role in `FLAGPOST_USERS`, IMAP user, password, rights on WORK, rights on BIG).
const STAFF: [(&str, &str, &str, &str, &str); 3] = [
    ("agent", "agent", "agent-pw", "lrsw", "lrsw"),
    ("reader", "reader", "reader-pw", "lr", ""),
    ("admin", "admin", "admin-pw", "lrswa", ""),
];
/// The service admin (`FLAGPOST_ADMINS`) for the admin area's tests: (role in `FLAGPOST_USERS`,
/// IMAP user, password). It holds no ACL entry: service admins read every watched folder.
const SERVICE_ADMIN: (&str, &str, &str) = ("service_admin", "boss", "boss-pw");
/// A fixed session key, so sessions survive `POST /restart-flagpost`.
const JWT_SECRET: &str = "dashboard-e2e-fixed-jwt-secret-0123456789abcdef";
/// How long `node --test` may take.
const NODE_DEADLINE: Duration = Duration::from_secs(300);

/// Subjects of WORK's messages: distinct words, so a search for one subject matches only it
/// (senders never contain them). (subject, hours ago, maildir flags.)
const WORK_MESSAGES: [(&str, u64, &str); 17] = [
    ("Printer on floor three jams", 75, ""),
    ("Cannot reset my password", 50, ""),
    ("Invoice 4411 shows wrong VAT", 30, ""),
    ("Parcel arrived damaged", 26, ""),
    ("Upgrade plan before renewal", 20, ""),
    ("Wrong delivery address", 12, ""),
    ("Refund for order 8812", 9, ""),
    ("Export to spreadsheet fails", 7, ""),
    ("Login loop on mobile app", 5, ""),
    ("Newsletter unsubscribe ignored", 3, ""),
    ("Question about warranty terms", 2, ""),
    ("Duplicate charge on card", 1, ""),
    ("Escalation from key account", 4, "F"),
    ("Thanks for the quick help", 60, "RS"),
    ("Shipping times to Norway", 40, "R"),
    ("Bulk licence quote", 36, "RF"),
    ("Office hours over holidays", 22, "RS"),
];

/// Everything the control endpoint needs.
struct Ctl {
    dovecot: Dovecot,
    env: Vec<(&'static str, String)>,
    addr: SocketAddr,
    serve: tokio::sync::Mutex<Option<Serve>>,
    /// Logs of earlier runs of `flagpost serve` (before restarts).
    old_logs: Mutex<String>,
    /// The webhook receiver's URL, once `POST /receiver` started it.
    receiver: tokio::sync::Mutex<Option<String>>,
    /// What the receiver got: `{method, path, headers, body}` each.
    received: Arc<Mutex<Vec<Value>>>,
}

type Reply = std::result::Result<Json<Value>, (StatusCode, String)>;

fn fail(status: StatusCode, e: impl std::fmt::Display) -> (StatusCode, String) {
    (status, format!("{e:#}"))
}

impl Ctl {
    /// The fixture folder shown as `imap_name`: its name in the owner's mailbox.
    fn folder(&self, imap_name: &str) -> std::result::Result<&'static str, (StatusCode, String)> {
        [WORK, BIG]
            .into_iter()
            .find(|f| shared_name(f) == imap_name)
            .ok_or_else(|| {
                fail(
                    StatusCode::NOT_FOUND,
                    format!("no fixture folder {imap_name:?}"),
                )
            })
    }

    /// The mailbox `folder` as `user` names it: the owner by its own name, others under
    /// `shared/<owner>/`.
    fn mailbox_for(user: &str, folder: &str) -> String {
        if user == OWNER {
            folder.to_owned()
        } else {
            shared_name(folder)
        }
    }

    async fn log_text(&self) -> String {
        let current = self
            .serve
            .lock()
            .await
            .as_ref()
            .map(Serve::log_text)
            .unwrap_or_default();
        format!("{}{current}", self.old_logs.lock().unwrap())
    }
}

fn shared_name(folder: &str) -> String {
    flagpost_domain::encode_mailbox_name(&format!("shared/{OWNER}/{folder}"))
}

/// `POST /store {user, folder_imap_name, uid, change}`: UID STORE as `user`.
async fn store(State(ctl): State<Arc<Ctl>>, Json(b): Json<Value>) -> Reply {
    let user = str_field(&b, "user")?;
    let folder = ctl.folder(str_field(&b, "folder_imap_name")?)?;
    let uid = uid_field(&b["uid"])?;
    let change = str_field(&b, "change")?;
    ctl.dovecot
        .store(user, &Ctl::mailbox_for(user, folder), uid, change)
        .await
        .map_err(|e| fail(StatusCode::BAD_GATEWAY, e))?;
    Ok(Json(json!({ "ok": true })))
}

/// `POST /append {user, folder_imap_name, subject}` → `{uid}`: a new message arrives. It is
/// delivered as the folder's owner (the staff accounts have no `i` right, like a real team whose
/// mail comes in through the MTA); `user` is accepted for the interface's sake.
async fn append(State(ctl): State<Arc<Ctl>>, Json(b): Json<Value>) -> Reply {
    let folder = ctl.folder(str_field(&b, "folder_imap_name")?)?;
    let subject = b["subject"].as_str().unwrap_or("New message");
    let uid = ctl
        .dovecot
        .append(
            OWNER,
            folder,
            &message(subject, "newcomer@customer.example"),
        )
        .await
        .map_err(|e| fail(StatusCode::BAD_GATEWAY, e))?;
    Ok(Json(json!({ "uid": uid })))
}

/// `GET /flags?folder_imap_name=&uid=` → `{flags}` as the owner reads them.
async fn flags(State(ctl): State<Arc<Ctl>>, Query(q): Query<BTreeMap<String, String>>) -> Reply {
    let folder = ctl.folder(q.get("folder_imap_name").map_or("", String::as_str))?;
    let uid: u32 = q
        .get("uid")
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "uid missing or not a number"))?;
    let state = server_state(&ctl.dovecot, OWNER, folder)
        .await
        .map_err(|e| fail(StatusCode::BAD_GATEWAY, e))?;
    let flags = state
        .get(&uid)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no UID {uid} in {folder}")))?;
    Ok(Json(json!({ "flags": flags })))
}

/// `GET /acl?folder_imap_name=` → `{entries:[[identifier, rights], …]}` (GETACL as the owner).
async fn acl(State(ctl): State<Arc<Ctl>>, Query(q): Query<BTreeMap<String, String>>) -> Reply {
    let folder = ctl.folder(q.get("folder_imap_name").map_or("", String::as_str))?;
    let entries = ctl
        .dovecot
        .get_acl(OWNER, folder)
        .await
        .map_err(|e| fail(StatusCode::BAD_GATEWAY, e))?;
    Ok(Json(json!({ "entries": entries })))
}

/// `POST /restart-flagpost`: SIGTERM, wait for the exit, start again at the same address;
/// answers once it listens.
async fn restart(State(ctl): State<Arc<Ctl>>) -> Reply {
    let mut slot = ctl.serve.lock().await;
    if let Some(old) = slot.take() {
        let log = old.log.clone();
        let stopped = old.stop().await;
        // Keep its log, with what it wrote while shutting down.
        ctl.old_logs.lock().unwrap().push_str(&log.lock().unwrap());
        let status = stopped.map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        if !status.success() {
            return Err(fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("flagpost serve exited with {status} on SIGTERM"),
            ));
        }
    }
    let serve = Serve::start_at(ctl.addr, &ctl.env)
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    *slot = Some(serve);
    Ok(Json(json!({ "ok": true })))
}

/// `GET /fixture` → `{folders:[{imap_name, name, messages:[{uid, subject}]}]}`, read from the
/// IMAP server now (so messages appended since are included).
async fn fixture(State(ctl): State<Arc<Ctl>>) -> Reply {
    let mut folders = Vec::new();
    for folder in [WORK, BIG] {
        let messages = subjects(&ctl.dovecot, folder)
            .await
            .map_err(|e| fail(StatusCode::BAD_GATEWAY, e))?;
        folders.push(json!({
            "imap_name": shared_name(folder),
            "name": format!("shared/{OWNER}/{folder}"),
            "messages": messages
                .into_iter()
                .map(|(uid, subject)| json!({ "uid": uid, "subject": subject }))
                .collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({ "folders": folders })))
}

/// `POST /receiver` → `{url}`: starts (once) a local HTTP receiver for webhooks that records
/// every request and answers 200; every path under its URL is accepted.
async fn receiver(State(ctl): State<Arc<Ctl>>) -> Reply {
    let mut slot = ctl.receiver.lock().await;
    if slot.is_none() {
        let app = axum::Router::new()
            .fallback(any(record))
            .with_state(ctl.received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        *slot = Some(format!("http://{addr}/hook"));
    }
    Ok(Json(json!({ "url": slot.as_deref() })))
}

/// Every request the receiver gets: method, path (with query), headers (lower-case names;
/// repeated ones joined with ", ") and body.
async fn record(
    State(received): State<Arc<Mutex<Vec<Value>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> &'static str {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let value = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(name.as_str().to_owned(), Value::String(value));
    }
    received.lock().unwrap().push(json!({
        "method": method.as_str(),
        "path": uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": map,
        "body": body,
    }));
    "ok"
}

/// `GET /receiver/requests` → `{requests:[{method, path, headers, body}]}`, oldest first.
async fn receiver_requests(State(ctl): State<Arc<Ctl>>) -> Reply {
    let requests = ctl.received.lock().unwrap().clone();
    Ok(Json(json!({ "requests": requests })))
}

fn str_field<'a>(b: &'a Value, name: &str) -> std::result::Result<&'a str, (StatusCode, String)> {
    b[name]
        .as_str()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, format!("{name} missing")))
}

fn uid_field(v: &Value) -> std::result::Result<u32, (StatusCode, String)> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .and_then(|u| u32::try_from(u).ok())
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "uid missing or not a number"))
}

/// (UID, Subject) of every message of `folder`, as its owner reads them.
async fn subjects(dovecot: &Dovecot, folder: &str) -> Result<Vec<(u32, String)>> {
    let mut c = dovecot.client(OWNER).await?;
    c.command_ok(&format!(
        "EXAMINE {}",
        quote(&flagpost_domain::encode_mailbox_name(folder))?
    ))
    .await?;
    let r = c
        .command("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await?;
    c.logout().await;
    let mut out = Vec::new();
    for line in r.untagged.iter().filter(|l| l.contains(" FETCH (")) {
        let uid = line
            .split("UID ")
            .nth(1)
            .and_then(|s| s.split([' ', ')']).next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("no UID in {line}"))?;
        let subject = line
            .split_once("Subject: ")
            .map(|(_, s)| s.split(['\r', '\n']).next().unwrap_or("").to_owned())
            .unwrap_or_default();
        out.push((uid, subject));
    }
    out.sort();
    Ok(out)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_owned()
}

/// Fails (never skips) with how to install whatever the browser tests need.
async fn check_prerequisites(web: &Path, chromium: &Path) -> Result<()> {
    let out = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await
        .map_err(|e| {
            anyhow!(
                "`node` was not found ({e}). The dashboard tests need Node.js >= 20.19 on PATH \
                 (Debian 12's own nodejs 18 is too old for Vite 8; install Node 20 LTS)."
            )
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let parts: Vec<u32> = version
        .trim_start_matches('v')
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    ensure!(
        parts.len() >= 2 && (parts[0], parts[1]) >= (20, 19),
        "node {version} is too old: the dashboard tests need Node.js >= 20.19"
    );
    ensure!(
        chromium.is_file(),
        "{} not found: the dashboard tests drive Debian's chromium. Install it with \
         `apt-get install -y chromium` (or point CHROMIUM at a chromium binary).",
        chromium.display()
    );
    for module in ["playwright-core", "axe-core"] {
        ensure!(
            web.join("node_modules").join(module).is_dir(),
            "{} is missing: install the web dependencies with `cd web && npm ci`",
            web.join("node_modules").join(module).display()
        );
    }
    Ok(())
}

/// The binary must carry the dashboard that `web/dist` holds.
async fn check_dashboard(addr: SocketAddr, web: &Path) -> Result<()> {
    const HOW: &str = "build the dashboard first (`cd web && npm ci && npm run build`), then \
                       let cargo rebuild the binary (it embeds web/dist at compile time)";
    let body = reqwest::get(format!("http://{addr}/"))
        .await?
        .text()
        .await?;
    ensure!(
        body.contains("<div id=\"app\">") && body.contains("/assets/"),
        "`GET /` does not serve the built dashboard: {HOW}.\nGET / answered:\n{body}"
    );
    let built = std::fs::read_to_string(web.join("dist/index.html"))
        .with_context(|| format!("web/dist/index.html is missing: {HOW}"))?;
    ensure!(
        built == body,
        "the binary serves another dashboard build than web/dist/index.html (stale binary): {HOW}"
    );
    Ok(())
}

/// Dovecot with the owner, the service account and three staff; WORK with `WORK_MESSAGES` and
/// BIG with 10,000 messages, both written straight into the maildir.
async fn build_dovecot() -> Result<Dovecot> {
    let dovecot = Dovecot::start().await?;
    dovecot.add_user(OWNER, "support-pw")?;
    dovecot.add_user(SERVICE_USER, "service-pw")?;
    for (_, user, password, _, _) in STAFF {
        dovecot.add_user(user, password)?;
    }
    dovecot.add_user_ready(OWNER, "support-pw").await?;
    let (_, admin_user, admin_password) = SERVICE_ADMIN;
    dovecot.add_user_ready(admin_user, admin_password).await?;
    for folder in [WORK, BIG] {
        dovecot.create_folder(OWNER, folder).await?;
        // The service account stores flags for staff (`w`, `s`) and mirrors the ACL (`a`).
        dovecot
            .set_acl(OWNER, folder, SERVICE_USER, "lrswa")
            .await?;
    }
    for (_, user, _, work, big) in STAFF {
        dovecot.set_acl(OWNER, WORK, user, work).await?;
        if !big.is_empty() {
            dovecot.set_acl(OWNER, BIG, user, big).await?;
        }
    }
    let now = SystemTime::now();
    let senders = [
        "Ada Lovelace <ada@customer.example>",
        "Grace Hopper <grace@client.example>",
        "Linus Pauling <linus@partner.example>",
    ];
    dovecot.seed_maildir(OWNER, WORK, WORK_MESSAGES.len(), |i| {
        let (subject, hours, flags) = WORK_MESSAGES[i];
        let at = now - Duration::from_secs(hours * 3600 + 17 * 60);
        (
            raw_message(i, subject, senders[i % senders.len()], at, "work"),
            at,
            flags.to_owned(),
        )
    })?;
    let start = now - Duration::from_secs(30 * 24 * 3600);
    let topics = [
        "Invoice question",
        "Login problem",
        "Refund request",
        "Feature idea",
        "Delivery delay",
    ];
    dovecot.seed_maildir(OWNER, BIG, BIG_COUNT, |i| {
        let flags = match i % 10 {
            0..=3 => "RS",
            4 => "FS",
            5 => "F",
            _ => "",
        };
        let at = start + Duration::from_secs(i as u64 * 60);
        let subject = format!("{} #{i}", topics[i % topics.len()]);
        (
            raw_message(i, &subject, senders[i % senders.len()], at, "big"),
            at,
            flags.to_owned(),
        )
    })?;
    Ok(dovecot)
}

fn raw_message(i: usize, subject: &str, from: &str, at: SystemTime, tag: &str) -> Vec<u8> {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let date = chrono_like_date(secs);
    format!(
        "From: {from}\r\nTo: support@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <dash-{tag}-{i}@example.org>\r\n\r\nHello support team,\r\nplease have a look.\r\n"
    )
    .into_bytes()
}

/// An RFC 5322 date (UTC) for `secs` since the epoch.
fn chrono_like_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d} {} {y} {:02}:{:02}:{:02} +0000",
        months[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Waits until agent sees both folders live with all their messages.
async fn wait_mirrored(addr: SocketAddr) -> Result<()> {
    let api = Api::new(addr);
    let token = api.login("agent", "agent-pw").await?;
    let want: BTreeMap<String, i64> = [
        (shared_name(WORK), WORK_MESSAGES.len() as i64),
        (shared_name(BIG), BIG_COUNT as i64),
    ]
    .into();
    let last = Mutex::new(String::new());
    let outcome = eventually(
        Duration::from_secs(120),
        "both folders mirrored",
        || async {
            let r = api.get("/api/v1/folders", &token).await?;
            *last.lock().unwrap() = r.text.clone();
            let got: BTreeMap<String, i64> = r.json["folders"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["sync"]["state"] == "live")
                .filter_map(|f| {
                    Some((
                        f["imap_name"].as_str()?.to_owned(),
                        f["counts"]["total"].as_i64()?,
                    ))
                })
                .collect();
            Ok((got == want).then_some(()))
        },
    )
    .await;
    outcome.map_err(|e| anyhow!("{e}; last GET /folders: {}", last.lock().unwrap()))
}

/// Output of `node --test`: exit status and everything it printed.
struct NodeRun {
    success: bool,
    output: String,
}

async fn run_node_tests(
    web: &Path,
    chromium: &Path,
    url: &str,
    control: &str,
    users: &Value,
) -> Result<NodeRun> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.args([
        "--test",
        "--test-concurrency=1",
        "--test-reporter=tap",
        "tests/",
    ])
    .current_dir(web)
    .env("FLAGPOST_URL", url)
    .env("FLAGPOST_CONTROL", control)
    .env("FLAGPOST_USERS", users.to_string())
    .env("CHROMIUM", chromium)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawn node --test")?;
    let output = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    for (stream, label) in [
        (
            Box::new(child.stdout.take().expect("piped"))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            "",
        ),
        (Box::new(child.stderr.take().expect("piped")), "[stderr] "),
    ] {
        let sink = output.clone();
        readers.push(tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                println!("[node] {label}{line}");
                let mut o = sink.lock().unwrap();
                o.push_str(label);
                o.push_str(&line);
                o.push('\n');
            }
        }));
    }
    let status = match tokio::time::timeout(NODE_DEADLINE, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            let _ = child.kill().await;
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
            }
            bail!(
                "node --test did not finish within {NODE_DEADLINE:?}; its output:\n{}",
                output.lock().unwrap()
            );
        }
    };
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    let output = output.lock().unwrap().clone();
    Ok(NodeRun {
        success: status.success(),
        output,
    })
}

/// The number after `# <key> ` in the TAP summary.
fn tap_count(output: &str, keys: &[&str]) -> Option<u64> {
    output.lines().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("# ")?;
        let (k, v) = rest.split_once(' ')?;
        keys.contains(&k).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The first number after `marker` in the output, e.g. "interactive after 412 ms".
fn number_after(output: &str, marker: &str) -> Option<f64> {
    output.lines().find_map(|l| {
        let rest = &l[l.find(marker)? + marker.len()..];
        let num: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        num.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_browser_tests_pass_against_the_real_server() {
    let started = Instant::now();
    let root = repo_root();
    let web = root.join("web");
    let chromium =
        PathBuf::from(std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()));
    check_prerequisites(&web, &chromium)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let dovecot = build_dovecot().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_ACL_POLL_SECS", "1".into()));
    env.push(("FLAGPOST_JWT_SECRET", JWT_SECRET.into()));
    // The admin area: a service admin, and webhooks to the control endpoint's local receiver
    // (127.0.0.1), retried quickly.
    env.push(("FLAGPOST_ADMINS", SERVICE_ADMIN.1.into()));
    env.push(("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "true".into()));
    env.push(("FLAGPOST_WEBHOOK_RETRY_BASE_MS", "100".into()));
    let serve = Serve::start(&env).await.unwrap();
    let addr = serve.addr;
    check_dashboard(addr, &web)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    if let Err(e) = wait_mirrored(addr).await {
        panic!("{e:#}\nflagpost log:\n{}", serve.log_text());
    }
    let setup = started.elapsed();

    let ctl = Arc::new(Ctl {
        dovecot,
        env,
        addr,
        serve: tokio::sync::Mutex::new(Some(serve)),
        old_logs: Mutex::new(String::new()),
        receiver: tokio::sync::Mutex::new(None),
        received: Arc::new(Mutex::new(Vec::new())),
    });
    let app = axum::Router::new()
        .route("/store", post(store))
        .route("/append", post(append))
        .route("/flags", get(flags))
        .route("/acl", get(acl))
        .route("/restart-flagpost", post(restart))
        .route("/fixture", get(fixture))
        .route("/receiver", post(receiver))
        .route("/receiver/requests", get(receiver_requests))
        .with_state(ctl.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = format!("http://{}", listener.local_addr().unwrap());
    let control_server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (admin_role, admin_user, admin_password) = SERVICE_ADMIN;
    let users: Value = STAFF
        .iter()
        .map(|(role, user, password, _, _)| (*role, *user, *password))
        .chain([(admin_role, admin_user, admin_password)])
        .map(|(role, user, password)| {
            (
                role.to_owned(),
                json!({ "username": user, "password": password }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let t_node = Instant::now();
    let run = run_node_tests(&web, &chromium, &format!("http://{addr}"), &control, &users).await;
    let node_time = t_node.elapsed();
    control_server.abort();
    let run = match run {
        Ok(run) => run,
        Err(e) => panic!("{e:#}\nflagpost log:\n{}", tail(&ctl.log_text().await)),
    };

    let tests = tap_count(&run.output, &["tests"]);
    let pass = tap_count(&run.output, &["pass"]);
    let fail_n = tap_count(&run.output, &["fail"]);
    let skip = tap_count(&run.output, &["skip", "skipped"]);
    let todo = tap_count(&run.output, &["todo"]);
    let cancelled = tap_count(&run.output, &["cancelled"]);
    let interactive = number_after(&run.output, "interactive after");
    let js_kb = number_after(&run.output, "dashboard JS:");
    println!(
        "dashboard e2e: tests {tests:?}, pass {pass:?}, fail {fail_n:?}, skipped {skip:?}, \
         cancelled {cancelled:?}; 10k folder interactive after login: {} ms; dashboard JS: {} KB \
         gzipped; setup {setup:.1?}, node {node_time:.1?}, total {:.1?}",
        interactive.map_or("?".into(), |v| v.to_string()),
        js_kb.map_or("?".into(), |v| v.to_string()),
        started.elapsed()
    );
    let report = || {
        format!(
            "node --test output:\n{}\nflagpost log (tail):\n",
            run.output
        )
    };
    if !run.success || fail_n != Some(0) || cancelled.unwrap_or(0) != 0 {
        panic!(
            "the dashboard's browser tests failed\n{}{}",
            report(),
            tail(&ctl.log_text().await)
        );
    }
    assert_eq!(
        skip,
        Some(0),
        "no dashboard test may be skipped (a skip means the fixture lacks something)\n{}",
        report()
    );
    assert_eq!(todo.unwrap_or(0), 0, "no test may be todo\n{}", report());
    assert!(
        pass.unwrap_or(0) >= 22 && pass == tests,
        "every test ran and passed\n{}",
        report()
    );
    assert!(
        interactive.is_some(),
        "the 10k test reported no time\n{}",
        report()
    );
}

/// The last 200 lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(200)..].join("\n")
}
