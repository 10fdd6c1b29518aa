//! `ipai-bench --phase shipped`: what a user runs, measured end to end.
//!
//! The system runs the real `spin.toml` with its defaults (kick and cron on, chaining on,
//! the app's own roles and limits); its expense handler calls Odoo and Mattermost stand-ins
//! served here. A burst of signed `expense.submitted` events over `--concurrency`
//! connections for `--shipped-seconds`, then the bench waits until every stored event is
//! `done`:
//! * `shipped_ingest_rps`, `shipped_ingest_p50_ms` / `_p99_ms` (accepted requests), and
//!   `shipped_refused` (503s: a connection limit reached; Odoo would retry them);
//! * `shipped_e2e_eps`: events stored ÷ seconds from the first POST to the last `done`;
//! * `shipped_pg_connections_peak`: most connections the app's roles held at once;
//! * a CPU split (runtime process tree, PostgreSQL, load generator, stand-ins) in CPU
//!   seconds per 1,000 events, and the PostgreSQL transactions and queue-function calls per
//!   event (`track_functions` must be on for the database: `scripts/bench.sh` sets it).
//!
//! The stand-ins are minimal hyper services on a thread of their own (so their CPU is told
//! apart from the load generator's) that answer what the handler asks: Odoo's
//! `authenticate` and the expense's report with its approver, and Mattermost's webhook.
//! It is a benchmark, not a test: it asserts nothing about speed.
//!
//! `--phase shipped-one-call` runs the same with `expense.rejected` — one outside call
//! (the Mattermost message to the employee), the shape of Svix's one-endpoint delivery the
//! issue compares with — and reports the same keys prefixed `shipped_one_call_`.

use crate::common::{merge_report, percentile, send_signed, BenchArgs};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The name of the stand-ins' thread (its CPU time is reported apart).
const STANDIN_THREAD: &str = "ipai-standins";
/// The approver the Odoo stand-in names for every report.
pub const BENCH_APPROVER_EMAIL: &str = "approver@bench.example.com";
/// `mattermost_user_map` scripts/bench.sh gives the system under bench (the approver's
/// Mattermost account); a test keeps the two in step.
#[cfg(test)]
const BENCH_USER_MAP: &str = "approver@bench.example.com=approver:benchapproverid00000000000";

/// Keys the Odoo stand-in was asked to resend (`ipai_resend_keys`, the reconcile phase).
pub static RESEND_ASKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Answers an Odoo JSON-RPC call: `authenticate` → uid 2; the expense look-up → a report
/// of its own with the bench approver; a resend → every key requeued; anything else → `true`.
fn odoo_answer(body: &[u8]) -> String {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let p = &req["params"];
    let result = match (p["method"].as_str(), p["args"][3].as_str()) {
        (Some("authenticate"), _) => json!(2),
        (Some("execute_kw"), Some("hr.expense")) => {
            let id = p["args"][5][0][0].as_i64().unwrap_or(0);
            json!([{"id": id, "sheet_id": {
                "id": id, "name": format!("Report {id}"), "total_amount": 1250.5,
                "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": [id],
                "user_id": {"id": 5, "name": "Bench Approver", "login": "approver",
                            "email": BENCH_APPROVER_EMAIL}}}])
        }
        (Some("execute_kw"), Some("ipai.event.queue")) => {
            let keys = p["args"][5][0].clone();
            let n = keys.as_array().map_or(0, Vec::len);
            RESEND_ASKED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            json!({"requeued": keys, "unknown": []})
        }
        _ => json!(true),
    };
    json!({"jsonrpc": "2.0", "id": req["id"], "result": result}).to_string()
}

/// Serves Odoo and Mattermost stand-ins on `odoo_port` / `mattermost_port` on a thread of
/// their own; returns once both listen.
pub(crate) fn start_standins(odoo_port: u16, mattermost_port: u16) -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name(STANDIN_THREAD.into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let bind = |port: u16| tokio::net::TcpListener::bind(("127.0.0.1", port));
                let (odoo, mm) = match (bind(odoo_port).await, bind(mattermost_port).await) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let serve = |listener: tokio::net::TcpListener, odoo: bool| async move {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(async move {
                            let svc = service_fn(
                                move |req: hyper::Request<hyper::body::Incoming>| async move {
                                    let body =
                                        req.into_body().collect().await.map(|b| b.to_bytes());
                                    let text = match (odoo, body) {
                                        (true, Ok(b)) => odoo_answer(&b),
                                        _ => "ok".to_string(),
                                    };
                                    Ok::<_, hyper::Error>(
                                        hyper::Response::builder()
                                            .header(
                                                "content-type",
                                                if odoo {
                                                    "application/json"
                                                } else {
                                                    "text/plain"
                                                },
                                            )
                                            .body(Full::new(Bytes::from(text)))
                                            .unwrap_or_default(),
                                    )
                                },
                            );
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                };
                tokio::join!(serve(odoo, true), serve(mm, false));
            });
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("stand-ins did not start")?
        .context("cannot serve the stand-ins")
}

