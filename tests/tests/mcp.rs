//! SPEC §8 end to end: the built `mcp.wasm` in a Spin runtime against a real PostgreSQL,
//! with data seeded through ingest (signed requests) and the outbox state set as the owner.
//! Clients: the official MCP Python SDK (`mcp` 2.x) speaking 2026-07-28
//! (`tests/python/mcp_client_current.py`), the same SDK in its legacy mode plus a hand-written
//! JSON-RPC client for 2025-11-25, 2025-06-18 and 2025-03-26 (`tests/python/mcp_client_2025.py`),
//! and raw HTTP from Rust for the error cases.

use ipai_tests::runtime::{readonly_url, TEST_MCP_TOKEN};
use ipai_tests::{manifest, Fixture};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const CURRENT: &str = "2026-07-28";

/// A system that delivers nothing by itself (no cron trigger, no dispatch kick), so the
/// outbox holds exactly the state a test gives it.
async fn quiet_fixture() -> Fixture {
    Fixture::with_manifest(manifest::variant(manifest::without_cron), |v| {
        v.insert("dispatch_kick".into(), "off".into());
    })
    .await
    .expect("fixture")
}

fn event(event_type: &str, aggregate_type: &str, aggregate_id: Value, payload: Value) -> Value {
    json!({"event_type": event_type, "aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
           "payload": payload, "occurred_at": "2026-11-20T01:00:00Z"})
}

