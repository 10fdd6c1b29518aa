//! The read-only tools: their definitions (input and output JSON Schemas), the SQL each
//! call runs (as a [`Query`]), and how a database result becomes a tool result.
//!
//! Every statement returns exactly one row (aggregates and scalar subqueries only): under
//! Spin 4.0.0–4.0.2 a `query` that returns no rows never completes (spinframework/spin#3671).

use crate::args::{self, ArgSpec, Args, Kind};
use crate::sql::{ts, Binder, Query};
use ipai_core::taxonomy::{Domain, ROUTES};
use serde_json::{json, Map, Value};

/// Default and maximum number of events a query tool returns.
pub const DEFAULT_EVENT_LIMIT: i64 = 50;
pub const MAX_EVENT_LIMIT: i64 = 500;
/// Default and maximum number of dead letters `outbox_health` lists.
pub const DEFAULT_DEAD_LETTER_LIMIT: i64 = 20;
pub const MAX_DEAD_LETTER_LIMIT: i64 = 100;
/// Payloads larger than this (as JSON text) are replaced by a marker in event lists;
/// `get_event` always returns the whole payload.
pub const MAX_LISTED_PAYLOAD_BYTES: i64 = 65_536;
/// At most this many deliveries, external ids and history entries per `get_event`.
pub const MAX_EVENT_DETAIL_ROWS: i64 = 100;
pub const MAX_AGGREGATE_HISTORY: i64 = 50;
/// The query tools' `total_matches` and `summary` cover at most the newest this many
/// matching events: the limit is in the SQL (`LIMIT` on the index order), so a broad
/// query over a long log reads a bounded number of rows. `matches_capped` says when
/// more events match.
pub const MAX_SUMMARY_EVENTS: i64 = 10_000;

/// Which tool, with what it needs to build its query.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Events,
    Domain(DomainTool),
    GetEvent,
    OutboxHealth,
    /// `list_alerts` (issue #19, `crate::alerts_tool`).
    ListAlerts,
}

/// A per-domain query tool (`query_expense_events`, …).
#[derive(Debug, Clone, Copy)]
struct DomainTool {
    domain: &'static str,
    /// Payload fields the summary needs, extracted once per matching event.
    extract: &'static str,
    /// The `summary` object, over the CTEs `matched` and `latest`; `{overdue}` is the
    /// placeholder of the domain's overdue event type.
    summary: &'static str,
}

/// A tool as listed by `tools/list`.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: String,
    args: Vec<ArgSpec>,
    plan: Plan,
}

impl ToolDef {
    pub fn input_schema(&self) -> Value {
        args::input_schema(&self.args)
    }

    pub fn output_schema(&self) -> Value {
        output_schema(self.plan)
    }

    pub(crate) fn validate(&self, arguments: &Map<String, Value>) -> Result<Args, Vec<String>> {
        let args = args::validate(&self.args, arguments)?;
        let mut problems = Vec::new();
        if let (Some(from), Some(to)) = (args.date("date_from"), args.date("date_to")) {
            if from.date_only && to.date_only && from.text > to.text {
                problems.push("'date_from' is after 'date_to'".to_string());
            }
        }
        match self.plan {
            Plan::Events => {
                let field = args.text("payload_field").is_some();
                let value = args.json("payload_value").is_some();
                if field != value {
                    problems.push(
                        "'payload_field' and 'payload_value' must be given together".to_string(),
                    );
                }
            }
            Plan::GetEvent => {
                let n = usize::from(args.text("id").is_some())
                    + usize::from(args.text("idempotency_key").is_some());
                if n != 1 {
                    problems.push("give exactly one of 'id' and 'idempotency_key'".to_string());
                }
            }
            _ => {}
        }
        if problems.is_empty() {
            Ok(args)
        } else {
            Err(problems)
        }
    }

    /// The query for a validated call.
    pub(crate) fn query(&self, args: &Args) -> Query {
        match self.plan {
            Plan::Events => events_query(args, None),
            Plan::Domain(d) => events_query(args, Some(d)),
            Plan::GetEvent => get_event_query(args),
            Plan::OutboxHealth => outbox_health_query(args),
            Plan::ListAlerts => crate::alerts_tool::query(args),
        }
    }

