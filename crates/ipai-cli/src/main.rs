//! `ipai`: the operator's command line for the IPAI bus.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ipai?sslmode=disable";

#[derive(Parser)]
#[command(name = "ipai", version, about = "Operate the IPAI integration bus")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing and apply pending migrations.
    Migrate {
        #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: String,
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Most connections the ingest role `ipai_ingest` may hold (docs/deploy.md).
        #[arg(long, env = "IPAI_INGEST_CONNECTION_LIMIT", default_value_t = 32)]
        ingest_connection_limit: i32,
        /// Most connections the app role `ipai_app` may hold (docs/deploy.md).
        #[arg(long, env = "IPAI_APP_CONNECTION_LIMIT", default_value_t = 24)]
        app_connection_limit: i32,
        /// Most connections the read-only role `integration_reader` may hold.
        #[arg(long, env = "IPAI_READER_CONNECTION_LIMIT", default_value_t = 8)]
        reader_connection_limit: i32,
        /// Most connections the probe role `ipai_probe` (/health, /metrics) may hold.
        #[arg(long, env = "IPAI_PROBE_CONNECTION_LIMIT", default_value_t = 4)]
        probe_connection_limit: i32,
    },
    /// Send signed sample events to ingest (the seed's test-webhook.py): ✅/❌ per event.
    Send(ipai_cli::send::SendArgs),
    /// Outbox counts per status, oldest pending age and recent failures.
    Status(ipai_cli::ops::StatusArgs),
    /// Open alerts (dead letters, stalled queue, misconfigured handler, rejected
    /// credentials, /health degraded); --evaluate <app URL> evaluates and sends now.
    Alerts(ipai_cli::alerts::AlertsArgs),
    /// The dead-letter queue: list dead events, requeue them.
    Dlq {
        #[command(subcommand)]
        command: ipai_cli::ops::DlqCommand,
    },
    /// Replay events by filter: prints what a replay would do (the side effects the
    /// ledger skips and those that would run); --execute replays them.
    Replay(ipai_cli::replay::ReplayArgs),
    /// Reconciliation: the events Odoo marked sent that the bus never stored, per digested
    /// window (SPEC §11).
    Reconcile(ipai_cli::reconcile::ReconcileArgs),
}

/// mimalloc: `ipai replay` plans each of up to hundreds of thousands of events (many small
/// allocations freed at once), where glibc's allocator spent half the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Migrate {
            database_url,
            dir,
            ingest_connection_limit,
            app_connection_limit,
            reader_connection_limit,
            probe_connection_limit,
        } => {
            let roles = ipai_cli::migrate::LoginRoles {
                ingest_connection_limit,
                app_connection_limit,
                reader_connection_limit,
                probe_connection_limit,
                ..Default::default()
            };
            let n = ipai_cli::migrate::migrate_with_roles(&database_url, &dir, &roles).await?;
            println!(
                "migrations: {n} applied to {}",
                ipai_cli::migrate::redact(&database_url)
            );
        }
        Command::Send(args) => {
            if !ipai_cli::send::run(args).await? {
                std::process::exit(1);
            }
        }
        Command::Status(args) => ipai_cli::ops::status(args).await?,
        Command::Dlq { command } => ipai_cli::ops::dlq(command).await?,
        Command::Alerts(args) => ipai_cli::alerts::run(args).await?,
        Command::Replay(args) => {
            if !ipai_cli::replay::run(args).await? {
                std::process::exit(2);
            }
        }
        Command::Reconcile(args) => {
            if !ipai_cli::reconcile::run(args).await? {
                std::process::exit(2);
            }
        }
    }
    Ok(())
}
