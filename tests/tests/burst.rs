//! A burst on the shipped configuration (kick and cron on, the app connecting as its own
//! role with the shipped connection limit), under the runtime of this run:
//! - during and after a burst over 32 and over 64 connections, another PostgreSQL client
//!   connects within a second; the app never holds more than its role's limit;
//! - every 202 is exactly one row, every refusal is a 503 with Retry-After that stored
//!   nothing, and every row reaches `done`;
//! - a kick during a run is delivered by that run or the next, never left for cron;
//! - a run that dies mid-way is taken over;
//! - two app instances on one database deliver each event once, in per-aggregate order.
//!
//! These tests load the machine, so they run one at a time.

use ipai_tests::fake_http::FakeServer;
use ipai_tests::runtime::TEST_SECRET;
use ipai_tests::{manifest, signed_request, Fixture};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn secret() -> &'static str {
    TEST_SECRET.split(',').nth(1).unwrap_or_default()
}

/// An event that needs no outside service (its handler writes a dashboard table), so the
/// burst measures the bus and nothing else.
fn task_event(aggregate: usize, n: usize) -> serde_json::Value {
    json!({"event_type": "finance_task.created", "aggregate_type": "finance_task",
           "aggregate_id": format!("{aggregate}"),
           "payload": {"task_id": aggregate, "name": format!("task {aggregate} step {n}"),
                       "project": "Month-end close", "deadline": "2026-12-05",
                       "status": "created", "stage": "New"}})
}

/// What the burst's senders saw.
#[derive(Default)]
struct BurstOutcome {
    accepted: Vec<String>,
    refused_503: usize,
    other: Vec<String>,
}

