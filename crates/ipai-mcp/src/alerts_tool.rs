//! The read-only `list_alerts` tool (issue #19): the operator alerts of `integration.alerts`
//! — open ones (dead letters, a stalled queue, a misconfigured handler, rejected
//! credentials, /health degraded) with what, since when, how many events and the fix, and
//! optionally the recently resolved ones. Reads through `alerts_open_condition_idx`
//! (open) and `alerts_first_seen_idx` (resolved, capped), as `integration_reader`.

use crate::args::{ArgSpec, Args, Kind};
use crate::sql::{ts, Binder, Query};
use serde_json::{json, Value};

/// Default and maximum number of resolved alerts listed.
pub const DEFAULT_RESOLVED_LIMIT: i64 = 20;
pub const MAX_RESOLVED_LIMIT: i64 = 200;

pub(crate) const DESCRIPTION: &str = "The operator alerts of the bus (integration.alerts): \
    open alerts — events gone dead, a stalled queue, a handler answering 'misconfigured', an \
    outside service (Odoo, email API, Google, Mattermost) rejecting credentials, /health \
    degraded — each with its condition, when it was first and last seen, how many events it \
    concerns, the last error, and whether the operator has been notified; optionally the \
    most recently resolved alerts. One alert per condition, however many events.";

pub(crate) fn args() -> Vec<ArgSpec> {
    vec![
        ArgSpec {
            name: "include_resolved",
            kind: Kind::Bool { default: false },
            description: "Also list the most recently resolved alerts (default false).",
        },
        ArgSpec {
            name: "resolved_limit",
            kind: Kind::Limit {
                default: DEFAULT_RESOLVED_LIMIT,
                max: MAX_RESOLVED_LIMIT,
            },
            description:
                "How many resolved alerts to list, newest first (default 20, at most 200).",
        },
    ]
}

fn alert_json(a: &str) -> String {
    format!(
        "jsonb_build_object('id', {a}.id, 'condition', {a}.condition, 'kind', {a}.kind, \
         'first_seen_at', {first}, 'last_seen_at', {last}, 'seen', {a}.seen, \
         'events', {a}.events, 'since', {since}, 'detail', {a}.detail, \
         'resolved_at', {resolved}, 'notified_at', {notified}, 'reminders', {a}.reminders, \
         'pending_message', {a}.pending_message, 'last_send_error', {a}.last_send_error)",
        first = ts(&format!("{a}.first_seen_at")),
        last = ts(&format!("{a}.last_seen_at")),
        since = ts(&format!("{a}.since")),
        resolved = ts(&format!("{a}.resolved_at")),
        notified = ts(&format!("{a}.notified_at")),
    )
}

pub(crate) fn query(args: &Args) -> Query {
    let mut b = Binder::default();
    let resolved_limit = if args.bool("include_resolved").unwrap_or(false) {
        args.int("resolved_limit").unwrap_or(DEFAULT_RESOLVED_LIMIT)
    } else {
        0
    };
    let limit = b.int(resolved_limit);
    let sql = format!(
        "SELECT jsonb_build_object(
    'open', coalesce((SELECT jsonb_agg({open} ORDER BY a.first_seen_at, a.id)
                      FROM integration.alerts AS a WHERE a.resolved_at IS NULL), '[]'::jsonb),
    'resolved', coalesce((SELECT jsonb_agg({resolved} ORDER BY r.first_seen_at DESC, r.id DESC)
                          FROM (SELECT * FROM integration.alerts AS r0 WHERE r0.resolved_at IS NOT NULL
                                 ORDER BY r0.first_seen_at DESC, r0.id DESC LIMIT {limit}) AS r), '[]'::jsonb),
    'generated_at', {now}
) AS result",
        open = alert_json("a"),
        resolved = alert_json("r"),
        now = ts("now()"),
    );
    b.finish(sql)
}

pub(crate) fn text(v: &Value) -> String {
    let open = v["open"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut s = if open.is_empty() {
        "No open alerts.".to_string()
    } else {
        format!("{} open alert(s):", open.len())
    };
    for a in open {
        s.push_str(&format!(
            " {} since {} ({} event(s)){}.",
            a["condition"].as_str().unwrap_or("?"),
            a["first_seen_at"].as_str().unwrap_or("?"),
            a["events"],
            a["detail"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
                .unwrap_or_default()
        ));
    }
    if let Some(r) = v["resolved"].as_array().filter(|r| !r.is_empty()) {
        s.push_str(&format!(" {} resolved alert(s) listed.", r.len()));
    }
    s
}

pub(crate) fn output_schema() -> Value {
    let ts = json!({"type": ["string", "null"]});
    let alert = json!({"type": "object", "properties": {
        "id": {"type": "integer"},
        "condition": {"type": "string"},
        "kind": {"type": "string", "enum": ["dead_letters", "queue_stalled", "health_degraded",
                                            "handler_misconfigured", "credentials_rejected",
                                            "events_missing", "digest_late"]},
        "first_seen_at": {"type": "string"},
        "last_seen_at": {"type": "string"},
        "seen": {"type": "integer"},
        "events": {"type": "integer"},
        "since": ts,
        "detail": {"type": "string"},
        "resolved_at": ts,
        "notified_at": ts,
        "reminders": {"type": "integer"},
        "pending_message": {"type": ["string", "null"]},
        "last_send_error": {"type": ["string", "null"]},
    }, "required": ["id", "condition", "kind", "first_seen_at", "events"]});
    json!({
        "type": "object",
        "properties": {
            "open": {"type": "array", "items": alert},
            "resolved": {"type": "array", "items": alert},
            "generated_at": {"type": "string"},
        },
        "required": ["open", "resolved"],
    })
}
