//! `ipai-bench --phase dispatch`: how fast queued events reach a trivial handler.
//!
//! * `dispatch_eps`: events preloaded straight into the outbox (through `ingest_event`)
//!   go from pending to done while four clients keep calling `POST /dispatch`.
//! * `e2e_p50_ms` / `e2e_p99_ms`: signed events posted to ingest at a fixed rate; the
//!   latency is from the POST to the handler's receipt of that event (the handler is a
//!   loopback server inside this process, so both ends share one clock).

use crate::common::{event_body, merge_report, peak_rss_mb, percentile, post_event, BenchArgs};
use anyhow::{bail, Context, Result};
use ipai_loopback::FakeServer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn preload(args: &BenchArgs, run: &str) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.min(16) {
        let (client, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
            .await
            .context("preload: cannot connect")?;
        tokio::spawn(conn);
        let (next, run, n) = (next.clone(), run.to_string(), args.preload);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = event_body(i, &run);
                let v: serde_json::Value = serde_json::from_str(&body)?;
                let key = format!("pre-{run}-{i}");
                let none: Option<String> = None;
                // The statement ingest runs, without asking for a run (the phase starts
                // the dispatcher itself once every event is stored).
                client
                    .query_one(
                        ipai_core::outbox::INGEST_SQL,
                        &[
                            &"expense.submitted",
                            &"expense",
                            &key,
                            &v["payload"].to_string(),
                            &key,
                            &key,
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
    Ok(())
}

async fn done_count(db: &tokio_postgres::Client, prefix: &str) -> Result<i64> {
    Ok(db
        .query_one(
            "SELECT count(*) FROM integration.outbox WHERE status = 'done' AND idempotency_key LIKE $1",
            &[&format!("{prefix}%")],
        )
        .await?
        .get(0))
}

pub async fn dispatch_phase(args: BenchArgs) -> Result<()> {
    let handler = FakeServer::start_on(&format!("127.0.0.1:{}", args.handler_port))
        .await
        .with_context(|| {
            format!(
                "cannot serve the trivial handler on port {}",
                args.handler_port
            )
        })?;
    let base = args
        .url
        .split("/odoo-webhook")
        .next()
        .unwrap_or_default()
        .to_string();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let (db, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);

    // 1. Throughput: preload, then drain with four concurrent dispatch loops.
    println!("bench: preloading {} events", args.preload);
    preload(&args, &run).await?;
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (http, stop, url, token) = (
            http.clone(),
            stop.clone(),
            format!("{base}/dispatch"),
            args.dispatch_token.clone(),
        );
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = http
                    .post(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .map(|r| r.status());
            }
        }));
    }
    let prefix = format!("pre-{run}-");
    let deadline = start + Duration::from_secs(300);
    while done_count(&db, &prefix).await? < args.preload as i64 {
        if Instant::now() > deadline {
            bail!("dispatch did not finish {} events in 300 s", args.preload);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let eps = args.preload as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    println!("bench: dispatch {eps:.0} events/s (pending → done, trivial handler)");

    // 2. End-to-end latency at a fixed rate.
    let before = handler.requests().len();
    let total = (args.e2e_rate * args.e2e_seconds as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.e2e_rate.max(1.0));
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let mut posts = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until((t0 + interval * i as u32).into()).await;
        let (client, args, run) = (client.clone(), args.clone(), format!("{run}e"));
        posts.push(tokio::spawn(async move {
            let sent = Instant::now();
            post_event(&client, &args, i, &run)
                .await
                .map(|(_, id)| (id, sent))
        }));
    }
    let mut sent: HashMap<String, Instant> = HashMap::new();
    for p in posts {
        let (id, at) = p.await??;
        sent.insert(id, at);
    }
    let all = handler
        .wait_for(before + total, Duration::from_secs(120))
        .await;
    let mut received: HashMap<String, Instant> = HashMap::new();
    for r in &all[before..] {
        if let Some(id) = r.header("x-ipai-event-id") {
            received.entry(id.to_string()).or_insert(r.at);
        }
    }
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, s)| received.get(id).map(|r| r.saturating_duration_since(*s)))
        .collect();
    if lat.len() < total {
        bail!("only {} of {total} events reached the handler", lat.len());
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    println!(
        "bench: end to end at {:.0} events/s for {} s: p50 {p50:.1} ms, p99 {p99:.1} ms",
        args.e2e_rate, args.e2e_seconds
    );
    let mut entries = vec![
        ("dispatch_eps", eps),
        ("e2e_p50_ms", p50),
        ("e2e_p99_ms", p99),
    ];
    if let Some(rss) = args.host_pid.and_then(peak_rss_mb) {
        entries.push(("host_peak_rss_dispatch_mb", rss));
    }
    merge_report(&args, &entries)?;
    println!();
    println!("| metric ({}) | value | goal | seed (n8n) |", args.runtime);
    println!("|---|---|---|---|");
    println!("| dispatch_eps | {eps:.0} | ≥ 1000 | 0.83 (25 per 30 s poll) |");
    println!("| e2e_p50_ms | {p50:.1} | ≤ 50 | up to 30000 |");
    println!("| e2e_p99_ms | {p99:.1} | ≤ 250 | up to 30000 |");
    Ok(())
}
