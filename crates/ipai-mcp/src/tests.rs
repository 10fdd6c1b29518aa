//! Behaviour of the whole endpoint with a fake database.

use super::*;
use crate::jsonrpc::*;
use serde_json::{json, Value};

const TOKEN: &str = "t0ken";

fn cfg() -> Config {
    Config {
        token: Some(format!("old-token, {TOKEN}")),
    }
}

/// A fake database: records every query and answers with `answer`.
struct Fake {
    queries: Vec<Query>,
    answer: Result<Option<Value>, DbError>,
}

impl Fake {
    fn new(answer: Result<Option<Value>, DbError>) -> Self {
        Self {
            queries: vec![],
            answer,
        }
    }
}

impl Database for Fake {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        self.queries.push(Query {
            sql: sql.to_string(),
            params: params.to_vec(),
        });
        self.answer.clone()
    }
}

fn events_row() -> Value {
    json!({"events": [{"id": "0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10", "seq": 1,
                        "event_type": "expense.submitted", "aggregate_type": "expense",
                        "aggregate_id": "42", "source": "odoo", "occurred_at": null,
                        "received_at": "2026-11-26T05:00:00.000000Z", "outbox_status": "pending",
                        "payload": {"amount": 10}}],
           "total_matches": 3,
           "summary": {"events": 3, "expenses": 1, "employees": 1, "by_event_type": {"expense.submitted": 3},
                       "by_status": {"submit": 1}, "total_amount_by_currency": {"PHP": 10}}})
}

fn base_headers() -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "Accept".into(),
            "application/json, text/event-stream".into(),
        ),
        ("Authorization".into(), format!("Bearer {TOKEN}")),
        ("Host".into(), "127.0.0.1:3000".into()),
    ]
}

fn post(headers: Vec<(String, String)>, body: &Value, db: &mut Fake) -> HttpResponse {
    handle(
        &HttpRequest {
            method: "POST".into(),
            headers,
            body: body.to_string().into_bytes(),
        },
        &cfg(),
        db,
    )
}

/// A 2026-07-28 request with the envelope and the mirrored headers.
fn modern_request(id: Value, method: &str, mut params: Value) -> (Vec<(String, String)>, Value) {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    });
    let mut h = base_headers();
    h.push(("MCP-Protocol-Version".into(), "2026-07-28".into()));
    h.push(("Mcp-Method".into(), method.into()));
    if method == "tools/call" {
        if let Some(n) = params["name"].as_str() {
            h.push(("Mcp-Name".into(), n.into()));
        }
    }
    (
        h,
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
}

fn modern_call(method: &str, params: Value, db: &mut Fake) -> HttpResponse {
    let (h, b) = modern_request(json!(1), method, params);
    post(h, &b, db)
}

fn legacy_call(version: Option<&str>, method: &str, params: Value, db: &mut Fake) -> HttpResponse {
    let mut h = base_headers();
    if let Some(v) = version {
        h.push(("MCP-Protocol-Version".into(), v.into()));
    }
    post(
        h,
        &json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}),
        db,
    )
}

fn error_code(r: &HttpResponse) -> i64 {
    r.json_body()["error"]["code"].as_i64().unwrap_or(0)
}

// ----- HTTP layer -----

#[test]
fn get_and_delete_are_405_with_allow_post_even_without_a_token() {
    for m in ["GET", "DELETE", "PUT"] {
        let r = handle(
            &HttpRequest {
                method: m.into(),
                ..Default::default()
            },
            &cfg(),
            &mut Fake::new(Ok(None)),
        );
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("POST"));
    }
}

#[test]
fn a_missing_or_wrong_token_is_401_with_www_authenticate() {
    let mut db = Fake::new(Ok(None));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let mut h = base_headers();
    h.retain(|(k, _)| k != "Authorization");
    let r = post(h.clone(), &body, &mut db);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Bearer "));
    for bad in [
        "Bearer nope",
        "Basic dDBrZW4=",
        "Bearer",
        "t0ken",
        "Bearer t0ken2",
        "Bearer t0ke",
    ] {
        let mut h2 = h.clone();
        h2.push(("authorization".into(), bad.into()));
        let r = post(h2, &body, &mut db);
        assert_eq!(r.status, 401, "{bad}");
        assert!(r.header("www-authenticate").is_some());
        assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    }
    // Both rotated tokens work; the scheme is case-insensitive.
    for good in ["Bearer old-token", "bearer t0ken"] {
        let mut h2 = h.clone();
        h2.push(("Authorization".into(), good.into()));
        assert_eq!(post(h2, &body, &mut db).status, 200, "{good}");
    }
    assert!(db.queries.is_empty());
}

#[test]
fn an_unset_token_refuses_everything_with_500() {
    for token in [None, Some(" , ".to_string())] {
        let r = handle(
            &HttpRequest {
                method: "POST".into(),
                headers: base_headers(),
                body: b"{}".to_vec(),
            },
            &Config { token },
            &mut Fake::new(Ok(None)),
        );
        assert_eq!(r.status, 500);
        assert_eq!(r.json_body()["error"], "misconfigured");
    }
}

