//! The harness's own promises: a private Dovecot that behaves like a shared-folder deployment,
//! and a fresh PostgreSQL database per test.

use std::time::Duration;

use flagpost_domain::Rights;
use flagpost_e2e::{SERVICE_USER, support_fixture};
use flagpost_harness::postgres::Cluster;
use flagpost_harness::{Dovecot, ImapClient, ImapFixture, TestDatabase};
use sqlx::{ConnectOptions, Connection};

#[tokio::test]
async fn tls_login_as_a_test_user_verifies_the_generated_ca() {
    let dovecot = Dovecot::start().await.unwrap();
    dovecot.add_user("alice", "secret-1").unwrap();
    let mut c = ImapClient::connect_tls(dovecot.imaps_port(), dovecot.certificates())
        .await
        .unwrap();
    c.login("alice", "secret-1").await.unwrap();
    let caps = c.command_ok("CAPABILITY").await.unwrap();
    let caps = caps.lines_of("CAPABILITY").next().unwrap().to_owned();
    for cap in ["IDLE", "ACL", "CONDSTORE", "QRESYNC"] {
        assert!(
            caps.split(' ').any(|c| c == cap),
            "{cap} missing from {caps}"
        );
    }
    c.logout().await;

    let mut wrong = ImapClient::connect_tls(dovecot.imaps_port(), dovecot.certificates())
        .await
        .unwrap();
    assert!(wrong.login("alice", "not-the-password").await.is_err());
}

#[tokio::test]
async fn the_service_account_sees_shared_folders_and_getacl_returns_what_was_set() {
    let dovecot = support_fixture().await.unwrap();
    let mut c = dovecot.client(SERVICE_USER).await.unwrap();
    let list = c
        .command_ok("LIST \"\" \"shared/support/*\"")
        .await
        .unwrap();
    let names: Vec<String> = list
        .lines_of("LIST")
        .map(|l| {
            flagpost_harness::dovecot::imap_words(l)
                .last()
                .unwrap()
                .clone()
        })
        .collect();
    assert!(
        names.contains(&"shared/support/Queue".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"shared/support/Billing".to_owned()),
        "{names:?}"
    );

    // alice has no rights yet: the folder is invisible to her
    let mut alice = dovecot.client("alice").await.unwrap();
    let list = alice.command_ok("LIST \"\" \"shared/*\"").await.unwrap();
    assert!(
        !list.untagged.iter().any(|l| l.contains("Queue")),
        "{list:?}"
    );

    dovecot
        .set_acl("support", "Queue", "alice", "lrsw")
        .await
        .unwrap();
    dovecot
        .set_acl("support", "Queue", "-bob", "w")
        .await
        .unwrap();
    let acl = dovecot.get_acl("support", "Queue").await.unwrap();
    let rights_of = |id: &str| {
        acl.iter()
            .find(|(i, _)| i == id)
            .map(|(_, r)| Rights::from_server(r).to_string())
    };
    assert_eq!(rights_of("alice").as_deref(), Some("lrsw"), "{acl:?}");
    assert_eq!(rights_of("-bob").as_deref(), Some("w"), "{acl:?}");
    assert_eq!(rights_of(SERVICE_USER).as_deref(), Some("lra"), "{acl:?}");

    let my = alice
        .command_ok("MYRIGHTS \"shared/support/Queue\"")
        .await
        .unwrap();
    let line = my.lines_of("MYRIGHTS").next().unwrap();
    let rights = flagpost_harness::dovecot::imap_words(line).pop().unwrap();
    assert_eq!(Rights::from_server(&rights).to_string(), "lrsw");
}

