//! Expense wording and planning (SPEC §7, `expense.*`), split out of `plan` so each
//! domain's messages sit apart from the dispatch table: the approval request with its
//! signed buttons, the report-level decision messages (one per report transition, keyed by
//! [`report_message_key`]) and the per-line fallbacks for older addons.

use super::{
    need, DirectMessage, Effect, Found, Plan, PlanError, Settings, APPROVAL_EXPIRY_DAYS,
    APPROVAL_TARGET, FINANCE_TARGET,
};
use crate::dashboard;
use crate::fields;
use crate::mattermost::{self, ActionContext, Deciders, Decision, MattermostUser};
use crate::odoo;
use ipai_core::dispatch::EventEnvelope;
use serde_json::{json, Value};

/// The delivery target of an expense decision's message: the finance channel for an
/// approval, the employee (`@handle`) for a refusal or payment, `None` when the employee
/// has no address (no message).
pub(super) fn decision_target(event: &EventEnvelope) -> Option<String> {
    match event.event_type.as_str() {
        "expense.approved" => Some(FINANCE_TARGET.into()),
        _ => fields::text(&event.payload, "employee_email")
            .as_deref()
            .and_then(fields::handle_of_email)
            .map(|h| format!("@{h}")),
    }
}

struct Expense {
    id: String,
    employee: String,
    employee_code: Option<String>,
    employee_email: Option<String>,
    amount: String,
    description: String,
    category: Option<String>,
    date: Option<String>,
}

fn expense(event: &EventEnvelope) -> Expense {
    let p = &event.payload;
    Expense {
        id: fields::text(p, "expense_id").unwrap_or_else(|| event.aggregate_id.clone()),
        employee: fields::text(p, "employee_name").unwrap_or_else(|| "An employee".into()),
        employee_code: fields::text(p, "employee_code"),
        employee_email: fields::text(p, "employee_email"),
        amount: fields::money(
            fields::number(p, "amount").as_deref(),
            fields::text(p, "currency").as_deref(),
        ),
        description: fields::text(p, "description").unwrap_or_else(|| "(no description)".into()),
        category: fields::text(p, "category"),
        date: fields::date(p, "date"),
    }
}

/// "Employee (code)", or the employee alone when the event has no code.
fn employee_label(e: &Expense) -> String {
    match &e.employee_code {
        Some(c) => format!("{} ({c})", e.employee),
        None => e.employee.clone(),
    }
}

/// A report's total with its currency (the event's when Odoo gave none) and its line count
/// in words ("1 expense", "3 expenses").
fn report_total_and_lines(r: &odoo::Report, event: &EventEnvelope) -> (String, String) {
    let total = fields::money(
        r.total.as_deref(),
        r.currency
            .clone()
            .or_else(|| fields::text(&event.payload, "currency"))
            .as_deref(),
    );
    let lines = match r.lines {
        Some(1) => "1 expense".to_string(),
        Some(n) => format!("{n} expenses"),
        None => "expenses".to_string(),
    };
    (total, lines)
}

fn expense_fields(e: &Expense) -> Vec<Value> {
    let who = employee_label(e);
    let mut f = vec![
        mattermost::field("Employee", &who, true),
        mattermost::field("Amount", &e.amount, true),
    ];
    if let Some(c) = &e.category {
        f.push(mattermost::field("Category", c, true));
    }
    if let Some(d) = &e.date {
        f.push(mattermost::field("Date", d, true));
    }
    f
}

/// The key that makes a report's lines share one approval request (`expense.submitted`
/// only): see [`report_message_key`].
pub fn approval_request_key(event: &EventEnvelope) -> Option<String> {
    (event.event_type == "expense.submitted")
        .then(|| report_message_key(event))
        .flatten()
}