#[test]
fn a_foreign_origin_is_403_and_the_same_origin_passes() {
    let mut db = Fake::new(Ok(None));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let mut h = base_headers();
    h.push(("Origin".into(), "http://evil.example".into()));
    assert_eq!(post(h, &body, &mut db).status, 403);
    let mut h = base_headers();
    h.push(("Origin".into(), "http://127.0.0.1:3000".into()));
    assert_eq!(post(h, &body, &mut db).status, 200);
}

#[test]
fn content_type_accept_size_and_json_are_checked() {
    let mut db = Fake::new(Ok(None));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let mut h = base_headers();
    h[0].1 = "text/plain".into();
    assert_eq!(post(h, &body, &mut db).status, 415);
    let mut h = base_headers();
    h[0].1 = "application/json; charset=utf-8".into();
    assert_eq!(post(h, &body, &mut db).status, 200);
    let mut h = base_headers();
    h[1].1 = "text/html".into();
    assert_eq!(post(h, &body, &mut db).status, 406);
    let mut h = base_headers();
    h[1].1 = "*/*".into();
    assert_eq!(post(h, &body, &mut db).status, 200);

    let big = HttpRequest {
        method: "POST".into(),
        headers: base_headers(),
        body: vec![b' '; MAX_BODY_BYTES + 1],
    };
    assert_eq!(handle(&big, &cfg(), &mut db).status, 413);

    let bad = HttpRequest {
        method: "POST".into(),
        headers: base_headers(),
        body: b"{\"jsonrpc\": \"2.0\", ".to_vec(),
    };
    let r = handle(&bad, &cfg(), &mut db);
    assert_eq!((r.status, error_code(&r)), (400, PARSE_ERROR));
    assert!(r.json_body()["id"].is_null());
}

#[test]
fn malformed_json_rpc_is_an_invalid_request() {
    let mut db = Fake::new(Ok(None));
    for body in [
        json!({"id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 1}),
        json!({"jsonrpc": "2.0", "id": 1, "method": ["x"]}),
        json!("ping"),
    ] {
        let r = post(base_headers(), &body, &mut db);
        assert_eq!((r.status, error_code(&r)), (400, INVALID_REQUEST), "{body}");
    }
}

// ----- 2026-07-28 -----

#[test]
fn server_discover_advertises_the_current_revision_and_tools() {
    let r = modern_call("server/discover", json!({}), &mut Fake::new(Ok(None)));
    assert_eq!(r.status, 200);
    let b = r.json_body();
    assert_eq!(b["id"], 1);
    let res = &b["result"];
    assert_eq!(res["resultType"], "complete");
    assert_eq!(res["supportedVersions"], json!(["2026-07-28"]));
    assert!(res["capabilities"]["tools"].is_object());
    assert_eq!(res["serverInfo"]["name"], server::SERVER_NAME);
    assert_eq!(
        res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        server::SERVER_NAME
    );
    assert!(res["ttlMs"].as_u64().is_some());
    assert_eq!(res["cacheScope"], "private");
    assert!(r.header("mcp-session-id").is_none());
}

#[test]
fn modern_tools_list_is_cacheable_typed_and_ordered() {
    let r = modern_call("tools/list", json!({}), &mut Fake::new(Ok(None)));
    let res = &r.json_body()["result"];
    assert_eq!(res["resultType"], "complete");
    assert_eq!(res["cacheScope"], "private");
    assert!(res["ttlMs"].as_u64().unwrap() > 0);
    let names: Vec<&str> = res["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "query_events",
            "query_expense_events",
            "query_asset_events",
            "query_finance_events",
            "get_event",
            "outbox_health",
            "list_alerts",
            "reconcile_status",
            "replay_preview"
        ]
    );
    for t in res["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object");
        assert_eq!(t["outputSchema"]["type"], "object");
        assert_eq!(t["annotations"]["readOnlyHint"], true);
        assert!(t["title"].is_string());
    }
    let expense = &res["tools"][1]["inputSchema"]["properties"];
    let mut keys: Vec<&String> = expense.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["date_from", "date_to", "employee_code", "limit", "status"]
    );
    assert_eq!(expense["limit"]["default"], 50);
}

