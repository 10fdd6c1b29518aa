//! SPEC §11 end to end, with the built components under the runtime `IPAI_RUNTIME` selects,
//! the shipped manifest with every default on (ingest kick, dispatch-cron), a fresh database
//! and Odoo as the loopback fake (tests/support/services.rs) that checks the shape of the
//! healing call. The digests are signed and posted to ingest exactly as the addon sends them.
//! - A digest listing keys the bus never stored: the reconcile handler records the window,
//!   asks Odoo (`ipai.event.queue.ipai_resend_keys`) for exactly those keys; the gap shows in
//!   `/metrics`, `/ops`, MCP `reconcile_status` and as the `events_missing` alert; when Odoo's
//!   resent events arrive under their own keys, it all goes back to zero and the alert
//!   resolves.
//! - A digest whose keys all exist reports zero and asks Odoo nothing.
//! - A forged digest is refused (401) and a replayed one stores nothing new, like any event.
//! - A signed digest that does not add up is refused by the handler (400 naming the field),
//!   retried like any failure, and records nothing.
//! - Odoo failing the resend fails the attempt (retried); keys Odoo does not know are said.

use ipai_tests::runtime::{TEST_OPS_PASSWORD, TEST_SECRET};
use ipai_tests::services::{OdooWrites, Services};
use ipai_tests::signing::signed_request;
use ipai_tests::Fixture;
use serde_json::{json, Value};
use std::time::Duration;

const SOURCE: &str = "odoo_prod";
const START: &str = "2026-12-08T02:00:00Z";
const END: &str = "2026-12-08T03:00:00Z";
const WAIT: Duration = Duration::from_secs(30);

async fn world() -> (Fixture, Services) {
    let svc = Services::start().await;
    let f = Fixture::with(|v| svc.configure(v))
        .await
        .expect("system starts");
    (f, svc)
}

/// The digest event of `keys`, as the addon builds it (SPEC §11).
fn digest(keys: &[&str]) -> Value {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    ipai_reconcile::digest_event(SOURCE, START, END, &keys)
}

/// A business event that needs no outside service (a dashboard row only).
fn task(id: i64) -> Value {
    let mut e = ipai_cli::samples::sample("finance_task.created").expect("sample");
    e["aggregate_id"] = json!(id.to_string());
    e["payload"]["task_id"] = json!(id);
    e
}

async fn ingest_tasks(f: &Fixture, keys: &[&str]) {
    for (i, k) in keys.iter().enumerate() {
        f.ingest(k, &task(7000 + i as i64)).await;
    }
}

/// The digest's outbox row once the dispatcher is done with it (`done` or the last status).
async fn digest_delivered(f: &Fixture, id: &str) -> String {
    f.dispatch().await;
    f.wait_status(id, "done", WAIT).await
}

fn resend_calls(svc: &Services) -> Vec<Value> {
    svc.odoo_calls()
        .into_iter()
        .filter(|(m, method, _)| m == "ipai.event.queue" && method == "ipai_resend_keys")
        .map(|(_, _, args)| args)
        .collect()
}

async fn metrics(f: &Fixture) -> String {
    f.http
        .get(f.sys.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text")
}

fn sample(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_string))
}

/// The open alert of `condition`: (events, detail), if open.
async fn open_alert(f: &Fixture, condition: &str) -> Option<(i64, String)> {
    let rows = f
        .db
        .client
        .query(
            "SELECT events, detail FROM integration.alerts WHERE condition = $1 AND resolved_at IS NULL",
            &[&condition],
        )
        .await
        .expect("alerts");
    rows.first().map(|r| (r.get(0), r.get(1)))
}

async fn ops_page(f: &Fixture) -> String {
    f.http
        .get(f.sys.url("/ops"))
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .send()
        .await
        .expect("GET /ops")
        .text()
        .await
        .expect("page")
}

