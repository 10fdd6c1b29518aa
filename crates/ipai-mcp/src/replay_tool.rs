//! The read-only `replay_preview` tool (issue #38, SPEC §12): what `ipai replay` would do
//! for a filter — how many events match, and for each the side effects the deliveries
//! ledger records (skipped) and those that would run — without doing any of it. The
//! filter, the plan and the SQL are `ipai-replay`'s, shared with the CLI and `/ops`; this
//! module maps the tool's arguments onto them. It only ever runs `replay_summary` and
//! `replay_page` (granted to `integration_reader`), never `replay_begin`/`replay_step`.

use crate::args::{ArgSpec, Args, Kind};
use crate::sql::Query;
use ipai_core::db::{Database, DbError, Param};
use ipai_replay::{dry_run, Filter, FilterError, FilterInput, ReplayError};
use serde_json::{json, Value};

/// Default and maximum number of events the result lists (the counts cover them all).
pub const DEFAULT_LISTED: i64 = 50;
pub const MAX_LISTED: i64 = 500;
/// Events described in the text summary; the structured result lists up to `limit`.
const EVENTS_IN_TEXT: usize = 5;

pub(crate) const DESCRIPTION: &str = "A dry run of a replay (SPEC §12) that changes nothing: \
    which events `ipai replay` would select with this filter (outbox status dead/failed by \
    default, or done when asked; event type pattern, aggregate, time window, handler) and, \
    for each, the side effects already recorded in the deliveries ledger (skipped on a \
    replay) and those that would run. Returns the counts (matched, later events of the same \
    aggregates that would follow, per status) and the plan of the first `limit` events. \
    Executing a replay is an operator's step (`ipai replay --execute` or the /ops replay \
    page); this tool cannot do it.";

pub(crate) fn args() -> Vec<ArgSpec> {
    vec![
        ArgSpec {
            name: "type",
            kind: Kind::Text,
            description: "Event type pattern: an exact type or '*' wildcards ('expense.*').",
        },
        ArgSpec {
            name: "aggregate",
            kind: Kind::Text,
            description: "An aggregate id ('4011') or type/id ('expense/4011').",
        },
        ArgSpec {
            name: "since",
            kind: Kind::Text,
            description: "Events stored at or after this RFC 3339 time (2026-12-07T08:00:00Z).",
        },
        ArgSpec {
            name: "until",
            kind: Kind::Text,
            description: "Events stored before this RFC 3339 time.",
        },
        ArgSpec {
            name: "status",
            kind: Kind::Text,
            description: "Outbox status: dead, failed or done, or a comma list (default dead,failed).",
        },
        ArgSpec {
            name: "target",
            kind: Kind::Text,
            description: "The handler: expense, asset or finance (or its component name, expense-handler).",
        },
        ArgSpec {
            name: "redo_effects",
            kind: Kind::Text,
            description: "Effect kinds a replay would perform again although recorded, as a comma list: mattermost, email, google_calendar.",
        },
        ArgSpec {
            name: "limit",
            kind: Kind::Limit {
                default: DEFAULT_LISTED,
                max: MAX_LISTED,
            },
            description: "How many events to list with their plan, in seq order (default 50, at most 500; larger values are capped). The counts cover every match.",
        },
    ]
}

/// `FilterError`'s sentence, naming the tool's argument (`redo_effects`, not the CLI's
/// `redo-effects`).
fn problem(e: &FilterError) -> String {
    let field = if e.field == "redo-effects" {
        "redo_effects"
    } else {
        e.field
    };
    format!("{field}: {}", e.problem)
}

/// The checked filter and redo kinds of validated arguments; the refusal names the field.
pub(crate) fn check(args: &Args) -> Result<(Filter, Vec<String>), String> {
    let text = |name: &str| args.text(name).map(str::to_string);
    let filter = FilterInput {
        event_type: text("type"),
        aggregate: text("aggregate"),
        since: text("since"),
        until: text("until"),
        status: text("status"),
        target: text("target"),
    }
    .check()
    .map_err(|e| problem(&e))?;
    let redo = ipai_replay::redo_kinds(args.text("redo_effects")).map_err(|e| problem(&e))?;
    Ok((filter, redo))
}