#[test]
fn the_meta_envelope_is_required_with_minus_32602_and_400() {
    let mut h = base_headers();
    h.push(("MCP-Protocol-Version".into(), "2026-07-28".into()));
    h.push(("Mcp-Method".into(), "tools/list".into()));
    let r = post(
        h.clone(),
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!((r.status, error_code(&r)), (400, INVALID_PARAMS));
    let r = post(
        h,
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list",
                "params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!((r.status, error_code(&r)), (400, INVALID_PARAMS));
    assert!(r.json_body()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("clientCapabilities"));
}

#[test]
fn mirrored_headers_must_match_the_body() {
    let mut db = Fake::new(Ok(Some(events_row())));
    let (h, b) = modern_request(json!(1), "tools/call", json!({"name": "query_events"}));
    // Missing MCP-Protocol-Version header.
    let no_version: Vec<_> = h
        .iter()
        .filter(|(k, _)| k != "MCP-Protocol-Version")
        .cloned()
        .collect();
    let r = post(no_version, &b, &mut db);
    assert_eq!((r.status, error_code(&r)), (400, HEADER_MISMATCH));
    // Method header names another method.
    let mut other = h.clone();
    for (k, v) in other.iter_mut() {
        if k == "Mcp-Method" {
            *v = "tools/list".into();
        }
    }
    let r = post(other, &b, &mut db);
    assert_eq!((r.status, error_code(&r)), (400, HEADER_MISMATCH));
    // Mcp-Name names another tool.
    let mut other = h.clone();
    for (k, v) in other.iter_mut() {
        if k == "Mcp-Name" {
            *v = "outbox_health".into();
        }
    }
    let r = post(other, &b, &mut db);
    assert_eq!((r.status, error_code(&r)), (400, HEADER_MISMATCH));
    // Duplicated routing header.
    let mut dup = h.clone();
    dup.push(("mcp-method".into(), "tools/call".into()));
    let r = post(dup, &b, &mut db);
    assert_eq!((r.status, error_code(&r)), (400, HEADER_MISMATCH));
    assert!(db.queries.is_empty(), "nothing runs on a header mismatch");
    // The base64 sentinel form of Mcp-Name is decoded before comparing.
    let mut enc = h.clone();
    for (k, v) in enc.iter_mut() {
        if k == "Mcp-Name" {
            *v = "=?base64?cXVlcnlfZXZlbnRz?=".into();
        }
    }
    assert_eq!(post(enc, &b, &mut db).status, 200);
    assert_eq!(post(h, &b, &mut db).status, 200);
}

#[test]
fn an_unknown_version_is_minus_32022_listing_the_supported_ones() {
    let (mut h, mut b) = modern_request(json!("v"), "tools/list", json!({}));
    for (k, v) in h.iter_mut() {
        if k == "MCP-Protocol-Version" {
            *v = "2099-01-01".into();
        }
    }
    b["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let r = post(h.clone(), &b, &mut Fake::new(Ok(None)));
    assert_eq!(
        (r.status, error_code(&r)),
        (400, UNSUPPORTED_PROTOCOL_VERSION)
    );
    let body = r.json_body();
    assert_eq!(body["id"], "v");
    assert_eq!(
        body["error"]["data"]["supported"],
        json!(["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    assert_eq!(body["error"]["data"]["requested"], "2099-01-01");
    // Header modern, envelope unknown: the client disagrees with itself.
    for (k, v) in h.iter_mut() {
        if k == "MCP-Protocol-Version" {
            *v = "2026-07-28".into();
        }
    }
    let r = post(h, &b, &mut Fake::new(Ok(None)));
    assert_eq!((r.status, error_code(&r)), (400, HEADER_MISMATCH));
    // An envelope without a header (2026 body, no header): mismatch, not a 2025 request.
    let (h, b) = modern_request(json!(1), "tools/list", json!({}));
    let h: Vec<_> = h
        .into_iter()
        .filter(|(k, _)| k != "MCP-Protocol-Version")
        .collect();
    let r = post(h, &b, &mut Fake::new(Ok(None)));
    assert_eq!((r.status, error_code(&r)), (400, HEADER_MISMATCH));
}

#[test]
fn unknown_methods_and_ping_are_404_method_not_found_at_2026() {
    for m in [
        "resources/list",
        "ping",
        "initialize",
        "subscriptions/listen",
    ] {
        let r = modern_call(m, json!({}), &mut Fake::new(Ok(None)));
        if m == "initialize" {
            // Routed by its header to the current revision, where it does not exist.
            assert_eq!(r.status, 404);
        }
        assert_eq!((r.status, error_code(&r)), (404, METHOD_NOT_FOUND), "{m}");
    }
}

#[test]
fn notifications_are_202_without_a_body() {
    let mut h = base_headers();
    h.push(("MCP-Protocol-Version".into(), "2026-07-28".into()));
    let r = post(
        h,
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    for v in [None, Some("2025-06-18")] {
        let mut h = base_headers();
        if let Some(v) = v {
            h.push(("MCP-Protocol-Version".into(), v.into()));
        }
        let r = post(
            h,
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            &mut Fake::new(Ok(None)),
        );
        assert_eq!((r.status, r.body.len()), (202, 0));
    }
}

#[test]
fn a_modern_tool_call_returns_text_and_structured_content() {
    let mut db = Fake::new(Ok(Some(events_row())));
    let r = modern_call(
        "tools/call",
        json!({"name": "query_expense_events", "arguments": {"employee_code": "E-0042", "limit": 2}}),
        &mut db,
    );
    assert_eq!(r.status, 200);
    let res = &r.json_body()["result"];
    assert_eq!(res["resultType"], "complete");
    assert_eq!(res["isError"], false);
    let s = &res["structuredContent"];
    assert_eq!(s["limit"], 2);
    assert_eq!(s["returned"], 1);
    assert_eq!(s["truncated"], true);
    assert_eq!(s["filters"], json!({"employee_code": "E-0042"}));
    let text = res["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Found 3 expense events"), "{text}");
    assert!(text.contains("totaling PHP 10.00"), "{text}");
    assert!(
        text.contains("Most recent: expense.submitted expense 42, received"),
        "{text}"
    );
    let as_json: Value = serde_json::from_str(res["content"][1]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&as_json, s);
    assert_eq!(db.queries.len(), 1);
    assert!(db.queries[0].params.contains(&Param::Text("E-0042".into())));
    assert!(db.queries[0].params.contains(&Param::Int(2)));
}

// ----- 2025 revisions -----

#[test]
fn initialize_negotiates_the_2025_revisions() {
    for (asked, got) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),
        ("1.0", "2025-11-25"),
    ] {
        let r = legacy_call(
            None,
            "initialize",
            json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}),
            &mut Fake::new(Ok(None)),
        );
        assert_eq!(r.status, 200);
        let res = &r.json_body()["result"];
        assert_eq!(res["protocolVersion"], got, "{asked}");
        assert!(res["capabilities"]["tools"].is_object());
        assert_eq!(res["serverInfo"]["name"], server::SERVER_NAME);
        assert_eq!(
            res["serverInfo"].get("title").is_some(),
            got >= "2025-06-18"
        );
        assert!(res.get("resultType").is_none());
        assert!(r.header("mcp-session-id").is_none());
    }
}

#[test]
fn ping_answers_empty_and_unknown_methods_are_200_with_minus_32601() {
    let r = legacy_call(
        Some("2025-06-18"),
        "ping",
        json!({}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!(
        (r.status, r.json_body()["result"].clone()),
        (200, json!({}))
    );
    let r = legacy_call(
        Some("2025-11-25"),
        "prompts/list",
        json!({}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!((r.status, error_code(&r)), (200, METHOD_NOT_FOUND));
    assert_eq!(r.json_body()["id"], 7);
    // server/discover does not exist before 2026-07-28.
    let r = legacy_call(
        Some("2025-11-25"),
        "server/discover",
        json!({}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!(error_code(&r), METHOD_NOT_FOUND);
}

#[test]
fn an_unsupported_version_header_is_400() {
    for v in ["2024-11-05", "banana"] {
        let r = legacy_call(Some(v), "tools/list", json!({}), &mut Fake::new(Ok(None)));
        assert_eq!(
            (r.status, error_code(&r)),
            (400, UNSUPPORTED_PROTOCOL_VERSION),
            "{v}"
        );
    }
}

#[test]
fn tool_listings_follow_the_revision() {
    let r = legacy_call(None, "tools/list", json!({}), &mut Fake::new(Ok(None)));
    let t = &r.json_body()["result"]["tools"][0];
    assert!(t.get("outputSchema").is_none() && t.get("title").is_none());
    assert!(t["annotations"]["title"].is_string());
    assert!(r.json_body()["result"].get("resultType").is_none());
    let r = legacy_call(
        Some("2025-06-18"),
        "tools/list",
        json!({}),
        &mut Fake::new(Ok(None)),
    );
    let t = &r.json_body()["result"]["tools"][0];
    assert!(t["outputSchema"].is_object() && t["title"].is_string());
    assert!(r.json_body()["result"].get("ttlMs").is_none());
}

#[test]
fn structured_content_starts_with_2025_06_18() {
    for (v, structured) in [
        (None, false),
        (Some("2025-03-26"), false),
        (Some("2025-06-18"), true),
        (Some("2025-11-25"), true),
    ] {
        let r = legacy_call(
            v,
            "tools/call",
            json!({"name": "query_events", "arguments": {}}),
            &mut Fake::new(Ok(Some(events_row()))),
        );
        let res = &r.json_body()["result"];
        assert_eq!(res.get("structuredContent").is_some(), structured, "{v:?}");
        assert_eq!(res["isError"], false);
        let j: Value = serde_json::from_str(res["content"][1]["text"].as_str().unwrap()).unwrap();
        assert_eq!(j["total_matches"], 3);
    }
}

#[test]
fn batches_are_served_for_2025_03_26_only() {
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"},
        {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}},
        17
    ]);
    let r = post(base_headers(), &batch, &mut Fake::new(Ok(None)));
    assert_eq!(r.status, 200);
    let replies = r.json_body();
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 5);
    assert_eq!(replies[0]["result"], json!({}));
    assert_eq!(replies[1]["id"], "b");
    assert!(replies[1]["result"]["tools"].is_array());
    assert_eq!(replies[2]["error"]["code"], METHOD_NOT_FOUND);
    assert_eq!(replies[3]["error"]["code"], INVALID_REQUEST);
    assert_eq!(replies[4]["error"]["code"], INVALID_REQUEST);
    let only_notes = json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]);
    assert_eq!(
        post(base_headers(), &only_notes, &mut Fake::new(Ok(None))).status,
        202
    );
    let r = post(base_headers(), &json!([]), &mut Fake::new(Ok(None)));
    assert_eq!((r.status, error_code(&r)), (400, INVALID_REQUEST));
    let mut h = base_headers();
    h.push(("MCP-Protocol-Version".into(), "2025-06-18".into()));
    let r = post(h, &batch, &mut Fake::new(Ok(None)));
    assert_eq!((r.status, error_code(&r)), (400, INVALID_REQUEST));
}

#[test]
fn a_batch_over_the_limit_is_refused_whole_before_any_query() {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "query_events", "arguments": {}}});
    let full = Value::Array(vec![call.clone(); crate::http::MAX_BATCH_ITEMS]);
    let mut db = Fake::new(Ok(Some(events_row())));
    let r = post(base_headers(), &full, &mut db);
    assert_eq!(r.status, 200);
    assert_eq!(db.queries.len(), crate::http::MAX_BATCH_ITEMS);
    let over = Value::Array(vec![call; crate::http::MAX_BATCH_ITEMS + 1]);
    let mut db = Fake::new(Ok(Some(events_row())));
    let r = post(base_headers(), &over, &mut db);
    assert_eq!((r.status, error_code(&r)), (400, INVALID_REQUEST));
    assert!(r.json_body()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 16"));
    assert!(db.queries.is_empty());
}

