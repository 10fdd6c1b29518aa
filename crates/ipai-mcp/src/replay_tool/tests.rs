//! `replay_preview` through `tools/list` and `tools/call`, with a fake database that
//! answers `replay_summary` and `replay_page` and refuses every other statement.

use crate::server::{dispatch, Era};
use crate::{Database, DbError};
use ipai_core::db::Param;
use serde_json::{json, Value};

/// Answers the dry run's two statements from `summary` and `rows` (paged by the
/// statement's `after_seq` and `limit`), and records every statement.
struct ReplayDb {
    summary: Value,
    rows: Vec<Value>,
    statements: Vec<(String, Vec<Param>)>,
    fail: Option<DbError>,
}

impl ReplayDb {
    fn new(summary: Value, rows: Vec<Value>) -> Self {
        Self {
            summary,
            rows,
            statements: vec![],
            fail: None,
        }
    }

    fn sql(&self) -> Vec<&str> {
        self.statements.iter().map(|(s, _)| s.as_str()).collect()
    }
}

impl Database for ReplayDb {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        self.statements.push((sql.to_string(), params.to_vec()));
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        if sql == ipai_replay::SUMMARY_SQL {
            return Ok(Some(self.summary.clone()));
        }
        if sql == ipai_replay::PAGE_SQL {
            let (after, limit) = match params {
                [_, Param::Int(a), Param::Int(l), Param::Text(f)] if f == "false" => (*a, *l),
                other => panic!("page parameters {other:?}"),
            };
            let page: Vec<Value> = self
                .rows
                .iter()
                .filter(|r| r["seq"].as_i64().unwrap_or_default() > after)
                .take(usize::try_from(limit).unwrap_or(0))
                .cloned()
                .collect();
            return Ok(Some(json!(page)));
        }
        Err(DbError::Failed(format!("unexpected statement {sql}")))
    }
}

/// A dead `asset.reserved` whose email the ledger records as sent and whose calendar
/// event failed.
fn dead_reservation(seq: i64) -> Value {
    json!({"id": format!("6be0c80e-fa6a-4810-9f3b-b7d874e04f{seq:02}"), "seq": seq,
           "event_type": "asset.reserved", "aggregate_type": "asset_booking",
           "aggregate_id": "501", "idempotency_key": format!("k{seq}"), "source": "odoo",
           "occurred_at": null, "created_at": "2026-12-07T08:00:00Z", "status": "dead",
           "follower": false,
           "payload": {"booking_id": 501, "asset_name": "Projector", "employee_name": "Juan",
                       "employee_email": "juan@example.com",
                       "start": "2026-11-27T01:00:00Z", "end": "2026-11-27T09:00:00Z"},
           "recorded": {"email:juan@example.com": "sent", "google_calendar:booking/501": "failed"}})
}

fn call(db: &mut ReplayDb, arguments: Value) -> Value {
    dispatch(
        Era::Modern,
        "tools/call",
        Some(&json!({"name": "replay_preview", "arguments": arguments})),
        db,
    )
    .expect("a tool result, not a protocol error")
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn it_is_listed_with_its_schema_and_says_it_changes_nothing() {
    let mut db = ReplayDb::new(json!({}), vec![]);
    let list = dispatch(Era::Modern, "tools/list", None, &mut db).unwrap();
    let tool = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "replay_preview")
        .expect("replay_preview listed");
    let input = &tool["inputSchema"];
    assert_eq!(input["type"], "object");
    assert_eq!(input["additionalProperties"], false);
    let mut keys: Vec<&String> = input["properties"].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "aggregate",
            "limit",
            "redo_effects",
            "since",
            "status",
            "target",
            "type",
            "until"
        ]
    );
    for k in [
        "type",
        "aggregate",
        "since",
        "until",
        "status",
        "target",
        "redo_effects",
    ] {
        assert_eq!(input["properties"][k]["type"], "string", "{k}");
    }
    let limit = &input["properties"]["limit"];
    assert_eq!(
        (
            &limit["type"],
            &limit["minimum"],
            &limit["maximum"],
            &limit["default"]
        ),
        (&json!("integer"), &json!(1), &json!(500), &json!(50))
    );
    let description = tool["description"].as_str().unwrap();
    assert!(description.contains("dry run") && description.contains("changes nothing"));
    assert_eq!(tool["annotations"]["readOnlyHint"], true);
    assert_eq!(
        tool["outputSchema"]["properties"]["executed"]["const"],
        false
    );
    assert!(db.statements.is_empty());
}

