//! `POST /mattermost/actions`: a click on an Approve/Reject button (SPEC §7 approvals).
//! Only the approver the message was bound to decides, never the report's employee, and
//! only on the report's current submission (docs/handlers.md "Trust model"):
//!
//! 1. The `context` must carry a valid HMAC signature (`mattermost_action_secret`):
//!    otherwise 401 and Odoo is not called. A genuine button from before approvers were
//!    bound to messages is refused to the clicker.
//! 2. Who clicked (`ipai_effects::approval`): the report's employee (by Mattermost id, or
//!    email from the directory) is refused and the attempt noted once in the report's Odoo
//!    chatter; a `user_id` that is not a signed decider is refused; with a configured
//!    directory, the `user_id` must be an active account whose username is the click's
//!    `user_name`. These refusals go to the clicker alone (`ephemeral_text`), the post
//!    unchanged, nothing decided in Odoo.
//! 3. Which message: past its expiry, or no longer the report's newest approval request
//!    → refused without calling Odoo, the post marked expired / superseded.
//! 4. The decision is claimed in `integration.deliveries` (event = the expense.submitted
//!    event the message was posted for, channel `odoo`, target `hr.expense.sheet/<id>`):
//!    a message decides once — a repeated click, with either button, is answered from the
//!    record without calling Odoo, and a message Odoo found superseded stays closed.
//! 5. Odoo: the report must still be `submit`, in the submission the message was made for
//!    (`ipai_submitted_at`; else superseded, as in 3); then
//!    `action_approve_expense_sheets` or `ipai_refuse`, and a chatter note naming the
//!    Mattermost user who decided. On success the post is updated (buttons replaced by the
//!    outcome and who decided) and the report linked to the post in `id_map`; on failure
//!    the buttons stay and only the clicker is told, in our words (Odoo's error is logged;
//!    the click can be retried).
//!
//! Odoo's own `expense.approved` / `expense.rejected` events then flow back through ingest.

use crate::{db, outbound, unix_now};
use ipai_core::handler_request::HandlerError;
use ipai_core::{log, ApiError};
use ipai_effects::approval::{self, Refusal};
use ipai_effects::deliveries::Claim;
use ipai_effects::mattermost::{self, ActionContext, ActionRequest, ContextError, Decision};
use ipai_effects::odoo;
use ipai_effects::plan::ODOO;
use ipai_spin::http::{method, read_body, respond_error, respond_json};
use serde_json::{json, Value};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::pg4::Connection;

const MAX_BODY: usize = 64 * 1024;

const COMPONENT: &str = "approvals";

/// Serves one callback.
pub async fn serve(req: IncomingRequest, out: ResponseOutparam) {
    match handle(req).await {
        Ok(v) => respond_json(out, 200, v.to_string().into_bytes(), &[]).await,
        Err(e) => {
            if e.is_server_error() {
                log::error(COMPONENT, None, &e);
            }
            respond_error(out, &for_mattermost(e)).await
        }
    }
}

/// The error Mattermost gets: a failed database or service call (502) in our words, its
/// detail only in the log (written above); our own refusals (400, 401, a misconfigured
/// variable's name) as they are.
fn for_mattermost(e: ApiError) -> ApiError {
    if e.status == 502 {
        ApiError::new(
            502,
            e.code,
            "the click could not be processed; the bus's log has the reason",
        )
    } else {
        e
    }
}

type Failure = ApiError;

fn from_handler(e: HandlerError) -> Failure {
    ApiError::from(e)
}

fn bad_request(message: impl Into<String>) -> Failure {
    ApiError::new(400, "bad_request", message)
}

/// The answer to a refused click, logged for the audit trail.
fn refused(ctx: Option<&ActionContext>, click: &ActionRequest, refusal: &Refusal) -> Value {
    log::warn(
        COMPONENT,
        ctx.map(|c| c.event_id.as_str()),
        format!(
            "refused a {} click on report {} by {} ({}): {}",
            ctx.map_or("?", |c| c.decision.as_str()),
            ctx.map_or("?", |c| c.sheet_id.as_str()),
            click.who(),
            click.user_id,
            refusal.code()
        ),
    );
    refusal.answer(ctx)
}

