//! Contract §4: every configuration variable changes what the real `flagpost` binary does, and
//! each is also a `--flag`.
//!
//! Where another test already proves a variable, it is named here instead of repeated:
//!
//! | variable | proved by |
//! |---|---|
//! | `FLAGPOST_DATABASE_URL`, `DATABASE_URL` | [`database_url_is_the_fallback_and_flagpost_database_url_wins`] |
//! | `FLAGPOST_IMAP_HOST` | [`plaintext_imap_is_refused_for_a_remote_host_unless_allowed`] (a host that is not loopback); `check::a_missing_imap_host_stops_with_one_line_naming_it` |
//! | `FLAGPOST_IMAP_PORT` | [`imap_port_defaults_to_993_for_implicit_tls_and_143_otherwise`]; unit test `config::tests::imap_port_defaults_by_tls_mode_and_an_explicit_port_wins` |
//! | `FLAGPOST_IMAP_TLS` | `check::check_works_over_starttls_and_plain_loopback` (`starttls`, `none`); [`plaintext_imap_is_refused_for_a_remote_host_unless_allowed`] |
//! | `FLAGPOST_IMAP_ALLOW_PLAINTEXT` | [`plaintext_imap_is_refused_for_a_remote_host_unless_allowed`] |
//! | `FLAGPOST_IMAP_CA_FILE` | `check::check_refuses_a_certificate_it_cannot_verify` (without it) and every test using `flagpost_env` (with it) |
//! | `FLAGPOST_IMAP_USER` | [`imap_user_is_the_account_flagpost_acts_as`] |
//! | `FLAGPOST_IMAP_PASSWORD` | `check::check_with_a_wrong_password_fails_with_a_clear_line`; [`a_flag_beats_the_environment`] |
//! | `FLAGPOST_IMAP_PASSWORD_FILE` | [`imap_password_file_is_read_without_its_line_break_and_a_missing_one_is_named`] |
//! | `FLAGPOST_FOLDERS` | [`only_folders_matching_flagpost_folders_are_mirrored`]; `feed::twenty_folders_changing_at_once_reach_feed_readers_without_gaps_or_repeats` |
//! | `FLAGPOST_LISTEN` | [`serve_listens_where_flagpost_listen_says`]; `check::a_malformed_listen_address_stops_with_one_line_naming_it` |
//! | `FLAGPOST_JWT_SECRET`, `FLAGPOST_JWT_SECRET_FILE` | [`a_session_is_accepted_by_a_server_with_the_same_jwt_secret_only`]; [`without_a_jwt_secret_a_generated_one_is_kept_so_sessions_survive_a_restart`] |
//! | `FLAGPOST_ADMINS` | `api::integration_tokens_act_within_their_scopes_and_stop_at_once_when_revoked` (the admin creates tokens, a non-admin gets 403); `bola::every_route_answers_every_kind_of_caller_as_the_contract_says` |
//! | `FLAGPOST_ACL_POLL_SECS` | [`acl_changes_are_read_at_the_acl_poll_interval`]; `mirror::acls_are_mirrored_and_followed` |
//! | `FLAGPOST_FOLDER_POLL_SECS` | [`new_folders_are_found_at_the_folder_poll_interval`] |
//! | `FLAGPOST_IMAP_MAX_CONNECTIONS` | `mirror::folders_beyond_the_connection_budget_are_polled_and_still_mirrored` |
//! | `FLAGPOST_WEBHOOK_ALLOW_PRIVATE` | `webhooks::unsafe_targets_are_refused_and_redirects_not_followed` (refused without it) and every other webhook test (allowed with it) |
//! | `FLAGPOST_WEBHOOK_TIMEOUT_SECS` | [`an_unanswered_webhook_attempt_times_out_after_the_configured_seconds`] |
//! | `FLAGPOST_LOG` | [`flagpost_log_is_a_tracing_filter`] |
//! | `FLAGPOST_LOG_FORMAT` | [`flagpost_log_format_json_writes_one_json_object_per_line`] |
//! | every variable as a `--flag` | [`every_variable_is_a_flag_and_a_bad_value_is_one_line_naming_it`]; [`a_flag_beats_the_environment`] |
//! | "a bad or missing setting stops start-up with one clear line naming it" | [`every_variable_is_a_flag_and_a_bad_value_is_one_line_naming_it`] |
//!
//! Documentation: `demo::readme_documents_every_configuration_variable`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use flagpost_e2e::http::Api;
use flagpost_e2e::{SERVICE_USER, eventually, flagpost_env, message, support_fixture};
use flagpost_harness::{Dovecot, ImapFixture, TestDatabase};
use serde_json::{Value, json};

use crate::check::{text, with, without};
use crate::{Serve, run_flagpost};

