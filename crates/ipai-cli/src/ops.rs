//! `ipai status` and `ipai dlq list|requeue`: the outbox from a terminal.
//!
//! Reads go straight to `integration.outbox` / `integration.outbox_stats()`; every change
//! goes through the SQL contract (`integration.requeue_outbox`), never a direct UPDATE.

use crate::migrate::redact;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ipai?sslmode=disable";

#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// The bus's database.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// How many recent failures (failed or dead events) to show.
    #[arg(long, default_value_t = 5)]
    pub failures: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DlqCommand {
    /// List dead events (attempts exhausted), most recent first, with their last error.
    List {
        #[command(flatten)]
        db: DbArgs,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move a dead (or failed) event back to pending, or every dead event with --all.
    Requeue {
        /// Outbox id (uuid) of the event.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<uuid::Uuid>,
        /// Requeue every dead event.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// One failed or dead event.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedEvent {
    pub id: String,
    pub status: String,
    pub event_type: String,
    pub aggregate: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: String,
    pub age_seconds: f64,
}

impl FailedEvent {
    fn to_json(&self) -> Value {
        json!({"id": self.id, "status": self.status, "event_type": self.event_type,
               "aggregate": self.aggregate, "attempts": self.attempts,
               "max_attempts": self.max_attempts, "last_error": self.last_error,
               "age_seconds": self.age_seconds})
    }

    fn line(&self) -> String {
        format!(
            "  {}  {:<6} {:<26} {:<24} attempt {}/{}  {} ago  {}",
            self.id,
            self.status,
            self.event_type,
            truncate(&self.aggregate, 24),
            self.attempts,
            self.max_attempts,
            fmt_age(self.age_seconds),
            truncate(&one_line(&self.last_error), 100)
        )
    }
}

/// One row of `integration.outbox_stats()`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
    pub oldest_age_seconds: Option<f64>,
}

/// `12s`, `3m 20s`, `1h 02m`, `2d 03h`.
pub fn fmt_age(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The human-readable `ipai status` report.
pub fn render_status(counts: &[StatusCount], failures: &[FailedEvent]) -> String {
    let mut out = String::from("outbox\n");
    for c in counts {
        let age = match (c.count, c.oldest_age_seconds) {
            (n, Some(a)) if n > 0 && c.status != "done" => format!("  oldest {}", fmt_age(a)),
            _ => String::new(),
        };
        out.push_str(&format!("  {:<11}{:>8}{age}\n", c.status, c.count));
    }
    let pending = counts.iter().find(|c| c.status == "pending");
    match pending.and_then(|p| p.oldest_age_seconds) {
        Some(a) => out.push_str(&format!("oldest pending: {}\n", fmt_age(a))),
        None => out.push_str("oldest pending: none\n"),
    }
    if failures.is_empty() {
        out.push_str("recent failures: none\n");
    } else {
        out.push_str("recent failures:\n");
        for f in failures {
            out.push_str(&f.line());
            out.push('\n');
        }
    }
    out
}

/// `ipai status --json`.
pub fn status_json(counts: &[StatusCount], failures: &[FailedEvent]) -> Value {
    let mut by_status = serde_json::Map::new();
    let mut ages = serde_json::Map::new();
    for c in counts {
        by_status.insert(c.status.clone(), json!(c.count));
        ages.insert(c.status.clone(), json!(c.oldest_age_seconds));
    }
    let pending_age = counts
        .iter()
        .find(|c| c.status == "pending")
        .and_then(|c| c.oldest_age_seconds);
    json!({
        "counts": by_status,
        "oldest_age_seconds": ages,
        "oldest_pending_age_seconds": pending_age,
        "recent_failures": failures.iter().map(FailedEvent::to_json).collect::<Vec<_>>(),
    })
}

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("database connection: {e}");
        }
    });
    Ok(client)
}

const FAILED_COLUMNS: &str =
    "id::text, status, event_type, aggregate_type || '/' || aggregate_id, \
     attempts, max_attempts, coalesce(last_error, ''), \
     extract(epoch FROM now() - updated_at)::float8";