async fn handle(req: IncomingRequest) -> Result<Value, Failure> {
    if !method(&req).eq_ignore_ascii_case("POST") {
        return Err(ApiError::method_not_allowed("use POST", "POST"));
    }
    let secret = outbound::required("mattermost_action_secret").map_err(from_handler)?;
    let body = read_body(req, MAX_BODY)
        .await
        .map_err(|e| bad_request(e.to_string()))?;
    let click = ActionRequest::parse(&body).map_err(bad_request)?;
    let ctx = match ActionContext::verify(&click.context, &secret) {
        Ok(ctx) => ctx,
        Err(ContextError::Outdated) => return Ok(refused(None, &click, &Refusal::Outdated)),
        Err(e) => {
            return Err(ApiError::unauthorized(format!(
                "rejected button context: {e}"
            )))
        }
    };
    let sheet_id: i64 = ctx
        .sheet_id
        .parse()
        .map_err(|_| bad_request("sheet_id is not a number"))?;

    // Who clicked: from the signed context, then from Mattermost's directory.
    if let Err(refusal) = approval::check_clicker(&ctx, &click) {
        if refusal == Refusal::SelfApproval {
            note_self_approval(&ctx, &click, sheet_id).await;
        }
        return Ok(refused(Some(&ctx), &click, &refusal));
    }
    let directory = outbound::Directory::configured().map_err(from_handler)?;
    if directory.is_configured() {
        let checked = match directory.by_id(&click.user_id).await {
            Ok(account) => approval::check_directory(&ctx, &click, account.as_ref()),
            Err(e) => {
                // Mattermost's own words go to the log; the clicker gets ours.
                log::warn(
                    COMPONENT,
                    Some(&ctx.event_id),
                    format!("Mattermost's user directory could not be asked: {e}"),
                );
                Err(Refusal::IdentityUnconfirmed(
                    "Mattermost's user directory could not be asked, try again in a minute".into(),
                ))
            }
        };
        if let Err(refusal) = checked {
            if refusal == Refusal::SelfApproval {
                note_self_approval(&ctx, &click, sheet_id).await;
            }
            return Ok(refused(Some(&ctx), &click, &refusal));
        }
    }

    // Which message: unexpired, and still the report's newest submission.
    if let Err(refusal) = approval::check_expiry(&ctx, unix_now()) {
        return Ok(refused(Some(&ctx), &click, &refusal));
    }
    // Everything Odoo needs is read before claiming, so a missing variable claims nothing.
    let client = outbound::Odoo::configured().map_err(from_handler)?;
    let conn = db::open().map_err(from_handler)?;
    let newest = db::newest_approval_request(&conn, sheet_id).map_err(from_handler)?;
    if let Err(refusal) = approval::check_newest_request(&ctx, &newest) {
        return Ok(refused(Some(&ctx), &click, &refusal));
    }

    let who = approval::decider_name(&ctx, &click.user_id);
    let target = approval::target(&ctx);
    match db::claim(&conn, &ctx.event_id, ODOO, &target).map_err(from_handler)? {
        Claim::Done(detail) => return Ok(approval::already_decided(&ctx, &detail)),
        Claim::Busy => {
            return Ok(mattermost::ephemeral(
                "This report is being approved or refused right now; try again in a minute.",
            ))
        }
        Claim::Send | Claim::Redo(_) => {}
    }
    let fail = |msg: String| {
        let _ = db::finish(&conn, &ctx.event_id, ODOO, &target, "failed", None, &msg);
        msg
    };
    match decide(&client, &ctx, sheet_id, &who, &click.user_id).await {
        Ok(Outcome::Decided { note_failed }) => {
            let detail = approval::record(ctx.decision, &who, &click.user_id);
            db::finish(
                &conn,
                &ctx.event_id,
                ODOO,
                &target,
                "sent",
                Some(200),
                &detail,
            )
            .map_err(from_handler)?;
            if !click.post_id.is_empty() {
                // Best effort: the decision stands even if the link cannot be written.
                if let Err(e) = db::map_id(
                    &conn,
                    "hr.expense.sheet",
                    &ctx.sheet_id,
                    "mattermost_post",
                    &click.post_id,
                    &ctx.event_id,
                ) {
                    log::warn(COMPONENT, Some(&ctx.event_id), format!("id_map: {e}"));
                }
            }
            let mut answer = mattermost::update_response(&ctx, ctx.decision, &who, "");
            if let Some(e) = note_failed {
                log::warn(
                    COMPONENT,
                    Some(&ctx.event_id),
                    format!("sheet {sheet_id}: chatter note failed: {e}"),
                );
                answer["ephemeral_text"] = json!(format!(
                    "{} {NOTE_FAILED}",
                    answer["ephemeral_text"].as_str().unwrap_or_default()
                ));
            }
            Ok(answer)
        }
        Ok(Outcome::Refused(refusal)) => {
            // Final: Odoo no longer has the report waiting in this message's submission,
            // so the message's one use is spent and no later state can revive it.
            let why = match &refusal {
                Refusal::Superseded(why) => why.clone(),
                other => other.code().to_string(),
            };
            db::finish(
                &conn,
                &ctx.event_id,
                ODOO,
                &target,
                "sent",
                None,
                &approval::closed_record(&why),
            )
            .map_err(from_handler)?;
            Ok(refused(Some(&ctx), &click, &refusal))
        }
        Err(e) => {
            let msg = fail(e.to_string());
            log::warn(
                COMPONENT,
                Some(&ctx.event_id),
                format!("sheet {sheet_id}: {msg}"),
            );
            Ok(mattermost::ephemeral(&odoo_failed(ctx.decision)))
        }
    }
}

