//! Route-level tests of `/ops/replay` (SPEC §12) with the scripted database of
//! `tests.rs`, answering `ipai_replay`'s statements as the migration's functions would.

use super::*;
use ipai_replay::{BEGIN_SQL, PAGE_SQL, RECENT_SQL, STEP_SQL, SUMMARY_SQL};
use routes::replay::MAX_STEPS;

/// What the `integration.replay_*` functions answer.
#[derive(Default)]
pub(super) struct FakeReplay {
    summary: Option<Value>,
    /// Each `replay_page` call answers the next (then `[]`).
    pages: Vec<Value>,
    begin: Option<Value>,
    /// Each `replay_step` call answers the next (then: nothing left, finished).
    steps: Vec<Value>,
    recent: Option<Value>,
}

impl FakeReplay {
    pub(super) fn serves(sql: &str) -> bool {
        [PAGE_SQL, SUMMARY_SQL, BEGIN_SQL, STEP_SQL, RECENT_SQL].contains(&sql)
    }

    pub(super) fn answer(&mut self, sql: &str) -> Option<Value> {
        let next = |v: &mut Vec<Value>, then: Value| {
            if v.is_empty() {
                then
            } else {
                v.remove(0)
            }
        };
        match sql {
            SUMMARY_SQL => self.summary.clone(),
            PAGE_SQL => Some(next(&mut self.pages, json!([]))),
            BEGIN_SQL => self.begin.clone(),
            STEP_SQL => Some(next(
                &mut self.steps,
                json!({"processed": 0, "requeued": 0, "redone": 0, "remaining": 0, "finished": true}),
            )),
            RECENT_SQL => self.recent.clone(),
            _ => None,
        }
    }
}

/// A parameter as the text the fake records (`ipai_replay` binds numbers and JSON too).
pub(super) fn shown(p: &Param) -> String {
    match p {
        Param::Text(s) => s.clone(),
        Param::Int(n) => n.to_string(),
        Param::Json(v) => v.to_string(),
    }
}

const EVENT_1: &str = "6be0c80e-fa6a-4810-9f3b-b7d874e04f65";
const EVENT_2: &str = "7ce0c80e-fa6a-4810-9f3b-b7d874e04f66";

/// A row of `replay_page`: an asset reservation whose email the ledger records sent.
fn page_row(id: &str, seq: i64, event_type: &str, follower: bool) -> Value {
    json!({"id": id, "seq": seq, "event_type": event_type,
           "aggregate_type": "asset_booking", "aggregate_id": "501",
           "payload": {"booking_id": 501, "asset_name": "Projector", "employee_name": "Juan",
                       "employee_email": "juan@example.com",
                       "start": "2026-11-27T01:00:00Z", "end": "2026-11-27T09:00:00Z"},
           "idempotency_key": "k", "source": "odoo", "occurred_at": null,
           "created_at": "2026-12-07T08:00:00Z", "status": if follower { "done" } else { "dead" },
           "follower": follower, "recorded": {"email:juan@example.com": "sent"}})
}

fn audit_rows() -> Value {
    json!([
        {"id": 8, "requested_by": "ops@203.0.113.7", "via": "ops",
         "filter": {"statuses": ["dead"], "type_like": "asset.%"}, "redo_effects": ["email"],
         "matched": 2, "followers": 1, "requeued": 3, "redone": 1,
         "started_at": "2026-12-07T09:00:00.123456+00:00", "finished_at": null},
        {"id": 7, "requested_by": "maria@ops-host", "via": "cli",
         "filter": {"statuses": ["dead", "failed"]}, "redo_effects": [],
         "matched": 5, "followers": 0, "requeued": 5, "redone": 0,
         "started_at": "2026-12-07T08:00:00+00:00", "finished_at": "2026-12-07T08:00:01.5+00:00"}
    ])
}