/// Allowance on top of a configured period for a loaded two-core machine; still well below the
/// 60 s defaults the poll tests tell apart from.
const SLACK: Duration = Duration::from_secs(25);
/// Waits for things that take a fraction of a second when the machine is idle.
const WAIT: Duration = Duration::from_secs(30);

async fn pool(db: &TestDatabase) -> sqlx::PgPool {
    flagpost_store::connect(&db.url(), Duration::from_secs(10))
        .await
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Names of the folders mirrored in `pool` (not removed), sorted.
async fn mirrored_folders(pool: &sqlx::PgPool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT imap_name FROM folders WHERE removed_at IS NULL ORDER BY imap_name",
    )
    .fetch_all(pool)
    .await?)
}

/// Waits until `pool` mirrors exactly `names` (sorted), each live.
async fn wait_live(pool: &sqlx::PgPool, names: &[&str], serve: &Serve) {
    wait_live_within(pool, names, WAIT, serve).await;
}

/// [`wait_live`] with a deadline of `within`.
async fn wait_live_within(pool: &sqlx::PgPool, names: &[&str], within: Duration, serve: &Serve) {
    eventually(within, "the folders live", || async {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT imap_name, sync_state FROM folders WHERE removed_at IS NULL ORDER BY imap_name",
        )
        .fetch_all(pool)
        .await?;
        Ok(
            (rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>() == names
                && rows.iter().all(|r| r.1 == "live"))
            .then_some(()),
        )
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
}

/// Runs `flagpost serve extra_args…` with exactly `envs` until it listens at `addr`, then
/// `during`, then SIGTERM; returns everything it wrote to stderr.
async fn serve_stderr(
    extra_args: &[&str],
    envs: &[(&str, String)],
    addr: SocketAddr,
    during: impl Future<Output = Result<()>>,
) -> Result<String> {
    use tokio::io::AsyncReadExt;
    let mut cmd = tokio::process::Command::new(crate::flagpost_bin());
    cmd.arg("serve").args(extra_args).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut stderr = child.stderr.take().context("piped")?;
    let reader = tokio::spawn(async move {
        let mut s = String::new();
        stderr.read_to_string(&mut s).await.map(|_| s)
    });
    let ran = async {
        eventually(WAIT, "flagpost serve to listen", || async {
            Ok(tokio::net::TcpStream::connect(addr).await.ok().map(drop))
        })
        .await?;
        during.await
    }
    .await;
    let pid = child.id().context("running")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await??;
    let log = tokio::time::timeout(Duration::from_secs(10), reader).await???;
    ran.map_err(|e| anyhow::anyhow!("{e}\nlog:\n{log}"))?;
    anyhow::ensure!(status.success(), "serve exited with {status}\nlog:\n{log}");
    Ok(log)
}

#[tokio::test]
async fn database_url_is_the_fallback_and_flagpost_database_url_wins() {
    let used = TestDatabase::create().await.unwrap();
    let migrated = |db: &TestDatabase| {
        let url = db.url();
        async move {
            let pool = flagpost_store::connect(&url, Duration::from_secs(10)).await?;
            let n = flagpost_store::applied_versions(&pool).await?.len();
            pool.close().await;
            Ok::<_, anyhow::Error>(n)
        }
    };

    // DATABASE_URL alone is used.
    let out = run_flagpost(&["migrate"], &[("DATABASE_URL", used.url())])
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("applied "), "{stdout}");
    assert!(migrated(&used).await.unwrap() > 0);

    // With both, FLAGPOST_DATABASE_URL is used and DATABASE_URL (a closed port) is not touched.
    let other = TestDatabase::create().await.unwrap();
    let closed = format!("postgres://nobody@127.0.0.1:{}/none", free_port());
    let out = run_flagpost(
        &["migrate"],
        &[
            ("FLAGPOST_DATABASE_URL", other.url()),
            ("DATABASE_URL", closed),
        ],
    )
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("applied "), "{stdout}");
    assert_eq!(
        migrated(&other).await.unwrap(),
        migrated(&used).await.unwrap()
    );

    // Neither: one line naming both.
    let out = run_flagpost(&["migrate"], &[]).await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: FLAGPOST_DATABASE_URL") && stderr.contains("nor DATABASE_URL"),
        "{stderr}"
    );
    // A bad DATABASE_URL is named as such.
    let out = run_flagpost(
        &["migrate"],
        &[("DATABASE_URL", "mysql://localhost/x".into())],
    )
    .await
    .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: DATABASE_URL "), "{stderr}");
}

/// The first line of `check`'s report, which shows the settings it runs with.
fn config_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("config"))
        .unwrap_or_else(|| panic!("no config line:\n{stdout}"))
}

