//! Realistic sample events, one per taxonomy event type (SPEC §4), with the payload fields
//! the Odoo addon sends. `ipai send` posts them; the end-to-end tests reuse them.
//!
//! The samples tell small stories: expense 1042 is submitted, approved and paid while
//! 1043 is rejected; booking 501 is reserved, checked out and returned while 502 is
//! overdue; BIR task 7001 goes from created to filed while 7002 is overdue.

use ipai_core::taxonomy::{all_event_types, domain_of};
use serde_json::{json, Map, Value};

fn expense(id: u64, status: &str, extra: Value) -> Value {
    let mut p = json!({
        "expense_id": id,
        "employee_id": 7,
        "employee_name": "Juan dela Cruz",
        "employee_code": "E-0042",
        "employee_email": "juan.delacruz@example.com",
        "amount": if id == 1042 { 1250.5 } else { 380.0 },
        "currency": "PHP",
        "description": if id == 1042 { "Client lunch - Makati" } else { "Taxi to BGC" },
        "date": "2026-11-20",
        "category": if id == 1042 { "Meals" } else { "Transportation" },
        "submitted_at": "2026-11-24T01:15:00Z",
        "sheet_id": 310,
        "status": status,
    });
    merge(&mut p, extra);
    p
}

fn booking(id: u64, status: &str, extra: Value) -> Value {
    let mut p = json!({
        "booking_id": id,
        "asset_id": 12,
        "asset_name": "Projector Epson EB-X51",
        "asset_code": "PRJ-0012",
        "employee_id": 7,
        "employee_name": "Juan dela Cruz",
        "employee_email": "juan.delacruz@example.com",
        "manager_email": "maria.santos@example.com",
        "start": "2026-11-27T01:00:00Z",
        "end": "2026-11-27T09:00:00Z",
        "location": "Makati HQ, 12F",
        "status": status,
    });
    merge(&mut p, extra);
    p
}

fn task(id: u64, stage: &str, status: &str, extra: Value) -> Value {
    let mut p = json!({
        "task_id": id,
        "name": if id == 7001 { "BIR 1601-C October 2026" } else { "BIR 2550M October 2026" },
        "project": "Month-end close",
        "bir_form": if id == 7001 { "1601-C" } else { "2550M" },
        "period": "2026-10",
        "deadline": "2026-11-10",
        "responsible_emails": ["ana.reyes@example.com", "jose.garcia@example.com"],
        "reviewer_id": 3,
        "stage": stage,
        "status": status,
    });
    merge(&mut p, extra);
    p
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), extra) {
        a.extend(b);
    }
}

/// The sample payload and aggregate id of `event_type`, or `None` for an unknown type.
pub fn sample_payload(event_type: &str) -> Option<(String, Value)> {
    let (id, payload) = match event_type {
        "expense.submitted" => (1042, expense(1042, "submit", json!({}))),
        "expense.approved" => (
            1042,
            expense(
                1042,
                "approve",
                json!({"approved_by": "Maria Santos", "approved_at": "2026-11-24T03:30:00Z"}),
            ),
        ),
        "expense.rejected" => (
            1043,
            expense(
                1043,
                "cancel",
                json!({"reason": "No official receipt attached", "refused_by": "Maria Santos"}),
            ),
        ),
        "expense.paid" => (
            1042,
            expense(
                1042,
                "done",
                json!({"paid_at": "2026-11-28T02:00:00Z", "payment_ref": "BNK1/2026/00042"}),
            ),
        ),
        "asset.reserved" => (501, booking(501, "reserved", json!({}))),
        "asset.checked_out" => (501, booking(501, "checked_out", json!({}))),
        "asset.checked_in" => (501, booking(501, "checked_in", json!({}))),
        "asset.overdue" => (
            502,
            booking(
                502,
                "checked_out",
                json!({"escalation_level": 2, "days_overdue": 4,
                       "start": "2026-11-20T01:00:00Z", "end": "2026-11-22T09:00:00Z"}),
            ),
        ),
        "finance_task.created" => (7001, task(7001, "New", "01_in_progress", json!({}))),
        "finance_task.in_progress" => {
            (7001, task(7001, "In Progress", "01_in_progress", json!({})))
        }
        "finance_task.submitted" => (
            7001,
            task(7001, "For Review", "02_changes_requested", json!({})),
        ),
        "finance_task.approved" => (7001, task(7001, "Approved", "03_approved", json!({}))),
        "finance_task.filed" => (
            7001,
            task(
                7001,
                "Filed",
                "1_done",
                json!({"filed_at": "2026-11-09T08:00:00Z", "reference_no": "eFPS-2026-1601C-000123"}),
            ),
        ),
        "finance_task.overdue" => (
            7002,
            task(
                7002,
                "In Progress",
                "01_in_progress",
                json!({"days_overdue": 4}),
            ),
        ),
        _ => return None,
    };
    Some((id.to_string(), payload))
}

