//! The server-rendered `/ops` dashboard: plain HTML forms and an inline SVG, no script,
//! every database value escaped.

use crate::chart::{self, Volume};
use crate::data::{DashboardData, OutboxRow, STATUSES};
use std::fmt::Write;

pub use ipai_core::html::escape;

/// A duration for people: `42 s`, `7 min`, `3.5 h`, `2.0 d`.
pub fn human_age(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 120.0 {
        format!("{} s", s.round() as i64)
    } else if s < 7200.0 {
        format!("{} min", (s / 60.0).round() as i64)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// A one-line notice shown above the dashboard after a form action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Requeued(String),
    Unchanged(String),
}

impl Notice {
    /// Reads the notice a redirect put into the query string (ids must be UUIDs, so
    /// nothing from the URL reaches the page but a validated id).
    pub fn from_query(query: &str) -> Option<Notice> {
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if crate::data::is_uuid(&v) {
                match k.as_ref() {
                    "requeued" => return Some(Notice::Requeued(v.into_owned())),
                    "unchanged" => return Some(Notice::Unchanged(v.into_owned())),
                    _ => {}
                }
            }
        }
        None
    }
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}\
header{background:#1d2330;color:#fff;padding:12px 24px}header h1{font-size:18px;margin:0}\
header p{margin:4px 0 0;color:#c8ccd4;font-size:12px}header a{color:#9cc3ff}\
main{padding:16px 24px;max-width:1200px}section{background:#fff;border:1px solid #e2e5ea;border-radius:6px;padding:12px 16px;margin:0 0 16px}\
h2{font-size:15px;margin:0 0 10px}.cards{display:flex;flex-wrap:wrap;gap:10px}\
.card{border:1px solid #e2e5ea;border-radius:6px;padding:8px 14px;min-width:110px}\
.card .label{font-size:12px;color:#5b6372;text-transform:uppercase;letter-spacing:.04em}.card .count{font-size:24px;font-weight:600}\
.card.dead.nonzero .count{color:#b42318}.card.failed.nonzero .count{color:#b54708}.card.alert{border-color:#b42318;background:#fef3f2}\
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}\
th{font-size:12px;color:#5b6372;font-weight:600}code{font-size:12px}\
td.error{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word;max-width:480px;color:#7a271a}\
button{background:#1d4ed8;color:#fff;border:0;border-radius:4px;padding:5px 12px;cursor:pointer}button:hover{background:#1e40af}\
.notice{background:#ecfdf3;border:1px solid #abefc6;color:#05603a;padding:8px 12px;border-radius:6px;margin:0 0 16px}\
.notice.warn{background:#fffaeb;border-color:#fedf89;color:#93370d}.empty{color:#5b6372;margin:0}";

/// Everything the page needs besides the data.
pub struct PageContext<'a> {
    /// The CSRF token for this session (hidden field of every form).
    pub csrf_token: &'a str,
    pub notice: Option<Notice>,
    /// Oldest pending age above which the queue card is marked.
    pub max_pending_age_s: f64,
    pub lock_timeout_s: i64,
}

/// A whole page: the shared head and style around `body`.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{STYLE}</style></head>\
         <body>{body}</body></html>",
        escape(title)
    )
}

/// A small page for errors (database unreachable, refused form).
pub fn message_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<header><h1>IPAI Integration Bus · operations</h1></header><main><section>\
             <h2>{}</h2><p id=\"message\">{}</p><p><a href=\"/ops\">Back to the dashboard</a></p>\
             </section></main>",
            escape(title),
            escape(message)
        ),
    )
}

fn requeue_form(id: &str, token: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/ops/outbox/{id}/requeue\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" data-testid=\"requeue\" aria-label=\"Requeue event {id}\">Requeue</button></form>",
        escape(token),
        id = escape(id)
    )
}

fn aggregate(r: &OutboxRow) -> String {
    escape(&format!("{}/{}", r.aggregate_type, r.aggregate_id))
}

fn error_cell(r: &OutboxRow) -> String {
    let e = r.last_error.as_deref().unwrap_or("");
    format!(
        "<td class=\"error\" title=\"{}\">{}</td>",
        escape(&clip(e, 2000)),
        escape(&clip(e, 300))
    )
}

/// The dashboard.
pub fn dashboard(d: &DashboardData, ctx: &PageContext<'_>) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<header><h1>IPAI Integration Bus · operations</h1>\
         <p>As of <time id=\"generated-at\">{}</time> · <a href=\"/ops\">refresh</a> · \
         <a href=\"/metrics\">metrics</a> · <a href=\"/health\">health</a> · \
         <a href=\"/ops/replay\" id=\"replay-link\">Replay…</a></p></header><main>",
        escape(&d.now)
    );
    match &ctx.notice {
        Some(Notice::Requeued(id)) => {
            let _ = write!(
                b,
                "<p class=\"notice\" id=\"notice\">Event <code>{}</code> requeued: the next dispatch run delivers it.</p>",
                escape(id)
            );
        }
        Some(Notice::Unchanged(id)) => {
            let _ = write!(
                b,
                "<p class=\"notice warn\" id=\"notice\">Event <code>{}</code> was not dead or failed any more; nothing changed.</p>",
                escape(id)
            );
        }
        None => {}
    }

    // Queue depth.
    b.push_str("<section id=\"queue\"><h2>Queue</h2><div class=\"cards\">");
    for status in STATUSES {
        let n = d.counts.get(status).copied().unwrap_or(0);
        let _ = write!(
            b,
            "<div class=\"card {status}{}\" data-status=\"{status}\"><div class=\"label\">{status}</div>\
             <div class=\"count\" data-testid=\"count-{status}\">{n}</div></div>",
            if n > 0 { " nonzero" } else { "" }
        );
    }
    let age = d.oldest_pending_age_s;
    let alert = age.is_some_and(|a| a > ctx.max_pending_age_s);
    let _ = write!(
        b,
        "<div class=\"card{}\" data-status=\"oldest-pending\"><div class=\"label\">oldest pending</div>\
         <div class=\"count\" data-testid=\"oldest-pending\">{}</div></div></div></section>",
        if alert { " alert" } else { "" },
        age.map_or_else(|| "—".to_string(), human_age)
    );

    // Volume chart.
    let volume = Volume::from_rows(d.hour_now, &d.volume);
    let _ = write!(
        b,
        "<section id=\"volume\"><h2>Event volume per domain, last 24 hours (UTC)</h2>{}</section>",
        chart::render(&volume)
    );

    // Dead letters.
    let _ = write!(
        b,
        "<section id=\"dead-letters\"><h2>Dead letters (<span data-testid=\"dead-total\">{}</span>)</h2>",
        d.dead_total
    );
    if d.dead.is_empty() {
        b.push_str("<p class=\"empty\">No dead letters.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th>event</th><th>type</th><th>aggregate</th><th>attempts</th>\
             <th>last error</th><th>dead since</th><th></th></tr></thead><tbody>",
        );
        for r in &d.dead {
            let _ = write!(
                b,
                "<tr class=\"dead-row\" data-event-id=\"{id}\"><td><code>{id}</code></td><td>{}</td>\
                 <td>{}</td><td>{}/{}</td>{}<td>{}</td><td>{}</td></tr>",
                escape(&r.event_type),
                aggregate(r),
                r.attempts,
                r.max_attempts,
                error_cell(r),
                escape(&r.updated_at),
                requeue_form(&r.id, ctx.csrf_token),
                id = escape(&r.id)
            );
        }
        b.push_str("</tbody></table>");
        if d.dead_total > d.dead.len() as i64 {
            let _ = write!(
                b,
                "<p class=\"empty\">Showing the {} most recent of {}.</p>",
                d.dead.len(),
                d.dead_total
            );
        }
    }
    b.push_str("</section>");

    // Stuck processing rows.
    let _ = write!(
        b,
        "<section id=\"stuck\"><h2>Stuck in processing (<span data-testid=\"stuck-total\">{}</span>)</h2>\
         <p class=\"empty\">Locked longer than the lock timeout ({} s): their dispatcher run died; \
         the next claim takes them back.</p>",
        d.stuck_total, ctx.lock_timeout_s
    );
    if !d.stuck.is_empty() {
        b.push_str(
            "<table><thead><tr><th>event</th><th>type</th><th>aggregate</th><th>attempt</th>\
             <th>locked by</th><th>locked for</th></tr></thead><tbody>",
        );
        for r in &d.stuck {
            let _ = write!(
                b,
                "<tr class=\"stuck-row\" data-event-id=\"{id}\"><td><code>{id}</code></td><td>{}</td>\
                 <td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.event_type),
                aggregate(r),
                r.attempts,
                r.max_attempts,
                escape(r.locked_by.as_deref().unwrap_or("")),
                r.locked_age_s.map_or_else(String::new, human_age),
                id = escape(&r.id)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");

    // Retrying (failed) rows.
    let failed_total = d.counts.get("failed").copied().unwrap_or(0);
    let _ = write!(
        b,
        "<section id=\"retrying\"><h2>Retrying (<span data-testid=\"failed-total\">{failed_total}</span>)</h2>"
    );
    if d.failed.is_empty() {
        b.push_str("<p class=\"empty\">No failed deliveries waiting for a retry.</p>");
    } else {
        b.push_str(
            "<table><thead><tr><th>event</th><th>type</th><th>aggregate</th><th>attempts</th>\
             <th>last error</th><th>next attempt in</th><th></th></tr></thead><tbody>",
        );
        for r in &d.failed {
            let _ = write!(
                b,
                "<tr class=\"failed-row\" data-event-id=\"{id}\"><td><code>{id}</code></td><td>{}</td>\
                 <td>{}</td><td>{}/{}</td>{}<td>{}</td><td>{}</td></tr>",
                escape(&r.event_type),
                aggregate(r),
                r.attempts,
                r.max_attempts,
                error_cell(r),
                r.next_attempt_in_s.map_or_else(String::new, human_age),
                requeue_form(&r.id, ctx.csrf_token),
                id = escape(&r.id)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section></main>");
    page("IPAI ops", &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::VolumeRow;

    fn row(id: &str, error: &str) -> OutboxRow {
        OutboxRow {
            id: id.into(),
            event_type: "expense.submitted".into(),
            aggregate_type: "expense".into(),
            aggregate_id: "42".into(),
            attempts: 10,
            max_attempts: 10,
            last_error: Some(error.into()),
            created_at: "2026-11-26 10:00:00 UTC".into(),
            updated_at: "2026-11-26 11:00:00 UTC".into(),
            ..Default::default()
        }
    }

    const ID: &str = "4d0c2a6e-1b2c-4d5e-8f90-a1b2c3d4e5f6";

    fn data() -> DashboardData {
        DashboardData {
            now: "2026-11-26 12:00:00 UTC".into(),
            counts: [("pending", 2), ("dead", 1), ("done", 7)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            oldest_pending_age_s: Some(400.0),
            hour_now: 1_795_600_800,
            volume: vec![VolumeRow {
                hour: 1_795_600_800,
                event_type: "expense.submitted".into(),
                count: 3,
            }],
            dead_total: 1,
            dead: vec![row(ID, "<script>alert(1)</script> 500 \"boom\"")],
            ..Default::default()
        }
    }

    fn ctx() -> PageContext<'static> {
        PageContext {
            csrf_token: "123.abc",
            notice: None,
            max_pending_age_s: 300.0,
            lock_timeout_s: 600,
        }
    }

    #[test]
    fn counts_chart_and_dead_letters_with_a_requeue_form_are_rendered() {
        let html = dashboard(&data(), &ctx());
        assert!(html.contains("data-testid=\"count-pending\">2<"));
        assert!(html.contains("data-testid=\"count-processing\">0<"));
        assert!(html.contains("data-testid=\"count-done\">7<"));
        assert!(html.contains("data-testid=\"dead-total\">1<"));
        assert!(html.contains("<svg id=\"volume-chart\""));
        assert!(html.contains(&format!("action=\"/ops/outbox/{ID}/requeue\"")));
        assert!(html.contains("name=\"csrf\" value=\"123.abc\""));
        assert!(
            html.contains("class=\"card alert\""),
            "oldest pending over the limit is marked"
        );
        assert!(
            !html.contains("<script"),
            "no script, and errors are escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; 500 &quot;boom&quot;"));
    }

    #[test]
    fn empty_lists_say_so() {
        let d = DashboardData {
            now: "x".into(),
            hour_now: 0,
            ..Default::default()
        };
        let html = dashboard(&d, &ctx());
        assert!(html.contains("No dead letters."));
        assert!(html.contains("data-testid=\"oldest-pending\">—<"));
    }

    #[test]
    fn notices_only_carry_validated_ids() {
        assert_eq!(
            Notice::from_query(&format!("requeued={ID}")),
            Some(Notice::Requeued(ID.into()))
        );
        assert_eq!(Notice::from_query("requeued=%3Cscript%3E"), None);
        assert_eq!(
            Notice::from_query(&format!("x=1&unchanged={ID}")),
            Some(Notice::Unchanged(ID.into()))
        );
        let mut c = ctx();
        c.notice = Some(Notice::Requeued(ID.into()));
        assert!(dashboard(&data(), &c).contains("id=\"notice\""));
    }

    #[test]
    fn helpers_escape_clip_and_humanise() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(human_age(42.4), "42 s");
        assert_eq!(human_age(600.0), "10 min");
        assert_eq!(human_age(3.5 * 3600.0), "3.5 h");
        assert_eq!(human_age(3.0 * 86_400.0), "3.0 d");
        assert!(message_page("Down", "<x>").contains("&lt;x&gt;"));
    }
}
