//! Alerts that find the operator (issue #19): `POST /ops/alerts/evaluate` (bearer
//! `ops_token`; dispatch-cron calls it on every tick after `/dispatch`, so sending an
//! alert never delays or fails a dispatcher run) evaluates the conditions in one SQL call
//! (`integration.evaluate_alerts`: open, refresh, remind, resolve, claim the messages owed),
//! then the component sends each claimed message to the configured destinations — a
//! Mattermost incoming webhook (`alert_mattermost_webhook_url`) and/or email through the
//! Resend API to `ops_alert_emails` — and settles each with `integration.alert_sent`. A
//! destination that fails keeps its message owed; the next tick retries only that one.
//!
//! This module decides everything (configuration, the SQL, the exact request bodies, the
//! answer); the component only performs the HTTP requests. The open alerts are also shown
//! at the top of `/ops`, as `ipai_alerts_open{condition=…}` in `/metrics`, in
//! `ipai status` and by the MCP tool `list_alerts`.
//!
//! `config` reads the variables, `message` words and addresses each message, `render`
//! shows the open alerts; this file holds the evaluation cycle ([`begin`], [`finish`]).

mod config;
mod message;
mod render;

pub use config::AlertConfig;
pub use message::{alert_email, fix, idempotency_key, mattermost_body, request_for, rows, what};
pub use render::{open_alerts, render_banner, render_metrics};

use crate::{decode, value, ApiError, Database, Request, Response};
use ipai_core::log;
use serde::Deserialize;
use serde_json::{json, Value};

/// The route.
pub const EVALUATE_PATH: &str = "/ops/alerts/evaluate";

/// One evaluation: `$1` stalled-after seconds, `$2` health limit seconds, `$3` reminder
/// interval seconds, `$4` destinations (`{mattermost,email}`), `$5` send lease seconds.
pub const EVALUATE_SQL: &str = "SELECT integration.evaluate_alerts($1::text::int, $2::text::int, \
     $3::text::int, $4::text::text[], $5::text::int)";

/// Settles a claimed message: `$1` alert id, `$2` message, `$3` destinations reached
/// (`{mattermost}`), `$4` error text or empty.
pub const SENT_SQL: &str = "SELECT integration.alert_sent($1::text::bigint, $2::text, \
     $3::text::text[], nullif($4::text, ''))";

/// The open alerts (one jsonb array).
pub const OPEN_SQL: &str = "SELECT integration.open_alerts()";

/// The fixed conditions, always present in `/metrics` (0 when not open).
pub const FIXED_CONDITIONS: [&str; 5] = [
    "dead_letters",
    "queue_stalled",
    "health_degraded",
    "events_missing",
    "digest_late",
];

/// Seconds a claimed message is not claimed again (a send takes at most 5 s per
/// destination; this covers a slow evaluation without letting a dead one hold it long).
pub const SEND_LEASE_S: i64 = 60;

/// A message `evaluate_alerts` claimed for sending.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub condition: String,
    pub kind: String,
    /// `opened`, `reminder` or `resolved`.
    pub message: String,
    pub targets: Vec<String>,
    pub events: i64,
    pub since: Option<String>,
    #[serde(default)]
    pub detail: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub resolved_at: Option<String>,
    #[serde(default)]
    pub reminders: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
struct Evaluation {
    open: i64,
    opened: Vec<String>,
    resolved: Vec<String>,
    sends: Vec<Claimed>,
}

/// An open alert as `integration.open_alerts()` returns it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OpenAlert {
    pub id: i64,
    pub condition: String,
    pub kind: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub open_for_s: i64,
    pub events: i64,
    pub since: Option<String>,
    #[serde(default)]
    pub detail: String,
    pub notified_at: Option<String>,
    pub reminders: i64,
    pub pending_message: Option<String>,
    pub last_send_error: Option<String>,
}

/// One HTTP request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A claimed message and, per destination, the request (or why it cannot be made).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub alert: Claimed,
    pub requests: Vec<(String, Result<Outgoing, String>)>,
}