    /// The structured result of a call whose query returned `row`; `None` means the
    /// query found nothing (only `get_event` can), reported as a tool error.
    pub(crate) fn shape(
        &self,
        args: &Args,
        row: Option<Value>,
    ) -> Result<(String, Value), (String, Value)> {
        let Some(mut v) = row.filter(Value::is_object) else {
            let key = args
                .text("id")
                .map(|id| ("id", id))
                .or_else(|| args.text("idempotency_key").map(|k| ("idempotency_key", k)));
            let (field, value) = key.unwrap_or(("id", ""));
            return Err((
                format!("No event with {field} '{value}' exists in the event log."),
                json!({"error": "not_found", field: value}),
            ));
        };
        match self.plan {
            Plan::Events | Plan::Domain(_) => {
                let limit = args.int("limit").unwrap_or(DEFAULT_EVENT_LIMIT);
                v["limit"] = json!(limit);
                v["filters"] = filters_echo(args);
                let returned = v["events"].as_array().map_or(0, Vec::len);
                v["returned"] = json!(returned);
                v["truncated"] = json!(v["total_matches"].as_u64().unwrap_or(0) > returned as u64);
                let text = events_text(self, args, &v);
                Ok((text, v))
            }
            Plan::GetEvent => Ok((get_event_text(&v), v)),
            Plan::OutboxHealth => {
                v["dead_letter_limit"] = json!(args.int("dead_letter_limit"));
                Ok((outbox_health_text(&v), v))
            }
            Plan::ListAlerts => Ok((crate::alerts_tool::text(&v), v)),
        }
    }
}

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
    out
}

/// Looks a tool up by name.
pub fn find(name: &str) -> Option<ToolDef> {
    tools().into_iter().find(|t| t.name == name)
}

