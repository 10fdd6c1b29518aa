//! What each event type of the taxonomy does (SPEC §7), as data: the dashboard statements
//! to run, the side effects to perform (each with the `(channel, target)` key it is
//! recorded under in `integration.deliveries`), and the Odoo look-up some need first.
//! The components execute a `Plan`; nothing here touches the network or the database.
//!
//! This file holds the shared types and the dispatch table (which event type goes to which
//! planner); each domain's planning and wording lives in its own submodule: `expense`,
//! `asset` and `finance`.

mod asset;
mod expense;
mod finance;

pub use expense::{approval_request_key, report_message_key};
pub use finance::DIRECTOR_AFTER_DAYS;

use crate::approval::Approvers;
use crate::dashboard::{self, Statement};
use crate::email::Email;
use crate::fields;
use crate::google::Booking;
use crate::mattermost::MattermostUser;
use crate::odoo::{Person, Report};
use asset::{asset_overdue, asset_reserved, asset_status};
use expense::{
    decision_target, expense_approved, expense_paid, expense_rejected, expense_submitted,
};
use finance::{finance_overdue, finance_submitted};
use ipai_core::dispatch::EventEnvelope;
use serde_json::Value;

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
    /// Days an approval message's buttons stay valid (`approval_expiry_days`; `None` = 7).
    pub approval_expiry_days: Option<String>,
    /// Whether the bot can send direct messages (`mattermost_bot_token` is set): approval
    /// buttons are only ever sent that way (SPEC §15), never through the webhook.
    pub bot_configured: bool,
}

/// Default validity of an approval message's buttons.
pub const APPROVAL_EXPIRY_DAYS: i64 = 7;

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
/// Delivery target of an approved report's post to the finance channel.
pub const FINANCE_TARGET: &str = "finance-channel";
pub const REVIEW_TARGET: &str = "review-request";

/// One side effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// POST the body to the Mattermost incoming webhook.
    Mattermost { target: String, body: Value },
    /// An approval request: a direct message from the bot to each decider (the only
    /// messages that carry buttons), and optionally a notice without buttons through the
    /// webhook. One delivery whose parts are recorded apart ([`part_target`]), so a retry
    /// sends only the parts still missing.
    MattermostDirect {
        target: String,
        messages: Vec<DirectMessage>,
        notice: Option<Value>,
    },
    /// Send through the email API.
    Email { target: String, email: Email },
    /// Insert a Google Calendar event.
    Calendar { target: String, booking: Booking },
}

impl Effect {
    pub fn channel(&self) -> &'static str {
        match self {
            Effect::Mattermost { .. } | Effect::MattermostDirect { .. } => MATTERMOST,
            Effect::Email { .. } => EMAIL,
            Effect::Calendar { .. } => CALENDAR,
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Effect::Mattermost { target, .. }
            | Effect::MattermostDirect { target, .. }
            | Effect::Email { target, .. }
            | Effect::Calendar { target, .. } => target,
        }
    }
}

/// A direct message from the bot to one Mattermost user.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectMessage {
    /// The recipient's Mattermost user id (the DM channel is the bot's and theirs).
    pub user_id: String,
    pub username: String,
    /// `{"text", "attachments"}`, as [`crate::mattermost::message`] makes it (no channel).
    pub message: Value,
}

/// The ledger target of one part of a [`Effect::MattermostDirect`]: `<target>/dm/@<username>`
/// for a direct message, `<target>/notice` for the channel notice.
pub fn part_target(target: &str, recipient: Option<&str>) -> String {
    match recipient {
        Some(username) => format!("{target}/dm/@{username}"),
        None => format!("{target}/notice"),
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

#[cfg(test)]
mod tests;
