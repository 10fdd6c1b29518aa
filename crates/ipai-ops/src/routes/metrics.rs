//! `GET /metrics`: the Prometheus scrape (optionally behind `metrics_token`). Its own
//! file so the route — auth, the one query, the open alerts — stays apart from the text
//! format, which is `crate::metrics`.

use crate::data::{self, MetricsData};
use crate::{alerts, decode, head_strip, value, ApiError, Config, Database, Request, Response};
use ipai_core::log;

/// `GET`/`HEAD /metrics`: always 200 once authorized; an unreachable database is a value
/// (`ipai_database_up 0`), not a failed scrape.
pub(crate) fn metrics(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    if let Some(token) = cfg.metrics_token.as_deref() {
        if !ipai_core::auth::bearer_matches_any(req.header("authorization"), token) {
            return ApiError::unauthorized(
                "missing or wrong bearer token (Authorization: Bearer <metrics_token>)",
            )
            .with_header("www-authenticate", "Bearer realm=\"IPAI metrics\"")
            .into();
        }
    }
    let lock = cfg.lock_timeout_s.to_string();
    let (data, hold) =
        match value(db, &data::metrics_sql(), &[lock]).and_then(decode::<MetricsData>) {
            Ok(d) => (Some(d), None),
            Err(e) => {
                log::error("ops", None, format_args!("/metrics: {e}"));
                (None, crate::budget_spent(&e).then_some(crate::PROBE_HOLD))
            }
        };
    let mut text = crate::metrics::render(data.as_ref());
    // Open alerts (issue #19): one indexed read of integration.alerts — not after the
    // database refused a connection (a second attempt would be refused too).
    if data.is_some() {
        match alerts::open_alerts(db) {
            Ok(open) => text.push_str(&alerts::render_metrics(&open)),
            Err(e) => log::error("ops", None, format_args!("/metrics: alerts: {e}")),
        }
    }
    head_strip(
        req,
        Response::new(200, crate::metrics::CONTENT_TYPE, text).held(hold),
    )
}