async fn windows_recorded(f: &Fixture) -> i64 {
    f.db.value("SELECT count(*) FROM integration.reconcile_windows")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_events_are_found_shown_asked_for_again_and_the_alert_resolves_when_they_arrive() {
    let (f, svc) = world().await;
    let stored = [
        "fin:7000:created:1",
        "fin:7001:created:1",
        "fin:7002:created:1",
    ];
    let lost = ["fin:7003:created:1", "fin:7004:created:1"];
    ingest_tasks(&f, &stored).await;
    let all: Vec<&str> = stored.iter().chain(&lost).copied().collect();

    let id = f.ingest("digest/odoo_prod/1", &digest(&all)).await;
    assert_eq!(digest_delivered(&f, &id).await, "done");

    // Odoo was asked for exactly the lost keys, once, sorted.
    assert_eq!(resend_calls(&svc), vec![json!([lost])]);
    // The gap, everywhere an operator looks.
    let m = metrics(&f).await;
    assert_eq!(
        sample(&m, "ipai_reconcile_missing_events").as_deref(),
        Some("2")
    );
    let age: f64 = sample(&m, "ipai_reconcile_last_digest_age_seconds")
        .expect("digest age once a digest came")
        .parse()
        .expect("a number");
    assert!((0.0..60.0).contains(&age), "{age}");
    f.evaluate_alerts().await;
    let (events, detail) = open_alert(&f, "events_missing").await.expect("alert open");
    assert_eq!(events, 2);
    assert!(detail.contains(SOURCE), "{detail}");
    assert_eq!(
        sample(
            &metrics(&f).await,
            "ipai_alerts_open{condition=\"events_missing\"}"
        )
        .as_deref(),
        Some("1")
    );
    let status = f.mcp_tool("reconcile_status", json!({})).await;
    assert_eq!(status["missing_total"], 2, "{status}");
    assert_eq!(status["windows"][0]["source"], SOURCE);
    assert_eq!(status["windows"][0]["expected"], 5);
    assert_eq!(status["windows"][0]["found"], 3);
    assert_eq!(status["windows"][0]["missing"], json!(lost));
    let page = ops_page(&f).await;
    assert!(
        page.contains("<span data-testid=\"reconcile-missing\">2</span>"),
        "{page}"
    );
    assert!(page.contains("<code>fin:7003:created:1</code>"));

    // Odoo sends the rows again under their own keys: the gap closes by itself.
    ingest_tasks(&f, &lost).await;
    let m = metrics(&f).await;
    assert_eq!(
        sample(&m, "ipai_reconcile_missing_events").as_deref(),
        Some("0")
    );
    let summary = f.evaluate_alerts().await;
    assert!(
        open_alert(&f, "events_missing").await.is_none(),
        "{summary}"
    );
    let resolved: i64 = f
        .db
        .value("SELECT count(*) FROM integration.alerts WHERE condition = 'events_missing' AND resolved_at IS NOT NULL")
        .await;
    assert_eq!(resolved, 1);
    assert_eq!(
        f.mcp_tool("reconcile_status", json!({})).await["missing_total"],
        0
    );
    assert!(ops_page(&f)
        .await
        .contains("<span data-testid=\"reconcile-missing\">0</span>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_whose_keys_all_exist_reports_zero_and_asks_odoo_nothing() {
    let (f, svc) = world().await;
    // Before any digest: nothing to reconcile, no age sample, no digest_late.
    let m = metrics(&f).await;
    assert_eq!(
        sample(&m, "ipai_reconcile_missing_events").as_deref(),
        Some("0")
    );
    assert_eq!(sample(&m, "ipai_reconcile_last_digest_age_seconds"), None);
    assert!(ops_page(&f)
        .await
        .contains("No digest has come from Odoo yet"));

    let keys = ["fin:7100:created:1", "fin:7101:created:1"];
    ingest_tasks(&f, &keys).await;
    let id = f.ingest("digest/odoo_prod/2", &digest(&keys)).await;
    assert_eq!(digest_delivered(&f, &id).await, "done");
    assert_eq!(resend_calls(&svc), Vec::<Value>::new());
    let status = f.mcp_tool("reconcile_status", json!({})).await;
    assert_eq!(status["missing_total"], 0);
    assert_eq!(status["windows"][0]["found"], 2);
    f.evaluate_alerts().await;
    assert!(open_alert(&f, "events_missing").await.is_none());
    assert!(open_alert(&f, "digest_late").await.is_none());

    // Two hours without the next digest (the record's arrival moved back): digest_late.
    f.db.client
        .execute(
            "UPDATE integration.reconcile_windows SET received_at = now() - interval '2 hours 1 minute'",
            &[],
        )
        .await
        .expect("move the digest back");
    f.evaluate_alerts().await;
    let (_, detail) = open_alert(&f, "digest_late")
        .await
        .expect("digest_late open");
    assert!(detail.starts_with("last digest received "), "{detail}");
    // The next digest resolves it.
    let id = f.ingest("digest/odoo_prod/3", &digest(&keys[..1])).await;
    assert_eq!(digest_delivered(&f, &id).await, "done");
    f.evaluate_alerts().await;
    assert!(open_alert(&f, "digest_late").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_digest_is_refused_and_a_replayed_one_stores_nothing_new() {
    let (f, svc) = world().await;
    let url = f.sys.url("/odoo-webhook");
    let lying = digest(&["fin:9999:created:1"]);
    let forged = signed_request("not-the-secret", "digest/odoo_prod/forged", &lying);
    let resp = forged.post(&f.http, &url).await.expect("post");
    assert_eq!(resp.status().as_u16(), 401);
    let outbox: i64 = f.db.value("SELECT count(*) FROM integration.outbox").await;
    assert_eq!(outbox, 0, "a forged digest stores nothing");

    let secret = TEST_SECRET.split(',').nth(1).unwrap_or_default();
    let signed = signed_request(secret, "digest/odoo_prod/4", &lying);
    assert_eq!(
        signed.post(&f.http, &url).await.unwrap().status().as_u16(),
        202
    );
    let replayed = signed
        .clone()
        .set("x-idempotency-key", "digest/odoo_prod/5");
    assert_eq!(
        replayed
            .post(&f.http, &url)
            .await
            .unwrap()
            .status()
            .as_u16(),
        409
    );
    let resent = signed.post(&f.http, &url).await.unwrap();
    assert_eq!(
        resent.status().as_u16(),
        200,
        "the sender's retry is a duplicate"
    );
    let outbox: i64 = f.db.value("SELECT count(*) FROM integration.outbox").await;
    assert_eq!(outbox, 1);
    f.dispatch().await;
    assert_eq!(windows_recorded(&f).await, 1);
    assert_eq!(resend_calls(&svc).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_that_does_not_add_up_is_refused_naming_the_field_and_records_nothing() {
    let (f, svc) = world().await;
    let mut bad = digest(&["fin:7200:created:1", "fin:7201:created:1"]);
    bad["payload"]["count"] = json!(3);
    let id = f.ingest("digest/odoo_prod/6", &bad).await;
    f.dispatch().await;
    let row =
        f.db.client
            .query_one(
                "SELECT status, last_error FROM integration.outbox WHERE id::text = $1",
                &[&id],
            )
            .await
            .expect("row");
    let (status, error): (String, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(status, "failed");
    let error = error.unwrap_or_default();
    assert!(error.contains("400"), "{error}");
    assert!(
        error.contains("digest: count 3 does not match the 2 keys"),
        "{error}"
    );
    assert_eq!(windows_recorded(&f).await, 0);
    assert!(resend_calls(&svc).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odoo_failing_the_resend_retries_the_digest_and_unknown_keys_are_said() {
    let (f, svc) = world().await;
    svc.odoo_writes(OdooWrites::Fail("the queue is locked".into()));
    let id = f
        .ingest("digest/odoo_prod/7", &digest(&["fin:7300:created:1"]))
        .await;
    f.dispatch().await;
    let error: Option<String> = f
        .db
        .client
        .query_one(
            "SELECT last_error FROM integration.outbox WHERE id::text = $1 AND status = 'failed'",
            &[&id],
        )
        .await
        .expect("failed, to be retried")
        .get(0);
    assert!(
        error.unwrap_or_default().contains("the queue is locked"),
        "the attempt fails with Odoo's reason"
    );
    // The window is recorded all the same: the gap shows while Odoo refuses.
    assert_eq!(windows_recorded(&f).await, 1);

    svc.odoo_writes(OdooWrites::Succeed);
    svc.odoo_resend_unknown(&["fin:7300:created:1"]);
    f.db.make_due(&id).await;
    assert_eq!(digest_delivered(&f, &id).await, "done");
    assert_eq!(resend_calls(&svc).len(), 2);
    let m = metrics(&f).await;
    assert_eq!(
        sample(&m, "ipai_reconcile_missing_events").as_deref(),
        Some("1"),
        "a key Odoo cannot resend stays missing"
    );
}