#[tokio::test]
async fn imap_port_defaults_to_993_for_implicit_tls_and_143_otherwise() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);

    // The explicit port is the one connected to: the check passes.
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        config_line(&stdout).contains(&format!("IMAP localhost:{} ", dovecot.imaps_port())),
        "{stdout}"
    );

    // Without it, implicit TLS goes to 993 and STARTTLS to 143 (where the harness's Dovecot is
    // not, so the IMAP part of the check fails, naming that port).
    for (tls, port) in [("implicit", 993), ("starttls", 143)] {
        let env = with(
            without(env.clone(), "FLAGPOST_IMAP_PORT"),
            "FLAGPOST_IMAP_TLS",
            tls,
        );
        let out = run_flagpost(&["check"], &env).await.unwrap();
        let (stdout, stderr) = text(&out);
        assert!(
            config_line(&stdout).contains(&format!("IMAP localhost:{port} tls={tls}")),
            "{stdout}"
        );
        if !out.status.success() {
            assert!(
                stderr.contains(&format!("localhost:{port}")),
                "{stdout}\n{stderr}"
            );
        }
    }
}

/// This machine's first non-loopback IPv4 address, if it has one (no packet is sent).
fn non_loopback_ipv4() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Forwards every connection to `ip:port` (returned) to `127.0.0.1:upstream`.
async fn relay(ip: std::net::IpAddr, upstream: u16) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn plaintext_imap_is_refused_for_a_remote_host_unless_allowed() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    // A host that is not loopback: this machine's own network address relaying to Dovecot's
    // plain-text port, or (without a network) a documentation address nobody answers on.
    let (host, port) = match non_loopback_ipv4() {
        Some(ip) => {
            let addr = relay(ip, dovecot.imap_port()).await;
            (ip.to_string(), addr.port())
        }
        None => ("198.51.100.1".to_owned(), 143),
    };
    let env = with(
        with(
            with(flagpost_env(&dovecot, &db), "FLAGPOST_IMAP_TLS", "none"),
            "FLAGPOST_IMAP_HOST",
            &host,
        ),
        "FLAGPOST_IMAP_PORT",
        &port.to_string(),
    );

    for command in ["check", "serve"] {
        let out = run_flagpost(&[command], &env).await.unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("error: FLAGPOST_IMAP_TLS")
                && stderr.contains("FLAGPOST_IMAP_ALLOW_PLAINTEXT"),
            "{command}: {stderr}"
        );
    }

    let allowed = with(env, "FLAGPOST_IMAP_ALLOW_PLAINTEXT", "true");
    let out = run_flagpost(&["check"], &allowed).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        config_line(&stdout).contains(&format!("IMAP {host}:{port} tls=none")),
        "{stdout}"
    );
    if host != "198.51.100.1" {
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("NO TLS"), "{stdout}");
    }
}

#[tokio::test]
async fn imap_user_is_the_account_flagpost_acts_as() {
    let dovecot = support_fixture().await.unwrap();
    dovecot
        .set_acl("support", "Queue", "alice", "lrs")
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = with(
        with(flagpost_env(&dovecot, &db), "FLAGPOST_IMAP_USER", "alice"),
        "FLAGPOST_IMAP_PASSWORD",
        "alice-pw",
    );
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    // alice sees only Queue, with her rights and without `a` (the service account has `lra` on
    // Queue and `lr` on Billing).
    assert!(
        stdout.contains("folders       1 match"),
        "{stdout}\n{stderr}"
    );
    let queue = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("shared/support/Queue"))
        .unwrap_or_else(|| panic!("no Queue line:\n{stdout}"));
    assert!(queue.contains("rights lrs"), "{queue}");
    assert!(queue.contains("a: no"), "{queue}");
    assert!(!stdout.contains("shared/support/Billing"), "{stdout}");
}

#[tokio::test]
async fn imap_password_file_is_read_without_its_line_break_and_a_missing_one_is_named() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let file = dovecot.dir().join("service-password");
    std::fs::write(&file, "service-pw\n").unwrap();
    let env = with(
        without(flagpost_env(&dovecot, &db), "FLAGPOST_IMAP_PASSWORD"),
        "FLAGPOST_IMAP_PASSWORD_FILE",
        &file.display().to_string(),
    );
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("folders       2 match"), "{stdout}");

    // The file is what is sent: another password in it is refused by the server.
    std::fs::write(&file, "not-the-password\r\n").unwrap();
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("refused the login"), "{stderr}");
    assert!(!stdout.contains("not-the-password") && !stderr.contains("not-the-password"));

    let missing = dovecot.dir().join("no-such-password-file");
    let env = with(
        env,
        "FLAGPOST_IMAP_PASSWORD_FILE",
        &missing.display().to_string(),
    );
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: FLAGPOST_IMAP_PASSWORD_FILE")
            && stderr.contains("no-such-password-file"),
        "{stderr}"
    );
}

