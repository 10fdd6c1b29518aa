//! Reconciliation Odoo → bus (SPEC §11): proof that what Odoo believes it sent is what the
//! bus holds. The addon sends a `bus.digest` event per window of its queue (the idempotency
//! keys it marked sent); the bus records per window which of them it never stored, and a
//! missing key counts until an event with it arrives.
//!
//! The queue's side lives in `migrations/20261208000100_reconcile.sql` (`record_digest`,
//! `reconcile_status`); this crate names the digest's parts, calls those functions and
//! renders the status for a terminal. It knows nothing of Spin.

use ipai_core::db::{Database, DbError, Param};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The digest's event type and aggregate type.
pub const DIGEST_EVENT_TYPE: &str = "bus.digest";
pub const DIGEST_AGGREGATE_TYPE: &str = "digest";

/// Checks and records one digest: `(event id, source, payload)` → `{"source",
/// "window_start", "expected", "found", "missing"}`; a refused digest is SQLSTATE 22023 with
/// a message naming the field.
pub const RECORD_DIGEST_SQL: &str =
    "SELECT integration.record_digest($1::text::uuid, $2::text, $3::text::jsonb)";

/// `(window_start or '')` → `{"missing_total", "last_digest_at", "windows": [...]}`.
pub const STATUS_SQL: &str =
    "SELECT integration.reconcile_status(nullif($1::text, '')::timestamptz)";

/// The `bus.digest` event of `keys` for the window `[start, end)` of source `source`, as the
/// addon builds it (SPEC §11): the keys sorted by their bytes, their count and the hex SHA-256
/// of them joined by `\n`. The bus never builds one (`record_digest` checks what arrives);
/// the tests and the benchmark send what the addon sends.
pub fn digest_event(source: &str, start: &str, end: &str, keys: &[String]) -> Value {
    let mut sorted = keys.to_vec();
    sorted.sort();
    let sha = hex::encode(Sha256::digest(sorted.join("\n").as_bytes()));
    serde_json::json!({"event_type": DIGEST_EVENT_TYPE, "aggregate_type": DIGEST_AGGREGATE_TYPE,
        "aggregate_id": format!("{source}:{start}"),
        "payload": {"window_start": start, "window_end": end, "count": sorted.len(),
                    "keys": sorted, "keys_sha256": sha},
        "occurred_at": end, "source": "odoo"})
}

/// The source (Odoo database) of a digest's aggregate id `"<database>:<window_start>"`.
pub fn digest_source(aggregate_id: &str) -> Result<&str, String> {
    match aggregate_id.split_once(':') {
        Some((db, start)) if !db.is_empty() && !start.is_empty() => Ok(db),
        _ => Err(format!(
            "a digest's aggregate_id is \"<database>:<window_start>\", not {aggregate_id:?}"
        )),
    }
}

/// Records the digest `payload` of event `event_id` (aggregate id `aggregate_id`).
pub fn record(
    db: &mut dyn Database,
    event_id: &str,
    aggregate_id: &str,
    payload: &Value,
) -> Result<Value, DbError> {
    let source = digest_source(aggregate_id).map_err(DbError::Failed)?;
    db.query_value(
        RECORD_DIGEST_SQL,
        &[
            Param::Text(event_id.to_string()),
            Param::Text(source.to_string()),
            Param::Json(payload.clone()),
        ],
    )?
    .ok_or_else(|| DbError::Failed("record_digest answered nothing".into()))
}

/// What a recorded digest says: `(expected, found, missing keys)`.
pub fn recorded(result: &Value) -> (i64, i64, Vec<String>) {
    let missing = result["missing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    (
        result["expected"].as_i64().unwrap_or_default(),
        result["found"].as_i64().unwrap_or_default(),
        missing,
    )
}