fn failed_event(r: &tokio_postgres::Row) -> FailedEvent {
    FailedEvent {
        id: r.get(0),
        status: r.get(1),
        event_type: r.get(2),
        aggregate: r.get(3),
        attempts: r.get(4),
        max_attempts: r.get(5),
        last_error: r.get(6),
        age_seconds: r.get(7),
    }
}

/// Counts per status (`outbox_stats()`) and the most recent failed/dead events.
pub async fn fetch_status(
    db: &tokio_postgres::Client,
    failures: i64,
) -> Result<(Vec<StatusCount>, Vec<FailedEvent>)> {
    let counts = db
        .query(
            "SELECT status, count, oldest_age_seconds FROM integration.outbox_stats()",
            &[],
        )
        .await
        .context("integration.outbox_stats()")?
        .iter()
        .map(|r| StatusCount {
            status: r.get(0),
            count: r.get(1),
            oldest_age_seconds: r.get(2),
        })
        .collect();
    let sql = format!(
        "SELECT {FAILED_COLUMNS} FROM integration.outbox \
         WHERE status IN ('failed', 'dead') ORDER BY updated_at DESC, seq DESC LIMIT $1"
    );
    let failed = db
        .query(&sql, &[&failures.clamp(0, 1000)])
        .await
        .context("reading failed events")?
        .iter()
        .map(failed_event)
        .collect();
    Ok((counts, failed))
}

/// Dead events, most recent first, and how many there are in all.
pub async fn fetch_dead(
    db: &tokio_postgres::Client,
    limit: i64,
) -> Result<(Vec<FailedEvent>, i64)> {
    let sql = format!(
        "SELECT {FAILED_COLUMNS} FROM integration.outbox \
         WHERE status = 'dead' ORDER BY updated_at DESC, seq DESC LIMIT $1"
    );
    let rows = db
        .query(&sql, &[&limit.clamp(0, 10_000)])
        .await
        .context("reading dead events")?;
    let total: i64 = db
        .query_one(
            "SELECT count(*) FROM integration.outbox WHERE status = 'dead'",
            &[],
        )
        .await?
        .get(0);
    Ok((rows.iter().map(failed_event).collect(), total))
}

