//! The Spin side of the domain handlers (SPEC §7): receive the dispatcher's envelope,
//! look up in Odoo what the payload lacks, make the event's `ipai_effects::Plan`, run its
//! dashboard statements, and perform each side effect at most once per event through the
//! `integration.deliveries` ledger (claim → send → record).
//!
//! Answers: 200 `done` (with what was done or found already done), 200 `skipped: reason`
//! for an event with nothing to do, 500 for a missing variable (named), 502 for a failed
//! side effect or database call — the dispatcher retries every non-2xx later.

pub mod approvals;
pub mod db;
pub mod outbound;

use ipai_core::dispatch::EventEnvelope;
use ipai_core::handler_request::HandlerError;
use ipai_effects::approval::{self, Approvers, Employee};
use ipai_effects::deliveries::Claim;
use ipai_effects::plan::{self, Effect, Found, Lookup, Settings};
use ipai_effects::{email, fields, google, odoo};
use ipai_spin::handler_http::{answer, receive, Handled};
use ipai_spin::vars;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::pg4::Connection;

/// Serves one dispatcher request for handler component `handler`.
pub async fn serve(req: IncomingRequest, out: ResponseOutparam, handler: &str) {
    match receive(req, handler).await {
        Ok(event) => {
            let result = process(&event).await;
            answer(out, handler, Some(&event.id), result).await
        }
        Err(e) => answer(out, handler, None, Err(e)).await,
    }
}

/// The settings plans read, from Spin variables (unset or empty = `None`).
pub fn settings() -> Settings {
    Settings {
        public_base_url: vars::optional("public_base_url"),
        odoo_url: vars::optional("odoo_url"),
        finance_channel: vars::optional("mattermost_finance_channel"),
        it_admin_email: vars::optional("it_admin_email"),
        finance_director_email: vars::optional("finance_director_email"),
        action_secret: vars::optional("mattermost_action_secret"),
        approval_expiry_days: vars::optional("approval_expiry_days"),
    }
}