#[tokio::test]
async fn only_folders_matching_flagpost_folders_are_mirrored() {
    let dovecot = support_fixture().await.unwrap();
    dovecot.add_user_ready("carol", "carol-pw").await.unwrap();
    for folder in ["Backlog", "Archive"] {
        dovecot.create_folder("support", folder).await.unwrap();
        dovecot
            .set_acl("support", folder, SERVICE_USER, "lr")
            .await
            .unwrap();
        dovecot
            .append("support", folder, &message(folder, "x@example.org"))
            .await
            .unwrap();
    }
    let db = TestDatabase::create().await.unwrap();
    let env = with(
        flagpost_env(&dovecot, &db),
        "FLAGPOST_FOLDERS",
        "shared/support/Queue, shared/support/B*",
    );
    let wanted = [
        "shared/support/Backlog",
        "shared/support/Billing",
        "shared/support/Queue",
    ];

    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("folders       3 match"), "{stdout}");
    assert!(!stdout.contains("Archive"), "{stdout}");

    let mut env = env;
    env.push(("FLAGPOST_ADMINS", "carol".into()));
    let serve = Serve::start(&env).await.unwrap();
    let pool = pool(&db).await;
    wait_live(&pool, &wanted, &serve).await;
    // The API shows the same three to a service admin, who may see every mirrored folder.
    let api = Api::new(serve.addr);
    let carol = api.login("carol", "carol-pw").await.unwrap();
    let r = api.get("/api/v1/folders", &carol).await.unwrap();
    let mut names: Vec<&str> = r.json["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, wanted, "{}", r.text);
    // Archive's message never reached the database either.
    let archived: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE subject = 'Archive'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(archived, 0);
    assert_eq!(mirrored_folders(&pool).await.unwrap(), wanted);
    assert!(serve.stop().await.unwrap().success());
}

/// Whether this machine can listen on the IPv6 loopback address.
fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[tokio::test]
async fn serve_listens_where_flagpost_listen_says() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);

    // Another loopback address than the default's 127.0.0.1, at a port this test holds on
    // 127.0.0.1: a server that bound 127.0.0.1 or every address there would fail to start.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let addr: SocketAddr = ([127, 0, 0, 2], port).into();
    let serve = Serve::start_at(addr, &env).await.unwrap();
    let r = reqwest::get(format!("http://{addr}/livez")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        serve.log_text().contains(&format!("\"listen\":\"{addr}\"")),
        "{}",
        serve.log_text()
    );
    assert!(serve.stop().await.unwrap().success());
    drop(held);

    if ipv6_loopback() {
        let port = free_port();
        let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let serve = Serve::start_at(addr, &env).await.unwrap();
        let r = reqwest::get(format!("http://{addr}/livez")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(serve.stop().await.unwrap().success());
    } else {
        eprintln!("no IPv6 loopback here: [::1] not tried");
    }
}

const SECRET: &str = "config-e2e-jwt-secret-0123456789abcdef";
const OTHER_SECRET: &str = "config-e2e-another-jwt-secret-0123456789";

/// The status of `GET /api/v1/folders` with `token` on a server started with `env` (at `addr`,
/// so it is the same origin each time).
async fn folders_status(addr: SocketAddr, env: &[(&str, String)], token: &str) -> u16 {
    let serve = Serve::start_at(addr, env).await.unwrap();
    let status = Api::new(addr)
        .get("/api/v1/folders", token)
        .await
        .unwrap()
        .status;
    assert!(serve.stop().await.unwrap().success());
    status
}

#[tokio::test]
async fn a_session_is_accepted_by_a_server_with_the_same_jwt_secret_only() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let base = flagpost_env(&dovecot, &db);
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();

    let first = Serve::start_at(addr, &with(base.clone(), "FLAGPOST_JWT_SECRET", SECRET))
        .await
        .unwrap();
    let api = Api::new(addr);
    let token = api.login("alice", "alice-pw").await.unwrap();
    assert_eq!(
        api.get("/api/v1/folders", &token).await.unwrap().status,
        200
    );
    assert!(first.stop().await.unwrap().success());

    // The same key, from a file ending in a line break: accepted.
    let file = dovecot.dir().join("jwt-secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let from_file = with(
        base.clone(),
        "FLAGPOST_JWT_SECRET_FILE",
        &file.display().to_string(),
    );
    assert_eq!(folders_status(addr, &from_file, &token).await, 200);
    // Another key: refused.
    let other = with(base.clone(), "FLAGPOST_JWT_SECRET", OTHER_SECRET);
    assert_eq!(folders_status(addr, &other, &token).await, 401);
    // No key: the generated one, which signed nothing of this: refused.
    assert_eq!(folders_status(addr, &base, &token).await, 401);

    // Shorter than 32 bytes: refused at start, from either variable, without showing it.
    std::fs::write(&file, "short-secret\n").unwrap();
    for (env, var) in [
        (
            with(base.clone(), "FLAGPOST_JWT_SECRET", "short-secret"),
            "FLAGPOST_JWT_SECRET",
        ),
        (from_file, "FLAGPOST_JWT_SECRET_FILE"),
    ] {
        let out = run_flagpost(&["serve"], &env).await.unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("error: {var} (")), "{stderr}");
        assert!(stderr.contains("32 bytes"), "{stderr}");
        assert!(!stderr.contains("short-secret"), "{stderr}");
    }
}

