//! The tool catalog, split out of `tools` so what an agent sees sits apart from the SQL
//! and the rendering: every tool's name, title and description, its arguments (the input
//! JSON Schema) and the output JSON Schema of its structured result.

use super::{
    domain, sql, DomainTool, Plan, ToolDef, DEFAULT_DEAD_LETTER_LIMIT, DEFAULT_EVENT_LIMIT,
    MAX_DEAD_LETTER_LIMIT, MAX_EVENT_LIMIT, MAX_SUMMARY_EVENTS,
};
use crate::args::{ArgSpec, Kind};
use ipai_core::taxonomy::Domain;
use serde_json::{json, Value};

/// Every tool, in a stable order.
pub fn tools() -> Vec<ToolDef> {
    let mut out = vec![ToolDef {
        name: "query_events",
        title: "Query events",
        description: "Search the integration bus audit log (integration.event_log) across all \
            domains, newest first. Filters: event type or prefix ('expense.submitted', \
            'expense.'), aggregate type/id, received date range, and one payload field \
            equality. Returns the events (with their outbox delivery status), the total number \
            of matches and counts per event type."
            .to_string(),
        args: vec![
            ArgSpec { name: "event_type", kind: Kind::EventTypeOrPrefix, description: "An event type ('expense.submitted') or a prefix ending in '.' or '.*' ('expense.', 'finance_task.*')." },
            ArgSpec { name: "aggregate_type", kind: Kind::Text, description: "Aggregate type: 'expense', 'asset_booking' or 'finance_task'." },
            ArgSpec { name: "aggregate_id", kind: Kind::Id, description: "Aggregate id (the Odoo record id)." },
            DATE_FROM,
            DATE_TO,
            ArgSpec { name: "payload_field", kind: Kind::Text, description: "A payload field to match, as a dotted path ('employee_code', 'status', 'meta.source'). Give it with payload_value." },
            ArgSpec { name: "payload_value", kind: Kind::Scalar, description: "The value payload_field must equal (string, number or boolean; \"42\" also matches the number 42)." },
            ArgSpec { name: "include_payload", kind: Kind::Bool { default: true }, description: "Include each event's payload (default true)." },
            LIMIT,
        ],
        plan: Plan::Events,
    }];
    out.extend(
        DOMAIN_TOOLS
            .iter()
            .map(|(name, title, description, args, tool)| ToolDef {
                name,
                title,
                description: description.to_string(),
                args: args(domain(tool.domain)),
                plan: Plan::Domain(*tool),
            }),
    );
    out.push(ToolDef {
        name: "get_event",
        title: "Get one event",
        description: "One event by id (or by the idempotency key Odoo sent) with its full \
            payload, its outbox state (status, attempts, last error, next attempt), its \
            deliveries (one per side effect: channel, target, status, response code), the \
            external objects it created (Mattermost posts, calendar events) and the history of \
            its aggregate."
            .to_string(),
        args: vec![
            ArgSpec {
                name: "id",
                kind: Kind::Uuid,
                description: "The event id (UUID) returned by ingest and shown by the query tools.",
            },
            ArgSpec {
                name: "idempotency_key",
                kind: Kind::Text,
                description: "Alternatively, the x-idempotency-key the event was sent with.",
            },
        ],
        plan: Plan::GetEvent,
    });
    out.push(ToolDef {
        name: "outbox_health",
        title: "Outbox health",
        description: "The state of the delivery queue (integration.outbox): events per status \
            with the age of the oldest, queue depth, oldest pending age, events stuck in \
            processing, the next retry, and the most recent dead letters with their last error."
            .to_string(),
        args: vec![ArgSpec {
            name: "dead_letter_limit",
            kind: Kind::Limit {
                default: DEFAULT_DEAD_LETTER_LIMIT,
                max: MAX_DEAD_LETTER_LIMIT,
            },
            description: "How many dead letters to list, newest first (default 20, at most 100).",
        }],
        plan: Plan::OutboxHealth,
    });
    out.push(ToolDef {
        name: "list_alerts",
        title: "List alerts",
        description: crate::alerts_tool::DESCRIPTION.to_string(),
        args: crate::alerts_tool::args(),
        plan: Plan::ListAlerts,
    });
    out.push(ToolDef {
        name: "reconcile_status",
        title: "Reconciliation status",
        description: crate::reconcile_tool::DESCRIPTION.to_string(),
        args: crate::reconcile_tool::args(),
        plan: Plan::ReconcileStatus,
    });
    out.push(ToolDef {
        name: "replay_preview",
        title: "Replay preview (dry run)",
        description: crate::replay_tool::DESCRIPTION.to_string(),
        args: crate::replay_tool::args(),
        plan: Plan::ReplayPreview,
    });
    out
}

