//! `ipai reconcile` (SPEC §11): which events Odoo marked sent the bus never stored, per
//! digested window. The logic is `ipai-reconcile`'s (over `integration.reconcile_status`);
//! this is the terminal adapter: flags, the database handle, the output.

use crate::ops::{connect, DbArgs};
use crate::pg::Blocking;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print `{"missing_total", "last_digest_at", "windows": [...]}` as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only the windows starting at this time (RFC 3339); default: every window with a key
    /// still missing and those received in the last 7 days.
    #[arg(long)]
    pub window: Option<String>,
}

/// Runs `ipai reconcile`; `Ok(false)` when the window was refused (exit 2).
pub async fn run(args: ReconcileArgs) -> Result<bool> {
    if let Some(w) = &args.window {
        if chrono::DateTime::parse_from_rfc3339(w).is_err() {
            eprintln!("ipai reconcile: window: {w:?} is not an RFC 3339 time");
            return Ok(false);
        }
    }
    let client = connect(&args.db.database_url).await?;
    let status = ipai_reconcile::status(&mut Blocking(&client), args.window.as_deref())
        .map_err(|e| anyhow::anyhow!("reconcile status: {e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", ipai_reconcile::render_text(&status));
    }
    Ok(true)
}
