//! `flagpost check`: is this configuration able to run? Connects to PostgreSQL and to IMAP,
//! prints the server's capabilities, the folders `FLAGPOST_FOLDERS` matches, and per folder the
//! service account's rights and whether it holds `a` (needed to mirror the ACL).
//!
//! Every problem is reported, not only the first; the exit status is non-zero if any was found.

use std::process::ExitCode;
use std::time::Duration;

use flagpost_domain::{Right, Rights};
use flagpost_imap::TlsMode;

use crate::config::{self, Config};

/// Capabilities Flagpost relies on, and what it does without each.
const WANTED: &[(&str, &str)] = &[
    ("IDLE", "folders will be polled instead of pushed"),
    ("CONDSTORE", "every resync rescans all flags"),
    ("QRESYNC", "expunges are found by comparing UID sets"),
    (
        "ACL",
        "rights cannot be mirrored; the API will grant nothing",
    ),
];

/// Runs the check and prints its report on stdout.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    let imap = config.imap.as_ref().expect("check needs IMAP settings");

    println!(
        "{:<13} ok (IMAP {}:{} tls={}, user {}, folders {})",
        "config",
        imap.settings.host,
        imap.settings.port,
        imap.settings.tls.as_str(),
        imap.user,
        config.folders.join(",")
    );

    // PostgreSQL
    let url = config
        .database_url
        .as_ref()
        .expect("check needs a database URL");
    match flagpost_store::connect(url.expose(), Duration::from_secs(10)).await {
        Ok(pool) => {
            let version = flagpost_store::server_version(&pool)
                .await
                .unwrap_or_default();
            let applied = flagpost_store::applied_versions(&pool)
                .await
                .unwrap_or_default();
            let known = flagpost_store::MIGRATOR.iter().count();
            let schema = if applied.len() >= known {
                "schema up to date".to_owned()
            } else {
                format!(
                    "{} of {known} migrations pending (`flagpost migrate` or `serve` applies them)",
                    known - applied.len()
                )
            };
            println!("{:<13} ok (PostgreSQL {version}, {schema})", "database");
            pool.close().await;
        }
        Err(e) => {
            let line = format!(
                "FLAGPOST_DATABASE_URL: cannot connect to PostgreSQL at {}: {e}",
                config::redact_url(url.expose())
            );
            println!("{:<13} FAILED: {line}", "database");
            problems.push(format!("database: {line}"));
        }
    }

    // IMAP
    match flagpost_imap::login(&imap.settings, &imap.user, imap.password.expose()).await {
        Err(e) => {
            let line = format!(
                "{}:{} as {}: {e}",
                imap.settings.host, imap.settings.port, imap.user
            );
            println!("{:<13} FAILED: {line}", "imap");
            problems.push(format!("imap: {line}"));
        }
        Ok(mut session) => {
            let transport = match imap.settings.tls {
                TlsMode::Implicit => "implicit TLS, certificate verified",
                TlsMode::StartTls => "STARTTLS, certificate verified",
                TlsMode::None => "NO TLS (plain text)",
            };
            println!(
                "{:<13} ok ({}:{}, {transport}, logged in as {})",
                "imap", imap.settings.host, imap.settings.port, imap.user
            );
            if let Err(e) = report_imap(config, &mut session, &mut problems).await {
                println!("{:<13} FAILED: {e}", "imap");
                problems.push(format!("imap: {e}"));
            }
            let _ = session.logout().await;
        }
    }

    if problems.is_empty() {
        println!("{:<13} ok", "result");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{:<13} FAILED ({} problem(s))", "result", problems.len());
        for p in &problems {
            eprintln!("error: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

async fn report_imap(
    config: &Config,
    session: &mut flagpost_imap::Session,
    problems: &mut Vec<String>,
) -> Result<(), flagpost_imap::ConnectError> {
    let caps = flagpost_imap::command::capabilities(session).await?;
    println!("{:<13} {}", "capabilities", caps.join(" "));
    let name = if caps.iter().any(|c| c.eq_ignore_ascii_case("ID")) {
        flagpost_imap::command::server_name(session).await?
    } else {
        None
    };
    let rules = match flagpost_domain::acl::AclDialect::from_server_name(name.as_deref()) {
        flagpost_domain::acl::AclDialect::Dovecot => "Dovecot's ACL rules",
        flagpost_domain::acl::AclDialect::Rfc4314 => "RFC 4314's union rule (Cyrus)",
        flagpost_domain::acl::AclDialect::Unknown => {
            "not recognised: only rights both Dovecot's and RFC 4314's rules allow"
        }
    };
    println!(
        "{:<13} {} ({rules})",
        "server",
        name.as_deref().unwrap_or("(no ID)")
    );
    for (cap, without) in WANTED {
        if !caps.iter().any(|c| c.eq_ignore_ascii_case(cap)) {
            println!(
                "{:<13} the server does not offer {cap}: {without}",
                "warning"
            );
        }
    }

    let folders = flagpost_imap::list_folders(session, &config.folders).await?;
    println!(
        "{:<13} {} match {}",
        "folders",
        folders.len(),
        config
            .folders
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if folders.is_empty() {
        problems.push(format!(
            "folders: no selectable folder matches FLAGPOST_FOLDERS ({}); check the patterns and that the service account has `l` on the folders",
            config.folders.join(",")
        ));
    }
    let width = folders.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &folders {
        let shown = if f.name == f.imap_name {
            f.name.clone()
        } else {
            format!("{} [{}]", f.name, f.imap_name)
        };
        match flagpost_imap::my_rights(session, &f.imap_name).await {
            Ok(rights) => {
                let admin = if rights.contains(Right::Administer) {
                    "yes".to_owned()
                } else {
                    "no (the ACL of this folder cannot be mirrored; grant the service account `a`)"
                        .to_owned()
                };
                // Flag changes made through the API are stored by the service account on the
                // users' behalf (each user's own rights decide what they may ask for).
                let writes = match (rights.contains(Right::Write), rights.contains(Right::Seen)) {
                    (true, true) => "yes",
                    (true, false) => "answered/flagged only (grant `s` for seen)",
                    (false, true) => "seen only (grant `w` for answered/flagged)",
                    (false, false) => "no (grant `w s` to change flags through the API)",
                };
                println!(
                    "  {shown:<width$}  rights {:<11}  a: {admin}  API writes: {writes}",
                    rights.to_string()
                );
                let needed = Rights::NONE.with(Right::Lookup).with(Right::Read);
                if !needed.minus(rights).is_empty() {
                    problems.push(format!(
                        "folder {}: the service account lacks `{}` and cannot read it",
                        f.name,
                        needed.minus(rights)
                    ));
                }
            }
            Err(e) => {
                println!("  {shown:<width$}  MYRIGHTS FAILED: {e}");
                problems.push(format!("folder {}: MYRIGHTS failed: {e}", f.name));
            }
        }
    }
    Ok(())
}