#[tokio::test]
async fn without_a_jwt_secret_a_generated_one_is_kept_so_sessions_survive_a_restart() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();

    let first = Serve::start_at(addr, &env).await.unwrap();
    let token = Api::new(addr).login("alice", "alice-pw").await.unwrap();
    assert!(first.stop().await.unwrap().success());
    let pool = pool(&db).await;
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'jwt_secret'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kept.len(), 1, "one generated key kept in the database");
    assert!(kept[0].len() >= 32);

    assert_eq!(folders_status(addr, &env, &token).await, 200);
    // The kept key is the one in use: with it given explicitly the session is still accepted.
    let explicit = with(env, "FLAGPOST_JWT_SECRET", &kept[0]);
    assert_eq!(folders_status(addr, &explicit, &token).await, 200);
}

/// Two servers on one Dovecot, each with its own database: `fast` with `env_fast`, `slow` with
/// both poll intervals at an hour.
struct PollPair {
    dovecot: Dovecot,
    fast: (Serve, sqlx::PgPool, TestDatabase),
    slow: (Serve, sqlx::PgPool, TestDatabase),
}

async fn poll_pair(fast_env: &[(&'static str, &str)]) -> PollPair {
    let dovecot = support_fixture().await.unwrap();
    let start = |extra: Vec<(&'static str, String)>| {
        let dovecot = &dovecot;
        async move {
            let db = TestDatabase::create().await.unwrap();
            let mut env = flagpost_env(dovecot, &db);
            env.extend(extra);
            let serve = Serve::start(&env).await.unwrap();
            let pool = pool(&db).await;
            wait_live(
                &pool,
                &["shared/support/Billing", "shared/support/Queue"],
                &serve,
            )
            .await;
            (serve, pool, db)
        }
    };
    let hour = "3600".to_owned();
    let slow = start(vec![
        ("FLAGPOST_ACL_POLL_SECS", hour.clone()),
        ("FLAGPOST_FOLDER_POLL_SECS", hour.clone()),
    ])
    .await;
    let fast = start(
        fast_env
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect(),
    )
    .await;
    PollPair {
        dovecot,
        fast,
        slow,
    }
}

async fn queue_acl(pool: &sqlx::PgPool) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT a.identifier, a.rights FROM acl_entries a JOIN folders f ON f.id = a.folder_id
         WHERE f.imap_name = 'shared/support/Queue' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

#[tokio::test]
async fn acl_changes_are_read_at_the_acl_poll_interval() {
    let period = Duration::from_secs(2);
    let pair = poll_pair(&[
        ("FLAGPOST_ACL_POLL_SECS", "2"),
        ("FLAGPOST_FOLDER_POLL_SECS", "3600"),
    ])
    .await;
    for (serve, pool, _) in [&pair.fast, &pair.slow] {
        eventually(WAIT, "Queue's ACL mirrored", || async {
            Ok(queue_acl(pool)
                .await?
                .contains(&(SERVICE_USER.to_owned(), "lra".to_owned()))
                .then_some(()))
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
        .unwrap();
    }

    // Another IMAP client grants bob a right: IMAP does not push that; only the poll finds it.
    let changed = Instant::now();
    pair.dovecot
        .set_acl("support", "Queue", "bob", "lr")
        .await
        .unwrap();
    let bob = ("bob".to_owned(), "lr".to_owned());
    let (serve, pool, _) = &pair.fast;
    eventually(period + SLACK, "bob's right mirrored", || async {
        Ok(queue_acl(pool).await?.contains(&bob).then_some(()))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.log_text()))
    .unwrap();
    let took = changed.elapsed();
    // The server polling hourly has not seen it yet.
    let slow_acl = queue_acl(&pair.slow.1).await.unwrap();
    assert!(
        !slow_acl.contains(&bob),
        "an hourly ACL poll found the change after {took:?}: {slow_acl:?}"
    );
    eprintln!("ACL change mirrored after {took:?} with a {period:?} poll");
    for (serve, ..) in [pair.fast, pair.slow] {
        assert!(serve.stop().await.unwrap().success());
    }
}

#[tokio::test]
async fn new_folders_are_found_at_the_folder_poll_interval() {
    let period = Duration::from_secs(2);
    let pair = poll_pair(&[
        ("FLAGPOST_FOLDER_POLL_SECS", "2"),
        ("FLAGPOST_ACL_POLL_SECS", "3600"),
    ])
    .await;

    // Another IMAP client creates a folder and shares it with the service account.
    let changed = Instant::now();
    pair.dovecot
        .create_folder("support", "Fresh")
        .await
        .unwrap();
    pair.dovecot
        .set_acl("support", "Fresh", SERVICE_USER, "lr")
        .await
        .unwrap();
    let (serve, pool, _) = &pair.fast;
    wait_live_within(
        pool,
        &[
            "shared/support/Billing",
            "shared/support/Fresh",
            "shared/support/Queue",
        ],
        period + SLACK,
        serve,
    )
    .await;
    let took = changed.elapsed();
    let slow = mirrored_folders(&pair.slow.1).await.unwrap();
    assert!(
        !slow.iter().any(|f| f.ends_with("/Fresh")),
        "an hourly folder poll found the folder after {took:?}: {slow:?}"
    );
    eprintln!("new folder mirrored after {took:?} with a {period:?} poll");

    // Removed the same way.
    pair.dovecot
        .doveadm(&["mailbox", "delete", "-u", "support", "Fresh"])
        .await
        .unwrap();
    wait_live_within(
        pool,
        &["shared/support/Billing", "shared/support/Queue"],
        period + SLACK,
        serve,
    )
    .await;
    for (serve, ..) in [pair.fast, pair.slow] {
        assert!(serve.stop().await.unwrap().success());
    }
}

/// An HTTP "receiver" that accepts connections and never answers.
async fn silent_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    url
}

#[tokio::test]
async fn an_unanswered_webhook_attempt_times_out_after_the_configured_seconds() {
    let f = crate::api::fixture_with(&[
        ("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("FLAGPOST_WEBHOOK_TIMEOUT_SECS", "1".into()),
        // One attempt is enough to look at; the retry would come an hour later.
        ("FLAGPOST_WEBHOOK_RETRY_BASE_MS", "3600000".into()),
    ])
    .await
    .unwrap();
    let carol = f.api.login("carol", "carol-pw").await.unwrap();
    let url = silent_receiver().await;
    let r = f
        .api
        .send(
            "POST",
            "/api/v1/webhooks",
            Some(&carol),
            Some(&json!({ "url": url, "events": ["message.updated"] })),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let hook = r.json["id"].as_str().unwrap().to_owned();
    f.dovecot
        .store("support", "Queue", f.queue_uids[0], "+FLAGS (\\Flagged)")
        .await
        .unwrap();
    let attempt: Value = eventually(WAIT, "the first attempt recorded", || async {
        let r = f
            .api
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &carol)
            .await?;
        Ok(r.json["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["attempt"].as_i64().unwrap_or(0) >= 1 && !d["error"].is_null())
            .cloned())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", f.serve.log_text()))
    .unwrap();
    let ms = attempt["duration_ms"].as_u64().unwrap();
    // About one second (with room for a loaded machine): given up well before the 10 s default.
    assert!((900..9_000).contains(&ms), "{attempt}");
    assert_eq!(attempt["status"], "pending", "{attempt}");
    assert!(attempt["response_status"].is_null(), "{attempt}");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("timed out"),
        "{attempt}"
    );
}

/// The JSON log lines of `log`, each parsed (panics on a line that is not JSON).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nlog:\n{log}"))
        })
        .collect()
}

/// Runs `serve` with `log` as `FLAGPOST_LOG` (unset when `None`) and JSON output until its
/// folders are live; returns (level, target) of each line.
async fn levels_with(filter: Option<&str>) -> Vec<(String, String)> {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_LISTEN", addr.to_string()));
    env.push(("FLAGPOST_LOG_FORMAT", "json".into()));
    if let Some(f) = filter {
        env.push(("FLAGPOST_LOG", f.into()));
    }
    let pool = pool(&db).await;
    let log = serve_stderr(&[], &env, addr, async {
        eventually(WAIT, "the folders live", || async {
            let live: i64 =
                sqlx::query_scalar("SELECT count(*) FROM folders WHERE sync_state = 'live'")
                    .fetch_one(&pool)
                    .await?;
            Ok((live == 2).then_some(()))
        })
        .await
    })
    .await
    .unwrap();
    json_lines(&log)
        .into_iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap_or("").to_owned(),
                l["target"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn flagpost_log_is_a_tracing_filter() {
    // Default `info`: info lines, no debug.
    let info = levels_with(None).await;
    assert!(info.iter().any(|l| l.0 == "INFO"), "{info:?}");
    assert!(
        !info.iter().any(|l| l.0 == "DEBUG" || l.0 == "TRACE"),
        "{info:?}"
    );

    // `warn`: the same run shows no info lines.
    let warn = levels_with(Some("warn")).await;
    assert!(
        warn.iter().all(|l| l.0 == "WARN" || l.0 == "ERROR"),
        "{warn:?}"
    );

    // `warn,flagpost_imap=debug`: debug lines, only from the IMAP crate.
    let imap_debug = levels_with(Some("warn,flagpost_imap=debug")).await;
    assert!(imap_debug.iter().any(|l| l.0 == "DEBUG"), "{imap_debug:?}");
    assert!(
        imap_debug
            .iter()
            .all(|l| l.0 == "WARN" || l.0 == "ERROR" || l.1.starts_with("flagpost_imap")),
        "{imap_debug:?}"
    );
}

#[tokio::test]
async fn flagpost_log_format_json_writes_one_json_object_per_line() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_LISTEN", addr.to_string()));

    let run = |format: Option<&'static str>| {
        let mut env = env.clone();
        if let Some(f) = format {
            env.push(("FLAGPOST_LOG_FORMAT", f.into()));
        }
        async move {
            serve_stderr(&[], &env, addr, async {
                // A request and a login put more than start-up lines in the log.
                let api = Api::new(addr);
                api.login("alice", "alice-pw").await.map(drop)
            })
            .await
            .unwrap()
        }
    };

    let json = run(Some("json")).await;
    let lines = json_lines(&json);
    assert!(lines.len() >= 2, "{json}");
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{json}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "serving"
                && l["fields"]["listen"] == addr.to_string()),
        "{json}"
    );

    // The default, `text`: the same lines for people, none of them JSON.
    let plain = run(None).await;
    let serving = plain
        .lines()
        .find(|l| l.contains("serving"))
        .unwrap_or_else(|| panic!("no serving line:\n{plain}"));
    assert!(serving.contains("INFO"), "{serving}");
    assert!(
        plain
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "{plain}"
    );
}

/// Every §4 variable (and the other settings `flagpost` has), the flag the contract promises
/// for it, and a value that is wrong for it.
const BAD_VALUES: &[(&str, &str)] = &[
    ("FLAGPOST_DATABASE_URL", "mysql://localhost/flagpost"),
    ("FLAGPOST_IMAP_HOST", "imap example org"),
    ("FLAGPOST_IMAP_PORT", "99999"),
    ("FLAGPOST_IMAP_TLS", "ssl"),
    ("FLAGPOST_IMAP_ALLOW_PLAINTEXT", "maybe"),
    ("FLAGPOST_IMAP_CA_FILE", "/nonexistent/flagpost-ca.pem"),
    (
        "FLAGPOST_IMAP_PASSWORD_FILE",
        "/nonexistent/flagpost-password",
    ),
    ("FLAGPOST_FOLDERS", "shared/support/*\nINBOX"),
    ("FLAGPOST_LISTEN", "localhost:eighty"),
    ("FLAGPOST_JWT_SECRET", "too-short"),
    ("FLAGPOST_JWT_SECRET_FILE", "/nonexistent/flagpost-jwt"),
    ("FLAGPOST_ACL_POLL_SECS", "0"),
    ("FLAGPOST_FOLDER_POLL_SECS", "soon"),
    ("FLAGPOST_IMAP_MAX_CONNECTIONS", "0"),
    ("FLAGPOST_WEBHOOK_ALLOW_PRIVATE", "sometimes"),
    ("FLAGPOST_WEBHOOK_TIMEOUT_SECS", "0"),
    ("FLAGPOST_LOG", "flagpost=loud"),
    ("FLAGPOST_LOG_FORMAT", "xml"),
    ("FLAGPOST_SESSION_TTL_SECS", "1"),
    ("FLAGPOST_CORS_ORIGINS", "desk.example.com"),
    ("FLAGPOST_IMAP_POLL_SECS", "0"),
    ("FLAGPOST_IMAP_IDLE_CHECK_SECS", "1800"),
    ("FLAGPOST_WEBHOOK_RETRY_BASE_MS", "0"),
];

/// `FLAGPOST_IMAP_PORT` → `--imap-port`.
fn flag_of(var: &str) -> String {
    format!(
        "--{}",
        var.trim_start_matches("FLAGPOST_")
            .to_ascii_lowercase()
            .replace('_', "-")
    )
}

#[tokio::test]
async fn every_variable_is_a_flag_and_a_bad_value_is_one_line_naming_it() {
    // Valid settings (nothing is contacted: configuration is checked first).
    let valid = vec![
        (
            "FLAGPOST_DATABASE_URL",
            "postgres://localhost/flagpost".to_owned(),
        ),
        ("FLAGPOST_IMAP_HOST", "localhost".to_owned()),
        ("FLAGPOST_IMAP_USER", "flagpost".to_owned()),
        ("FLAGPOST_IMAP_PASSWORD", "service-pw".to_owned()),
    ];
    // The secret-file variables only count when the secret itself is not given.
    let base = |var: &str| match var {
        "FLAGPOST_IMAP_PASSWORD_FILE" => without(valid.clone(), "FLAGPOST_IMAP_PASSWORD"),
        _ => valid.clone(),
    };
    let expect_one_line = |how: &str, out: &std::process::Output, var: &str, flag: &str| {
        let (_, stderr) = text(out);
        assert_eq!(out.status.code(), Some(2), "{how}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{how}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {var} ({flag}): ")),
            "{how}: {stderr}"
        );
    };
    for &(var, bad) in BAD_VALUES {
        let flag = flag_of(var);
        let out = run_flagpost(&["check"], &with(base(var), var, bad))
            .await
            .unwrap();
        expect_one_line(&format!("{var}={bad:?}"), &out, var, &flag);
        // The flag exists (clap would refuse an unknown one with its own message), before or
        // after the command.
        let out = run_flagpost(&["check", &flag, bad], &base(var))
            .await
            .unwrap();
        expect_one_line(&format!("check {flag} {bad:?}"), &out, var, &flag);
        let out = run_flagpost(&[&flag, bad, "check"], &base(var))
            .await
            .unwrap();
        expect_one_line(&format!("{flag} {bad:?} check"), &out, var, &flag);
    }
    // Required ones, missing.
    for var in [
        "FLAGPOST_IMAP_HOST",
        "FLAGPOST_IMAP_USER",
        "FLAGPOST_IMAP_PASSWORD",
    ] {
        let out = run_flagpost(&["check"], &without(valid.clone(), var))
            .await
            .unwrap();
        expect_one_line(&format!("no {var}"), &out, var, &flag_of(var));
    }
    // FLAGPOST_ADMINS takes any list of names; its flag is accepted.
    let out = run_flagpost(
        &["check", "--admins", "carol,dave", "--imap-host", "bad host"],
        &valid,
    )
    .await
    .unwrap();
    expect_one_line("--admins", &out, "FLAGPOST_IMAP_HOST", "--imap-host");
}

