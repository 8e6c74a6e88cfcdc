//! `flagpost migrate`: migrations apply to an empty database and re-run as a no-op.

use flagpost_harness::TestDatabase;
use sqlx::ConnectOptions;

use crate::run_flagpost;

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_rerun_as_a_no_op() {
    let db = TestDatabase::create().await.unwrap();
    let env = [("FLAGPOST_DATABASE_URL", db.url())];

    let first = run_flagpost(&["migrate"], &env).await.unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{first:?}");
    let known = flagpost_store::MIGRATOR.iter().count();
    assert!(
        stdout.contains(&format!("applied {known} migration")),
        "{stdout}"
    );

    let mut conn = db.options().connect().await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for t in ["acl_entries", "events", "folders", "messages", "settings"] {
        assert!(
            tables.iter().any(|x| x == t),
            "table {t} missing: {tables:?}"
        );
    }
    let schema_before = schema_fingerprint(&mut conn).await;

    let second = run_flagpost(&["migrate"], &env).await.unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{second:?}");
    assert!(stdout.contains("up to date"), "{stdout}");
    assert_eq!(schema_fingerprint(&mut conn).await, schema_before);
}

#[tokio::test]
async fn the_schema_derives_status_from_flags_with_deleted_winning() {
    let db = TestDatabase::create().await.unwrap();
    let pool = flagpost_store::connect(&db.url(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    flagpost_store::migrate(&pool).await.unwrap();
    let folder: i64 = sqlx::query_scalar(
        "INSERT INTO folders (imap_name, name) VALUES ('shared/support/Queue', 'shared/support/Queue') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&[], "pending"),
        (&["\\Seen"], "pending"),
        (&["\\Answered"], "answered"),
        (&["\\Answered", "\\Deleted"], "deleted"),
    ];
    for (uid, (flags, want)) in (1i64..).zip(cases) {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let status: String = sqlx::query_scalar(
            "INSERT INTO messages (folder_id, uidvalidity, uid, flags, received_at)
             VALUES ($1, 7, $2, $3, now()) RETURNING status",
        )
        .bind(folder)
        .bind(uid)
        .bind(&flags)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(status, want, "{flags:?}");
    }
    // (folder, UIDVALIDITY, UID) is the key
    let dup = sqlx::query(
        "INSERT INTO messages (folder_id, uidvalidity, uid, received_at) VALUES ($1, 7, 1, now())",
    )
    .bind(folder)
    .execute(&pool)
    .await;
    assert!(
        dup.is_err(),
        "a second row for the same (folder, uidvalidity, uid) must be refused"
    );
    pool.close().await;
}

async fn schema_fingerprint(conn: &mut sqlx::PgConnection) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}
