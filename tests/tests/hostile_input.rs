//! Issue 15 end to end: hostile and poison input at every door, under the runtime of
//! `IPAI_RUNTIME`. A replayed signature, values PostgreSQL cannot store, a stuffed
//! signature header, a sender using a scheme without its secret, a database refusal, a
//! key resent after retention, an oversized MCP batch — each a 4xx (or a 5xx without
//! database text) that stores nothing — and the read paths' plans on 200,000 events.

use ipai_core::signature::sign_standard_webhook;
use ipai_tests::runtime::{TEST_HANDLER_TOKEN, TEST_MCP_TOKEN, TEST_OPS_TOKEN};
use ipai_tests::signing::expense_submitted as expense;
use ipai_tests::signing::status_and_body as answer;
use ipai_tests::{signed_request, Fixture};
use serde_json::{json, Value};

const SECRET: &str = "test-secret";
/// The Standard Webhooks secret of the tests below that turn the scheme on.
const SW_SECRET: &str = ipai_tests::runtime::TEST_STANDARD_WEBHOOKS_SECRET;

async fn rows(f: &Fixture) -> (i64, i64) {
    (f.db.count("outbox").await, f.db.count("event_log").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_replayed_under_another_key_is_409_and_stores_nothing() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let first = signed_request(SECRET, "exp-42-submit", &expense("42"));
    let (status, body) = answer(first.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].clone();

    // The captured request, resent under fresh keys within the ±300 s window.
    for key in ["exp-42-submit-again", "another"] {
        let replay = first.clone().set("x-idempotency-key", key);
        let (status, body) = answer(replay.post(&f.http, &url).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("replayed_signature")),
            "{body}"
        );
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("another idempotency key"));
    }
    assert_eq!(rows(&f).await, (1, 1), "a replay stores nothing");

    // The sender's own retry (same key, same signature) is still a duplicate.
    let (status, body) = answer(first.post(&f.http, &url).await.unwrap()).await;
    assert_eq!((status, &body["id"]), (200, &id), "{body}");
    assert_eq!(body["status"], "duplicate");
    // A fresh signature over the same body is a new request: a new key stores an event.
    let fresh = signed_request(SECRET, "exp-42-submit-2", &expense("42"));
    let (status, body) = answer(fresh.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(rows(&f).await, (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_postgresql_cannot_store_are_422_naming_the_field_and_store_nothing() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut v = expense("42");
        edit(&mut v);
        v
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "payload.note",
            with(&|v| v["payload"]["note"] = json!("a\u{0}b")),
        ),
        (
            "payload.lines[1].name",
            with(&|v| v["payload"]["lines"] = json!([{"name": "ok"}, {"name": "\u{0}"}])),
        ),
        (
            "payload (a key)",
            with(&|v| v["payload"]["bad\u{0}key"] = json!(1)),
        ),
        (
            "aggregate_id",
            with(&|v| v["aggregate_id"] = json!("4\u{0}2")),
        ),
        ("source", with(&|v| v["source"] = json!("odoo\u{0}"))),
        (
            "occurred_at",
            with(&|v| v["occurred_at"] = json!("0000-01-01T00:00:00Z")),
        ),
        (
            "occurred_at",
            with(&|v| v["occurred_at"] = json!("0001-01-01T00:30:00+01:00")),
        ),
        (
            "occurred_at",
            with(&|v| v["occurred_at"] = json!("2026-11-26T05:00:00+16:00")),
        ),
    ];
    for (i, (field, body)) in cases.iter().enumerate() {
        let req = signed_request(SECRET, &format!("poison-{i}"), body);
        let (status, answer) = answer(req.post(&f.http, &url).await.unwrap()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (422, Some("unstorable_value")),
            "{field}: {answer}"
        );
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(field), "{field}: {message}");
        assert!(!answer.to_string().contains("Retry"), "{answer}");
    }
    assert_eq!(rows(&f).await, (0, 0));

    // The largest storable offset and the edges of the calendar are fine.
    let ok = with(&|v| v["occurred_at"] = json!("0001-01-01T00:00:00-15:59"));
    let req = signed_request(SECRET, "edge", &ok);
    let (status, body) = answer(req.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusal_is_a_5xx_without_database_text() {
    let f = Fixture::new().await.unwrap();
    // A rule the bus does not know about refuses the insert.
    f.db.client
        .batch_execute(
            "ALTER TABLE integration.outbox ADD CONSTRAINT no_poison \
             CHECK (aggregate_id <> 'poison-check-violation')",
        )
        .await
        .unwrap();
    let req = signed_request(SECRET, "refused", &expense("poison-check-violation"));
    let (status, body) = answer(
        req.post(&f.http, &f.sys.url("/odoo-webhook"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("internal_error")),
        "{body}"
    );
    let text = body.to_string();
    for leak in [
        "no_poison",
        "constraint",
        "violates",
        "QueryFailed",
        "outbox",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    assert_eq!(rows(&f).await, (0, 0));
}

fn standard_webhook(id: &str, body: &Value, signature: Option<String>) -> ipai_tests::EventRequest {
    let bytes = body.to_string().into_bytes();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = signature
        .unwrap_or_else(|| sign_standard_webhook(SW_SECRET, id, &ts, &bytes).expect("signs"));
    ipai_tests::EventRequest {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), ts),
            ("webhook-signature".into(), sig),
        ],
        body: bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuffed_webhook_signature_header_is_refused_and_stores_nothing() {
    // Standard Webhooks on: these requests are signed in that scheme.
    let f = Fixture::with(ipai_tests::runtime::with_standard_webhooks)
        .await
        .unwrap();
    let url = f.sys.url("/odoo-webhook");
    // More entries than any sender sends (one per active secret): 401 naming the limit.
    let stuffed = format!("{}v1,AAAA", "v1,AAAA ".repeat(40));
    let req = standard_webhook("msg_stuffed", &expense("42"), Some(stuffed));
    let (status, body) = answer(req.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("too_many_signatures")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("at most 5"));

    // Thousands of entries: refused by the host's header limit or by ingest, a 4xx
    // either way (its cost is measured by `make bench`, not timed here).
    let huge = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ".repeat(6000);
    let req = standard_webhook("msg_huge", &expense("42"), Some(huge));
    let status = match req.post(&f.http, &url).await {
        Ok(resp) => resp.status().as_u16(),
        Err(e) => panic!("the host must answer, not drop the connection: {e}"),
    };
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(rows(&f).await, (0, 0));

    // A correctly signed request with one entry still goes through.
    let req = standard_webhook("msg_ok", &expense("42"), None);
    let (status, body) = answer(req.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
}

/// A refusal sent before the body is read leaves in one write: the runtimes leave Nagle on
/// (as Spin 4.0.2 does), so a head sent alone would hold the rest of the answer until the
/// sender's delayed ACK — `make bench` saw one such 4xx in 50 take 40 ms under both
/// runtimes before responses were written body first. Raw TCP, so the first read shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_the_body_is_read_leaves_in_one_write() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Standard Webhooks on: these requests are signed in that scheme.
    let f = Fixture::with(ipai_tests::runtime::with_standard_webhooks)
        .await
        .unwrap();
    let addr = f.sys.base_url.trim_start_matches("http://").to_string();
    let signature = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= ".repeat(3000);
    let body = vec![b'x'; 256 * 1024];
    let mut split = Vec::new();
    for i in 0..50 {
        let head = format!(
            "POST /odoo-webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             webhook-id: msg_split_{i}\r\nwebhook-timestamp: {}\r\nwebhook-signature: {}\r\n\
             content-length: {}\r\n\r\n",
            chrono::Utc::now().timestamp(),
            signature.trim_end(),
            body.len()
        );
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        // The runtime may answer and close before it has read everything: that is fine.
        let _ = c.write_all(head.as_bytes()).await;
        let _ = c.write_all(&body).await;
        let mut buf = vec![0u8; 1 << 16];
        let n = c.read(&mut buf).await.unwrap();
        let answer = &buf[..n];
        assert!(
            answer.starts_with(b"HTTP/1.1 4"),
            "{}",
            String::from_utf8_lossy(answer)
        );
        if !ipai_loopback::segments::is_whole_message(answer) {
            split.push(String::from_utf8_lossy(answer).into_owned());
        }
    }
    assert!(split.is_empty(), "answers that left in pieces: {split:?}");
    assert_eq!(rows(&f).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_webhooks_request_without_its_secret_configured_is_401() {
    // The shipped default: no standard_webhooks_secret, the scheme is off.
    let f = Fixture::new().await.unwrap();
    let req = standard_webhook("msg_1", &expense("42"), None);
    let (status, body) = answer(
        req.post(&f.http, &f.sys.url("/odoo-webhook"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unsupported_signature_scheme")),
        "{body}"
    );
    assert_eq!(rows(&f).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_resent_after_retention_purged_its_row_is_still_a_duplicate() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let req = signed_request(SECRET, "exp-old", &expense("7"));
    let (status, body) = answer(req.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    // Delivered a month ago, then purged by retention.
    f.db.client
        .batch_execute(&format!(
            "UPDATE integration.outbox SET status = 'done', done_at = now() - interval '30 days' \
              WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    let resp = f
        .http
        .post(f.sys.url("/ops/retention"))
        .bearer_auth(TEST_OPS_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, purged) = answer(resp).await;
    assert_eq!((status, &purged["deleted"]), (200, &json!(1)), "{purged}");
    assert_eq!(rows(&f).await, (0, 1));

    // Odoo resends the key (a new timestamp, so a new signature): the original event.
    let again = signed_request(SECRET, "exp-old", &expense("7"));
    let (status, body) = answer(again.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("duplicate")),
        "{body}"
    );
    assert_eq!(body["id"].as_str(), Some(id.as_str()));
    // With another body: a conflict, as while the row existed.
    let mut other = expense("7");
    other["payload"]["amount"] = json!(1);
    let conflict = signed_request(SECRET, "exp-old", &other);
    let (status, body) = answer(conflict.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("idempotency_conflict")),
        "{body}"
    );
    assert_eq!(rows(&f).await, (0, 1), "nothing stored again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_keeps_the_keys_of_events_stored_before_it() {
    let f = Fixture::new().await.unwrap();
    f.ingest("before-1", &expense("1")).await;
    // As if stored by an older bus: the key only in event_log (its outbox row purged).
    f.db.client
        .batch_execute(
            "DELETE FROM integration.idempotency_keys; \
             UPDATE integration.outbox SET status = 'done', done_at = now(); \
             DELETE FROM integration.outbox;",
        )
        .await
        .unwrap();
    let sql = std::fs::read_to_string(
        ipai_tests::workspace_root().join("migrations/20261130000300_hostile_input.sql"),
    )
    .unwrap();
    f.db.client.batch_execute(&sql).await.unwrap();
    assert_eq!(f.db.count("idempotency_keys").await, 1);
    let again = signed_request(SECRET, "before-1", &expense("1"));
    let (status, body) = answer(
        again
            .post(&f.http, &f.sys.url("/odoo-webhook"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("duplicate")),
        "{body}"
    );
}

async fn mcp(f: &Fixture, body: &Value) -> (u16, Value) {
    let resp = f
        .http
        .post(f.sys.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(TEST_MCP_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .expect("POST /mcp");
    answer(resp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_batch_over_the_limit_is_refused_whole() {
    let f = Fixture::new().await.unwrap();
    let ping = |i: usize| json!({"jsonrpc": "2.0", "id": i, "method": "ping"});
    let full: Vec<Value> = (0..ipai_mcp::http::MAX_BATCH_ITEMS).map(ping).collect();
    let (status, body) = mcp(&f, &Value::Array(full)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.as_array().map(Vec::len),
        Some(ipai_mcp::http::MAX_BATCH_ITEMS)
    );
    let over: Vec<Value> = (0..=ipai_mcp::http::MAX_BATCH_ITEMS).map(ping).collect();
    let (status, body) = mcp(&f, &Value::Array(over)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most"));
}

/// The plan of `sql` with `params` bound (text, int8 or jsonb).
async fn plan(f: &Fixture, sql: &str, params: &[ipai_mcp::Param]) -> String {
    use tokio_postgres::types::ToSql;
    let owned: Vec<Box<dyn ToSql + Sync + Send>> = params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                ipai_mcp::Param::Text(s) => Box::new(s.clone()),
                ipai_mcp::Param::Int(n) => Box::new(*n),
                ipai_mcp::Param::Json(v) => Box::new(v.to_string()),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref() as _).collect();
    let rows =
        f.db.client
            .query(&format!("EXPLAIN {sql}"), &refs)
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"));
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_no_full_scan(what: &str, plan: &str) {
    for table in ["event_log", "deliveries", "outbox"] {
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "{what} scans all of {table}:\n{plan}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_mcp_queries_read_indexes_on_200_000_events() {
    let f = Fixture::new().await.unwrap();
    f.ingest("live-1", &expense("live")).await;
    // 200,000 delivered events with a delivery each, in one statement.
    f.db.client
        .batch_execute(include_str!("../sql/seed_200k_delivered_events.sql"))
        .await
        .unwrap();

    // /metrics: exact, from counters and partial indexes.
    let resp = f.http.get(f.sys.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    for (start, value) in [
        ("ipai_outbox_events{status=\"done\"}", " 200000"),
        (
            "ipai_events_ingested_total{event_type=\"expense.paid\"",
            " 200000",
        ),
        (
            "ipai_events_ingested_total{event_type=\"expense.submitted\"",
            " 1",
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(start) && l.ends_with(value)),
            "missing {start}..{value}:\n{text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with("ipai_deliveries")
            && l.contains("channel=\"email\"")
            && l.ends_with(" 200000")),
        "{text}"
    );
    // (The statement is a SECURITY DEFINER function: count the scans made inside it.)
    assert_eq!(
        seq_scans_inside(
            &f,
            &ipai_ops::data::metrics_sql(),
            &[ipai_mcp::Param::Text("600".into())],
        )
        .await,
        0,
        "/metrics"
    );

    // MCP: the query tools read at most the newest MAX_SUMMARY_EVENTS matches, through
    // the index order; get_event by key is an index look-up. (Payload filters: the next
    // test.)
    for (tool, args) in [
        ("query_events", json!({})),
        ("query_expense_events", json!({})),
        (
            "query_events",
            json!({"event_type": "expense.*", "limit": 500}),
        ),
        ("get_event", json!({"idempotency_key": "bulk-4242"})),
        ("outbox_health", json!({})),
    ] {
        let q = ipai_mcp::tools::query_for(tool, &args).expect("valid arguments");
        let p = plan(&f, &q.sql, &q.params).await;
        assert_no_full_scan(&format!("{tool} {args}"), &p);
    }
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "query_events", "arguments": {"limit": 5}}});
    let (status, body) = mcp(&f, &call).await;
    assert_eq!(status, 200, "{body}");
    let text = body["result"]["content"][1]["text"]
        .as_str()
        .unwrap_or_default();
    let data: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    assert_eq!(
        data["total_matches"],
        ipai_mcp::tools::MAX_SUMMARY_EVENTS,
        "{body}"
    );
    assert_eq!(data["matches_capped"], true, "{body}");
    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "get_event", "arguments": {"idempotency_key": "bulk-4242"}}});
    let (status, body) = mcp(&f, &get).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("bulk-4242"), "{body}");
}

/// Sequential scans of the big tables made by `sql` (run in a transaction of its own),
/// counted by PostgreSQL, including those inside functions, which EXPLAIN does not show.
async fn seq_scans_inside(f: &Fixture, sql: &str, params: &[ipai_mcp::Param]) -> i64 {
    use tokio_postgres::types::ToSql;
    let owned: Vec<Box<dyn ToSql + Sync + Send>> = params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                ipai_mcp::Param::Text(s) => Box::new(s.clone()),
                ipai_mcp::Param::Int(n) => Box::new(*n),
                ipai_mcp::Param::Json(v) => Box::new(v.to_string()),
            }
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref() as _).collect();
    let c = &f.db.client;
    // The backend's counts not yet reported may include earlier transactions (PostgreSQL
    // 15 reports them at most once a second, never inside a transaction): the difference
    // across the statement, inside one transaction, is the statement's.
    let count = "SELECT coalesce(sum(seq_scan), 0)::int8 FROM pg_stat_xact_user_tables
                  WHERE schemaname = 'integration'
                    AND relname IN ('event_log', 'outbox', 'deliveries')";
    c.batch_execute("BEGIN").await.unwrap();
    let before: i64 = c.query_one(count, &[]).await.unwrap().get(0);
    c.query(sql, &refs)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let after: i64 = c.query_one(count, &[]).await.unwrap().get(0);
    c.batch_execute("ROLLBACK").await.unwrap();
    after - before
}

/// The `data` object of an MCP `tools/call` answer.
async fn tool_data(f: &Fixture, name: &str, arguments: &Value) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": name, "arguments": arguments}});
    let (status, body) = mcp(f, &call).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(
        body["result"]["isError"], true,
        "{name} {arguments}: {body}"
    );
    let text = body["result"]["content"][1]["text"]
        .as_str()
        .unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|_| panic!("{name} {arguments}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_filters_and_the_dashboard_read_indexes_on_200_000_events() {
    let f = Fixture::new().await.unwrap();
    f.ingest("live-1", &expense("live")).await;
    // 200,000 delivered events of the three domains, with the payload fields the tools
    // filter on, received over the last 55 hours.
    f.db.client
        .batch_execute(
            "WITH o AS (
                 INSERT INTO integration.outbox (event_type, aggregate_type, aggregate_id, payload,
                        idempotency_key, body_sha256, status, done_at, created_at)
                 SELECT (ARRAY['expense.paid', 'asset.checked_in', 'finance_task.filed',
                               'expense.submitted'])[g % 4 + 1],
                        (ARRAY['expense', 'asset_booking', 'finance_task', 'expense'])[g % 4 + 1],
                        'bulk-' || (g % 20000),
                        jsonb_build_object(
                            'employee_code', 'E-' || (g % 499), 'amount', g, 'currency', 'PHP',
                            'status', (ARRAY['done', 'submit', 'approve'])[g % 3 + 1],
                            'asset_id', g % 301, 'asset_code', 'A-' || (g % 301),
                            'employee_id', g % 499, 'employee_email', 'E' || (g % 499) || '@example.com',
                            'project', 'P-' || (g % 41), 'bir_form', '1601-C',
                            'period', '2026-' || lpad((g % 12 + 1)::text, 2, '0'),
                            'responsible_emails', jsonb_build_array('r' || (g % 53) || '@example.com'),
                            'meta', jsonb_build_object('source', 's' || (g % 997))),
                        'bulk-' || g, 'sha', 'done', now() - interval '1 day',
                        now() - make_interval(secs => g)
                   FROM generate_series(1, 200000) AS g
                 RETURNING id, seq, event_type, aggregate_type, aggregate_id, payload,
                           idempotency_key, body_sha256, created_at
             )
             INSERT INTO integration.event_log (id, seq, event_type, aggregate_type,
                    aggregate_id, payload, idempotency_key, body_sha256, received_at)
             SELECT id, seq, event_type, aggregate_type, aggregate_id, payload,
                    idempotency_key, body_sha256, created_at FROM o;
             ANALYZE integration.outbox; ANALYZE integration.event_log;
             ANALYZE integration.metric_counts; ANALYZE integration.event_volume_hourly;",
        )
        .await
        .unwrap();

    // Every payload filter of every tool: its statement reads an index, never the whole
    // log, and its answer is exact (compared with a direct count, capped as the tools cap).
    let cases: Vec<(&str, Value, &str)> = vec![
        ("query_expense_events", json!({"employee_code": "E-42"}),
         "aggregate_type = 'expense' AND payload->>'employee_code' = 'E-42'"),
        ("query_expense_events", json!({"status": "submit", "limit": 500}),
         "aggregate_type = 'expense' AND payload->>'status' = 'submit'"),
        ("query_expense_events",
         json!({"employee_code": "E-42", "status": "done", "date_from": "2000-01-01"}),
         "aggregate_type = 'expense' AND payload->>'employee_code' = 'E-42' AND payload->>'status' = 'done'"),
        ("query_asset_events", json!({"asset_id": 7}),
         "aggregate_type = 'asset_booking' AND payload->>'asset_id' = '7'"),
        ("query_asset_events", json!({"asset_code": "A-7"}),
         "aggregate_type = 'asset_booking' AND payload->>'asset_code' = 'A-7'"),
        ("query_asset_events", json!({"employee_id": "42"}),
         "aggregate_type = 'asset_booking' AND payload->>'employee_id' = '42'"),
        ("query_asset_events", json!({"employee_email": "e42@EXAMPLE.com"}),
         "aggregate_type = 'asset_booking' AND lower(payload->>'employee_email') = 'e42@example.com'"),
        ("query_asset_events", json!({"status": "approve"}),
         "aggregate_type = 'asset_booking' AND payload->>'status' = 'approve'"),
        ("query_finance_events", json!({"project": "P-3"}),
         "aggregate_type = 'finance_task' AND payload->>'project' = 'P-3'"),
        ("query_finance_events", json!({"bir_form": "1601-C", "period": "2026-03"}),
         "aggregate_type = 'finance_task' AND payload->>'bir_form' = '1601-C' AND payload->>'period' = '2026-03'"),
        ("query_finance_events", json!({"status": "done"}),
         "aggregate_type = 'finance_task' AND payload->>'status' = 'done'"),
        ("query_finance_events", json!({"responsible_email": "r7@example.com"}),
         "aggregate_type = 'finance_task' AND payload->'responsible_emails' ? 'r7@example.com'"),
        ("query_events", json!({"payload_field": "employee_code", "payload_value": "E-42"}),
         "payload->>'employee_code' = 'E-42'"),
        ("query_events", json!({"payload_field": "asset_id", "payload_value": 7}),
         "payload->>'asset_id' = '7'"),
        ("query_events", json!({"payload_field": "asset_id", "payload_value": "7"}),
         "payload->>'asset_id' = '7'"),
        ("query_events", json!({"payload_field": "meta.source", "payload_value": "s42",
                                "event_type": "expense."}),
         "payload#>>'{meta,source}' = 's42' AND starts_with(event_type, 'expense.')"),
        ("query_events", json!({"payload_field": "bir_form", "payload_value": "1601-C"}),
         "payload->>'bir_form' = '1601-C'"),
    ];
    for (tool, args, truth) in cases {
        let q = ipai_mcp::tools::query_for(tool, &args).expect("valid arguments");
        let p = plan(&f, &q.sql, &q.params).await;
        assert_no_full_scan(&format!("{tool} {args}"), &p);
        assert!(p.contains("Index"), "{tool} {args} reads no index:\n{p}");
        let expected: i64 =
            f.db.value(&format!(
                "SELECT least(count(*), {})::int8 FROM integration.event_log WHERE {truth}",
                ipai_mcp::tools::MAX_SUMMARY_EVENTS
            ))
            .await;
        assert!(expected > 0, "{truth} matches something");
        let data = tool_data(&f, tool, &args).await;
        assert_eq!(data["total_matches"], expected, "{tool} {args}");
        let limit = args["limit"].as_i64().unwrap_or(50);
        assert_eq!(
            data["returned"],
            expected.min(limit),
            "{tool} {args}: the page is LIMITed in SQL"
        );
    }

    // The dashboard: one statement from counters and indexes; the figures it shows are
    // the database's.
    let q = ipai_ops::data::dashboard_sql();
    let params = [ipai_mcp::Param::Text("600".into())];
    assert_no_full_scan("/ops", &plan(&f, &q, &params).await);
    assert_eq!(seq_scans_inside(&f, &q, &params).await, 0, "/ops");
    // outbox_stats() (MCP outbox_health, `ipai status`) reads no delivered row either.
    let health = ipai_mcp::tools::query_for("outbox_health", &json!({})).unwrap();
    assert_eq!(
        seq_scans_inside(&f, &health.sql, &health.params).await,
        0,
        "outbox_health"
    );
    let resp = f
        .http
        .get(f.sys.url("/ops"))
        .basic_auth("ops", Some(ipai_tests::runtime::TEST_OPS_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let html = resp.text().await.unwrap();
    let done: i64 =
        f.db.value("SELECT count(*) FROM integration.outbox WHERE status = 'done'")
            .await;
    assert!(
        html.contains(&format!("data-testid=\"count-done\">{done}<")),
        "done count {done}"
    );
    let window: i64 =
        f.db.value(
            "SELECT count(*) FROM integration.event_log WHERE received_at >= \
             date_bin('1 hour', now(), timestamptz '2000-01-01 00:00:00+00') - interval '23 hours'",
        )
        .await;
    assert!(
        html.contains(&format!("data-total=\"{window}\"")),
        "the chart counts the {window} events of the last 24 hours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_aggregate_lock_is_503_with_retry_after_and_the_event_is_stored_once_after() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    // ingest_event's lock for the aggregate expense/77.
    let lock = "SELECT pg_advisory_lock(1769236481, hashtext('expense' || '/' || '77'))";

    // The read-only role cannot take it: the migration revoked the advisory-lock
    // functions from PUBLIC (the tests migrate as a superuser, as `ipai migrate` does).
    let (reader, conn) = tokio_postgres::connect(&f.db.reader_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let err = reader
        .batch_execute(lock)
        .await
        .expect_err("the reader may not take advisory locks");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
        "{err}"
    );

    // Where the revocation cannot be made (Supabase), another session holds the lock:
    // the post waits ingest_event's 5 s lock_timeout and answers 503 + Retry-After,
    // storing nothing.
    f.db.client.batch_execute(lock).await.unwrap();
    let request = signed_request(SECRET, "exp-77-submit", &expense("77"));
    let started = std::time::Instant::now();
    let resp = request.post(&f.http, &url).await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (status, body) = answer(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("database_busy")),
        "{body}"
    );
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(started.elapsed() >= std::time::Duration::from_secs(4));
    assert!(
        !body.to_string().contains("lock timeout"),
        "no database text: {body}"
    );
    assert_eq!(
        rows(&f).await,
        (0, 0),
        "nothing stored while the lock is held"
    );
    // Other aggregates are not held up.
    let (status, body) = answer(
        signed_request(SECRET, "exp-78-submit", &expense("78"))
            .post(&f.http, &url)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // Released. The very same bytes again: their signature was spent by the failed store
    // (migration 20261207000500), so a captured copy cannot be made to succeed later.
    f.db.client
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let (status, body) = answer(request.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("replayed_signature")),
        "{body}"
    );
    // The sender's retry, signed anew (as the Odoo addon signs every attempt): stored, once.
    let retry = signed_request(SECRET, "exp-77-submit", &expense("77"));
    let (status, body) = answer(retry.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("queued")),
        "{body}"
    );
    let id = body["id"].clone();
    let (status, body) = answer(retry.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["status"].as_str(), &body["id"]),
        (200, Some("duplicate"), &id),
        "{body}"
    );
    let stored: i64 = f
        .db
        .value("SELECT count(*) FROM integration.event_log WHERE idempotency_key = 'exp-77-submit'")
        .await;
    assert_eq!(stored, 1);
    assert_eq!(rows(&f).await, (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_role_has_its_statement_timeout_and_a_long_statement_is_cancelled() {
    let db = ipai_tests::TestDb::new().await.unwrap();
    let cases = [
        (db.ingest_url(), "30s"),
        (db.app_url(), "30s"),
        (db.reader_url(), "15s"),
    ];
    let runs = cases.into_iter().map(|(url, expected)| async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        tokio::spawn(conn);
        let got: String = client
            .query_one("SHOW statement_timeout", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(got, expected, "{url}");
        let started = std::time::Instant::now();
        let err = client
            .batch_execute("SELECT pg_sleep(45)")
            .await
            .expect_err("a 45 s statement must be cancelled");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{url}: {err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(40));
    });
    futures::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_route_checks_the_token_before_it_reads_the_body() {
    // The public handler routes of a service_chaining=off deployment (scripts/deploy.py).
    let m = ipai_tests::manifest::variant(ipai_tests::manifest::with_public_handler_routes);
    let f = Fixture::with_manifest(m, |_| {}).await.unwrap();
    // Larger than a handler ever reads: with the token this is a 400 (too large); without
    // it the token is checked first, so the answer is 401.
    let big = vec![b' '; 600 * 1024];
    let resp = f
        .http
        .post(f.sys.url("/handlers/expense"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let resp = f
        .http
        .post(f.sys.url("/handlers/expense"))
        .bearer_auth(TEST_HANDLER_TOKEN)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_envelope")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_beyond_the_hosts_limit_are_refused_before_the_component() {
    // Spin 4.0.2 serves HTTP/1 with hyper's defaults (trigger-http's server.rs sets only
    // an optional max_buf_size): a request head larger than hyper's buffer (about
    // 400 KiB) or with more than 100 headers is refused by the host. The local host does
    // the same.
    // Standard Webhooks on: these requests are signed in that scheme.
    let f = Fixture::with(ipai_tests::runtime::with_standard_webhooks)
        .await
        .unwrap();
    let huge = "v1,AAAA ".repeat(64 * 1024);
    let req = standard_webhook("msg_over", &expense("42"), Some(huge));
    match req.post(&f.http, &f.sys.url("/odoo-webhook")).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            eprintln!("oversized head: {status}");
            assert!((400..500).contains(&status), "{status}");
        }
        // hyper may close the connection after its 431 before the client has sent all.
        Err(e) => {
            eprintln!("oversized head: {e}");
            assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}")
        }
    }
    let mut many = signed_request(SECRET, "many-headers", &expense("42"));
    for i in 0..120 {
        many = many.set(&format!("x-pad-{i}"), "1");
    }
    let status = many
        .post(&f.http, &f.sys.url("/odoo-webhook"))
        .await
        .map(|r| r.status().as_u16());
    eprintln!("120 extra headers: {status:?}");
    assert!(
        matches!(status, Ok(400..=499)) || status.is_err(),
        "{status:?}"
    );
    assert_eq!(rows(&f).await, (0, 0));
}