const DATE_FROM: ArgSpec = ArgSpec {
    name: "date_from",
    kind: Kind::DateBound,
    description:
        "Received on or after: a date (YYYY-MM-DD, from 00:00 UTC) or an RFC 3339 date-time.",
};
const DATE_TO: ArgSpec = ArgSpec {
    name: "date_to",
    kind: Kind::DateBound,
    description:
        "Received on or before: a date (YYYY-MM-DD, the whole day in UTC) or an RFC 3339 date-time.",
};
const LIMIT: ArgSpec = ArgSpec {
    name: "limit",
    kind: Kind::Limit { default: DEFAULT_EVENT_LIMIT, max: MAX_EVENT_LIMIT },
    description: "Maximum number of events to return, newest first (default 50, at most 500; larger values are capped).",
};

type DomainToolRow = (
    &'static str,
    &'static str,
    &'static str,
    fn(&'static Domain) -> Vec<ArgSpec>,
    DomainTool,
);

const DOMAIN_TOOLS: &[DomainToolRow] = &[
    (
        "query_expense_events",
        "Query expense events",
        "Expense events (hr.expense: submitted, approved, rejected, paid), newest first, with \
         the seed's filters: employee_code, status (the Odoo state in the payload, e.g. submit, \
         approve, cancel, done), received date range and limit. The summary counts matching \
         events and expenses, expenses per status, the total amount per currency and per status \
         and currency; status and amount are taken from each expense's latest matching event, \
         so an expense submitted and then approved is counted once.",
        |_| {
            vec![
                ArgSpec {
                    name: "employee_code",
                    kind: Kind::Text,
                    description: "The employee code in the payload (e.g. 'E-0042').",
                },
                ArgSpec {
                    name: "status",
                    kind: Kind::Text,
                    description:
                        "The Odoo state in the payload, e.g. 'submit', 'approve', 'cancel', 'done'.",
                },
                DATE_FROM,
                DATE_TO,
                LIMIT,
            ]
        },
        sql::EXPENSE_TOOL,
    ),
    (
        "query_asset_events",
        "Query asset booking events",
        "Equipment booking events (reserved, checked_out, checked_in, overdue), newest first. \
         Filters: event type, booking id, asset id or code, employee id or email, the status in \
         the payload, received date range, limit. The summary counts events, bookings and \
         assets, bookings per current state (their latest matching event) and overdue \
         escalations.",
        |d| {
            vec![
                ArgSpec {
                    name: "event_type",
                    kind: Kind::EventType(d.event_types),
                    description: "One asset event type (the short form 'overdue' is accepted too).",
                },
                ArgSpec {
                    name: "booking_id",
                    kind: Kind::Id,
                    description: "The booking id (the aggregate id).",
                },
                ArgSpec {
                    name: "asset_id",
                    kind: Kind::Id,
                    description: "The asset id in the payload.",
                },
                ArgSpec {
                    name: "asset_code",
                    kind: Kind::Text,
                    description: "The asset code in the payload.",
                },
                ArgSpec {
                    name: "employee_id",
                    kind: Kind::Id,
                    description: "The employee id in the payload.",
                },
                ArgSpec {
                    name: "employee_email",
                    kind: Kind::Text,
                    description: "The employee email in the payload (case-insensitive).",
                },
                ArgSpec {
                    name: "status",
                    kind: Kind::Text,
                    description: "The Odoo state in the payload.",
                },
                DATE_FROM,
                DATE_TO,
                LIMIT,
            ]
        },
        sql::ASSET_TOOL,
    ),
    (
        "query_finance_events",
        "Query finance task events",
        "Finance task events (project.task: created, in_progress, submitted, approved, filed, \
         overdue), newest first, including BIR filings. Filters: event type, task id, project, \
         BIR form and period, the status in the payload, a responsible email, received date \
         range, limit. The summary counts events and tasks, tasks per current state, overdue \
         tasks, and lists BIR filings (form, period, latest state, deadline).",
        |d| {
            vec![
                ArgSpec {
                    name: "event_type",
                    kind: Kind::EventType(d.event_types),
                    description:
                        "One finance task event type (the short form 'filed' is accepted too).",
                },
                ArgSpec {
                    name: "task_id",
                    kind: Kind::Id,
                    description: "The task id (the aggregate id).",
                },
                ArgSpec {
                    name: "project",
                    kind: Kind::Text,
                    description: "The project name in the payload.",
                },
                ArgSpec {
                    name: "bir_form",
                    kind: Kind::Text,
                    description: "The BIR form, e.g. '1601-C'.",
                },
                ArgSpec {
                    name: "period",
                    kind: Kind::Text,
                    description: "The filing period, e.g. '2026-10'.",
                },
                ArgSpec {
                    name: "status",
                    kind: Kind::Text,
                    description: "The Odoo state in the payload.",
                },
                ArgSpec {
                    name: "responsible_email",
                    kind: Kind::Text,
                    description: "An address listed in the payload's responsible_emails.",
                },
                DATE_FROM,
                DATE_TO,
                LIMIT,
            ]
        },
        sql::FINANCE_TOOL,
    ),
];

/// JSON Schema for a timestamp string or null.
fn ts_schema() -> Value {
    json!({"type": ["string", "null"]})
}

fn event_schema(with_payload: bool) -> Value {
    let mut props = json!({
        "id": {"type": "string"},
        "seq": {"type": "integer"},
        "event_type": {"type": "string"},
        "aggregate_type": {"type": "string"},
        "aggregate_id": {"type": "string"},
        "source": {"type": "string"},
        "occurred_at": ts_schema(),
        "received_at": {"type": "string"},
        "outbox_status": {"type": ["string", "null"]},
    });
    if with_payload {
        props["payload"] = json!({"type": "object"});
    }
    json!({
        "type": "object",
        "properties": props,
        "required": ["id", "seq", "event_type", "aggregate_type", "aggregate_id", "received_at"],
    })
}

pub(super) fn output_schema(plan: Plan) -> Value {
    let counts = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    match plan {
        Plan::Events | Plan::Domain(_) => {
            let summary = match plan {
                Plan::Domain(DomainTool {
                    domain: "expense", ..
                }) => json!({
                    "type": "object",
                    "properties": {
                        "events": {"type": "integer"},
                        "expenses": {"type": "integer"},
                        "employees": {"type": "integer"},
                        "by_event_type": counts,
                        "by_status": counts,
                        "total_amount_by_currency": {"type": "object", "additionalProperties": {"type": "number"}},
                        "amount_by_status": {"type": "object", "additionalProperties": {
                            "type": "object", "additionalProperties": {"type": "number"}}},
                    },
                    "required": ["events", "expenses", "by_status", "total_amount_by_currency"],
                }),
                Plan::Domain(DomainTool {
                    domain: "asset", ..
                }) => json!({
                    "type": "object",
                    "properties": {
                        "events": {"type": "integer"},
                        "bookings": {"type": "integer"},
                        "assets": {"type": "integer"},
                        "by_event_type": counts,
                        "bookings_by_current_state": counts,
                        "overdue_events": {"type": "integer"},
                        "max_escalation_level": {"type": ["number", "null"]},
                    },
                    "required": ["events", "bookings", "bookings_by_current_state"],
                }),
                Plan::Domain(_) => json!({
                    "type": "object",
                    "properties": {
                        "events": {"type": "integer"},
                        "tasks": {"type": "integer"},
                        "by_event_type": counts,
                        "tasks_by_current_state": counts,
                        "overdue_tasks": {"type": "integer"},
                        "max_days_overdue": {"type": ["number", "null"]},
                        "bir_filings": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["events", "tasks", "tasks_by_current_state", "bir_filings"],
                }),
                _ => json!({
                    "type": "object",
                    "properties": {"by_event_type": counts},
                    "required": ["by_event_type"],
                }),
            };
            json!({
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": event_schema(false)},
                    "total_matches": {"type": "integer", "minimum": 0, "maximum": MAX_SUMMARY_EVENTS},
                    "matches_capped": {"type": "boolean"},
                    "returned": {"type": "integer", "minimum": 0},
                    "truncated": {"type": "boolean"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_LIMIT},
                    "filters": {"type": "object"},
                    "summary": summary,
                },
                "required": ["events", "total_matches", "returned", "limit", "filters", "summary"],
            })
        }
        Plan::GetEvent => json!({
            "type": "object",
            "properties": {
                "event": event_schema(true),
                "outbox": {
                    "type": ["object", "null"],
                    "properties": {
                        "status": {"type": "string", "enum": ["pending", "processing", "done", "failed", "dead"]},
                        "attempts": {"type": "integer"},
                        "max_attempts": {"type": "integer"},
                        "last_error": {"type": ["string", "null"]},
                        "next_attempt_at": ts_schema(),
                    },
                },
                "deliveries": {"type": "array", "items": {"type": "object", "properties": {
                    "channel": {"type": "string"},
                    "target": {"type": "string"},
                    "status": {"type": "string"},
                    "response_code": {"type": ["integer", "null"]},
                }}},
                "external_ids": {"type": "array", "items": {"type": "object"}},
                "aggregate_history": {"type": "array", "items": {"type": "object"}},
            },
            "required": ["event", "outbox", "deliveries", "external_ids", "aggregate_history"],
        }),
        Plan::OutboxHealth => {
            let status = json!({"type": "object", "properties": {
                "count": {"type": "integer"},
                "oldest_age_seconds": {"type": ["number", "null"]},
            }, "required": ["count"]});
            json!({
                "type": "object",
                "properties": {
                    "by_status": {"type": "object", "properties": {
                        "pending": status, "processing": status, "failed": status,
                        "dead": status, "done": status,
                    }, "required": ["pending", "processing", "failed", "dead", "done"]},
                    "total": {"type": "integer"},
                    "queue_depth": {"type": "integer"},
                    "dead": {"type": "integer"},
                    "oldest_pending_age_seconds": {"type": ["number", "null"]},
                    "stuck_processing": {"type": "integer"},
                    "next_retry_at": ts_schema(),
                    "dead_letters": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"},
                        "event_type": {"type": "string"},
                        "last_error": {"type": ["string", "null"]},
                        "attempts": {"type": "integer"},
                    }}},
                    "dead_letter_limit": {"type": "integer"},
                    "generated_at": {"type": "string"},
                },
                "required": ["by_status", "queue_depth", "dead", "oldest_pending_age_seconds", "dead_letters"],
            })
        }
        Plan::ListAlerts => crate::alerts_tool::output_schema(),
        Plan::ReconcileStatus => crate::reconcile_tool::output_schema(),
        Plan::ReplayPreview => crate::replay_tool::output_schema(),
    }
}
