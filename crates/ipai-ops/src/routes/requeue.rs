//! `POST /ops/outbox/{id}/requeue`: the dashboard's one write. Its own file because it
//! is the route an attacker would aim at — the origin and CSRF checks, the UUID check
//! before any SQL, and the operator's log line live together here.

use crate::data;
use crate::{csrf, html, value, ApiError, Config, Database, Request, Response};
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
    let password = cfg.ops_password.as_deref().unwrap_or_default();
    let checked = csrf::check_origin(
        req.header("sec-fetch-site"),
        req.header("origin"),
        req.own_authority().as_deref(),
    )
    .and_then(|_| {
        csrf::verify_token(
            password,
            csrf::session_from_cookie(req.header("cookie")).as_deref(),
            req.form_field("csrf").as_deref(),
            req.now_unix,
        )
    });
    if let Err(e) = checked {
        return if req.wants_json() {
            ApiError::new(403, "csrf_rejected", e.to_string()).into()
        } else {
            Response::html(403, html::message_page("Request refused", &e.to_string()))
        };
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
