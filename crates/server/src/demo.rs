//! `flagpost demo` (contract §3): a self-contained demo on a private PostgreSQL and a private
//! Dovecot, started from the installed packages by the same harness the tests use.
//!
//! It seeds a support team — shared folders owned by `support`, about 300 messages over the last
//! two weeks, agents with different rights — serves the dashboard, and keeps the mailboxes
//! moving: a simulated customer writes in (APPEND as the mailbox's owner, as a delivery would)
//! and a simulated colleague answers or flags messages (UID STORE as `sam`), every few seconds,
//! over IMAP, so the live view changes the way it does in real use. SIGINT or SIGTERM stops
//! everything it started and removes its files; a second one exits at once (the harness's
//! supervisors still stop the servers).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use flagpost_harness::imap_client::quote;
use flagpost_harness::postgres::Cluster;
use flagpost_harness::{Dovecot, ImapFixture, ImapResponse};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::{ConnectOptions, Connection, Executor, postgres::PgConnectOptions};
use tokio::signal::unix::{SignalKind, signal as unix_signal};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Needs, RawConfig, redact_url};

/// The password of every demo login (printed; the demo listens on loopback by default).
const PASSWORD: &str = "demo";
/// The account that owns the shared folders.
const OWNER: &str = "support";
/// The service account Flagpost watches with.
const SERVICE: &str = "flagpost";
/// The simulated colleague.
const COLLEAGUE: &str = "sam";
/// The team lead, also Flagpost's service admin in the demo.
const LEAD: &str = "carol";
/// The shared folders (in the owner's mailbox) and how many messages each is seeded with.
const FOLDERS: [(&str, usize); 3] = [("Queue", 165), ("Billing", 80), ("Partners", 55)];
/// Which folder a simulated customer writes to, by weight (same order as [`FOLDERS`]).
const FOLDER_WEIGHTS: [u32; 3] = [60, 25, 15];

/// A demo login and its rights per folder (`None`: no entry, so the folder is invisible).
struct Person {
    user: &'static str,
    role: &'static str,
    rights: [Option<&'static str>; 3],
}

const PEOPLE: [Person; 4] = [
    Person {
        user: "alice",
        role: "agent: reads, answers and flags (l r s w) in Queue, Billing and Partners",
        rights: [Some("lrsw"), Some("lrsw"), Some("lrsw")],
    },
    Person {
        user: "bob",
        role: "read-only agent (l r) in Queue and Billing; Partners is hidden from him",
        rights: [Some("lr"), Some("lr"), None],
    },
    Person {
        user: LEAD,
        role: "team lead: l r s w a (ACLs) everywhere, and a Flagpost admin",
        rights: [Some("lrswa"), Some("lrswa"), Some("lrswa")],
    },
    Person {
        user: COLLEAGUE,
        role: "the simulated colleague (l r s w); you can log in as sam too",
        rights: [Some("lrsw"), Some("lrsw"), Some("lrsw")],
    },
];

/// Runs the demo until SIGINT/SIGTERM. `raw` is the configuration as given (the demo fills in
/// the database and IMAP settings); `given` is it validated, for the listen address and an
/// optional database server to use instead of a private one.
pub(crate) async fn run(raw: &RawConfig, given: &Config) -> Result<ExitCode> {
    let external_db = given.database_url.as_ref().map(|u| u.expose().to_owned());
    let missing = missing_packages(external_db.is_none());
    if !missing.is_empty() {
        eprintln!("error: {}", install_hint(&missing, is_root()));
        return Ok(ExitCode::FAILURE);
    }

    let shutdown = CancellationToken::new();
    // One listener per signal for the whole run, so that each delivery is seen exactly once.
    let mut interrupt = unix_signal(SignalKind::interrupt())?;
    let mut terminate = unix_signal(SignalKind::terminate())?;
    let signals = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            eprintln!("flagpost demo: stopping, and removing its servers and data…");
            shutdown.cancel();
            // A signal sent twice at once (to a process and its group, as `timeout` does) is
            // one request; a later one means "now".
            let first = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                if first.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            eprintln!(
                "flagpost demo: interrupted again, exiting now (the servers stop by themselves)"
            );
            std::process::exit(130);
        }
    });

    // Fail fast on a busy port, before anything is started.
    let listener = match tokio::net::TcpListener::bind(given.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {} ({e}); set FLAGPOST_LISTEN to a free address, e.g. FLAGPOST_LISTEN=127.0.0.1:8081 flagpost demo",
                given.listen
            );
            signals.abort();
            return Ok(ExitCode::FAILURE);
        }
    };
    let root = flagpost_harness::harness_root();
    let root_existed = root.exists();

    println!("Starting the Flagpost demo: a private PostgreSQL and Dovecot, and a support team…");
    // A signal during start-up lets it finish (a few seconds) and then removes it all: a start
    // cut short could leave an `initdb` running and its folder behind.
    let setup = Servers::start(raw, external_db.as_deref());
    tokio::pin!(setup);
    let started = tokio::select! {
        r = &mut setup => r,
        _ = shutdown.cancelled() => {
            println!("Finishing the start-up, to remove it cleanly…");
            setup.await
        }
    };
    let servers = match started {
        Ok(s) => s,
        Err(e) => {
            remove_root_if_ours(&root, root_existed);
            signals.abort();
            return Err(e);
        }
    };
    if shutdown.is_cancelled() {
        let database = servers.database_label();
        servers.stop().await;
        remove_root_if_ours(&root, root_existed);
        signals.abort();
        println!(
            "Demo stopped before it was ready: its Dovecot, its PostgreSQL {database} and all its files are removed."
        );
        return Ok(ExitCode::SUCCESS);
    }

    let config = servers.config.clone();
    let pool = servers.pool.clone();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { crate::serve_on(&config, pool, listener, shutdown).await }
    });
    servers.print_banner(given.listen);
    let simulator = tokio::spawn(
        Simulator::new(servers.dovecot.clone(), servers.threads.clone()).run(shutdown.clone()),
    );

    let served = server.await;
    // The server ends on shutdown, or early on an error: either way, stop the simulation too.
    shutdown.cancel();
    let _ = simulator.await;
    let database = servers.database_label();
    servers.stop().await;
    remove_root_if_ours(&root, root_existed);
    signals.abort();
    match served {
        Ok(Ok(())) => {
            println!(
                "Demo stopped: its Dovecot, its PostgreSQL {database} and all its files are removed."
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(anyhow!("the server task failed: {e}")),
    }
}

/// The harness folder is shared with the tests: remove it only when this demo created it and
/// nothing else lives in it now.
fn remove_root_if_ours(root: &std::path::Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir(root);
    }
}