#[test]
fn summaries_are_capped_in_the_sql_and_keys_found_through_indexes() {
    let query_for = |name: &str, args: Value| {
        let tool = crate::tools::find(name).unwrap();
        let args = tool.validate(args.as_object().unwrap()).unwrap();
        tool.query(&args)
    };
    let q = query_for("query_expense_events", json!({}));
    assert!(
        q.sql
            .contains(&format!("LIMIT {}", crate::tools::MAX_SUMMARY_EVENTS + 1)),
        "{}",
        q.sql
    );
    assert!(q.sql.contains("'matches_capped'"));
    let q = query_for("get_event", json!({"idempotency_key": "k-1"}));
    assert!(q.sql.contains("integration.idempotency_keys"), "{}", q.sql);
}

#[test]
fn payload_filters_are_written_for_their_indexes() {
    let query_for = |name: &str, args: Value| {
        let tool = crate::tools::find(name).unwrap();
        let args = tool.validate(args.as_object().unwrap()).unwrap();
        tool.query(&args)
    };
    // The domain's aggregate type is a literal (the partial indexes' predicate); the
    // field's value stays a parameter.
    let q = query_for(
        "query_expense_events",
        json!({"employee_code": "E-7", "status": "submit"}),
    );
    assert!(q.sql.contains("e.aggregate_type = 'expense'"), "{}", q.sql);
    assert!(
        q.sql.contains("e.payload->>'employee_code' = $"),
        "{}",
        q.sql
    );
    assert!(q.params.contains(&Param::Text("E-7".into())));
    let q = query_for(
        "query_finance_events",
        json!({"responsible_email": "a@b.ph"}),
    );
    assert!(q.sql.contains("e.aggregate_type = 'finance_task'"));
    assert!(q
        .params
        .contains(&Param::Json(json!({"responsible_emails": ["a@b.ph"]}))));
}