/// The statement a `tools/call` of `name` with `arguments` runs (after the same argument
/// checks), for EXPLAIN in tests and benchmarks. `None` for an unknown tool or arguments
/// the call would refuse.
pub fn query_for(name: &str, arguments: &Value) -> Option<Query> {
    let tool = find(name)?;
    let args = tool.validate(arguments.as_object()?).ok()?;
    Some(tool.query(&args))
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

fn domain(name: &str) -> &'static Domain {
    ROUTES.iter().find(|d| d.name == name).unwrap_or(&ROUTES[0])
}

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
                ArgSpec { name: "employee_code", kind: Kind::Text, description: "The employee code in the payload (e.g. 'E-0042')." },
                ArgSpec { name: "status", kind: Kind::Text, description: "The Odoo state in the payload, e.g. 'submit', 'approve', 'cancel', 'done'." },
                DATE_FROM,
                DATE_TO,
                LIMIT,
            ]
        },
        DomainTool {
            domain: "expense",
            extract: ", e.payload->>'status' AS status, e.payload->>'currency' AS currency, \
                e.payload->>'employee_code' AS employee_code, \
                CASE WHEN jsonb_typeof(e.payload->'amount') = 'number' \
                     THEN (e.payload->>'amount')::numeric END AS amount",
            summary: "jsonb_build_object(\
                'events', (SELECT count(*) FROM matched), \
                'expenses', (SELECT count(*) FROM latest), \
                'employees', (SELECT count(DISTINCT employee_code) FROM latest), \
                'by_event_type', {by_event_type}, \
                'by_status', coalesce((SELECT jsonb_object_agg(k, n) FROM (SELECT coalesce(status, '(none)') AS k, count(*) AS n FROM latest GROUP BY 1) AS x), '{}'::jsonb), \
                'total_amount_by_currency', coalesce((SELECT jsonb_object_agg(k, t) FROM (SELECT coalesce(currency, '(none)') AS k, coalesce(sum(amount), 0) AS t FROM latest GROUP BY 1) AS x), '{}'::jsonb), \
                'amount_by_status', coalesce((SELECT jsonb_object_agg(k, per) FROM (SELECT k, jsonb_object_agg(c, t) AS per FROM (SELECT coalesce(status, '(none)') AS k, coalesce(currency, '(none)') AS c, coalesce(sum(amount), 0) AS t FROM latest GROUP BY 1, 2) AS y GROUP BY k) AS x), '{}'::jsonb))",
        },
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
                ArgSpec { name: "event_type", kind: Kind::EventType(d.event_types), description: "One asset event type (the short form 'overdue' is accepted too)." },
                ArgSpec { name: "booking_id", kind: Kind::Id, description: "The booking id (the aggregate id)." },
                ArgSpec { name: "asset_id", kind: Kind::Id, description: "The asset id in the payload." },
                ArgSpec { name: "asset_code", kind: Kind::Text, description: "The asset code in the payload." },
                ArgSpec { name: "employee_id", kind: Kind::Id, description: "The employee id in the payload." },
                ArgSpec { name: "employee_email", kind: Kind::Text, description: "The employee email in the payload (case-insensitive)." },
                ArgSpec { name: "status", kind: Kind::Text, description: "The Odoo state in the payload." },
                DATE_FROM,
                DATE_TO,
                LIMIT,
            ]
        },
        DomainTool {
            domain: "asset",
            extract: ", e.payload->>'asset_id' AS asset_id, e.payload->>'asset_code' AS asset_code, \
                CASE WHEN jsonb_typeof(e.payload->'escalation_level') = 'number' \
                     THEN (e.payload->>'escalation_level')::numeric END AS escalation_level",
            summary: "jsonb_build_object(\
                'events', (SELECT count(*) FROM matched), \
                'bookings', (SELECT count(*) FROM latest), \
                'assets', (SELECT count(DISTINCT coalesce(asset_id, asset_code)) FROM matched), \
                'by_event_type', {by_event_type}, \
                'bookings_by_current_state', coalesce((SELECT jsonb_object_agg(k, n) FROM (SELECT event_type AS k, count(*) AS n FROM latest GROUP BY 1) AS x), '{}'::jsonb), \
                'overdue_events', (SELECT count(*) FROM matched WHERE event_type = {overdue}), \
                'max_escalation_level', (SELECT max(escalation_level) FROM matched WHERE event_type = {overdue}))",
        },
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
                ArgSpec { name: "event_type", kind: Kind::EventType(d.event_types), description: "One finance task event type (the short form 'filed' is accepted too)." },
                ArgSpec { name: "task_id", kind: Kind::Id, description: "The task id (the aggregate id)." },
                ArgSpec { name: "project", kind: Kind::Text, description: "The project name in the payload." },
                ArgSpec { name: "bir_form", kind: Kind::Text, description: "The BIR form, e.g. '1601-C'." },
                ArgSpec { name: "period", kind: Kind::Text, description: "The filing period, e.g. '2026-10'." },
                ArgSpec { name: "status", kind: Kind::Text, description: "The Odoo state in the payload." },
                ArgSpec { name: "responsible_email", kind: Kind::Text, description: "An address listed in the payload's responsible_emails." },
                DATE_FROM,
                DATE_TO,
                LIMIT,
            ]
        },
        DomainTool {
            domain: "finance",
            extract: ", e.payload->>'bir_form' AS bir_form, e.payload->>'period' AS period, \
                e.payload->>'deadline' AS deadline, e.payload->>'status' AS status, \
                CASE WHEN jsonb_typeof(e.payload->'days_overdue') = 'number' \
                     THEN (e.payload->>'days_overdue')::numeric END AS days_overdue",
            summary: "jsonb_build_object(\
                'events', (SELECT count(*) FROM matched), \
                'tasks', (SELECT count(*) FROM latest), \
                'by_event_type', {by_event_type}, \
                'tasks_by_current_state', coalesce((SELECT jsonb_object_agg(k, n) FROM (SELECT event_type AS k, count(*) AS n FROM latest GROUP BY 1) AS x), '{}'::jsonb), \
                'overdue_tasks', (SELECT count(*) FROM latest WHERE event_type = {overdue}), \
                'max_days_overdue', (SELECT max(days_overdue) FROM latest WHERE event_type = {overdue}), \
                'bir_filings', coalesce((SELECT jsonb_agg(jsonb_build_object('bir_form', b.bir_form, 'period', b.period, 'task_id', b.aggregate_id, 'state', b.event_type, 'status', b.status, 'deadline', b.deadline) ORDER BY b.deadline NULLS LAST, b.bir_form, b.period) \
                    FROM (SELECT * FROM latest WHERE bir_form IS NOT NULL ORDER BY deadline NULLS LAST, bir_form, period LIMIT 100) AS b), '[]'::jsonb))",
        },
    ),
];

const BY_EVENT_TYPE: &str = "coalesce((SELECT jsonb_object_agg(k, n) FROM (SELECT event_type AS k, count(*) AS n FROM matched GROUP BY 1) AS x), '{}'::jsonb)";

/// An event as JSON, from a row of `integration.event_log` aliased `a`.
fn event_json(a: &str, payload: PayloadMode) -> String {
    let payload = match payload {
        PayloadMode::Full => format!(", 'payload', {a}.payload"),
        PayloadMode::Capped => format!(
            ", 'payload', CASE WHEN octet_length({a}.payload::text) > {MAX_LISTED_PAYLOAD_BYTES} \
             THEN jsonb_build_object('_truncated', true, '_bytes', octet_length({a}.payload::text)) \
             ELSE {a}.payload END"
        ),
        PayloadMode::Omit => String::new(),
    };
    format!(
        "jsonb_build_object('id', {a}.id::text, 'seq', {a}.seq, 'event_type', {a}.event_type, \
         'aggregate_type', {a}.aggregate_type, 'aggregate_id', {a}.aggregate_id, \
         'source', {a}.source, 'occurred_at', {occurred}, 'received_at', {received}{payload})",
        occurred = ts(&format!("{a}.occurred_at")),
        received = ts(&format!("{a}.received_at")),
    )
}

