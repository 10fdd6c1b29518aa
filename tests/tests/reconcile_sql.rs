//! SPEC §11, the bus's side of reconciliation: a digest of a window of Odoo's queue (the
//! idempotency keys it marked sent) is checked and recorded by `integration.record_digest`,
//! called as the app's role with the statement the Rust side sends (`ipai_reconcile`), and
//! read back with `ipai reconcile`, the built binary:
//! - a digest whose keys are all stored reports nothing missing;
//! - the keys the bus never stored are listed exactly, and each stops counting once an event
//!   with it is stored; a window digested again replaces its record;
//! - a digest that does not add up (count, keys_sha256, key types, more than 10,000 keys, its
//!   window) is refused naming the field, and nothing is recorded;
//! - a window of 10,000 keys is reconciled in one call;
//! - the read-only role sees the status and cannot record.
//!
//! The digest's way through the running bus (handler, healing, metrics, alerts, MCP, /ops) is
//! `reconcile.rs`; with the real Odoo, `odoo_loop.rs`.

use ipai_reconcile::{RECORD_DIGEST_SQL, STATUS_SQL};
use ipai_tests::ipai_bin::{ipai, text};
use ipai_tests::TestDb;
use serde_json::{json, Value};
use std::time::Instant;
use tokio_postgres::Client;

const START: &str = "2026-12-07T10:00:00Z";
const END: &str = "2026-12-07T11:00:00Z";