/// Whether this process runs as root (then the install command needs no `sudo`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The Debian packages whose programs the demo needs and cannot find.
fn missing_packages(need_postgres: bool) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !["dovecot", "doveadm"]
        .iter()
        .all(|p| find_program(p, &[]).is_some())
    {
        missing.push("dovecot-imapd");
    }
    if need_postgres {
        let dirs = postgres_bin_dirs();
        if !["initdb", "postgres"]
            .iter()
            .all(|p| find_program(p, &dirs).is_some())
        {
            missing.push("postgresql");
        }
    }
    missing
}

/// One line naming the exact command that installs `missing`.
fn install_hint(missing: &[&str], root: bool) -> String {
    let what = match (
        missing.contains(&"dovecot-imapd"),
        missing.contains(&"postgresql"),
    ) {
        (true, true) => "Dovecot and PostgreSQL are not installed",
        (true, false) => "Dovecot is not installed",
        _ => "PostgreSQL is not installed (or set DATABASE_URL to a server to use)",
    };
    format!(
        "flagpost demo needs them, but {what}: install with `{}apt-get install -y {}`",
        if root { "" } else { "sudo " },
        missing.join(" ")
    )
}

/// Where the harness looks for programs: `PATH`, `extra`, then `/usr/sbin` and `/sbin`.
fn find_program(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Debian keeps the PostgreSQL server binaries off `PATH`.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// The demo's database: a fresh one on a given server, or on a private cluster.
#[derive(Debug)]
enum Database {
    /// A private cluster (its only database is the demo's); dropping it stops and removes it.
    Private {
        cluster: Option<Cluster>,
        url: String,
    },
    /// A database created on the server named by `DATABASE_URL`; dropped on exit.
    OnServer {
        admin: Box<PgConnectOptions>,
        name: String,
        url: String,
        dropped: bool,
    },
}

impl Database {
    async fn start(external: Option<&str>) -> Result<Database> {
        match external {
            Some(url) => Self::on_server(url).await,
            None => {
                let cluster = Cluster::start().await?;
                // `Cluster::start` runs `initdb -U flagpost`: that is its superuser.
                let admin = PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(cluster.port())
                    .username("flagpost")
                    .database("postgres");
                let mut conn = admin.connect().await?;
                conn.execute("CREATE DATABASE flagpost").await?;
                conn.close().await.ok();
                Ok(Database::Private {
                    url: format!("postgres://flagpost@127.0.0.1:{}/flagpost", cluster.port()),
                    cluster: Some(cluster),
                })
            }
        }
    }

    async fn on_server(url: &str) -> Result<Database> {
        let admin: PgConnectOptions = url
            .parse()
            .context("FLAGPOST_DATABASE_URL / DATABASE_URL is not a PostgreSQL URL")?;
        let unreachable = |e: String| {
            anyhow!(
                "cannot connect to PostgreSQL at {} ({e}); unset FLAGPOST_DATABASE_URL and DATABASE_URL to let the demo start its own",
                redact_url(url)
            )
        };
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), admin.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("no answer in 10 s".into())),
        };
        let name = format!("flagpost_demo_{}", random_word(10));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| {
                format!(
                    "creating the demo's database {name} on {} (the user needs CREATEDB)",
                    redact_url(url)
                )
            })?;
        conn.close().await.ok();
        let mut u = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
        u.set_path(&format!("/{name}"));
        Ok(Database::OnServer {
            admin: Box::new(admin),
            name,
            url: u.to_string(),
            dropped: false,
        })
    }

    fn url(&self) -> &str {
        match self {
            Database::Private { url, .. } | Database::OnServer { url, .. } => url,
        }
    }

    fn label(&self) -> String {
        match self {
            Database::Private { .. } => "cluster".to_owned(),
            Database::OnServer { name, .. } => format!("database {name}"),
        }
    }

    /// Stops the private cluster or drops the database (blocking; also run by `Drop`).
    fn remove(&mut self) {
        match self {
            Database::Private { cluster, .. } => drop(cluster.take()),
            Database::OnServer {
                admin,
                name,
                dropped,
                ..
            } => {
                if *dropped {
                    return;
                }
                *dropped = true;
                let admin = (**admin).clone();
                let name = name.clone();
                // Drop may run inside the runtime: use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut conn = admin.connect().await.ok()?;
                        conn.execute(
                            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                        )
                        .await
                        .ok()?;
                        conn.close().await.ok()
                    })
                })
                .join();
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Everything the demo started.
struct Servers {
    // Field order is drop order: the pool before the database it uses.
    pool: flagpost_store::PgPool,
    config: Config,
    dovecot: Arc<Dovecot>,
    database: Database,
    threads: Vec<Thread>,
    seeded: usize,
}