#[derive(Debug, Clone, Copy)]
enum PayloadMode {
    Full,
    Capped,
    Omit,
}

/// `query_events` and the domain tools: one statement returning
/// `{events, total_matches, summary}`.
fn events_query(args: &Args, domain_tool: Option<DomainTool>) -> Query {
    let mut b = Binder::default();
    let mut conds: Vec<String> = Vec::new();
    let mut overdue = String::from("NULL::text");

    if let Some(t) = domain_tool {
        let d = domain(t.domain);
        // A constant of the taxonomy, written as a literal so the per-domain partial
        // indexes on payload fields (migration 20261130000600) match in generic plans too.
        conds.push(format!(
            "e.aggregate_type = '{}'",
            sql_literal(d.aggregate_type)
        ));
        let prefix = d
            .event_types
            .first()
            .and_then(|t| t.split_once('.'))
            .map_or(String::new(), |(p, _)| format!("{p}."));
        conds.push(format!("starts_with(e.event_type, {})", b.text(prefix)));
        if let Some(o) = d.event_types.iter().find(|t| t.ends_with(".overdue")) {
            overdue = b.text(*o);
        }
    }
    if let Some((value, prefix)) = args.event_type("event_type") {
        if prefix {
            conds.push(format!("starts_with(e.event_type, {})", b.text(value)));
        } else {
            conds.push(format!("e.event_type = {}", b.text(value)));
        }
    }
    if let Some(v) = args.text("aggregate_type") {
        conds.push(format!("e.aggregate_type = {}", b.text(v)));
    }
    // The aggregate id under its generic and its per-domain names.
    for arg in ["aggregate_id", "booking_id", "task_id"] {
        if let Some(v) = args.text(arg) {
            conds.push(format!("e.aggregate_id = {}", b.text(v)));
        }
    }
    // Payload fields compared as text (`->>`), so "42" matches 42 and "42". Each has a
    // partial B-tree on (payload->>'field', received_at DESC, seq DESC) for its domain's
    // tool (migration 20261130000600), read in the LIMITs' order.
    for (arg, field) in [
        ("employee_code", "employee_code"),
        ("status", "status"),
        ("asset_id", "asset_id"),
        ("asset_code", "asset_code"),
        ("employee_id", "employee_id"),
        ("project", "project"),
        ("bir_form", "bir_form"),
        ("period", "period"),
    ] {
        if let Some(v) = args.text(arg) {
            conds.push(format!("e.payload->>'{field}' = {}", b.text(v)));
        }
    }
    if let Some(v) = args.text("employee_email") {
        conds.push(format!(
            "lower(e.payload->>'employee_email') = lower({})",
            b.text(v)
        ));
    }
    if let Some(v) = args.text("responsible_email") {
        // `payload->'responsible_emails' @> [v]`, written as a containment of the whole
        // payload so the payload's GIN index finds the rows.
        conds.push(format!(
            "e.payload @> {}",
            b.json(json!({"responsible_emails": [v]}))
        ));
    }
    if let Some(d) = args.date("date_from") {
        let p = b.text(&d.text);
        conds.push(if d.date_only {
            format!("e.received_at >= ({p})::date::timestamp AT TIME ZONE 'UTC'")
        } else {
            format!("e.received_at >= ({p})::timestamptz")
        });
    }
    if let Some(d) = args.date("date_to") {
        let p = b.text(&d.text);
        conds.push(if d.date_only {
            format!("e.received_at < (({p})::date + 1)::timestamp AT TIME ZONE 'UTC'")
        } else {
            format!("e.received_at <= ({p})::timestamptz")
        });
    }
    if let (Some(field), Some(value)) = (args.text("payload_field"), args.json("payload_value")) {
        // The rows are found through the payload's GIN index: `payload @> {...}` for each
        // form the value can take there. For scalar forms at a path of object keys the
        // containments are the comparison itself (nested containment compares scalars for
        // equality), so nothing else is added and PostgreSQL's estimate of them (from the
        // payload's statistics) picks the plan: the GIN index for a rare value, the
        // newest-first index for a common one. Otherwise (array positions in the path, a
        // text that reads as an object) they only narrow the rows, and the exact
        // comparison follows.
        let candidates = containment_candidates(field, value);
        let found = candidates
            .iter()
            .map(|c| format!("e.payload @> {}", b.json(c.clone())))
            .collect::<Vec<_>>()
            .join(" OR ");
        if !candidates.is_empty() && containment_is_exact(field, value) {
            conds.push(format!("({found})"));
        } else {
            let found = if found.is_empty() {
                String::new()
            } else {
                format!("({found}) AND ")
            };
            let path = format!("string_to_array({}, '.')", b.text(field));
            let as_json = b.json(value.clone());
            let as_text = match value {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            };
            conds.push(match as_text {
                Some(t) => format!(
                    "{found}(e.payload #> {path} = {as_json} OR e.payload #>> {path} = {})",
                    b.text(t)
                ),
                None => format!("{found}e.payload #> {path} = {as_json}"),
            });
        }
    }
    let limit = b.int(args.int("limit").unwrap_or(DEFAULT_EVENT_LIMIT));
    let payload = if args.bool("include_payload") == Some(false) {
        PayloadMode::Omit
    } else {
        PayloadMode::Capped
    };

    let conds = if conds.is_empty() {
        "TRUE".to_string()
    } else {
        conds.join("\n   AND ")
    };
    let (extract, summary) = match domain_tool {
        Some(t) => (t.extract, t.summary),
        None => ("", "jsonb_build_object('by_event_type', {by_event_type})"),
    };
    let summary = summary
        .replace("{by_event_type}", BY_EVENT_TYPE)
        .replace("{overdue}", &overdue);
    let projection = format!(
        "{} || jsonb_build_object('outbox_status', o.status)",
        event_json("p", payload)
    );
    let sql = format!(
        "WITH page AS (
    SELECT e.* FROM integration.event_log AS e
     WHERE {conds}
     ORDER BY e.received_at DESC, e.seq DESC
     LIMIT {limit}
), candidates AS (
    SELECT e.aggregate_type, e.aggregate_id, e.event_type, e.seq, e.received_at{extract}
      FROM integration.event_log AS e
     WHERE {conds}
     ORDER BY e.received_at DESC, e.seq DESC
     LIMIT {summary_cap_plus_one}
), matched AS (
    SELECT * FROM candidates AS c
     ORDER BY c.received_at DESC, c.seq DESC
     LIMIT {summary_cap}
), latest AS (
    SELECT DISTINCT ON (m.aggregate_type, m.aggregate_id) m.*
      FROM matched AS m
     ORDER BY m.aggregate_type, m.aggregate_id, m.received_at DESC, m.seq DESC
)
SELECT jsonb_build_object(
    'events', coalesce((SELECT jsonb_agg({projection} ORDER BY p.received_at DESC, p.seq DESC)
                          FROM page AS p LEFT JOIN integration.outbox AS o ON o.id = p.id), '[]'::jsonb),
    'total_matches', (SELECT count(*) FROM matched),
    'matches_capped', (SELECT count(*) FROM candidates) > {summary_cap},
    'summary', {summary}
) AS result",
        summary_cap = MAX_SUMMARY_EVENTS,
        summary_cap_plus_one = MAX_SUMMARY_EVENTS + 1,
    );
    b.finish(sql)
}

