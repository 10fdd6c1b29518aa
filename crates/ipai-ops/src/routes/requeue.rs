//! `POST /ops/outbox/{id}/requeue`: the dashboard's one write. Its own file because it
//! is the route an attacker would aim at — the origin and CSRF checks, the UUID check
//! before any SQL, and the operator's log line live together here.

use crate::data;
use crate::{value, ApiError, Config, Database, Request, Response};
use ipai_core::log;
use serde_json::json;

/// The `{id}` of `/ops/outbox/{id}/requeue`, if the path is that route.
pub(crate) fn requeue_id(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/ops/outbox/")?
        .strip_suffix("/requeue")?;
    (!id.contains('/')).then_some(id)
}

/// `POST /ops/outbox/{id}/requeue` (Basic auth already checked): origin and CSRF token,
/// then `integration.requeue_outbox`; a 303 back to the dashboard, or JSON when asked.
pub(crate) fn requeue(req: &Request, cfg: &Config, db: &mut dyn Database, id: &str) -> Response {
    if let Some(refusal) = super::refuse_forged_form(req, cfg) {
        return refusal;
    }
    if !data::is_uuid(id) {
        return ApiError::new(404, "not_found", "the event id is not a UUID").into();
    }
    match value(db, data::REQUEUE_SQL, &[id.to_string()]) {
        Err(e) => {
            log::error("ops", Some(id), format_args!("requeue: {e}"));
            ApiError::database_unavailable("could not requeue: database error")
                .retry_after(5)
                .into()
        }
        Ok(v) => {
            let requeued = v.as_bool().unwrap_or(false);
            if requeued {
                log::info("ops", Some(id), "requeued by the operator");
            }
            if req.wants_json() {
                Response::json(200, &json!({"id": id, "requeued": requeued}))
            } else {
                let key = if requeued { "requeued" } else { "unchanged" };
                Response::new(303, "text/plain; charset=utf-8", "See Other")
                    .with("location", format!("/ops?{key}={id}"))
            }
        }
    }
}
