//! `POST /mattermost/actions`: a click on an Approve/Reject button (SPEC §7 approvals).
//!
//! 1. The `context` must carry a valid HMAC signature (`mattermost_action_secret`):
//!    otherwise 401 and Odoo is not called.
//! 2. The decision is claimed in `integration.deliveries` (event = the expense.submitted
//!    event the message was posted for, channel `odoo`, target `hr.expense.sheet/<id>`):
//!    a second click, or a click on the other button, is answered from the record
//!    without calling Odoo.
//! 3. Odoo is called once (`action_approve_expense_sheets` or `ipai_refuse`); on success
//!    the post is updated — buttons replaced by the outcome and who clicked — and the
//!    report is linked to the post in `id_map`. On failure the buttons stay and only the
//!    clicking user sees the error (the click can be retried).
//!
//! Odoo's own `expense.approved` / `expense.rejected` events then flow back through ingest.

use crate::{db, outbound};
use ipai_core::handler::HandlerError;
use ipai_effects::approval;
use ipai_effects::deliveries::Claim;
use ipai_effects::mattermost::{self, ActionContext, ActionRequest, Decision};
use ipai_effects::odoo;
use ipai_effects::plan::ODOO;
use ipai_spin::http::{method, read_body, respond_json};
use serde_json::{json, Value};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

const MAX_BODY: usize = 64 * 1024;

fn error(code: &str, message: &str) -> Vec<u8> {
    json!({"error": code, "message": message})
        .to_string()
        .into_bytes()
}

/// Serves one callback.
pub async fn serve(req: IncomingRequest, out: ResponseOutparam) {
    let (status, body) = match handle(req).await {
        Ok(v) => (200, v.to_string().into_bytes()),
        Err((status, code, msg)) => {
            if status >= 500 {
                eprintln!("approvals: {msg}");
            }
            (status, error(code, &msg))
        }
    };
    respond_json(out, status, body, &[]).await
}

type Failure = (u16, &'static str, String);

fn from_handler(e: HandlerError) -> Failure {
    (e.status(), e.code(), e.to_string())
}

async fn handle(req: IncomingRequest) -> Result<Value, Failure> {
    if !method(&req).eq_ignore_ascii_case("POST") {
        return Err((405, "method_not_allowed", "use POST".into()));
    }
    let secret = outbound::required("mattermost_action_secret").map_err(from_handler)?;
    let body = read_body(req, MAX_BODY)
        .await
        .map_err(|e| (400, "bad_request", e.to_string()))?;
    let action = ActionRequest::parse(&body).map_err(|e| (400, "bad_request", e))?;
    let ctx = ActionContext::verify(&action.context, &secret)
        .map_err(|e| (401, "unauthorized", format!("rejected button context: {e}")))?;
    let sheet_id: i64 = ctx
        .sheet_id
        .parse()
        .map_err(|_| (400, "bad_request", "sheet_id is not a number".to_string()))?;
    // Everything Odoo needs is read before claiming, so a missing variable claims nothing.
    let client = outbound::Odoo::configured().map_err(from_handler)?;
    let conn = db::open().map_err(from_handler)?;
    let who = action.who();
    let target = approval::target(&ctx);
    match db::claim(&conn, &ctx.event_id, ODOO, &target).map_err(from_handler)? {
        Claim::Done(detail) => return Ok(approval::already_decided(&ctx, &detail)),
        Claim::Busy => {
            return Ok(mattermost::ephemeral(
                "This report is being approved or refused right now; try again in a minute.",
            ))
        }
        Claim::Send => {}
    }
    match decide(&client, &ctx, sheet_id, &who).await {
        Ok(()) => {
            let detail = approval::record(ctx.decision, &who);
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
            if !action.post_id.is_empty() {
                // Best effort: the decision stands even if the link cannot be written.
                if let Err(e) = db::map_id(
                    &conn,
                    "hr.expense.sheet",
                    &ctx.sheet_id,
                    "mattermost_post",
                    &action.post_id,
                    &ctx.event_id,
                ) {
                    eprintln!("approvals: id_map: {e}");
                }
            }
            Ok(mattermost::update_response(&ctx, ctx.decision, &who, ""))
        }
        Err(e) => {
            let msg = e.to_string();
            let _ = db::finish(&conn, &ctx.event_id, ODOO, &target, "failed", None, &msg);
            eprintln!("approvals: sheet {sheet_id}: {msg}");
            Ok(mattermost::ephemeral(&format!(
                "Odoo did not {} the report: {msg}",
                ctx.decision.as_str()
            )))
        }
    }
}

async fn decide(
    client: &outbound::Odoo,
    ctx: &ActionContext,
    sheet_id: i64,
    who: &str,
) -> Result<(), HandlerError> {
    let session = client.session().await?;
    match ctx.decision {
        Decision::Approve => {
            let result = client
                .execute(&odoo::approve_sheet(&session, sheet_id))
                .await?;
            odoo::approve_outcome(&result).map_err(HandlerError::Upstream)
        }
        Decision::Refuse => client
            .execute(&odoo::refuse_sheet(
                &session,
                sheet_id,
                &approval::refuse_reason(who),
            ))
            .await
            .map(|_| ()),
    }
}