impl Servers {
    async fn start(raw: &RawConfig, external_db: Option<&str>) -> Result<Servers> {
        // Both at once: each takes a second or two.
        let (database, dovecot) = tokio::join!(Database::start(external_db), Dovecot::start());
        let database = database?;
        let dovecot = dovecot?;

        let service_password = random_word(24);
        dovecot.add_user(OWNER, PASSWORD)?;
        dovecot.add_user(SERVICE, &service_password)?;
        for p in &PEOPLE[..PEOPLE.len() - 1] {
            dovecot.add_user(p.user, PASSWORD)?;
        }
        // Dovecot re-reads the passwd file at most once a second: wait until it has.
        dovecot
            .add_user_ready(PEOPLE[PEOPLE.len() - 1].user, PASSWORD)
            .await?;

        let now = Utc::now();
        let mut rng = StdRng::seed_from_u64(0x5EED_F1A6);
        let mut threads = Vec::new();
        let mut seeded = 0;
        for (index, (folder, count)) in FOLDERS.iter().enumerate() {
            dovecot.create_folder(OWNER, folder).await?;
            let (messages, folder_threads) = seed_messages(&mut rng, index, *count, now);
            dovecot.seed_maildir(OWNER, folder, messages.len(), |i| {
                let m = &messages[i];
                (m.raw.clone(), m.date.into(), m.flags.clone())
            })?;
            seeded += messages.len();
            threads.extend(folder_threads);
            dovecot
                .set_acl(OWNER, folder, SERVICE, "lrswa")
                .await
                .context("setting the demo's ACLs")?;
            for p in &PEOPLE {
                if let Some(rights) = p.rights[index] {
                    dovecot.set_acl(OWNER, folder, p.user, rights).await?;
                }
            }
        }

        let config = demo_config(raw, database.url(), &dovecot, &service_password)?;
        let pool = crate::connect_db(&config).await?;
        flagpost_store::migrate(&pool)
            .await
            .context("applying migrations")?;
        Ok(Servers {
            pool,
            config,
            dovecot: Arc::new(dovecot),
            database,
            threads,
            seeded,
        })
    }

    fn database_label(&self) -> String {
        self.database.label()
    }

    fn print_banner(&self, listen: std::net::SocketAddr) {
        let host = if listen.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            match listen.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            }
        };
        let d = &self.dovecot;
        let mut out = String::new();
        out.push_str("\nFlagpost demo is running.\n\n");
        out.push_str(&format!("  Dashboard   http://{host}:{}\n", listen.port()));
        out.push_str("  Logins      (user / password)\n");
        for p in &PEOPLE {
            let login = format!("{} / {PASSWORD}", p.user);
            out.push_str(&format!("              {login:<16}{}\n", p.role));
        }
        out.push_str(&format!(
            "  Mailboxes   {} messages from the last two weeks in shared/{OWNER}/{{{}}}\n",
            self.seeded,
            FOLDERS.map(|(f, _)| f).join(",")
        ));
        out.push_str(&format!(
            "              owned by `{OWNER}` (password {PASSWORD}); Flagpost watches them as `{SERVICE}` (l r s w a)\n"
        ));
        out.push_str(&format!(
            "  IMAP        localhost:{} (TLS) or :{} (STARTTLS), CA certificate {}\n",
            d.imaps_port(),
            d.imap_port(),
            d.ca_file().display()
        ));
        out.push_str(
            "              a mail client logged in there changes the dashboard live, too\n",
        );
        out.push_str(&format!(
            "  Database    {} ({})\n",
            redact_url(self.database.url()),
            match self.database {
                Database::Private { .. } => "a private cluster, removed on exit",
                Database::OnServer { .. } => "dropped on exit",
            }
        ));
        out.push_str(&format!(
            "  Activity    every few seconds a customer writes in, or {COLLEAGUE} answers or flags a message\n"
        ));
        out.push_str(
            "\nPress Ctrl-C to stop the demo and remove everything it started.\n\nActivity:",
        );
        println!("{out}");
    }

    /// Stops Dovecot and removes the database (or the private cluster).
    async fn stop(self) {
        let Servers {
            pool,
            dovecot,
            mut database,
            ..
        } = self;
        pool.close().await;
        let dovecot = Arc::into_inner(dovecot);
        let _ = tokio::task::spawn_blocking(move || {
            drop(dovecot);
            database.remove();
        })
        .await;
    }
}

/// The configuration `serve` gets in the demo: what was given, with the demo's database,
/// Dovecot, service account and admin, and quick ACL and folder polls.
fn demo_config(
    raw: &RawConfig,
    database_url: &str,
    dovecot: &Dovecot,
    service_password: &str,
) -> Result<Config> {
    let mut raw = raw.clone();
    raw.database_url = Some(database_url.to_owned());
    raw.imap_host = Some("localhost".to_owned());
    raw.imap_port = Some(dovecot.imaps_port().to_string());
    raw.imap_tls = Some("implicit".to_owned());
    raw.imap_allow_plaintext = None;
    raw.imap_ca_file = Some(dovecot.ca_file().to_path_buf());
    raw.imap_user = Some(SERVICE.to_owned());
    raw.imap_password = Some(service_password.to_owned());
    raw.imap_password_file = None;
    raw.folders = Some(format!("shared/{OWNER}/*"));
    raw.admins = Some(LEAD.to_owned());
    raw.acl_poll_secs.get_or_insert_with(|| "5".to_owned());
    raw.folder_poll_secs.get_or_insert_with(|| "10".to_owned());
    Config::from_raw(
        &raw,
        None,
        Needs {
            database: true,
            imap: true,
        },
    )
    .map_err(|e| anyhow!("{e}"))
}

