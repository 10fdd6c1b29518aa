//! One file per route of `crate::handle` (alerts' evaluate route is `crate::alerts`), so
//! a change to one page reads and reviews on its own; the router, the request and
//! response types and the guards every route shares stay in the crate root.

pub(crate) mod dashboard;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod replay;
mod replay_page;
pub(crate) mod requeue;
pub(crate) mod retention;

use crate::{csrf, html, ApiError, Config, Request, Response};

/// The guard of every form the dashboard posts (requeue, replay): the request comes from
/// the page's own origin and carries this session's CSRF token, or it is refused with 403
/// (JSON when asked) before anything is read or written.
pub(crate) fn refuse_forged_form(req: &Request, cfg: &Config) -> Option<Response> {
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
    let e = checked.err()?;
    Some(if req.wants_json() {
        ApiError::new(403, "csrf_rejected", e.to_string()).into()
    } else {
        Response::html(403, html::message_page("Request refused", &e.to_string()))
    })
}