/// The first statement a call runs (the counts), for `tools::query_for` (EXPLAIN in tests
/// and benchmarks); the call then reads pages with [`ipai_replay::PAGE_SQL`].
pub(crate) fn query(args: &Args) -> Query {
    let filter = check(args)
        .map(|(f, _)| f.to_json().clone())
        .unwrap_or_else(|_| json!({"statuses": []}));
    Query {
        sql: ipai_replay::SUMMARY_SQL.to_string(),
        params: vec![Param::Json(filter)],
    }
}

/// Runs the dry run of validated arguments: `Preview::to_json(None)` with the `limit`
/// and whether every event is listed.
pub(crate) fn fetch(db: &mut dyn Database, args: &Args) -> Result<Option<Value>, DbError> {
    // `ToolDef::validate` refused a bad filter before this runs; a refusal here cannot
    // happen and is reported like a failed query rather than panicking.
    let (filter, redo) = check(args).map_err(DbError::Failed)?;
    let limit = args.int("limit").unwrap_or(DEFAULT_LISTED);
    let settings = dry_run::settings(&|_| None);
    let detail = usize::try_from(limit).unwrap_or(0);
    let preview =
        ipai_replay::preview(db, &filter, &redo, &settings, Some(detail)).map_err(|e| match e {
            ReplayError::Database(e) => e,
            ReplayError::Invalid(e) => DbError::Failed(problem(&e)),
        })?;
    let mut v = preview.to_json(None);
    v["limit"] = json!(limit);
    v["complete"] = json!(preview.complete());
    Ok(Some(v))
}

fn list(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    items.join(", ")
}

/// The one-paragraph summary an agent reads first.
pub(crate) fn text(v: &Value, args: &Args) -> String {
    let by_status = ipai_replay::status_counts(&v["by_status"]);
    let mut s = format!(
        "Dry run, nothing was changed: {} event(s) match{}; {} later event(s) of their aggregates would follow them.",
        v["matched"],
        if by_status.is_empty() {
            String::new()
        } else {
            format!(" ({by_status})")
        },
        v["followers"],
    );
    let events = v["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !events.is_empty() {
        s.push_str(&format!(
            " In the {} listed: {} effect(s) would run, {} recorded as performed would be skipped.",
            events.len(),
            v["effects"]["run"],
            v["effects"]["skip"]
        ));
    }
    for e in events.iter().take(EVENTS_IN_TEXT) {
        s.push_str(&format!(
            " {} {} {} ({}{}): run [{}], skip [{}].",
            e["id"].as_str().unwrap_or("?"),
            e["event_type"].as_str().unwrap_or("?"),
            e["aggregate"].as_str().unwrap_or("?"),
            e["status"].as_str().unwrap_or("?"),
            if e["follower"] == json!(true) {
                ", follows"
            } else {
                ""
            },
            list(&e["run"]),
            list(&e["skip"]),
        ));
    }
    if events.len() > EVENTS_IN_TEXT {
        s.push_str(&format!(
            " {} more in the structured result.",
            events.len() - EVENTS_IN_TEXT
        ));
    }
    if v["complete"] == json!(false) {
        s.push_str(" Not every event is listed: raise 'limit' or narrow the filter.");
    }
    if let Some((_, requested)) = args.capped.first() {
        s.push_str(&format!(" (limit {requested} was capped at {MAX_LISTED}.)"));
    }
    s.push_str(" To replay, an operator runs `ipai replay --execute` with the same filter.");
    s
}

pub(crate) fn output_schema() -> Value {
    let names = json!({"type": "array", "items": {"type": "string"}});
    let event = json!({"type": "object", "properties": {
        "id": {"type": "string"},
        "event_type": {"type": "string"},
        "aggregate": {"type": "string"},
        "status": {"type": "string", "enum": ["dead", "failed", "done"]},
        "follower": {"type": "boolean"},
        "skip": names,
        "run": names,
        "note": {"type": "string"},
    }, "required": ["id", "event_type", "status", "skip", "run"]});
    json!({
        "type": "object",
        "properties": {
            "matched": {"type": "integer", "minimum": 0},
            "followers": {"type": "integer", "minimum": 0},
            "by_status": {"type": "object", "additionalProperties": {"type": "integer"}},
            "executed": {"type": "boolean", "const": false},
            "listed": {"type": "integer", "minimum": 0},
            "effects": {"type": "object", "properties": {
                "run": {"type": "integer"}, "skip": {"type": "integer"},
            }},
            "events": {"type": "array", "items": event},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LISTED},
            "complete": {"type": "boolean"},
        },
        "required": ["matched", "followers", "by_status", "executed", "events"],
    })
}

#[cfg(test)]
mod tests;