/// utime + stime of `/proc/<path>/stat`, in seconds.
fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    let (u, s): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    Some((u + s) / 100.0) // USER_HZ is 100 on Linux
}

fn comm_of(path: &str) -> String {
    std::fs::read_to_string(format!("{path}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds so far of: the runtime's process tree, every PostgreSQL process, this
/// process's stand-in thread, and the rest of this process (the load generator).
#[derive(Debug, Clone, Copy, Default)]
struct CpuSample {
    runtime: f64,
    postgres: f64,
    standins: f64,
    loadgen: f64,
}

fn sample_cpu(host_pid: Option<u32>) -> CpuSample {
    let all = pids();
    let tree = host_pid
        .map(crate::common::process_tree)
        .unwrap_or_default();
    let runtime = tree
        .iter()
        .filter_map(|p| cpu_seconds(&format!("/proc/{p}/stat")))
        .sum();
    let postgres = all
        .iter()
        .filter(|&&p| comm_of(&format!("/proc/{p}")).starts_with("postgres"))
        .filter_map(|p| cpu_seconds(&format!("/proc/{p}/stat")))
        .sum();
    let (mut standins, mut loadgen) = (0.0, 0.0);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let path = t.path().display().to_string();
            let cpu = cpu_seconds(&format!("{path}/stat")).unwrap_or(0.0);
            if comm_of(&path) == STANDIN_THREAD {
                standins += cpu;
            } else {
                loadgen += cpu;
            }
        }
    }
    CpuSample {
        runtime,
        postgres,
        standins,
        loadgen,
    }
}

/// Transactions committed in the database, and calls per queue/ledger function.
async fn pg_counters(db: &tokio_postgres::Client) -> Result<(i64, HashMap<String, i64>)> {
    let xacts: i64 = db
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0);
    let calls = db
        .query(
            "SELECT funcname::text, calls FROM pg_stat_user_functions WHERE schemaname = 'integration'",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Ok((xacts, calls))
}

/// The event a shipped phase bursts, and the prefix of its report keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShippedEvent {
    /// `expense.submitted`: the Odoo look-up of the approver, then the Mattermost approval
    /// request (two outside calls).
    Submitted,
    /// `expense.rejected`: the Mattermost message to the employee (one outside call).
    Rejected,
}

impl ShippedEvent {
    pub fn event_type(self) -> &'static str {
        match self {
            ShippedEvent::Submitted => "expense.submitted",
            ShippedEvent::Rejected => "expense.rejected",
        }
    }

    /// The expense sheet's Odoo state the event reports.
    fn odoo_status(self) -> &'static str {
        match self {
            ShippedEvent::Submitted => "submit",
            ShippedEvent::Rejected => "cancel",
        }
    }

    /// `shipped_` or `shipped_one_call_`.
    pub fn key_prefix(self) -> &'static str {
        match self {
            ShippedEvent::Submitted => "shipped_",
            ShippedEvent::Rejected => "shipped_one_call_",
        }
    }
}

fn shipped_event(kind: ShippedEvent, i: usize, run: &str) -> String {
    json!({
        "event_type": kind.event_type(),
        "aggregate_type": "expense",
        "aggregate_id": format!("{}", 1_000_000 + i),
        "payload": {"expense_id": 1_000_000 + i, "sheet_id": 1_000_000 + i,
                    "employee_code": "E-0001", "employee_name": "Bench Employee",
                    "employee_email": "employee@bench.example.com", "amount": 1250.5,
                    "currency": "PHP", "status": kind.odoo_status(), "description": "bench",
                    "submitted_at": "2026-11-30T08:00:00Z", "reason": "bench",
                    "bench_run": run}
    })
    .to_string()
}