/// `integration.requeue_outbox(id)`: Ok(true) when it moved back to pending; an error
/// naming the reason (unknown id, or a status that cannot be requeued) otherwise.
pub async fn requeue_one(db: &tokio_postgres::Client, id: uuid::Uuid) -> Result<()> {
    let moved: bool = db
        .query_one(ipai_core::outbox::REQUEUE_SQL, &[&id.to_string()])
        .await
        .context("integration.requeue_outbox")?
        .get(0);
    if moved {
        return Ok(());
    }
    let status = db
        .query_opt(
            "SELECT status FROM integration.outbox WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|r| r.get::<_, String>(0));
    match status {
        None => bail!("no outbox event {id}"),
        Some(s) => bail!("event {id} is {s}: only dead or failed events can be requeued"),
    }
}

/// Requeues every dead event, oldest first; returns how many moved.
pub async fn requeue_all_dead(db: &mut tokio_postgres::Client) -> Result<u64> {
    let tx = db.transaction().await?;
    let ids: Vec<uuid::Uuid> = tx
        .query(
            "SELECT id FROM integration.outbox WHERE status = 'dead' ORDER BY seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut moved = 0;
    for id in ids {
        let ok: bool = tx
            .query_one(ipai_core::outbox::REQUEUE_SQL, &[&id.to_string()])
            .await
            .context("integration.requeue_outbox")?
            .get(0);
        moved += u64::from(ok);
    }
    tx.commit().await?;
    Ok(moved)
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let db = connect(&args.db.database_url).await?;
    let (counts, failures) = fetch_status(&db, args.failures).await?;
    // Open alerts (issue #19); a database without the alerts migration says so.
    let alerts = crate::alerts::fetch_open(&db).await;
    if args.json {
        let mut v = status_json(&counts, &failures);
        v["alerts"] = match &alerts {
            Ok(open) => json!(open
                .iter()
                .map(crate::alerts::open_json)
                .collect::<Vec<_>>()),
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_status(&counts, &failures));
        match &alerts {
            Ok(open) => print!("{}", crate::alerts::render_open(open)),
            Err(e) => println!("alerts: unavailable ({e:#})"),
        }
    }
    Ok(())
}

pub async fn dlq(cmd: DlqCommand) -> Result<()> {
    match cmd {
        DlqCommand::List { db, limit, json } => {
            let client = connect(&db.database_url).await?;
            let (dead, total) = fetch_dead(&client, limit).await?;
            if json {
                let rows: Vec<Value> = dead.iter().map(FailedEvent::to_json).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"total": total, "dead": rows}))?
                );
            } else if dead.is_empty() {
                println!("dead-letter queue is empty");
            } else {
                println!(
                    "{total} dead event(s){}:",
                    if total > dead.len() as i64 {
                        format!(", newest {}", dead.len())
                    } else {
                        String::new()
                    }
                );
                for d in &dead {
                    println!("{}", d.line());
                }
                println!("requeue with: ipai dlq requeue <id>  (or --all)");
            }
        }
        DlqCommand::Requeue { id, all, db } => {
            let mut client = connect(&db.database_url).await?;
            if all {
                let n = requeue_all_dead(&mut client).await?;
                println!("requeued {n} dead event(s)");
            } else if let Some(id) = id {
                requeue_one(&client, id).await?;
                println!("requeued {id}: pending");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_clock() {
        assert_eq!(fmt_age(0.4), "0s");
        assert_eq!(fmt_age(59.0), "59s");
        assert_eq!(fmt_age(200.0), "3m 20s");
        assert_eq!(fmt_age(3720.0), "1h 02m");
        assert_eq!(fmt_age(2.0 * 86_400.0 + 3.0 * 3600.0), "2d 03h");
        assert_eq!(fmt_age(-5.0), "0s");
    }

    fn counts() -> Vec<StatusCount> {
        [
            ("pending", 3, Some(12.0)),
            ("processing", 0, None),
            ("failed", 1, Some(200.0)),
            ("dead", 2, Some(3720.0)),
            ("done", 14, Some(99_999.0)),
        ]
        .iter()
        .map(|(s, n, a)| StatusCount {
            status: s.to_string(),
            count: *n,
            oldest_age_seconds: *a,
        })
        .collect()
    }

    fn dead() -> FailedEvent {
        FailedEvent {
            id: "0b6b5c7e-0000-4000-8000-000000000001".into(),
            status: "dead".into(),
            event_type: "expense.submitted".into(),
            aggregate: "expense/42".into(),
            attempts: 10,
            max_attempts: 10,
            last_error: "HTTP 500\nmattermost down".into(),
            age_seconds: 65.0,
        }
    }

    #[test]
    fn the_status_report_shows_counts_ages_and_failures() {
        let text = render_status(&counts(), &[dead()]);
        assert!(text.contains("pending           3  oldest 12s"), "{text}");
        assert!(
            text.contains("dead              2  oldest 1h 02m"),
            "{text}"
        );
        assert!(text.contains("done             14\n"), "{text}");
        assert!(text.contains("oldest pending: 12s"), "{text}");
        assert!(text.contains("expense/42"), "{text}");
        assert!(
            text.contains("attempt 10/10  1m 05s ago  HTTP 500 mattermost down"),
            "{text}"
        );
        let empty = render_status(&[], &[]);
        assert!(empty.contains("oldest pending: none") && empty.contains("recent failures: none"));
    }

    #[test]
    fn the_status_json_has_counts_and_the_oldest_pending_age() {
        let v = status_json(&counts(), &[dead()]);
        assert_eq!(v["counts"]["done"], 14);
        assert_eq!(v["oldest_pending_age_seconds"], 12.0);
        assert_eq!(v["oldest_age_seconds"]["processing"], Value::Null);
        assert_eq!(v["recent_failures"][0]["aggregate"], "expense/42");
    }
}
