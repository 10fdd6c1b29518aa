//! The open alerts as `/metrics` and the `/ops` banner show them.

use super::{fix, what, OpenAlert, FIXED_CONDITIONS, OPEN_SQL};
use crate::{decode, value, Database, DbError};
use std::fmt::Write;

/// The open alerts (for `/metrics` and `/ops`); an error is logged, not fatal.
pub fn open_alerts(db: &mut dyn Database) -> Result<Vec<OpenAlert>, DbError> {
    value(db, OPEN_SQL, &[]).and_then(decode)
}

/// `ipai_alerts_open{condition=…}`: 1 per open alert, 0 for the fixed conditions that
/// are not open.
pub fn render_metrics(open: &[OpenAlert]) -> String {
    let mut out = String::from(
        "# HELP ipai_alerts_open Open alerts by condition (1 = open), see /ops.\n\
         # TYPE ipai_alerts_open gauge\n",
    );
    let mut conditions: Vec<&str> = open.iter().map(|a| a.condition.as_str()).collect();
    for f in FIXED_CONDITIONS {
        if !conditions.contains(&f) {
            conditions.push(f);
        }
    }
    conditions.sort_unstable();
    for c in conditions {
        let n = i32::from(open.iter().any(|a| a.condition == c));
        let _ = writeln!(
            out,
            "ipai_alerts_open{{condition=\"{}\"}} {n}",
            crate::metrics::escape_label(c)
        );
    }
    out
}

/// The banner at the top of `/ops` (empty when nothing is open).
pub fn render_banner(open: &[OpenAlert], base: &str) -> String {
    if open.is_empty() {
        return String::new();
    }
    let esc = crate::html::escape;
    let mut b =
        String::from("<section id=\"alerts\" class=\"notice warn\"><h2>Open alerts</h2><ul>");
    for a in open {
        let _ = write!(
            b,
            "<li class=\"alert\" data-condition=\"{}\"><strong>{}</strong> — {} event(s), open {} (since {}). <em>{}</em>",
            esc(&a.condition),
            esc(&what(&a.condition)),
            a.events,
            crate::html::human_age(a.open_for_s as f64),
            esc(&a.first_seen_at),
            esc(&fix(&a.condition, base)),
        );
        if !a.detail.is_empty() {
            let detail: String = a.detail.chars().take(300).collect();
            let _ = write!(b, "<br><code>{}</code>", esc(&detail));
        }
        b.push_str("</li>");
    }
    b.push_str("</ul></section>");
    b
}
