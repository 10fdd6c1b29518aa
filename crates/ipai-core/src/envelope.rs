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
    /// RFC 3339 as sent, already checked to parse.
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
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return Err(IngestError::InvalidAggregateId),
    };
    if let Some(ts) = &occurred_at {
        chrono::DateTime::parse_from_rfc3339(ts).map_err(|_| IngestError::InvalidOccurredAt)?;
    }
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
}
