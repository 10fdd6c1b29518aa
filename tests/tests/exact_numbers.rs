//! SPEC §3 end to end: "numbers in payloads are kept exactly as sent (an amount or an id of
//! any size or precision reaches event_log, the handlers and MCP digit for digit)", under the
//! runtime `IPAI_RUNTIME` selects.
//!
//! "Exactly" is the same number, digit for digit, in PostgreSQL jsonb's canonical form:
//! jsonb keeps a number as `numeric`, so `1e400` comes back as a 1 and 400 zeros and
//! `1.50` keeps its trailing zero, but no digit is ever lost or rounded.
//!
//! Every body here is written and read as text, never through a `serde_json::Value`, so
//! what the test sees is what travelled.

use ipai_core::signature::sign;
use ipai_tests::fake_http::FakeServer;
use ipai_tests::runtime::{TEST_MCP_TOKEN, TEST_SECRET};
use ipai_tests::{EventRequest, Fixture};
use std::time::Duration;

/// Beyond 64 bits (u64 stops at 20 digits): an external reference sent as a number.
const INT_30_DIGITS: &str = "123456789012345678901234567890";
/// 25 significant digits (an f64 keeps 15 to 17).
const DECIMAL_25_DIGITS: &str = "1234567890.123456789012345";
/// Beyond f64's range altogether.
const HUGE: &str = "1e400";
/// Not representable in binary floating point.
const TENTH: &str = "0.1";

/// `1e400` as jsonb writes it: the digits of the number.
fn huge_canonical() -> String {
    format!("1{}", "0".repeat(400))
}

/// The payload fields this suite checks, as (key, sent, expected back).
fn numbers() -> Vec<(&'static str, &'static str, String)> {
    vec![
        ("ref_int30", INT_30_DIGITS, INT_30_DIGITS.to_string()),
        (
            "ratio_dec25",
            DECIMAL_25_DIGITS,
            DECIMAL_25_DIGITS.to_string(),
        ),
        ("huge_1e400", HUGE, huge_canonical()),
        ("tenth", TENTH, TENTH.to_string()),
    ]
}

/// A signed ingest request whose body is exactly `body`.
fn signed(key: &str, body: String) -> EventRequest {
    let secret = TEST_SECRET.split(',').nth(1).unwrap_or_default();
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let sig = sign(secret, &ts, body.as_bytes());
    EventRequest {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-ipai-timestamp".into(), ts),
            ("x-ipai-signature".into(), sig),
            ("x-idempotency-key".into(), key.into()),
        ],
        body: body.into_bytes(),
    }
}

/// Posts `body` signed; returns the event id.
async fn ingest_text(f: &Fixture, key: &str, body: String) -> String {
    let resp = signed(key, body)
        .post(&f.http, &f.sys.url("/odoo-webhook"))
        .await
        .expect("POST /odoo-webhook");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("ingest answer");
    assert_eq!(status, 202, "ingest answered {status}: {text}");
    let answer: serde_json::Value = serde_json::from_str(&text).expect("ingest answer is JSON");
    answer["id"].as_str().expect("an id").to_string()
}

