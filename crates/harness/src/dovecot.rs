//! A private Dovecot for one test (or one demo): its own folder, config, CA, users and ports.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::unistd::{Gid, Uid, User};

use crate::fixture::{Accounts, ImapFixture};
use crate::imap_client::{ImapClient, quote};
use crate::process::{Supervised, Supervision, find_program};
use crate::tls::TestCertificates;

const INSTALL_HINT: &str = "dovecot is not installed: install it with `sudo apt-get install -y dovecot-imapd` (Debian/Ubuntu)";

/// How to configure the private Dovecot.
#[derive(Debug, Clone, Default)]
pub struct DovecotOptions {
    /// When set, Dovecot advertises exactly these capabilities after login (its
    /// `imap_capability` setting), e.g. to hide `CONDSTORE`/`QRESYNC` or `IDLE` from Flagpost.
    pub capabilities: Option<Vec<String>>,
    /// Extra lines appended to `dovecot.conf`.
    pub extra_config: String,
}

/// A running private Dovecot. Dropping it stops the server and removes its folder.
#[derive(Debug)]
pub struct Dovecot {
    dir: PathBuf,
    config: PathBuf,
    certs: TestCertificates,
    imap_port: u16,
    imaps_port: u16,
    dovecot_bin: PathBuf,
    doveadm_bin: PathBuf,
    mail_owner: (Uid, Gid),
    users: Accounts,
    server: Option<Supervised>,
}

/// [`DEFAULT_CAPABILITIES`] without those `hide` picks: the reduced list for
/// [`DovecotOptions::capabilities`] (a server without CONDSTORE, IDLE, ACL …).
pub fn capabilities_without(hide: impl Fn(&str) -> bool) -> Vec<String> {
    DEFAULT_CAPABILITIES
        .iter()
        .filter(|c| !hide(c))
        .map(|c| (*c).to_owned())
        .collect()
}

/// The capabilities Dovecot 2.3 offers after login with this fixture's config, for building a
/// reduced list in [`DovecotOptions::capabilities`].
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "IMAP4rev1",
    "SASL-IR",
    "LOGIN-REFERRALS",
    "ID",
    "ENABLE",
    "IDLE",
    "SORT",
    "THREAD=REFERENCES",
    "MULTIAPPEND",
    "UNSELECT",
    "CHILDREN",
    "NAMESPACE",
    "UIDPLUS",
    "LIST-EXTENDED",
    "I18NLEVEL=1",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "SEARCHRES",
    "WITHIN",
    "LIST-STATUS",
    "BINARY",
    "MOVE",
    "LITERAL+",
    "ACL",
    "RIGHTS=texk",
];

impl Dovecot {
    /// Starts a Dovecot with the default options.
    pub async fn start() -> Result<Dovecot> {
        Self::start_with(DovecotOptions::default()).await
    }

    /// Starts a Dovecot configured by `options`, on free loopback ports, with plain IMAP
    /// (STARTTLS offered) and implicit TLS, the ACL plugin and a `shared/<owner>/` namespace.
    pub async fn start_with(options: DovecotOptions) -> Result<Dovecot> {
        let dovecot_bin = find_program("dovecot", &[]).ok_or_else(|| anyhow!(INSTALL_HINT))?;
        let doveadm_bin = find_program("doveadm", &[]).ok_or_else(|| anyhow!(INSTALL_HINT))?;

        let root = crate::prepare_root()?;
        let dir = root.join(format!(
            "dovecot-{}-{}",
            std::process::id(),
            crate::random_suffix()
        ));
        make_traversable_dir(&dir)?;

        let (mail_owner, internal_user, login_user) = identities()?;
        for sub in ["run", "state", "mail"] {
            make_traversable_dir(&dir.join(sub))?;
        }
        for sub in ["state", "mail"] {
            std::os::unix::fs::chown(
                dir.join(sub),
                Some(mail_owner.0.as_raw()),
                Some(mail_owner.1.as_raw()),
            )
            .with_context(|| format!("chown {}", dir.join(sub).display()))?;
        }
        let certs = TestCertificates::generate(&dir)?;
        std::fs::write(dir.join("users"), "")?;

        let mut last_err = None;
        for _attempt in 0..3 {
            let imap_port = crate::free_port()?;
            let imaps_port = crate::free_port()?;
            let config = dir.join("dovecot.conf");
            std::fs::write(
                &config,
                render_config(
                    &dir,
                    &certs,
                    imap_port,
                    imaps_port,
                    mail_owner,
                    &internal_user,
                    &login_user,
                    &options,
                ),
            )?;
            let mut dovecot = Dovecot {
                dir: dir.clone(),
                config,
                certs: certs.clone(),
                imap_port,
                imaps_port,
                dovecot_bin: dovecot_bin.clone(),
                doveadm_bin: doveadm_bin.clone(),
                mail_owner,
                users: Accounts::default(),
                server: None,
            };
            match dovecot.spawn_and_wait().await {
                Ok(()) => return Ok(dovecot),
                Err(e) => {
                    // keep the folder for the next attempt; the failed value must not remove it
                    dovecot.dir = PathBuf::new();
                    last_err = Some(e);
                }
            }
        }
        crate::remove_instance_dir(&dir);
        Err(last_err.unwrap_or_else(|| anyhow!("dovecot did not start")))
    }

