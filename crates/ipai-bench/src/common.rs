//! What every phase shares: the command line (`BenchArgs`), a signed event and its post,
//! percentiles, the runtime's process tree and peak RSS, and the report file.

use anyhow::{bail, Context, Result};
use clap::Args;
use ipai_core::signature::sign;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Ingest URL of the running system.
    #[arg(long, default_value = "http://127.0.0.1:3000/odoo-webhook")]
    pub url: String,
    /// The system's odoo_webhook_secret.
    #[arg(
        long,
        env = "SPIN_VARIABLE_ODOO_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub secret: String,
    /// Database for the raw SQL baseline (the same one the system writes to).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Requests in the throughput phase (and SQL calls in the baseline).
    #[arg(long, default_value_t = 4000)]
    pub requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds of the fixed-rate latency phase.
    #[arg(long, default_value_t = 5)]
    pub latency_seconds: u64,
    /// PID of the host process, for its peak RSS (VmHWM).
    #[arg(long)]
    pub host_pid: Option<u32>,
    /// Name of the runtime under test, added as a suffix to keys when not "local".
    #[arg(long, default_value = "local")]
    pub runtime: String,
    /// `ingest` (throughput, latency, raw SQL baseline), `dispatch` (pending → done
    /// throughput, end-to-end latency; the system must deliver to --handler-port) or
    /// `shipped` (the shipped defaults end to end with Odoo and Mattermost stand-ins).
    #[arg(long, default_value = "ingest")]
    pub phase: String,
    /// Port of the trivial handler the bench serves for the dispatch phase (the system's
    /// handler_base_url must be http://127.0.0.1:<port>, service_chaining off).
    #[arg(long, default_value_t = 39999)]
    pub handler_port: u16,
    /// The system's dispatch_token (dispatch phase).
    #[arg(
        long,
        env = "SPIN_VARIABLE_DISPATCH_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    pub dispatch_token: String,
    /// Events preloaded for the dispatch throughput measurement.
    #[arg(long, default_value_t = 5000)]
    pub preload: usize,
    /// Events per second of the end-to-end latency phase.
    #[arg(long, default_value_t = 100.0)]
    pub e2e_rate: f64,
    /// Seconds of the end-to-end latency phase.
    #[arg(long, default_value_t = 30)]
    pub e2e_seconds: u64,
    /// Seconds of the shipped phase's burst.
    #[arg(long, default_value_t = 15)]
    pub shipped_seconds: u64,
    /// Port of the Odoo stand-in the bench serves for the shipped phase (the system's
    /// odoo_url must be http://127.0.0.1:<port>).
    #[arg(long, default_value_t = 39997)]
    pub odoo_port: u16,
    /// Port of the Mattermost stand-in for the shipped phase (mattermost_origin).
    #[arg(long, default_value_t = 39998)]
    pub mattermost_port: u16,
    /// Report file; an existing report is merged into.
    #[arg(long, default_value = "target/bench/report.json")]
    pub out: PathBuf,
    /// The system's ops_password: the ingest phase times `GET /ops` on 200,000 events
    /// (skipped when empty).
    #[arg(
        long,
        env = "SPIN_VARIABLE_OPS_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub ops_password: String,
}

pub fn event_body(i: usize, run: &str) -> String {
    json!({
        "event_type": "expense.submitted",
        "aggregate_type": "expense",
        "aggregate_id": format!("bench-{run}-{i}"),
        "payload": {"expense_id": i, "employee_code": "E-0001", "amount": 1250.5,
                    "currency": "PHP", "status": "submit", "description": "bench"}
    })
    .to_string()
}

/// Sends one POST signed the IPAI way (`x-ipai-timestamp` + `x-ipai-signature`) with its
/// idempotency key: the response, and how long it took to arrive.
pub async fn send_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    idempotency_key: &str,
    body: String,
) -> reqwest::Result<(reqwest::Response, Duration)> {
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let sig = sign(secret, &ts, body.as_bytes());
    let start = Instant::now();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-ipai-timestamp", &ts)
        .header("x-ipai-signature", sig)
        .header("x-idempotency-key", idempotency_key)
        .body(body)
        .send()
        .await?;
    Ok((resp, start.elapsed()))
}

/// Posts one signed event; returns its latency and outbox id.
pub async fn post_event(
    client: &reqwest::Client,
    args: &BenchArgs,
    i: usize,
    run: &str,
) -> Result<(Duration, String)> {
    post_signed(client, args, &args.secret, 202, i, run).await
}

/// Posts event `i` signed with `secret`; fails unless the answer is `expect`.
pub async fn post_signed(
    client: &reqwest::Client,
    args: &BenchArgs,
    secret: &str,
    expect: u16,
    i: usize,
    run: &str,
) -> Result<(Duration, String)> {
    let key = format!("bench-{run}-{i}");
    let (resp, elapsed) = send_signed(client, &args.url, secret, &key, event_body(i, run)).await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != expect {
        bail!("ingest answered {status} (expected {expect}): {body}");
    }
    Ok((elapsed, body["id"].as_str().unwrap_or_default().to_string()))
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

/// Peak RSS (VmHWM) of `pid` plus all its descendants, in MB: `spin up` runs its triggers
/// in child processes, so the runtime's footprint is the whole tree (a sum of per-process
/// peaks, an upper bound).
pub fn peak_rss_mb(pid: u32) -> Option<f64> {
    let hwm_kb = |p: u32| -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let tree = process_tree(pid);
    let total: f64 = tree.iter().filter_map(|&p| hwm_kb(p)).sum();
    (total > 0.0).then_some(total / 1024.0)
}

/// `pid` and all its descendants (from /proc).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parent_of = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // Field 4, after the parenthesised command name (which may contain spaces).
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            all.iter()
                .copied()
                .filter(|&p| parent_of(p) == Some(parent)),
        );
        i += 1;
    }
    tree
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Merges `entries` (keys suffixed with `_<runtime>` unless local) into the report file.
pub fn merge_report(args: &BenchArgs, entries: &[(&str, f64)]) -> Result<()> {
    let suffix = if args.runtime == "local" {
        String::new()
    } else {
        format!("_{}", args.runtime)
    };
    let mut report: Value = std::fs::read_to_string(&args.out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let obj = report.as_object_mut().context("report is an object")?;
    for (k, v) in entries {
        obj.insert(format!("{k}{suffix}"), json!(round2(*v)));
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(())
}
