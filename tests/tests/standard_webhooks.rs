//! Both signing schemes of SPEC §3 side by side, each signed by an independent
//! implementation: Standard Webhooks by the official `standardwebhooks` library (PyPI),
//! the IPAI scheme by the Odoo addon's Python sender. Ingest must accept each and reject
//! a tampered copy, writing nothing for it. Also the other way round: what the bus's own
//! code signs in the Standard Webhooks scheme, the official library verifies.

mod python_support;

use ipai_tests::runtime::TEST_SECRET;
use ipai_tests::Fixture;
use serde_json::{json, Value};

/// The `standard_webhooks_secret` these systems run with: the scheme is off by default
/// (SPEC §3), so every test here turns it on (`start`).
const WHSEC: &str = ipai_tests::runtime::TEST_STANDARD_WEBHOOKS_SECRET;

/// A system with the Standard Webhooks scheme on.
async fn start() -> Fixture {
    Fixture::with(ipai_tests::runtime::with_standard_webhooks)
        .await
        .unwrap()
}

fn event(id: &str) -> String {
    json!({"event_type": "expense.paid", "aggregate_type": "expense", "aggregate_id": id,
           "payload": {"expense_id": 42, "status": "done", "paid_at": "2026-11-28T02:00:00Z",
                       "payment_ref": "BNK1/2026/00042", "description": "Kape at pandesal ☕"}})
    .to_string()
}

async fn sign_python(req: Value) -> Vec<(String, String)> {
    let out = python_support::run("sign_request.py", &[], &req.to_string()).await;
    out["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

async fn post(f: &Fixture, headers: &[(String, String)], body: &str) -> (u16, Value) {
    let mut req = f
        .http
        .post(f.sys.url("/odoo-webhook"))
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn tamper(body: &str) -> String {
    body.replace("BNK1/2026/00042", "BNK1/2026/99999")
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut h: Vec<_> = headers.iter().filter(|(k, _)| k != name).cloned().collect();
    h.push((name.into(), value.into()));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_standardwebhooks_library_is_accepted_and_a_tampered_copy_rejected() {
    let f = start().await;
    let body = event("42");
    let ts = chrono::Utc::now().timestamp();
    let headers = sign_python(
        json!({"op": "sign", "scheme": "standard-webhooks", "secret": WHSEC,
                                     "id": "msg_2Kp8xPyLib", "timestamp": ts, "body": body}),
    )
    .await;
    assert!(headers
        .iter()
        .any(|(k, v)| k == "webhook-signature" && v.starts_with("v1,")));

    // Tampered copies first: nothing may be written for any of them.
    let (s, b) = post(&f, &headers, &tamper(&body)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_signature")),
        "{b}"
    );
    let (s, _) = post(&f, &with(&headers, "webhook-id", "msg_other"), &body).await;
    assert_eq!(s, 401, "the id is signed too");
    let (s, _) = post(
        &f,
        &with(&headers, "webhook-timestamp", &(ts + 1).to_string()),
        &body,
    )
    .await;
    assert_eq!(s, 401, "the timestamp is signed too");
    assert_eq!(f.db.count("outbox").await, 0);

    let (s, b) = post(&f, &headers, &body).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("queued")), "{b}");
    let row =
        f.db.client
            .query_one(
                "SELECT idempotency_key, payload FROM integration.outbox",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "msg_2Kp8xPyLib",
        "webhook-id is the idempotency key"
    );
    assert_eq!(row.get::<_, Value>(1)["description"], "Kape at pandesal ☕");
    // The sender's retry (same id, same body) is a duplicate.
    let (s, b2) = post(&f, &headers, &body).await;
    assert_eq!((s, b2["id"].clone()), (200, b["id"].clone()));
    assert_eq!(f.db.count("outbox").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ipai_scheme_from_the_odoo_addon_is_accepted_and_a_tampered_copy_rejected() {
    let f = start().await;
    let body = event("43");
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let headers = sign_python(
        json!({"op": "sign", "scheme": "ipai", "secret": TEST_SECRET,
                                     "key": "expense:43:expense.paid:20261128T020000",
                                     "timestamp": ts, "body": body}),
    )
    .await;
    let sig = headers
        .iter()
        .find(|(k, _)| k == "x-ipai-signature")
        .unwrap()
        .1
        .clone();
    assert!(
        sig.len() == 64
            && sig
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let (s, b) = post(&f, &headers, &tamper(&body)).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_signature")),
        "{b}"
    );
    let later = (ts.parse::<i64>().unwrap() + 1).to_string();
    let (s, _) = post(&f, &with(&headers, "x-ipai-timestamp", &later), &body).await;
    assert_eq!(s, 401, "the timestamp is signed too");
    assert_eq!(f.db.count("outbox").await, 0);

    let (s, b) = post(&f, &headers, &body).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("queued")), "{b}");
    let key: String =
        f.db.value("SELECT idempotency_key FROM integration.outbox")
            .await;
    assert_eq!(key, "expense:43:expense.paid:20261128T020000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_schemes_side_by_side_in_one_system() {
    let f = start().await;
    let ts_s = chrono::Utc::now().timestamp();
    let ts_ms = chrono::Utc::now().timestamp_millis().to_string();
    let sw_body = event("50");
    let ipai_body = event("51");
    let sw = sign_python(
        json!({"op": "sign", "scheme": "standard-webhooks", "secret": WHSEC,
                                "id": "msg_side_by_side", "timestamp": ts_s, "body": sw_body}),
    )
    .await;
    let ipai = sign_python(json!({"op": "sign", "scheme": "ipai", "secret": TEST_SECRET,
                                  "key": "side-by-side-ipai", "timestamp": ts_ms, "body": ipai_body}))
    .await;
    // A signature of one scheme does not pass as the other.
    let sw_sig = sw
        .iter()
        .find(|(k, _)| k == "webhook-signature")
        .unwrap()
        .1
        .clone();
    let crossed = with(&ipai, "x-ipai-signature", &sw_sig);
    assert_eq!(post(&f, &crossed, &ipai_body).await.0, 401);
    assert_eq!(post(&f, &sw, &sw_body).await.0, 202);
    assert_eq!(post(&f, &ipai, &ipai_body).await.0, 202);
    let keys: Vec<String> =
        f.db.column(
            "SELECT idempotency_key FROM integration.outbox ORDER BY seq",
            &[],
        )
        .await;
    assert_eq!(keys, ["msg_side_by_side", "side-by-side-ipai"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_bus_signs_as_standard_webhooks_the_official_library_verifies() {
    // No system needed: the bus's signer (ipai-core, used by `ipai send --scheme
    // standard-webhooks`) checked by the library's own verifier, and a tampered body refused.
    let body = event("44");
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig =
        ipai_core::signature::sign_standard_webhook(WHSEC, "msg_from_rust", &ts, body.as_bytes())
            .unwrap();
    let headers =
        json!({"webhook-id": "msg_from_rust", "webhook-timestamp": ts, "webhook-signature": sig});
    let ok = python_support::run(
        "sign_request.py",
        &[],
        &json!({"op": "verify", "scheme": "standard-webhooks", "secret": WHSEC,
                "headers": headers, "body": body})
        .to_string(),
    )
    .await;
    assert_eq!(ok["ok"], true, "{ok}");
    let bad = python_support::run(
        "sign_request.py",
        &[],
        &json!({"op": "verify", "scheme": "standard-webhooks", "secret": WHSEC,
                "headers": headers, "body": tamper(&body)})
        .to_string(),
    )
    .await;
    assert_eq!(bad["ok"], false, "{bad}");
}
