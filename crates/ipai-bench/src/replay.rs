//! The `replay` phase: what an operator waits for after an incident (SPEC §12). 100,000
//! done events with their ledger rows; `ipai replay --status done --json` (the dry run of
//! every one of them, as shipped) three times, then `--execute` while ingest keeps storing
//! an event every 10 ms through ingest's role. Runs the `ipai` binary next to this one;
//! needs no runtime (the replay talks to PostgreSQL only).

use crate::common::{merge_report, percentile, BenchArgs};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const EVENTS: i64 = 100_000;

/// `target/release/ipai`, beside this binary.
fn ipai_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("own path")?;
    let ipai = me.with_file_name("ipai");
    if !ipai.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p ipai-cli)",
            ipai.display()
        );
    }
    Ok(ipai)
}

/// Runs `ipai replay <args>`: (wall time, stdout bytes, peak RSS in MB).
async fn replay(args: &BenchArgs, extra: &[&str]) -> Result<(Duration, usize, f64)> {
    let started = Instant::now();
    let child = tokio::process::Command::new(ipai_binary()?)
        .args([
            "replay",
            "--database-url",
            &args.database_url,
            "--by",
            "bench",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start ipai replay")?;
    let pid = child.id();
    let rss = tokio::spawn(async move {
        // VmHWM of the running process, sampled until it exits.
        let mut peak: f64 = 0.0;
        while let Some(mb) = pid.and_then(crate::common::peak_rss_mb) {
            peak = peak.max(mb);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    let out = child.wait_with_output().await?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "ipai replay {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((took, out.stdout.len(), rss.await.unwrap_or_default()))
}

pub async fn replay_phase(args: BenchArgs) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
        .await
        .context("replay: cannot connect")?;
    tokio::spawn(conn);
    let seeding = Instant::now();
    client
        .batch_execute(&format!(
            "INSERT INTO integration.outbox (event_type, aggregate_type, aggregate_id, payload, \
                 idempotency_key, body_sha256, status, done_at) \
             SELECT 'asset.reserved', 'asset_booking', g::text, \
                    jsonb_build_object('booking_id', g, 'asset_name', 'Projector', \
                        'employee_email', 'e' || g || '@example.com', \
                        'start', '2026-11-27T01:00:00Z', 'end', '2026-11-27T09:00:00Z'), \
                    'bulk-' || g, 'sha', 'done', now() \
               FROM generate_series(1, {EVENTS}) AS g; \
             INSERT INTO integration.deliveries (event_id, channel, target, status) \
             SELECT id, 'email', 'e' || aggregate_id || '@example.com', 'sent' \
               FROM integration.outbox; \
             ANALYZE integration.outbox; ANALYZE integration.deliveries;"
        ))
        .await
        .context("seed 100,000 done events")?;
    eprintln!(
        "replay: {EVENTS} done events seeded in {:?}",
        seeding.elapsed()
    );

    let mut plans = Vec::new();
    let (mut bytes, mut rss) = (0, 0.0f64);
    for _ in 0..3 {
        let (took, out, mb) = replay(&args, &["--status", "done", "--json"]).await?;
        eprintln!("replay: planned {EVENTS} events in {took:?} ({out} bytes of JSON, {mb:.0} MB)");
        plans.push(took);
        bytes = out;
        rss = rss.max(mb);
    }
    plans.sort();

    // Execute while ingest stores an event every 10 ms (as the e2e test does).
    let ingest_url = match args.database_url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://ipai_ingest@{host}"),
            None => format!("{scheme}://ipai_ingest@{rest}"),
        },
        None => args.database_url.clone(),
    };
    let (ingest, conn) = tokio_postgres::connect(&ingest_url, tokio_postgres::NoTls)
        .await
        .context("replay: cannot connect as ipai_ingest")?;
    tokio::spawn(conn);
    let execute = tokio::spawn({
        let args = args.clone();
        async move { replay(&args, &["--status", "done", "--execute"]).await }
    });
    let mut waits = Vec::new();
    while !execute.is_finished() {
        let t = Instant::now();
        ingest
            .query_one(
                "SELECT integration.ingest_event('asset.reserved', 'asset_booking', $1, \
                     '{\"booking_id\": 1}', $1, 'sha', NULL, 'odoo')",
                &[&format!("during-{}", waits.len())],
            )
            .await
            .context("ingest during the replay")?;
        waits.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (executed, _, _) = execute.await??;
    waits.sort();
    let slowest = waits.last().copied().unwrap_or_default();
    eprintln!(
        "replay: executed in {executed:?}; {} events ingested meanwhile, p99 {:.1} ms, slowest {slowest:?}",
        waits.len(),
        percentile(&waits, 0.99)
    );
    merge_report(
        &args,
        &[
            ("replay_plan_100k_s", plans[1].as_secs_f64()),
            ("replay_plan_100k_best_s", plans[0].as_secs_f64()),
            ("replay_plan_json_mb", bytes as f64 / 1_048_576.0),
            ("replay_plan_peak_rss_mb", rss),
            ("replay_execute_100k_s", executed.as_secs_f64()),
            ("replay_ingest_during_p99_ms", percentile(&waits, 0.99)),
            (
                "replay_ingest_during_max_ms",
                slowest.as_secs_f64() * 1000.0,
            ),
        ],
    )
}
