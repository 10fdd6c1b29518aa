//! What each event type of the taxonomy does (SPEC §7), as data: the dashboard statements
//! to run, the side effects to perform (each with the `(channel, target)` key it is
//! recorded under in `integration.deliveries`), and the Odoo look-up some need first.
//! The components execute a `Plan`; nothing here touches the network or the database.

use crate::approval::Approvers;
use crate::dashboard::{self, Statement};
use crate::email::{self, Email};
use crate::fields::{self, html_escape};
use crate::google::Booking;
use crate::mattermost::{self, ActionContext, Deciders, Decision, MattermostUser};
use crate::odoo::{self, Person, Report};
use ipai_core::dispatch::EventEnvelope;
use serde_json::{json, Value};

/// Delivery channels (the `channel` column of `integration.deliveries`).
pub const MATTERMOST: &str = "mattermost";
pub const EMAIL: &str = "email";
pub const CALENDAR: &str = "google_calendar";
/// Approval write-backs to Odoo (recorded by the approvals component).
pub const ODOO: &str = "odoo";

/// Configuration a plan may need; `None` = the variable is unset or empty.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The app's public origin (the buttons' integration URL is under it).
    pub public_base_url: Option<String>,
    /// Odoo's origin, for links to records.
    pub odoo_url: Option<String>,
    /// Channel for finance notifications; `None` = the webhook's own channel.
    pub finance_channel: Option<String>,
    pub it_admin_email: Option<String>,
    pub finance_director_email: Option<String>,
    /// Secret signing the approval buttons' context.
    pub action_secret: Option<String>,
    /// Days an approval message's buttons stay valid (`approval_expiry_days`; `None` = 14).
    pub approval_expiry_days: Option<String>,
}

/// Default validity of an approval message's buttons.
pub const APPROVAL_EXPIRY_DAYS: i64 = 14;

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A variable the event needs is unset; the event must be retried once it is set.
    Missing {
        variable: &'static str,
        needed_for: String,
    },
    /// A variable holds a value that cannot be used.
    Invalid {
        variable: &'static str,
        problem: String,
    },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::Missing {
                variable,
                needed_for,
            } => write!(
                f,
                "variable {variable} is empty (needed for {needed_for}): set SPIN_VARIABLE_{}",
                variable.to_ascii_uppercase()
            ),
            PlanError::Invalid { variable, problem } => write!(
                f,
                "variable {variable} {problem}: fix SPIN_VARIABLE_{}",
                variable.to_ascii_uppercase()
            ),
        }
    }
}

/// An Odoo look-up a plan needs before it can be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The report and approver of an expense line.
    ExpenseApprover { expense_id: i64 },
    /// The report of an expense line (name, total, lines), for a report decision's message.
    ExpenseReport { expense_id: i64 },
    /// A user (a finance task's reviewer).
    User { user_id: i64 },
}

/// The side effect a look-up feeds: when that delivery is already recorded as done the
/// look-up is not needed (a redelivered event does not call Odoo again).
pub fn lookup_for(event: &EventEnvelope) -> Option<(Lookup, &'static str, String)> {
    let p = &event.payload;
    let expense_id =
        || fields::int(p, "expense_id").or_else(|| event.aggregate_id.trim().parse().ok());
    match event.event_type.as_str() {
        "expense.submitted" => Some((
            Lookup::ExpenseApprover {
                expense_id: expense_id()?,
            },
            MATTERMOST,
            APPROVAL_TARGET.into(),
        )),
        // A report decision (the addon's stamp present): its one message shows the report.
        "expense.approved" | "expense.rejected" | "expense.paid" => {
            report_message_key(event)?;
            let target = decision_target(event)?;
            Some((
                Lookup::ExpenseReport {
                    expense_id: expense_id()?,
                },
                MATTERMOST,
                target,
            ))
        }
        "finance_task.submitted" => {
            let user_id = fields::int(p, "reviewer_id").filter(|id| *id > 0)?;
            Some((Lookup::User { user_id }, MATTERMOST, REVIEW_TARGET.into()))
        }
        _ => None,
    }
}

/// The delivery target of an expense decision's message: the finance channel for an
/// approval, the employee (`@handle`) for a refusal or payment, `None` when the employee
/// has no address (no message).
fn decision_target(event: &EventEnvelope) -> Option<String> {
    match event.event_type.as_str() {
        "expense.approved" => Some(FINANCE_TARGET.into()),
        _ => fields::text(&event.payload, "employee_email")
            .as_deref()
            .and_then(fields::handle_of_email)
            .map(|h| format!("@{h}")),
    }
}

