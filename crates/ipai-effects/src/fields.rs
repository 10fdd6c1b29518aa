//! Reading the event payload (SPEC §4) leniently: Odoo sends `false` for an empty
//! field, ids as numbers or strings, dates in several ISO 8601 shapes. Everything here
//! turns such values into `Option`s of clean text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

/// A payload field as text: strings trimmed, numbers printed; `null`, `false`, `""`,
/// objects and arrays are `None`.
pub fn text(payload: &Value, key: &str) -> Option<String> {
    match payload.get(key)? {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.to_string(),
        }),
        Value::Bool(true) => Some("true".into()),
        _ => None,
    }
}

/// A payload field as a whole number (a number, or a string holding one).
pub fn int(payload: &Value, key: &str) -> Option<i64> {
    match payload.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A payload field as a decimal number's text (for `numeric` columns): a number, or a
/// string that parses as one.
pub fn number(payload: &Value, key: &str) -> Option<String> {
    match payload.get(key)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|_| s.to_string())
        }
        _ => None,
    }
}

/// A list of non-empty strings (e.g. `responsible_emails`); a single string counts as a
/// one-element list.
pub fn list(payload: &Value, key: &str) -> Vec<String> {
    match payload.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        _ => Vec::new(),
    }
}

/// A date-time in RFC 3339 UTC (`2026-11-27T01:00:00Z`). Accepts RFC 3339 with any
/// offset, and Odoo's naive `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS` (UTC, as Odoo
/// stores them). Anything else is `None`.
pub fn datetime(payload: &Value, key: &str) -> Option<String> {
    parse_datetime(&text(payload, key)?).map(|dt| dt.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Parses the date-time shapes `datetime` accepts.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(naive.and_utc());
        }
    }
    None
}

/// A calendar date `YYYY-MM-DD` (a date-time's date part is accepted).
pub fn date(payload: &Value, key: &str) -> Option<String> {
    let s = text(payload, key)?;
    let head = s.get(..10).unwrap_or(&s);
    NaiveDate::parse_from_str(head, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// The Mattermost username conventionally matching an email address: its local part,
/// lower-cased, keeping the characters Mattermost allows (`a-z 0-9 . - _`).
pub fn handle_of_email(email: &str) -> Option<String> {
    let local = email.trim().split('@').next()?.to_ascii_lowercase();
    let handle: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    (!handle.is_empty() && email.contains('@')).then_some(handle)
}

/// `1250.5` + `PHP` → `PHP 1,250.50`.
pub fn money(amount: Option<&str>, currency: Option<&str>) -> String {
    let Some(amount) = amount.and_then(|a| a.parse::<f64>().ok()) else {
        return "—".into();
    };
    let cents = (amount.abs() * 100.0).round() as u128;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0.0 { "-" } else { "" };
    match currency {
        Some(c) if !c.is_empty() => format!("{c} {sign}{grouped}.{frac:02}"),
        _ => format!("{sign}{grouped}.{frac:02}"),
    }
}

pub use ipai_core::html::escape as html_escape;

/// A human-readable UTC date-time (`2026-11-27 01:00 UTC`) from RFC 3339 text.
pub fn human_datetime(rfc3339: &str) -> String {
    parse_datetime(rfc3339)
        .map(|dt| dt.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| rfc3339.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odoo_false_null_and_blank_are_absent_numbers_are_text() {
        let p = json!({"a": false, "b": null, "c": " ", "d": 42, "e": "x", "f": 1.5, "g": "17"});
        assert_eq!(text(&p, "a"), None);
        assert_eq!(text(&p, "b"), None);
        assert_eq!(text(&p, "c"), None);
        assert_eq!(text(&p, "d").as_deref(), Some("42"));
        assert_eq!(text(&p, "e").as_deref(), Some("x"));
        assert_eq!(text(&p, "missing"), None);
        assert_eq!(int(&p, "g"), Some(17));
        assert_eq!(int(&p, "d"), Some(42));
        assert_eq!(int(&p, "a"), None);
        assert_eq!(number(&p, "f").as_deref(), Some("1.5"));
        assert_eq!(number(&p, "e"), None);
    }

    #[test]
    fn date_times_of_every_odoo_shape_become_rfc3339_utc() {
        let p = json!({"a": "2026-11-27T09:00:00+08:00", "b": "2026-11-27 01:00:00",
                       "c": "2026-11-27T01:00:00.123Z", "d": "tomorrow", "e": "2026-11-10"});
        assert_eq!(datetime(&p, "a").as_deref(), Some("2026-11-27T01:00:00Z"));
        assert_eq!(datetime(&p, "b").as_deref(), Some("2026-11-27T01:00:00Z"));
        assert_eq!(datetime(&p, "c").as_deref(), Some("2026-11-27T01:00:00Z"));
        assert_eq!(datetime(&p, "d"), None);
        assert_eq!(date(&p, "e").as_deref(), Some("2026-11-10"));
        assert_eq!(date(&p, "a").as_deref(), Some("2026-11-27"));
        assert_eq!(date(&p, "d"), None);
    }

    #[test]
    fn handles_money_lists_and_escaping() {
        assert_eq!(
            handle_of_email("Juan.DelaCruz@example.com").as_deref(),
            Some("juan.delacruz")
        );
        assert_eq!(handle_of_email("nobody"), None);
        assert_eq!(money(Some("1250.5"), Some("PHP")), "PHP 1,250.50");
        assert_eq!(money(Some("1234567"), None), "1,234,567.00");
        assert_eq!(money(Some("380"), Some("PHP")), "PHP 380.00");
        assert_eq!(money(None, Some("PHP")), "—");
        assert_eq!(
            list(&json!({"l": ["a@x", "", 3, "b@x"]}), "l"),
            vec!["a@x", "b@x"]
        );
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