/// The envelope ingest expects for `payload` (SPEC §3): aggregate type from the taxonomy.
pub fn envelope(event_type: &str, aggregate_id: &str, payload: Value) -> Option<Value> {
    let domain = domain_of(event_type)?;
    Some(json!({
        "event_type": event_type,
        "aggregate_type": domain.aggregate_type,
        "aggregate_id": aggregate_id,
        "payload": payload,
        "occurred_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "source": "odoo",
    }))
}

/// The full sample event of `event_type`.
pub fn sample(event_type: &str) -> Option<Value> {
    let (id, payload) = sample_payload(event_type)?;
    envelope(event_type, &id, payload)
}

/// Every sample, in taxonomy order.
pub fn all() -> Vec<Value> {
    all_event_types().filter_map(sample).collect()
}

/// Reads a `--payload` file: either a whole envelope (it has `payload` and
/// `aggregate_id`) or only the payload object (then the sample's aggregate id is used).
pub fn from_file(event_type: &str, text: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("the payload file must hold a JSON object".into());
    };
    if obj.contains_key("payload") && obj.contains_key("aggregate_id") {
        let mut env: Map<String, Value> = obj;
        env.entry("event_type")
            .or_insert_with(|| Value::String(event_type.to_string()));
        if env.get("event_type").and_then(Value::as_str) != Some(event_type) {
            return Err(format!(
                "the file's event_type is not {event_type} (use the same type on the command line)"
            ));
        }
        if !env.contains_key("aggregate_type") {
            if let Some(d) = domain_of(event_type) {
                env.insert("aggregate_type".into(), d.aggregate_type.into());
            }
        }
        return Ok(Value::Object(env));
    }
    let id = sample_payload(event_type)
        .map(|(id, _)| id)
        .unwrap_or_else(|| "1".into());
    envelope(event_type, &id, Value::Object(obj))
        .ok_or_else(|| format!("unknown event type {event_type}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipai_core::envelope::parse_envelope;

    #[test]
    fn there_is_a_valid_sample_for_every_event_type() {
        let all = all();
        assert_eq!(all.len(), 14);
        for ev in &all {
            let body = serde_json::to_vec(ev).unwrap();
            parse_envelope(&body).unwrap_or_else(|e| panic!("{ev}: {e:?}"));
            let t = ev["event_type"].as_str().unwrap();
            assert_eq!(
                Some(ev["aggregate_type"].as_str().unwrap()),
                domain_of(t).map(|d| d.aggregate_type)
            );
            assert!(ev["payload"]["status"].is_string(), "{t}: status");
        }
    }

    #[test]
    fn per_event_fields_of_the_contract_are_present() {
        let need = [
            ("expense.approved", &["approved_by", "approved_at"][..]),
            ("expense.rejected", &["reason", "refused_by"]),
            ("expense.paid", &["paid_at", "payment_ref"]),
            ("asset.overdue", &["escalation_level", "days_overdue"]),
            ("finance_task.filed", &["filed_at", "reference_no"]),
            ("finance_task.overdue", &["days_overdue"]),
        ];
        for (t, fields) in need {
            let p = &sample(t).unwrap()["payload"];
            for f in fields {
                assert!(!p[f].is_null(), "{t} lacks {f}");
            }
        }
        assert!(sample("invoice.created").is_none());
    }

    #[test]
    fn a_payload_file_is_a_payload_or_a_whole_envelope() {
        let only = from_file("asset.reserved", r#"{"status": "reserved", "x": 1}"#).unwrap();
        assert_eq!(only["aggregate_id"], "501");
        assert_eq!(only["aggregate_type"], "asset_booking");
        assert_eq!(only["payload"]["x"], 1);
        let whole = from_file(
            "asset.reserved",
            r#"{"aggregate_id": "9", "payload": {"status": "reserved"}}"#,
        )
        .unwrap();
        assert_eq!(
            (whole["aggregate_id"].as_str(), whole["event_type"].as_str()),
            (Some("9"), Some("asset.reserved"))
        );
        assert!(from_file(
            "asset.reserved",
            r#"{"event_type": "expense.paid", "aggregate_id": "9", "payload": {}}"#
        )
        .is_err());
        assert!(from_file("asset.reserved", "[1]").is_err());
        assert!(from_file("asset.reserved", "{").is_err());
    }
}