fn random_word(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Believable mail

/// Someone who writes to the team: display name, address, UTC offset in hours.
type Sender = (&'static str, &'static str, i32);

const CUSTOMERS: &[Sender] = &[
    ("Jürgen Müller", "j.mueller@brauhaus-mueller.example", 1),
    (
        "Amélie Laurent",
        "amelie.laurent@atelier-lumiere.example",
        1,
    ),
    ("Priya Raghunathan", "priya@kolam-analytics.example", 5),
    ("Daniel Kim", "dkim@harborview-dental.example", -8),
    ("Emily Carter", "emily.carter@carter-and-sons.example", 0),
    ("Mateus Oliveira", "mateus@padaria-central.example", -3),
    ("Fatima Al-Sayed", "fatima.alsayed@oasis-travel.example", 4),
    ("Olumide Adeyemi", "olu@lagos-freight.example", 1),
    ("Hana Nováková", "hana.novakova@pivovar-lipa.example", 1),
    ("Łukasz Wiśniewski", "lukasz@wisniewski-budowa.example", 1),
    ("Yuki Tanaka", "y.tanaka@sakura-design.example", 9),
    ("Björn Lindqvist", "bjorn@fjordkraft-kayak.example", 1),
    ("Siobhán O'Connor", "siobhan@clover-vets.example", 0),
    ("Marco Rossi", "marco.rossi@trattoria-da-marco.example", 1),
    ("Sofia Petrova", "s.petrova@nevsky-books.example", 3),
    ("Chen Wei", "chen.wei@jade-river-tea.example", 8),
    ("Zoë Adams", "zoe@brightside-yoga.example", -5),
    ("Tomás García", "tomas.garcia@ferreteria-garcia.example", 1),
    ("Aisha Bello", "aisha@bello-textiles.example", 1),
    ("Noah Schmidt", "noah.schmidt@schmidt-elektro.example", 1),
    ("Grace Liu", "grace.liu@maple-accounting.example", -5),
    ("Ingrid Johansen", "ingrid@nordlys-kafe.example", 1),
    ("Ahmed Hassan", "ahmed.hassan@nile-logistics.example", 2),
    ("Camille Dubois", "camille@fromagerie-dubois.example", 1),
    ("Raj Patel", "raj@patel-pharmacy.example", 0),
    ("Elena Popescu", "elena.popescu@carpati-tours.example", 2),
    ("Kwame Mensah", "kwame@gold-coast-solar.example", 0),
    ("Laura Bianchi", "laura.bianchi@studio-bianchi.example", 1),
    ("Sven Eriksson", "sven@eriksson-bygg.example", 1),
    ("Mei Ling Ong", "meiling@lion-city-florist.example", 8),
    ("Oliver Wright", "oliver.wright@wright-cycles.example", 0),
    ("Dmitri Volkov", "d.volkov@volga-print.example", 3),
    ("Nora Fischer", "nora.fischer@praxis-fischer.example", 1),
    ("Isabella Martínez", "isabella@casa-martinez.example", -6),
    ("Ben Cohen", "ben@cohen-legal.example", 2),
    ("Hiroshi Sato", "h.sato@sato-robotics.example", 9),
];

const PARTNERS: &[Sender] = &[
    (
        "Rachel Green",
        "rachel.green@cloudbridge-resellers.example",
        0,
    ),
    ("Stefan Becker", "s.becker@systemhaus-becker.example", 1),
    ("Anika Sharma", "anika@integrate-io.example", 5),
    ("Luc Moreau", "luc.moreau@partenaires-numeriques.example", 1),
    ("Carlos Mendes", "carlos@lusodigital.example", 0),
    ("Julia Nowak", "julia.nowak@baltic-it.example", 1),
    ("Kenji Watanabe", "k.watanabe@tokyo-systems.example", 9),
    ("Megan O'Brien", "megan@greenleaf-consulting.example", -5),
    ("Thabo Nkosi", "thabo@ubuntu-cloud-partners.example", 2),
    ("Eva Lindström", "eva@scandi-integrations.example", 1),
];

/// Subject lines per folder (`{n}` becomes a number).
const SUBJECTS: [&[&str]; 3] = [
    &[
        "Can't log in after password reset",
        "Export to CSV stops at 1,000 rows",
        "Two-factor codes are not arriving",
        "App crashes when I open an attachment",
        "How do I add a second administrator?",
        "Sync stuck at \"Connecting…\"",
        "Feature request: dark mode",
        "Error 502 when uploading large files",
        "Notifications arrive twice",
        "Bestellung #{n} ist nicht angekommen",
        "Problème de connexion depuis la mise à jour",
        "Ошибка при входе в аккаунт",
        "注文確認メールが届きません",
        "Calendar invites show the wrong time zone",
        "Account locked after too many attempts",
        "Import fails with \"invalid encoding\"",
        "URGENT: shop checkout is down",
        "Order #{n} arrived damaged",
        "Where can I download my data?",
        "Password reset link has expired",
        "Search does not find older tickets",
        "Mobile app shows a blank screen",
        "Cómo cambio el idioma de la cuenta?",
        "Printing labels cuts off the address",
        "Question about the new dashboard",
        "Dringend: Zugang für neue Mitarbeiterin",
        "Emails from your system land in spam",
        "Can we get a copy of our audit log?",
        "Slow loading since this morning",
        "Wrong delivery address on order #{n}",
        "Integration with our calendar stopped working",
        "Kan ikke logge inn på appen",
    ],
    &[
        "Invoice INV-{n} is missing our VAT number",
        "Refund for a duplicate charge",
        "Please change our billing address",
        "Upgrade to the annual plan",
        "Card declined, but the charge went through",
        "Rechnung für März fehlt",
        "Quote for 25 more seats",
        "Cancel our subscription at the end of the term",
        "Question about pro-rated charges",
        "Factura con datos incorrectos",
        "Payment reminder for INV-{n}, but we already paid",
        "Can we pay by bank transfer?",
        "Facture en double pour février",
        "Receipt needed for our expense report",
        "Discount for non-profits?",
        "Currency on our invoices is wrong",
        "URGENT: account suspended for non-payment",
        "Purchase order number on invoice INV-{n}",
    ],
    &[
        "Reseller agreement renewal for next year",
        "API rate limits for our integration",
        "Co-marketing webinar in spring",
        "White-label pricing",
        "Partner portal access for new staff",
        "Webhook signature does not match",
        "Referral commission statement Q{q}",
        "Certification training dates",
        "Intégration SSO pour nos clients",
        "Joint customer escalation: case {n}",
        "Sandbox environment for a new client",
        "Lead registration for a 300-seat deal",
        "パートナー契約の更新について",
        "Updated logo files for the partner page",
    ],
];

/// First paragraphs of a new request per folder.
const OPENINGS: [&[&str]; 3] = [
    &[
        "Since yesterday this keeps happening, and I have tried it on two different computers.",
        "I followed the steps in your help centre, but it still does not work for us.",
        "Three people in our office see the same thing, so I don't think it is my browser.",
        "This worked fine last week. Did something change on your side?",
        "Could you tell me what I am doing wrong? I have attached nothing yet but can send screenshots.",
        "We rely on this every morning, so a quick answer would be much appreciated.",
        "Is this a known problem, or something in our setup?",
    ],
    &[
        "Our accounting department asked me to sort this out before the end of the month.",
        "I have checked our bank statement twice and I am fairly sure about this.",
        "Please let me know what you need from us to fix it.",
        "We are happy customers, we just need the paperwork to be right.",
        "Could you send a corrected document to this address?",
    ],
    &[
        "As discussed on our last call, here is the follow-up.",
        "Our customers keep asking about this, so we would like to settle it soon.",
        "Please loop in whoever owns this on your side.",
        "We would like to plan this for the coming quarter.",
        "Let me know if a short call would be easier.",
    ],
];

/// Follow-ups from the same sender in a thread.
const FOLLOW_UPS: &[&str] = &[
    "Any news on this? We are still stuck.",
    "Thanks for the quick answer — that fixed it for one account, but not for the other.",
    "Just following up: the problem is back since this morning.",
    "Here is the screenshot you asked for (pasted below as text):\r\n\r\n  Error: request failed (code 0x80070005)",
    "Sorry, one more question about your last reply.",
    "Thank you! One last thing before we close this.",
    "My colleague sees the same thing now. Should we open a separate ticket?",
];

/// One seeded message.
struct Seeded {
    raw: Vec<u8>,
    date: DateTime<Utc>,
    flags: String,
}

/// A conversation the simulated customer may continue.
#[derive(Debug, Clone)]
struct Thread {
    folder: usize,
    subject: String,
    sender: Sender,
    references: Vec<String>,
    last_at: DateTime<Utc>,
}

fn senders(folder: usize) -> &'static [Sender] {
    if folder == 2 { PARTNERS } else { CUSTOMERS }
}

