//! `ipai replay` (SPEC §12): select events by filter, print what a replay would do (the
//! default: a dry run that changes nothing), and with `--execute` replay them in bounded
//! steps, resumable by running the same command again. The logic is `ipai-replay`'s; this
//! is the terminal adapter: flags, a blocking database handle, exit codes.

use crate::ops::{connect, DbArgs};
use crate::pg::{query_value, Blocking};
use anyhow::Result;
use clap::Args;
use ipai_core::db::Param;
use ipai_replay::{Filter, FilterInput, Preview, ReplayError, Via, PAGE_SIZE};
use serde_json::Value;
use std::io::Write;

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Event type pattern, `*` as wildcard (expense.*).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// An aggregate id, or type/id (expense/4011).
    #[arg(long)]
    pub aggregate: Option<String>,
    /// Events stored at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Events stored before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// dead, failed or done, or a comma list (default: dead,failed).
    #[arg(long)]
    pub status: Option<String>,
    /// The handler: expense, asset or finance (or its component name).
    #[arg(long)]
    pub target: Option<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Replay the events (without it nothing changes).
    #[arg(long)]
    pub execute: bool,
    /// Effect kinds to perform again although recorded: mattermost, email, google_calendar.
    #[arg(long = "redo-effects")]
    pub redo_effects: Option<String>,
    /// Events listed in the text output (every one is planned and counted; --json lists all).
    #[arg(long, default_value_t = 50)]
    pub list: usize,
    /// Who runs the replay, for the audit (default: $USER on this host).
    #[arg(long, env = "IPAI_OPERATOR")]
    pub by: Option<String>,
}

/// The dry run of every matching event, pipelined: the counts on one connection, the pages
/// on a second one (the database builds page n+1 while this process plans page n on a
/// thread of its own). The same plan as `ipai_replay::preview`, which /ops and MCP use a
/// statement at a time.
async fn plan_everything(
    url: &str,
    client: std::sync::Arc<tokio_postgres::Client>,
    filter: &Filter,
    redo: &[String],
    settings: ipai_replay::Settings,
) -> Result<Preview> {
    let pages = connect(url).await?;
    let summary = tokio::spawn({
        let (client, params) = (client.clone(), vec![Param::Json(filter.to_json().clone())]);
        async move { query_value(&client, ipai_replay::SUMMARY_SQL, &params).await }
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Value>>(2);
    let planner = tokio::task::spawn_blocking({
        let redo = redo.to_vec();
        move || {
            let mut preview = Preview::from_summary(&Value::Null);
            while let Some(rows) = rx.blocking_recv() {
                preview.plan_page(rows, &redo, &settings);
            }
            preview
        }
    });
    let mut summary = Some(summary);
    let mut counts = Value::Null;
    // The matched events in seq order, then (when there are any) their followers.
    for followers in [false, true] {
        if followers {
            let answer = match summary.take() {
                Some(task) => task.await?,
                None => Ok(None),
            };
            counts = answer
                .map_err(|e| anyhow::anyhow!("replay plan: {e}"))?
                .unwrap_or_default();
            if counts["followers"].as_i64().unwrap_or_default() == 0 {
                break;
            }
        }
        let mut after = 0i64;
        loop {
            let params = ipai_replay::page_params(filter, after, PAGE_SIZE, followers);
            let rows = match query_value(&pages, ipai_replay::PAGE_SQL, &params)
                .await
                .map_err(|e| anyhow::anyhow!("replay plan: {e}"))?
            {
                Some(Value::Array(rows)) => rows,
                _ => Vec::new(),
            };
            let full = rows.len() as i64 == PAGE_SIZE;
            after = ipai_replay::last_seq(&rows).unwrap_or(after);
            if tx.send(rows).await.is_err() || !full {
                break;
            }
        }
    }
    drop(tx);
    let mut preview = planner.await?;
    let counted = Preview::from_summary(&counts);
    preview.matched = counted.matched;
    preview.followers = counted.followers;
    preview.by_status = counted.by_status;
    Ok(preview)
}

/// The settings a plan needs, from the variables `spin up` would read
/// (`SPIN_VARIABLE_<NAME>`), where the operator has them.
fn known_variable(name: &str) -> Option<String> {
    std::env::var(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn operator(args: &ReplayArgs) -> String {
    let user = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() || user.contains('@') {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// Runs `ipai replay`; `Ok(false)` when the filter was refused (exit 2).
pub async fn run(args: ReplayArgs) -> Result<bool> {
    let input = FilterInput {
        event_type: args.event_type.clone(),
        aggregate: args.aggregate.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        status: args.status.clone(),
        target: args.target.clone(),
    };
    let checked = input
        .check()
        .and_then(|f| Ok((f, ipai_replay::redo_kinds(args.redo_effects.as_deref())?)));
    let (filter, redo) = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ipai replay: {e}");
            return Ok(false);
        }
    };
    let client = std::sync::Arc::new(connect(&args.db.database_url).await?);
    let settings = ipai_replay::dry_run::settings(&known_variable);
    // Every event is planned (the counts are of all of them); the text lists `--list`.
    let preview = plan_everything(
        &args.db.database_url,
        client.clone(),
        &filter,
        &redo,
        settings,
    )
    .await?;
    let mut db = Blocking(&client);
    let outcome = if args.execute && preview.matched > 0 {
        let by = operator(&args);
        let mut progress = |o: &ipai_replay::Outcome| {
            if !args.json {
                eprintln!(
                    "replay #{}: {} requeued, {} left",
                    o.replay, o.requeued, o.remaining
                );
            }
            true
        };
        match ipai_replay::execute(&mut db, &by, Via::Cli, &filter, &redo, &mut progress) {
            Ok(o) => Some(o),
            Err(ReplayError::Invalid(e)) => {
                eprintln!("ipai replay: {e}");
                return Ok(false);
            }
            Err(e) => anyhow::bail!(
                "replay interrupted: {e}. Nothing stepped is lost; run the same command again to resume."
            ),
        }
    } else {
        None
    };
    if args.json {
        // Streamed: a plan of 100,000 events is never one string in memory.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, &preview.json_view(outcome.as_ref()))?;
        writeln!(out)?;
        out.flush()?;
    } else {
        print!(
            "{}",
            ipai_replay::render_text(&preview, outcome.as_ref(), args.list)
        );
    }
    Ok(true)
}