/// `s` as the inside of a SQL string literal (quotes doubled). Used only for constants of
/// the taxonomy, never for input.
fn sql_literal(s: &str) -> String {
    s.replace('\'', "''")
}

/// Path segments of a dotted payload path that may index an array (`items.0.sku`) take
/// both forms in the containments; beyond this many the filter is applied without the
/// index (bounded by the reader's statement_timeout).
const MAX_INDEXED_ARRAY_SEGMENTS: usize = 3;

/// The JSON documents `payload @> doc` that together find every event whose payload at
/// the dotted path `field` is `value` (JSON equality) or whose text there (`#>>`) equals
/// the value's text: a superset the exact comparison then narrows. Empty when the path
/// has too many numeric segments to enumerate.
pub(crate) fn containment_candidates(field: &str, value: &Value) -> Vec<Value> {
    // The values the path may hold: the value itself, its text as a string, and that text
    // read as JSON (`"42"` matches the number 42 through `#>>`, and `true` the string
    // "true"). `#>>` of a JSON null is SQL NULL, so null is matched only as itself.
    let text = match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let mut leaves = vec![value.clone()];
    if let Some(t) = text {
        leaves.push(Value::String(t.clone()));
        if let Ok(parsed) = serde_json::from_str::<Value>(&t) {
            if !parsed.is_null() {
                leaves.push(parsed);
            }
        }
    }
    let mut unique: Vec<Value> = Vec::new();
    for l in leaves {
        if !unique.contains(&l) {
            unique.push(l);
        }
    }
    let segments: Vec<&str> = field.split('.').collect();
    let numeric = segments.iter().filter(|s| is_array_position(s)).count();
    if numeric > MAX_INDEXED_ARRAY_SEGMENTS {
        return Vec::new();
    }
    let mut docs = unique;
    for seg in segments.iter().rev() {
        let index = is_array_position(seg);
        let mut next = Vec::new();
        for d in docs {
            let mut obj = Map::new();
            obj.insert((*seg).to_string(), d.clone());
            next.push(Value::Object(obj));
            if index {
                // `#>` reads an array element by position; containment finds the arrays
                // holding such an element (a superset, narrowed by the exact comparison).
                next.push(Value::Array(vec![d]));
            }
        }
        docs = next;
    }
    // An array at the top is not a payload (payloads are objects).
    docs.retain(Value::is_object);
    docs
}