/// `connections` senders post signed events back to back for `seconds`.
async fn burst(url: &str, connections: usize, seconds: u64, run: &str) -> BurstOutcome {
    let outcome = Arc::new(std::sync::Mutex::new(BurstOutcome::default()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (url, outcome, run) = (url.to_string(), outcome.clone(), run.to_string());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while Instant::now() < until {
                n += 1;
                let key = format!("{run}-{c}-{n}");
                let resp = signed_request(secret(), &key, &task_event(c, n))
                    .post(&http, &url)
                    .await;
                let mut o = outcome.lock().unwrap();
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        drop(o);
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        let id = body["id"].as_str().unwrap_or_default().to_string();
                        outcome.lock().unwrap().accepted.push(id);
                    }
                    Ok(r) if r.status().as_u16() == 503 => {
                        if r.headers().get("retry-after").is_none() {
                            o.other.push("503 without Retry-After".into());
                        }
                        o.refused_503 += 1;
                    }
                    Ok(r) => o.other.push(format!("HTTP {}", r.status())),
                    Err(e) => o.other.push(e.to_string()),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(outcome)
        .ok()
        .expect("senders are done")
        .into_inner()
        .unwrap()
}

/// The slowest connect of another client, every failure, and per app role the most
/// connections it held at once.
type Watched = (Duration, Vec<String>, HashMap<String, i64>);

/// Connects as the superuser every 100 ms until stopped, and samples how many connections
/// each of the app's roles holds.
struct Watch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Watched>,
}

impl Watch {
    fn start(admin_url: String, roles: Vec<String>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let (mut slowest, mut failures) = (Duration::ZERO, Vec::new());
            let mut peak: HashMap<String, i64> = HashMap::new();
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls),
                )
                .await
                {
                    Ok(Ok((client, conn))) => {
                        slowest = slowest.max(t.elapsed());
                        let h = tokio::spawn(conn);
                        if let Ok(rows) = client
                            .query(
                                "SELECT usename::text, count(*) FROM pg_stat_activity
                                  WHERE usename = ANY($1) GROUP BY usename",
                                &[&roles],
                            )
                            .await
                        {
                            for row in rows {
                                let n = peak.entry(row.get(0)).or_default();
                                *n = (*n).max(row.get::<_, i64>(1));
                            }
                        }
                        drop(client);
                        let _ = h.await;
                    }
                    Ok(Err(e)) => failures.push(e.to_string()),
                    Err(_) => failures.push("connect took more than 5 s".into()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (slowest, failures, peak)
        });
        Self { stop, task }
    }

    async fn finish(self) -> Watched {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

async fn wait_all_done(f: &Fixture, timeout: Duration) -> (i64, i64) {
    let deadline = Instant::now() + timeout;
    loop {
        let row = f
            .db
            .client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM integration.outbox",
                &[],
            )
            .await
            .unwrap();
        let (all, done): (i64, i64) = (row.get(0), row.get(1));
        if all == done || Instant::now() > deadline {
            return (all, done);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_burst_on_the_shipped_defaults(connections: usize) {
    let _serial = SERIAL.lock().await;
    let f = Fixture::new().await.unwrap();
    let roles = vec![f.db.roles.ingest.clone(), f.db.roles.app.clone()];
    let mut limits: HashMap<String, i64> = HashMap::new();
    for role in &roles {
        let limit: i32 =
            f.db.client
                .query_one(
                    "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
                    &[role],
                )
                .await
                .unwrap()
                .get(0);
        limits.insert(role.clone(), limit as i64);
    }
    let admin = format!("{}/postgres?sslmode=disable", ipai_tests::db::server_url());
    let watch = Watch::start(admin.clone(), roles.clone());

    let out = burst(&f.sys.url("/odoo-webhook"), connections, 4, "burst").await;
    let (all, done) = wait_all_done(&f, Duration::from_secs(90)).await;
    // And for a while after the burst, while the pools hold their idle connections.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (slowest, failures, peak) = watch.finish().await;

    eprintln!(
        "burst over {connections} connections: {} accepted, {} refused with 503, \
         slowest other connect {slowest:?}, connections held at most {peak:?} (limits {limits:?})",
        out.accepted.len(),
        out.refused_503
    );
    eprintln!("rows {all}, done {done}");
    assert!(out.other.is_empty(), "unexpected answers: {:?}", out.other);
    assert!(!out.accepted.is_empty(), "nothing was accepted");
    assert!(
        failures.is_empty(),
        "another client could not connect: {failures:?}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "another client waited {slowest:?} to connect"
    );
    for role in &roles {
        let held = peak.get(role).copied().unwrap_or(0);
        assert!(
            held <= limits[role],
            "{role} held {held} connections, over its limit {}",
            limits[role]
        );
    }
    let unique: HashSet<&String> = out.accepted.iter().collect();
    assert_eq!(unique.len(), out.accepted.len(), "an id was answered twice");
    assert_eq!(
        all,
        out.accepted.len() as i64,
        "every 202 is one row and a 503 ({} of them) stored nothing",
        out.refused_503
    );
    assert_eq!(done, all, "every row reaches done:\n{}", f.sys.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_32_connections_leaves_postgres_open_and_delivers_every_event() {
    a_burst_on_the_shipped_defaults(32).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_64_connections_leaves_postgres_open_and_delivers_every_event() {
    a_burst_on_the_shipped_defaults(64).await;
}

/// Handlers are a loopback fake here (chaining off), so a run can be held open.
async fn with_fake_handlers(fake: &FakeServer, cron: bool) -> Fixture {
    let url = fake.url.clone();
    let vars = move |v: &mut std::collections::BTreeMap<String, String>| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
    };
    if cron {
        Fixture::with(vars).await.unwrap()
    } else {
        Fixture::with_manifest(manifest::variant(manifest::without_cron), vars)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_kicked_during_a_run_is_delivered_by_that_run_or_the_next_not_by_cron() {
    let _serial = SERIAL.lock().await;
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(1500));
    // Without the cron trigger: nothing but the kicks can deliver these events.
    let f = with_fake_handlers(&fake, false).await;
    let first = f.ingest("kick-1", &task_event(1, 1)).await;
    // The first event's run is now delivering (the handler takes 1.5 s) ...
    fake.wait_for(1, Duration::from_secs(10)).await;
    let second = f.ingest("kick-2", &task_event(2, 1)).await;
    let third = f.ingest("kick-3", &task_event(3, 1)).await;
    // ... and the kicks of the next two only marked it: no second run started.
    let runs: i64 =
        f.db.value(
            "SELECT count(DISTINCT locked_by) FROM integration.outbox WHERE locked_by IS NOT NULL",
        )
        .await;
    assert!(runs <= 1, "{runs} runs claimed at once");
    for id in [&first, &second, &third] {
        assert_eq!(
            f.wait_status(id, "done", Duration::from_secs(15)).await,
            "done",
            "event {id} was left behind:\n{}",
            f.sys.output()
        );
    }
    fake.assert_received(3, "each event is delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_dies_mid_way_is_taken_over() {
    let _serial = SERIAL.lock().await;
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(400));
    let mut f = with_fake_handlers(&fake, true).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(f.ingest(&format!("die-{i}"), &task_event(100 + i, 1)).await);
    }
    fake.wait_for(2, Duration::from_secs(10)).await;
    f.sys.kill(); // the run dies holding the dispatcher lease and claimed rows
    let holder: Option<String> =
        f.db.value("SELECT holder FROM integration.dispatch_lease")
            .await;
    assert!(holder.is_some(), "the killed run must have held the lease");
    fake.delay(Duration::ZERO);
    // The processing rows come back after the lock timeout: make it short, as an
    // operator whose handlers are quick would.
    f.restart_with(|v| {
        v.insert("outbox_lock_timeout_s".into(), "2".into());
    })
    .await
    .unwrap();
    // Nothing is called by hand: cron runs, and takes over once the lease expires.
    let (all, done) = wait_all_done(&f, Duration::from_secs(60)).await;
    assert_eq!((all, done), (20, 20), "{}", f.sys.output());
    let received: HashSet<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.header("x-ipai-event-id").map(str::to_string))
        .collect();
    for id in &ids {
        assert!(
            received.contains(id),
            "event {id} never reached the handler"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_instances_deliver_each_event_once_in_per_aggregate_order() {
    let _serial = SERIAL.lock().await;
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(5));
    let f = with_fake_handlers(&fake, true).await;
    let second = f.start_another().await.unwrap();
    let instances = [f.sys.url("/odoo-webhook"), second.url("/odoo-webhook")];
    let http = reqwest::Client::new();
    // 10 aggregates × 6 events, posted alternately to the two instances.
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for step in 0..6 {
        let mut posts = Vec::new();
        for agg in 0..10usize {
            let url = instances[(agg + step) % 2].clone();
            let req = signed_request(
                secret(),
                &format!("two-{agg}-{step}"),
                &task_event(agg, step),
            );
            let http = http.clone();
            posts.push(tokio::spawn(async move {
                let r = req.post(&http, &url).await.unwrap();
                assert_eq!(r.status().as_u16(), 202);
                let body: serde_json::Value = r.json().await.unwrap();
                (agg, body["id"].as_str().unwrap_or_default().to_string())
            }));
        }
        for p in posts {
            let (agg, id) = p.await.unwrap();
            expected.entry(agg.to_string()).or_default().push(id);
        }
    }
    let (all, done) = wait_all_done(&f, Duration::from_secs(60)).await;
    assert_eq!((all, done), (60, 60), "{}", f.sys.output());
    let got = fake.requests();
    let ids: Vec<String> = got
        .iter()
        .filter_map(|r| r.header("x-ipai-event-id").map(str::to_string))
        .collect();
    assert_eq!(
        ids.len(),
        60,
        "each event delivered once: {} deliveries\n{}",
        ids.len(),
        fake.received()
    );
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        60,
        "{}",
        fake.received()
    );
    // Per aggregate, the handler saw the events in the order they were stored.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for r in &got {
        let body = r.json();
        seen.entry(
            body["aggregate_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
        .or_default()
        .push(body["id"].as_str().unwrap_or_default().to_string());
    }
    for (agg, order) in &seen {
        let stored: Vec<String> =
            f.db.column(
                "SELECT id::text FROM integration.outbox WHERE aggregate_id = $1 ORDER BY seq",
                &[agg],
            )
            .await;
        assert_eq!(order, &stored, "aggregate {agg} out of order");
    }
    drop(second);
}
