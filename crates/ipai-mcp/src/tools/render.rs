//! Rendering, split out of `tools` so turning a query's row into the tool result sits
//! apart from the catalog and the SQL: the structured result (with the call's limit and
//! filters echoed) and the one-paragraph text summary an agent reads first.

use super::{Args, Plan, ToolDef, DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT};
use serde_json::{json, Value};

impl ToolDef {
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
            Plan::ReconcileStatus => Ok((crate::reconcile_tool::text(&v), v)),
            Plan::ReplayPreview => Ok((crate::replay_tool::text(&v, args), v)),
        }
    }
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