/// What a look-up found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// An expense line's report (expense approver look-up).
    pub report: Option<Report>,
    pub person: Option<Person>,
    /// Another event of the same report transition (its lines share one
    /// [`report_message_key`]) claimed the report's message (`claim_report_message`): this
    /// event does not send one.
    pub report_message_by: Option<String>,
    /// Who decides on the report's approval message, resolved in Mattermost.
    pub approvers: Approvers,
    /// The report's employee's Mattermost account, when resolved.
    pub employee: Option<MattermostUser>,
    /// When the look-up was made (Unix seconds): the buttons' expiry counts from here.
    pub planned_at: i64,
}

/// Delivery targets of the messages that depend on a look-up.
pub const APPROVAL_TARGET: &str = "approval-request";
/// Delivery target of an approval's post to the finance channel.
pub const FINANCE_TARGET: &str = "finance-channel";
pub const REVIEW_TARGET: &str = "review-request";

/// One side effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// POST the body to the Mattermost incoming webhook.
    Mattermost { target: String, body: Value },
    /// Send through the email API.
    Email { target: String, email: Email },
    /// Insert a Google Calendar event.
    Calendar { target: String, booking: Booking },
}

impl Effect {
    pub fn channel(&self) -> &'static str {
        match self {
            Effect::Mattermost { .. } => MATTERMOST,
            Effect::Email { .. } => EMAIL,
            Effect::Calendar { .. } => CALENDAR,
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Effect::Mattermost { target, .. }
            | Effect::Email { target, .. }
            | Effect::Calendar { target, .. } => target,
        }
    }
}

/// Everything an event does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub statements: Vec<Statement>,
    pub effects: Vec<Effect>,
    /// Effects deliberately left out, with the reason (reported in the answer).
    pub notes: Vec<String>,
    /// The report transition this event's message stands for ([`report_message_key`]:
    /// `hr.expense.sheet/<id>@<submitted_at>` for the approval request,
    /// `hr.expense.sheet/<id>/<approved|refused|paid>@<stamp>` for a decision). Odoo emits
    /// an event for every line of a report; of the events sharing a key only the first to
    /// claim it (`claim_report_message`) sends the report's one message.
    pub report_message: Option<String>,
}

impl Plan {
    /// Nothing to do at all: the event is acknowledged as skipped with this reason.
    pub fn skip_reason(&self) -> Option<String> {
        (self.statements.is_empty() && self.effects.is_empty()).then(|| {
            if self.notes.is_empty() {
                "nothing to do for this event".to_string()
            } else {
                self.notes.join("; ")
            }
        })
    }
}

fn need<'a>(
    v: &'a Option<String>,
    variable: &'static str,
    needed_for: &str,
) -> Result<&'a str, PlanError> {
    v.as_deref().ok_or_else(|| PlanError::Missing {
        variable,
        needed_for: needed_for.to_string(),
    })
}

/// The plan for `event`; `found` is the result of `lookup_for`'s look-up (default when
/// none was made).
pub fn plan(event: &EventEnvelope, s: &Settings, found: &Found) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    match event.event_type.as_str() {
        "expense.submitted" => expense_submitted(event, s, found, &mut plan)?,
        "expense.approved" => expense_approved(event, s, found, &mut plan),
        "expense.rejected" => expense_rejected(event, s, found, &mut plan),
        "expense.paid" => expense_paid(event, s, found, &mut plan),
        "asset.reserved" => asset_reserved(event, &mut plan),
        "asset.checked_out" | "asset.checked_in" => asset_status(event, &mut plan),
        "asset.overdue" => asset_overdue(event, s, &mut plan)?,
        "finance_task.created" | "finance_task.in_progress" => {
            plan.statements.extend(dashboard::ppm_task(event))
        }
        "finance_task.submitted" => finance_submitted(event, s, found, &mut plan),
        "finance_task.approved" | "finance_task.filed" => {
            plan.statements.extend(dashboard::ppm_task(event));
            match dashboard::bir_compliance(event) {
                Some(st) => plan.statements.push(st),
                None => plan
                    .notes
                    .push("not a BIR filing (no bir_form/period): bir_compliance unchanged".into()),
            }
        }
        "finance_task.overdue" => finance_overdue(event, s, &mut plan)?,
        other => plan
            .notes
            .push(format!("event type {other} has no handler logic")),
    }
    Ok(plan)
}

// ------------------------------------------------------------------------------ expense

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