fn team_address(folder: usize) -> &'static str {
    match folder {
        0 => "\"Support\" <support@flagpost-demo.example>",
        1 => "\"Billing\" <billing@flagpost-demo.example>",
        _ => "\"Partner team\" <partners@flagpost-demo.example>",
    }
}

fn new_subject(rng: &mut impl Rng, folder: usize) -> String {
    let template = SUBJECTS[folder].choose(rng).copied().unwrap_or("Question");
    template
        .replace("{n}", &rng.random_range(10_000..99_999).to_string())
        .replace("{q}", &rng.random_range(1..=4).to_string())
}

fn first_name(sender: &Sender) -> &'static str {
    sender.0.split(' ').next().unwrap_or(sender.0)
}

fn new_body(rng: &mut impl Rng, folder: usize, sender: &Sender) -> String {
    let opening = OPENINGS[folder].choose(rng).copied().unwrap_or_default();
    let greeting = ["Hello", "Hi", "Good morning", "Dear team", "Hi there"]
        .choose(rng)
        .copied()
        .unwrap_or("Hello");
    format!(
        "{greeting},\r\n\r\n{opening}\r\n\r\nBest regards,\r\n{}\r\n",
        sender.0
    )
}

fn follow_up_body(rng: &mut impl Rng, sender: &Sender) -> String {
    let text = FOLLOW_UPS.choose(rng).copied().unwrap_or_default();
    format!(
        "Hi,\r\n\r\n{text}\r\n\r\nThanks,\r\n{}\r\n",
        first_name(sender)
    )
}

/// A random time in the last two weeks, mostly in working hours on working days.
fn random_time(rng: &mut impl Rng, now: DateTime<Utc>) -> DateTime<Utc> {
    loop {
        let day = rng.random_range(0..14i64);
        let date = (now - chrono::Duration::days(day)).date_naive();
        let weekend = matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        if weekend && rng.random_bool(0.7) {
            continue;
        }
        let hour = if rng.random_bool(0.9) {
            rng.random_range(7..19)
        } else {
            rng.random_range(0..24)
        };
        let t = date
            .and_hms_opt(hour, rng.random_range(0..60), rng.random_range(0..60))
            .map(|t| t.and_utc());
        if let Some(t) = t
            && t < now - chrono::Duration::minutes(10)
        {
            return t;
        }
    }
}