#[test]
fn containment_candidates_cover_every_form_the_comparison_accepts() {
    use crate::tools::containment_candidates as c;
    // A string that reads as a number: the string and the number.
    assert_eq!(
        c("employee_id", &json!("42")),
        vec![json!({"employee_id": "42"}), json!({"employee_id": 42})]
    );
    // A number: the number and its text.
    assert_eq!(
        c("amount", &json!(12.5)),
        vec![json!({"amount": 12.5}), json!({"amount": "12.5"})]
    );
    // true matches the string "true" through #>>.
    assert_eq!(
        c("ok", &json!(true)),
        vec![json!({"ok": true}), json!({"ok": "true"})]
    );
    // null only as itself.
    assert_eq!(c("x", &json!(null)), vec![json!({"x": null})]);
    // Nested paths nest; a numeric segment also matches an array element.
    assert_eq!(
        c("meta.source", &json!("odoo")),
        vec![json!({"meta": {"source": "odoo"}})]
    );
    assert_eq!(
        c("lines.0.sku", &json!("A")),
        vec![
            json!({"lines": {"0": {"sku": "A"}}}),
            json!({"lines": [{"sku": "A"}]})
        ]
    );
    // Too many array positions to enumerate: no index condition.
    assert!(c("a.0.1.2.3", &json!("x")).is_empty());
    use crate::tools::containment_is_exact as exact;
    assert!(exact("employee_code", &json!("E-1")));
    assert!(exact("meta.source", &json!(42)));
    assert!(!exact("lines.0.sku", &json!("A")));
    assert!(!exact("meta", &json!("{\"a\": 1}")));
}