/// What the burst's senders saw.
#[derive(Default)]
struct Burst {
    accepted: Vec<Duration>,
    refused: usize,
    errors: Vec<String>,
}

async fn burst(args: &BenchArgs, kind: ShippedEvent, run: &str, seconds: u64) -> Burst {
    let out = Arc::new(Mutex::new(Burst::default()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, out, next, args, run) = (
            client.clone(),
            out.clone(),
            next.clone(),
            args.clone(),
            run.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let key = format!("shipped-{run}-{i}");
                let sent = send_signed(
                    &client,
                    &args.url,
                    &args.secret,
                    &key,
                    shipped_event(kind, i, &run),
                )
                .await;
                let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                match sent.map(|(r, took)| (r.status().as_u16(), took)) {
                    Ok((202, took)) => o.accepted.push(took),
                    Ok((503, _)) => o.refused += 1,
                    Ok((s, _)) => o.errors.push(format!("HTTP {s}")),
                    Err(e) => o.errors.push(e.to_string()),
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *o)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

pub async fn shipped_phase(args: BenchArgs, kind: ShippedEvent) -> Result<()> {
    start_standins(args.odoo_port, args.mattermost_port)?;
    let (db, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();

    // Peak connections of the app's roles to this database, sampled while it runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(Mutex::new(0i64));
    let sampler = {
        let (url, sampling, peak) = (args.database_url.clone(), sampling.clone(), peak.clone());
        tokio::spawn(async move {
            let Ok((c, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
                return;
            };
            tokio::spawn(conn);
            while sampling.load(Ordering::Relaxed) {
                if let Ok(row) = c
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                           AND usename IN ('ipai_ingest', 'ipai_app')",
                        &[],
                    )
                    .await
                {
                    let n: i64 = row.get(0);
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    *p = (*p).max(n);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let (xacts0, calls0) = pg_counters(&db).await?;
    let core_speed = crate::machine::hmac_mb_per_s();
    println!("bench: one core now: {core_speed:.0} MB/s of HMAC-SHA256");
    let cpu0 = sample_cpu(args.host_pid);
    let ticks0 = crate::machine::cpu_ticks();
    let first_post = unix_now();
    println!(
        "bench: shipped defaults, {} connections for {} s of {}",
        args.concurrency,
        args.shipped_seconds,
        kind.event_type()
    );
    let mut out = burst(&args, kind, &run, args.shipped_seconds).await;
    let burst_s = unix_now() - first_post;
    if !out.errors.is_empty() {
        bail!(
            "{} requests failed unexpectedly, e.g. {:?}",
            out.errors.len(),
            &out.errors[..out.errors.len().min(3)]
        );
    }
    let stored = out.accepted.len() as i64;
    let pattern = format!("shipped-{run}-%");
    let deadline = Instant::now() + Duration::from_secs(600);
    // Wait on the open rows only (their partial index): the bench must not load the
    // database it measures with a scan of every stored row ten times a second.
    loop {
        let open: i64 = db
            .query_one(
                "SELECT count(*) FROM integration.outbox
                  WHERE status IN ('pending', 'processing', 'failed')",
                &[],
            )
            .await?
            .get(0);
        if open == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("{open} events were still open 600 s after the burst");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'done'), count(*),
                    extract(epoch FROM max(done_at))::float8
               FROM integration.outbox WHERE idempotency_key LIKE $1",
            &[&pattern],
        )
        .await?;
    let (done, all, last): (i64, i64, Option<f64>) = (row.get(0), row.get(1), row.get(2));
    if all != stored {
        bail!("{stored} events were accepted but {all} rows are stored");
    }
    if done != stored {
        bail!("only {done} of {stored} events are done and none is open: the rest are dead");
    }
    let last_done = last.unwrap_or(first_post);
    let cpu1 = sample_cpu(args.host_pid);
    let machine = crate::machine::shares_since(ticks0);
    let (xacts1, calls1) = pg_counters(&db).await?;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;

    out.accepted.sort();
    let rps = stored as f64 / burst_s;
    let (p50, p99) = (
        percentile(&out.accepted, 0.50),
        percentile(&out.accepted, 0.99),
    );
    let e2e_eps = stored as f64 / (last_done - first_post).max(0.001);
    let peak = *peak.lock().unwrap_or_else(|e| e.into_inner());
    let per_k = |a: f64, b: f64| 1000.0 * (b - a) / stored.max(1) as f64;
    let cpu = [
        ("runtime", per_k(cpu0.runtime, cpu1.runtime)),
        ("postgres", per_k(cpu0.postgres, cpu1.postgres)),
        ("loadgen", per_k(cpu0.loadgen, cpu1.loadgen)),
        ("standins", per_k(cpu0.standins, cpu1.standins)),
    ];
    let xacts_per_event = (xacts1 - xacts0) as f64 / stored.max(1) as f64;
    let mut fn_calls: Vec<(String, f64)> = calls1
        .iter()
        .map(|(name, c)| {
            let before = calls0.get(name).copied().unwrap_or(0);
            (name.clone(), (c - before) as f64 / stored.max(1) as f64)
        })
        .filter(|(_, per)| *per > 0.0)
        .collect();
    fn_calls.sort_by(|a, b| a.0.cmp(&b.0));

    println!(
        "bench: {stored} accepted ({rps:.0} req/s, p50 {p50:.1} ms, p99 {p99:.1} ms), {} refused \
         with 503; all done {:.1} s after the first POST → {e2e_eps:.0} events/s end to end; \
         app connections peak {peak}",
        out.refused,
        last_done - first_post
    );
    println!("bench: CPU seconds per 1000 events: {cpu:?}");
    if let Some(m) = machine {
        println!(
            "bench: the machine from the first POST to the last done: busy {:.0} %, idle {:.0} %, \
             stolen by the hypervisor {:.0} %",
            m.busy_pct, m.idle_pct, m.steal_pct
        );
    }
    println!(
        "bench: per event: {xacts_per_event:.1} PostgreSQL transactions; function calls {fn_calls:?}"
    );
    let p = kind.key_prefix();
    let mut entries: Vec<(String, f64)> = vec![
        (format!("{p}ingest_rps"), rps),
        (format!("{p}ingest_p50_ms"), p50),
        (format!("{p}ingest_p99_ms"), p99),
        (format!("{p}refused"), out.refused as f64),
        (format!("{p}e2e_eps"), e2e_eps),
        (format!("{p}pg_connections_peak"), peak as f64),
        (format!("{p}pg_xacts_per_event"), xacts_per_event),
    ];
    for (part, v) in cpu {
        entries.push((format!("{p}cpu_s_per_1k_{part}"), v));
    }
    if let Some(m) = machine {
        entries.push((format!("{p}idle_pct"), m.idle_pct));
        entries.push((format!("{p}steal_pct"), m.steal_pct));
    }
    entries.push((format!("{p}core_hmac_mb_s"), core_speed));
    for (f, v) in &fn_calls {
        entries.push((format!("{p}calls_per_event_{f}"), *v));
    }
    let borrowed: Vec<(&str, f64)> = entries.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    merge_report(&args, &borrowed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_odoo_stand_in_answers_what_the_expense_handler_asks() {
        let auth = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                          "params": {"service": "common", "method": "authenticate",
                                     "args": ["db", "u", "k", {}]}});
        let a: Value = serde_json::from_str(&odoo_answer(auth.to_string().as_bytes())).unwrap();
        assert_eq!(a["result"], 2);
        let read = json!({"jsonrpc": "2.0", "id": 2, "method": "call",
                          "params": {"service": "object", "method": "execute_kw",
                                     "args": ["db", 2, "k", "hr.expense", "web_read", [[42]], {}]}});
        let r: Value = serde_json::from_str(&odoo_answer(read.to_string().as_bytes())).unwrap();
        assert_eq!(r["id"], 2);
        assert_eq!(r["result"][0]["sheet_id"]["id"], 42);
        assert_eq!(
            r["result"][0]["sheet_id"]["user_id"]["email"],
            BENCH_APPROVER_EMAIL
        );
        assert!(BENCH_USER_MAP.starts_with(BENCH_APPROVER_EMAIL));
        let script = include_str!("../../../scripts/bench.sh");
        assert!(
            script.contains(&format!(
                "SPIN_VARIABLE_MATTERMOST_USER_MAP=\"{BENCH_USER_MAP}\""
            )),
            "scripts/bench.sh must map the bench approver"
        );
    }

    #[test]
    fn cpu_seconds_reads_this_process() {
        assert!(cpu_seconds("/proc/self/stat").is_some());
        let s = sample_cpu(None);
        assert!(s.loadgen >= 0.0 && s.standins == 0.0);
    }
}