fn replay_db() -> FakeDb {
    FakeDb {
        replay: FakeReplay {
            summary: Some(json!({"matched": 2, "followers": 1, "by_status": {"dead": 2}})),
            pages: vec![json!([
                page_row(EVENT_1, 11, "asset.reserved", false),
                page_row(EVENT_2, 12, "asset.reserved", false),
                page_row(
                    "8de0c80e-fa6a-4810-9f3b-b7d874e04f67",
                    13,
                    "asset.reserved",
                    true
                ),
            ])],
            begin: Some(
                json!({"replay": 9, "resumed": false, "matched": 2, "followers": 1, "remaining": 3}),
            ),
            steps: vec![
                json!({"processed": 3, "requeued": 3, "redone": 1, "remaining": 0, "finished": true}),
            ],
            recent: Some(audit_rows()),
        },
        ..Default::default()
    }
}

fn with_session(mut r: Request) -> Request {
    r.headers.push((
        "cookie".into(),
        format!("{}={SESSION}", csrf::SESSION_COOKIE),
    ));
    r
}

fn get(path_and_query: &str) -> Request {
    basic(req("GET", path_and_query), "pw")
}

/// A confirm POST with `token` and the form `fields`, plus `extra` headers.
fn confirm(token: &str, fields: &str, extra: &[(&str, &str)]) -> Request {
    let mut r = with_session(basic(req("POST", "/ops/replay"), "pw"));
    for (k, v) in extra {
        r.headers.push((k.to_string(), v.to_string()));
    }
    r.body = format!("csrf={token}&{fields}").into_bytes();
    r
}

fn sqls(db: &FakeDb) -> Vec<&str> {
    db.calls.iter().map(|(s, _)| s.as_str()).collect()
}

#[test]
fn the_form_renders_with_the_audit_and_opens_a_session() {
    let mut db = replay_db();
    let r = handle(&get("/ops/replay"), &cfg(), &mut db);
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    for name in routes::replay::FIELDS {
        assert!(
            html.contains(&format!("name=\"{name}\" value=\"\"")),
            "{name}"
        );
    }
    assert!(html.contains("action=\"/ops/replay\" id=\"filter-form\""));
    assert!(!html.contains("id=\"plan\""), "no filter, no plan");
    assert!(!html.contains("id=\"confirm\""));
    assert!(html.contains("id=\"audit\""));
    assert_eq!(sqls(&db), vec![RECENT_SQL], "only the audit is read");
    assert_eq!(db.calls[0].1, vec!["20".to_string()]);
    let session = csrf::new_session(&[7; 16]);
    assert!(r
        .header("set-cookie")
        .unwrap()
        .starts_with(&format!("{}={session};", csrf::SESSION_COOKIE)));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("form-action 'self'"));
    // An existing session is kept; HEAD has no body; other methods are 405.
    let r = handle(&with_session(get("/ops/replay")), &cfg(), &mut db);
    assert_eq!(r.header("set-cookie"), None);
    let r = handle(&basic(req("HEAD", "/ops/replay"), "pw"), &cfg(), &mut db);
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = handle(&basic(req("PUT", "/ops/replay"), "pw"), &cfg(), &mut db);
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, POST"))
    );
    // Behind the dashboard's Basic auth, before any statement.
    let mut db = replay_db();
    assert_eq!(
        handle(&req("GET", "/ops/replay"), &cfg(), &mut db).status,
        401
    );
    assert!(db.calls.is_empty());
}

#[test]
fn the_dashboard_links_to_the_replay_page() {
    let mut db = FakeDb {
        dashboard: Some(dashboard_json()),
        ..Default::default()
    };
    let r = handle(&get("/ops"), &cfg(), &mut db);
    assert!(r.text().contains("href=\"/ops/replay\""), "{}", r.text());
    assert!(r.text().contains("Replay…"));
}