/// What one evaluation does: the summary so far and the messages to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub summary: Value,
    pub deliveries: Vec<Delivery>,
}

/// Authorizes and evaluates: `Err` is the response to give at once (auth, method,
/// configuration, database); `Ok` the messages to send, then [`finish`].
pub fn begin(
    req: &Request,
    cfg: &crate::Config,
    acfg: Result<&AlertConfig, &String>,
    db: &mut dyn Database,
) -> Result<Plan, Response> {
    if !req.is("POST") {
        return Err(ApiError::method_not_allowed("use POST", "POST").into());
    }
    let Some(token) = cfg.ops_token.as_deref() else {
        return Err(crate::misconfigured("variable ops_token is not set"));
    };
    if !ipai_core::auth::bearer_matches_any(req.header("authorization"), token) {
        return Err(ApiError::unauthorized(crate::OPS_TOKEN_REFUSAL).into());
    }
    let acfg = acfg.map_err(|e| crate::misconfigured(e))?;
    let targets = acfg.targets();
    let params = [
        acfg.stalled_after_s.to_string(),
        (cfg.max_pending_age_s.ceil() as i64).to_string(),
        acfg.reminder_interval_s.to_string(),
        format!("{{{}}}", targets.join(",")),
        SEND_LEASE_S.to_string(),
    ];
    let evaluation = value(db, EVALUATE_SQL, &params)
        .and_then(decode::<Evaluation>)
        .map_err(|e| {
            log::error("ops", None, format_args!("alerts: {e}"));
            Response::from(ApiError::database_unavailable("alert evaluation failed").retry_after(5))
        })?;
    for c in &evaluation.opened {
        log::info("ops", None, format_args!("alert opened: {c}"));
    }
    for c in &evaluation.resolved {
        log::info("ops", None, format_args!("alert resolved: {c}"));
    }
    let deliveries = evaluation
        .sends
        .iter()
        .map(|alert| Delivery {
            alert: alert.clone(),
            requests: alert
                .targets
                .iter()
                .map(|t| (t.clone(), request_for(t, alert, acfg)))
                .collect(),
        })
        .collect();
    Ok(Plan {
        summary: json!({"open": evaluation.open, "opened": evaluation.opened,
                        "resolved": evaluation.resolved}),
        deliveries,
    })
}

/// Settles every delivery with its outcomes (`outcomes[i][j]` = the result of
/// `plan.deliveries[i].requests[j]`: `Ok(())` or the error) and answers.
pub fn finish(
    plan: &Plan,
    outcomes: &[Vec<Result<(), String>>],
    db: &mut dyn Database,
) -> Response {
    let mut sent_n = 0;
    let mut failed = Vec::new();
    for (d, results) in plan.deliveries.iter().zip(outcomes) {
        let mut sent = Vec::new();
        let mut errors = Vec::new();
        for ((target, _), r) in d.requests.iter().zip(results) {
            match r {
                Ok(()) => sent.push(target.as_str()),
                Err(e) => errors.push(format!("{target}: {e}")),
            }
        }
        sent_n += sent.len();
        let error = errors.join("; ");
        if !error.is_empty() {
            log::warn(
                "ops",
                None,
                format_args!(
                    "alert {} ({}) {} message not sent, retried next tick: {error}",
                    d.alert.id, d.alert.condition, d.alert.message
                ),
            );
            failed.push(
                json!({"condition": d.alert.condition, "message": d.alert.message,
                               "error": error}),
            );
        }
        let params = [
            d.alert.id.to_string(),
            d.alert.message.clone(),
            format!("{{{}}}", sent.join(",")),
            error,
        ];
        if let Err(e) = value(db, SENT_SQL, &params) {
            log::error(
                "ops",
                None,
                format_args!("alert {}: recording the send: {e}", d.alert.id),
            );
        }
    }
    let mut summary = plan.summary.clone();
    summary["sent"] = json!(sent_n);
    summary["failed"] = Value::Array(failed);
    Response::json(200, &summary)
}

#[cfg(test)]
mod tests;
