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
pub mod reconcile;

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
        bot_configured: vars::optional("mattermost_bot_token").is_some(),
    }
}

/// Handles one event: claims, look-up, plan, dashboards, side effects.
pub async fn process(event: &EventEnvelope) -> Result<Handled, HandlerError> {
    let conn = db::open()?;
    // One message per report transition (the approval request, a refusal, an approval's
    // finance post, a payment): the first of its lines' events owns it; the others neither
    // look the report up nor send it. The delivery an event looks up for is claimed in the
    // same round trip, before the look-up, so a done or busy one costs no look-up and a
    // sent one no further claim.
    let lookup = plan::lookup_for(event);
    let key = plan::report_message_key(event);
    let (owner, early) = match (&key, &lookup) {
        (_, Some((_, channel, target))) => {
            db::claim_before_look_up(&conn, key.as_deref(), &event.id, channel, target)?
        }
        (Some(key), None) => (Some(db::claim_report_message(&conn, key, &event.id)?), None),
        (None, None) => (None, None),
    };
    let mut early = match (early, lookup) {
        (Some(claim), Some((lookup, channel, target))) => Some(EarlyClaim {
            lookup,
            channel,
            target,
            claim,
        }),
        _ => None,
    };
    let result = process_claimed(&conn, event, owner, &mut early).await;
    // A claim this attempt took and did not perform goes back: the next attempt may take
    // it at once. Should that fail, its lease runs out and the next attempt takes it then.
    match early {
        Some(EarlyClaim {
            channel,
            target,
            claim: Claim::Send | Claim::Redo(_),
            ..
        }) => match (db::release(&conn, &event.id, channel, &target), result) {
            (Ok(()), result) => result,
            (Err(e), Ok(_)) => Err(e),
            (Err(e), Err(first)) => {
                ipai_core::log::warn(
                    "handlers",
                    Some(&event.id),
                    format!("could not release {channel} {target}: {e}"),
                );
                Err(first)
            }
        },
        _ => result,
    }
}

/// The claim of the delivery an event looks up for, made before the look-up; `Send` until
/// [`perform`] takes it over (`process` releases one left over).
struct EarlyClaim {
    lookup: Lookup,
    channel: &'static str,
    target: String,
    claim: Claim,
}

impl EarlyClaim {
    fn is_for(&self, effect: &Effect) -> bool {
        self.channel == effect.channel() && self.target == effect.target()
    }
}