/// The key that makes a report's lines share one message per report transition: the
/// report and the moment of the transition, both of which the addon sends on every line
/// (SPEC §4: `submitted_at`, `approved_at`, `refused_at`, `paid_at` are the report's).
///  * `expense.submitted` → `hr.expense.sheet/<sheet_id>@<submitted_at>` (the approval
///    request; the key's form predates the others and is kept);
///  * `expense.approved` → `hr.expense.sheet/<sheet_id>/approved@<approved_at>`;
///  * `expense.rejected` → `hr.expense.sheet/<sheet_id>/refused@<refused_at>`;
///  * `expense.paid` → `hr.expense.sheet/<sheet_id>/paid@<paid_at>`.
///
/// Without the report or its stamp (an older addon, another sender) each line keeps its
/// own message, as nothing else tells one report decision from the next. Read from the
/// payload alone, so a handler can claim the message before it spends an Odoo look-up on a
/// line that will not send it.
pub fn report_message_key(event: &EventEnvelope) -> Option<String> {
    let (transition, stamp) = match event.event_type.as_str() {
        "expense.submitted" => ("", "submitted_at"),
        "expense.approved" => ("/approved", "approved_at"),
        "expense.rejected" => ("/refused", "refused_at"),
        "expense.paid" => ("/paid", "paid_at"),
        _ => return None,
    };
    let sheet_id = fields::text(&event.payload, "sheet_id")?;
    let at = fields::text(&event.payload, stamp)?;
    Some(format!("hr.expense.sheet/{sheet_id}{transition}@{at}"))
}

/// What a report decision's one message says about the report: its name, and the fields
/// Employee, Total and Lines (from Odoo's look-up; the line's own amount when Odoo gave
/// no total).
struct ReportFacts {
    name: String,
    lines: String,
    fields: Vec<Value>,
}

fn report_facts(event: &EventEnvelope, e: &Expense, found: &Found) -> ReportFacts {
    let who = employee_label(e);
    let sheet_id = fields::text(&event.payload, "sheet_id").unwrap_or_default();
    match found.report.as_ref().filter(|r| r.total.is_some()) {
        Some(r) => {
            let (total, lines) = report_total_and_lines(r, event);
            ReportFacts {
                name: r.name.clone().unwrap_or_else(|| r.id.to_string()),
                fields: vec![
                    mattermost::field("Employee", &who, true),
                    mattermost::field("Total", &total, true),
                    mattermost::field("Lines", &lines, true),
                ],
                lines,
            }
        }
        None => ReportFacts {
            name: sheet_id,
            lines: "its expenses".to_string(),
            fields: vec![mattermost::field("Employee", &who, true)],
        },
    }
}

/// A note when another line of the same report transition sends the report's message.
fn sent_by_another(plan: &mut Plan, found: &Found, what: &str) -> bool {
    match (&found.report_message_by, &plan.report_message) {
        (Some(owner), Some(key)) => {
            plan.notes.push(format!(
                "the {what} message for {key} is sent by event {owner}"
            ));
            true
        }
        _ => false,
    }
}