/// `count` messages for folder `folder`, in threads, sorted by date, with flags that look like
/// a team at work: older conversations answered, recent ones waiting, some flagged.
fn seed_messages(
    rng: &mut impl Rng,
    folder: usize,
    count: usize,
    now: DateTime<Utc>,
) -> (Vec<Seeded>, Vec<Thread>) {
    let mut messages = Vec::with_capacity(count);
    let mut threads = Vec::new();
    let mut thread_no = 0;
    while messages.len() < count {
        thread_no += 1;
        let sender = *senders(folder).choose(rng).expect("senders");
        let subject = new_subject(rng, folder);
        let length = match rng.random_range(0..100) {
            0..50 => 1,
            50..78 => 2,
            78..92 => 3,
            _ => 4,
        };
        let mut at = random_time(rng, now);
        let mut references: Vec<String> = Vec::new();
        for step in 0..length {
            if messages.len() >= count {
                break;
            }
            if step > 0 {
                at += chrono::Duration::minutes(rng.random_range(40..36 * 60));
                if at > now - chrono::Duration::minutes(5) {
                    break;
                }
            }
            let id = format!(
                "{}.{folder}.{thread_no}.{step}@{}",
                at.timestamp(),
                sender.1.split('@').nth(1).unwrap_or("example.com")
            );
            let (subj, body) = if step == 0 {
                (subject.clone(), new_body(rng, folder, &sender))
            } else {
                (format!("Re: {subject}"), follow_up_body(rng, &sender))
            };
            let raw = render_message(&sender, folder, &subj, at, &id, &references, &body);
            references.push(id);
            messages.push((raw, at, step));
        }
        // The last message of each conversation decides its state; earlier ones were answered.
        let Some(last_at) = messages.last().map(|m| m.1) else {
            continue;
        };
        threads.push(Thread {
            folder,
            subject: subject.clone(),
            sender,
            references,
            last_at,
        });
    }
    // Flags: a message followed by another of its thread was answered.
    let mut seeded: Vec<Seeded> = Vec::with_capacity(messages.len());
    for (i, (raw, date, step)) in messages.iter().enumerate() {
        let followed = messages.get(i + 1).is_some_and(|next| next.2 > *step);
        let age = now - *date;
        let p_answered = if followed {
            1.0
        } else if age > chrono::Duration::days(4) {
            0.93
        } else if age > chrono::Duration::days(2) {
            0.8
        } else if age > chrono::Duration::days(1) {
            0.55
        } else if age > chrono::Duration::hours(6) {
            0.35
        } else {
            0.15
        };
        let answered = rng.random_bool(p_answered);
        let urgent = {
            let head = String::from_utf8_lossy(&raw[..raw.len().min(400)]).to_ascii_lowercase();
            head.contains("urgent") || head.contains("dringend")
        };
        let flagged = rng.random_bool(match (answered, urgent) {
            (_, true) => 0.7,
            (false, false) => 0.12,
            (true, false) => 0.03,
        });
        let seen = answered || rng.random_bool(0.35);
        let mut flags = String::new();
        if flagged {
            flags.push('F');
        }
        if answered {
            flags.push('R');
        }
        if seen {
            flags.push('S');
        }
        seeded.push(Seeded {
            raw: raw.clone(),
            date: *date,
            flags,
        });
    }
    seeded.sort_by_key(|m| m.date);
    threads.retain(|t| now - t.last_at < chrono::Duration::days(4));
    (seeded, threads)
}

/// An RFC 5322 message from `sender` to the team's address of `folder`.
fn render_message(
    sender: &Sender,
    folder: usize,
    subject: &str,
    at: DateTime<Utc>,
    message_id: &str,
    references: &[String],
    body: &str,
) -> Vec<u8> {
    let offset = FixedOffset::east_opt(sender.2 * 3600)
        .unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
    let local = at.with_timezone(&offset);
    let mut m = String::new();
    m.push_str(&format!(
        "From: {} <{}>\r\n",
        encode_display_name(sender.0),
        sender.1
    ));
    m.push_str(&format!("To: {}\r\n", team_address(folder)));
    m.push_str(&format!("Subject: {}\r\n", encode_header_text(subject)));
    m.push_str(&format!("Date: {}\r\n", local.to_rfc2822()));
    m.push_str(&format!("Message-ID: <{message_id}>\r\n"));
    if let Some(last) = references.last() {
        m.push_str(&format!("In-Reply-To: <{last}>\r\n"));
        let refs: Vec<String> = references.iter().map(|r| format!("<{r}>")).collect();
        m.push_str(&format!("References: {}\r\n", refs.join("\r\n ")));
    }
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n");
    m.push_str(&format!(
        "X-Mailer: {}\r\n",
        [
            "Thunderbird 128.4",
            "Apple Mail (2.3776)",
            "Microsoft Outlook 16.0",
            "K-9 Mail"
        ][(local.second() % 4) as usize]
    ));
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

/// A display name as a quoted string, or as RFC 2047 encoded words when it is not ASCII.
fn encode_display_name(name: &str) -> String {
    if name.is_ascii() {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        encode_header_text(name)
    }
}

/// Header text as is when ASCII, else as RFC 2047 encoded words: `Q` for mostly-Latin text,
/// `B` for other scripts (as mail clients do), each word at most 75 characters.
fn encode_header_text(text: &str) -> String {
    use base64::Engine;
    if text.is_ascii() {
        return text.to_owned();
    }
    let latin = text.chars().all(|c| (c as u32) < 0x0800);
    let mut words: Vec<String> = Vec::new();
    let mut chunk = String::new();
    let flush = |chunk: &mut String, words: &mut Vec<String>| {
        if chunk.is_empty() {
            return;
        }
        words.push(if latin {
            format!("=?UTF-8?Q?{}?=", q_encode(chunk))
        } else {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(chunk.as_bytes())
            )
        });
        chunk.clear();
    };
    for c in text.chars() {
        let mut candidate = chunk.clone();
        candidate.push(c);
        let encoded_len = if latin {
            q_encode(&candidate).len()
        } else {
            candidate.len().div_ceil(3) * 4
        };
        if encoded_len > 60 {
            flush(&mut chunk, &mut words);
        }
        chunk.push(c);
    }
    flush(&mut chunk, &mut words);
    words.join("\r\n ")
}

