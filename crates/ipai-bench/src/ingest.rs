//! The `ingest` phase (diagnostic): the app without its cron trigger and with the kick
//! off. Posts signed events over loopback at full concurrency (throughput), then at half
//! that rate (latency), calls the same `integration.ingest_event` SQL natively with the
//! same concurrency (the raw baseline), times the refusal of a stuffed signature header and
//! the read paths on 200,000 seeded events, reads the host's peak RSS, and merges it all
//! into the report.

use crate::common::{event_body, merge_report, peak_rss_mb, percentile, post_signed, BenchArgs};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a throughput run posts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// Correctly signed events: the whole ingest path, answered 202.
    Accepted,
    /// Events signed with a wrong secret: answered 401 at the signature check, so they
    /// cost an instance, the headers, the HMAC and the response but no JSON and no
    /// database — the runtime's own per-request cost.
    BadSignature,
}

pub(crate) async fn post_one(
    client: &reqwest::Client,
    args: &BenchArgs,
    probe: Probe,
    i: usize,
    run: &str,
) -> Result<Duration> {
    match probe {
        Probe::Accepted => post_signed(client, args, &args.secret, 202, i, run).await,
        Probe::BadSignature => {
            let wrong = format!("not-{}", args.secret);
            post_signed(client, args, &wrong, 401, i, run).await
        }
    }
    .map(|(d, _)| d)
}

/// A hostile Standard Webhooks request: a 256 KiB body and a `webhook-signature` of 3000
/// `v1,` entries (issue 15). Ingest refuses it with a 4xx after counting the entries,
/// before any HMAC; returns the sorted latencies of `n` sequential posts and the status.
async fn stuffed_signature(args: &BenchArgs, n: usize) -> Result<(Vec<Duration>, u16)> {
    let client = reqwest::Client::new();
    let body = format!(
        "{{\"event_type\":\"expense.submitted\",\"aggregate_type\":\"expense\",\
         \"aggregate_id\":\"stuffed\",\"payload\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(256 * 1024 - 200)
    );
    let header = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= ".repeat(3000);
    let mut lat = Vec::with_capacity(n);
    let mut status = 0;
    for i in 0..n {
        let ts = chrono::Utc::now().timestamp().to_string();
        let start = Instant::now();
        let resp = client
            .post(&args.url)
            .header("content-type", "application/json")
            .header("webhook-id", format!("stuffed-{i}"))
            .header("webhook-timestamp", ts)
            .header("webhook-signature", header.trim_end())
            .body(body.clone())
            .send()
            .await?;
        status = resp.status().as_u16();
        let _ = resp.bytes().await;
        lat.push(start.elapsed());
        if !(400..500).contains(&status) {
            bail!("a stuffed webhook-signature was answered {status}, not a 4xx");
        }
    }
    lat.sort();
    Ok((lat, status))
}

/// 200,000 delivered events with a delivery each, in one statement (the same data the
/// end-to-end test `hostile_input.rs` seeds).
const SEED_200K_SQL: &str = include_str!("../../../tests/sql/seed_200k_delivered_events.sql");