// ----- tools/call -----

#[test]
fn bad_tools_call_params_are_minus_32602() {
    for params in [
        json!({"arguments": {}}),
        json!({"name": 5}),
        json!({"name": "no_such_tool"}),
        json!({"name": "query_events", "arguments": "employee_code=1"}),
        json!({"name": "query_events", "arguments": [1]}),
    ] {
        let mut db = Fake::new(Ok(Some(events_row())));
        let r = legacy_call(Some("2025-11-25"), "tools/call", params.clone(), &mut db);
        assert_eq!(
            (r.status, error_code(&r)),
            (200, INVALID_PARAMS),
            "{params}"
        );
        assert!(db.queries.is_empty());
        let r = modern_call("tools/call", params.clone(), &mut db);
        assert_eq!(
            (r.status, error_code(&r)),
            (400, INVALID_PARAMS),
            "{params}"
        );
    }
    let r = legacy_call(
        Some("2025-11-25"),
        "tools/call",
        json!([1, 2]),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!(error_code(&r), INVALID_PARAMS);
    let r = legacy_call(
        Some("2025-11-25"),
        "tools/call",
        json!({"name": "no_such_tool"}),
        &mut Fake::new(Ok(None)),
    );
    assert_eq!(
        r.json_body()["error"]["message"],
        "Unknown tool: no_such_tool"
    );
}

#[test]
fn invalid_arguments_are_a_tool_error_and_run_nothing() {
    let mut db = Fake::new(Ok(Some(events_row())));
    let r = legacy_call(
        Some("2025-11-25"),
        "tools/call",
        json!({"name": "query_expense_events", "arguments": {"limit": "many", "date_from": "last week", "color": "red"}}),
        &mut db,
    );
    assert_eq!(r.status, 200);
    let res = &r.json_body()["result"];
    assert_eq!(res["isError"], true);
    let problems = res["structuredContent"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(res["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("'color'"));
    assert!(db.queries.is_empty());
    for args in [
        json!({"payload_field": "status"}),
        json!({"date_from": "2026-02-01", "date_to": "2026-01-01"}),
    ] {
        let r = legacy_call(
            Some("2025-11-25"),
            "tools/call",
            json!({"name": "query_events", "arguments": args}),
            &mut db,
        );
        assert_eq!(r.json_body()["result"]["isError"], true, "{args}");
    }
    for args in [
        json!({}),
        json!({"id": "0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10", "idempotency_key": "k"}),
    ] {
        let r = legacy_call(
            Some("2025-11-25"),
            "tools/call",
            json!({"name": "get_event", "arguments": args}),
            &mut db,
        );
        assert_eq!(r.json_body()["result"]["isError"], true, "{args}");
    }
    assert!(db.queries.is_empty());
}

#[test]
fn database_failures_and_missing_events_are_tool_errors_without_details() {
    for (answer, code) in [
        (
            Err(DbError::Unavailable("secret host".into())),
            "database_unavailable",
        ),
        (
            Err(DbError::Failed("permission denied for table x".into())),
            "query_failed",
        ),
        (Ok(None), "not_found"),
    ] {
        let mut db = Fake::new(answer);
        let r = modern_call(
            "tools/call",
            json!({"name": "get_event", "arguments": {"id": "0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10"}}),
            &mut db,
        );
        assert_eq!(r.status, 200);
        let res = &r.json_body()["result"];
        assert_eq!(res["isError"], true);
        assert_eq!(res["structuredContent"]["error"], code);
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert!(!body.contains("secret host") && !body.contains("permission denied"));
    }
}

#[test]
fn outbox_health_passes_the_capped_dead_letter_limit() {
    let row = json!({"by_status": {}, "queue_depth": 0, "dead": 0, "oldest_pending_age_seconds": null, "dead_letters": []});
    let mut db = Fake::new(Ok(Some(row)));
    let r = modern_call(
        "tools/call",
        json!({"name": "outbox_health", "arguments": {"dead_letter_limit": 1000}}),
        &mut db,
    );
    let res = &r.json_body()["result"];
    assert_eq!(res["isError"], false);
    assert_eq!(res["structuredContent"]["dead_letter_limit"], 100);
    assert_eq!(db.queries[0].params, vec![Param::Int(100)]);
}

// ----- SQL as data -----

/// The largest `$n` in `sql`.
fn max_placeholder(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    for (i, c) in b.iter().enumerate() {
        if *c == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
        }
    }
    max
}

const EVIL: &[&str] = &[
    "E-0042' OR '1'='1",
    "x'); DELETE FROM integration.outbox; --",
    "$$; SELECT pg_sleep(10); $$",
    "\\'; DROP TABLE integration.event_log; --",
];

#[test]
fn injection_shaped_values_never_reach_the_sql_text() {
    for evil in EVIL {
        let calls = [
            (
                "query_events",
                json!({"event_type": evil, "aggregate_type": evil, "aggregate_id": evil,
                                    "payload_field": evil, "payload_value": evil}),
            ),
            (
                "query_expense_events",
                json!({"employee_code": evil, "status": evil}),
            ),
            (
                "query_asset_events",
                json!({"booking_id": evil, "asset_id": evil, "asset_code": evil,
                                          "employee_id": evil, "employee_email": evil, "status": evil}),
            ),
            (
                "query_finance_events",
                json!({"task_id": evil, "project": evil, "bir_form": evil,
                                            "period": evil, "status": evil, "responsible_email": evil}),
            ),
            ("get_event", json!({"idempotency_key": evil})),
        ];
        for (tool, args) in calls {
            let t = tools::find(tool).unwrap();
            let a = t.validate(args.as_object().unwrap()).unwrap();
            let q = t.query(&a);
            assert!(!q.sql.contains(evil), "{tool}: value in SQL text");
            assert!(
                !q.sql.contains("DELETE") && !q.sql.contains("DROP") && !q.sql.contains("pg_sleep")
            );
            // Every value is bound: as text, or inside a JSON document of a containment
            // filter (responsible_email, payload_field = payload_value).
            fn mentions(v: &Value, evil: &str) -> bool {
                match v {
                    Value::String(s) => s == evil,
                    Value::Array(a) => a.iter().any(|x| mentions(x, evil)),
                    Value::Object(m) => m.iter().any(|(k, x)| k == evil || mentions(x, evil)),
                    _ => false,
                }
            }
            let text_bound = q
                .params
                .iter()
                .filter(|p| **p == Param::Text(evil.to_string()))
                .count();
            let json_bound = q
                .params
                .iter()
                .any(|p| matches!(p, Param::Json(v) if mentions(v, evil)));
            let containment_args = ["responsible_email", "payload_field", "payload_value"];
            let as_text = args
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| !containment_args.contains(&k.as_str()))
                .count();
            assert!(text_bound >= as_text, "{tool}: every value bound");
            if args
                .as_object()
                .unwrap()
                .keys()
                .any(|k| containment_args.contains(&k.as_str()))
            {
                assert!(json_bound, "{tool}: the containment's value is bound");
            }
            assert_eq!(
                max_placeholder(&q.sql),
                q.params.len(),
                "{tool}: placeholders vs params"
            );
        }
    }
}

#[test]
fn every_filter_is_a_bound_parameter_with_an_explicit_type() {
    let t = tools::find("query_events").unwrap();
    let a = t
        .validate(
            json!({"event_type": "expense.", "aggregate_type": "expense", "aggregate_id": 42,
                   "date_from": "2026-01-01", "date_to": "2026-01-31T23:59:59+08:00",
                   "payload_field": "amount", "payload_value": 1250.5, "limit": 7, "include_payload": false})
            .as_object()
            .unwrap(),
        )
        .unwrap();
    let q = t.query(&a);
    assert_eq!(
        q.params,
        vec![
            Param::Text("expense.".into()),
            Param::Text("expense".into()),
            Param::Text("42".into()),
            Param::Text("2026-01-01".into()),
            Param::Text("2026-01-31T23:59:59+08:00".into()),
            Param::Json(json!({"amount": 1250.5})),
            Param::Json(json!({"amount": "1250.5"})),
            Param::Int(7),
        ]
    );
    // A scalar at a path of keys: the containments are the whole comparison.
    assert!(
        q.sql
            .contains("(e.payload @> $6::text::jsonb OR e.payload @> $7::text::jsonb)\n"),
        "{}",
        q.sql
    );
    // An array position in the path: the containments narrow, the comparison decides.
    let a = t
        .validate(
            json!({"payload_field": "lines.0.sku", "payload_value": "A"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    let positional = t.query(&a);
    assert!(
        positional.sql.contains(
            "(e.payload @> $1::text::jsonb OR e.payload @> $2::text::jsonb) AND (e.payload #> string_to_array($3::text, '.') = $4::text::jsonb OR e.payload #>> string_to_array($3::text, '.') = $5::text)"
        ),
        "{}",
        positional.sql
    );
    assert!(q.sql.contains("starts_with(e.event_type, $1::text)"));
    assert!(q
        .sql
        .contains("e.received_at >= ($4::text)::date::timestamp AT TIME ZONE 'UTC'"));
    assert!(q.sql.contains("e.received_at <= ($5::text)::timestamptz"));
    assert!(q.sql.contains("LIMIT $8::int8"));
    assert!(
        !q.sql.contains("'payload'"),
        "include_payload=false omits payloads"
    );
    // Every `$n` carries a cast.
    for (i, _) in q.sql.match_indices('$') {
        let rest = &q.sql[i + 1..];
        let after: String = rest
            .chars()
            .skip_while(char::is_ascii_digit)
            .take(2)
            .collect();
        assert_eq!(after, "::", "untyped placeholder near {}", &q.sql[i..i + 8]);
    }
}

#[test]
fn domain_tools_are_scoped_to_their_domain() {
    for (tool, agg, prefix) in [
        ("query_expense_events", "expense", "expense."),
        ("query_asset_events", "asset_booking", "asset."),
        ("query_finance_events", "finance_task", "finance_task."),
    ] {
        let t = tools::find(tool).unwrap();
        let q = t.query(&t.validate(&serde_json::Map::new()).unwrap());
        // The aggregate type is a taxonomy constant written as a literal (the partial
        // indexes' predicate); the prefix is a parameter.
        assert!(
            q.sql.contains(&format!("e.aggregate_type = '{agg}'")),
            "{tool}"
        );
        assert_eq!(q.params[0], Param::Text(prefix.into()), "{tool}");
        assert!(q.params.contains(&Param::Int(50)), "{tool}: default limit");
        assert_eq!(max_placeholder(&q.sql), q.params.len());
        assert!(q.sql.contains("FROM integration.event_log AS e"));
    }
    let t = tools::find("query_asset_events").unwrap();
    let q = t.query(
        &t.validate(json!({"event_type": "overdue"}).as_object().unwrap())
            .unwrap(),
    );
    assert!(q.params.contains(&Param::Text("asset.overdue".into())));
}

#[test]
fn every_tool_is_read_only_sql() {
    for t in tools::tools() {
        let args = match t.name {
            "get_event" => json!({"id": "0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10"}),
            _ => json!({}),
        };
        let q = t.query(&t.validate(args.as_object().unwrap()).unwrap());
        let upper = q.sql.to_ascii_uppercase();
        let words: Vec<&str> = upper
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for word in [
            "INSERT",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "ALTER",
            "CREATE",
            "GRANT",
            "CLAIM_OUTBOX",
            "ACK_OUTBOX",
            "FAIL_OUTBOX",
            "REQUEUE_OUTBOX",
            "INGEST_EVENT",
        ] {
            assert!(!words.contains(&word), "{}: {word}", t.name);
        }
        assert!(!q.sql.contains(';'), "{}: one statement only", t.name);
        assert!(upper.trim_start().starts_with("WITH") || upper.trim_start().starts_with("SELECT"));
        // Exactly one row whatever matches: the outermost SELECT has no FROM clause
        // (Spin 4.0.2 never completes a query that returns no rows).
        let outer = outermost_select(&q.sql);
        assert!(
            !outer.to_ascii_uppercase().contains(" FROM ")
                && !outer.to_ascii_uppercase().contains("\nFROM "),
            "{}: the outer SELECT must not read a table: {outer}",
            t.name
        );
    }
}

/// The outermost `SELECT …` of a statement with the text of every parenthesised group removed.
fn outermost_select(sql: &str) -> String {
    let mut depth = 0usize;
    let mut flat = String::new();
    for c in sql.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => flat.push(c),
            _ => {}
        }
    }
    let at = flat.to_ascii_uppercase().rfind("SELECT").unwrap_or(0);
    flat[at..].to_string()
}

#[test]
fn the_outermost_select_helper_sees_a_top_level_from() {
    assert!(outermost_select("SELECT (SELECT 1 FROM t) AS r")
        .to_ascii_uppercase()
        .contains("AS R"));
    assert!(!outermost_select("SELECT (SELECT 1 FROM t) AS r").contains("FROM"));
    assert!(outermost_select("WITH a AS (SELECT 1) SELECT x FROM t WHERE y").contains(" FROM "));
}

#[test]
fn a_body_cut_off_mid_stream_is_a_400_naming_the_failure_not_a_parse_of_the_part_read() {
    let r = unreadable_body("connection reset");
    assert_eq!(r.status, 400);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], -32600);
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("could not read the request body: connection reset"),
        "{msg}"
    );
}

#[test]
fn a_payload_value_is_bound_with_every_digit_it_was_sent_with() {
    let t = tools::find("query_events").unwrap();
    let args: Value = serde_json::from_str(
        r#"{"payload_field": "ref", "payload_value": 123456789012345678901234567890}"#,
    )
    .unwrap();
    let a = t.validate(args.as_object().unwrap()).unwrap();
    let q = t.query(&a);
    let bound: Vec<String> = q
        .params
        .iter()
        .filter_map(|p| match p {
            Param::Json(v) => Some(v.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        bound.contains(&r#"{"ref":123456789012345678901234567890}"#.to_string()),
        "{bound:?}"
    );
}