/// The numbers as payload members: `"ref_int30":123…,"ratio_dec25":…`.
fn number_members() -> String {
    numbers()
        .iter()
        .map(|(key, sent, _)| format!(r#""{key}":{sent}"#))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every value `"key":` has in the JSON text `json` (unescaped occurrences only), as the
/// literal text that follows it up to the next `,`, `}` or `]`.
fn literals_of<'a>(json: &'a str, key: &str) -> Vec<&'a str> {
    let needle = format!(r#""{key}":"#);
    json.match_indices(&needle)
        .map(|(at, _)| {
            let rest = json[at + needle.len()..].trim_start();
            let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
            rest[..end].trim_end()
        })
        .collect()
}

/// Asserts every number of `numbers()` appears in `json`, and only with its exact digits.
fn assert_numbers_exact(json: &str, whence: &str) {
    for (key, sent, expected) in numbers() {
        let found = literals_of(json, key);
        assert!(!found.is_empty(), "{whence}: no {key} in {json}");
        for literal in found {
            assert_eq!(
                literal, expected,
                "{whence}: {key} was sent as {sent} and came back changed"
            );
        }
    }
}

/// The stored payload's numbers as jsonb writes them (`payload->>key` of a number is its
/// canonical text).
async fn stored_numbers(f: &Fixture, id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, _, _) in numbers() {
        let row =
            f.db.client
                .query_one(
                    "SELECT jsonb_typeof(payload->($2::text)), payload->>($2::text) \
                 FROM integration.event_log WHERE id::text = $1",
                    &[&id, &key],
                )
                .await
                .expect("the event_log row");
        out.push((row.get::<_, String>(0), row.get::<_, String>(1)));
    }
    out
}

/// `tools/call get_event` at 2026-07-28; the raw response text.
async fn get_event_text(f: &Fixture, id: &str) -> String {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_event",
            "arguments":{{"id":"{id}"}},"_meta":{{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{{}},
            "io.modelcontextprotocol/clientInfo":{{"name":"exact-numbers","version":"1"}}}}}}}}"#
    );
    let resp = f
        .http
        .post(f.sys.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {TEST_MCP_TOKEN}"))
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "get_event")
        .body(body)
        .send()
        .await
        .expect("POST /mcp");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("MCP answer");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""isError":false"#), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_reach_event_log_the_handler_envelope_and_mcp_digit_for_digit() {
    // The dispatcher delivers to a loopback stand-in that records each envelope as sent.
    let fake = FakeServer::start().await;
    let url = fake.url.clone();
    let f = Fixture::with(move |v| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
    })
    .await
    .expect("fixture");
    // Extra payload fields (SPEC §4: allowed and kept) of a finance task, and an aggregate
    // id beyond 64 bits sent as a string (ids sent as numbers must fit 64 bits).
    let body = format!(
        r#"{{"event_type":"finance_task.created","aggregate_type":"finance_task",
            "aggregate_id":"{INT_30_DIGITS}","payload":{{"status":"todo",{}}}}}"#,
        number_members()
    );
    let id = ingest_text(&f, "exact-numbers-1", body).await;

    // event_log: numbers, with their digits.
    let stored = stored_numbers(&f, &id).await;
    for ((key, sent, expected), (kind, text)) in numbers().iter().zip(&stored) {
        assert_eq!(
            (kind.as_str(), text.as_str()),
            ("number", expected.as_str()),
            "event_log: {key} was sent as {sent}"
        );
    }

    // The handler's envelope.
    assert_eq!(
        f.wait_status(&id, "done", Duration::from_secs(15)).await,
        "done",
        "{}",
        f.sys.output()
    );
    let got = fake.assert_received(1, "one delivery");
    let envelope = String::from_utf8_lossy(&got[0].body).to_string();
    assert_numbers_exact(&envelope, "the handler's envelope");
    assert_eq!(
        literals_of(&envelope, "aggregate_id"),
        [format!("\"{INT_30_DIGITS}\"")]
    );

    // MCP's get_event.
    let answer = get_event_text(&f, &id).await;
    assert_numbers_exact(&answer, "MCP get_event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expense_handler_stores_an_amount_and_a_numeric_reference_exactly() {
    // The real handlers (service chaining): expense.paid writes the payment_queue row from
    // the payload (its amount a `numeric`, its payment reference text).
    let f = Fixture::new().await.expect("fixture");
    let body = format!(
        r#"{{"event_type":"expense.paid","aggregate_type":"expense","aggregate_id":77,
            "payload":{{"status":"done","expense_id":77,"amount":{DECIMAL_25_DIGITS},
            "currency":"PHP","payment_ref":{INT_30_DIGITS},{}}}}}"#,
        number_members()
    );
    let id = ingest_text(&f, "exact-numbers-2", body).await;
    assert_eq!(
        f.wait_status(&id, "done", Duration::from_secs(15)).await,
        "done",
        "{}",
        f.sys.output()
    );
    let row =
        f.db.client
            .query_one(
                "SELECT amount::text, payment_ref FROM integration.payment_queue \
             WHERE expense_id = '77'",
                &[],
            )
            .await
            .expect("the payment_queue row");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        (DECIMAL_25_DIGITS.to_string(), INT_30_DIGITS.to_string())
    );
}