fn expense_fields(e: &Expense) -> Vec<Value> {
    let who = match &e.employee_code {
        Some(c) => format!("{} ({c})", e.employee),
        None => e.employee.clone(),
    };
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
    let who = match &e.employee_code {
        Some(c) => format!("{} ({c})", e.employee),
        None => e.employee.clone(),
    };
    let sheet_id = fields::text(&event.payload, "sheet_id").unwrap_or_default();
    match found.report.as_ref().filter(|r| r.total.is_some()) {
        Some(r) => {
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

fn expense_submitted(
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
            let name = r.name.clone().unwrap_or_else(|| r.id.to_string());
            let who = match &e.employee_code {
                Some(c) => format!("{} ({c})", e.employee),
                None => e.employee.clone(),
            };
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
    match &sheet_id {
        Some(_) if deciders.user_ids.is_empty() => plan.notes.push(
            "nobody could be resolved in Mattermost to decide: message without buttons".into(),
        ),
        Some(sid) => {
            let secret = need(
                &s.action_secret,
                "mattermost_action_secret",
                "approval buttons",
            )?;
            let base = need(&s.public_base_url, "public_base_url", "approval buttons")?;
            let url = format!("{}/mattermost/actions", base.trim_end_matches('/'));
            let ctx = |decision| ActionContext {
                decision,
                event_id: event.id.clone(),
                expense_id: e.id.clone(),
                sheet_id: sid.clone(),
                title: title.clone(),
                summary: summary.clone(),
                submitted_at: fields::text(&event.payload, "submitted_at").unwrap_or_default(),
                expires_at: found.planned_at + expiry_days * 86_400,
                deciders: deciders.clone(),
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
            attachment["actions"] = json!([
                mattermost::button(
                    "approve",
                    "Approve",
                    "success",
                    &url,
                    ctx(Decision::Approve).signed(secret)
                ),
                mattermost::button(
                    "reject",
                    "Reject",
                    "danger",
                    &url,
                    ctx(Decision::Refuse).signed(secret)
                ),
            ]);
        }
        None => plan
            .notes
            .push("the expense has no report (sheet) in Odoo: message without buttons".into()),
    }
    let approvers = &found.approvers;
    let (channel, text) = match (&approvers.stand_in_reason, approvers.users.as_slice()) {
        (None, [approver]) => (
            Some(format!("@{}", approver.username)),
            format!(
                "@{}, an expense is waiting for your approval.",
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
                    "{}: an expense is waiting for approval by one of you ({reason}).",
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

fn expense_approved(event: &EventEnvelope, s: &Settings, found: &Found, plan: &mut Plan) {
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

fn expense_rejected(event: &EventEnvelope, _s: &Settings, found: &Found, plan: &mut Plan) {
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

fn expense_paid(event: &EventEnvelope, _s: &Settings, found: &Found, plan: &mut Plan) {
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

// -------------------------------------------------------------------------------- asset

fn asset_line(p: &Value) -> String {
    let name = fields::text(p, "asset_name").unwrap_or_else(|| "the asset".into());
    match fields::text(p, "asset_code") {
        Some(c) => format!("{name} ({c})"),
        None => name,
    }
}

fn asset_status(event: &EventEnvelope, plan: &mut Plan) {
    match dashboard::asset_availability(event) {
        Some(st) => plan.statements.push(st),
        None => plan
            .notes
            .push("payload lacks asset_id: asset_availability unchanged".into()),
    }
}

fn asset_reserved(event: &EventEnvelope, plan: &mut Plan) {
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

fn asset_overdue(event: &EventEnvelope, s: &Settings, plan: &mut Plan) -> Result<(), PlanError> {
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

// ------------------------------------------------------------------------------ finance

fn task_title(event: &EventEnvelope) -> String {
    let p = &event.payload;
    let name = fields::text(p, "name").unwrap_or_else(|| format!("Task {}", event.aggregate_id));
    match fields::text(p, "project") {
        Some(pr) => format!("{name} ({pr})"),
        None => name,
    }
}

fn task_fields(event: &EventEnvelope) -> Vec<Value> {
    let p = &event.payload;
    let mut f = Vec::new();
    if let (Some(form), Some(period)) = (fields::text(p, "bir_form"), fields::text(p, "period")) {
        f.push(mattermost::field(
            "BIR form",
            &format!("{form} · {period}"),
            true,
        ));
    }
    if let Some(d) = fields::date(p, "deadline") {
        f.push(mattermost::field("Deadline", &d, true));
    }
    if let Some(st) = fields::text(p, "stage") {
        f.push(mattermost::field("Stage", &st, true));
    }
    f
}

fn finance_submitted(event: &EventEnvelope, s: &Settings, found: &Found, plan: &mut Plan) {
    plan.statements.extend(dashboard::ppm_task(event));
    let title = task_title(event);
    let task_id =
        fields::text(&event.payload, "task_id").unwrap_or_else(|| event.aggregate_id.clone());
    let mut attachment = json!({
        "fallback": format!("Review requested: {title}"),
        "color": mattermost::COLOR_INFO,
        "title": format!("Review requested: {title}"),
        "fields": task_fields(event),
    });
    match &s.odoo_url {
        Some(url) => {
            let link = odoo::record_url(url, "project.task", &task_id);
            attachment["title_link"] = json!(link);
            attachment["text"] = json!(format!("[Open the task in Odoo]({link})"));
        }
        None => plan
            .notes
            .push("odoo_url is not set: review message without a link".into()),
    }
    let (channel, text) = match found.person.as_ref().and_then(Person::handle) {
        Some(h) => (
            Some(format!("@{h}")),
            format!("@{h}, a finance task is ready for your review."),
        ),
        None => {
            plan.notes
                .push("no reviewer found: posted to the finance channel".into());
            (
                s.finance_channel.clone(),
                "A finance task is ready for review (no reviewer is set).".to_string(),
            )
        }
    };
    plan.effects.push(Effect::Mattermost {
        target: REVIEW_TARGET.into(),
        body: mattermost::message(channel.as_deref(), &text, attachment),
    });
}

/// Over this many days overdue, the Finance Director is alerted too.
pub const DIRECTOR_AFTER_DAYS: i64 = 3;

fn finance_overdue(event: &EventEnvelope, s: &Settings, plan: &mut Plan) -> Result<(), PlanError> {
    let p = &event.payload;
    let days = fields::int(p, "days_overdue").unwrap_or(1).max(1);
    let director = if days > DIRECTOR_AFTER_DAYS {
        Some(need(
            &s.finance_director_email,
            "finance_director_email",
            &format!("finance_task.overdue over {DIRECTOR_AFTER_DAYS} days"),
        )?)
    } else {
        None
    };
    plan.statements.extend(dashboard::ppm_task(event));
    let title = task_title(event);
    let day_s = if days == 1 { "day" } else { "days" };
    let mut attachment = json!({
        "fallback": format!("Overdue {days} {day_s}: {title}"),
        "color": if director.is_some() { mattermost::COLOR_BAD } else { mattermost::COLOR_WARN },
        "title": format!("Overdue {days} {day_s}: {title}"),
        "fields": task_fields(event),
    });
    if let Some(url) = &s.odoo_url {
        let task_id = fields::text(p, "task_id").unwrap_or_else(|| event.aggregate_id.clone());
        attachment["title_link"] = json!(odoo::record_url(url, "project.task", &task_id));
    }
    let responsible: Vec<String> = fields::list(p, "responsible_emails")
        .iter()
        .filter_map(|e| fields::handle_of_email(e))
        .collect();
    if responsible.is_empty() {
        plan.notes
            .push("no responsible_emails: alert posted to the finance channel".into());
        plan.effects.push(Effect::Mattermost {
            target: "finance-channel".into(),
            body: mattermost::message(
                s.finance_channel.as_deref(),
                "A finance task is overdue and has no responsible user.",
                attachment.clone(),
            ),
        });
    }
    for h in &responsible {
        plan.effects.push(Effect::Mattermost {
            target: format!("@{h}"),
            body: mattermost::message(
                Some(&format!("@{h}")),
                &format!("@{h}, a finance task you are responsible for is overdue."),
                attachment.clone(),
            ),
        });
    }
    if let Some(director) = director {
        match fields::handle_of_email(director) {
            Some(h) => {
                let mut esc = attachment.clone();
                esc["text"] = json!(format!(
                    "Escalated: more than {DIRECTOR_AFTER_DAYS} days overdue. Responsible: {}",
                    if responsible.is_empty() {
                        "nobody".to_string()
                    } else {
                        responsible
                            .iter()
                            .map(|r| format!("@{r}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
                plan.effects.push(Effect::Mattermost {
                    target: format!("director:@{h}"),
                    body: mattermost::message(
                        Some(&format!("@{h}")),
                        &format!("@{h}, escalation: a finance task is {days} days overdue."),
                        esc,
                    ),
                });
            }
            None => plan.notes.push(
                "finance_director_email is not an email address: Finance Director not alerted"
                    .into(),
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
