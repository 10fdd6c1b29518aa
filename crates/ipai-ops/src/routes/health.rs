//! `GET /health`: the load balancer's and the operator's first question — is the
//! database reachable and is the queue moving? Its own file so the health rules (what
//! makes the bus unhealthy) sit apart from the router and the other pages.

use crate::data::{self, HealthData, QUEUE_STATUSES};
use crate::{decode, head_strip, value, Config, Database, DbError, Request, Response};
use ipai_core::log;
use serde_json::{json, Value};

/// `GET`/`HEAD /health`: 200 with the queue depth, 503 when the database is unreachable
/// or the oldest pending event has waited past `health_max_pending_age_s`.
pub(crate) fn health(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let lock = cfg.lock_timeout_s.to_string();
    let result = value(db, &data::health_sql(), &[lock]).and_then(decode::<HealthData>);
    let r = match result {
        Err(e) => {
            log::error("ops", None, format_args!("/health: {e}"));
            let hold = crate::budget_spent(&e).then_some(crate::PROBE_HOLD);
            // A busy database (a statement timeout) answered: "error", as before Busy
            // was told apart from other failures.
            let db_state = match e {
                DbError::Unavailable(_) => "unreachable",
                DbError::Busy(_) | DbError::Failed(_) | DbError::Misconfigured(_) => "error",
            };
            Response::json(
                503,
                &json!({"status": "unhealthy", "db": db_state,
                        "problems": [format!("database {db_state}")]}),
            )
            .with("retry-after", "5")
            .held(hold)
        }
        Ok(h) => {
            let mut problems = Vec::new();
            if let Some(age) = h.oldest_pending_age_s {
                if age > cfg.max_pending_age_s {
                    problems.push(format!(
                        "the oldest pending event has waited {} s (limit {} s): is dispatch running?",
                        age.round(),
                        cfg.max_pending_age_s
                    ));
                }
            }
            let queue: serde_json::Map<String, Value> = QUEUE_STATUSES
                .iter()
                .map(|s| (s.to_string(), json!(h.counts.get(*s).copied().unwrap_or(0))))
                .collect();
            let ok = problems.is_empty();
            Response::json(
                if ok { 200 } else { 503 },
                &json!({
                    "status": if ok { "ok" } else { "unhealthy" },
                    "db": "ok",
                    "queue": queue,
                    "oldest_pending_age_s": h.oldest_pending_age_s,
                    "dead": h.counts.get("dead").copied().unwrap_or(0),
                    "stuck_processing": h.stuck_processing,
                    "max_pending_age_s": cfg.max_pending_age_s,
                    "problems": problems,
                }),
            )
        }
    };
    head_strip(req, r)
}
