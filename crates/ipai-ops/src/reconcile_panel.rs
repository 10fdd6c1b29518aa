//! The reconciliation panel of `/ops` (SPEC §11, issue #37): whether everything Odoo marked
//! sent is in the bus, when the last digest came, and each window still missing events with
//! its keys — what an operator answers an auditor with. The data is
//! `ipai_reconcile::status` (the same as `ipai reconcile` and MCP's `reconcile_status`).

use crate::html::escape;
use serde_json::Value;
use std::fmt::Write;

/// Missing keys listed per window (the CLI's `--json` lists all).
const LISTED_KEYS: usize = 10;

/// The panel's HTML for a `reconcile_status` value.
pub fn render(status: &Value) -> String {
    let missing = status["missing_total"].as_i64().unwrap_or_default();
    let last = status["last_digest_at"].as_str();
    let windows = status["windows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut b = String::from("<section id=\"reconcile\"><h2>Reconciliation with Odoo</h2>");
    let verdict = match (missing, last) {
        (_, None) => "No digest has come from Odoo yet: reconciliation starts with the addon's \
                      first hourly digest (or its \"Send digest now\")."
            .to_string(),
        (0, Some(_)) => format!(
            "Nothing missing: every event in the {} digested window(s) is stored.",
            windows.len()
        ),
        (n, Some(_)) => format!(
            "{n} event(s) Odoo marked sent are not in the bus; the bus asked Odoo to send them again."
        ),
    };
    let _ = write!(
        b,
        "<p><span data-testid=\"reconcile-missing\">{missing}</span> missing · last digest \
         <span data-testid=\"reconcile-last-digest\">{}</span></p><p>{}</p>",
        escape(last.unwrap_or("never")),
        escape(&verdict)
    );
    let open: Vec<&Value> = windows
        .iter()
        .filter(|w| w["missing"].as_array().is_some_and(|m| !m.is_empty()))
        .collect();
    if !open.is_empty() {
        b.push_str(
            "<table><thead><tr><th>Source</th><th>Window (UTC)</th><th>Expected</th>\
             <th>Found</th><th>Missing keys</th></tr></thead><tbody>",
        );
        for w in open {
            let keys: Vec<&str> = w["missing"]
                .as_array()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut listed = keys
                .iter()
                .take(LISTED_KEYS)
                .map(|k| format!("<code>{}</code>", escape(k)))
                .collect::<Vec<_>>()
                .join("<br>");
            if keys.len() > LISTED_KEYS {
                let _ = write!(
                    listed,
                    "<br>… {} more (<code>ipai reconcile --json</code>)",
                    keys.len() - LISTED_KEYS
                );
            }
            let _ = write!(
                b,
                "<tr data-testid=\"reconcile-window\"><td>{}</td><td>{} – {}</td><td>{}</td>\
                 <td>{}</td><td>{listed}</td></tr>",
                escape(w["source"].as_str().unwrap_or_default()),
                escape(w["window_start"].as_str().unwrap_or_default()),
                escape(w["window_end"].as_str().unwrap_or_default()),
                w["expected"].as_i64().unwrap_or_default(),
                w["found"].as_i64().unwrap_or_default(),
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>");
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_panel_names_each_window_missing_events_and_escapes_its_keys() {
        let s = json!({"missing_total": 2, "last_digest_at": "2026-12-08T03:00:05+00:00",
            "windows": [
                {"source": "odoo", "window_start": "2026-12-08T02:00:00+00:00",
                 "window_end": "2026-12-08T03:00:00+00:00", "expected": 5, "found": 3,
                 "missing": ["k<1>", "k2"]},
                {"source": "odoo", "window_start": "2026-12-08T01:00:00+00:00",
                 "window_end": "2026-12-08T02:00:00+00:00", "expected": 4, "found": 4,
                 "missing": []}]});
        let h = render(&s);
        assert!(
            h.contains("<span data-testid=\"reconcile-missing\">2</span>"),
            "{h}"
        );
        assert!(h.contains("2 event(s) Odoo marked sent are not in the bus"));
        assert_eq!(h.matches("data-testid=\"reconcile-window\"").count(), 1);
        assert!(
            h.contains("<code>k&lt;1&gt;</code><br><code>k2</code>"),
            "{h}"
        );
        assert!(h.contains("<td>5</td><td>3</td>"));
    }

    #[test]
    fn before_the_first_digest_the_panel_says_reconciliation_has_not_started() {
        let h = render(&json!({"missing_total": 0, "last_digest_at": null, "windows": []}));
        assert!(h.contains("No digest has come from Odoo yet"), "{h}");
        assert!(!h.contains("<table>"));
    }

    #[test]
    fn a_long_list_is_cut_with_the_command_that_lists_all() {
        let keys: Vec<String> = (0..13).map(|n| format!("k{n}")).collect();
        let h = render(
            &json!({"missing_total": 13, "last_digest_at": "t", "windows": [
            {"source": "o", "window_start": "a", "window_end": "b", "expected": 13, "found": 0,
             "missing": keys}]}),
        );
        assert!(
            h.contains("… 3 more (<code>ipai reconcile --json</code>)"),
            "{h}"
        );
    }
}