/// The digest payload of `keys` as the addon builds it.
fn digest(keys: &[String]) -> Value {
    ipai_reconcile::digest_event("odoo", START, END, keys)["payload"].clone()
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Stores an event under each key, through ingest's own function and role.
async fn ingest(db: &TestDb, keys: &[String]) {
    let c = ipai_tests::db::connect(&db.ingest_url()).await;
    for k in keys {
        c.query_one(
            "SELECT integration.ingest_event('expense.paid', 'expense', $1, \
                 '{\"expense_id\": 1}', $1, 'sha', NULL, 'odoo')",
            &[k],
        )
        .await
        .expect("ingest_event");
    }
}

async fn record(c: &Client, payload: &Value) -> Result<Value, tokio_postgres::Error> {
    c.query_one(
        RECORD_DIGEST_SQL,
        &[
            &"00000000-0000-4000-8000-0000000000d1",
            &"odoo",
            &payload.to_string(),
        ],
    )
    .await
    .map(|r| r.get(0))
}

/// `ipai reconcile --json`.
async fn reconcile(db: &TestDb) -> Value {
    let out = ipai(&["reconcile", "--database-url", &db.url, "--json"], &[]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(&stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_whose_keys_are_all_stored_reports_nothing_missing() {
    let db = TestDb::new().await.unwrap();
    let sent = keys("paid", 5);
    ingest(&db, &sent).await;
    let app = ipai_tests::db::connect(&db.app_url()).await;
    let recorded = record(&app, &digest(&sent)).await.expect("recorded");
    assert_eq!(
        recorded,
        json!({"source": "odoo", "window_start": "2026-12-07T10:00:00+00:00", "expected": 5,
               "found": 5, "missing": []})
    );
    let status = reconcile(&db).await;
    assert_eq!(status["missing_total"], 0);
    assert_eq!(status["windows"][0]["expected"], 5);
    assert_eq!(status["windows"][0]["found"], 5);
    let out = ipai(&["reconcile", "--database-url", &db.url], &[]).await;
    assert!(
        text(&out)
            .0
            .starts_with("Nothing missing: every key in 1 digested window(s)"),
        "{}",
        text(&out).0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_never_stored_are_listed_until_they_arrive() {
    let db = TestDb::new().await.unwrap();
    let sent = keys("paid", 5);
    // A proxy answered 2xx for paid-2 and paid-4 and forwarded nothing.
    let stored: Vec<String> = sent
        .iter()
        .filter(|k| !k.ends_with("-2") && !k.ends_with("-4"))
        .cloned()
        .collect();
    ingest(&db, &stored).await;
    let app = ipai_tests::db::connect(&db.app_url()).await;
    let recorded = record(&app, &digest(&sent)).await.expect("recorded");
    assert_eq!(recorded["missing"], json!(["paid-2", "paid-4"]));
    assert_eq!(recorded["found"], 3);

    let status = reconcile(&db).await;
    assert_eq!(status["missing_total"], 2);
    assert_eq!(status["windows"][0]["missing"], json!(["paid-2", "paid-4"]));
    assert_eq!(status["windows"][0]["source"], "odoo");
    let out = ipai(&["reconcile", "--database-url", &db.url], &[]).await;
    let t = text(&out).0;
    assert!(
        t.starts_with("2 event(s) Odoo marked sent are not in the bus."),
        "{t}"
    );
    assert!(
        t.contains("missing paid-2\n") && t.contains("missing paid-4\n"),
        "{t}"
    );

    // paid-2 arrives (Odoo sent it again): it no longer counts.
    ingest(&db, &["paid-2".to_string()]).await;
    let status = reconcile(&db).await;
    assert_eq!(status["missing_total"], 1);
    assert_eq!(status["windows"][0]["missing"], json!(["paid-4"]));
    assert_eq!(status["windows"][0]["found"], 4);

    // The window digested again (a row of it changed state in Odoo): the record is replaced.
    let mut more = sent.clone();
    more.push("paid-6".into());
    let recorded = record(&app, &digest(&more)).await.expect("recorded again");
    assert_eq!(recorded["missing"], json!(["paid-4", "paid-6"]));
    assert_eq!(db.count("reconcile_windows").await, 1);
    let one = ipai(
        &[
            "reconcile",
            "--database-url",
            &db.url,
            "--json",
            "--window",
            START,
        ],
        &[],
    )
    .await;
    let v: Value = serde_json::from_str(&text(&one).0).expect("JSON");
    assert_eq!(v["windows"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["windows"][0]["expected"], 6);
    let other = ipai(
        &[
            "reconcile",
            "--database-url",
            &db.url,
            "--json",
            "--window",
            "2026-12-07T12:00:00Z",
        ],
        &[],
    )
    .await;
    let v: Value = serde_json::from_str(&text(&other).0).expect("JSON");
    assert_eq!(v["windows"], json!([]));
    let refused = ipai(
        &[
            "reconcile",
            "--database-url",
            &db.url,
            "--window",
            "yesterday",
        ],
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused).1.contains("window"), "{}", text(&refused).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_that_does_not_add_up_is_refused_naming_its_field_and_records_nothing() {
    let db = TestDb::new().await.unwrap();
    let app = ipai_tests::db::connect(&db.app_url()).await;
    let good = digest(&keys("paid", 3));
    let with = |k: &str, v: Value| {
        let mut d = good.clone();
        d[k] = v;
        d
    };
    let cases = [
        (with("count", json!(4)), "count"),
        (with("count", json!("3")), "count"),
        (with("keys_sha256", json!("00")), "keys_sha256"),
        (with("keys", json!(["paid-1", 2, "paid-3"])), "keys"),
        (with("keys", json!("paid-1")), "keys"),
        (with("window_start", json!("yesterday")), "window_start"),
        (
            with("window_end", json!("2026-12-07T09:00:00Z")),
            "window_end",
        ),
        (digest(&keys("busy", 10_001)), "at most 10000"),
    ];
    for (payload, field) in cases {
        let e = record(&app, &payload).await.expect_err("refused");
        let db_error = e.as_db_error().expect("a database error");
        assert_eq!(db_error.code().code(), "22023", "{db_error:?}");
        assert!(
            db_error.message().starts_with("digest: ") && db_error.message().contains(field),
            "{field}: {}",
            db_error.message()
        );
    }
    assert_eq!(db.count("reconcile_windows").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_ten_thousand_keys_is_reconciled_in_one_call() {
    let db = TestDb::new().await.unwrap();
    let sent = keys("busy", 10_000);
    // 9,990 of them stored (the rows as ingest_event leaves them in idempotency_keys).
    db.client
        .execute(
            "INSERT INTO integration.idempotency_keys (idempotency_key, event_id, body_sha256) \
             SELECT 'busy-' || g, gen_random_uuid(), 'sha' FROM generate_series(11, 10000) AS g",
            &[],
        )
        .await
        .unwrap();
    let app = ipai_tests::db::connect(&db.app_url()).await;
    let started = Instant::now();
    let recorded = record(&app, &digest(&sent)).await.expect("recorded");
    eprintln!("10,000 keys reconciled in {:?}", started.elapsed());
    assert_eq!(recorded["expected"], 10_000);
    assert_eq!(recorded["found"], 9_990);
    let mut want: Vec<String> = keys("busy", 10);
    want.sort();
    assert_eq!(recorded["missing"], json!(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_only_role_sees_the_status_and_cannot_record() {
    let db = TestDb::new().await.unwrap();
    let reader = ipai_tests::db::connect(&db.reader_url()).await;
    let status: Value = reader
        .query_one(STATUS_SQL, &[&""])
        .await
        .expect("reconcile_status as the reader")
        .get(0);
    assert_eq!(
        status,
        json!({"missing_total": 0, "last_digest_at": null, "windows": []})
    );
    let e = record(&reader, &digest(&keys("paid", 1)))
        .await
        .expect_err("the reader records nothing");
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("42501"),
        "{e}"
    );
}
