//! Asset wording and planning (SPEC §7, `asset.*`), split out of `plan` so each domain's
//! messages sit apart from the dispatch table: the availability dashboard, the reservation
//! confirmation email and calendar event, and the escalating overdue email.

use super::{need, Effect, Plan, PlanError, Settings};
use crate::dashboard;
use crate::email::{self, Email};
use crate::fields::{self, html_escape};
use crate::google::Booking;
use ipai_core::dispatch::EventEnvelope;
use serde_json::Value;

fn asset_line(p: &Value) -> String {
    let name = fields::text(p, "asset_name").unwrap_or_else(|| "the asset".into());
    match fields::text(p, "asset_code") {
        Some(c) => format!("{name} ({c})"),
        None => name,
    }
}

pub(super) fn asset_status(event: &EventEnvelope, plan: &mut Plan) {
    match dashboard::asset_availability(event) {
        Some(st) => plan.statements.push(st),
        None => plan
            .notes
            .push("payload lacks asset_id: asset_availability unchanged".into()),
    }
}

pub(super) fn asset_reserved(event: &EventEnvelope, plan: &mut Plan) {
    let p = &event.payload;
    asset_status(event, plan);
    let asset = asset_line(p);
    let start = fields::datetime(p, "start");
    let end = fields::datetime(p, "end");
    let location = fields::text(p, "location");
    let employee = fields::text(p, "employee_name");
    match fields::text(p, "employee_email") {
        Some(to) => {
            let when = match (&start, &end) {
                (Some(a), Some(b)) => format!(
                    "{} to {}",
                    fields::human_datetime(a),
                    fields::human_datetime(b)
                ),
                _ => "the booked period".into(),
            };
            let greeting = format!("Hello {},", employee.as_deref().unwrap_or("there"));
            let line = format!("your reservation of {asset} is confirmed for {when}.");
            let mut rows = vec![("Asset", asset.clone()), ("When", when.clone())];
            if let Some(l) = &location {
                rows.push(("Location", l.clone()));
            }
            if let Some(b) = fields::text(p, "booking_id") {
                rows.push(("Booking", b));
            }
            let esc_rows: Vec<(&str, String)> =
                rows.iter().map(|(k, v)| (*k, html_escape(v))).collect();
            let email = Email {
                to: vec![to.clone()],
                cc: vec![],
                subject: format!("Reservation confirmed: {asset}"),
                html: email::html_body(
                    "Reservation confirmed",
                    &[html_escape(&greeting), html_escape(&line)],
                    &esc_rows,
                ),
                text: email::text_body("Reservation confirmed", &[greeting, line], &rows),
            };
            plan.effects.push(Effect::Email { target: to, email });
        }
        None => plan
            .notes
            .push("no employee_email in the payload: no confirmation email".into()),
    }
    match (start, end) {
        (Some(start), Some(end)) => plan.effects.push(Effect::Calendar {
            target: format!(
                "booking/{}",
                fields::text(p, "booking_id").unwrap_or_else(|| event.aggregate_id.clone())
            ),
            booking: Booking {
                event_id: event.id.clone(),
                booking_id: fields::text(p, "booking_id")
                    .unwrap_or_else(|| event.aggregate_id.clone()),
                asset_name: fields::text(p, "asset_name").unwrap_or_else(|| "Asset".into()),
                asset_code: fields::text(p, "asset_code"),
                employee_name: employee,
                employee_email: fields::text(p, "employee_email"),
                location,
                start,
                end,
            },
        }),
        _ => plan
            .notes
            .push("payload lacks a valid start/end: no calendar event".into()),
    }
}

pub(super) fn asset_overdue(
    event: &EventEnvelope,
    s: &Settings,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let p = &event.payload;
    asset_status(event, plan);
    let level = fields::int(p, "escalation_level").unwrap_or(1).clamp(1, 3);
    let it_admin = if level >= 3 {
        Some(need(
            &s.it_admin_email,
            "it_admin_email",
            "asset.overdue escalation level 3",
        )?)
    } else {
        None
    };
    let Some(to) = fields::text(p, "employee_email") else {
        plan.notes
            .push("no employee_email in the payload: no overdue email".into());
        return Ok(());
    };
    let manager = fields::text(p, "manager_email");
    if level >= 2 && manager.is_none() {
        plan.notes
            .push("no manager_email in the payload: manager not copied".into());
    }
    let cc: Vec<String> = email::escalation_cc(level, manager.as_deref(), it_admin)
        .into_iter()
        .filter(|c| !c.eq_ignore_ascii_case(&to))
        .collect();
    let asset = asset_line(p);
    let days = fields::int(p, "days_overdue");
    let due = fields::datetime(p, "end").map(|d| fields::human_datetime(&d));
    let greeting = format!(
        "Hello {},",
        fields::text(p, "employee_name")
            .as_deref()
            .unwrap_or("there")
    );
    let overdue = match (days, &due) {
        (Some(d), Some(due)) => format!(
            "{asset} was due back on {due} and is now {d} day{} overdue.",
            if d == 1 { "" } else { "s" }
        ),
        (Some(d), None) => format!(
            "{asset} is {d} day{} overdue.",
            if d == 1 { "" } else { "s" }
        ),
        (None, Some(due)) => format!("{asset} was due back on {due}."),
        (None, None) => format!("{asset} is overdue."),
    };
    let ask = match level {
        1 => "Please return it as soon as possible.".to_string(),
        2 => "Please return it today. Your manager has been copied.".to_string(),
        _ => "Please return it immediately. Your manager and IT have been copied.".to_string(),
    };
    let mut rows = vec![
        ("Asset", asset.clone()),
        ("Escalation level", level.to_string()),
    ];
    if let Some(d) = &due {
        rows.push(("Due", d.clone()));
    }
    if let Some(l) = fields::text(p, "location") {
        rows.push(("Return to", l));
    }
    let esc_rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (*k, html_escape(v))).collect();
    let subject = format!("[Overdue · level {level}] Please return {asset}");
    let email = Email {
        to: vec![to.clone()],
        cc,
        subject,
        html: email::html_body(
            "Overdue asset",
            &[
                html_escape(&greeting),
                html_escape(&overdue),
                html_escape(&ask),
            ],
            &esc_rows,
        ),
        text: email::text_body("Overdue asset", &[greeting, overdue, ask], &rows),
    };
    plan.effects.push(Effect::Email {
        target: format!("{to}#level{level}"),
        email,
    });
    Ok(())
}
