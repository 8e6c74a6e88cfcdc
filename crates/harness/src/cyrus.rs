//! A private Cyrus IMAP server for one test: a second IMAP implementation beside Dovecot, so
//! that Flagpost is checked against another server's namespace, ACL and IDLE behaviour (Cyrus
//! keeps `c`/`d` in its rights, lists shared folders at the top level, and keeps a session on a
//! mailbox that another client deleted).
//!
//! Its own folder, `imapd.conf`/`cyrus.conf`, SASL user database, CA and ports. Users log in
//! with their own name; the admin is [`Cyrus::ADMIN`] (Cyrus admins may create any mailbox and
//! always hold `l` and `a`). Mailbox names use `/` as the separator (`unixhierarchysep`), with
//! users' mailboxes under `user/<name>` as the admin sees them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::unistd::{Uid, User};

use crate::fixture::{Accounts, ImapFixture};
use crate::imap_client::{ImapClient, quote};
use crate::process::{Supervised, Supervision, find_program};
use crate::tls::TestCertificates;

const INSTALL_HINT: &str = "Cyrus IMAP is not installed: install its master and tools with `sudo apt-get install -y cyrus-common sasl2-bin` (Debian/Ubuntu); `scripts/test` then unpacks its imapd into target/cyrus";

const IMAPD_HINT: &str = "Cyrus's imapd is missing: `scripts/test` unpacks it into target/cyrus (Debian's cyrus-imapd package conflicts with dovecot-imapd); by hand: `mkdir -p target/cyrus-deb && cd target/cyrus-deb && apt-get download cyrus-imapd && dpkg-deb -x cyrus-imapd_*.deb ../cyrus`, or set FLAGPOST_CYRUS_BIN to a folder holding imapd and idled";

/// The folder holding Cyrus's `imapd` and `idled`: `FLAGPOST_CYRUS_BIN`, the installed
/// package's, or the copy `scripts/test` unpacks into the workspace's `target/cyrus`.
fn service_dir() -> Option<PathBuf> {
    let unpacked =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/cyrus/usr/lib/cyrus/bin");
    std::env::var_os("FLAGPOST_CYRUS_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/usr/lib/cyrus/bin"), unpacked])
        .find(|d| d.join("imapd").is_file() && d.join("idled").is_file())
}

/// The SASL realm of the fixture's users (its `servername`).
const REALM: &str = "localhost";

/// A running private Cyrus. Dropping it stops the server and removes its folder.
#[derive(Debug)]
pub struct Cyrus {
    dir: PathBuf,
    certs: TestCertificates,
    imap_port: u16,
    imaps_port: u16,
    master_bin: PathBuf,
    saslpasswd_bin: PathBuf,
    /// The system user the server runs as (when the harness runs as root).
    run_as: Option<User>,
    users: Accounts,
    server: Option<Supervised>,
}

impl Cyrus {
    /// The admin account (`admins` in `imapd.conf`).
    pub const ADMIN: &'static str = "cyrus";

    /// Starts a Cyrus on free loopback ports: plain IMAP (for the readiness probe) and
    /// implicit TLS, IDLE through its `idled`, with the admin account [`Cyrus::ADMIN`].
    pub async fn start() -> Result<Cyrus> {
        Self::start_with(false).await
    }

