//! Dashboard upserts (`payment_queue`, `asset_availability`, `ppm_tasks`,
//! `bir_compliance`) as SQL text plus text parameters (cast in SQL, as Spin's pg4 wants).
//! Each statement is idempotent: running it again for the same event changes nothing.

use crate::fields;
use ipai_core::dispatch::EventEnvelope;
use serde_json::Value;

/// One statement for `Connection::execute`: every parameter is text or NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Option<String>>,
}

/// A `payment_queue` upsert keyed by expense: both write the same columns (parameters
/// $1–$8 are `expense_common`) and keep the facts an earlier event knew when a later one
/// lacks them; they differ in the values of the status columns and in what they overwrite.
macro_rules! payment_upsert {
    (values: $values:literal, set: $set:literal) => {
        concat!(
            "INSERT INTO integration.payment_queue AS q \
                (expense_id, sheet_id, employee_id, employee_name, employee_code, amount, \
                 currency, description, status, approved_by, approved_at, paid_at, payment_ref, \
                 event_id, updated_at) \
             VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text::numeric, \
                 $7::text, $8::text, ",
            $values,
            ") ON CONFLICT (expense_id) DO UPDATE SET \
                 sheet_id = coalesce(EXCLUDED.sheet_id, q.sheet_id), \
                 employee_id = coalesce(EXCLUDED.employee_id, q.employee_id), \
                 employee_name = coalesce(EXCLUDED.employee_name, q.employee_name), \
                 employee_code = coalesce(EXCLUDED.employee_code, q.employee_code), \
                 amount = coalesce(EXCLUDED.amount, q.amount), \
                 currency = coalesce(EXCLUDED.currency, q.currency), \
                 description = coalesce(EXCLUDED.description, q.description), ",
            $set,
            ", event_id = EXCLUDED.event_id, updated_at = now()"
        )
    };
}

const PAYMENT_QUEUED: &str = payment_upsert!(
    values: "'queued', $9::text, coalesce($10::text::timestamptz, now()), NULL, NULL, \
             $11::text::uuid, now()",
    set: "status = 'queued', approved_by = EXCLUDED.approved_by, \
          approved_at = EXCLUDED.approved_at, paid_at = NULL, payment_ref = NULL"
);

const PAYMENT_PAID: &str = payment_upsert!(
    values: "'paid', NULL, NULL, coalesce($9::text::timestamptz, now()), $10::text, \
             $11::text::uuid, now()",
    set: "status = 'paid', paid_at = EXCLUDED.paid_at, payment_ref = EXCLUDED.payment_ref"
);

const PAYMENT_UNQUEUED: &str =
    "DELETE FROM integration.payment_queue WHERE expense_id = $1::text AND status = 'queued'";

fn expense_common(event: &EventEnvelope) -> Vec<Option<String>> {
    let p = &event.payload;
    vec![
        Some(fields::text(p, "expense_id").unwrap_or_else(|| event.aggregate_id.clone())),
        fields::text(p, "sheet_id"),
        fields::text(p, "employee_id"),
        fields::text(p, "employee_name"),
        fields::text(p, "employee_code"),
        fields::number(p, "amount"),
        fields::text(p, "currency"),
        fields::text(p, "description"),
    ]
}

/// expense.approved: the expense waits for payment.
pub fn payment_queued(event: &EventEnvelope) -> Statement {
    let p = &event.payload;
    let mut params = expense_common(event);
    params.push(fields::text(p, "approved_by"));
    params.push(fields::datetime(p, "approved_at").or_else(|| occurred(event)));
    params.push(Some(event.id.clone()));
    Statement {
        sql: PAYMENT_QUEUED,
        params,
    }
}

/// expense.paid: the payment_queue row is closed (created closed if it never queued).
pub fn payment_paid(event: &EventEnvelope) -> Statement {
    let p = &event.payload;
    let mut params = expense_common(event);
    params.push(fields::datetime(p, "paid_at").or_else(|| occurred(event)));
    params.push(fields::text(p, "payment_ref"));
    params.push(Some(event.id.clone()));
    Statement {
        sql: PAYMENT_PAID,
        params,
    }
}