#[tokio::test]
async fn a_flag_beats_the_environment() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = with(
        flagpost_env(&dovecot, &db),
        "FLAGPOST_IMAP_PASSWORD",
        "wrong-password-in-env",
    );
    // The environment alone fails to log in.
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

    let out = run_flagpost(
        &[
            "check",
            "--imap-password",
            "service-pw",
            "--folders",
            "shared/support/Queue",
        ],
        &env,
    )
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("folders       1 match"), "{stdout}");
    assert!(!stdout.contains("shared/support/Billing"), "{stdout}");

    // serve --listen wins over FLAGPOST_LISTEN, which names a port this test holds: a server
    // that used it could not start.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut env = flagpost_env(&dovecot, &db);
    env.push(("FLAGPOST_LISTEN", held.local_addr().unwrap().to_string()));
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let listen = addr.to_string();
    let log = serve_stderr(&["--listen", &listen], &env, addr, async {
        let r = reqwest::get(format!("http://{addr}/livez")).await?;
        anyhow::ensure!(r.status() == 200, "livez: {}", r.status());
        Ok(())
    })
    .await
    .unwrap();
    assert!(log.contains("serving"), "{log}");
    drop(held);
}

/// A CA file that exists but holds no certificate (a key, a DER file, a typo'd path to some
/// other file) stops start-up with one line naming FLAGPOST_IMAP_CA_FILE, instead of failing
/// every IMAP connection later.
#[tokio::test]
async fn a_ca_file_without_a_certificate_is_one_line_naming_it() {
    let dir = std::env::temp_dir().join(format!("flagpost-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not-a-certificate.pem");
    std::fs::write(&not_pem, "just some text\n").unwrap();
    let garbled = dir.join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for file in [&not_pem, &garbled] {
        let env = vec![
            (
                "FLAGPOST_DATABASE_URL",
                "postgres://localhost/flagpost".to_owned(),
            ),
            ("FLAGPOST_IMAP_HOST", "localhost".to_owned()),
            ("FLAGPOST_IMAP_USER", "flagpost".to_owned()),
            ("FLAGPOST_IMAP_PASSWORD", "service-pw".to_owned()),
            ("FLAGPOST_IMAP_CA_FILE", file.display().to_string()),
        ];
        let out = run_flagpost(&["serve"], &env).await.unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: FLAGPOST_IMAP_CA_FILE (--imap-ca-file): "),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