/// Handles one event: look-up, plan, dashboards, side effects.
pub async fn process(event: &EventEnvelope) -> Result<Handled, HandlerError> {
    let conn = db::open()?;
    // One message per report transition (the approval request, a refusal, an approval's
    // finance post, a payment): the first of its lines' events owns it; the others neither
    // look the report up nor send it. Whether the looked-up-for delivery is done comes in
    // the same round trip (`None` when there is no look-up).
    let lookup = plan::lookup_for(event);
    let (owner, done) = match (plan::report_message_key(event), &lookup) {
        (Some(key), Some((_, channel, target))) => {
            let (owner, done) =
                db::claim_report_message_and_is_done(&conn, &key, &event.id, channel, target)?;
            (Some(owner), Some(done))
        }
        (Some(key), None) => (
            Some(db::claim_report_message(&conn, &key, &event.id)?),
            None,
        ),
        (None, Some((_, channel, target))) => {
            (None, Some(db::is_done(&conn, &event.id, channel, target)?))
        }
        (None, None) => (None, None),
    };
    let report_message_by = owner.filter(|owner| *owner != event.id);
    let mut found = Found::default();
    // The delivery this attempt saw not done before its look-up: `perform` need not ask again.
    let mut seen_open = None;
    if let Some((lookup, channel, target)) = lookup {
        if report_message_by.is_none() && done == Some(false) {
            found = look_up(&lookup, event).await?;
            seen_open = Some((channel, target));
        }
    }
    found.report_message_by = report_message_by;
    let plan = plan::plan(event, &settings(), &found)
        .map_err(|e| HandlerError::Misconfigured(e.to_string()))?;
    if let Some(reason) = plan.skip_reason() {
        return Ok(Handled::Skipped(reason));
    }
    let mut done = Vec::new();
    for st in &plan.statements {
        db::run(&conn, st)?;
    }
    if !plan.statements.is_empty() {
        done.push(format!("dashboard: {} statement(s)", plan.statements.len()));
    }
    let mut misconfigured = None;
    let mut failed = Vec::new();
    for effect in &plan.effects {
        let open = seen_open
            .as_ref()
            .is_some_and(|(c, t)| *c == effect.channel() && t == effect.target());
        match perform(&conn, event, effect, open).await {
            Ok(what) => done.push(what),
            Err(HandlerError::Misconfigured(m)) => {
                misconfigured.get_or_insert(m);
            }
            Err(e) => failed.push(format!("{} {}: {e}", effect.channel(), effect.target())),
        }
    }
    done.extend(plan.notes.iter().map(|n| format!("note: {n}")));
    if let Some(m) = misconfigured {
        return Err(HandlerError::Misconfigured(m));
    }
    if !failed.is_empty() {
        return Err(HandlerError::Upstream(failed.join("; ")));
    }
    Ok(Handled::Done(done))
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn look_up(lookup: &Lookup, event: &EventEnvelope) -> Result<Found, HandlerError> {
    let odoo_client = outbound::Odoo::configured()?;
    let session = odoo_client.session().await?;
    match lookup {
        Lookup::ExpenseApprover { expense_id } => {
            let result = odoo_client
                .execute(&odoo::expense_approver_lookup(&session, *expense_id))
                .await?;
            let (report, person) = odoo::parse_expense_approver(&result);
            let (approvers, employee) = resolve_approvers(event, person.as_ref()).await?;
            Ok(Found {
                report,
                person,
                approvers,
                employee: employee.account,
                planned_at: unix_now(),
                ..Found::default()
            })
        }
        Lookup::ExpenseReport { expense_id } => {
            let result = odoo_client
                .execute(&odoo::expense_approver_lookup(&session, *expense_id))
                .await?;
            let (report, _approver) = odoo::parse_expense_approver(&result);
            Ok(Found {
                report,
                ..Found::default()
            })
        }
        Lookup::User { user_id } => {
            let result = odoo_client
                .execute(&odoo::user_lookup(&session, *user_id))
                .await?;
            Ok(Found {
                person: odoo::parse_user(&result),
                ..Found::default()
            })
        }
    }
}

/// Who decides on an expense report's approval message, in Mattermost: the report's
/// approver from Odoo, else (missing, unknown in Mattermost, deactivated, or the employee)
/// the finance approvers of `mattermost_finance_approvers` other than the employee.
async fn resolve_approvers(
    event: &EventEnvelope,
    approver: Option<&odoo::Person>,
) -> Result<(Approvers, Employee), HandlerError> {
    let directory = outbound::Directory::configured()?;
    let employee_email = fields::text(&event.payload, "employee_email")
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !directory.is_configured() {
        let reason = "no Mattermost directory is configured (mattermost_bot_token or \
                      mattermost_user_map)";
        let approvers = Approvers {
            users: Vec::new(),
            stand_in_reason: Some(reason.into()),
        };
        return Ok((
            approvers,
            Employee {
                email: employee_email,
                account: None,
            },
        ));
    }
    let employee = Employee {
        account: match employee_email.as_str() {
            "" => None,
            email => directory.by_email(email).await?,
        },
        email: employee_email,
    };
    let approver_email = approver.and_then(|p| {
        p.email
            .clone()
            .or_else(|| p.login.clone().filter(|l| l.contains('@')))
    });
    let account = match &approver_email {
        Some(email) => directory.by_email(email).await?,
        None => None,
    };
    let approvers = match approval::report_approver(approver_email.as_deref(), account, &employee) {
        Ok(approver) => Approvers {
            users: vec![approver],
            stand_in_reason: None,
        },
        Err(reason) => {
            let setting = vars::optional("mattermost_finance_approvers");
            let mut candidates = Vec::new();
            for email in approval::finance_approver_emails(setting.as_deref()) {
                let account = directory.by_email(&email).await?;
                candidates.push((email, account));
            }
            Approvers {
                users: approval::stand_ins(candidates, &employee),
                stand_in_reason: Some(reason),
            }
        }
    };
    Ok((approvers, employee))
}

/// A request ready to send, and how its answer is judged.
enum Prepared {
    Plain(outbound::Outbound),
    Calendar(outbound::Outbound, String),
}

async fn prepare(
    conn: &Connection,
    event: &EventEnvelope,
    effect: &Effect,
) -> Result<Prepared, HandlerError> {
    Ok(match effect {
        Effect::Mattermost { body, .. } => Prepared::Plain(outbound::mattermost(body)?),
        Effect::Email { target, email: e } => {
            let from = outbound::required("email_from")?;
            Prepared::Plain(outbound::email(
                &e.resend_body(&from),
                &email::idempotency_key(&event.id, target),
            )?)
        }
        Effect::Calendar { booking, .. } => {
            // Variables first, so a missing one is reported before any request.
            outbound::url_within("google_calendar_api_base", "google_calendar_origin")?;
            outbound::required("google_calendar_id")?;
            let token = outbound::google_token(conn).await?;
            let body = google::event_body(booking);
            let id = google::event_id_for(&booking.event_id);
            Prepared::Calendar(outbound::calendar_insert(&token, &body)?, id)
        }
    })
}

/// Performs one side effect at most once per event: prepare (variables), claim, send,
/// record. Returns what happened. `seen_open`: this attempt already found the delivery not
/// done (before its look-up), so it is not asked again; the claim decides either way.
async fn perform(
    conn: &Connection,
    event: &EventEnvelope,
    effect: &Effect,
    seen_open: bool,
) -> Result<String, HandlerError> {
    let (channel, target) = (effect.channel(), effect.target());
    // Already done: nothing to prepare (no variables, no token needed).
    if !seen_open && db::is_done(conn, &event.id, channel, target)? {
        return Ok(format!("{channel} {target}: already done"));
    }
    let prepared = prepare(conn, event, effect).await?;
    match db::claim(conn, &event.id, channel, target)? {
        Claim::Done(_) => return Ok(format!("{channel} {target}: already done")),
        Claim::Busy => {
            return Err(HandlerError::Upstream(format!(
                "{channel} {target} is being performed by another attempt"
            )))
        }
        Claim::Send => {}
    }
    let (req, calendar_id) = match &prepared {
        Prepared::Plain(r) => (r, None),
        Prepared::Calendar(r, id) => (r, Some(id.as_str())),
    };
    let answer = outbound::send(req).await;
    // Google answers 409 for an event id that exists: inserted by an earlier attempt.
    let already = calendar_id.is_some() && answer.status == Some(409);
    if answer.ok() || already {
        let detail = if already {
            "already existed".to_string()
        } else {
            answer.describe()
        };
        db::finish(
            conn,
            &event.id,
            channel,
            target,
            "sent",
            answer.status,
            &detail,
        )?;
        if let (Some(id), Effect::Calendar { booking, .. }) = (calendar_id, effect) {
            db::map_id(
                conn,
                "ipai.asset.booking",
                &booking.booking_id,
                plan::CALENDAR,
                id,
                &event.id,
            )?;
        }
        Ok(format!("{channel} {target}: sent"))
    } else {
        let detail = answer.describe();
        db::finish(
            conn,
            &event.id,
            channel,
            target,
            "failed",
            answer.status,
            &detail,
        )?;
        Err(HandlerError::Upstream(detail))
    }
}
