//! SPEC §6 end to end: ingest → dispatcher → handler with the built components, under
//! the runtime `IPAI_RUNTIME` selects. Handlers are either the real handler components
//! (reached by service chaining) or a loopback fake the test controls (service chaining
//! off, `handler_base_url` pointing at it), which records every delivery.

use ipai_tests::fake_http::FakeServer;
use ipai_tests::manifest;
use ipai_tests::runtime::{TEST_DISPATCH_TOKEN, TEST_HANDLER_TOKEN};
use ipai_tests::Fixture;
use serde_json::{json, Value};
use std::time::Duration;

fn event(event_type: &str, aggregate_type: &str, aggregate_id: &str, n: u32) -> Value {
    json!({"event_type": event_type, "aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
           "payload": {"status": "submit", "n": n}})
}

fn expense(id: &str, n: u32) -> Value {
    event("expense.submitted", "expense", id, n)
}

/// A system whose dispatcher delivers over HTTP to `fake`.
async fn with_fake_handlers(
    fake: &FakeServer,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> Fixture {
    let url = fake.url.clone();
    Fixture::with(move |v| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
        edit(v);
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_kick_delivers_through_service_chaining_without_cron() {
    // No cron trigger at all: only the kick after ingest can deliver.
    let m = manifest::variant(manifest::without_cron);
    let f = Fixture::with_manifest(m, |_| {}).await.unwrap();
    // Event types whose handlers need no outside service (docs/handlers.md): the real
    // handlers acknowledge them with only dashboard writes.
    let ids = [
        f.ingest("k-exp", &event("expense.paid", "expense", "1", 1))
            .await,
        f.ingest("k-asset", &event("asset.reserved", "asset_booking", "9", 1))
            .await,
        f.ingest(
            "k-fin",
            &event("finance_task.created", "finance_task", "T-1", 1),
        )
        .await,
    ];
    for id in &ids {
        assert_eq!(
            f.wait_status(id, "done", Duration::from_secs(15)).await,
            "done",
            "{}",
            f.sys.output()
        );
    }
    let row = f.db.client
        .query_one("SELECT attempts, locked_by IS NULL, done_at IS NOT NULL FROM integration.outbox WHERE id::text = $1", &[&ids[0]])
        .await.unwrap();
    assert_eq!(
        (
            row.get::<_, i32>(0),
            row.get::<_, bool>(1),
            row.get::<_, bool>(2)
        ),
        (1, true, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_alone_delivers_when_the_kick_is_off() {
    let f = Fixture::with(|v| {
        v.insert("dispatch_kick".into(), "off".into());
    })
    .await
    .unwrap();
    let id = f
        .ingest("k-cron", &event("expense.paid", "expense", "2", 1))
        .await;
    assert_eq!(
        f.db.status(&id).await,
        "pending",
        "nothing may deliver before the cron tick"
    );
    // The schedule is every 5 s; allow a few ticks.
    assert_eq!(
        f.wait_status(&id, "done", Duration::from_secs(20)).await,
        "done",
        "{}",
        f.sys.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_receive_the_envelope_with_event_id_attempt_and_token_over_http() {
    let fake = FakeServer::start().await;
    let f = with_fake_handlers(&fake, |_| {}).await;
    let id = f
        .ingest(
            "k-http",
            &event("finance_task.submitted", "finance_task", "T-9", 7),
        )
        .await;
    assert_eq!(
        f.wait_status(&id, "done", Duration::from_secs(15)).await,
        "done"
    );
    let got = fake.assert_received(1, "one delivery");
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/handlers/finance")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TEST_HANDLER_TOKEN}").as_str())
    );
    assert_eq!(r.header("x-ipai-event-id"), Some(id.as_str()));
    assert_eq!(r.header("x-ipai-attempt"), Some("1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let env = r.json();
    assert_eq!(env["id"], id.as_str());
    assert_eq!(env["event_type"], "finance_task.submitted");
    assert_eq!(env["aggregate_type"], "finance_task");
    assert_eq!(env["aggregate_id"], "T-9");
    assert_eq!(env["payload"]["n"], 7);
    assert_eq!(env["idempotency_key"], "k-http");
    assert_eq!(env["attempt"], 1);
    assert!(env["seq"].as_i64().is_some() && env["created_at"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_retried_on_schedule_then_dead_then_requeued_and_done() {
    let fake = FakeServer::start().await;
    fake.respond_with(500, "boom: ledger locked");
    let f = with_fake_handlers(&fake, |v| {
        v.insert("dispatch_kick".into(), "off".into());
    })
    .await;
    let id = f.ingest("k-fail", &expense("3", 1)).await;
    // Three attempts allowed for this event (the default is 10).
    f.db.client
        .execute(
            "UPDATE integration.outbox SET max_attempts = 3 WHERE id::text = $1",
            &[&id],
        )
        .await
        .unwrap();

    let state = || async {
        let r = f.db.client
            .query_one("SELECT status, attempts, last_error, extract(epoch FROM next_attempt_at - updated_at)::float8 FROM integration.outbox WHERE id::text = $1", &[&id])
            .await.unwrap();
        (
            r.get::<_, String>(0),
            r.get::<_, i32>(1),
            r.get::<_, Option<String>>(2),
            r.get::<_, f64>(3),
        )
    };
    let s = f.dispatch().await;
    assert_eq!(
        (s["claimed"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let (status, attempts, err, wait) = state().await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert_eq!(err.as_deref(), Some("HTTP 500: boom: ledger locked"));
    assert!(
        (8.0..=12.0).contains(&wait),
        "first retry after 10 s ± 20 %, got {wait}"
    );

    // Not due yet: a run claims nothing.
    assert_eq!(f.dispatch().await["claimed"], 0);
    // Simulate the clock reaching next_attempt_at.
    f.db.make_due(&id).await;
    f.dispatch().await;
    let (status, attempts, _, wait) = state().await;
    assert_eq!((status.as_str(), attempts), ("failed", 2));
    assert!(
        (24.0..=36.0).contains(&wait),
        "second retry after 30 s ± 20 %, got {wait}"
    );

    f.db.make_due(&id).await;
    let s = f.dispatch().await;
    assert_eq!(s["dead"], 1, "{s}");
    let (status, attempts, err, _) = state().await;
    assert_eq!((status.as_str(), attempts), ("dead", 3));
    assert_eq!(err.as_deref(), Some("HTTP 500: boom: ledger locked"));

    // An operator requeues it once the receiver is fixed.
    fake.respond_with(200, "{}");
    let requeued: bool =
        f.db.client
            .query_one("SELECT integration.requeue_outbox($1::text::uuid)", &[&id])
            .await
            .unwrap()
            .get(0);
    assert!(requeued);
    assert_eq!(f.dispatch().await["done"], 1);
    assert_eq!(f.db.status(&id).await, "done");
    let attempts: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| r.header("x-ipai-attempt").unwrap_or("").to_string())
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "1"], "{}", fake.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_does_not_answer_in_time_fails_with_a_timeout() {
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_secs(5));
    let f = with_fake_handlers(&fake, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        v.insert("delivery_timeout_ms".into(), "500".into());
    })
    .await;
    let id = f.ingest("k-slow", &expense("4", 1)).await;
    // This run, or a cron tick's run just before it, makes the one attempt.
    let s = f.dispatch().await;
    assert_eq!(f.db.status(&id).await, "failed", "{s}");
    let err: Option<String> =
        f.db.client
            .query_one(
                "SELECT last_error FROM integration.outbox WHERE id::text = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
    assert!(
        err.as_deref()
            .unwrap_or("")
            .contains("timed out after 500 ms"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_aggregate_reach_the_handler_in_order() {
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(20));
    let f = with_fake_handlers(&fake, |_| {}).await;
    // Two aggregates interleaved; every ingest kicks a run, so runs overlap.
    let mut ids = Vec::new();
    for n in 0..12u32 {
        let agg = if n % 2 == 0 { "A" } else { "B" };
        ids.push(f.ingest(&format!("k-order-{n}"), &expense(agg, n)).await);
    }
    for id in &ids {
        assert_eq!(
            f.wait_status(id, "done", Duration::from_secs(20)).await,
            "done"
        );
    }
    let got = fake.requests();
    for agg in ["A", "B"] {
        let ns: Vec<u64> = got
            .iter()
            .map(|r| r.json())
            .filter(|e| e["aggregate_id"] == agg)
            .map(|e| e["payload"]["n"].as_u64().unwrap_or(999))
            .collect();
        let mut sorted = ns.clone();
        sorted.sort();
        assert_eq!(ns, sorted, "aggregate {agg} delivered out of order");
        assert_eq!(ns.len(), 6, "each event delivered once");
    }
}

/// Ingests `n` expense events, each of an aggregate of its own, and waits until every one
/// is done.
async fn ingest_and_wait_done(f: &Fixture, key: &str, n: u32) {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            f.ingest(&format!("k-{key}-{i}"), &expense(&format!("{key}-{i}"), i))
                .await,
        );
    }
    for id in &ids {
        assert_eq!(
            f.wait_status(id, "done", Duration::from_secs(30)).await,
            "done",
            "{}",
            f.sys.output()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_whose_run_stops_on_its_budget_starts_the_next_at_once_without_cron() {
    // No cron trigger: only the kick can deliver. Every run stops on its budget after one
    // delivery; the kicks of the later events coalesce into the first run, so the
    // backlog is delivered only because the kick starts run after run.
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(300));
    let url = fake.url.clone();
    let m = manifest::variant(manifest::without_cron);
    let f = Fixture::with_manifest(m, move |v| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
        v.insert("dispatch_budget_ms".into(), "100".into());
        v.insert("dispatch_batch_size".into(), "1".into());
    })
    .await
    .unwrap();
    ingest_and_wait_done(&f, "kick-budget", 4).await;
    fake.assert_received(4, "each event delivered once");
}

/// How many runs each cron tick logged (`tick <timestamp>: <run summary>` lines of
/// dispatch-cron; a run that claimed nothing is not logged).
fn runs_per_tick(output: &str) -> std::collections::BTreeMap<String, usize> {
    let mut ticks = std::collections::BTreeMap::new();
    for line in output
        .lines()
        .filter(|l| l.contains("component=dispatch-cron"))
    {
        let Some(rest) = line.split("msg=\"tick ").nth(1) else {
            continue;
        };
        let stamp: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        *ticks.entry(stamp).or_insert(0) += 1;
    }
    ticks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_its_budget_is_followed_at_once_by_the_next_in_the_same_cron_tick() {
    // Every run stops on its time budget after one delivery (batches of one, a handler
    // slower than the budget), as a long backlog's runs do after dispatch_budget_ms. The
    // kick is off so that the cron tick finds the backlog (a kick would drain it itself,
    // as the test above shows); the tick starts run after run until the queue is empty
    // instead of one run per tick.
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(300));
    let f = with_fake_handlers(&fake, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        v.insert("dispatch_budget_ms".into(), "100".into());
        v.insert("dispatch_batch_size".into(), "1".into());
    })
    .await;
    ingest_and_wait_done(&f, "cron-budget", 4).await;
    let output = f.sys.output();
    assert!(
        output.contains("\\\"budget_spent\\\":true"),
        "the runs say they stopped on their budget:\n{output}"
    );
    let ticks = runs_per_tick(&output);
    assert!(
        ticks.values().any(|runs| *runs >= 2),
        "one tick ran several runs back to back: {ticks:?}\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_requires_post_and_the_bearer_token() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/dispatch");
    let r = f.http.post(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = f.http.post(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = f
        .http
        .get(&url)
        .bearer_auth(TEST_DISPATCH_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let s = f.dispatch().await;
    for k in ["claimed", "done", "failed", "dead", "batches", "ms"] {
        assert!(s[k].is_u64(), "summary lacks {k}: {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_routes_reject_requests_without_the_token_or_a_valid_envelope() {
    // The public handler routes of a service_chaining=off deployment (scripts/deploy.py).
    let m = manifest::variant(manifest::with_public_handler_routes);
    let f = Fixture::with_manifest(m, |_| {}).await.unwrap();
    let url = f.sys.url("/handlers/expense");
    let env = json!({"id": "00000000-0000-0000-0000-000000000001", "seq": 1, "event_type": "expense.paid",
        "aggregate_type": "expense", "aggregate_id": "1", "payload": {"status": "done"}, "idempotency_key": "k",
        "source": "odoo", "occurred_at": null, "created_at": "2026-11-26 05:00:00+00", "attempt": 1});
    let r = f.http.post(&url).json(&env).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = f
        .http
        .post(&url)
        .bearer_auth(TEST_HANDLER_TOKEN)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = f
        .http
        .post(f.sys.url("/handlers/asset"))
        .bearer_auth(TEST_HANDLER_TOKEN)
        .json(&env)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        422,
        "an expense event is not the asset handler's"
    );
    let r = f
        .http
        .post(&url)
        .bearer_auth(TEST_HANDLER_TOKEN)
        .json(&env)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
