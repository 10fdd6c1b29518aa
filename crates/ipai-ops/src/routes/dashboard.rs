//! `GET /ops`: the HTML dashboard behind Basic auth. Its own file because it is the one
//! page that opens a CSRF session and hands out the token the requeue form posts back;
//! the HTML itself is `crate::html`.

use crate::data::{self, DashboardData};
use crate::{alerts, csrf, decode, head_strip, html, value, Config, Database, Request, Response};
use ipai_core::log;

/// `GET`/`HEAD /ops` (Basic auth already checked): the page, with a session cookie when
/// the browser has none.
pub(crate) fn dashboard(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let password = cfg.ops_password.as_deref().unwrap_or_default();
    let existing = csrf::session_from_cookie(req.header("cookie"));
    let session = existing
        .clone()
        .unwrap_or_else(|| csrf::new_session(&req.entropy));
    let token = csrf::token(password, &session, req.now_unix);
    let lock = cfg.lock_timeout_s.to_string();
    let mut r = match value(db, &data::dashboard_sql(), &[lock]).and_then(decode::<DashboardData>) {
        Err(e) => {
            log::error("ops", None, format_args!("/ops: {e}"));
            Response::html(
                503,
                html::message_page(
                    "Database unreachable",
                    "The ops dashboard cannot reach PostgreSQL; see /health and the runtime log.",
                ),
            )
            .with("retry-after", "5")
        }
        Ok(d) => {
            let mut page = html::dashboard(
                &d,
                &html::PageContext {
                    csrf_token: &token,
                    notice: html::Notice::from_query(&req.query),
                    max_pending_age_s: cfg.max_pending_age_s,
                    lock_timeout_s: cfg.lock_timeout_s,
                },
            );
            // Open alerts at the top of the page (issue #19).
            match alerts::open_alerts(db) {
                Ok(open) => {
                    let banner = alerts::render_banner(&open, "");
                    page = page.replacen("<main>", &format!("<main>{banner}"), 1);
                }
                Err(e) => log::error("ops", None, format_args!("/ops: alerts: {e}")),
            }
            // Reconciliation with Odoo (issue #37), after the queue's sections.
            match ipai_reconcile::status(db, None) {
                Ok(status) => {
                    let panel = crate::reconcile_panel::render(&status);
                    page = page.replacen("</main>", &format!("{panel}</main>"), 1);
                }
                Err(e) => log::error("ops", None, format_args!("/ops: reconcile: {e}")),
            }
            Response::html(200, page)
        }
    };
    if existing.is_none() {
        r = r.with("set-cookie", csrf::session_cookie(&session, req.is_https()));
    }
    head_strip(req, r)
}