pub(super) fn expense_submitted(
    event: &EventEnvelope,
    s: &Settings,
    found: &Found,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let e = expense(event);
    let sheet_id = found
        .report
        .as_ref()
        .map(|r| r.id.to_string())
        .or_else(|| fields::text(&event.payload, "sheet_id"));
    plan.report_message = approval_request_key(event);
    if let (Some(owner), Some(key)) = (&found.report_message_by, &plan.report_message) {
        plan.notes.push(format!(
            "the approval request for {key} is posted by event {owner}"
        ));
        return Ok(());
    }
    let expiry_days = match s.approval_expiry_days.as_deref().map(str::trim) {
        None | Some("") => APPROVAL_EXPIRY_DAYS,
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or(PlanError::Invalid {
                variable: "approval_expiry_days",
                problem: format!("is {d:?}, not a number of days from 1 to 365"),
            })?,
    };
    let deciders = Deciders::of(&found.approvers.users);
    // The approver decides on the whole report: show its total when Odoo gave it.
    let report = found.report.as_ref().filter(|r| r.total.is_some());
    let (title, text, summary, fields) = match report {
        Some(r) => {
            let (total, lines) = report_total_and_lines(r, event);
            let name = r.name.clone().unwrap_or_else(|| r.id.to_string());
            let who = employee_label(&e);
            (
                format!("Expense report {name}"),
                format!(
                    "{} submitted an expense report for approval: {lines}, total {total}.",
                    e.employee
                ),
                format!("{} · {total} · {name} ({lines})", e.employee),
                vec![
                    mattermost::field("Employee", &who, true),
                    mattermost::field("Total", &total, true),
                    mattermost::field("Lines", &lines, true),
                ],
            )
        }
        None => (
            match &sheet_id {
                Some(sid) => format!("Expense report {sid}: {}", e.description),
                None => format!("Expense {}: {}", e.id, e.description),
            },
            format!("{} submitted an expense for approval.", e.employee),
            format!("{} · {} · {}", e.employee, e.amount, e.description),
            expense_fields(&e),
        ),
    };
    let mut attachment = json!({
        "fallback": format!("{title}: {summary}"),
        "color": mattermost::COLOR_INFO,
        "title": title,
        "text": text,
        "fields": fields,
    });
    if let (Some(url), Some(sid)) = (&s.odoo_url, &sheet_id) {
        attachment["title_link"] = json!(odoo::record_url(url, "hr.expense.sheet", sid));
    }
    let approvers = &found.approvers;
    let buttons_for = match &sheet_id {
        None => {
            plan.notes
                .push("the expense has no report (sheet) in Odoo: message without buttons".into());
            None
        }
        Some(_) if deciders.user_ids.is_empty() => {
            plan.notes.push(
                "nobody could be resolved in Mattermost to decide: message without buttons".into(),
            );
            None
        }
        Some(_) if !s.bot_configured => {
            // Buttons travel only in a direct message from the bot: nobody else may hold
            // them (SPEC §15). Without the bot the message still reaches the approver.
            plan.notes.push(
                "variable mattermost_bot_token is empty: approval buttons are sent only as a \
                 direct message from the bot, so this message has none (decide in Odoo)"
                    .into(),
            );
            None
        }
        Some(sid) => Some(sid),
    };
    if let Some(sid) = buttons_for {
        let secret = need(
            &s.action_secret,
            "mattermost_action_secret",
            "approval buttons",
        )?;
        let base = need(&s.public_base_url, "public_base_url", "approval buttons")?;
        let url = format!("{}/mattermost/actions", base.trim_end_matches('/'));
        // Each decider's buttons name that decider alone: a context is worth nothing to
        // anyone else, even another decider of the same report.
        let ctx = |decision, decider: &MattermostUser| ActionContext {
            decision,
            event_id: event.id.clone(),
            expense_id: e.id.clone(),
            sheet_id: sid.clone(),
            title: title.clone(),
            summary: summary.clone(),
            submitted_at: fields::text(&event.payload, "submitted_at").unwrap_or_default(),
            expires_at: found.planned_at + expiry_days * 86_400,
            deciders: Deciders::of(std::slice::from_ref(decider)),
            employee_user_id: found
                .employee
                .as_ref()
                .map(|u| u.id.clone())
                .unwrap_or_default(),
            employee_email: e
                .employee_email
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase(),
        };
        let stand_in = approvers.stand_in_reason.as_deref();
        let messages = approvers
            .users
            .iter()
            .map(|decider| {
                let mut att = attachment.clone();
                att["actions"] = json!([
                    mattermost::button(
                        "approve",
                        "Approve",
                        "success",
                        &url,
                        ctx(Decision::Approve, decider).signed(secret)
                    ),
                    mattermost::button(
                        "reject",
                        "Reject",
                        "danger",
                        &url,
                        ctx(Decision::Refuse, decider).signed(secret)
                    ),
                ]);
                let text = match stand_in {
                    None => format!(
                        "@{}, an expense is waiting for your approval.",
                        decider.username
                    ),
                    Some(reason) => format!(
                        "@{}, an expense is waiting for your approval as a finance \
                         approver ({reason}).",
                        decider.username
                    ),
                };
                DirectMessage {
                    user_id: decider.id.clone(),
                    username: decider.username.clone(),
                    message: mattermost::message(None, &text, att),
                }
            })
            .collect();
        // Standing in: the finance channel learns who was asked, without any button.
        let notice = stand_in.map(|reason| {
            plan.notes.push(format!(
                "{reason}: the finance approvers were asked by direct message"
            ));
            mattermost::message(
                s.finance_channel.as_deref(),
                &format!(
                    "{}: an expense is waiting for approval by one of you ({reason}). The \
                     buttons were sent to each of you as a direct message from the bot.",
                    deciders.mentions(", ")
                ),
                attachment.clone(),
            )
        });
        plan.effects.push(Effect::MattermostDirect {
            target: APPROVAL_TARGET.into(),
            messages,
            notice,
        });
        return Ok(());
    }
    // No buttons: a notice through the webhook, to the approver or the finance channel.
    let (channel, text) = match (&approvers.stand_in_reason, approvers.users.as_slice()) {
        (None, [approver]) => (
            Some(format!("@{}", approver.username)),
            format!(
                "@{}, an expense is waiting for your approval: approve or refuse it in Odoo.",
                approver.username
            ),
        ),
        (reason, []) => {
            let reason = reason
                .clone()
                .unwrap_or_else(|| "no approver could be resolved".into());
            plan.notes.push(format!(
                "{reason}, and no finance approver could be resolved: posted to the finance \
                 channel without buttons"
            ));
            (
                s.finance_channel.clone(),
                format!(
                    "An expense is waiting for approval, but nobody could be found in \
                     Mattermost to decide on it ({reason}): approve or refuse it in Odoo."
                ),
            )
        }
        (reason, _) => {
            let reason = reason.clone().unwrap_or_else(|| "several approvers".into());
            plan.notes.push(format!(
                "{reason}: posted to the finance channel for the finance approvers"
            ));
            (
                s.finance_channel.clone(),
                format!(
                    "{}: an expense is waiting for approval by one of you ({reason}): \
                     approve or refuse it in Odoo.",
                    deciders.mentions(", ")
                ),
            )
        }
    };
    plan.effects.push(Effect::Mattermost {
        target: APPROVAL_TARGET.into(),
        body: mattermost::message(channel.as_deref(), &text, attachment),
    });
    Ok(())
}

