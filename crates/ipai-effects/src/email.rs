//! Email through Resend's HTTP API (`POST https://api.resend.com/emails`,
//! `Authorization: Bearer <key>`, JSON `{"from", "to": [...], "cc"?: [...], "subject",
//! "html", "text"}`, answer `{"id": "..."}`), with Resend's `Idempotency-Key` header so a
//! retried send is not delivered twice.

use serde_json::{json, Map, Value};

/// One email, provider-neutral until `resend_body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl Email {
    /// The Resend `POST /emails` body.
    pub fn resend_body(&self, from: &str) -> Value {
        let mut m = Map::new();
        m.insert("from".into(), json!(from));
        m.insert("to".into(), json!(self.to));
        if !self.cc.is_empty() {
            m.insert("cc".into(), json!(self.cc));
        }
        m.insert("subject".into(), json!(self.subject));
        m.insert("html".into(), json!(self.html));
        m.insert("text".into(), json!(self.text));
        Value::Object(m)
    }
}

/// Resend's idempotency key for the email of `event_id` to `target` (at most 256 chars).
/// `redo` above 0 (a replay performing it again) gives the key of that redo, `…#redo1`:
/// Resend answers a known key from its record for 24 hours and would send nothing.
pub fn idempotency_key(event_id: &str, target: &str, redo: u32) -> String {
    let suffix = match redo {
        0 => String::new(),
        n => format!("#redo{n}"),
    };
    let key = format!("ipai/{event_id}/{target}");
    key.chars()
        .take(256 - suffix.len())
        .chain(suffix.chars())
        .collect()
}

/// Who gets an `asset.overdue` email at escalation `level` (1–3): always the employee;
/// from level 2 the manager in CC; at level 3 also the IT admin. Duplicates and empty
/// addresses are dropped; a CC equal to the recipient is dropped.
pub fn escalation_cc(level: i64, manager: Option<&str>, it_admin: Option<&str>) -> Vec<String> {
    let mut cc: Vec<String> = Vec::new();
    let mut add = |a: Option<&str>| {
        if let Some(a) = a.map(str::trim).filter(|a| !a.is_empty()) {
            if !cc.iter().any(|c| c.eq_ignore_ascii_case(a)) {
                cc.push(a.to_string());
            }
        }
    };
    if level >= 2 {
        add(manager);
    }
    if level >= 3 {
        add(it_admin);
    }
    cc
}

/// Wraps paragraphs (already HTML-escaped) and a table of (label, escaped value) rows in a
/// minimal, widely rendered HTML body.
pub fn html_body(heading: &str, paragraphs: &[String], rows: &[(&str, String)]) -> String {
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:Arial,sans-serif;color:#1f2328\">",
    );
    html.push_str(&format!("<h2 style=\"margin:0 0 12px\">{heading}</h2>"));
    for p in paragraphs {
        html.push_str(&format!("<p>{p}</p>"));
    }
    if !rows.is_empty() {
        html.push_str("<table style=\"border-collapse:collapse\">");
        for (label, value) in rows {
            html.push_str(&format!(
                "<tr><th style=\"text-align:left;padding:4px 12px 4px 0\">{label}</th><td style=\"padding:4px 0\">{value}</td></tr>"
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("<p style=\"color:#656d76;font-size:12px\">Sent by the IPAI integration bus.</p></body></html>");
    html
}

/// The plain-text alternative of `html_body` (unescaped inputs).
pub fn text_body(heading: &str, paragraphs: &[String], rows: &[(&str, String)]) -> String {
    let mut t = format!("{heading}\n\n");
    for p in paragraphs {
        t.push_str(p);
        t.push_str("\n\n");
    }
    for (label, value) in rows {
        t.push_str(&format!("{label}: {value}\n"));
    }
    t.push_str("\n-- \nSent by the IPAI integration bus.\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_levels_copy_manager_then_it_admin() {
        let m = Some("boss@x.com");
        let it = Some("it@x.com");
        assert!(escalation_cc(1, m, it).is_empty());
        assert_eq!(escalation_cc(2, m, it), vec!["boss@x.com"]);
        assert_eq!(escalation_cc(3, m, it), vec!["boss@x.com", "it@x.com"]);
        assert_eq!(escalation_cc(3, None, it), vec!["it@x.com"]);
        assert_eq!(escalation_cc(3, m, Some("BOSS@x.com")), vec!["boss@x.com"]);
    }

    #[test]
    fn the_resend_body_has_from_to_cc_subject_html_and_text() {
        let e = Email {
            to: vec!["a@x.com".into()],
            cc: vec![],
            subject: "S".into(),
            html: "<p>h</p>".into(),
            text: "t".into(),
        };
        let b = e.resend_body("Bus <bus@x.com>");
        assert_eq!(
            b,
            json!({"from": "Bus <bus@x.com>", "to": ["a@x.com"], "subject": "S", "html": "<p>h</p>", "text": "t"})
        );
        let with_cc = Email {
            cc: vec!["c@x.com".into()],
            ..e
        };
        assert_eq!(with_cc.resend_body("f")["cc"], json!(["c@x.com"]));
        assert_eq!(idempotency_key("e1", "a@x.com", 0), "ipai/e1/a@x.com");
        assert_eq!(idempotency_key("e", &"x".repeat(400), 0).len(), 256);
        assert_eq!(idempotency_key("e1", "a@x.com", 2), "ipai/e1/a@x.com#redo2");
        let long = idempotency_key("e", &"x".repeat(400), 1);
        assert_eq!((long.len(), long.ends_with("#redo1")), (256, true));
    }
}