/// The reason `record_digest` refused a digest (its `digest: …` message), or `None` when the
/// call failed for another reason (the database, which a retry may fix). A refused digest
/// stays refused however often it is retried: the sender must fix it.
pub fn refusal(e: &DbError) -> Option<String> {
    let DbError::Failed(text) = e else {
        return None;
    };
    let start = text.find("digest: ")?;
    let rest = &text[start..];
    let end = rest.find('"').unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The reconciliation's state: every window with a key still missing and those received in
/// the last 7 days, or (with `window_start`) the windows starting then.
pub fn status(db: &mut dyn Database, window_start: Option<&str>) -> Result<Value, DbError> {
    db.query_value(
        STATUS_SQL,
        &[Param::Text(window_start.unwrap_or_default().to_string())],
    )?
    .ok_or_else(|| DbError::Failed("reconcile_status answered nothing".into()))
}

/// The most missing keys a window lists in the text view (`--json` lists all).
pub const LISTED_KEYS: usize = 20;

/// `ipai reconcile`'s text: the verdict first, then one line per window and its missing keys.
pub fn render_text(status: &Value) -> String {
    let mut out = String::new();
    let missing = status["missing_total"].as_i64().unwrap_or_default();
    let windows = status["windows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let last = status["last_digest_at"].as_str().unwrap_or("never");
    if missing == 0 {
        let _ = writeln!(
            out,
            "Nothing missing: every key in {} digested window(s) is stored. Last digest: {last}.",
            windows.len()
        );
    } else {
        let _ = writeln!(
            out,
            "{missing} event(s) Odoo marked sent are not in the bus. Last digest: {last}."
        );
    }
    for w in windows {
        let keys: Vec<&str> = w["missing"]
            .as_array()
            .map(|k| k.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {} – {}: {} expected, {} found{}",
            w["source"].as_str().unwrap_or_default(),
            w["window_start"].as_str().unwrap_or_default(),
            w["window_end"].as_str().unwrap_or_default(),
            w["expected"],
            w["found"],
            if keys.is_empty() {
                String::new()
            } else {
                format!(", {} missing", keys.len())
            }
        );
        for k in keys.iter().take(LISTED_KEYS) {
            let _ = writeln!(out, "      missing {k}");
        }
        if keys.len() > LISTED_KEYS {
            let _ = writeln!(
                out,
                "      … {} more (--json lists all)",
                keys.len() - LISTED_KEYS
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refusal_is_the_digest_message_and_nothing_else_is() {
        let e = DbError::Failed(
            "QueryFailed(DbError(DbError { code: \"22023\", message: \"digest: count 3 does not match the 2 keys\" }))".into(),
        );
        assert_eq!(
            refusal(&e).as_deref(),
            Some("digest: count 3 does not match the 2 keys")
        );
        assert_eq!(refusal(&DbError::Unavailable("digest: x".into())), None);
        assert_eq!(refusal(&DbError::Failed("permission denied".into())), None);
    }

    #[test]
    fn a_recorded_digest_reads_as_expected_found_and_missing() {
        let r = json!({"expected": 3, "found": 1, "missing": ["a", "b"]});
        assert_eq!(recorded(&r), (3, 1, vec!["a".to_string(), "b".to_string()]));
    }

    #[test]
    fn a_digest_lists_its_keys_sorted_by_bytes_with_their_count_and_sha256() {
        let d = digest_event("odoo", "s", "e", &["b".to_string(), "B".to_string()]);
        assert_eq!(d["aggregate_id"], "odoo:s");
        assert_eq!(d["payload"]["keys"], json!(["B", "b"]));
        assert_eq!(d["payload"]["count"], 2);
        // printf 'B\nb' | sha256sum
        assert_eq!(
            d["payload"]["keys_sha256"],
            hex::encode(Sha256::digest(b"B\nb"))
        );
    }

    #[test]
    fn the_source_is_the_database_before_the_first_colon() {
        assert_eq!(digest_source("odoo:2026-12-07T10:00:00Z"), Ok("odoo"));
        assert!(digest_source("2026").is_err());
        assert!(digest_source(":2026-12-07T10:00:00Z").is_err());
        assert!(digest_source("odoo:").is_err());
    }

    #[test]
    fn the_text_says_the_verdict_then_each_window_and_its_missing_keys() {
        let s = json!({"missing_total": 2, "last_digest_at": "2026-12-07T11:00:05Z",
            "windows": [{"source": "odoo", "window_start": "2026-12-07T10:00:00Z",
                         "window_end": "2026-12-07T11:00:00Z", "expected": 5, "found": 3,
                         "missing": ["k2", "k4"]}]});
        let t = render_text(&s);
        assert!(
            t.starts_with("2 event(s) Odoo marked sent are not in the bus."),
            "{t}"
        );
        assert!(
            t.contains(
                "odoo 2026-12-07T10:00:00Z – 2026-12-07T11:00:00Z: 5 expected, 3 found, 2 missing"
            ),
            "{t}"
        );
        assert!(
            t.contains("missing k2\n") && t.contains("missing k4\n"),
            "{t}"
        );
        let none = json!({"missing_total": 0, "last_digest_at": null, "windows": []});
        assert!(render_text(&none).starts_with("Nothing missing"));
    }

    #[test]
    fn a_long_list_of_missing_keys_is_cut_in_the_text() {
        let keys: Vec<String> = (0..25).map(|n| format!("k{n}")).collect();
        let s = json!({"missing_total": 25, "windows": [{"source": "odoo",
            "window_start": "a", "window_end": "b", "expected": 25, "found": 0, "missing": keys}]});
        assert!(render_text(&s).contains("… 5 more (--json lists all)"));
    }
}
