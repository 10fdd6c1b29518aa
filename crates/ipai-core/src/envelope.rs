//! The event envelope Odoo posts (SPEC §3 body) and its schema check against the taxonomy.

use crate::error::IngestError;
use crate::taxonomy::{domain_of, Domain};
use serde_json::{Map, Value};

/// A validated event, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_type: String,
    pub aggregate_type: String,
    /// Integers are kept as their decimal text, so the outbox has one key type.
    pub aggregate_id: String,
    pub payload: Value,
    /// RFC 3339, checked to be storable and normalised to UTC
    /// (`2026-11-26T05:00:00Z`; the stored `timestamptz` keeps no offset anyway).
    pub occurred_at: Option<String>,
    pub source: String,
    pub domain: &'static Domain,
}

fn string_field(obj: &Map<String, Value>, name: &'static str) -> Result<String, IngestError> {
    match obj.get(name) {
        None | Some(Value::Null) => Err(IngestError::MissingField(name)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(IngestError::InvalidField(name, "a string")),
    }
}

/// PostgreSQL's largest UTC offset in a timestamp literal (±15:59; beyond that it answers
/// "time zone displacement out of range").
const MAX_OFFSET_SECONDS: i32 = 15 * 3600 + 59 * 60;

fn unstorable(field: impl Into<String>, reason: impl Into<String>) -> IngestError {
    IngestError::UnstorableValue {
        field: field.into(),
        reason: reason.into(),
    }
}

/// PostgreSQL text and jsonb cannot hold U+0000.
fn check_no_nul(field: &str, value: &str) -> Result<(), IngestError> {
    if value.contains('\0') {
        return Err(unstorable(
            field,
            "it contains a NUL character (\\u0000), which PostgreSQL cannot store",
        ));
    }
    Ok(())
}

/// Every string and object key of a JSON value, at any depth (serde_json's recursion limit
/// bounds the depth), checked for NUL; the error names the path (`payload.items[2].name`).
fn check_json_storable(path: &str, value: &Value) -> Result<(), IngestError> {
    match value {
        Value::String(s) => check_no_nul(path, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_json_storable(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let child = format!("{path}.{k}");
            if k.contains('\0') {
                return Err(unstorable(
                    format!("{path} (a key)"),
                    "a key contains a NUL character (\\u0000), which PostgreSQL cannot store",
                ));
            }
            check_json_storable(&child, v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// An RFC 3339 `occurred_at` PostgreSQL can store, as UTC text: the offset within ±15:59
/// and the instant between the years 1 and 9999 (RFC 3339 has four-digit years;
/// PostgreSQL has no year 0).
fn storable_timestamp(text: &str) -> Result<String, IngestError> {
    let parsed =
        chrono::DateTime::parse_from_rfc3339(text).map_err(|_| IngestError::InvalidOccurredAt)?;
    let offset = parsed.offset().local_minus_utc();
    if offset.abs() > MAX_OFFSET_SECONDS {
        return Err(unstorable(
            "occurred_at",
            "its UTC offset is beyond ±15:59, which PostgreSQL cannot store",
        ));
    }
    let utc = parsed.with_timezone(&chrono::Utc);
    let year = chrono::Datelike::year(&utc);
    if !(1..=9999).contains(&year) || !(1..=9999).contains(&chrono::Datelike::year(&parsed)) {
        return Err(unstorable(
            "occurred_at",
            "it lies outside the years 0001-9999 (UTC), which this bus stores",
        ));
    }
    Ok(utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// Parses the raw body (step "JSON") and checks it against the taxonomy (step "schema").
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, IngestError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| IngestError::InvalidJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(IngestError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    };
    let event_type = string_field(&obj, "event_type")?;
    let aggregate_type = string_field(&obj, "aggregate_type")?;
    let aggregate_id = match obj.get("aggregate_id") {
        None | Some(Value::Null) => return Err(IngestError::MissingField("aggregate_id")),
        Some(v) => v.clone(),
    };
    let payload = match obj.get("payload") {
        None | Some(Value::Null) => return Err(IngestError::MissingField("payload")),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(IngestError::InvalidField("payload", "a JSON object")),
    };
    let occurred_at = match obj.get("occurred_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(IngestError::InvalidField("occurred_at", "a string")),
    };
    let source = match obj.get("source") {
        None | Some(Value::Null) => "odoo".to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => s.clone(),
        Some(_) => {
            return Err(IngestError::InvalidField(
                "source",
                "a short non-empty string",
            ))
        }
    };

    // Schema: known event type, aggregate type of its domain, usable aggregate id.
    let domain =
        domain_of(&event_type).ok_or_else(|| IngestError::UnknownEventType(event_type.clone()))?;
    if aggregate_type != domain.aggregate_type {
        return Err(IngestError::AggregateTypeMismatch {
            event_type,
            expected: domain.aggregate_type,
            got: aggregate_type,
        });
    }
    let aggregate_id = match aggregate_id {
        Value::String(s) if !s.trim().is_empty() && s.len() <= 255 => s,
        // An integer that fits 64 bits, as its canonical decimal text (numbers keep the
        // text they were sent with, so `-0` is refused as it always was).
        Value::Number(n) => match n.as_i64().map(|i| i.to_string()) {
            Some(id) if id == n.to_string() => id,
            _ => match n.as_u64().map(|u| u.to_string()) {
                Some(id) if id == n.to_string() => id,
                _ => return Err(IngestError::InvalidAggregateId),
            },
        },
        _ => return Err(IngestError::InvalidAggregateId),
    };
    let occurred_at = occurred_at.as_deref().map(storable_timestamp).transpose()?;
    check_no_nul("aggregate_id", &aggregate_id)?;
    check_no_nul("source", &source)?;
    check_json_storable("payload", &payload)?;
    Ok(Envelope {
        event_type,
        aggregate_type,
        aggregate_id,
        payload,
        occurred_at,
        source,
        domain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn valid() -> Value {
        json!({"event_type": "expense.submitted", "aggregate_type": "expense",
               "aggregate_id": 42, "payload": {"status": "submit", "amount": 12.5},
               "occurred_at": "2026-11-26T05:00:00Z"})
    }

    #[test]
    fn a_valid_envelope_keeps_payload_and_stringifies_integer_ids() {
        let e = parse_envelope(&body(valid())).unwrap();
        assert_eq!(e.aggregate_id, "42");
        assert_eq!(e.source, "odoo");
        assert_eq!(e.payload["amount"], 12.5);
        assert_eq!(e.domain.handler, "expense-handler");
    }

    #[test]
    fn payload_numbers_are_kept_digit_for_digit() {
        // SPEC §3: beyond 64 bits, beyond 17 significant digits, beyond f64, not binary.
        let numbers = r#"{"a":123456789012345678901234567890,"b":1234567890.123456789012345,"c":1e400,"d":0.1}"#;
        let raw = format!(
            r#"{{"event_type":"expense.submitted","aggregate_type":"expense","aggregate_id":"1","payload":{numbers}}}"#
        );
        let e = parse_envelope(raw.as_bytes()).unwrap();
        // The same numbers; serde_json writes an exponent with its sign (jsonb then stores
        // `1e400` as its digits anyway).
        assert_eq!(
            serde_json::to_string(&e.payload).unwrap(),
            numbers.replace("1e400", "1e+400")
        );
    }

    #[test]
    fn integer_aggregate_ids_must_fit_64_bits() {
        let id_of = |text: &str| {
            let raw = format!(
                r#"{{"event_type":"expense.submitted","aggregate_type":"expense","aggregate_id":{text},"payload":{{}}}}"#
            );
            parse_envelope(raw.as_bytes()).map(|e| e.aggregate_id)
        };
        assert_eq!(id_of("-42").unwrap(), "-42");
        assert_eq!(
            id_of("18446744073709551615").unwrap(),
            "18446744073709551615"
        );
        for refused in ["18446744073709551616", "-0", "42.0", "4.2e1", "1e400"] {
            assert_eq!(
                id_of(refused).unwrap_err(),
                IngestError::InvalidAggregateId,
                "{refused}"
            );
        }
    }

    #[test]
    fn malformed_json_and_missing_fields_are_400_errors() {
        assert_eq!(parse_envelope(b"{").unwrap_err().code(), "invalid_json");
        assert_eq!(parse_envelope(b"[1]").unwrap_err().code(), "invalid_json");
        for field in ["event_type", "aggregate_type", "aggregate_id", "payload"] {
            let mut v = valid();
            v.as_object_mut().unwrap().remove(field);
            let err = parse_envelope(&body(v)).unwrap_err();
            assert_eq!(err, IngestError::MissingField(field));
            assert_eq!(err.status(), 400);
        }
        let mut v = valid();
        v["payload"] = json!("text");
        assert_eq!(parse_envelope(&body(v)).unwrap_err().status(), 400);
    }

    #[test]
    fn schema_violations_are_422_errors() {
        let mut v = valid();
        v["event_type"] = json!("invoice.created");
        assert_eq!(
            parse_envelope(&body(v)).unwrap_err().code(),
            "unknown_event_type"
        );
        let mut v = valid();
        v["aggregate_type"] = json!("asset_booking");
        assert_eq!(
            parse_envelope(&body(v)).unwrap_err().code(),
            "aggregate_type_mismatch"
        );
        for bad in [json!(""), json!(1.5), json!(true), json!({"id": 1})] {
            let mut v = valid();
            v["aggregate_id"] = bad;
            let err = parse_envelope(&body(v)).unwrap_err();
            assert_eq!((err.code(), err.status()), ("invalid_aggregate_id", 422));
        }
        let mut v = valid();
        v["occurred_at"] = json!("yesterday");
        assert_eq!(
            parse_envelope(&body(v)).unwrap_err().code(),
            "invalid_occurred_at"
        );
    }

    fn unstorable_field(v: Value) -> String {
        match parse_envelope(&body(v)) {
            Err(IngestError::UnstorableValue { field, .. }) => field,
            other => panic!("expected unstorable_value, got {other:?}"),
        }
    }

    #[test]
    fn a_nul_anywhere_is_refused_with_422_naming_the_field() {
        let mut v = valid();
        v["payload"]["note"] = json!("a\u{0}b");
        assert_eq!(unstorable_field(v), "payload.note");
        let mut v = valid();
        v["payload"]["lines"] = json!([{"name": "ok"}, {"name": "x\u{0}"}]);
        assert_eq!(unstorable_field(v), "payload.lines[1].name");
        let mut v = valid();
        v["payload"]["k\u{0}ey"] = json!(1);
        assert_eq!(unstorable_field(v), "payload (a key)");
        let mut v = valid();
        v["aggregate_id"] = json!("4\u{0}2");
        assert_eq!(unstorable_field(v), "aggregate_id");
        let mut v = valid();
        v["source"] = json!("odoo\u{0}");
        assert_eq!(unstorable_field(v), "source");
        // The wire form (a JSON escape) is what senders send.
        let raw = br#"{"event_type":"expense.submitted","aggregate_type":"expense","aggregate_id":"1","payload":{"n":"\u0000"}}"#;
        let err = parse_envelope(raw).unwrap_err();
        assert_eq!((err.status(), err.code()), (422, "unstorable_value"));
        assert!(err.to_string().contains("payload.n"), "{err}");
    }

    #[test]
    fn timestamps_postgresql_cannot_store_are_refused_and_others_normalised_to_utc() {
        for bad in [
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:30:00+01:00",
            "2026-11-26T05:00:00+16:00",
            "2026-11-26T05:00:00-23:59",
        ] {
            let mut v = valid();
            v["occurred_at"] = json!(bad);
            assert_eq!(unstorable_field(v), "occurred_at", "{bad}");
        }
        for (good, utc) in [
            ("2026-11-26T05:00:00Z", "2026-11-26T05:00:00Z"),
            ("2026-11-26T13:00:00+08:00", "2026-11-26T05:00:00Z"),
            (
                "2026-11-26T05:00:00.123456-15:59",
                "2026-11-26T20:59:00.123456Z",
            ),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
        ] {
            let mut v = valid();
            v["occurred_at"] = json!(good);
            let e = parse_envelope(&body(v)).unwrap();
            assert_eq!(e.occurred_at.as_deref(), Some(utc), "{good}");
        }
    }
}