#[test]
fn a_filter_shows_the_plan_of_its_events_with_a_confirm_form() {
    let mut db = replay_db();
    let r = handle(
        &with_session(get(
            "/ops/replay?type=asset.*&aggregate=&since=&until=&status=dead&target=&redo_effects=email",
        )),
        &cfg(),
        &mut db,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains("data-testid=\"matched\">2<"), "{html}");
    assert!(html.contains("data-testid=\"followers\">1<"));
    assert!(html.contains("data-testid=\"status-dead\">2<"));
    for id in [EVENT_1, EVENT_2] {
        assert!(html.contains(&format!("class=\"plan-row\" data-event-id=\"{id}\"")));
    }
    assert!(html.contains("done · follows"), "the follower is marked");
    // The redone email runs for matched events; the follower's stays skipped.
    assert!(html.contains("email:juan@example.com"));
    assert!(html.contains("data-testid=\"effects-skip\">1<"), "{html}");
    // The form keeps the filter; the confirm form carries it with this session's token.
    assert!(html.contains("name=\"type\" value=\"asset.*\""));
    let confirm = &html[html.find("id=\"confirm\"").expect("a confirm form")..];
    assert!(confirm.contains(&format!(
        "name=\"csrf\" value=\"{}\"",
        csrf::token("pw", SESSION, NOW)
    )));
    assert!(confirm.contains("type=\"hidden\" name=\"type\" value=\"asset.*\""));
    assert!(confirm.contains("type=\"hidden\" name=\"status\" value=\"dead\""));
    assert!(confirm.contains("type=\"hidden\" name=\"redo_effects\" value=\"email\""));
    assert!(confirm.contains("Replay 2 event(s) and 1 follower(s)"));
    // The checked filter went to SQL; the first 200 events were asked for, the matched
    // ones and then (the summary counts one) the followers.
    let filter = json!({"statuses": ["dead"], "type_like": "asset.%"}).to_string();
    assert_eq!(sqls(&db), vec![SUMMARY_SQL, PAGE_SQL, PAGE_SQL, RECENT_SQL]);
    assert_eq!(db.calls[0].1, vec![filter.clone()]);
    assert_eq!(
        db.calls[1].1,
        vec![filter.clone(), "0".into(), "200".into(), "false".into()]
    );
    assert_eq!(db.calls[2].1[3], "true");

    // Nothing matching: no confirm button.
    let mut db = replay_db();
    db.replay.summary = Some(json!({"matched": 0, "followers": 0, "by_status": {}}));
    db.replay.pages = vec![];
    let html = handle(&get("/ops/replay?status=done"), &cfg(), &mut db).text();
    assert!(html.contains("id=\"nothing\""), "{html}");
    assert!(!html.contains("id=\"confirm\""));

    // As JSON: the plan and the audit.
    let mut db = replay_db();
    let mut r = get("/ops/replay?type=asset.*");
    r.headers.push(("accept".into(), "application/json".into()));
    let v: Value = serde_json::from_slice(&handle(&r, &cfg(), &mut db).body).unwrap();
    assert_eq!(v["plan"]["matched"], 2);
    assert_eq!(v["plan"]["events"][0]["id"], EVENT_1);
    assert_eq!(v["replays"][0]["id"], 8);
}

#[test]
fn a_refused_filter_is_400_naming_the_field_before_any_sql() {
    for (query, field) in [
        ("since=yesterday", "since"),
        ("status=pending", "status"),
        ("type=expense.%27%3B+drop", "type"),
        ("target=payroll", "target"),
        ("redo_effects=odoo", "redo-effects"),
    ] {
        let mut db = replay_db();
        let r = handle(&get(&format!("/ops/replay?{query}")), &cfg(), &mut db);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let html = r.text();
        assert!(
            html.contains(&format!("data-field=\"{field}\">{field}: ")),
            "{query}: {html}"
        );
        assert!(html.contains("id=\"filter-form\""), "the form again");
        assert!(db.calls.is_empty(), "{query}: {:?}", db.calls);

        let mut r = get(&format!("/ops/replay?{query}"));
        r.headers.push(("accept".into(), "application/json".into()));
        let r = handle(&r, &cfg(), &mut db);
        assert_eq!(r.status, 400);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_filter");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{v}"
        );
    }
    // A confirm with a refused field is 400 too, and replays nothing.
    let mut db = replay_db();
    let token = csrf::token("pw", SESSION, NOW);
    let r = handle(&confirm(&token, "status=pending", &[]), &cfg(), &mut db);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("status: "));
    assert!(db.calls.is_empty());
}

