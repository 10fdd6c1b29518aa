//! The HTML of `/ops/replay`: the filter form, the dry run with its confirm form, and the
//! audit of recent replays. Plain forms, no script; every value that comes from the
//! request or the database is escaped.

use super::replay::{audit_row, Form, FIELDS, PATH};
use crate::html::{clip, escape, page};
use ipai_core::taxonomy::ROUTES;
use ipai_replay::{FilterError, Preview, REDO_KINDS};
use serde_json::Value;
use std::fmt::Write;

/// What the page shows.
pub(crate) struct Page<'a> {
    pub form: &'a Form,
    /// The token of the confirm form (this session's).
    pub csrf_token: &'a str,
    /// Why the filter was refused, when it was.
    pub refused: Option<&'a FilterError>,
    /// The dry run of the filter, when one was given.
    pub plan: Option<&'a Preview>,
    /// The recent replays, newest first (`None`: not read, the filter was refused).
    pub audit: Option<&'a [Value]>,
    /// The replay a confirm just executed.
    pub done: Option<i64>,
}

const STYLE: &str = "<style>#filter label{display:inline-block;margin:0 14px 8px 0;font-size:12px;color:#5b6372}\
#filter input{display:block;font:13px ui-monospace,monospace;padding:4px 6px;min-width:190px}\
.refused{background:#fef3f2;border:1px solid #fecdca;color:#b42318;padding:8px 12px;border-radius:6px}\
td.effects{font-family:ui-monospace,monospace;font-size:12px}</style>";

/// The label and the hint of each field.
fn describe(name: &str) -> (&'static str, String) {
    match name {
        "type" => ("event type", "expense.* (any)".into()),
        "aggregate" => ("aggregate", "4011 or expense/4011".into()),
        "since" => ("stored since", "2026-12-07T08:00:00Z".into()),
        "until" => ("stored before", "2026-12-07T14:00:00Z".into()),
        "status" => ("status", "dead,failed (default) or done".into()),
        "target" => (
            "handler",
            ROUTES.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
        ),
        "redo_effects" => ("perform again", REDO_KINDS.join(", ")),
        _ => ("", String::new()),
    }
}

fn filter_form(b: &mut String, p: &Page<'_>) {
    b.push_str("<section id=\"filter\"><h2>Filter</h2>");
    if let Some(e) = p.refused {
        let _ = write!(
            b,
            "<p class=\"refused\" id=\"refused\" data-field=\"{}\">{}</p>",
            escape(e.field),
            escape(&e.to_string())
        );
    }
    let _ = write!(
        b,
        "<form method=\"get\" action=\"{PATH}\" id=\"filter-form\">"
    );
    for name in FIELDS {
        let (label, hint) = describe(name);
        let _ = write!(
            b,
            "<label>{label}<input name=\"{name}\" value=\"{}\" placeholder=\"{}\"></label>",
            escape(p.form.value(name)),
            escape(&hint)
        );
    }
    b.push_str(
        "<div><button type=\"submit\" data-testid=\"show-plan\">Show the plan</button></div></form>\
         <p class=\"empty\">Showing the plan changes nothing. A replay requeues dead and failed \
         events; done events are delivered again only when the status asks for them, and the \
         deliveries ledger still skips every effect it records as performed, except the kinds \
         named to perform again.</p></section>",
    );
}

fn card(b: &mut String, label: &str, testid: &str, n: impl std::fmt::Display) {
    let _ = write!(
        b,
        "<div class=\"card\"><div class=\"label\">{}</div><div class=\"count\" data-testid=\"{}\">{n}</div></div>",
        escape(label),
        escape(testid)
    );
}

fn plan_section(b: &mut String, p: &Page<'_>, plan: &Preview) {
    b.push_str("<section id=\"plan\"><h2>Plan — a dry run: nothing has changed yet</h2><div class=\"cards\">");
    card(b, "matched", "matched", plan.matched);
    if let Some(by_status) = plan.by_status.as_object() {
        for (status, n) in by_status {
            card(
                b,
                status,
                &format!("status-{status}"),
                n.as_i64().unwrap_or(0),
            );
        }
    }
    card(b, "followers", "followers", plan.followers);
    card(b, "effects to run", "effects-run", plan.runs);
    card(b, "effects to skip", "effects-skip", plan.skips);
    b.push_str(
        "</div><p class=\"empty\">Followers are the later done events of the same aggregates: \
         they are delivered again after them so the dashboards end at the newest state; the \
         ledger skips their recorded effects.</p>",
    );
    if plan.events.is_empty() {
        b.push_str("<p class=\"empty\" id=\"nothing\">No event matches this filter: nothing to replay.</p>");
    } else {
        b.push_str(
            "<table id=\"plan-events\"><thead><tr><th>event</th><th>type</th><th>aggregate</th>\
             <th>status</th><th>would run</th><th>would skip (recorded)</th></tr></thead><tbody>",
        );
        for e in &plan.events {
            let note = e
                .note
                .as_deref()
                .map(|n| format!("<br><small>{}</small>", escape(&clip(n, 300))))
                .unwrap_or_default();
            let _ = write!(
                b,
                "<tr class=\"plan-row\" data-event-id=\"{id}\"><td><code>{id}</code></td><td>{}</td>\
                 <td>{}</td><td>{}{}{note}</td><td class=\"effects\">{}</td><td class=\"effects\">{}</td></tr>",
                escape(&e.event_type),
                escape(&e.aggregate),
                escape(&e.status),
                if e.follower { " · follows" } else { "" },
                escape(&e.run.join(", ")),
                escape(&e.skip.join(", ")),
                id = escape(&e.id)
            );
        }
        b.push_str("</tbody></table>");
        if !plan.complete() {
            let _ = write!(
                b,
                "<p class=\"empty\">Showing the first {} of {} events (<code>ipai replay --json</code> lists them all); the counts cover them all.</p>",
                plan.events.len(),
                plan.matched + plan.followers
            );
        }
    }
    if plan.matched > 0 {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"{PATH}\" id=\"confirm\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape(p.csrf_token)
        );
        for name in FIELDS {
            let _ = write!(
                b,
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(p.form.value(name))
            );
        }
        let _ = write!(
            b,
            "<button type=\"submit\" data-testid=\"confirm\">Replay {} event(s) and {} follower(s)</button></form>",
            plan.matched, plan.followers
        );
    }
    b.push_str("</section>");
}

