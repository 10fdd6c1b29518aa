//! The SQL each tool runs, split out of `tools` so the statements sit apart from the
//! catalog and the rendering: static text with every filter value a bound parameter
//! ([`Binder`]), and the per-domain summary fragments of the domain query tools.

use super::{
    domain, Args, DomainTool, DEFAULT_DEAD_LETTER_LIMIT, DEFAULT_EVENT_LIMIT,
    MAX_AGGREGATE_HISTORY, MAX_EVENT_DETAIL_ROWS, MAX_LISTED_PAYLOAD_BYTES, MAX_SUMMARY_EVENTS,
};
use crate::sql::{ts, Binder, Query};
use serde_json::{json, Map, Value};

/// `query_expense_events`: status, currency, employee and amount per event.
pub(super) const EXPENSE_TOOL: DomainTool = DomainTool {
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
};

/// `query_asset_events`: asset and escalation level per event.
pub(super) const ASSET_TOOL: DomainTool = DomainTool {
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
};

/// `query_finance_events`: BIR form, period, deadline, status and days overdue per event.
pub(super) const FINANCE_TOOL: DomainTool = DomainTool {
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
};

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
pub(super) fn events_query(args: &Args, domain_tool: Option<DomainTool>) -> Query {
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

pub(super) fn get_event_query(args: &Args) -> Query {
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

pub(super) fn outbox_health_query(args: &Args) -> Query {
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