/// The read paths on a long log (issue 15): seeds 200,000 events into the bench database,
/// then times `/metrics`' and `/ops`' statements, MCP tool statements (with and without
/// payload filters) and a whole `GET /ops` through the runtime, median of 10 runs each (ms).
async fn read_costs(args: &BenchArgs) -> Result<Vec<(&'static str, f64)>> {
    use tokio_postgres::types::ToSql;
    let (client, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
        .await
        .context("read costs: cannot connect")?;
    tokio::spawn(conn);
    client.batch_execute(SEED_200K_SQL).await?;
    let mcp = |tool: &str, arguments: Value| -> Result<ipai_mcp::Query> {
        ipai_mcp::tools::query_for(tool, &arguments)
            .ok_or_else(|| anyhow::anyhow!("{tool}: arguments refused"))
    };
    let cases: Vec<(&'static str, ipai_mcp::Query)> = vec![
        (
            "metrics_query_ms_200k",
            ipai_mcp::Query {
                sql: ipai_ops::data::metrics_sql(),
                params: vec![ipai_mcp::Param::Text("600".into())],
            },
        ),
        ("mcp_query_events_ms_200k", mcp("query_events", json!({}))?),
        (
            "mcp_query_expense_events_ms_200k",
            mcp("query_expense_events", json!({}))?,
        ),
        (
            "mcp_get_event_by_key_ms_200k",
            mcp("get_event", json!({"idempotency_key": "bulk-4242"}))?,
        ),
        (
            "mcp_query_expense_events_employee_code_ms_200k",
            mcp("query_expense_events", json!({"employee_code": "E-42"}))?,
        ),
        (
            "mcp_query_events_payload_field_ms_200k",
            mcp(
                "query_events",
                json!({"payload_field": "employee_code", "payload_value": "E-42"}),
            )?,
        ),
        (
            "ops_dashboard_query_ms_200k",
            ipai_mcp::Query {
                sql: ipai_ops::data::dashboard_sql(),
                params: vec![ipai_mcp::Param::Text("600".into())],
            },
        ),
    ];
    let mut out = Vec::new();
    for (name, q) in cases {
        let owned: Vec<Box<dyn ToSql + Sync + Send>> = q
            .params
            .iter()
            .map(|p| -> Box<dyn ToSql + Sync + Send> {
                match p {
                    ipai_mcp::Param::Text(s) => Box::new(s.clone()),
                    ipai_mcp::Param::Int(n) => Box::new(*n),
                    ipai_mcp::Param::Json(v) => Box::new(v.to_string()),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref() as _).collect();
        let mut times = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            client.query(&q.sql, &refs).await.context(name)?;
            times.push(start.elapsed());
        }
        times.sort();
        out.push((name, percentile(&times, 0.5)));
    }
    if !args.ops_password.is_empty() {
        out.push(("ops_dashboard_ms_200k", dashboard_page_ms(args).await?));
    }
    Ok(out)
}

/// `GET /ops` (the whole dashboard page through the runtime), median of 10 (ms).
async fn dashboard_page_ms(args: &BenchArgs) -> Result<f64> {
    let base = args
        .url
        .split_once("://")
        .and_then(|(scheme, rest)| {
            rest.split_once('/')
                .map(|(host, _)| format!("{scheme}://{host}"))
        })
        .unwrap_or_else(|| args.url.clone());
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let resp = client
            .get(format!("{base}/ops"))
            .basic_auth("ops", Some(&args.ops_password))
            .send()
            .await
            .context("GET /ops")?;
        let status = resp.status().as_u16();
        let page = resp.text().await.context("GET /ops body")?;
        times.push(start.elapsed());
        if status != 200 || !page.contains("count-done") {
            bail!("GET /ops answered {status}");
        }
    }
    times.sort();
    Ok(percentile(&times, 0.5))
}

/// Full-concurrency phase: returns (requests/s, latencies).
async fn throughput(
    args: &BenchArgs,
    probe: Probe,
    run: &str,
    n: usize,
) -> Result<(f64, Vec<Duration>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, args, run) =
            (client.clone(), next.clone(), args.clone(), run.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                lat.push(post_one(&client, &args, probe, i, &run).await?);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), all))
}

/// Fixed-rate phase (open loop): latencies at `rate` requests/s.
async fn fixed_rate(args: &BenchArgs, run: &str, rate: f64, seconds: u64) -> Result<Vec<Duration>> {
    let client = reqwest::Client::new();
    let total = (rate * seconds as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    // At most `concurrency` requests in flight, like the throughput phase: an open loop
    // without a bound would let one stall snowball past the database's connection limit.
    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, args, run) = (client.clone(), args.clone(), run.to_string());
        let permit = slots.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let r = post_one(&client, &args, Probe::Accepted, i, &run).await;
            drop(permit);
            r
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.push(t.await??);
    }
    Ok(lat)
}