/// A path segment `#>` may read as an array position (`0`, `-1`).
fn is_array_position(segment: &str) -> bool {
    let digits = segment.strip_prefix('-').unwrap_or(segment);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether [`containment_candidates`] match exactly the events the comparison
/// `payload #> path = value OR payload #>> path = text` matches (numbers compared as numbers:
/// "42" also matches 42.0): true when the path has no array position and every form of the
/// value is a scalar (nested containment compares scalars for equality).
pub(crate) fn containment_is_exact(field: &str, value: &Value) -> bool {
    if field.split('.').any(is_array_position) || value.is_object() || value.is_array() {
        return false;
    }
    match value {
        Value::String(t) => !matches!(
            serde_json::from_str::<Value>(t),
            Ok(Value::Object(_) | Value::Array(_))
        ),
        _ => true,
    }
}

fn get_event_query(args: &Args) -> Query {
    let mut b = Binder::default();
    let filter = match (args.text("id"), args.text("idempotency_key")) {
        (Some(id), _) => format!("e.id = ({})::uuid", b.text(id)),
        // The key table (never purged) finds the key's event; the audit log's key index
        // covers rows written without it (tools, imports). Both are index look-ups.
        (None, Some(key)) => {
            let k = b.text(key);
            format!(
                "e.id = coalesce((SELECT k.event_id FROM integration.idempotency_keys AS k
                                   WHERE k.idempotency_key = {k}),
                          (SELECT l.id FROM integration.event_log AS l WHERE l.idempotency_key = {k}
                            ORDER BY l.seq LIMIT 1))"
            )
        }
        (None, None) => "FALSE".to_string(),
    };
    // A scalar subquery: exactly one row, NULL when no event matches (a `query` that returns
    // no rows never completes under Spin 4.0.0–4.0.2, spinframework/spin#3671).
    let sql = format!(
        "SELECT (SELECT jsonb_build_object(
    'event', {event} || jsonb_build_object('idempotency_key', e.idempotency_key, 'body_sha256', e.body_sha256),
    'outbox', (SELECT jsonb_build_object('status', o.status, 'attempts', o.attempts,
                   'max_attempts', o.max_attempts, 'last_error', o.last_error,
                   'next_attempt_at', {next}, 'locked_at', {locked}, 'locked_by', o.locked_by,
                   'created_at', {o_created}, 'updated_at', {o_updated}, 'done_at', {done})
                 FROM integration.outbox AS o WHERE o.id = e.id),
    'deliveries', coalesce((SELECT jsonb_agg(jsonb_build_object('channel', d.channel, 'target', d.target,
                   'status', d.status, 'response_code', d.response_code, 'detail', d.detail,
                   'created_at', {d_created}, 'updated_at', {d_updated}) ORDER BY d.created_at, d.id)
                 FROM (SELECT * FROM integration.deliveries AS d0 WHERE d0.event_id = e.id
                        ORDER BY d0.created_at, d0.id LIMIT {max_rows}) AS d), '[]'::jsonb),
    'external_ids', coalesce((SELECT jsonb_agg(jsonb_build_object('odoo_model', m.odoo_model,
                   'odoo_id', m.odoo_id, 'system', m.system, 'external_id', m.external_id,
                   'created_at', {m_created}) ORDER BY m.created_at, m.system)
                 FROM (SELECT * FROM integration.id_map AS m0 WHERE m0.event_id = e.id
                        ORDER BY m0.created_at, m0.system LIMIT {max_rows}) AS m), '[]'::jsonb),
    'aggregate_history', coalesce((SELECT jsonb_agg(jsonb_build_object('id', h.id::text, 'seq', h.seq,
                   'event_type', h.event_type, 'received_at', {h_received}, 'outbox_status', ho.status)
                   ORDER BY h.seq DESC)
                 FROM (SELECT * FROM integration.event_log AS h0
                        WHERE h0.aggregate_type = e.aggregate_type AND h0.aggregate_id = e.aggregate_id
                        ORDER BY h0.seq DESC LIMIT {max_history}) AS h
                 LEFT JOIN integration.outbox AS ho ON ho.id = h.id), '[]'::jsonb)
)
  FROM integration.event_log AS e
 WHERE {filter}) AS result",
        event = event_json("e", PayloadMode::Full),
        next = ts("o.next_attempt_at"),
        locked = ts("o.locked_at"),
        o_created = ts("o.created_at"),
        o_updated = ts("o.updated_at"),
        done = ts("o.done_at"),
        d_created = ts("d.created_at"),
        d_updated = ts("d.updated_at"),
        m_created = ts("m.created_at"),
        h_received = ts("h.received_at"),
        max_rows = MAX_EVENT_DETAIL_ROWS,
        max_history = MAX_AGGREGATE_HISTORY,
    );
    b.finish(sql)
}