fn q_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b' ' => out.push('_'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The simulation

/// The customer and the colleague, acting over IMAP every few seconds.
struct Simulator {
    dovecot: Arc<Dovecot>,
    rng: StdRng,
    threads: Vec<Thread>,
    sent: u64,
}

impl Simulator {
    fn new(dovecot: Arc<Dovecot>, threads: Vec<Thread>) -> Simulator {
        Simulator {
            dovecot,
            rng: StdRng::from_os_rng(),
            threads,
            sent: 0,
        }
    }

    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let pause = Duration::from_millis(self.rng.random_range(2_000..5_000));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let step = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.step() => r,
            };
            match step {
                Ok(line) => {
                    // Not println!: a closed stdout (`flagpost demo | head`) must not end the
                    // simulation with a panic.
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stdout(),
                        "  {}  {line}",
                        chrono::Local::now().format("%H:%M:%S")
                    );
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "demo activity failed"),
            }
        }
    }

    /// One action: 40 % a customer writes, 40 % the colleague answers, 20 % they flag.
    async fn step(&mut self) -> Result<String> {
        let roll = self.rng.random_range(0..100);
        if roll < 40 {
            return self.customer_writes().await;
        }
        let folder = self.pick_folder();
        let done = if roll < 80 {
            self.colleague_answers(folder).await?
        } else {
            self.colleague_flags(folder).await?
        };
        match done {
            Some(line) => Ok(line),
            // Nothing to answer or flag there: a customer writes instead.
            None => self.customer_writes().await,
        }
    }

    fn pick_folder(&mut self) -> usize {
        let total: u32 = FOLDER_WEIGHTS.iter().sum();
        let mut n = self.rng.random_range(0..total);
        for (i, w) in FOLDER_WEIGHTS.iter().enumerate() {
            if n < *w {
                return i;
            }
            n -= w;
        }
        0
    }

    async fn customer_writes(&mut self) -> Result<String> {
        let folder = self.pick_folder();
        let now = Utc::now();
        self.sent += 1;
        let candidates: Vec<usize> = (0..self.threads.len())
            .filter(|i| self.threads[*i].folder == folder)
            .collect();
        let follow_up = !candidates.is_empty() && self.rng.random_bool(0.3);
        let (sender, subject, references, body) = if follow_up {
            let i = *candidates.choose(&mut self.rng).expect("candidates");
            let t = &self.threads[i];
            let body = follow_up_body(&mut self.rng, &t.sender);
            (
                t.sender,
                format!("Re: {}", t.subject),
                t.references.clone(),
                body,
            )
        } else {
            let sender = *senders(folder).choose(&mut self.rng).expect("senders");
            let subject = new_subject(&mut self.rng, folder);
            let body = new_body(&mut self.rng, folder, &sender);
            (sender, subject, Vec::new(), body)
        };
        let id = format!(
            "{}.live{}.{}@{}",
            now.timestamp(),
            self.sent,
            random_word(6),
            sender.1.split('@').nth(1).unwrap_or("example.com")
        );
        let raw = render_message(&sender, folder, &subject, now, &id, &references, &body);
        let name = FOLDERS[folder].0;
        // Mail arrives in the owner's folder, as a delivery agent would put it there.
        self.dovecot
            .append_with_flags(OWNER, name, "", &raw)
            .await
            .with_context(|| format!("appending to {name}"))?;
        let base = subject.trim_start_matches("Re: ").to_owned();
        let mut references = references;
        references.push(id);
        match self
            .threads
            .iter_mut()
            .find(|t| t.folder == folder && t.subject == base && t.sender.1 == sender.1)
        {
            Some(t) => {
                t.references = references;
                t.last_at = now;
            }
            None => self.threads.push(Thread {
                folder,
                subject: base,
                sender,
                references,
                last_at: now,
            }),
        }
        Ok(activity(folder, "new mail", sender.0, &subject))
    }

    /// The colleague answers one of the oldest waiting messages of `folder`.
    async fn colleague_answers(&mut self, folder: usize) -> Result<Option<String>> {
        let mut c = self.colleague_session(folder).await?;
        let mut waiting = search(&mut c, "UNANSWERED UNDELETED").await?;
        waiting.sort_unstable();
        waiting.truncate(8);
        let Some(&uid) = waiting.choose(&mut self.rng) else {
            c.logout().await;
            return Ok(None);
        };
        c.command_ok(&format!("UID STORE {uid} +FLAGS (\\Answered \\Seen)"))
            .await?;
        let (subject, from) = subject_and_sender(&mut c, uid).await?;
        c.logout().await;
        Ok(Some(activity(
            folder,
            &format!("{COLLEAGUE} answered"),
            &from,
            &subject,
        )))
    }

    /// The colleague flags a waiting message (or, now and then, clears a flag).
    async fn colleague_flags(&mut self, folder: usize) -> Result<Option<String>> {
        let mut c = self.colleague_session(folder).await?;
        let unflag = self.rng.random_bool(0.35);
        let (criteria, change, verb) = if unflag {
            ("FLAGGED UNDELETED", "-FLAGS (\\Flagged)", "unflagged")
        } else {
            (
                "UNANSWERED UNFLAGGED UNDELETED",
                "+FLAGS (\\Flagged)",
                "flagged",
            )
        };
        let uids = search(&mut c, criteria).await?;
        let Some(&uid) = uids.choose(&mut self.rng) else {
            c.logout().await;
            return Ok(None);
        };
        c.command_ok(&format!("UID STORE {uid} {change}")).await?;
        let (subject, from) = subject_and_sender(&mut c, uid).await?;
        c.logout().await;
        Ok(Some(activity(
            folder,
            &format!("{COLLEAGUE} {verb}"),
            &from,
            &subject,
        )))
    }

    async fn colleague_session(&self, folder: usize) -> Result<flagpost_harness::ImapClient> {
        let mut c = self.dovecot.client(COLLEAGUE).await?;
        let mailbox = format!("shared/{OWNER}/{}", FOLDERS[folder].0);
        c.command_ok(&format!(
            "SELECT {}",
            quote(&flagpost_domain::encode_mailbox_name(&mailbox))?
        ))
        .await?;
        Ok(c)
    }
}

