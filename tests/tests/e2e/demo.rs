//! `flagpost demo` started as the README starts it: the dashboard and a demo login answer, the
//! simulated colleague and customer change the mailboxes over IMAP and the change reaches the
//! API within 30 s, and SIGINT leaves no server process, no folder and no database behind.
//! Also: the README documents every configuration variable the binary reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flagpost_e2e::http::Api;
use serde_json::Value;

/// The demo given a PostgreSQL server (`DATABASE_URL`), where it creates and drops a database
/// of its own: the harness's server, i.e. the test environment's `DATABASE_URL` server, or the
/// harness's throwaway cluster when none answers there.
#[tokio::test(flavor = "multi_thread")]
async fn demo_on_the_database_url_server_cleans_up_on_ctrl_c() -> Result<()> {
    let db = flagpost_harness::TestDatabase::create().await?;
    run_demo(Some(db.url())).await
}

/// The demo without `DATABASE_URL`: it starts (and removes) its own PostgreSQL cluster.
#[tokio::test(flavor = "multi_thread")]
async fn demo_with_its_own_postgres_cleans_up_on_ctrl_c() -> Result<()> {
    run_demo(None).await
}

/// Every `FLAGPOST_*` variable the binary reads (its `--help` lists them) and every one of
/// contract §4 is in the README's configuration table.
#[tokio::test]
async fn readme_documents_every_configuration_variable() -> Result<()> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    let start = readme
        .find("## Configuration")
        .context("README has a Configuration section")?;
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let out = crate::run_flagpost(&["serve", "--help"], &[]).await?;
    let help = String::from_utf8_lossy(&out.stdout);
    let mut vars: BTreeSet<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("FLAGPOST_") && w.len() > "FLAGPOST_".len())
        .map(str::to_owned)
        .collect();
    ensure!(vars.len() > 20, "too few variables in --help:\n{help}");
    // Contract §4, by name.
    for v in [
        "FLAGPOST_DATABASE_URL",
        "DATABASE_URL",
        "FLAGPOST_IMAP_HOST",
        "FLAGPOST_IMAP_PORT",
        "FLAGPOST_IMAP_TLS",
        "FLAGPOST_IMAP_ALLOW_PLAINTEXT",
        "FLAGPOST_IMAP_CA_FILE",
        "FLAGPOST_IMAP_USER",
        "FLAGPOST_IMAP_PASSWORD",
        "FLAGPOST_IMAP_PASSWORD_FILE",
        "FLAGPOST_FOLDERS",
        "FLAGPOST_LISTEN",
        "FLAGPOST_JWT_SECRET",
        "FLAGPOST_JWT_SECRET_FILE",
        "FLAGPOST_ADMINS",
        "FLAGPOST_ACL_POLL_SECS",
        "FLAGPOST_FOLDER_POLL_SECS",
        "FLAGPOST_IMAP_MAX_CONNECTIONS",
        "FLAGPOST_WEBHOOK_ALLOW_PRIVATE",
        "FLAGPOST_WEBHOOK_TIMEOUT_SECS",
        "FLAGPOST_LOG",
        "FLAGPOST_LOG_FORMAT",
    ] {
        vars.insert(v.to_owned());
    }
    let missing: Vec<&String> = vars
        .iter()
        .filter(|v| !section.contains(&format!("`{v}`")))
        .collect();
    ensure!(
        missing.is_empty(),
        "README's configuration section lacks {missing:?}"
    );
    Ok(())
}

/// Output of a child process, collected line by line.
type Collected = Arc<Mutex<String>>;

fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Collected {
    let sink = Collected::default();
    let out = sink.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut s = out.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    sink
}