/// A JSON field of an audit row as text (strings without their quotes).
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp without its fractional seconds (`2026-12-07T08:00:00.123+00:00` →
/// `2026-12-07 08:00:00+00:00`).
fn short_time(v: &Value) -> String {
    let s = text(v).replacen('T', " ", 1);
    match s.find('.') {
        Some(dot) => {
            let rest = &s[dot + 1..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            format!("{}{}", &s[..dot], &rest[end..])
        }
        None => s,
    }
}

fn redo_list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn done_notice(b: &mut String, id: i64, audit: &[Value]) {
    match audit_row(audit, id) {
        Some(r) => {
            let finished = !r["finished_at"].is_null();
            let _ = write!(
                b,
                "<p class=\"notice{}\" id=\"notice\">Replay #{id}: {} event(s) requeued, {} recorded effect(s) reopened to run again. {}</p>",
                if finished { "" } else { " warn" },
                r["requeued"].as_i64().unwrap_or(0),
                r["redone"].as_i64().unwrap_or(0),
                if finished {
                    "The next dispatch run delivers them."
                } else {
                    "Unfinished: confirm the same filter again to resume it where it stopped."
                }
            );
        }
        None => {
            let _ = write!(
                b,
                "<p class=\"notice\" id=\"notice\">Replay #{id} executed: the next dispatch run delivers its events.</p>"
            );
        }
    }
}

fn audit_section(b: &mut String, audit: &[Value]) {
    b.push_str("<section id=\"audit\"><h2>Recent replays</h2>");
    if audit.is_empty() {
        b.push_str("<p class=\"empty\">No replay yet.</p></section>");
        return;
    }
    b.push_str(
        "<table id=\"replays\"><thead><tr><th>#</th><th>who</th><th>via</th><th>filter</th>\
         <th>performed again</th><th>matched</th><th>followers</th><th>requeued</th>\
         <th>reopened</th><th>started</th><th>finished</th></tr></thead><tbody>",
    );
    for r in audit {
        let finished = if r["finished_at"].is_null() {
            "unfinished".to_string()
        } else {
            short_time(&r["finished_at"])
        };
        let _ = write!(
            b,
            "<tr class=\"replay-row\" data-replay-id=\"{}\"><td>{}</td><td>{}</td><td>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(&text(&r["id"])),
            escape(&text(&r["id"])),
            escape(&text(&r["requested_by"])),
            escape(&text(&r["via"])),
            escape(&clip(&text(&r["filter"]), 400)),
            escape(&redo_list(&r["redo_effects"])),
            escape(&text(&r["matched"])),
            escape(&text(&r["followers"])),
            escape(&text(&r["requeued"])),
            escape(&text(&r["redone"])),
            escape(&short_time(&r["started_at"])),
            escape(&finished),
        );
    }
    b.push_str("</tbody></table></section>");
}

/// The page.
pub(crate) fn render(p: &Page<'_>) -> String {
    let mut b = String::from(
        "<header><h1>IPAI Integration Bus · replay by filter</h1>\
         <p><a href=\"/ops\">dashboard</a> · <a href=\"/ops/replay\">new filter</a></p></header><main>",
    );
    b.push_str(STYLE);
    if let (Some(id), Some(audit)) = (p.done, p.audit) {
        done_notice(&mut b, id, audit);
    }
    filter_form(&mut b, p);
    if let Some(plan) = p.plan {
        plan_section(&mut b, p, plan);
    }
    if let Some(audit) = p.audit {
        audit_section(&mut b, audit);
    }
    b.push_str("</main>");
    page("IPAI ops · replay", &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_lose_their_fractional_seconds_only() {
        assert_eq!(
            short_time(&json!("2026-12-07T08:00:00.123456+00:00")),
            "2026-12-07 08:00:00+00:00"
        );
        assert_eq!(
            short_time(&json!("2026-12-07T08:00:00Z")),
            "2026-12-07 08:00:00Z"
        );
        assert_eq!(short_time(&Value::Null), "");
    }
}