#[test]
fn a_confirm_without_a_valid_token_or_from_another_site_is_403() {
    let mut db = replay_db();
    let good = csrf::token("pw", SESSION, NOW);
    let cases = [
        confirm("", "type=asset.*", &[]),
        confirm("123.deadbeef", "type=asset.*", &[]),
        confirm(&csrf::token("other", SESSION, NOW), "type=asset.*", &[]),
        confirm(&good, "type=asset.*", &[("origin", "https://evil.example")]),
        confirm(&good, "type=asset.*", &[("sec-fetch-site", "cross-site")]),
        {
            let mut r = confirm(&good, "type=asset.*", &[]);
            r.headers.retain(|(k, _)| k != "cookie");
            r
        },
        {
            let mut r = confirm(&good, "type=asset.*", &[]);
            r.body = b"type=asset.*".to_vec();
            r
        },
    ];
    for r in cases {
        let resp = handle(&r, &cfg(), &mut db);
        assert_eq!(resp.status, 403, "{:?} → {}", r.headers, resp.text());
    }
    let r = confirm("", "type=asset.*", &[("accept", "application/json")]);
    let resp = handle(&r, &cfg(), &mut db);
    assert_eq!(
        serde_json::from_slice::<Value>(&resp.body).unwrap()["error"],
        "csrf_rejected"
    );
    assert!(db.calls.is_empty(), "nothing was replayed: {:?}", db.calls);
    // Without Basic auth: 401 before the token is looked at.
    let mut r = confirm(&good, "type=asset.*", &[]);
    r.headers.retain(|(k, _)| k != "authorization");
    assert_eq!(handle(&r, &cfg(), &mut db).status, 401);
}

#[test]
fn a_confirm_with_the_pages_token_replays_as_the_ops_user_and_redirects() {
    let mut db = replay_db();
    let token = csrf::token("pw", SESSION, NOW - 60);
    let r = handle(
        &confirm(
            &token,
            "type=asset.*&aggregate=&since=&until=&status=dead&target=&redo_effects=email",
            &[
                ("origin", "http://127.0.0.1:3000"),
                ("sec-fetch-site", "same-origin"),
                ("spin-client-addr", "203.0.113.7:50123"),
            ],
        ),
        &cfg(),
        &mut db,
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/ops/replay?done=9"));
    assert_eq!(sqls(&db), vec![BEGIN_SQL, STEP_SQL]);
    assert_eq!(
        db.calls[0].1,
        vec![
            "ops@203.0.113.7".to_string(),
            "ops".into(),
            json!({"statuses": ["dead"], "type_like": "asset.%"}).to_string(),
            json!(["email"]).to_string()
        ]
    );
    assert_eq!(db.calls[1].1, vec!["9".to_string(), "500".into()]);

    // As JSON: the outcome.
    let mut db = replay_db();
    let r = handle(
        &confirm(&token, "type=asset.*", &[("accept", "application/json")]),
        &cfg(),
        &mut db,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        json!({"id": 9, "resumed": false, "matched": 2, "followers": 1, "requeued": 3,
               "redone": 1, "remaining": 0, "finished": true})
    );
    assert_eq!(
        db.calls[0].1[0], "ops@unknown",
        "no client address: unknown"
    );
}

#[test]
fn one_confirm_runs_a_bounded_number_of_steps_and_leaves_the_rest_resumable() {
    let mut db = replay_db();
    db.replay.steps = vec![
        json!({"processed": 500, "requeued": 500, "redone": 0, "remaining": 1, "finished": false});
        MAX_STEPS + 10
    ];
    let token = csrf::token("pw", SESSION, NOW);
    let r = handle(&confirm(&token, "status=dead", &[]), &cfg(), &mut db);
    assert_eq!(r.status, 303);
    let steps = sqls(&db).iter().filter(|s| **s == STEP_SQL).count();
    assert_eq!(steps, MAX_STEPS);
}

#[test]
fn a_database_error_is_503_with_retry_after() {
    let token = csrf::token("pw", SESSION, NOW);
    let mut down_after_auth = DownAfterAuth(FakeDb {
        down: true,
        ..replay_db()
    });
    let r = handle(
        &confirm(&token, "status=dead", &[]),
        &cfg(),
        &mut down_after_auth,
    );
    assert_eq!((r.status, r.header("retry-after")), (503, Some("5")));
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["error"],
        "database_unavailable"
    );
    let r = handle(
        &get("/ops/replay?status=dead"),
        &cfg(),
        &mut down_after_auth,
    );
    assert_eq!((r.status, r.header("retry-after")), (503, Some("5")));
    assert!(r.text().contains("Database unreachable"), "{}", r.text());
    let r = handle(&get("/ops/replay"), &cfg(), &mut down_after_auth);
    assert_eq!(r.status, 503);
}