async fn run_demo(database_url: Option<String>) -> Result<()> {
    // A harness folder of its own, so that everything the demo creates can be seen to go. It
    // must be traversable by the `dovecot` and `postgres` users, like /tmp.
    let work = std::env::temp_dir().join(format!(
        "flagpost-demo-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&work)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    }
    let harness_dir = work.join("harness");
    let result = demo_scenario(database_url, &harness_dir).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn demo_scenario(database_url: Option<String>, harness_dir: &Path) -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    // README: `flagpost demo` (there through `cargo run --release -p flagpost -- demo`).
    let mut cmd = tokio::process::Command::new(crate::flagpost_bin());
    cmd.arg("demo").env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("FLAGPOST_LISTEN", addr.to_string())
        .env("FLAGPOST_HARNESS_DIR", harness_dir);
    if let Some(url) = &database_url {
        cmd.env("DATABASE_URL", url);
    }
    // Its own process group, so that the test can send SIGINT to the group as a terminal's
    // Ctrl-C does.
    cmd.process_group(0);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = child.id().context("demo pid")?;
    let stdout = collect(child.stdout.take().expect("piped"));
    let stderr = collect(child.stderr.take().expect("piped"));
    let output = || {
        format!(
            "\n--- demo stdout:\n{}\n--- demo stderr:\n{}",
            stdout.lock().unwrap(),
            stderr.lock().unwrap()
        )
    };

    let api = Api::new(addr);
    // The dashboard answers.
    flagpost_e2e::eventually(Duration::from_secs(120), "the dashboard", || async {
        if let Ok(Some(status)) = child_status(pid) {
            bail!("the demo exited early ({status})");
        }
        let Ok(r) = api.send("GET", "/", None, None, &[]).await else {
            return Ok(None);
        };
        Ok((r.status == 200
            && r.header("content-type")
                .is_some_and(|c| c.starts_with("text/html")))
        .then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}{}", output()))?;
    let ready_after = started.elapsed();

    // The logins the demo prints work, with the rights it prints.
    let banner = stdout.lock().unwrap().clone();
    ensure!(
        banner.contains(&format!("http://{addr}")),
        "the banner names the dashboard{}",
        output()
    );
    for user in ["alice", "bob", "carol"] {
        ensure!(
            banner.contains(&format!("{user} / demo")),
            "the banner lists {user}{}",
            output()
        );
    }
    let alice = api
        .login("alice", "demo")
        .await
        .map_err(|e| anyhow::anyhow!("{e}{}", output()))?;
    let folders =
        flagpost_e2e::eventually(Duration::from_secs(60), "three live folders", || async {
            let r = api.get("/api/v1/folders", &alice).await?;
            let folders = r.json["folders"].as_array().cloned().unwrap_or_default();
            let live = folders.len() == 3
                && folders
                    .iter()
                    .all(|f| f["sync"]["state"].as_str() == Some("live"));
            Ok(live.then_some(folders))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}{}", output()))?;
    let names: BTreeSet<&str> = folders.iter().filter_map(|f| f["name"].as_str()).collect();
    ensure!(
        names
            == BTreeSet::from([
                "shared/support/Billing",
                "shared/support/Partners",
                "shared/support/Queue"
            ]),
        "{names:?}"
    );
    let counts = |key: &str| -> i64 {
        folders
            .iter()
            .map(|f| f["counts"][key].as_i64().unwrap_or(0))
            .sum()
    };
    ensure!(
        counts("total") >= 300,
        "about 300 seeded messages: {folders:?}"
    );
    ensure!(
        counts("pending") > 10 && counts("answered") > 100 && counts("flagged") > 3,
        "a believable mix of states: {folders:?}"
    );
    ensure!(
        folders
            .iter()
            .all(|f| f["my_rights"].as_str() == Some("lrsw")),
        "alice may write: {folders:?}"
    );
    let bob = api.login("bob", "demo").await?;
    let r = api.get("/api/v1/folders", &bob).await?;
    let bob_folders: Vec<(&str, &str)> = r.json["folders"]
        .as_array()
        .context("folders")?
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or(""),
                f["my_rights"].as_str().unwrap_or(""),
            )
        })
        .collect();
    ensure!(
        bob_folders.len() == 2
            && bob_folders
                .iter()
                .all(|(n, r)| *r == "lr" && !n.contains("Partners")),
        "bob reads Queue and Billing only: {bob_folders:?}"
    );
    let carol = api.login("carol", "demo").await?;
    let me = api.get("/api/v1/me", &carol).await?;
    ensure!(
        me.json["admin"] == Value::Bool(true),
        "carol is an admin: {}",
        me.text
    );

    // The simulated activity changes a message within 30 s.
    let mut after = 0i64;
    loop {
        let r = api
            .get(&format!("/api/v1/events?after={after}&limit=1000"), &alice)
            .await?;
        let events = r.json["events"].as_array().cloned().unwrap_or_default();
        after = r.json["next_after"].as_i64().unwrap_or(after);
        if events.is_empty() {
            break;
        }
    }
    let watch_from = Instant::now();
    let change = flagpost_e2e::eventually(
        Duration::from_secs(30),
        "the simulated activity to change a message",
        || async {
            let r = api
                .get(&format!("/api/v1/events?after={after}&limit=100"), &alice)
                .await?;
            Ok(r.json["events"].as_array().and_then(|events| {
                events
                    .iter()
                    .find(|e| {
                        matches!(
                            e["type"].as_str(),
                            Some("message.added" | "message.updated")
                        )
                    })
                    .cloned()
            }))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}{}", output()))?;
    let changed_after = watch_from.elapsed();
    let message_id = change["message_id"].as_str().context("message_id")?;
    let r = api
        .get(&format!("/api/v1/messages/{message_id}"), &alice)
        .await?;
    ensure!(r.status == 200, "the changed message reads: {}", r.text);

    // Everything the demo started, by process tree (Dovecot's children do not name its folder).
    let tree = descendants(pid);
    let commands: BTreeSet<String> = tree.values().map(|(_, comm)| comm.clone()).collect();
    ensure!(
        commands.contains("dovecot"),
        "the demo's Dovecot is among its processes: {commands:?}"
    );
    if database_url.is_none() {
        ensure!(
            commands.contains("postgres"),
            "the demo's PostgreSQL is among its processes: {commands:?}"
        );
    }
    ensure!(
        harness_dir.is_dir(),
        "the demo works in {}",
        harness_dir.display()
    );
    let database = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("Database"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|url| url.rsplit('/').next())
        .map(str::to_owned)
        .context("the banner names the database")?;

    // Ctrl-C: SIGINT to the foreground process group.
    let stop = Instant::now();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .map_err(|_| anyhow::anyhow!("the demo did not stop within 60 s{}", output()))??;
    let stopped_after = stop.elapsed();
    ensure!(status.success(), "demo exit status {status}{}", output());
    // Its output ends once the process is gone; the readers may still be catching up.
    flagpost_e2e::eventually(
        Duration::from_secs(5),
        "the demo saying it stopped",
        || async {
            Ok(stdout
                .lock()
                .unwrap()
                .contains("Demo stopped")
                .then_some(()))
        },
    )
    .await
    .with_context(output)?;

    // Nothing is left: no process of its tree, nothing naming its folder, no folder.
    let left = flagpost_e2e::eventually(
        Duration::from_secs(10),
        "the demo's processes to end",
        || async {
            let alive: Vec<String> = tree
                .iter()
                .filter(|(p, (start, _))| process_start(**p).as_ref() == Some(start))
                .map(|(p, (_, comm))| format!("{p} {comm}"))
                .chain(processes_naming(harness_dir))
                .collect();
            Ok(alive.is_empty().then_some(()))
        },
    )
    .await;
    ensure!(
        left.is_ok(),
        "processes left behind: {:?} {:?}",
        tree.iter()
            .filter(|(p, (start, _))| process_start(**p).as_ref() == Some(start))
            .collect::<Vec<_>>(),
        processes_naming(harness_dir)
    );
    ensure!(
        !harness_dir.exists(),
        "the demo left {} behind: {:?}",
        harness_dir.display(),
        std::fs::read_dir(harness_dir).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    if let Some(url) = &database_url {
        use sqlx::{ConnectOptions, Connection};
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let mut conn = options.connect().await?;
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(&database)
            .fetch_one(&mut conn)
            .await?;
        conn.close().await.ok();
        ensure!(n == 0, "the demo's database {database} is still there");
        ensure!(database.starts_with("flagpost_demo_"), "{database}");
    }
    eprintln!(
        "demo ({}): dashboard after {ready_after:?}, a simulated change seen after {changed_after:?}, stopped in {stopped_after:?}, {} processes checked",
        if database_url.is_some() {
            "DATABASE_URL server"
        } else {
            "own cluster"
        },
        tree.len()
    );
    Ok(())
}

/// `Some(state)` once the process `pid` is a zombie or gone (without reaping it).
fn child_status(pid: u32) -> Result<Option<String>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => Ok(Some("gone".into())),
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            Ok((state == "Z").then(|| "exited".to_owned()))
        }
    }
}

/// (parent pid, start time, command name) of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, u64, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let (head, rest) = text.rsplit_once(')')?;
    let comm = head[open + 1..].to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // after the comm: state (3), ppid (4), …, starttime (22)
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start, comm))
}

fn process_start(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start, _)| start)
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process below `root`: pid → (start time, command name).
fn descendants(root: u32) -> BTreeMap<u32, (u64, String)> {
    let table: Vec<(u32, u32, u64, String)> = all_pids()
        .into_iter()
        .filter_map(|p| stat(p).map(|(ppid, start, comm)| (p, ppid, start, comm)))
        .collect();
    let mut found = BTreeMap::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (p, ppid, start, comm) in &table {
            if *ppid == parent && !found.contains_key(p) {
                found.insert(*p, (*start, comm.clone()));
                frontier.push(*p);
            }
        }
    }
    found
}

/// Processes whose command line or working folder names `dir`.
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    all_pids()
        .into_iter()
        .filter_map(|p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cwd: Option<PathBuf> = std::fs::read_link(format!("/proc/{p}/cwd")).ok();
            (cmdline.contains(&needle) || cwd.is_some_and(|c| c.starts_with(dir)))
                .then(|| format!("{p} {cmdline}"))
        })
        .collect()
}

fn rand_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}