#[test]
fn a_call_returns_the_plan_and_runs_only_the_read_only_statements() {
    let mut db = ReplayDb::new(
        json!({"matched": 1, "followers": 0, "by_status": {"dead": 1}}),
        vec![dead_reservation(7)],
    );
    let r = call(
        &mut db,
        json!({"status": "dead", "type": "asset.*", "target": "asset"}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let s = &r["structuredContent"];
    assert_eq!(s["matched"], 1);
    assert_eq!(s["followers"], 0);
    assert_eq!(s["by_status"], json!({"dead": 1}));
    assert_eq!(s["executed"], false);
    assert_eq!(s["complete"], true);
    assert_eq!(s["limit"], 50);
    let e = &s["events"][0];
    assert_eq!(e["event_type"], "asset.reserved");
    assert_eq!(e["status"], "dead");
    assert_eq!(e["skip"], json!(["email:juan@example.com"]));
    assert_eq!(e["run"], json!(["google_calendar:booking/501"]));
    let as_json: Value = serde_json::from_str(r["content"][1]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&as_json, s);
    let t = text(&r);
    assert!(
        t.starts_with("Dry run, nothing was changed: 1 event(s) match (1 dead)"),
        "{t}"
    );
    assert!(
        t.contains("run [google_calendar:booking/501], skip [email:juan@example.com]"),
        "{t}"
    );

    assert_eq!(db.sql(), [ipai_replay::SUMMARY_SQL, ipai_replay::PAGE_SQL]);
    for (sql, _) in &db.statements {
        assert!(
            !sql.contains("replay_begin") && !sql.contains("replay_step"),
            "{sql}"
        );
    }
    // The checked filter is bound as the jsonb the SQL functions read.
    let Param::Json(filter) = &db.statements[0].1[0] else {
        panic!("the filter is bound as JSON");
    };
    assert_eq!(filter["statuses"], json!(["dead"]));
    assert_eq!(filter["type_like"], "asset.%");
    assert_eq!(filter["event_types"][0], "asset.reserved");
}

#[test]
fn redo_effects_run_recorded_effects_again_in_the_plan() {
    let mut db = ReplayDb::new(
        json!({"matched": 1, "followers": 0, "by_status": {"dead": 1}}),
        vec![dead_reservation(7)],
    );
    let r = call(&mut db, json!({"redo_effects": "email"}));
    assert_eq!(r["isError"], false, "{r}");
    let run = &r["structuredContent"]["events"][0]["run"];
    assert!(
        run.as_array()
            .unwrap()
            .contains(&json!("email:juan@example.com")),
        "{run}"
    );
}

#[test]
fn a_refused_filter_is_a_tool_error_naming_the_field_and_runs_nothing() {
    for (arguments, field) in [
        (json!({"status": "pending"}), "status: "),
        (json!({"since": "yesterday"}), "since: "),
        (
            json!({"since": "2026-12-07T10:00:00Z", "until": "2026-12-07T09:00:00Z"}),
            "until: ",
        ),
        (json!({"target": "payroll"}), "target: "),
        (json!({"type": "expense.'; drop"}), "type: "),
        (json!({"aggregate": "expense/"}), "aggregate: "),
        (json!({"redo_effects": "odoo"}), "redo_effects: "),
    ] {
        let mut db = ReplayDb::new(json!({}), vec![]);
        let r = call(&mut db, arguments.clone());
        assert_eq!(r["isError"], true, "{arguments}: {r}");
        assert_eq!(r["structuredContent"]["error"], "invalid_arguments");
        let problems = r["structuredContent"]["problems"].as_array().unwrap();
        assert!(
            problems[0].as_str().unwrap().starts_with(field),
            "{arguments}: {problems:?}"
        );
        assert!(text(&r).contains(field), "{arguments}: {}", text(&r));
        assert!(db.statements.is_empty(), "{arguments}: nothing runs");
    }
    let mut db = ReplayDb::new(json!({}), vec![]);
    let r = call(&mut db, json!({"status": "pending"}));
    assert!(text(&r).contains("on their way"), "{}", text(&r));
}

#[test]
fn limit_is_at_least_one_and_larger_values_are_capped_at_500() {
    let rows: Vec<Value> = (1..=3).map(dead_reservation).collect();
    let summary = json!({"matched": 3, "followers": 0, "by_status": {"dead": 3}});

    let mut db = ReplayDb::new(summary.clone(), rows.clone());
    for bad in [json!(0), json!(-1), json!(2.5), json!("many")] {
        let r = call(&mut db, json!({"limit": bad}));
        assert_eq!(r["isError"], true, "{bad}");
        assert!(text(&r).contains("'limit'"), "{}", text(&r));
    }
    assert!(db.statements.is_empty());

    let mut db = ReplayDb::new(summary.clone(), rows.clone());
    let r = call(&mut db, json!({"limit": 2}));
    let s = &r["structuredContent"];
    assert_eq!(
        (&s["listed"], &s["complete"], &s["matched"]),
        (&json!(2), &json!(false), &json!(3))
    );
    assert_eq!(db.statements[1].1[2], Param::Int(2));
    assert!(
        text(&r).contains("Not every event is listed"),
        "{}",
        text(&r)
    );

    let mut db = ReplayDb::new(summary, rows);
    let r = call(&mut db, json!({"limit": 100000}));
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["structuredContent"]["limit"], 500);
    assert_eq!(r["structuredContent"]["listed"], 3);
    assert_eq!(db.statements[1].1[2], Param::Int(500));
    assert!(text(&r).contains("capped at 500"), "{}", text(&r));
}

#[test]
fn database_failures_are_tool_errors_without_details() {
    let mut db = ReplayDb::new(json!({}), vec![]);
    db.fail = Some(DbError::Failed(
        "permission denied for function replay_summary".into(),
    ));
    let r = call(&mut db, json!({}));
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["error"], "query_failed");
    assert!(!r.to_string().contains("permission denied"));
    db.fail = Some(DbError::Unavailable("secret host".into()));
    let r = call(&mut db, json!({}));
    assert_eq!(r["structuredContent"]["error"], "database_unavailable");
}

#[test]
fn query_for_gives_the_counting_statement_with_the_checked_filter() {
    let q = crate::tools::query_for("replay_preview", &json!({"status": "done"})).unwrap();
    assert_eq!(q.sql, ipai_replay::SUMMARY_SQL);
    assert_eq!(q.params, vec![Param::Json(json!({"statuses": ["done"]}))]);
    assert!(crate::tools::query_for("replay_preview", &json!({"status": "x"})).is_none());
}