pub(super) fn expense_approved(
    event: &EventEnvelope,
    s: &Settings,
    found: &Found,
    plan: &mut Plan,
) {
    let e = expense(event);
    let by = fields::text(&event.payload, "approved_by").unwrap_or_else(|| "a manager".into());
    // The payment queue stays per line, as payment is.
    plan.statements.push(dashboard::payment_queued(event));
    plan.report_message = report_message_key(event);
    if plan.report_message.is_some() {
        if sent_by_another(plan, found, "approval") {
            return;
        }
        let r = report_facts(event, &e, found);
        let attachment = json!({
            "fallback": format!("Approved for payment: {} · expense report {} ({})", e.employee, r.name, r.lines),
            "color": mattermost::COLOR_GOOD,
            "title": format!("Approved for payment: expense report {}", r.name),
            "text": format!("Approved by {by}. {} added to the payment queue.", r.lines),
            "fields": r.fields,
        });
        plan.effects.push(Effect::Mattermost {
            target: FINANCE_TARGET.into(),
            body: mattermost::message(
                s.finance_channel.as_deref(),
                "An expense report was approved and is ready for payment.",
                attachment,
            ),
        });
        return;
    }
    let attachment = json!({
        "fallback": format!("Approved for payment: {} {} ({})", e.employee, e.amount, e.description),
        "color": mattermost::COLOR_GOOD,
        "title": format!("Approved for payment: {}", e.description),
        "text": format!("Approved by {by}. Added to the payment queue."),
        "fields": expense_fields(&e),
    });
    plan.effects.push(Effect::Mattermost {
        target: FINANCE_TARGET.into(),
        body: mattermost::message(
            s.finance_channel.as_deref(),
            "An expense was approved and is ready for payment.",
            attachment,
        ),
    });
}