/// One line of the activity log: folder, what happened, sender and subject.
fn activity(folder: usize, what: &str, from: &str, subject: &str) -> String {
    format!(
        "{:<8}  {what:<13}  {from}: \"{subject}\"",
        FOLDERS[folder].0
    )
}

async fn search(c: &mut flagpost_harness::ImapClient, criteria: &str) -> Result<Vec<u32>> {
    let r: ImapResponse = c.command_ok(&format!("UID SEARCH {criteria}")).await?;
    Ok(r.lines_of("SEARCH")
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.parse().ok())
        .collect())
}

/// The decoded subject and the sender's display name of `uid`.
async fn subject_and_sender(
    c: &mut flagpost_harness::ImapClient,
    uid: u32,
) -> Result<(String, String)> {
    let r = c
        .command_ok(&format!(
            "UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])"
        ))
        .await?;
    let text = r
        .untagged
        .iter()
        .find(|l| l.contains(" FETCH "))
        .ok_or_else(|| anyhow!("no FETCH data for UID {uid}"))?;
    let subject = header_value(text, "subject")
        .map(|s| flagpost_domain::envelope::decode_header_text(s.as_bytes()))
        .unwrap_or_default();
    let from = header_value(text, "from")
        .map(|s| flagpost_domain::envelope::decode_header_text(s.as_bytes()))
        .unwrap_or_default();
    let name = from
        .split('<')
        .next()
        .map(|n| n.trim().trim_matches('"').to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or(from);
    Ok((subject, name))
}

/// A header's (unfolded, still encoded) value in raw header text.
fn header_value(text: &str, name: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let key = format!("{name}:");
    let mut from = 0;
    while let Some(pos) = lower[from..].find(&key) {
        let at = from + pos;
        let starts_line = at == 0 || matches!(text.as_bytes()[at - 1], b'\n' | b'}');
        if starts_line {
            let mut value = String::new();
            let rest = &text[at + key.len()..];
            for (i, line) in rest.split("\r\n").enumerate() {
                if i > 0 && !line.starts_with([' ', '\t']) {
                    break;
                }
                value.push_str(line);
            }
            return Some(value.trim().to_owned());
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_hint_is_one_line_with_the_exact_command() {
        let hint = install_hint(&["dovecot-imapd", "postgresql"], false);
        assert!(!hint.contains('\n'));
        assert!(
            hint.contains("`sudo apt-get install -y dovecot-imapd postgresql`"),
            "{hint}"
        );
        let hint = install_hint(&["postgresql"], true);
        assert!(hint.contains("`apt-get install -y postgresql`"), "{hint}");
    }

    #[test]
    fn encoded_headers_decode_back() {
        for text in [
            "Problème de connexion depuis la mise à jour",
            "注文確認メールが届きません",
            "Ошибка при входе в аккаунт — очень длинная тема письма, которая не помещается в одно слово",
            "Plain ASCII",
        ] {
            let encoded = encode_header_text(text);
            assert!(encoded.is_ascii());
            assert!(encoded.split("\r\n ").all(|w| w.len() <= 75), "{encoded}");
            assert_eq!(
                flagpost_domain::envelope::decode_header_text(encoded.as_bytes()),
                text
            );
        }
        assert_eq!(
            flagpost_domain::envelope::decode_header_text(
                encode_display_name("Siobhán O'Connor").as_bytes()
            ),
            "Siobhán O'Connor"
        );
    }

    #[test]
    fn seeded_mail_looks_like_a_support_queue() {
        let now = Utc::now();
        let mut rng = StdRng::seed_from_u64(7);
        let (messages, threads) = seed_messages(&mut rng, 0, 165, now);
        assert_eq!(messages.len(), 165);
        assert!(messages.windows(2).all(|w| w[0].date <= w[1].date));
        assert!(
            messages
                .iter()
                .all(|m| m.date > now - chrono::Duration::days(15) && m.date < now)
        );
        let answered = messages.iter().filter(|m| m.flags.contains('R')).count();
        let flagged = messages.iter().filter(|m| m.flags.contains('F')).count();
        assert!(answered > 80 && answered < 160, "{answered}");
        assert!(flagged > 0, "{flagged}");
        let replies = messages
            .iter()
            .filter(|m| String::from_utf8_lossy(&m.raw).contains("\r\nSubject: Re: "))
            .count();
        assert!(replies > 20, "{replies}");
        assert!(!threads.is_empty());
    }

    #[test]
    fn header_values_are_found_in_fetch_data() {
        let line = "3 FETCH (UID 12 BODY[HEADER.FIELDS (SUBJECT FROM)] {60}Subject: =?UTF-8?Q?Caf=C3=A9?=\r\n more\r\nFrom: \"A\" <a@b>\r\n\r\n)";
        assert_eq!(
            header_value(line, "subject").as_deref(),
            Some("=?UTF-8?Q?Caf=C3=A9?= more")
        );
        assert_eq!(header_value(line, "from").as_deref(), Some("\"A\" <a@b>"));
    }
}
