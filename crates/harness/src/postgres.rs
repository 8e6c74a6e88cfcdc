//! A fresh PostgreSQL database per test.
//!
//! The server is the one named by `FLAGPOST_TEST_DATABASE_URL` or `DATABASE_URL` when one answers
//! there; otherwise a throwaway cluster is created with the installed `initdb` and started with
//! `postgres` in a folder under [`crate::harness_root`], once per test process, and stopped when
//! that process exits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::unistd::{Uid, User};
use sqlx::{ConnectOptions, Connection, Executor, postgres::PgConnectOptions};
use tokio::sync::OnceCell;

use crate::process::{Supervised, Supervision, find_program};

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres) were not found and no server answers at \
     DATABASE_URL: install them with `sudo apt-get install -y postgresql`, or set DATABASE_URL to a server you can use";

/// The server the harness creates test databases on.
#[derive(Debug)]
struct Server {
    /// Admin URL (a database that always exists, e.g. `postgres`).
    admin: PgConnectOptions,
    /// Set when the harness started this server itself.
    _cluster: Option<Cluster>,
}

static SERVER: OnceCell<Arc<Server>> = OnceCell::const_new();

/// One fresh, empty database. Dropping it drops the database.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    options: PgConnectOptions,
    server: Arc<Server>,
}

impl TestDatabase {
    /// Creates a new, empty database with a unique name.
    pub async fn create() -> Result<TestDatabase> {
        let server = SERVER.get_or_try_init(find_or_start_server).await?.clone();
        let name = format!("flagpost_test_{}", crate::random_suffix());
        let mut conn = server.admin.connect().await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
        conn.close().await.ok();
        let options = server.admin.clone().database(&name);
        Ok(TestDatabase {
            name,
            options,
            server,
        })
    }

    /// A URL for this database (also for child processes such as `flagpost`).
    pub fn url(&self) -> String {
        options_to_url(&self.options)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for this database.
    pub fn options(&self) -> PgConnectOptions {
        self.options.clone()
    }

    /// Whether the harness started its own throwaway cluster for this process.
    pub fn on_throwaway_cluster(&self) -> bool {
        self.server._cluster.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.server.admin.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime that is shutting down: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = admin.connect().await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

fn options_to_url(o: &PgConnectOptions) -> String {
    let mut url = url::Url::parse("postgres://localhost").expect("static url");
    url.set_host(Some(o.get_host())).ok();
    url.set_port(Some(o.get_port())).ok();
    url.set_username(o.get_username()).ok();
    if let Some(db) = o.get_database() {
        url.set_path(db);
    }
    url.to_string()
}

async fn find_or_start_server() -> Result<Arc<Server>> {
    for var in ["FLAGPOST_TEST_DATABASE_URL", "DATABASE_URL"] {
        let Ok(url) = std::env::var(var) else {
            continue;
        };
        let options: PgConnectOptions = url
            .parse()
            .with_context(|| format!("{var} is not a PostgreSQL URL"))?;
        let admin = options.clone();
        match tokio::time::timeout(Duration::from_secs(5), admin.connect()).await {
            Ok(Ok(conn)) => {
                conn.close().await.ok();
                return Ok(Arc::new(Server {
                    admin,
                    _cluster: None,
                }));
            }
            Ok(Err(e)) => {
                tracing::warn!("no PostgreSQL answers at {var} ({e}); starting a throwaway cluster")
            }
            Err(_) => tracing::warn!(
                "PostgreSQL at {var} did not answer in 5 s; starting a throwaway cluster"
            ),
        }
        break;
    }
    let cluster = Cluster::start().await?;
    let admin = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(cluster.port)
        .username(&cluster.superuser)
        .database("postgres");
    Ok(Arc::new(Server {
        admin,
        _cluster: Some(cluster),
    }))
}

/// A throwaway PostgreSQL cluster (initdb + postgres) in its own folder.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    superuser: String,
    server: Option<Supervised>,
}

impl Cluster {
    /// Runs `initdb` into a new folder and starts `postgres` on a free loopback port.
    ///
    /// PostgreSQL refuses to run as root; as root the cluster is created and run as the
    /// `postgres` system user that Debian's package creates.
    pub async fn start() -> Result<Cluster> {
        let bin_dirs = postgres_bin_dirs();
        let initdb = find_program("initdb", &bin_dirs).ok_or_else(|| anyhow!(INSTALL_HINT))?;
        let postgres = find_program("postgres", &bin_dirs).ok_or_else(|| anyhow!(INSTALL_HINT))?;

        let root = crate::prepare_root()?;
        let dir = root.join(format!(
            "pg-{}-{}",
            std::process::id(),
            crate::random_suffix()
        ));
        std::fs::create_dir_all(&dir)?;

        let run_as = if Uid::effective().is_root() {
            let pg = User::from_name("postgres")?.ok_or_else(|| {
                anyhow!("running as root, but there is no `postgres` system user to run a throwaway cluster as; {INSTALL_HINT}")
            })?;
            std::os::unix::fs::chown(&dir, Some(pg.uid.as_raw()), Some(pg.gid.as_raw()))?;
            Some(pg.name)
        } else {
            None
        };
        let superuser = "flagpost".to_owned();
        let data = dir.join("data");
        let mut cmd = match &run_as {
            Some(user) => {
                let mut c = tokio::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&initdb);
                c
            }
            None => tokio::process::Command::new(&initdb),
        };
        let out = cmd
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                &superuser,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .await
            .context("running initdb")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }

        let mut last_err = None;
        for _ in 0..3 {
            let port = crate::free_port()?;
            let args: Vec<String> = [
                "-D",
                &data.to_string_lossy(),
                "-p",
                &port.to_string(),
                "-k",
                &dir.to_string_lossy(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let server = Supervised::spawn(
                &postgres,
                &args,
                &dir.join("postgres.log"),
                &Supervision {
                    stop_signal: "INT",
                    remove_dir: Some(dir.clone()),
                    run_as: run_as.clone(),
                },
                &[],
            )?;
            let options = PgConnectOptions::new()
                .host("127.0.0.1")
                .port(port)
                .username(&superuser)
                .database("postgres");
            let mut server = server;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(c) = options.connect().await {
                    c.close().await.ok();
                    return Ok(Cluster {
                        dir,
                        port,
                        superuser,
                        server: Some(server),
                    });
                }
                if server.has_exited() || Instant::now() > deadline {
                    server.stop(Duration::from_secs(10)).await.ok();
                    last_err = Some(anyhow!(
                        "postgres did not start on port {port}: {}",
                        std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        crate::remove_instance_dir(&dir);
        Err(last_err.unwrap_or_else(|| anyhow!("postgres did not start")))
    }

    /// The port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop_blocking(Duration::from_secs(30));
        }
        crate::remove_instance_dir(&self.dir);
    }
}

/// Where Debian and others put the server binaries (not on PATH on Debian).
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    // newest major version first
    dirs.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    dirs
}