/// Ten events through ingest, then an outbox history written as the owner: event 1 done
/// with a delivery and an external id, the asset overdue event dead, the finance overdue
/// event failed, the other seven pending. Returns idempotency key → event id.
async fn seed(f: &Fixture) -> BTreeMap<&'static str, String> {
    let expense = |id: u32, code: &str, amount: f64, currency: &str, status: &str| {
        json!({"expense_id": id, "employee_code": code, "employee_name": "Rim Santos", "amount": amount,
               "currency": currency, "description": "Client dinner - Makati", "date": "2026-11-19",
               "category": "Meals", "status": status})
    };
    let booking = |id: u32, asset: u32, code: &str, email: &str, extra: Value| {
        let mut p = json!({"booking_id": id, "asset_id": asset, "asset_code": code, "asset_name": "Laptop",
                           "employee_id": 12, "employee_email": email, "start": "2026-11-20T01:00:00Z",
                           "end": "2026-11-22T09:00:00Z", "location": "Makati", "status": "reserved"});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    let task = |id: u32, extra: Value| {
        let mut p = json!({"task_id": id, "name": "1601-C October", "project": "BIR Compliance",
                           "bir_form": "1601-C", "period": "2026-10", "deadline": "2026-11-10",
                           "responsible_emails": ["fin@example.ph"], "reviewer_id": 5, "stage": "Open",
                           "status": "open"});
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    let events: Vec<(&'static str, Value)> = vec![
        (
            "exp-42-submitted",
            event(
                "expense.submitted",
                "expense",
                json!("42"),
                expense(42, "E-0042", 1250.5, "PHP", "submit"),
            ),
        ),
        (
            "exp-42-approved",
            event(
                "expense.approved",
                "expense",
                json!("42"),
                expense(42, "E-0042", 1250.5, "PHP", "approve"),
            ),
        ),
        (
            "exp-43-submitted",
            event(
                "expense.submitted",
                "expense",
                json!("43"),
                expense(43, "E-0042", 300.0, "PHP", "submit"),
            ),
        ),
        (
            "exp-44-submitted",
            event(
                "expense.submitted",
                "expense",
                json!("44"),
                expense(44, "E-0007", 99.99, "USD", "submit"),
            ),
        ),
        (
            "asset-7-reserved",
            event(
                "asset.reserved",
                "asset_booking",
                json!(7),
                booking(7, 3, "LAP-003", "Ana.Cruz@example.ph", json!({})),
            ),
        ),
        (
            "asset-7-overdue",
            event(
                "asset.overdue",
                "asset_booking",
                json!(7),
                booking(
                    7,
                    3,
                    "LAP-003",
                    "Ana.Cruz@example.ph",
                    json!({"escalation_level": 2, "days_overdue": 3, "status": "overdue"}),
                ),
            ),
        ),
        (
            "asset-8-reserved",
            event(
                "asset.reserved",
                "asset_booking",
                json!(8),
                booking(8, 4, "PRJ-004", "ben@example.ph", json!({})),
            ),
        ),
        (
            "fin-9-created",
            event(
                "finance_task.created",
                "finance_task",
                json!(9),
                task(9, json!({})),
            ),
        ),
        (
            "fin-9-filed",
            event(
                "finance_task.filed",
                "finance_task",
                json!(9),
                task(
                    9,
                    json!({"filed_at": "2026-11-09T03:00:00Z",
            "reference_no": "BIR-REF-1", "status": "done"}),
                ),
            ),
        ),
        (
            "fin-10-overdue",
            event(
                "finance_task.overdue",
                "finance_task",
                json!(10),
                task(
                    10,
                    json!({"name": "Month-end close",
            "project": "Close", "bir_form": null, "period": null, "deadline": "2026-11-05", "days_overdue": 5,
            "responsible_emails": ["ops@example.ph", "fin@example.ph"]}),
                ),
            ),
        ),
    ];
    let mut ids = BTreeMap::new();
    for (key, e) in events {
        let id = f.ingest(key, &e).await;
        assert!(!id.is_empty(), "ingest of {key} returned no id");
        ids.insert(key, id);
    }
    let uuid = |k: &str| -> uuid::Uuid { ids[k].parse().expect("uuid") };
    let c = &f.db.client;
    c.execute(
        "UPDATE integration.outbox SET status = 'done', attempts = 1, done_at = now() WHERE id = $1",
        &[&uuid("exp-42-submitted")],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE integration.outbox SET status = 'dead', attempts = 10,
                last_error = 'mattermost: HTTP 500 Internal Server Error' WHERE id = $1",
        &[&uuid("asset-7-overdue")],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE integration.outbox SET status = 'failed', attempts = 1, last_error = 'timeout after 10000 ms',
                next_attempt_at = now() + interval '1 minute' WHERE id = $1",
        &[&uuid("fin-10-overdue")],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO integration.deliveries (event_id, channel, target, status, response_code, detail)
         VALUES ($1, 'mattermost', 'town-square', 'sent', 200, 'approval request posted')",
        &[&uuid("exp-42-submitted")],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO integration.id_map (odoo_model, odoo_id, system, external_id, event_id)
         VALUES ('hr.expense', '42', 'mattermost', 'post-abc', $1)",
        &[&uuid("exp-42-submitted")],
    )
    .await
    .unwrap();
    ids
}

/// Runs `tests/python/<script>` with `plan` on stdin; returns its JSON output.
async fn python(script: &str, plan: &Value) -> Value {
    let interpreter = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let path = ipai_tests::workspace_root()
        .join("tests/python")
        .join(script);
    let mut child = tokio::process::Command::new(&interpreter)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {interpreter} {}: {e}", path.display()));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(plan.to_string().as_bytes())
        .await
        .expect("write plan");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("python client timed out")
        .expect("python client ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// One HTTP POST to /mcp: (status, headers, JSON body or Null).
async fn post(
    f: &Fixture,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = f
        .http
        .post(f.sys.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("POST /mcp");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"))
    };
    (status, h, v)
}

fn auth() -> String {
    format!("Bearer {TEST_MCP_TOKEN}")
}

/// A 2026-07-28 request with its `_meta` envelope and mirrored headers.
async fn modern(f: &Fixture, method: &str, mut params: Value) -> (u16, Value) {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": CURRENT,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "rust-tests", "version": "1"},
    });
    let name = params["name"].as_str().unwrap_or_default().to_string();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let a = auth();
    let mut headers = vec![
        ("authorization", a.as_str()),
        ("mcp-protocol-version", CURRENT),
        ("mcp-method", method),
    ];
    if method == "tools/call" {
        headers.push(("mcp-name", name.as_str()));
    }
    let (status, _, v) = post(f, &headers, &body.to_string()).await;
    (status, v)
}

/// `tools/call` at 2026-07-28; returns the result object.
async fn tool(f: &Fixture, name: &str, arguments: Value) -> Value {
    let (status, v) = modern(
        f,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
    .await;
    assert_eq!(status, 200, "{name}: {v}");
    v["result"].clone()
}

/// The structured result of an SDK call record (from `structured`, or from the JSON text
/// block for 2025-03-26, which has no structuredContent).
fn data_of(call: &Value) -> Value {
    if !call["structured"].is_null() {
        return call["structured"].clone();
    }
    let text = call["texts"][1]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON text in {call}"));
    serde_json::from_str(text).expect("JSON text block")
}

fn event_types(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("?"))
        .collect()
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_python_sdk_discovers_lists_and_calls_every_tool() {
    let f = quiet_fixture().await;
    let ids = seed(&f).await;
    let plan = json!({
        "url": f.sys.url("/mcp"),
        "token": TEST_MCP_TOKEN,
        "mode": "auto",
        "calls": [
            {"name": "query_expense_events", "arguments": {"employee_code": "E-0042"}},
            {"name": "query_expense_events", "arguments": {"status": "submit", "limit": 1}},
            {"name": "query_expense_events", "arguments": {"date_from": today(), "date_to": today()}},
            {"name": "query_expense_events", "arguments": {"date_to": "2020-01-01"}},
            {"name": "query_asset_events", "arguments": {}},
            {"name": "query_asset_events", "arguments": {"event_type": "overdue"}},
            {"name": "query_asset_events", "arguments": {"employee_email": "ana.cruz@EXAMPLE.ph"}},
            {"name": "query_finance_events", "arguments": {"bir_form": "1601-C"}},
            {"name": "query_finance_events", "arguments": {"responsible_email": "ops@example.ph"}},
            {"name": "query_events", "arguments": {"event_type": "asset.", "include_payload": false}},
            {"name": "query_events", "arguments": {"payload_field": "amount", "payload_value": 1250.5}},
            {"name": "query_events", "arguments": {"aggregate_type": "finance_task", "aggregate_id": 9}},
            {"name": "query_events", "arguments": {}},
            {"name": "get_event", "arguments": {"id": ids["exp-42-submitted"]}},
            {"name": "get_event", "arguments": {"idempotency_key": "asset-7-overdue"}},
            {"name": "get_event", "arguments": {"id": "00000000-0000-4000-8000-000000000000"}},
            {"name": "outbox_health", "arguments": {}},
            {"name": "query_expense_events", "arguments": {"limit": "many", "colour": "red"}},
            {"name": "delete_everything", "arguments": {}},
            {"name": "replay_preview", "arguments": {"status": "dead,failed"}},
        ],
    });
    let out = python("mcp_client_current.py", &plan).await;

    // Connection: the SDK's probe found a 2026-07-28 server (no initialize).
    assert_eq!(out["protocol_version"], CURRENT, "{out}");
    assert!(out["initialize"].is_null());
    assert_eq!(out["discover"]["supportedVersions"], json!([CURRENT]));
    assert_eq!(out["discover"]["resultType"], "complete");
    assert_eq!(out["server_info"]["name"], "ipai-integration-bus");
    assert!(out["capabilities"]["tools"].is_object());
    let names: Vec<&str> = out["tools"]
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
    for t in out["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
        assert_eq!(t["annotations"]["readOnlyHint"], true);
    }

    let calls = out["calls"].as_array().unwrap();
    for (i, c) in calls.iter().enumerate().take(17) {
        if i == 15 {
            continue; // the missing event, checked below
        }
        assert_eq!(c["is_error"], false, "call {i}: {c}");
        assert!(c["texts"][0].as_str().is_some_and(|t| !t.is_empty()));
    }

    // Expenses of E-0042: 3 events, 2 expenses, status and amount from each latest event.
    let e = &calls[0]["structured"];
    assert_eq!(e["total_matches"], 3);
    assert_eq!(
        event_types(&e["events"]),
        ["expense.submitted", "expense.approved", "expense.submitted"]
    );
    assert_eq!(e["events"][0]["aggregate_id"], "43");
    assert_eq!(e["events"][2]["outbox_status"], "done");
    assert_eq!(e["events"][1]["payload"]["status"], "approve");
    assert_eq!(e["summary"]["expenses"], 2);
    assert_eq!(
        e["summary"]["by_status"],
        json!({"approve": 1, "submit": 1})
    );
    assert_eq!(
        e["summary"]["total_amount_by_currency"],
        json!({"PHP": 1550.5})
    );
    assert_eq!(
        e["summary"]["amount_by_status"],
        json!({"approve": {"PHP": 1250.5}, "submit": {"PHP": 300.0}})
    );
    let text = calls[0]["texts"][0].as_str().unwrap();
    assert!(text.contains("totaling PHP 1550.50"), "{text}");
    assert!(
        text.contains("\"Client dinner - Makati\" for PHP 300.00"),
        "{text}"
    );
    // status=submit, limit 1: three matches, the newest returned.
    let s = &calls[1]["structured"];
    assert_eq!(
        (s["total_matches"].clone(), s["returned"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(s["truncated"], true);
    assert_eq!(s["events"][0]["aggregate_id"], "44");
    assert_eq!(
        s["summary"]["total_amount_by_currency"],
        json!({"PHP": 1550.5, "USD": 99.99})
    );
    // Date range: today holds all four expense events; 2020 none.
    assert_eq!(calls[2]["structured"]["total_matches"], 4);
    assert_eq!(calls[3]["structured"]["total_matches"], 0);
    assert_eq!(calls[3]["structured"]["events"], json!([]));

    // Assets.
    let a = &calls[4]["structured"];
    assert_eq!(a["total_matches"], 3);
    assert_eq!(a["summary"]["bookings"], 2);
    assert_eq!(a["summary"]["assets"], 2);
    assert_eq!(
        a["summary"]["bookings_by_current_state"],
        json!({"asset.overdue": 1, "asset.reserved": 1})
    );
    let o = &calls[5]["structured"];
    assert_eq!(event_types(&o["events"]), ["asset.overdue"]);
    assert_eq!(o["events"][0]["outbox_status"], "dead");
    assert_eq!(o["summary"]["max_escalation_level"], 2);
    assert_eq!(o["filters"]["event_type"], "asset.overdue");
    assert_eq!(calls[6]["structured"]["total_matches"], 2);

    // Finance.
    let fin = &calls[7]["structured"];
    assert_eq!(
        event_types(&fin["events"]),
        ["finance_task.filed", "finance_task.created"]
    );
    assert_eq!(
        fin["summary"]["bir_filings"],
        json!([{"bir_form": "1601-C", "period": "2026-10", "task_id": "9", "state": "finance_task.filed",
                "status": "done", "deadline": "2026-11-10"}])
    );
    let ops = &calls[8]["structured"];
    assert_eq!(ops["total_matches"], 1);
    assert_eq!(ops["summary"]["overdue_tasks"], 1);
    assert_eq!(ops["summary"]["max_days_overdue"], 5);

    // Across domains.
    let assets = &calls[9]["structured"];
    assert_eq!(assets["total_matches"], 3);
    assert!(assets["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e.get("payload").is_none()));
    assert_eq!(calls[10]["structured"]["total_matches"], 2);
    assert_eq!(
        event_types(&calls[11]["structured"]["events"]),
        ["finance_task.filed", "finance_task.created"]
    );
    let all = &calls[12]["structured"];
    assert_eq!(all["total_matches"], 10);
    assert_eq!(all["summary"]["by_event_type"]["expense.submitted"], 3);

    // One event with its outbox state, delivery, external id and history.
    let g = &calls[13]["structured"];
    assert_eq!(g["event"]["id"], ids["exp-42-submitted"]);
    assert_eq!(g["event"]["idempotency_key"], "exp-42-submitted");
    assert_eq!(
        g["event"]["payload"]["description"],
        "Client dinner - Makati"
    );
    assert_eq!(g["outbox"]["status"], "done");
    assert_eq!(g["outbox"]["attempts"], 1);
    assert_eq!(g["deliveries"][0]["channel"], "mattermost");
    assert_eq!(g["deliveries"][0]["response_code"], 200);
    assert_eq!(g["external_ids"][0]["external_id"], "post-abc");
    assert_eq!(
        event_types(&g["aggregate_history"]),
        ["expense.approved", "expense.submitted"]
    );
    let dead = &calls[14]["structured"];
    assert_eq!(dead["event"]["id"], ids["asset-7-overdue"]);
    assert_eq!(dead["outbox"]["status"], "dead");
    assert!(dead["outbox"]["last_error"]
        .as_str()
        .unwrap()
        .contains("HTTP 500"));
    assert_eq!(calls[15]["is_error"], true);
    assert_eq!(calls[15]["structured"]["error"], "not_found");

    // The queue: 7 pending + 1 failed, 1 done, 1 dead.
    let h = &calls[16]["structured"];
    assert_eq!(h["queue_depth"], 8);
    assert_eq!(h["by_status"]["pending"]["count"], 7);
    assert_eq!(h["by_status"]["failed"]["count"], 1);
    assert_eq!(h["by_status"]["done"]["count"], 1);
    assert_eq!(h["dead"], 1);
    assert_eq!(h["dead_letters"][0]["id"], ids["asset-7-overdue"]);
    assert!(h["oldest_pending_age_seconds"].as_f64().is_some());
    assert!(h["next_retry_at"].as_str().is_some());

    // Invalid arguments are a tool error the model can read; an unknown tool is -32602.
    assert_eq!(calls[17]["is_error"], true);
    assert_eq!(calls[17]["structured"]["error"], "invalid_arguments");
    assert!(calls[17]["texts"][0].as_str().unwrap().contains("'colour'"));
    assert_eq!(calls[18]["error"]["code"], -32602, "{}", calls[18]);
    assert!(calls[18]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("delete_everything"));

    // The dry run of a replay: the dead asset event and the failed finance event.
    assert_eq!(calls[19]["is_error"], false, "{}", calls[19]);
    let replay = &calls[19]["structured"];
    assert_eq!(replay["matched"], 2, "{replay}");
    assert_eq!(replay["by_status"], json!({"dead": 1, "failed": 1}));
    assert_eq!(replay["executed"], false);

    // Nothing was written by any of it.
    assert_eq!(f.db.count("event_log").await, 10);
    assert_eq!(f.db.count("outbox").await, 10);
    assert_eq!(f.db.count("deliveries").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_each_2025_revision_negotiate_and_call_every_tool() {
    let f = quiet_fixture().await;
    let ids = seed(&f).await;
    let calls = json!([
        {"name": "query_expense_events", "arguments": {"employee_code": "E-0042"}},
        {"name": "query_asset_events", "arguments": {"event_type": "asset.overdue"}},
        {"name": "query_finance_events", "arguments": {"bir_form": "1601-C"}},
        {"name": "query_events", "arguments": {"event_type": "expense."}},
        {"name": "get_event", "arguments": {"id": ids["exp-42-submitted"]}},
        {"name": "outbox_health", "arguments": {"dead_letter_limit": 5}},
    ]);
    for rev in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let plan = json!({"url": f.sys.url("/mcp"), "token": TEST_MCP_TOKEN, "revision": rev, "calls": calls});
        let out = python("mcp_client_2025.py", &plan).await;
        let structured = rev != "2025-03-26";

        // The official SDK, legacy mode: initialize offering `rev`, then everything else.
        let sdk = &out["sdk"];
        assert_eq!(sdk["protocol_version"], rev, "{rev}: {sdk}");
        assert!(sdk["discover"].is_null());
        assert_eq!(sdk["initialize"]["protocolVersion"], rev);
        assert_eq!(
            sdk["initialize"]["serverInfo"]["name"],
            "ipai-integration-bus"
        );
        assert_eq!(sdk["ping"], json!({}), "{rev}");
        assert_eq!(
            sdk["tools"].as_array().unwrap().len(),
            9,
            "six query tools, list_alerts, reconcile_status and replay_preview"
        );
        assert_eq!(
            sdk["tools"][0].get("outputSchema").is_some(),
            structured,
            "{rev}"
        );
        let sc = sdk["calls"].as_array().unwrap();
        assert_eq!(sc.len(), 6);
        for c in sc {
            assert_eq!(c["is_error"], false, "{rev}: {c}");
            assert_eq!(!c["structured"].is_null(), structured, "{rev}: {c}");
        }
        assert_eq!(data_of(&sc[0])["total_matches"], 3, "{rev}");
        assert_eq!(
            data_of(&sc[0])["summary"]["total_amount_by_currency"]["PHP"],
            1550.5
        );
        assert_eq!(data_of(&sc[1])["events"][0]["outbox_status"], "dead");
        assert_eq!(data_of(&sc[2])["summary"]["tasks"], 1);
        assert_eq!(data_of(&sc[3])["total_matches"], 4);
        assert_eq!(data_of(&sc[4])["deliveries"][0]["target"], "town-square");
        assert_eq!(
            data_of(&sc[5])["dead_letters"][0]["id"],
            ids["asset-7-overdue"]
        );

        // Hand-written JSON-RPC over HTTP.
        let raw = &out["raw"];
        assert_eq!(raw["initialize"]["status"], 200);
        assert_eq!(raw["initialize"]["body"]["result"]["protocolVersion"], rev);
        assert!(
            raw["initialize"]["session_id"].is_null(),
            "stateless: no session"
        );
        assert!(raw["initialize"]["body"]["result"]
            .get("resultType")
            .is_none());
        assert_eq!(
            (
                raw["initialized"]["status"].clone(),
                raw["initialized"]["body_bytes"].clone()
            ),
            (json!(202), json!(0))
        );
        assert_eq!(raw["ping"]["body"]["result"], json!({}));
        let listed = &raw["tools_list"]["body"]["result"]["tools"];
        assert_eq!(listed.as_array().unwrap().len(), 9);
        for c in raw["calls"].as_array().unwrap() {
            assert_eq!(c["status"], 200);
            assert_eq!(c["body"]["result"]["isError"], false, "{rev}: {c}");
            assert_eq!(
                c["body"]["result"].get("structuredContent").is_some(),
                structured
            );
            assert!(c["body"]["result"].get("resultType").is_none());
        }
        assert_eq!(raw["unknown_method"]["status"], 200);
        assert_eq!(raw["unknown_method"]["body"]["error"]["code"], -32601);
        assert_eq!(raw["unknown_tool"]["body"]["error"]["code"], -32602);
        assert_eq!(raw["get"]["status"], 405);
        assert_eq!(raw["get"]["allow"], "POST");
        if rev == "2025-03-26" {
            let b = &raw["batch"];
            assert_eq!(b["status"], 200);
            let replies = b["body"].as_array().expect("batch reply");
            assert_eq!(replies.len(), 2, "the notification gets no reply");
            assert_eq!(replies[0]["id"], "b1");
            assert_eq!(replies[1]["result"]["isError"], false);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_shaped_filter_values_return_empty_results() {
    let f = quiet_fixture().await;
    seed(&f).await;
    // Positive control: the same filters with real values do match.
    let ok = tool(
        &f,
        "query_expense_events",
        json!({"employee_code": "E-0042"}),
    )
    .await;
    assert_eq!(ok["structuredContent"]["total_matches"], 3);

    let evil = [
        "E-0042' OR '1'='1",
        "E-0042'; DELETE FROM integration.outbox; --",
        "x'); UPDATE integration.outbox SET status = 'done'; --",
        "' UNION SELECT payload::text FROM integration.event_log --",
        "$$ OR TRUE $$",
        "%",
        "expense.%",
    ];
    for v in evil {
        for (name, args) in [
            ("query_expense_events", json!({"employee_code": v})),
            ("query_expense_events", json!({"status": v})),
            (
                "query_asset_events",
                json!({"asset_code": v, "booking_id": v}),
            ),
            ("query_finance_events", json!({"bir_form": v})),
            ("query_finance_events", json!({"responsible_email": v})),
            ("query_events", json!({"event_type": v})),
            ("query_events", json!({"aggregate_id": v})),
            (
                "query_events",
                json!({"payload_field": v, "payload_value": "submit"}),
            ),
            (
                "query_events",
                json!({"payload_field": "employee_code", "payload_value": v}),
            ),
        ] {
            let r = tool(&f, name, args.clone()).await;
            assert_eq!(r["isError"], false, "{name} {args}: {r}");
            let s = &r["structuredContent"];
            assert_eq!(s["total_matches"], 0, "{name} {args}: {s}");
            assert_eq!(s["events"], json!([]), "{name} {args}");
        }
        let r = tool(&f, "get_event", json!({"idempotency_key": v})).await;
        assert_eq!(r["structuredContent"]["error"], "not_found", "{v}");
    }
    // A malformed id is a validation error, not SQL.
    let r = tool(&f, "get_event", json!({"id": "1' OR '1'='1"})).await;
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["error"], "invalid_arguments");
    // Nothing changed.
    assert_eq!(f.db.count("outbox").await, 10);
    assert_eq!(f.db.count("event_log").await, 10);
    let pending: i64 =
        f.db.client
            .query_one(
                "SELECT count(*) FROM integration.outbox WHERE status = 'pending'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(pending, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_json_rpc_errors_with_the_right_status() {
    let f = quiet_fixture().await;
    let a = auth();
    let bearer = [("authorization", a.as_str())];

    // 2026-07-28: unknown method → 404 / -32601; ping is gone in this revision.
    for m in ["resources/list", "ping"] {
        let (status, v) = modern(&f, m, json!({})).await;
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (404, json!(-32601)),
            "{m}: {v}"
        );
        assert_eq!(v["id"], 1);
    }
    // Unknown tool and bad params → 400 / -32602.
    for params in [
        json!({"name": "drop_tables", "arguments": {}}),
        json!({"name": "query_events", "arguments": "employee_code=E-0042"}),
        json!({"arguments": {}}),
    ] {
        let (status, v) = modern(&f, "tools/call", params.clone()).await;
        assert_eq!(
            (status, v["error"]["code"].clone()),
            (400, json!(-32602)),
            "{params}: {v}"
        );
    }
    // Missing _meta envelope → -32602.
    let (status, _, v) = post(
        &f,
        &[
            ("authorization", a.as_str()),
            ("mcp-protocol-version", CURRENT),
            ("mcp-method", "tools/list"),
        ],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (400, json!(-32602)),
        "{v}"
    );
    // Header and body disagree → -32020.
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": CURRENT,
        "io.modelcontextprotocol/clientCapabilities": {}}}});
    let (status, _, v) = post(
        &f,
        &[
            ("authorization", a.as_str()),
            ("mcp-protocol-version", CURRENT),
            ("mcp-method", "tools/call"),
        ],
        &body.to_string(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (400, json!(-32020)),
        "{v}"
    );
    // An unknown version → -32022 naming the supported ones.
    let (status, _, v) = post(
        &f,
        &[
            ("authorization", a.as_str()),
            ("mcp-protocol-version", "2099-01-01"),
        ],
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (400, json!(-32022)),
        "{v}"
    );
    assert_eq!(
        v["error"]["data"]["supported"],
        json!([CURRENT, "2025-11-25", "2025-06-18", "2025-03-26"])
    );
    // Parse error and invalid request.
    let (status, _, v) = post(&f, &bearer, r#"{"jsonrpc": "2.0", "id": 5, "method": "#).await;
    assert_eq!((status, v["error"]["code"].clone()), (400, json!(-32700)));
    assert!(v["id"].is_null());
    let (status, _, v) = post(&f, &bearer, r#"{"jsonrpc":"1.0","id":6,"method":"ping"}"#).await;
    assert_eq!(
        (status, v["error"]["code"].clone(), v["id"].clone()),
        (400, json!(-32600), json!(6))
    );
    // 2025: unknown method is an in-protocol error (200) with -32601.
    let (status, _, v) = post(
        &f,
        &[
            ("authorization", a.as_str()),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}}"#,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (200, json!(-32601)),
        "{v}"
    );
    // Notifications: 202 with no body.
    let (status, _, v) = post(
        &f,
        &[
            ("authorization", a.as_str()),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!((status, v), (202, Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_needs_the_bearer_token_and_post() {
    // The real manifest, as deployed.
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/mcp");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;

    let r = f
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    for bad in [
        "Bearer wrong-token",
        "Basic dGVzdC1tY3AtdG9rZW4=",
        TEST_MCP_TOKEN,
    ] {
        let r = f
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("authorization", bad)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{bad}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = f
            .http
            .request(method.clone(), &url)
            .bearer_auth(TEST_MCP_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "POST");
    }
    let r = f
        .http
        .post(&url)
        .header("content-type", "application/json")
        .bearer_auth(TEST_MCP_TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!r.headers().contains_key("mcp-session-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_use_the_read_only_connection() {
    // With db_url_readonly pointing at a role that does not exist, tools cannot read
    // although db_url (ingest's) works: the component never falls back to db_url.
    let f = Fixture::with_manifest(manifest::variant(manifest::without_cron), |v| {
        v.insert("dispatch_kick".into(), "off".into());
        let broken = ipai_tests::runtime::url_as(&v["db_url_readonly"], "no_such_role_mcp");
        v.insert("db_url_readonly".into(), broken);
    })
    .await
    .unwrap();
    seed(&f).await;
    let r = tool(&f, "query_events", json!({})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["error"], "database_unavailable");
    assert!(
        !r.to_string().contains("no_such_role_mcp"),
        "no connection details leak"
    );

    // With the real read-only URL, the pooled connection the call leaves behind belongs
    // to the read-only role (the test's own, a member of integration_reader).
    let f = quiet_fixture().await;
    let r = tool(&f, "outbox_health", json!({})).await;
    assert_eq!(r["isError"], false, "{r}");
    let users: Vec<String> = f.db.column("SELECT DISTINCT usename::text FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&f.db.name]).await;
    assert!(
        users.contains(&f.db.roles.reader),
        "no read-only session on the test database: {users:?}"
    );
    assert_eq!(
        readonly_url("postgres://postgres@h:1/d?x=1"),
        "postgres://integration_reader@h:1/d?x=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_event_finds_an_event_whose_outbox_row_was_purged() {
    let f = quiet_fixture().await;
    let ids = seed(&f).await;
    // Retention deletes done outbox rows; the audit log keeps the event.
    f.db.client
        .execute(
            "DELETE FROM integration.outbox WHERE id = $1",
            &[&ids["exp-42-submitted"].parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    for args in [
        json!({"idempotency_key": "exp-42-submitted"}),
        json!({"id": ids["exp-42-submitted"]}),
    ] {
        let r = tool(&f, "get_event", args.clone()).await;
        assert_eq!(r["isError"], false, "{args}: {r}");
        let s = &r["structuredContent"];
        assert_eq!(s["event"]["id"], ids["exp-42-submitted"]);
        assert!(s["outbox"].is_null(), "{s}");
        assert_eq!(s["deliveries"][0]["channel"], "mattermost");
    }
    let r = tool(
        &f,
        "query_expense_events",
        json!({"employee_code": "E-0042"}),
    )
    .await;
    let events = &r["structuredContent"]["events"];
    assert_eq!(events[2]["id"], ids["exp-42-submitted"]);
    assert!(events[2]["outbox_status"].is_null());
    let r = tool(&f, "outbox_health", json!({})).await;
    assert_eq!(r["structuredContent"]["by_status"]["done"]["count"], 0);
}

/// Issue #38 (SPEC §12): `replay_preview` plans a replay of a dead event — its recorded
/// email skipped, its calendar event to run — and changes nothing: the outbox row stays
/// dead and no replay is begun. A refused filter is a tool error naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_preview_plans_a_replay_of_dead_events_and_changes_nothing() {
    let f = quiet_fixture().await;
    let booking = json!({"booking_id": 8, "asset_id": 4, "asset_code": "PRJ-004",
                         "asset_name": "Projector", "employee_id": 12,
                         "employee_name": "Ben Reyes", "employee_email": "ben@example.ph",
                         "start": "2026-11-20T01:00:00Z", "end": "2026-11-22T09:00:00Z",
                         "location": "Makati", "status": "reserved"});
    let dead = f
        .ingest(
            "rp-asset-8-reserved",
            &event("asset.reserved", "asset_booking", json!(8), booking),
        )
        .await;
    let pending = f
        .ingest(
            "rp-exp-50-submitted",
            &event(
                "expense.submitted",
                "expense",
                json!("50"),
                json!({"expense_id": 50, "employee_code": "E-0050", "amount": 10.0,
                       "currency": "PHP", "description": "Taxi", "status": "submit"}),
            ),
        )
        .await;
    assert!(!dead.is_empty() && !pending.is_empty());
    let dead_id: uuid::Uuid = dead.parse().expect("uuid");
    let c = &f.db.client;
    c.execute(
        "UPDATE integration.outbox SET status = 'dead', attempts = 10,
                last_error = 'google_calendar: HTTP 500' WHERE id = $1",
        &[&dead_id],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO integration.deliveries (event_id, channel, target, status, response_code, detail)
         VALUES ($1, 'email', 'ben@example.ph', 'sent', 200, 'confirmation sent')",
        &[&dead_id],
    )
    .await
    .unwrap();

    let r = tool(&f, "replay_preview", json!({"status": "dead"})).await;
    assert_eq!(r["isError"], false, "{r}");
    let s = &r["structuredContent"];
    assert_eq!(s["matched"], 1, "{s}");
    assert_eq!(s["followers"], 0, "{s}");
    assert_eq!(s["by_status"], json!({"dead": 1}), "{s}");
    assert_eq!(s["executed"], false, "{s}");
    let events = s["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{s}");
    assert_eq!(events[0]["id"], dead, "{s}");
    assert_eq!(events[0]["event_type"], "asset.reserved");
    assert_eq!(events[0]["status"], "dead");
    assert_eq!(events[0]["skip"], json!(["email:ben@example.ph"]), "{s}");
    assert_eq!(
        events[0]["run"],
        json!(["google_calendar:booking/8"]),
        "{s}"
    );
    let text = r["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("Dry run, nothing was changed"), "{text}");
    // The pending expense is on its way already: never selected.
    let r = tool(
        &f,
        "replay_preview",
        json!({"type": "expense.*", "status": "dead,failed,done"}),
    )
    .await;
    assert_eq!(r["structuredContent"]["matched"], 0, "{r}");

    // Nothing changed: the row is still dead with its attempts, no replay was begun, the
    // ledger is as it was.
    let row = c
        .query_one(
            "SELECT status::text, attempts FROM integration.outbox WHERE id = $1",
            &[&dead_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "dead");
    assert_eq!(row.get::<_, i32>(1), 10);
    let replays: i64 = c
        .query_one("SELECT count(*) FROM integration.replays", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(replays, 0, "a preview begins no replay");
    let deliveries: i64 = c
        .query_one(
            "SELECT count(*) FROM integration.deliveries WHERE event_id = $1",
            &[&dead_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(deliveries, 1);

    for (arguments, field) in [
        (json!({"status": "pending"}), "status: "),
        (json!({"since": "yesterday"}), "since: "),
        (json!({"redo_effects": "odoo"}), "redo_effects: "),
    ] {
        let r = tool(&f, "replay_preview", arguments.clone()).await;
        assert_eq!(r["isError"], true, "{arguments}: {r}");
        let text = r["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains(field), "{arguments}: {text}");
        assert_eq!(r["structuredContent"]["error"], "invalid_arguments");
    }
}