    async fn spawn_and_wait(&mut self) -> Result<()> {
        let log = self.dir.join("dovecot.log");
        let server = Supervised::spawn(
            &self.dovecot_bin,
            &[
                "-F".to_owned(),
                "-c".to_owned(),
                self.config.to_string_lossy().into_owned(),
            ],
            &log,
            &Supervision {
                stop_signal: "TERM",
                remove_dir: Some(self.dir.clone()),
                run_as: None,
            },
            // A fixed TZ spares Dovecot a stat() of /etc/localtime per fetched message.
            &[("TZ", ":/etc/localtime")],
        )?;
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(c) = ImapClient::connect_plain(self.imap_port).await {
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
                    "dovecot did not start on ports {}/{}; its log:\n{log}",
                    self.imap_port,
                    self.imaps_port
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The plain IMAP port (STARTTLS offered).
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// The instance's folder (config, logs, mail).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Dovecot's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// Adds (or changes the password of) a passwd-file user. Dovecot re-reads the file when it
    /// changes.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        let bad = |s: &str| s.is_empty() || s.contains([':', '\n', '\r', '\0']);
        if bad(name) || bad(password) || name.contains(['/', ' ', '"', '\\']) {
            bail!("unsupported user name or password for the fixture: {name:?}");
        }
        let users = self.users.insert(name, password);
        let (uid, gid) = self.mail_owner;
        let body: String = users
            .iter()
            .map(|(u, p)| {
                format!(
                    "{u}:{{PLAIN}}{p}:{uid}:{gid}::{home}::\n",
                    home = self.dir.join("mail").join(u).display()
                )
            })
            .collect();
        let tmp = self.dir.join("users.tmp");
        std::fs::write(&tmp, body)?;
        // Dovecot re-reads the file when its mtime (in whole seconds) changes: make sure it does,
        // even for two changes within one second.
        let previous = std::fs::metadata(self.dir.join("users"))
            .and_then(|m| m.modified())
            .ok();
        let now = std::time::SystemTime::now();
        let stamp = match previous {
            Some(p) if p + Duration::from_secs(1) > now => p + Duration::from_secs(1),
            _ => now,
        };
        std::fs::File::options()
            .write(true)
            .open(&tmp)?
            .set_modified(stamp)?;
        std::fs::rename(&tmp, self.dir.join("users"))?;
        Ok(())
    }

    /// Adds a user like [`Dovecot::add_user`] and waits until Dovecot accepts its login:
    /// Dovecot re-reads the passwd file at most once a second, so a login right after a change
    /// may still see the old file.
    pub async fn add_user_ready(&self, name: &str, password: &str) -> Result<()> {
        self.add_user(name, password)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.client(name).await {
                Ok(c) => {
                    c.logout().await;
                    return Ok(());
                }
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(e.context(format!("Dovecot never accepted the new user {name:?}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Creates the folder `name` (UTF-8; encoded to modified UTF-7) in `owner`'s mailbox.
    /// Others see it as `shared/<owner>/<name>` once they have `l`.
    pub async fn create_folder(&self, owner: &str, name: &str) -> Result<()> {
        let mut c = self.client(owner).await?;
        c.command_ok(&format!(
            "CREATE {}",
            quote(&flagpost_domain::encode_mailbox_name(name))?
        ))
        .await?;
        c.logout().await;
        Ok(())
    }

    /// Appends raw RFC 5322 bytes to `mailbox` (as `user` sees it, UTF-8 name) and returns the
    /// UID.
    pub async fn append(&self, user: &str, mailbox: &str, message: &[u8]) -> Result<u32> {
        self.append_with_flags(user, mailbox, "", message).await
    }

    /// Like [`Dovecot::append`] with initial flags, e.g. `\Answered \Flagged`.
    pub async fn append_with_flags(
        &self,
        user: &str,
        mailbox: &str,
        flags: &str,
        message: &[u8],
    ) -> Result<u32> {
        let mut c = self.client(user).await?;
        let uid = c
            .append(
                &flagpost_domain::encode_mailbox_name(mailbox),
                flags,
                message,
            )
            .await?;
        c.logout().await;
        Ok(uid)
    }

    /// `UID STORE uid <change>` as `user`, e.g. `change = "+FLAGS (\\Answered)"`.
    pub async fn store(&self, user: &str, mailbox: &str, uid: u32, change: &str) -> Result<()> {
        let mut c = self.selected(user, mailbox).await?;
        c.command_ok(&format!("UID STORE {uid} {change}")).await?;
        c.logout().await;
        Ok(())
    }

    /// Marks `uid` `\Deleted` and expunges it (UIDPLUS `UID EXPUNGE`), as `user`.
    pub async fn expunge(&self, user: &str, mailbox: &str, uid: u32) -> Result<()> {
        let mut c = self.selected(user, mailbox).await?;
        c.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"))
            .await?;
        c.command_ok(&format!("UID EXPUNGE {uid}")).await?;
        c.logout().await;
        Ok(())
    }

    async fn selected(&self, user: &str, mailbox: &str) -> Result<ImapClient> {
        let mut c = self.client(user).await?;
        c.command_ok(&format!(
            "SELECT {}",
            quote(&flagpost_domain::encode_mailbox_name(mailbox))?
        ))
        .await?;
        Ok(c)
    }

    /// `SETACL` as `user` (normally the owner) on `mailbox`: `identifier` gets exactly
    /// `rights` (RFC 4314 letters).
    pub async fn set_acl(
        &self,
        user: &str,
        mailbox: &str,
        identifier: &str,
        rights: &str,
    ) -> Result<()> {
        let mut c = self.client(user).await?;
        c.command_ok(&format!(
            "SETACL {} {} {}",
            quote(&flagpost_domain::encode_mailbox_name(mailbox))?,
            quote(identifier)?,
            quote(rights)?
        ))
        .await?;
        c.logout().await;
        Ok(())
    }

    /// `GETACL` as `user`: the (identifier, rights) pairs the server returns.
    pub async fn get_acl(&self, user: &str, mailbox: &str) -> Result<Vec<(String, String)>> {
        let mut c = self.client(user).await?;
        let r = c
            .command_ok(&format!(
                "GETACL {}",
                quote(&flagpost_domain::encode_mailbox_name(mailbox))?
            ))
            .await?;
        c.logout().await;
        let line = r
            .lines_of("ACL")
            .next()
            .ok_or_else(|| anyhow!("GETACL returned no ACL line"))?;
        let words = imap_words(line);
        Ok(words[1..]
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect())
    }

    /// Writes `count` messages straight into `owner`'s maildir folder `folder` (which must
    /// exist), much faster than APPEND: `make(i)` returns the raw message, its INTERNALDATE and
    /// its maildir flag letters (`R` answered, `F` flagged, `S` seen). Dovecot assigns UIDs when
    /// it next looks at the folder. For benchmarks and demos with big folders.
    pub fn seed_maildir(
        &self,
        owner: &str,
        folder: &str,
        count: usize,
        mut make: impl FnMut(usize) -> (Vec<u8>, std::time::SystemTime, String),
    ) -> Result<()> {
        let cur = self
            .dir
            .join("mail")
            .join(owner)
            .join("Maildir")
            .join(format!(".{folder}"))
            .join("cur");
        if !cur.is_dir() {
            bail!("{} does not exist: create the folder first", cur.display());
        }
        let (uid, gid) = self.mail_owner;
        for i in 0..count {
            let (body, date, flags) = make(i);
            let mut letters: Vec<char> = flags.chars().collect();
            letters.sort_unstable();
            letters.dedup();
            let secs = date
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let name = format!(
                "{secs}.S{i}R{}.flagpost,S={}:2,{}",
                crate::random_suffix(),
                body.len(),
                letters.into_iter().collect::<String>()
            );
            let path = cur.join(name);
            let file = std::fs::File::create(&path)?;
            std::io::Write::write_all(&mut &file, &body)?;
            file.set_modified(date)?;
            std::os::unix::fs::chown(&path, Some(uid.as_raw()), Some(gid.as_raw()))?;
        }
        Ok(())
    }

    /// Disconnects every session of `user` from the server side (`doveadm kick`). Returns how
    /// many sessions were kicked.
    pub async fn kick(&self, user: &str) -> Result<usize> {
        let out = self.doveadm(&["kick", user]).await;
        match out {
            Ok(text) => Ok(text.lines().filter(|l| !l.trim().is_empty()).count().max(1)),
            Err(e) if e.to_string().contains("no users kicked") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Forces `owner`'s folder `mailbox` to a new UIDVALIDITY (`doveadm mailbox update`).
    pub async fn set_uidvalidity(
        &self,
        owner: &str,
        mailbox: &str,
        uidvalidity: u32,
    ) -> Result<()> {
        self.doveadm(&[
            "mailbox",
            "update",
            "--uid-validity",
            &uidvalidity.to_string(),
            "-u",
            owner,
            mailbox,
        ])
        .await
        .map(drop)
    }

    /// Runs `doveadm -c <config> args…` and returns its stdout; fails with its stderr.
    pub async fn doveadm(&self, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new(&self.doveadm_bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .await
            .context("running doveadm")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "doveadm {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            );
        }
        Ok(stdout)
    }

    /// Whether the server is running.
    pub fn is_running(&mut self) -> bool {
        self.server.as_mut().is_some_and(|s| !s.has_exited())
    }

    /// Stops the server (SIGTERM; every connection is closed). Mail and config are kept.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut s) = self.server.take() {
            s.stop(Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    /// Starts the server again on the same ports with the same mail.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.spawn_and_wait().await
    }
}

impl ImapFixture for Dovecot {
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

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.stop_blocking(Duration::from_secs(15));
        }
        crate::remove_instance_dir(&self.dir);
    }
}

/// Splits an IMAP response line into atoms and quoted strings (unquoted).
pub fn imap_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut w = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => w.extend(chars.next()),
                    '"' => break,
                    _ => w.push(c),
                }
            }
            words.push(w);
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push(w);
        }
    }
    words
}

fn make_traversable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 0755 {}", dir.display()))?;
    Ok(())
}