fn employee_dm(e: &Expense, plan: &mut Plan, what: &str) -> Option<String> {
    match e
        .employee_email
        .as_deref()
        .and_then(fields::handle_of_email)
    {
        Some(h) => Some(h),
        None => {
            plan.notes.push(format!(
                "no employee_email in the payload: the employee was not notified of the {what}"
            ));
            None
        }
    }
}

pub(super) fn expense_rejected(
    event: &EventEnvelope,
    _s: &Settings,
    found: &Found,
    plan: &mut Plan,
) {
    let e = expense(event);
    let reason = fields::text(&event.payload, "reason").unwrap_or_else(|| "no reason given".into());
    let by = fields::text(&event.payload, "refused_by");
    plan.statements.push(dashboard::payment_unqueued(event));
    plan.report_message = report_message_key(event);
    if plan.report_message.is_some() && sent_by_another(plan, found, "refusal") {
        return;
    }
    let Some(h) = employee_dm(&e, plan, "refusal") else {
        return;
    };
    let mut text = format!("Reason: {reason}");
    if let Some(by) = &by {
        text.push_str(&format!("\nRefused by {by}."));
    }
    let (attachment, greeting) = if plan.report_message.is_some() {
        let r = report_facts(event, &e, found);
        (
            json!({
                "fallback": format!("Your expense report {} ({}) was refused: {reason}", r.name, r.lines),
                "color": mattermost::COLOR_BAD,
                "title": format!("Expense report refused: {}", r.name),
                "text": text,
                "fields": r.fields,
            }),
            format!("@{h}, your expense report was refused."),
        )
    } else {
        (
            json!({
                "fallback": format!("Your expense {} ({}) was refused: {reason}", e.description, e.amount),
                "color": mattermost::COLOR_BAD,
                "title": format!("Expense refused: {}", e.description),
                "text": text,
                "fields": expense_fields(&e),
            }),
            format!("@{h}, your expense was refused."),
        )
    };
    plan.effects.push(Effect::Mattermost {
        target: format!("@{h}"),
        body: mattermost::message(Some(&format!("@{h}")), &greeting, attachment),
    });
}

pub(super) fn expense_paid(event: &EventEnvelope, _s: &Settings, found: &Found, plan: &mut Plan) {
    let e = expense(event);
    let p = &event.payload;
    // The payment queue row is closed per line, as payment is.
    plan.statements.push(dashboard::payment_paid(event));
    plan.report_message = report_message_key(event);
    if plan.report_message.is_some() && sent_by_another(plan, found, "payment") {
        return;
    }
    let Some(h) = employee_dm(&e, plan, "payment") else {
        return;
    };
    let report = plan
        .report_message
        .is_some()
        .then(|| report_facts(event, &e, found));
    let mut f = match &report {
        Some(r) => r.fields.clone(),
        None => expense_fields(&e),
    };
    if let Some(r) = fields::text(p, "payment_ref") {
        f.push(mattermost::field("Payment reference", &r, true));
    }
    if let Some(at) = fields::datetime(p, "paid_at") {
        f.push(mattermost::field(
            "Paid at",
            &fields::human_datetime(&at),
            true,
        ));
    }
    let (attachment, greeting) = match &report {
        Some(r) => (
            json!({
                "fallback": format!("Your expense report {} ({}) was paid", r.name, r.lines),
                "color": mattermost::COLOR_GOOD,
                "title": format!("Expense report paid: {}", r.name),
                "fields": f,
            }),
            format!("@{h}, your expense report was paid."),
        ),
        None => (
            json!({
                "fallback": format!("Your expense {} ({}) was paid", e.description, e.amount),
                "color": mattermost::COLOR_GOOD,
                "title": format!("Expense paid: {}", e.description),
                "fields": f,
            }),
            format!("@{h}, your expense was paid."),
        ),
    };
    plan.effects.push(Effect::Mattermost {
        target: format!("@{h}"),
        body: mattermost::message(Some(&format!("@{h}")), &greeting, attachment),
    });
}
