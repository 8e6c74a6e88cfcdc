//! `flagpost check` against the harness's Dovecot and PostgreSQL.

use flagpost_e2e::{flagpost_env, support_fixture};
use flagpost_harness::TestDatabase;

use crate::run_flagpost;

pub(crate) fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn with(
    mut env: Vec<(&'static str, String)>,
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != key);
    env.push((key, value.to_owned()));
    env
}

pub(crate) fn without(
    mut env: Vec<(&'static str, String)>,
    key: &str,
) -> Vec<(&'static str, String)> {
    env.retain(|(k, _)| *k != key);
    env
}

#[tokio::test]
async fn check_prints_capabilities_folders_and_the_a_right_per_folder() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let out = run_flagpost(&["check"], &flagpost_env(&dovecot, &db))
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    let caps = stdout
        .lines()
        .find(|l| l.starts_with("capabilities"))
        .unwrap_or_else(|| panic!("no capabilities line:\n{stdout}"));
    for cap in ["IMAP4rev1", "IDLE", "ACL", "CONDSTORE", "QRESYNC"] {
        assert!(caps.split_whitespace().any(|c| c == cap), "{cap} in {caps}");
    }
    assert!(
        stdout.contains("implicit TLS, certificate verified"),
        "{stdout}"
    );
    // The server is recognised by its ID, which decides how its ACLs are read.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("server") && l.contains("Dovecot (Dovecot's ACL rules)")),
        "{stdout}"
    );
    assert!(stdout.contains("folders       2 match"), "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{stdout}"))
            .to_owned()
    };
    let queue = line("shared/support/Queue");
    assert!(queue.contains("rights lra"), "{queue}");
    assert!(queue.contains("a: yes"), "{queue}");
    let billing = line("shared/support/Billing");
    assert!(billing.contains("rights lr "), "{billing}");
    assert!(billing.contains("a: no"), "{billing}");
    assert!(stdout.contains("schema up to date") || stdout.contains("migrations pending"));
    assert!(!stdout.contains("service-pw") && !stderr.contains("service-pw"));
}

#[tokio::test]
async fn check_works_over_starttls_and_plain_loopback() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let base = with(
        flagpost_env(&dovecot, &db),
        "FLAGPOST_IMAP_PORT",
        &dovecot.imap_port().to_string(),
    );
    let starttls = run_flagpost(
        &["check"],
        &with(base.clone(), "FLAGPOST_IMAP_TLS", "starttls"),
    )
    .await
    .unwrap();
    let (stdout, stderr) = text(&starttls);
    assert!(starttls.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("STARTTLS, certificate verified"),
        "{stdout}"
    );

    let plain = with(
        with(base, "FLAGPOST_IMAP_TLS", "none"),
        "FLAGPOST_IMAP_HOST",
        "127.0.0.1",
    );
    let out = run_flagpost(&["check"], &plain).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("NO TLS"), "{stdout}");
}

#[tokio::test]
async fn check_with_a_wrong_password_fails_with_a_clear_line() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = with(
        flagpost_env(&dovecot, &db),
        "FLAGPOST_IMAP_PASSWORD",
        "wrong-password-123",
    );
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: imap:"))
        .unwrap_or_else(|| panic!("no imap error line:\n{stderr}"));
    assert!(line.contains("refused the login"), "{line}");
    assert!(!stdout.contains("wrong-password-123") && !stderr.contains("wrong-password-123"));
}

#[tokio::test]
async fn check_refuses_a_certificate_it_cannot_verify() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = without(flagpost_env(&dovecot, &db), "FLAGPOST_IMAP_CA_FILE");
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}

