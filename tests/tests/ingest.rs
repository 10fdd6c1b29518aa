//! SPEC §3 end to end: the built `ingest.wasm` in a Spin runtime against a real
//! PostgreSQL. One test per row of the outcome table; each asserts the status, the error
//! code and what the database holds afterwards (nothing for any 4xx).

use ipai_tests::runtime::TEST_SECRET;
use ipai_tests::signing::expense_submitted as expense;
use ipai_tests::{signed_request, Fixture};
use serde_json::{json, Value};

const SECRET: &str = "test-secret";

async fn json_of(resp: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, v, headers)
}

async fn assert_nothing_written(f: &Fixture) {
    assert_eq!(f.db.count("outbox").await, 0, "outbox must stay empty");
    assert_eq!(
        f.db.count("event_log").await,
        0,
        "event_log must stay empty"
    );
}

async fn expect_error(f: &Fixture, resp: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, body, _) = json_of(resp).await;
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_nothing_written(f).await;
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_is_stored_in_outbox_and_event_log_with_202() {
    let f = Fixture::new().await.unwrap();
    let req = signed_request(SECRET, "expense-42-submit", &expense("42"));
    let (status, body, _) = json_of(
        req.post(&f.http, &f.sys.url("/odoo-webhook"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued");
    let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();

    let row = f.db.client.query_one(
        "SELECT event_type, aggregate_type, aggregate_id, payload, status, attempts, idempotency_key, source, occurred_at IS NOT NULL
         FROM integration.outbox WHERE id = $1", &[&id]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "expense.submitted");
    assert_eq!(row.get::<_, String>(1), "expense");
    assert_eq!(row.get::<_, String>(2), "42");
    assert_eq!(row.get::<_, Value>(3)["amount"], 1250.5);
    assert_eq!(row.get::<_, String>(4), "pending");
    assert_eq!(row.get::<_, i32>(5), 0);
    assert_eq!(row.get::<_, String>(6), "expense-42-submit");
    assert_eq!(row.get::<_, String>(7), "odoo");
    assert!(row.get::<_, bool>(8));
    let logged =
        f.db.client
            .query_one(
                "SELECT payload FROM integration.event_log WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
    assert_eq!(logged.get::<_, Value>(0)["employee_code"], "E-0042");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supabase_drop_in_url_and_a_rotated_secret_are_accepted() {
    let f = Fixture::new().await.unwrap();
    // TEST_SECRET lists two secrets; sign with the first (the "new" one after rotation).
    let first = TEST_SECRET.split(',').next().unwrap();
    let req = signed_request(first, "k-rotated", &expense("7"));
    let resp = req
        .post(&f.http, &f.sys.url("/functions/v1/odoo-webhook"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert_eq!(f.db.count("outbox").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_the_same_key_and_body_is_a_200_duplicate_with_the_original_id() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let first = signed_request(SECRET, "dup-1", &expense("42"));
    let (s1, b1, _) = json_of(first.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(s1, 202);
    // Re-signed later (new timestamp), same body: still the same event.
    let again = signed_request(SECRET, "dup-1", &expense("42"));
    let (s2, b2, _) = json_of(again.post(&f.http, &url).await.unwrap()).await;
    assert_eq!((s2, b2["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(b1["id"], b2["id"]);
    assert_eq!(f.db.count("outbox").await, 1);
    assert_eq!(f.db.count("event_log").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_a_different_body_is_a_409_and_keeps_the_original() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    signed_request(SECRET, "k-409", &expense("42"))
        .post(&f.http, &url)
        .await
        .unwrap();
    let mut other = expense("42");
    other["payload"]["amount"] = json!(9999);
    let (status, body, _) = json_of(
        signed_request(SECRET, "k-409", &other)
            .post(&f.http, &url)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let amount: Value =
        f.db.client
            .query_one("SELECT payload->'amount' FROM integration.outbox", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(amount, json!(1250.5));
    assert_eq!(f.db.count("event_log").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_missing_fields_are_400() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let mut req = signed_request(SECRET, "k", &json!({}));
    req.body = b"{\"event_type\": ".to_vec();
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let req = req.set("x-ipai-timestamp", &ts).set(
        "x-ipai-signature",
        &ipai_core::signature::sign(SECRET, &ts, b"{\"event_type\": "),
    );
    expect_error(
        &f,
        req.post(&f.http, &url).await.unwrap(),
        400,
        "invalid_json",
    )
    .await;

    let mut missing = expense("42");
    missing.as_object_mut().unwrap().remove("payload");
    let resp = signed_request(SECRET, "k2", &missing)
        .post(&f.http, &url)
        .await
        .unwrap();
    let body = expect_error(&f, resp, 400, "missing_field").await;
    assert!(body["message"].as_str().unwrap().contains("payload"));

    let resp = signed_request(SECRET, "k3", &expense("42"))
        .without("x-idempotency-key")
        .post(&f.http, &url)
        .await
        .unwrap();
    expect_error(&f, resp, 400, "missing_header").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_signatures_and_stale_or_future_timestamps_are_401() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let ok = signed_request(SECRET, "k", &expense("42"));
    let cases = [
        (ok.clone().without("x-ipai-signature"), "missing_signature"),
        (ok.clone().without("x-ipai-timestamp"), "missing_signature"),
        (
            ok.clone().set("x-ipai-signature", &"0".repeat(64)),
            "invalid_signature",
        ),
        (
            signed_request("wrong-secret", "k", &expense("42")),
            "invalid_signature",
        ),
        (
            ok.clone().set("x-ipai-timestamp", "soon"),
            "invalid_timestamp",
        ),
    ];
    for (req, code) in cases {
        let body = expect_error(&f, req.post(&f.http, &url).await.unwrap(), 401, code).await;
        // Neither the secret nor any signature is echoed back.
        let text = body.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains(&"0".repeat(64)),
            "{text}"
        );
    }
    for skew in [-301_000i64, 301_000] {
        let body = expense("42").to_string();
        let ts = (chrono::Utc::now().timestamp_millis() + skew).to_string();
        let req = signed_request(SECRET, "k", &expense("42"))
            .set("x-ipai-timestamp", &ts)
            .set(
                "x-ipai-signature",
                &ipai_core::signature::sign(SECRET, &ts, body.as_bytes()),
            );
        expect_error(
            &f,
            req.post(&f.http, &url).await.unwrap(),
            401,
            "stale_timestamp",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_with_allow() {
    let f = Fixture::new().await.unwrap();
    let resp = f.http.get(f.sys.url("/odoo-webhook")).send().await.unwrap();
    assert_eq!(
        resp.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("POST")
    );
    expect_error(&f, resp, 405, "method_not_allowed").await;
    let resp = f
        .http
        .put(f.sys.url("/odoo-webhook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(&f, resp, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_256_kib_is_413() {
    let f = Fixture::new().await.unwrap();
    let mut big = expense("42");
    big["payload"]["description"] = json!("x".repeat(300 * 1024));
    let resp = signed_request(SECRET, "big", &big)
        .post(&f.http, &f.sys.url("/odoo-webhook"))
        .await
        .unwrap();
    expect_error(&f, resp, 413, "payload_too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_content_type_is_415() {
    let f = Fixture::new().await.unwrap();
    let req = signed_request(SECRET, "k", &expense("42")).set("content-type", "text/plain");
    expect_error(
        &f,
        req.post(&f.http, &f.sys.url("/odoo-webhook"))
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    let req = signed_request(SECRET, "k", &expense("42")).without("content-type");
    expect_error(
        &f,
        req.post(&f.http, &f.sys.url("/odoo-webhook"))
            .await
            .unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_types_and_aggregate_mismatches_are_422() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let mut unknown = expense("42");
    unknown["event_type"] = json!("invoice.created");
    let resp = signed_request(SECRET, "k1", &unknown)
        .post(&f.http, &url)
        .await
        .unwrap();
    expect_error(&f, resp, 422, "unknown_event_type").await;
    let mut mismatch = expense("42");
    mismatch["aggregate_type"] = json!("finance_task");
    let resp = signed_request(SECRET, "k2", &mismatch)
        .post(&f.http, &url)
        .await
        .unwrap();
    expect_error(&f, resp, 422, "aggregate_type_mismatch").await;
    let mut empty_id = expense("42");
    empty_id["aggregate_id"] = json!("");
    let resp = signed_request(SECRET, "k3", &empty_id)
        .post(&f.http, &url)
        .await
        .unwrap();
    expect_error(&f, resp, 422, "invalid_aggregate_id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_503_with_retry_after() {
    // Point ingest's database URL at a closed port (allowed, so the failure is the
    // connection itself).
    let f = Fixture::with(|v| {
        v.insert(
            "db_url_ingest".into(),
            "postgres://postgres@127.0.0.1:1/ipai?sslmode=disable".into(),
        );
        v.insert("db_host".into(), "127.0.0.1:1".into());
    })
    .await
    .unwrap();
    let resp = signed_request(SECRET, "k", &expense("42"))
        .post(&f.http, &f.sys.url("/odoo-webhook"))
        .await
        .unwrap();
    let (status, body, headers) = json_of(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("database_unavailable"))
    );
    assert!(headers.get("retry-after").is_some());
    // The system is still up and answers the next request the same way (no panic, no crash).
    let resp = signed_request(SECRET, "k", &expense("42"))
        .post(&f.http, &f.sys.url("/odoo-webhook"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_webhooks_request_is_accepted_with_webhook_id_as_key() {
    // Standard Webhooks is off by default: this system turns it on.
    let f = Fixture::with(ipai_tests::runtime::with_standard_webhooks)
        .await
        .unwrap();
    let body = expense("42").to_string();
    let ts = chrono::Utc::now().timestamp().to_string();
    let secret = ipai_tests::runtime::TEST_STANDARD_WEBHOOKS_SECRET;
    let sig =
        ipai_core::signature::sign_standard_webhook(secret, "msg_1", &ts, body.as_bytes()).unwrap();
    let post = |sig: String| {
        f.http
            .post(f.sys.url("/odoo-webhook"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", &ts)
            .header("webhook-signature", sig)
            .body(body.clone())
            .send()
    };
    assert_eq!(post("v1,AAAA".into()).await.unwrap().status().as_u16(), 401);
    assert_nothing_written(&f).await;
    assert_eq!(post(sig).await.unwrap().status().as_u16(), 202);
    let key: String =
        f.db.value("SELECT idempotency_key FROM integration.outbox")
            .await;
    assert_eq!(key, "msg_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_posts_with_fifty_reused_keys_store_exactly_one_fifty() {
    // The shipped defaults (kick on). 200 posts at once are more than ingest's role may
    // hold connections: the excess is answered 503 with Retry-After and stores nothing, and
    // the sender retries it, signed anew, as Odoo does (identical bytes again would be a
    // replay: 409 replayed_signature).
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    // Keys 0..150 are unique; 50 more requests reuse keys 0..50 with the same body.
    let keys: Vec<usize> = (0..200)
        .map(|i| if i < 150 { i } else { i - 150 })
        .collect();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let results = futures::future::join_all(keys.iter().enumerate().map(|(i, k)| {
        let (http, url, refused) = (f.http.clone(), url.clone(), &refused);
        async move {
            // A reused key is signed a few milliseconds later: two senders never sign the
            // same bytes in the same millisecond (timestamps are in milliseconds).
            if i >= 150 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            for _ in 0..50 {
                let r = signed_request(SECRET, &format!("conc-{k}"), &expense(&format!("agg-{k}")));
                let resp = r.post(&http, &url).await.unwrap();
                if resp.status().as_u16() == 503 {
                    assert!(resp.headers().contains_key("retry-after"));
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Jittered, so two retries of one key are not signed in the same ms.
                    tokio::time::sleep(std::time::Duration::from_millis(100 + i as u64 % 13)).await;
                    continue;
                }
                let (s, b, _) = json_of(resp).await;
                return (*k, s, b["id"].as_str().unwrap_or_default().to_string());
            }
            panic!("key {k}: still refused after 50 tries");
        }
    }))
    .await;
    eprintln!(
        "{} posts were refused with 503 and retried",
        refused.into_inner()
    );
    assert_eq!(f.db.count("outbox").await, 150);
    assert_eq!(f.db.count("event_log").await, 150);
    let mut by_key: std::collections::HashMap<usize, Vec<(u16, String)>> = Default::default();
    for (k, s, id) in results {
        by_key.entry(k).or_default().push((s, id));
    }
    for (k, answers) in by_key {
        let created = answers.iter().filter(|(s, _)| *s == 202).count();
        let dups = answers.iter().filter(|(s, _)| *s == 200).count();
        assert_eq!(created, 1, "key {k}: {answers:?}");
        assert_eq!(created + dups, answers.len(), "key {k}: {answers:?}");
        assert!(
            answers.iter().all(|(_, id)| *id == answers[0].1),
            "key {k}: {answers:?}"
        );
        let stored: String =
            f.db.client
                .query_one(
                    "SELECT id::text FROM integration.outbox WHERE idempotency_key = $1",
                    &[&format!("conc-{k}")],
                )
                .await
                .unwrap()
                .get(0);
        assert_eq!(stored, answers[0].1);
    }
}