/// A database whose login throttle answers and whose every other statement fails.
struct DownAfterAuth(FakeDb);

impl Database for DownAfterAuth {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        if sql == auth::AUTH_ATTEMPT_SQL {
            return Ok(Some(json!(0)));
        }
        self.0.query_value(sql, params)
    }
}

#[test]
fn the_audit_lists_recent_replays_and_the_done_notice_names_one() {
    let mut db = replay_db();
    let html = handle(&get("/ops/replay?done=8"), &cfg(), &mut db).text();
    let row = |id: &str| {
        let at = html
            .find(&format!("data-replay-id=\"{id}\""))
            .unwrap_or_else(|| panic!("row {id}: {html}"));
        html[at..].split("</tr>").next().unwrap().to_string()
    };
    let ops = row("8");
    for cell in [
        "<td>ops@203.0.113.7</td>",
        "<td>ops</td>",
        "{&quot;statuses&quot;:[&quot;dead&quot;],&quot;type_like&quot;:&quot;asset.%&quot;}",
        "<td>email</td>",
        "<td>2</td><td>1</td><td>3</td><td>1</td>",
        "<td>2026-12-07 09:00:00+00:00</td>",
        "<td>unfinished</td>",
    ] {
        assert!(ops.contains(cell), "{cell} in {ops}");
    }
    let cli = row("7");
    assert!(cli.contains("<td>maria@ops-host</td><td>cli</td>"), "{cli}");
    assert!(cli.contains("<td>2026-12-07 08:00:01+00:00</td>"), "{cli}");
    // Newest first, as the database answered.
    assert!(html.find("data-replay-id=\"8\"") < html.find("data-replay-id=\"7\""));
    let notice = &html[html.find("id=\"notice\"").expect("a notice")..];
    assert!(notice.starts_with("id=\"notice\">Replay #8: 3 event(s) requeued"));
    assert!(notice.contains("Unfinished"));

    db.replay.recent = Some(json!([]));
    let html = handle(&get("/ops/replay"), &cfg(), &mut db).text();
    assert!(html.contains("No replay yet."));
}

#[test]
fn hostile_values_from_the_database_and_the_request_are_escaped() {
    let hostile = "<script>alert(1)</script>\"'&";
    let mut db = replay_db();
    let mut row = page_row(EVENT_1, 11, hostile, false);
    row["aggregate_id"] = json!(hostile);
    row["recorded"] = json!({format!("mattermost:{hostile}"): "sent"});
    db.replay.pages = vec![json!([row])];
    let mut audit = audit_rows();
    audit[0]["requested_by"] = json!(hostile);
    audit[0]["filter"]["aggregate_id"] = json!(hostile);
    db.replay.recent = Some(audit);
    let html = handle(
        &get("/ops/replay?aggregate=%3Cscript%3Ex%3C%2Fscript%3E%22"),
        &cfg(),
        &mut db,
    )
    .text();
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    assert!(html.contains("value=\"&lt;script&gt;x&lt;/script&gt;&quot;\""));

    // A refused hostile field: escaped in the form and in the sentence.
    let mut db = replay_db();
    let r = handle(
        &get("/ops/replay?type=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        &cfg(),
        &mut db,
    );
    assert_eq!(r.status, 400);
    assert!(!r.text().contains("<script"), "{}", r.text());
}