/// What the clicker is told when a note could not be added (the reason is logged).
const NOTE_FAILED: &str = "The note naming you could not be added to the report in Odoo; \
     the bus's log has the reason.";

/// What the clicker is told when Odoo failed or refused the decision. Our sentence only:
/// Odoo's message (a UserError, a traceback, a proxy's page) goes to the log and the
/// deliveries ledger, never into Mattermost, where it may say more than the clicker
/// should read.
fn odoo_failed(decision: Decision) -> String {
    format!(
        "Odoo did not {} the report, so nothing was changed and the buttons stay: try again \
         in a few minutes, or decide in Odoo. The bus's log has the reason.",
        decision.as_str()
    )
}

enum Outcome {
    /// Odoo took the decision; the chatter note naming who decided failed with this.
    Decided { note_failed: Option<String> },
    /// Odoo no longer has the report waiting for approval.
    Refused(Refusal),
}

async fn decide(
    client: &outbound::Odoo,
    ctx: &ActionContext,
    sheet_id: i64,
    who: &str,
    user_id: &str,
) -> Result<Outcome, HandlerError> {
    let session = client.session().await?;
    let now = client
        .execute(&odoo::sheet_state_read(&session, sheet_id))
        .await?;
    if let Err(refusal) = approval::check_sheet_now(ctx, &odoo::parse_sheet_now(&now)) {
        return Ok(Outcome::Refused(refusal));
    }
    match ctx.decision {
        Decision::Approve => {
            let result = client
                .execute(&odoo::approve_sheet(&session, sheet_id))
                .await?;
            odoo::approve_outcome(&result).map_err(HandlerError::Upstream)?;
        }
        Decision::Refuse => {
            client
                .execute(&odoo::refuse_sheet(
                    &session,
                    sheet_id,
                    &approval::refuse_reason(who),
                ))
                .await?;
        }
    }
    let note = approval::decision_note(ctx, ctx.decision, who, user_id);
    let note_failed = client
        .execute(&odoo::sheet_note(&session, sheet_id, &note))
        .await
        .err()
        .map(|e| e.to_string());
    Ok(Outcome::Decided { note_failed })
}

/// Notes the employee's attempt to decide on their own report in its Odoo chatter, once
/// per message (ledger target `hr.expense.sheet/<id>#self-approval`). Best effort: the
/// click is refused whatever happens here.
async fn note_self_approval(ctx: &ActionContext, click: &ActionRequest, sheet_id: i64) {
    let noted = async {
        let client = outbound::Odoo::configured()?;
        let conn: Connection = db::open()?;
        let target = approval::self_approval_target(ctx);
        if !db::claim(&conn, &ctx.event_id, ODOO, &target)?.performs() {
            return Ok(());
        }
        let note = approval::self_approval_note(ctx, click);
        let sent = async {
            let session = client.session().await?;
            client
                .execute(&odoo::sheet_note(&session, sheet_id, &note))
                .await
        }
        .await;
        let (status, detail) = match &sent {
            Ok(_) => ("sent", note),
            Err(e) => ("failed", e.to_string()),
        };
        db::finish(&conn, &ctx.event_id, ODOO, &target, status, None, &detail)?;
        sent.map(|_| ())
    }
    .await;
    if let Err(e) = noted {
        let e: HandlerError = e;
        log::warn(
            COMPONENT,
            Some(&ctx.event_id),
            format!("sheet {sheet_id}: self-approval note failed: {e}"),
        );
    }
}