fn outbox_health_query(args: &Args) -> Query {
    let mut b = Binder::default();
    let limit = b.int(
        args.int("dead_letter_limit")
            .unwrap_or(DEFAULT_DEAD_LETTER_LIMIT),
    );
    // Status names are the schema's constants (outbox_status_check), written as literals
    // so the partial indexes' predicates match.
    let sql = format!(
        "WITH stats AS (SELECT * FROM integration.outbox_stats())
SELECT jsonb_build_object(
    'by_status', (SELECT jsonb_object_agg(s.status, jsonb_build_object('count', s.count,
                      'oldest_age_seconds', s.oldest_age_seconds)) FROM stats AS s),
    'total', (SELECT coalesce(sum(s.count), 0) FROM stats AS s),
    'queue_depth', (SELECT coalesce(sum(s.count), 0) FROM stats AS s
                     WHERE s.status IN ('pending', 'processing', 'failed')),
    'dead', (SELECT coalesce(sum(s.count), 0) FROM stats AS s WHERE s.status = 'dead'),
    'oldest_pending_age_seconds', (SELECT s.oldest_age_seconds FROM stats AS s WHERE s.status = 'pending'),
    'stuck_processing', (SELECT count(*) FROM integration.outbox AS o
                          WHERE o.status = 'processing' AND o.locked_at < now() - interval '10 minutes'),
    'next_retry_at', (SELECT {next} FROM integration.outbox AS o WHERE o.status = 'failed'),
    'dead_letters', coalesce((SELECT jsonb_agg(jsonb_build_object('id', d.id::text,
                      'event_type', d.event_type, 'aggregate_type', d.aggregate_type,
                      'aggregate_id', d.aggregate_id, 'attempts', d.attempts,
                      'max_attempts', d.max_attempts, 'last_error', d.last_error,
                      'created_at', {d_created}, 'updated_at', {d_updated}) ORDER BY d.updated_at DESC, d.seq DESC)
                    FROM (SELECT * FROM integration.outbox AS d0 WHERE d0.status = 'dead'
                           ORDER BY d0.updated_at DESC, d0.seq DESC LIMIT {limit}) AS d), '[]'::jsonb),
    'generated_at', {now}
) AS result",
        next = ts("min(o.next_attempt_at)"),
        d_created = ts("d.created_at"),
        d_updated = ts("d.updated_at"),
        now = ts("now()"),
    );
    b.finish(sql)
}

fn filters_echo(args: &Args) -> Value {
    let mut v = args.echo();
    if let Some(m) = v.as_object_mut() {
        m.remove("limit");
        m.remove("include_payload");
    }
    v
}

fn describe_filters(args: &Args) -> String {
    let f = filters_echo(args);
    let parts: Vec<String> = f
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" matching {}", parts.join(", "))
    }
}