/// Secrets never appear in logs, at any level: with `FLAGPOST_LOG=trace` (even asking for
/// async-imap's own trace output, which echoes every command it sends, LOGIN included) the
/// service account's password is nowhere in `check`'s output.
#[tokio::test]
async fn trace_logging_never_shows_the_service_password() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    for log in ["trace", "trace,async_imap=trace"] {
        let env = with(flagpost_env(&dovecot, &db), "FLAGPOST_LOG", log);
        let out = run_flagpost(&["check"], &env).await.unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(
            stderr.contains("TRACE"),
            "{log} logs at trace level:\n{stderr}"
        );
        assert!(
            !stdout.contains("service-pw") && !stderr.contains("service-pw"),
            "FLAGPOST_LOG={log} shows the password:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn check_reports_an_unreachable_database() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let env = with(
        flagpost_env(&dovecot, &db),
        "FLAGPOST_DATABASE_URL",
        &format!("postgres://nobody:db-secret@127.0.0.1:{port}/none"),
    );
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("error: database:"), "{stderr}");
    assert!(!stdout.contains("db-secret") && !stderr.contains("db-secret"));
    // IMAP is still checked and reported
    assert!(stdout.contains("capabilities"), "{stdout}");
}

#[tokio::test]
async fn a_missing_imap_host_stops_with_one_line_naming_it() {
    let out = run_flagpost(
        &["check"],
        &[
            ("FLAGPOST_DATABASE_URL", "postgres://localhost/x".to_owned()),
            ("FLAGPOST_IMAP_USER", "flagpost".to_owned()),
            ("FLAGPOST_IMAP_PASSWORD", "pw".to_owned()),
        ],
    )
    .await
    .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: FLAGPOST_IMAP_HOST"), "{stderr}");
}

#[tokio::test]
async fn a_malformed_listen_address_stops_with_one_line_naming_it() {
    let out = run_flagpost(
        &["serve"],
        &[
            ("FLAGPOST_DATABASE_URL", "postgres://localhost/x".to_owned()),
            ("FLAGPOST_IMAP_HOST", "localhost".to_owned()),
            ("FLAGPOST_IMAP_USER", "flagpost".to_owned()),
            ("FLAGPOST_IMAP_PASSWORD", "pw".to_owned()),
            ("FLAGPOST_LISTEN", "localhost:eighty".to_owned()),
        ],
    )
    .await
    .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: FLAGPOST_LISTEN"), "{stderr}");
}

/// Failures found only when `serve` starts name the setting to fix: a database that does not
/// exist names FLAGPOST_DATABASE_URL (without its password), an address already taken names
/// FLAGPOST_LISTEN.
#[tokio::test]
async fn start_up_failures_name_the_setting_to_fix() {
    let dovecot = support_fixture().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = flagpost_env(&dovecot, &db);
    let url = env
        .iter()
        .find(|(k, _)| *k == "FLAGPOST_DATABASE_URL")
        .map(|(_, v)| v.clone())
        .unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    let missing = with(
        env.clone(),
        "FLAGPOST_DATABASE_URL",
        &format!("{base}/flagpost_no_such_database"),
    );
    let out = run_flagpost(&["serve"], &missing).await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: FLAGPOST_DATABASE_URL: cannot connect to PostgreSQL"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let busy = with(env, "FLAGPOST_LISTEN", &addr);
    let out = run_flagpost(&["serve"], &busy).await.unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("error: FLAGPOST_LISTEN: cannot listen on {addr}")),
        "{stderr}"
    );
    drop(taken);
}

/// A service account whose password is not ASCII logs in (with AUTHENTICATE PLAIN, since
/// LOGIN's quoted strings may hold only 7-bit text), and the password shows nowhere.
#[tokio::test]
async fn a_service_account_with_a_non_ascii_password_logs_in() {
    let dovecot = support_fixture().await.unwrap();
    let (user, password) = ("flagpost-utf8", "Pässwörd ✓ \"quoted\" \\ {3}");
    dovecot.add_user(user, password).unwrap();
    flagpost_e2e::wait_until_dovecot_knows(&dovecot, user, password)
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", user, "lra")
        .await
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    let env = with(
        with(flagpost_env(&dovecot, &db), "FLAGPOST_IMAP_USER", user),
        "FLAGPOST_IMAP_PASSWORD",
        password,
    );
    let out = run_flagpost(&["check"], &env).await.unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("folders       1 match"), "{stdout}");
    assert!(!stdout.contains("Pässwörd") && !stderr.contains("Pässwörd"));
}