/// The same SQL, called natively with the same concurrency: the ceiling ingest is measured against.
async fn sql_baseline(args: &BenchArgs, run: &str) -> Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let n = args.requests;
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        let (client, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
            .await
            .context("baseline: cannot connect")?;
        tokio::spawn(conn);
        clients.push(client);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        let (next, run) = (next.clone(), run.to_string());
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare(ipai_core::outbox::INGEST_SQL).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = event_body(i, &run);
                let v: Value = serde_json::from_str(&body)?;
                let sha = ipai_core::signature::sign("baseline", "0", body.as_bytes());
                let key = format!("sql-{run}-{i}");
                let none: Option<String> = None;
                // The statement ingest runs, with the kick off (nothing dispatches here).
                client
                    .query_one(
                        &stmt,
                        &[
                            &"expense.submitted",
                            &"expense",
                            &key,
                            &v["payload"].to_string(),
                            &key,
                            &sha,
                            &none,
                            &"bench",
                            &false,
                            &none,
                        ],
                    )
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

pub async fn ingest_phase(args: BenchArgs) -> Result<()> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    // The raw SQL baseline first, before the runtime holds its pooled connections.
    let baseline = sql_baseline(&args, &run).await?;
    println!(
        "bench: raw ingest_event SQL at concurrency {}: {baseline:.0} calls/s",
        args.concurrency
    );
    println!("bench: warming up against {}", args.url);
    throughput(
        &args,
        Probe::Accepted,
        &format!("{run}w"),
        200.min(args.requests),
    )
    .await?;

    let (rps, _) = throughput(&args, Probe::Accepted, &format!("{run}t"), args.requests).await?;
    println!(
        "bench: ingest at concurrency {}: {rps:.0} req/s",
        args.concurrency
    );
    let ticks0 = crate::machine::cpu_ticks();
    let (no_db, _) = throughput(
        &args,
        Probe::BadSignature,
        &format!("{run}n"),
        args.requests,
    )
    .await?;
    // If the runtime's database calls cost no more than the baseline's, a request would
    // cost 1/no_db + 1/baseline of the machine: the most ingest can reach here.
    let ceiling = 100.0 * no_db / (no_db + baseline);
    let no_db_steal = crate::machine::shares_since(ticks0).map(|m| m.steal_pct);
    println!(
        "bench: same requests with a bad signature (401, no database): {no_db:.0} req/s \
         → ingest ceiling {ceiling:.0}% of baseline; stolen by the hypervisor meanwhile: {}",
        no_db_steal.map_or("unknown".into(), |s| format!("{s:.0} %"))
    );
    let mut lat = fixed_rate(&args, &format!("{run}l"), rps / 2.0, args.latency_seconds).await?;
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    println!(
        "bench: at {:.0} req/s (half peak): p50 {p50:.2} ms, p99 {p99:.2} ms",
        rps / 2.0
    );
    let (stuffed, stuffed_status) = stuffed_signature(&args, 50).await?;
    let (stuffed_p50, stuffed_p99) = (percentile(&stuffed, 0.50), percentile(&stuffed, 0.99));
    println!(
        "bench: 256 KiB body + 3000 webhook-signature entries: {stuffed_status}, \
         p50 {stuffed_p50:.2} ms, p99 {stuffed_p99:.2} ms"
    );
    let reads = read_costs(&args).await?;
    for (name, ms) in &reads {
        println!("bench: {name} (median of 10 on 200,000 events): {ms:.2}");
    }
    let rss = args.host_pid.and_then(peak_rss_mb);
    let mut entries = reads.clone();
    entries.extend([
        ("stuffed_signature_p50_ms", stuffed_p50),
        ("stuffed_signature_p99_ms", stuffed_p99),
        ("ingest_rps", rps),
        ("ingest_p50_ms", p50),
        ("ingest_p99_ms", p99),
        ("ingest_baseline_sql_rps", baseline),
        ("ingest_vs_baseline_pct", 100.0 * rps / baseline),
        ("ingest_no_db_rps", no_db),
        ("ingest_ceiling_pct", ceiling),
    ]);
    if let Some(steal) = no_db_steal {
        entries.push(("ingest_no_db_steal_pct", steal));
    }
    if let Some(rss) = rss {
        entries.push(("host_peak_rss_mb", rss));
    }
    merge_report(&args, &entries)?;

    println!();
    println!("| metric ({}) | value | goal |", args.runtime);
    println!("|---|---|---|");
    println!("| ingest_rps (diagnostic: kick off, no cron) | {rps:.0} | |");
    println!("| ingest_baseline_sql_rps | {baseline:.0} | |");
    println!(
        "| ingest / baseline (diagnostic) | {:.0}% | |",
        100.0 * rps / baseline
    );
    println!("| ingest_no_db_rps (401 at the signature check) | {no_db:.0} | |");
    println!("| ingest ceiling (no_db with baseline-cost SQL) | {ceiling:.0}% | |");
    println!("| ingest_p50_ms (at half peak) | {p50:.2} | |");
    println!("| ingest_p99_ms (at half peak) | {p99:.2} | ≤ 20 |");
    println!(
        "| stuffed_signature_p99_ms (256 KiB, 3000 entries: {stuffed_status}) | {stuffed_p99:.2} | |"
    );
    for (name, ms) in &reads {
        println!("| {name} (median, 200,000 events) | {ms:.2} | |");
    }
    match rss {
        Some(r) => println!("| host_peak_rss_mb | {r:.1} | ≤ 150 |"),
        None => println!("| host_peak_rss_mb | n/a | ≤ 150 |"),
    }
    println!("report: {}", args.out.display());
    Ok(())
}