async fn process_claimed(
    conn: &Connection,
    event: &EventEnvelope,
    owner: Option<String>,
    early: &mut Option<EarlyClaim>,
) -> Result<Handled, HandlerError> {
    let mut found = Found::default();
    if let Some(e) = early.as_ref() {
        match &e.claim {
            Claim::Send | Claim::Redo(_) => found = look_up(&e.lookup, event).await?,
            Claim::Busy => return Err(busy(e.channel, &e.target)),
            Claim::Done(_) => {}
        }
    }
    found.report_message_by = owner.filter(|owner| *owner != event.id);
    let plan = plan::plan(event, &settings(), &found)
        .map_err(|e| HandlerError::Misconfigured(e.to_string()))?;
    if let Some(reason) = plan.skip_reason() {
        return Ok(Handled::Skipped(reason));
    }
    let mut done = Vec::new();
    for st in &plan.statements {
        db::run(conn, st)?;
    }
    if !plan.statements.is_empty() {
        done.push(format!("dashboard: {} statement(s)", plan.statements.len()));
    }
    let mut misconfigured = None;
    let mut failed = Vec::new();
    for effect in &plan.effects {
        let claimed = match early {
            Some(e) if e.is_for(effect) => early.take().map(|e| e.claim),
            _ => None,
        };
        match perform(conn, event, effect, claimed).await {
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

/// Hands back a claim whose effect was not performed; a failed release is only logged
/// (the claim's lease frees it).
fn release_or_warn(conn: &Connection, event: &EventEnvelope, channel: &str, target: &str) {
    if let Err(e) = db::release(conn, &event.id, channel, target) {
        ipai_core::log::warn(
            "handlers",
            Some(&event.id),
            format!("could not release {channel} {target}: {e}"),
        );
    }
}

fn busy(channel: &str, target: &str) -> HandlerError {
    HandlerError::Upstream(format!(
        "{channel} {target} is being performed by another attempt"
    ))
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
    redo: u32,
) -> Result<Prepared, HandlerError> {
    Ok(match effect {
        Effect::Mattermost { body, .. } => Prepared::Plain(outbound::mattermost(body)?),
        Effect::MattermostDirect { .. } => {
            return Err(HandlerError::Upstream(
                "an approval request is performed by perform_direct".into(),
            ))
        }
        Effect::Email { target, email: e } => {
            let from = outbound::required("email_from")?;
            Prepared::Plain(outbound::email(
                &e.resend_body(&from),
                &email::idempotency_key(&event.id, target, redo),
            )?)
        }
        Effect::Calendar { booking, .. } => {
            // Variables first, so a missing one is reported before any request.
            outbound::url_within("google_calendar_api_base", "google_calendar_origin")?;
            outbound::required("google_calendar_id")?;
            let token = outbound::google_token(conn).await?;
            let body = google::event_body(booking, redo);
            let id = google::event_id_for(&booking.event_id, redo);
            Prepared::Calendar(outbound::calendar_insert(&token, &body)?, id)
        }
    })
}

/// Performs one side effect at most once per event: claim, prepare (variables, a token),
/// send, record. Returns what happened. `claimed`: this attempt's claim of it, made before
/// the look-up; without one it is claimed here (one statement that also answers "already
/// done"). A `Send` claim that cannot be prepared is released, so the next attempt may claim
/// it at once.
async fn perform(
    conn: &Connection,
    event: &EventEnvelope,
    effect: &Effect,
    claimed: Option<Claim>,
) -> Result<String, HandlerError> {
    let (channel, target) = (effect.channel(), effect.target());
    let claim = match claimed {
        Some(claim) => claim,
        None => db::claim(conn, &event.id, channel, target)?,
    };
    if let (
        true,
        Effect::MattermostDirect {
            messages, notice, ..
        },
    ) = (claim.performs(), effect)
    {
        return perform_direct(conn, event, target, messages, notice.as_ref()).await;
    }
    let prepared = match claim {
        Claim::Done(_) => return Ok(format!("{channel} {target}: already done")),
        Claim::Busy => return Err(busy(channel, target)),
        Claim::Send | Claim::Redo(_) => match prepare(conn, event, effect, claim.redo()).await {
            Ok(prepared) => prepared,
            Err(e) => {
                // Not performed: hand the claim back (its lease frees it should this fail).
                release_or_warn(conn, event, channel, target);
                return Err(e);
            }
        },
    };
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

/// Performs a claimed approval request: each direct message from the bot, then the channel
/// notice (when the webhook is configured), each part claimed and recorded under its own
/// [`plan::part_target`] so a retry sends only what is missing; the request itself is
/// recorded sent once every part is.
async fn perform_direct(
    conn: &Connection,
    event: &EventEnvelope,
    target: &str,
    messages: &[plan::DirectMessage],
    notice: Option<&serde_json::Value>,
) -> Result<String, HandlerError> {
    let channel = plan::MATTERMOST;
    // Variables first, so a missing one is reported before anything is sent.
    let prepared = outbound::Bot::configured().and_then(|bot| {
        let webhook = match (notice, vars::optional("mattermost_webhook_url")) {
            (Some(body), Some(_)) => Some(outbound::mattermost(body)?),
            _ => None,
        };
        Ok((bot, webhook))
    });
    let (bot, webhook) = match prepared {
        Ok(p) => p,
        Err(e) => {
            release_or_warn(conn, event, channel, target);
            return Err(e);
        }
    };
    let mut failed = Vec::new();
    let mut sent = 0;
    let mut bot_id = None;
    for m in messages {
        let part = plan::part_target(target, Some(&m.username));
        match db::claim(conn, &event.id, channel, &part)? {
            Claim::Done(_) => continue,
            Claim::Busy => {
                failed.push(busy(channel, &part).to_string());
                continue;
            }
            Claim::Send | Claim::Redo(_) => {}
        }
        let result = async {
            let id = match &bot_id {
                Some(id) => id,
                None => bot_id.insert(bot.own_id().await?),
            };
            bot.direct_message(id, &m.user_id, &m.message).await
        }
        .await;
        match result {
            Ok(()) => {
                db::finish(
                    conn,
                    &event.id,
                    channel,
                    &part,
                    "sent",
                    Some(201),
                    "direct message",
                )?;
                sent += 1;
            }
            Err(e) => {
                db::finish(
                    conn,
                    &event.id,
                    channel,
                    &part,
                    "failed",
                    None,
                    &e.to_string(),
                )?;
                failed.push(format!("{channel} {part}: {e}"));
            }
        }
    }
    if let Some(req) = webhook {
        let part = plan::part_target(target, None);
        match db::claim(conn, &event.id, channel, &part)? {
            Claim::Done(_) => {}
            Claim::Busy => failed.push(busy(channel, &part).to_string()),
            Claim::Send | Claim::Redo(_) => {
                let answer = outbound::send(&req).await;
                let status = if answer.ok() { "sent" } else { "failed" };
                db::finish(
                    conn,
                    &event.id,
                    channel,
                    &part,
                    status,
                    answer.status,
                    &answer.describe(),
                )?;
                if !answer.ok() {
                    failed.push(format!("{channel} {part}: {}", answer.describe()));
                }
            }
        }
    }
    if failed.is_empty() {
        let detail = format!("{} direct message(s)", messages.len());
        db::finish(conn, &event.id, channel, target, "sent", Some(201), &detail)?;
        Ok(format!(
            "{channel} {target}: sent ({sent} direct message(s) now)"
        ))
    } else {
        let detail = failed.join("; ");
        db::finish(conn, &event.id, channel, target, "failed", None, &detail)?;
        Err(HandlerError::Upstream(detail))
    }
}