    /// Like [`Cyrus::start`]; with `altnamespace` (upstream Cyrus 3's default, Debian's is
    /// off) users see shared mailboxes under `Shared Folders/` and other users' under
    /// `Other Users/`, while the admin keeps the internal names.
    pub async fn start_with(altnamespace: bool) -> Result<Cyrus> {
        let master_bin = find_program("cyrmaster", &["/usr/lib/cyrus/bin".into()])
            .ok_or_else(|| anyhow!(INSTALL_HINT))?;
        let services = service_dir().ok_or_else(|| anyhow!(IMAPD_HINT))?;
        let saslpasswd_bin =
            find_program("saslpasswd2", &[]).ok_or_else(|| anyhow!(INSTALL_HINT))?;
        let run_as = if Uid::effective().is_root() {
            Some(User::from_name("cyrus")?.ok_or_else(|| {
                anyhow!("running as root, but there is no `cyrus` system user; {INSTALL_HINT}")
            })?)
        } else {
            None
        };

        let root = crate::prepare_root()?;
        let dir = root.join(format!(
            "cyrus-{}-{}",
            std::process::id(),
            crate::random_suffix()
        ));
        for sub in [
            "",
            "config",
            "config/socket",
            "config/proc",
            "config/lock",
            "config/db",
            "config/log",
            "spool",
            "run",
        ] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let certs = TestCertificates::generate(&dir)?;

        let mut last_err = None;
        for _attempt in 0..3 {
            let imap_port = crate::free_port()?;
            let imaps_port = crate::free_port()?;
            std::fs::write(
                dir.join("imapd.conf"),
                imapd_conf(&dir, &certs, altnamespace),
            )?;
            std::fs::write(
                dir.join("cyrus.conf"),
                cyrus_conf(&dir, &services, imap_port, imaps_port),
            )?;
            let mut cyrus = Cyrus {
                dir: dir.clone(),
                certs: certs.clone(),
                imap_port,
                imaps_port,
                master_bin: master_bin.clone(),
                saslpasswd_bin: saslpasswd_bin.clone(),
                run_as: run_as.clone(),
                users: Accounts::default(),
                server: None,
            };
            cyrus.add_sasl_user(Self::ADMIN, "admin-secret")?;
            cyrus.chown_all()?;
            match cyrus.spawn_and_wait().await {
                Ok(()) => return Ok(cyrus),
                Err(e) => {
                    // keep the folder for the next attempt; the failed value must not remove it
                    cyrus.dir = PathBuf::new();
                    last_err = Some(e);
                }
            }
        }
        crate::remove_instance_dir(&dir);
        Err(last_err.unwrap_or_else(|| anyhow!("cyrus did not start")))
    }

