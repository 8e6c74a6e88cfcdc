//! The `flagpost` command line (contract §3): configuration, tracing, wiring and shutdown.

pub mod check;
pub mod config;
mod demo;
pub mod gateway;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LogFormat, Needs, RawConfig};

/// Flagpost: a live, shared view of IMAP support mailboxes.
#[derive(Debug, Parser)]
#[command(name = "flagpost", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    config: RawConfig,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, start the watchers, serve the API and dashboard until SIGTERM.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, connect to PostgreSQL and IMAP, print capabilities, the
    /// folders matched and whether the service account holds `a` on each.
    Check,
    /// Print the OpenAPI 3.1 document.
    Openapi,
    /// Manage integration tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Run a self-contained demo with a private PostgreSQL and Dovecot.
    Demo,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token and print it once.
    Create {
        /// The IMAP user the token acts as.
        #[arg(long)]
        identity: String,
        /// Comma-separated scopes: read, write, acl.
        #[arg(long)]
        scope: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
    },
    /// List tokens (without secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// Exit status for configuration errors (as sysexits' EX_USAGE would be too specific).
const EXIT_CONFIG: u8 = 2;

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let needs = match &cli.command {
        Command::Serve | Command::Check => Needs {
            database: true,
            imap: true,
        },
        Command::Migrate | Command::Token { .. } => Needs {
            database: true,
            imap: false,
        },
        Command::Openapi | Command::Demo => Needs::default(),
    };
    let config = match Config::from_raw(&cli.config, std::env::var("DATABASE_URL").ok(), needs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(&config);
    // `flagpost demo` builds its own configuration on top of what was given.
    let demo_raw = cli.config.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Migrate => migrate(&config).await,
            Command::Check => check::run(&config).await,
            Command::Serve => serve(&config).await,
            Command::Openapi => {
                print!("{}", flagpost_api::openapi::openapi_json());
                Ok(ExitCode::SUCCESS)
            }
            Command::Token { action } => token(&config, action).await,
            Command::Demo => demo::run(&demo_raw, &config).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            use std::io::Write;
            // Not `eprintln!`: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Libraries whose debug and trace output carries protocol lines with credentials in them:
/// async-imap logs every command it sends, LOGIN with its password included. They are capped
/// at `info` whatever `FLAGPOST_LOG` asks for (a directive added later replaces one for the
/// same target), so no log level ever shows a secret.
const SECRET_BEARING_TARGETS: [&str; 1] = ["async_imap=info"];

fn init_tracing(config: &Config) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for directive in SECRET_BEARING_TARGETS {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    // A log line that cannot be written is dropped. (By default the subscriber reports that on
    // stderr with `eprintln!`, which panics when stderr itself is the problem, e.g. a closed
    // pipe to a log collector that died: every task that logged would die with it.)
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn connect_db(config: &Config) -> anyhow::Result<flagpost_store::PgPool> {
    let url = config
        .database_url
        .as_ref()
        .context("FLAGPOST_DATABASE_URL is not set")?;
    flagpost_store::connect(url.expose(), Duration::from_secs(10))
        .await
        .with_context(|| {
            format!(
                "FLAGPOST_DATABASE_URL: cannot connect to PostgreSQL at {}",
                config::redact_url(url.expose())
            )
        })
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    let pool = connect_db(config).await?;
    let applied = flagpost_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    let total = flagpost_store::applied_versions(&pool).await?.len();
    if applied.is_empty() {
        println!("database is up to date ({total} migrations applied)");
    } else {
        println!(
            "applied {} migration(s): {}; {total} in all",
            applied.len(),
            applied
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn token(config: &Config, action: TokenAction) -> anyhow::Result<ExitCode> {
    let pool = connect_db(config).await?;
    flagpost_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    let code = match action {
        TokenAction::Create {
            identity,
            scope,
            name,
        } => {
            let scopes: Vec<String> = scope
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            match flagpost_api::routes::tokens::validate_new_token(&name, &identity, &scopes, None)
            {
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
                Ok(scopes) => {
                    let secret = flagpost_api::auth::new_token_secret();
                    let row = flagpost_store::auth::create_token(
                        &pool,
                        name.trim(),
                        &identity,
                        &scopes,
                        &flagpost_api::auth::token_digest(&secret),
                        None,
                        None,
                    )
                    .await?;
                    println!(
                        "created token {} {:?} acting as {:?} with scopes {}; it is shown only now:",
                        row.id,
                        row.name,
                        row.identity,
                        row.scopes.join(",")
                    );
                    println!("{secret}");
                    ExitCode::SUCCESS
                }
            }
        }
        TokenAction::List => {
            let tokens = flagpost_store::auth::list_tokens(&pool).await?;
            if tokens.is_empty() {
                println!("no tokens");
            } else {
                println!(
                    "{:<6} {:<24} {:<20} {:<15} {:<25} LAST USED",
                    "ID", "NAME", "IDENTITY", "SCOPES", "CREATED"
                );
                for t in tokens {
                    println!(
                        "{:<6} {:<24} {:<20} {:<15} {:<25} {}",
                        t.id,
                        t.name,
                        t.identity,
                        t.scopes.join(","),
                        t.created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        t.last_used_at
                            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            ExitCode::SUCCESS
        }
        TokenAction::Revoke { id } => match id.trim().parse::<i64>() {
            Ok(n) if flagpost_store::auth::revoke_token(&pool, n).await? => {
                println!("revoked token {n}");
                ExitCode::SUCCESS
            }
            Ok(n) => {
                eprintln!("error: no live token with id {n}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!("error: {id:?} is not a token id");
                ExitCode::from(EXIT_CONFIG)
            }
        },
    };
    pool.close().await;
    Ok(code)
}

async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let pool = connect_db(config).await?;
    flagpost_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("FLAGPOST_LISTEN: cannot listen on {}", config.listen))?;
    tracing::info!(listen = %config.listen, "serving");
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
        tracing::info!("shutting down (a second SIGTERM or ctrl-c stops at once)");
        wait_for_signal().await;
        tracing::warn!("second signal: stopping at once, without a clean shutdown");
        std::process::exit(1);
    });
    serve_on(config, pool.clone(), listener, shutdown).await?;
    pool.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// How long the API keeps serving after a shutdown signal, at most, while the mirror stops.
const SHUTDOWN_DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(15);

/// The mirror, the API and the dashboard on `listener` until `shutdown` is cancelled: what
/// `serve` runs once the database is migrated, and what `flagpost demo` runs on its own servers.
pub(crate) async fn serve_on(
    config: &Config,
    pool: flagpost_store::PgPool,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let imap = config.imap.as_ref().context("IMAP settings are required")?;
    let mirror_cfg = flagpost_imap::mirror::MirrorConfig {
        ctx: flagpost_imap::watch::MirrorContext {
            settings: imap.settings.clone(),
            user: imap.user.clone(),
            password: imap.password.expose().into(),
            pool: pool.clone(),
            poll_interval: config.imap_poll,
            idle_check: config.imap_idle_check,
        },
        patterns: config.folders.clone(),
        folder_poll: config.folder_poll,
        acl_poll: config.acl_poll,
        max_idle: config.imap_max_connections,
    };
    // Cancelled when the mirror task ends, however it ends (the guard also fires on a panic).
    let mirror_done = CancellationToken::new();
    let mirror = tokio::spawn({
        let done = mirror_done.clone().drop_guard();
        let shutdown = shutdown.clone();
        async move {
            flagpost_imap::mirror::run_mirror(
                mirror_cfg,
                flagpost_imap::mirror::MirrorHandle::default(),
                shutdown,
            )
            .await;
            drop(done);
        }
    });
    let api_config = flagpost_api::ApiConfig {
        service_user: imap.user.clone(),
        admins: config.admins.clone(),
        jwt_secret: config
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().as_bytes().to_vec()),
        session_ttl: config.session_ttl,
        cors_origins: config.cors_origins.clone(),
        webhooks: flagpost_api::webhooks::WebhookConfig {
            allow_private: config.webhook_allow_private,
            timeout: config.webhook_timeout,
            retry_base: config.webhook_retry_base,
        },
    };
    let backend = gateway::ImapBackend::new(
        imap.settings.clone(),
        &imap.user,
        imap.password.expose(),
        pool.clone(),
    );
    let state = flagpost_api::AppState::new(
        &api_config,
        pool.clone(),
        std::sync::Arc::new(backend),
        flagpost_api::install_metrics(),
        shutdown.clone(),
    )
    .await
    .context("preparing the HTTP API")?;
    // On shutdown the API keeps answering (`/readyz` with 503) while the watchers leave IDLE
    // and log out, so a load balancer sees the instance going before it is gone; a mirror
    // that cannot finish in time does not hold the listener open.
    let drained = async move {
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN_MAX, mirror_done.cancelled()).await;
    };
    let http = flagpost_api::serve(listener, state, &api_config, drained).await;
    // The HTTP server only returns on shutdown (or a listener failure): stop the mirror too.
    shutdown.cancel();
    if let Err(e) = mirror.await {
        tracing::error!(error = %e, "the mirror task failed");
    }
    http?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = ctrl_c => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