fn counts(v: &Value) -> String {
    v.as_object()
        .map(|m| {
            let mut items: Vec<(String, i64)> = m
                .iter()
                .map(|(k, n)| (k.clone(), n.as_i64().unwrap_or(0)))
                .collect();
            items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            items
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn events_text(tool: &ToolDef, args: &Args, v: &Value) -> String {
    let total = v["total_matches"].as_u64().unwrap_or(0);
    let returned = v["returned"].as_u64().unwrap_or(0);
    let what = match tool.plan {
        Plan::Domain(d) => format!("{} events", d.domain),
        _ => "events".to_string(),
    };
    let at_least = if v["matches_capped"] == json!(true) {
        "at least "
    } else {
        ""
    };
    let mut s = format!("Found {at_least}{total} {what}{}", describe_filters(args));
    if total > returned {
        s.push_str(&format!("; showing the newest {returned}"));
    }
    s.push('.');
    let summary = &v["summary"];
    if let Plan::Domain(d) = tool.plan {
        match d.domain {
            "expense" => {
                let totals = summary["total_amount_by_currency"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(c, t)| format!("{c} {:.2}", t.as_f64().unwrap_or(0.0)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                if total > 0 {
                    s.push_str(&format!(
                        " {} expense(s) totaling {totals}. Status: {}.",
                        summary["expenses"],
                        counts(&summary["by_status"])
                    ));
                }
            }
            "asset" if total > 0 => s.push_str(&format!(
                " {} booking(s); current states: {}.",
                summary["bookings"],
                counts(&summary["bookings_by_current_state"])
            )),
            "finance" if total > 0 => s.push_str(&format!(
                " {} task(s); current states: {}; overdue: {}.",
                summary["tasks"],
                counts(&summary["tasks_by_current_state"]),
                summary["overdue_tasks"]
            )),
            _ => {}
        }
    } else if total > 0 {
        s.push_str(&format!(" By type: {}.", counts(&summary["by_event_type"])));
    }
    if let Some(newest) = v["events"].get(0) {
        let p = &newest["payload"];
        let mut what = String::new();
        if let Some(d) = p["description"].as_str().or(p["name"].as_str()) {
            what.push_str(&format!(" \"{d}\""));
        }
        if let (Some(a), Some(c)) = (p["amount"].as_f64(), p["currency"].as_str()) {
            what.push_str(&format!(" for {c} {a:.2}"));
        }
        s.push_str(&format!(
            " Most recent: {} {} {}{what}, received {}.",
            newest["event_type"].as_str().unwrap_or("?"),
            newest["aggregate_type"].as_str().unwrap_or("?"),
            newest["aggregate_id"].as_str().unwrap_or("?"),
            newest["received_at"].as_str().unwrap_or("?"),
        ));
    }
    if let Some((_, requested)) = args.capped.first() {
        s.push_str(&format!(
            " (limit {requested} was capped at {MAX_EVENT_LIMIT}.)"
        ));
    }
    s
}

fn get_event_text(v: &Value) -> String {
    let e = &v["event"];
    let o = &v["outbox"];
    let mut s = format!(
        "Event {}: {} for {} {}, received {}.",
        e["id"].as_str().unwrap_or("?"),
        e["event_type"].as_str().unwrap_or("?"),
        e["aggregate_type"].as_str().unwrap_or("?"),
        e["aggregate_id"].as_str().unwrap_or("?"),
        e["received_at"].as_str().unwrap_or("?"),
    );
    if o.is_object() {
        s.push_str(&format!(
            " Outbox: {} after {} attempt(s)",
            o["status"].as_str().unwrap_or("?"),
            o["attempts"]
        ));
        if let Some(err) = o["last_error"].as_str() {
            s.push_str(&format!(", last error: {err}"));
        }
        s.push('.');
    } else {
        s.push_str(" No outbox row.");
    }
    s.push_str(&format!(
        " {} deliveries; {} event(s) in this aggregate's history.",
        v["deliveries"].as_array().map_or(0, Vec::len),
        v["aggregate_history"].as_array().map_or(0, Vec::len)
    ));
    s
}

fn outbox_health_text(v: &Value) -> String {
    let st = &v["by_status"];
    let n = |k: &str| st[k]["count"].as_i64().unwrap_or(0);
    let mut s = format!(
        "Queue depth {} (pending {}, processing {}, failed {}); done {}; dead {}.",
        v["queue_depth"],
        n("pending"),
        n("processing"),
        n("failed"),
        n("done"),
        n("dead")
    );
    if let Some(age) = v["oldest_pending_age_seconds"].as_f64() {
        s.push_str(&format!(" Oldest pending event: {age:.0} s old."));
    }
    if v["stuck_processing"].as_i64().unwrap_or(0) > 0 {
        s.push_str(&format!(
            " {} event(s) stuck in processing.",
            v["stuck_processing"]
        ));
    }
    if let Some(first) = v["dead_letters"].get(0) {
        s.push_str(&format!(
            " Latest dead letter: {} {} {}: {}.",
            first["event_type"].as_str().unwrap_or("?"),
            first["aggregate_type"].as_str().unwrap_or("?"),
            first["aggregate_id"].as_str().unwrap_or("?"),
            first["last_error"].as_str().unwrap_or("(no error)")
        ));
    }
    s
}

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

fn output_schema(plan: Plan) -> Value {
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
    }
}