/// expense.rejected: a refused expense no longer waits for payment.
pub fn payment_unqueued(event: &EventEnvelope) -> Statement {
    Statement {
        sql: PAYMENT_UNQUEUED,
        params: vec![Some(
            fields::text(&event.payload, "expense_id")
                .unwrap_or_else(|| event.aggregate_id.clone()),
        )],
    }
}

fn occurred(event: &EventEnvelope) -> Option<String> {
    event
        .occurred_at
        .as_deref()
        .and_then(fields::parse_datetime)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

// A booking takes the asset's row; a reservation does not displace a booking that has the
// asset out; a check-in frees the asset only if the row is still this booking's.
const ASSET_UPSERT: &str = "INSERT INTO integration.asset_availability AS a \
    (asset_id, asset_name, asset_code, status, booking_id, employee_id, employee_name, \
     start_at, end_at, location, event_id, updated_at) \
  VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, \
     $8::text::timestamptz, $9::text::timestamptz, $10::text, $11::text::uuid, now()) \
  ON CONFLICT (asset_id) DO UPDATE SET \
     asset_name = coalesce(EXCLUDED.asset_name, a.asset_name), \
     asset_code = coalesce(EXCLUDED.asset_code, a.asset_code), \
     status = EXCLUDED.status, booking_id = EXCLUDED.booking_id, \
     employee_id = EXCLUDED.employee_id, employee_name = EXCLUDED.employee_name, \
     start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at, \
     location = coalesce(EXCLUDED.location, a.location), \
     event_id = EXCLUDED.event_id, updated_at = now() \
  WHERE a.booking_id IS NOT DISTINCT FROM EXCLUDED.booking_id \
     OR (EXCLUDED.status = 'reserved' AND a.status IN ('available', 'reserved')) \
     OR EXCLUDED.status IN ('checked_out', 'overdue')";

const ASSET_CHECKED_IN: &str = "INSERT INTO integration.asset_availability AS a \
    (asset_id, asset_name, asset_code, status, booking_id, employee_id, employee_name, \
     start_at, end_at, location, event_id, updated_at) \
  VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, \
     $8::text::timestamptz, $9::text::timestamptz, $10::text, $11::text::uuid, now()) \
  ON CONFLICT (asset_id) DO UPDATE SET \
     asset_name = coalesce(EXCLUDED.asset_name, a.asset_name), \
     asset_code = coalesce(EXCLUDED.asset_code, a.asset_code), \
     status = 'available', location = coalesce(EXCLUDED.location, a.location), \
     event_id = EXCLUDED.event_id, updated_at = now() \
  WHERE a.booking_id IS NOT DISTINCT FROM EXCLUDED.booking_id OR a.booking_id IS NULL";

/// asset.reserved / checked_out / checked_in / overdue: the asset's current state.
pub fn asset_availability(event: &EventEnvelope) -> Option<Statement> {
    let p = &event.payload;
    let (status, sql) = match event.event_type.as_str() {
        "asset.reserved" => ("reserved", ASSET_UPSERT),
        "asset.checked_out" => ("checked_out", ASSET_UPSERT),
        "asset.checked_in" => ("available", ASSET_CHECKED_IN),
        "asset.overdue" => ("overdue", ASSET_UPSERT),
        _ => return None,
    };
    Some(Statement {
        sql,
        params: vec![
            Some(fields::text(p, "asset_id")?),
            fields::text(p, "asset_name"),
            fields::text(p, "asset_code"),
            Some(status.to_string()),
            Some(fields::text(p, "booking_id").unwrap_or_else(|| event.aggregate_id.clone())),
            fields::text(p, "employee_id"),
            fields::text(p, "employee_name"),
            fields::datetime(p, "start"),
            fields::datetime(p, "end"),
            fields::text(p, "location"),
            Some(event.id.clone()),
        ],
    })
}

const PPM_UPSERT: &str = "INSERT INTO integration.ppm_tasks AS t \
    (task_id, name, project, stage, status, bir_form, period, deadline, reviewer_id, \
     responsible_emails, event_id, updated_at) \
  VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, \
     $8::text::date, $9::text, \
     CASE WHEN $10::text IS NULL THEN NULL \
          ELSE ARRAY(SELECT jsonb_array_elements_text($10::text::jsonb)) END, \
     $11::text::uuid, now()) \
  ON CONFLICT (task_id) DO UPDATE SET \
     name = coalesce(EXCLUDED.name, t.name), project = coalesce(EXCLUDED.project, t.project), \
     stage = coalesce(EXCLUDED.stage, t.stage), status = coalesce(EXCLUDED.status, t.status), \
     bir_form = coalesce(EXCLUDED.bir_form, t.bir_form), \
     period = coalesce(EXCLUDED.period, t.period), \
     deadline = coalesce(EXCLUDED.deadline, t.deadline), \
     reviewer_id = coalesce(EXCLUDED.reviewer_id, t.reviewer_id), \
     responsible_emails = coalesce(EXCLUDED.responsible_emails, t.responsible_emails), \
     event_id = EXCLUDED.event_id, updated_at = now()";

/// finance_task.*: the task's row on the PPM dashboard.
pub fn ppm_task(event: &EventEnvelope) -> Option<Statement> {
    let p = &event.payload;
    let emails = match p.get("responsible_emails") {
        Some(Value::Array(_)) | Some(Value::String(_)) => {
            Some(Value::from(fields::list(p, "responsible_emails")).to_string())
        }
        _ => None,
    };
    Some(Statement {
        sql: PPM_UPSERT,
        params: vec![
            Some(fields::text(p, "task_id").unwrap_or_else(|| event.aggregate_id.clone())),
            fields::text(p, "name"),
            fields::text(p, "project"),
            fields::text(p, "stage"),
            fields::text(p, "status"),
            fields::text(p, "bir_form"),
            fields::text(p, "period"),
            fields::date(p, "deadline"),
            fields::text(p, "reviewer_id"),
            emails,
            Some(event.id.clone()),
        ],
    })
}

// An approval never downgrades a filing of the same form and period.
const BIR_APPROVED: &str = "INSERT INTO integration.bir_compliance AS b \
    (bir_form, period, task_id, status, approved_at, filed_at, reference_no, event_id, updated_at) \
  VALUES ($1::text, $2::text, $3::text, 'approved', coalesce($4::text::timestamptz, now()), \
     NULL, NULL, $5::text::uuid, now()) \
  ON CONFLICT (bir_form, period) DO UPDATE SET \
     task_id = EXCLUDED.task_id, status = 'approved', approved_at = EXCLUDED.approved_at, \
     event_id = EXCLUDED.event_id, updated_at = now() \
  WHERE b.status <> 'filed'";

const BIR_FILED: &str = "INSERT INTO integration.bir_compliance AS b \
    (bir_form, period, task_id, status, approved_at, filed_at, reference_no, event_id, updated_at) \
  VALUES ($1::text, $2::text, $3::text, 'filed', NULL, coalesce($4::text::timestamptz, now()), \
     $5::text, $6::text::uuid, now()) \
  ON CONFLICT (bir_form, period) DO UPDATE SET \
     task_id = EXCLUDED.task_id, status = 'filed', filed_at = EXCLUDED.filed_at, \
     reference_no = coalesce(EXCLUDED.reference_no, b.reference_no), \
     event_id = EXCLUDED.event_id, updated_at = now()";

/// finance_task.approved / filed of a BIR filing (`bir_form` and `period` set).
pub fn bir_compliance(event: &EventEnvelope) -> Option<Statement> {
    let p = &event.payload;
    let form = fields::text(p, "bir_form")?;
    let period = fields::text(p, "period")?;
    let task = Some(fields::text(p, "task_id").unwrap_or_else(|| event.aggregate_id.clone()));
    match event.event_type.as_str() {
        "finance_task.approved" => Some(Statement {
            sql: BIR_APPROVED,
            params: vec![
                Some(form),
                Some(period),
                task,
                fields::datetime(p, "approved_at").or_else(|| occurred(event)),
                Some(event.id.clone()),
            ],
        }),
        "finance_task.filed" => Some(Statement {
            sql: BIR_FILED,
            params: vec![
                Some(form),
                Some(period),
                task,
                fields::datetime(p, "filed_at").or_else(|| occurred(event)),
                fields::text(p, "reference_no"),
                Some(event.id.clone()),
            ],
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(event_type: &str, payload: Value) -> EventEnvelope {
        EventEnvelope {
            id: "00000000-0000-4000-8000-000000000001".into(),
            seq: 1,
            event_type: event_type.into(),
            aggregate_type: "x".into(),
            aggregate_id: "77".into(),
            payload,
            idempotency_key: "k".into(),
            source: "odoo".into(),
            occurred_at: Some("2026-11-24T03:30:00Z".into()),
            created_at: "2026-11-24 03:30:01+00".into(),
            attempt: 1,
        }
    }

    fn placeholders(sql: &str) -> usize {
        (1..=20)
            .filter(|i| sql.contains(&format!("${i}::")))
            .count()
    }

    #[test]
    fn every_statement_binds_exactly_its_placeholders() {
        let stmts = [
            payment_queued(&ev("expense.approved", json!({"amount": 1.5}))),
            payment_paid(&ev("expense.paid", json!({}))),
            payment_unqueued(&ev("expense.rejected", json!({}))),
            asset_availability(&ev("asset.reserved", json!({"asset_id": 12}))).unwrap(),
            asset_availability(&ev("asset.checked_in", json!({"asset_id": 12}))).unwrap(),
            ppm_task(&ev(
                "finance_task.created",
                json!({"responsible_emails": ["a@x"]}),
            ))
            .unwrap(),
            bir_compliance(&ev(
                "finance_task.approved",
                json!({"bir_form": "1601-C", "period": "2026-10"}),
            ))
            .unwrap(),
            bir_compliance(&ev(
                "finance_task.filed",
                json!({"bir_form": "1601-C", "period": "2026-10"}),
            ))
            .unwrap(),
        ];
        for s in stmts {
            assert_eq!(placeholders(s.sql), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn values_are_normalised_and_ids_fall_back_to_the_aggregate() {
        let s = payment_queued(&ev(
            "expense.approved",
            json!({"amount": "1250.50", "approved_at": "2026-11-24 03:30:00"}),
        ));
        assert_eq!(s.params[0].as_deref(), Some("77"));
        assert_eq!(s.params[5].as_deref(), Some("1250.50"));
        assert_eq!(s.params[9].as_deref(), Some("2026-11-24T03:30:00Z"));
        let s = payment_paid(&ev("expense.paid", json!({})));
        assert_eq!(
            s.params[8].as_deref(),
            Some("2026-11-24T03:30:00Z"),
            "occurred_at when paid_at is missing"
        );
        assert!(asset_availability(&ev("asset.reserved", json!({}))).is_none());
        assert!(
            bir_compliance(&ev("finance_task.approved", json!({"bir_form": "1601-C"}))).is_none()
        );
        let t = ppm_task(&ev(
            "finance_task.created",
            json!({"deadline": "2026-11-10", "responsible_emails": ["a@x", "b@x"]}),
        ))
        .unwrap();
        assert_eq!(t.params[7].as_deref(), Some("2026-11-10"));
        assert_eq!(t.params[9].as_deref(), Some(r#"["a@x","b@x"]"#));
        let t = ppm_task(&ev("finance_task.created", json!({}))).unwrap();
        assert_eq!(t.params[9], None);
    }
}
