//! `ipai alerts` and the alerts section of `ipai status` (issue #19): the open alerts of
//! `integration.alerts` (read through `integration.open_alerts()`), optionally the recently
//! resolved ones, and `--evaluate <app URL>`: an evaluation on demand
//! (`POST <app>/ops/alerts/evaluate` with the ops token, `ops_token`), which also sends
//! what is owed.

use crate::ops::{fmt_age, DbArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use ipai_ops::alerts::{fix, what, OpenAlert};
use serde_json::{json, Value};

#[derive(Args, Debug, Clone)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Also list this many of the most recently resolved alerts.
    #[arg(long, default_value_t = 0)]
    pub resolved: i64,
    /// Evaluate now through the running app at this URL (e.g. http://127.0.0.1:3000):
    /// opens/resolves alerts and sends the messages owed, then lists.
    #[arg(long, value_name = "APP_URL")]
    pub evaluate: Option<String>,
    /// The app's ops_token (for --evaluate; from a comma list, the first).
    #[arg(long, env = "SPIN_VARIABLE_OPS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The open alerts, oldest first.
pub async fn fetch_open(db: &tokio_postgres::Client) -> Result<Vec<OpenAlert>> {
    let text: String = db
        .query_one("SELECT integration.open_alerts()::text", &[])
        .await
        .context("integration.open_alerts() (is the database migrated?)")?
        .get(0);
    serde_json::from_str(&text).context("integration.open_alerts() returned unexpected JSON")
}

/// The `resolved` most recently resolved alerts, newest first, as JSON objects.
pub async fn fetch_resolved(db: &tokio_postgres::Client, resolved: i64) -> Result<Vec<Value>> {
    let text: String = db
        .query_one(
            "SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.resolved_at DESC), '[]')::text \
               FROM (SELECT condition, kind, first_seen_at, resolved_at, events, detail \
                       FROM integration.alerts WHERE resolved_at IS NOT NULL \
                      ORDER BY first_seen_at DESC LIMIT $1) AS r",
            &[&resolved.clamp(0, 1000)],
        )
        .await
        .context("reading resolved alerts")?
        .get(0);
    Ok(serde_json::from_str(&text)?)
}

/// The alerts section of `ipai status` and `ipai alerts`.
pub fn render_open(open: &[OpenAlert]) -> String {
    if open.is_empty() {
        return "alerts: none open\n".into();
    }
    let mut out = format!("alerts: {} open\n", open.len());
    for a in open {
        out.push_str(&format!(
            "  {:<32} {} event(s), open {}  {}\n    fix: {}\n",
            a.condition,
            a.events,
            fmt_age(a.open_for_s as f64),
            what(&a.condition),
            fix(&a.condition, "<app>")
        ));
        if !a.detail.is_empty() {
            let d: String = a.detail.chars().take(160).collect();
            out.push_str(&format!("    {d}\n"));
        }
        if let Some(e) = &a.last_send_error {
            if a.pending_message.is_some() {
                out.push_str(&format!("    not yet sent: {e}\n"));
            }
        }
    }
    out
}

/// The JSON form of an open alert.
pub fn open_json(a: &OpenAlert) -> Value {
    json!({"condition": a.condition, "kind": a.kind, "first_seen_at": a.first_seen_at,
           "last_seen_at": a.last_seen_at, "open_for_s": a.open_for_s, "events": a.events,
           "since": a.since, "detail": a.detail, "notified_at": a.notified_at,
           "reminders": a.reminders, "pending_message": a.pending_message,
           "last_send_error": a.last_send_error, "what": what(&a.condition),
           "fix": fix(&a.condition, "<app>")})
}

async fn evaluate(url: &str, token: Option<&str>) -> Result<Value> {
    let Some(token) = token.and_then(ipai_core::auth::sending_token) else {
        bail!("--evaluate needs the ops token: --token or SPIN_VARIABLE_OPS_TOKEN");
    };
    let endpoint = format!("{}/ops/alerts/evaluate", url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&endpoint)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {endpoint} answered {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("POST {endpoint}: not JSON: {body}"))
}

pub async fn run(args: AlertsArgs) -> Result<()> {
    let evaluated = match &args.evaluate {
        Some(url) => Some(evaluate(url, args.token.as_deref()).await?),
        None => None,
    };
    let db = crate::ops::connect(&args.db.database_url).await?;
    let open = fetch_open(&db).await?;
    let resolved = if args.resolved > 0 {
        fetch_resolved(&db, args.resolved).await?
    } else {
        Vec::new()
    };
    if args.json {
        let v = json!({"open": open.iter().map(open_json).collect::<Vec<_>>(),
                       "resolved": resolved, "evaluation": evaluated});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if let Some(e) = evaluated {
        println!("evaluated: {e}");
    }
    print!("{}", render_open(&open));
    if !resolved.is_empty() {
        println!("resolved:");
        for r in resolved {
            println!(
                "  {:<32} {} → {}",
                r["condition"].as_str().unwrap_or("?"),
                r["first_seen_at"].as_str().unwrap_or("?"),
                r["resolved_at"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}