    /// Gives the whole instance folder to the server's user.
    fn chown_all(&self) -> Result<()> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
        fn walk(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
            if p.is_dir() {
                for e in std::fs::read_dir(p)? {
                    walk(&e?.path(), uid, gid)?;
                }
            }
            Ok(())
        }
        walk(&self.dir, uid, gid).with_context(|| format!("chown {}", self.dir.display()))
    }

    async fn spawn_and_wait(&mut self) -> Result<()> {
        let log = self.dir.join("master.log");
        let server = Supervised::spawn(
            &self.master_bin,
            &[
                "-D".to_owned(),
                "-C".to_owned(),
                self.dir.join("imapd.conf").to_string_lossy().into_owned(),
                "-M".to_owned(),
                self.dir.join("cyrus.conf").to_string_lossy().into_owned(),
                "-p".to_owned(),
                self.dir
                    .join("run/master.pid")
                    .to_string_lossy()
                    .into_owned(),
            ],
            &log,
            &Supervision {
                stop_signal: "TERM",
                remove_dir: Some(self.dir.clone()),
                run_as: self.run_as.as_ref().map(|u| u.name.clone()),
            },
            &[],
        )?;
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = ImapClient::connect_tls(self.imaps_port, &self.certs).await
                && c.login(Self::ADMIN, "admin-secret").await.is_ok()
            {
                c.logout().await;
                return Ok(());
            }
            let exited = self.server.as_mut().is_some_and(Supervised::has_exited);
            if exited || Instant::now() > deadline {
                if let Some(mut s) = self.server.take() {
                    s.stop(Duration::from_secs(5)).await.ok();
                }
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!(
                    "cyrus did not start on ports {}/{}; its master's output:\n{log}",
                    self.imap_port,
                    self.imaps_port
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn add_sasl_user(&self, name: &str, password: &str) -> Result<()> {
        let bad = |s: &str| s.is_empty() || s.contains(['\n', '\r', '\0', '@', '/', ' ', '"']);
        if bad(name) || password.is_empty() || password.contains(['\n', '\r', '\0']) {
            bail!("unsupported user name or password for the fixture: {name:?}");
        }
        let db = self.dir.join("sasldb2");
        let mut child = std::process::Command::new(&self.saslpasswd_bin)
            .arg("-f")
            .arg(&db)
            .args(["-u", REALM, "-p", "-c", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running saslpasswd2")?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(password.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "saslpasswd2 failed for {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(&db, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        self.users.insert(name, password);
        Ok(())
    }

    /// Adds a user with its INBOX (`user/<name>`), ready to log in.
    pub async fn add_user(&self, name: &str, password: &str) -> Result<()> {
        self.add_sasl_user(name, password)?;
        let mut admin = self.client(Self::ADMIN).await?;
        admin
            .command_ok(&format!("CREATE {}", quote(&format!("user/{name}"))?))
            .await
            .with_context(|| format!("creating the INBOX of {name}"))?;
        admin.logout().await;
        Ok(())
    }

    /// The plain IMAP port.
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// The master's output so far (for failure messages; the services log to syslog).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("master.log")).unwrap_or_default()
    }

    /// Stops the server (SIGTERM to its master, which ends every session). Mail is kept.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    /// Starts the server again on the same ports with the same mail and users.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.spawn_and_wait().await
    }

    /// Runs each command as the admin, in order, failing on the first that is not OK.
    pub async fn admin(&self, commands: &[&str]) -> Result<()> {
        let mut c = self.client(Self::ADMIN).await?;
        for cmd in commands {
            c.command_ok(cmd).await?;
        }
        c.logout().await;
        Ok(())
    }
}

impl ImapFixture for Cyrus {
    fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    fn certificates(&self) -> &TestCertificates {
        &self.certs
    }

    fn accounts(&self) -> &Accounts {
        &self.users
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop_blocking(Duration::from_secs(15));
        }
        crate::remove_instance_dir(&self.dir);
    }
}

fn imapd_conf(dir: &Path, certs: &TestCertificates, altnamespace: bool) -> String {
    let d = dir.display();
    format!(
        "configdirectory: {d}/config\n\
         partition-default: {d}/spool\n\
         servername: {REALM}\n\
         admins: {admin}\n\
         unixhierarchysep: yes\n\
         altnamespace: {alt}\n\
         allowplaintext: yes\n\
         sasl_mech_list: PLAIN LOGIN\n\
         sasl_pwcheck_method: auxprop\n\
         sasl_auxprop_plugin: sasldb\n\
         sasl_sasldb_path: {d}/sasldb2\n\
         idlesocket: {d}/run/idle\n\
         notifysocket: {d}/run/notify\n\
         lmtpsocket: {d}/run/lmtp\n\
         mboxname_lockpath: {d}/config/lock\n\
         tls_server_cert: {cert}\n\
         tls_server_key: {key}\n\
         syslog_prefix: flagpost-cyrus\n\
         defaultacl: anyone lrs\n",
        admin = Cyrus::ADMIN,
        alt = if altnamespace { "yes" } else { "no" },
        cert = certs.cert_file.display(),
        key = certs.key_file.display(),
    )
}

fn cyrus_conf(dir: &Path, services: &Path, imap_port: u16, imaps_port: u16) -> String {
    let conf = dir.join("imapd.conf");
    let c = conf.display();
    let bin = services.display();
    format!(
        "START {{\n  recover cmd=\"ctl_cyrusdb -C {c} -r\"\n}}\n\
         SERVICES {{\n\
         \x20 imap cmd=\"{bin}/imapd -C {c}\" listen=\"127.0.0.1:{imap_port}\" prefork=0\n\
         \x20 imaps cmd=\"{bin}/imapd -s -C {c}\" listen=\"127.0.0.1:{imaps_port}\" prefork=0\n\
         }}\n\
         EVENTS {{\n}}\n\
         DAEMON {{\n  idled cmd=\"{bin}/idled -C {c}\"\n}}\n"
    )
}