/// Who owns the mail, and which users run Dovecot's internal and login processes.
///
/// As root (the usual case in CI): mail belongs to the `dovecot` system user, since Dovecot
/// refuses uid 0 for mail. As an ordinary user: everything runs as that user.
fn identities() -> Result<((Uid, Gid), String, String)> {
    if Uid::effective().is_root() {
        let dovecot = User::from_name("dovecot")?
            .ok_or_else(|| anyhow!("the `dovecot` system user is missing; {INSTALL_HINT}"))?;
        let login = User::from_name("dovenull")?
            .map(|u| u.name)
            .unwrap_or_else(|| "dovecot".to_owned());
        Ok(((dovecot.uid, dovecot.gid), dovecot.name, login))
    } else {
        let me = User::from_uid(Uid::effective())?
            .ok_or_else(|| anyhow!("the current user has no passwd entry"))?;
        Ok(((me.uid, me.gid), me.name.clone(), me.name))
    }
}

#[allow(clippy::too_many_arguments)]
fn render_config(
    dir: &Path,
    certs: &TestCertificates,
    imap_port: u16,
    imaps_port: u16,
    (uid, _gid): (Uid, Gid),
    internal_user: &str,
    login_user: &str,
    options: &DovecotOptions,
) -> String {
    let d = dir.display();
    let instance = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let capability = options
        .capabilities
        .as_ref()
        .map(|caps| format!("imap_capability = {}\n", caps.join(" ")))
        .unwrap_or_default();
    format!(
        r#"# generated by flagpost-harness
instance_name = {instance}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
default_internal_user = {internal_user}
default_login_user = {login_user}
mail_location = maildir:~/Maildir
mail_plugins = acl
maildir_very_dirty_syncs = yes
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace shared {{
  type = shared
  separator = /
  prefix = shared/%%u/
  location = maildir:%%h/Maildir
  subscriptions = no
  list = children
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_acl
{capability}}}
plugin {{
  acl = vfile:cache_secs=0
  acl_shared_dict = file:{d}/state/shared-mailboxes.db
  acl_anyone = allow
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
{extra}
"#,
        cert = certs.cert_file.display(),
        key = certs.key_file.display(),
        extra = options.extra_config,
    )
}