#[tokio::test]
async fn messages_flags_and_expunges_made_by_a_user_are_visible_to_others() {
    let dovecot = support_fixture().await.unwrap();
    dovecot
        .set_acl("support", "Queue", "alice", "lrswte")
        .await
        .unwrap();
    let raw = b"From: Customer <c@example.org>\r\nSubject: help\r\n\r\nbody\r\n";
    let uid = dovecot.append("support", "Queue", raw).await.unwrap();
    let uid2 = dovecot.append("support", "Queue", raw).await.unwrap();
    assert!(uid2 > uid);
    dovecot
        .store("alice", "shared/support/Queue", uid, "+FLAGS (\\Answered)")
        .await
        .unwrap();
    dovecot
        .expunge("alice", "shared/support/Queue", uid2)
        .await
        .unwrap();

    let mut c = dovecot.client(SERVICE_USER).await.unwrap();
    c.command_ok("EXAMINE \"shared/support/Queue\"")
        .await
        .unwrap();
    let r = c.command_ok("UID FETCH 1:* (UID FLAGS)").await.unwrap();
    let fetch: Vec<&String> = r.untagged.iter().filter(|l| l.contains("FETCH")).collect();
    assert_eq!(fetch.len(), 1, "one message left: {fetch:?}");
    assert!(fetch[0].contains(&format!("UID {uid}")), "{fetch:?}");
    assert!(fetch[0].contains("\\Answered"), "{fetch:?}");
}

#[tokio::test]
async fn a_uidvalidity_change_is_observable() {
    let dovecot = support_fixture().await.unwrap();
    let mut c = dovecot.client(SERVICE_USER).await.unwrap();
    let before = uidvalidity(&mut c).await;
    dovecot
        .set_uidvalidity("support", "Queue", before.wrapping_add(1000))
        .await
        .unwrap();
    let mut c = dovecot.client(SERVICE_USER).await.unwrap();
    let after = uidvalidity(&mut c).await;
    assert_eq!(after, before.wrapping_add(1000));
}

async fn uidvalidity(c: &mut ImapClient) -> u32 {
    let r = c
        .command_ok("STATUS \"shared/support/Queue\" (UIDVALIDITY)")
        .await
        .unwrap();
    let line = r.lines_of("STATUS").next().unwrap().to_owned();
    line.split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .parse::<u32>()
        .unwrap()
}

#[tokio::test]
async fn a_kick_disconnects_the_user_and_restart_brings_the_server_back() {
    let mut dovecot = support_fixture().await.unwrap();
    let mut c = dovecot.client(SERVICE_USER).await.unwrap();
    c.command_ok("NOOP").await.unwrap();
    assert!(dovecot.kick(SERVICE_USER).await.unwrap() >= 1);
    // The kick is asynchronous on the server side: poll until the session is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !session_is_closed(&mut c).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the kicked session still answers"
        );
    }
    assert_eq!(
        dovecot.kick("alice").await.unwrap(),
        0,
        "alice had no session"
    );

    dovecot.stop().await.unwrap();
    assert!(
        ImapClient::connect_plain(dovecot.imap_port())
            .await
            .is_err()
    );
    dovecot.restart().await.unwrap();
    let mut c = dovecot.client(SERVICE_USER).await.unwrap();
    c.command_ok("NOOP").await.unwrap();
}

/// True once a NOOP on `c` fails (the server closed the session).
async fn session_is_closed(c: &mut ImapClient) -> bool {
    match c.command("NOOP").await {
        Ok(r) => !r.is_ok(),
        Err(_) => true,
    }
}

#[tokio::test]
async fn each_test_database_is_fresh_and_dropped_afterwards() {
    let a = TestDatabase::create().await.unwrap();
    let b = TestDatabase::create().await.unwrap();
    assert_ne!(a.name(), b.name());
    let mut conn = a.options().connect().await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a new database is empty");
    conn.close().await.unwrap();

    let name = b.name().to_owned();
    let admin = b.options().database("postgres");
    drop(b);
    let mut conn = admin.connect().await.unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        !exists,
        "database {name} should be dropped with its TestDatabase"
    );
}

#[tokio::test]
async fn a_throwaway_cluster_starts_without_any_server_and_leaves_nothing() {
    // This is what the harness falls back to when nothing answers at DATABASE_URL.
    let cluster = Cluster::start().await.unwrap();
    let port = cluster.port();
    let options = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("flagpost")
        .database("postgres");
    let mut conn = options.connect().await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    drop(cluster);
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "postgres still listens on {port} after the cluster was dropped"
    );
}
