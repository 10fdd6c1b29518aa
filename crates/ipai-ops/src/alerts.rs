//! Alerts that find the operator (issue #19): `POST /ops/alerts/evaluate` (bearer
//! `dispatch_token`; dispatch-cron calls it on every tick after `/dispatch`, so sending an
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

use crate::{decode, value, ApiError, Database, DbError, Request, Response};
use ipai_core::log;
use ipai_effects::{config, email, mattermost};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write;

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
pub const FIXED_CONDITIONS: [&str; 3] = ["dead_letters", "queue_stalled", "health_degraded"];

/// Seconds a claimed message is not claimed again (a send takes at most 5 s per
/// destination; this covers a slow evaluation without letting a dead one hold it long).
pub const SEND_LEASE_S: i64 = 60;

/// The alert variables of the ops component, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertConfig {
    /// `alert_stalled_after_s` (default 900): a pending/failed event older than this
    /// opens `queue_stalled`.
    pub stalled_after_s: i64,
    /// `alert_reminder_interval_s` (default 3600): a reminder while an alert stays open.
    pub reminder_interval_s: i64,
    /// `alert_mattermost_webhook_url` (empty: no Mattermost alerts) and its origin
    /// `alert_mattermost_origin` (allowed in the manifest).
    pub mattermost_webhook_url: Option<String>,
    pub mattermost_origin: String,
    /// `ops_alert_emails` (comma-separated; empty: no email alerts), sent through the
    /// handlers' email API variables.
    pub emails: Vec<String>,
    pub email_api_url: Option<String>,
    pub email_api_origin: String,
    pub email_api_key: Option<String>,
    pub email_from: Option<String>,
    /// `public_base_url`: links in the messages.
    pub public_base_url: String,
}

fn whole(get: &impl Fn(&str) -> Option<String>, name: &str, default: i64) -> Result<i64, String> {
    ipai_core::settings::number(name, get(name).as_deref(), default, 1, 31_536_000)
}

impl AlertConfig {
    /// Reads the variables through `get` (unset or empty → `None`/default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            stalled_after_s: whole(&get, "alert_stalled_after_s", 900)?,
            reminder_interval_s: whole(&get, "alert_reminder_interval_s", 3600)?,
            mattermost_webhook_url: get("alert_mattermost_webhook_url"),
            mattermost_origin: get("alert_mattermost_origin").unwrap_or_default(),
            emails: get("ops_alert_emails")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            email_api_url: get("email_api_url"),
            email_api_origin: get("email_api_origin").unwrap_or_default(),
            email_api_key: get("email_api_key"),
            email_from: get("email_from"),
            public_base_url: get("public_base_url")
                .unwrap_or_else(|| "http://127.0.0.1:3000".into())
                .trim_end_matches('/')
                .to_string(),
        })
    }

    /// The destinations configured: `mattermost` when the webhook is set, `email` when
    /// `ops_alert_emails` is.
    pub fn targets(&self) -> Vec<&'static str> {
        let mut t = Vec::new();
        if self.mattermost_webhook_url.is_some() {
            t.push("mattermost");
        }
        if !self.emails.is_empty() {
            t.push("email");
        }
        t
    }
}

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
    let Some(token) = cfg.dispatch_token.as_deref() else {
        return Err(crate::misconfigured("variable dispatch_token is not set"));
    };
    if !ipai_core::auth::bearer_matches(req.header("authorization"), token) {
        return Err(ApiError::unauthorized("missing or wrong bearer token").into());
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

/// The request of one destination.
pub fn request_for(target: &str, a: &Claimed, c: &AlertConfig) -> Result<Outgoing, String> {
    match target {
        "mattermost" => {
            let url = c
                .mattermost_webhook_url
                .clone()
                .ok_or("variable alert_mattermost_webhook_url is not set")?;
            config::check_within(
                "alert_mattermost_webhook_url",
                &url,
                "alert_mattermost_origin",
                &c.mattermost_origin,
            )?;
            Ok(Outgoing {
                url,
                headers: vec![("content-type", "application/json".into())],
                body: mattermost_body(a, &c.public_base_url)
                    .to_string()
                    .into_bytes(),
            })
        }
        "email" => {
            let url = c
                .email_api_url
                .clone()
                .ok_or("variable email_api_url is not set")?;
            config::check_within(
                "email_api_url",
                &url,
                "email_api_origin",
                &c.email_api_origin,
            )?;
            let key = c
                .email_api_key
                .clone()
                .ok_or("variable email_api_key is empty: set SPIN_VARIABLE_EMAIL_API_KEY")?;
            let from = c
                .email_from
                .clone()
                .ok_or("variable email_from is empty: set SPIN_VARIABLE_EMAIL_FROM")?;
            let body = alert_email(a, &c.emails, &c.public_base_url).resend_body(&from);
            Ok(Outgoing {
                url,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("authorization", format!("Bearer {key}")),
                    ("idempotency-key", idempotency_key(a)),
                ],
                body: body.to_string().into_bytes(),
            })
        }
        other => Err(format!("unknown alert destination {other:?}")),
    }
}

/// Resend's idempotency key of one message: a retried send is not delivered twice.
pub fn idempotency_key(a: &Claimed) -> String {
    let n = match a.message.as_str() {
        "reminder" => (a.reminders + 1).to_string(),
        _ => "0".into(),
    };
    email::idempotency_key(&format!("alert-{}", a.id), &format!("{}-{n}", a.message))
}

/// What the condition is, for people.
pub fn what(condition: &str) -> String {
    let (kind, arg) = condition.split_once(':').unwrap_or((condition, ""));
    match kind {
        "dead_letters" => "Events went dead (all delivery attempts failed)".into(),
        "queue_stalled" => {
            "The queue is stalled: events wait longer than the alert threshold".into()
        }
        "health_degraded" => "/health is degraded: pending events are not being dispatched".into(),
        "handler_misconfigured" => format!("The {arg} handler is misconfigured"),
        "credentials_rejected" => format!("{} rejected the bus's credentials", service_name(arg)),
        _ => format!("Alert {condition}"),
    }
}

fn service_name(s: &str) -> &str {
    match s {
        "odoo" => "Odoo",
        "email" => "The email API",
        "google" => "Google",
        "mattermost" => "Mattermost",
        other => other,
    }
}

/// The one command or page that fixes or replays it.
pub fn fix(condition: &str, base: &str) -> String {
    let (kind, arg) = condition.split_once(':').unwrap_or((condition, ""));
    match kind {
        "dead_letters" => format!(
            "Fix the cause (last error below), then replay: `ipai dlq requeue --all` (list: `ipai dlq list`), or Requeue on {base}/ops"
        ),
        "queue_stalled" | "health_degraded" => format!(
            "Check that dispatch runs: `curl -X POST -H 'Authorization: Bearer <dispatch_token>' {base}/dispatch`, then `ipai status`; see {base}/health"
        ),
        "handler_misconfigured" => format!(
            "Set the variable named in the error for the {arg} handler (docs/handlers.md) and restart; its events retry by themselves (`ipai status`, {base}/ops)"
        ),
        "credentials_rejected" => {
            let vars = match arg {
                "odoo" => "odoo_user / odoo_api_key",
                "email" => "email_api_key",
                "google" => "google_service_account_json",
                "mattermost" => "mattermost_webhook_url / mattermost_bot_token",
                _ => "the service's credential variable",
            };
            format!(
                "Renew {vars} and restart; failed events retry by themselves, dead ones: `ipai dlq requeue --all` ({base}/ops)"
            )
        }
        _ => format!("See {base}/ops"),
    }
}

fn headline(a: &Claimed) -> String {
    match a.message.as_str() {
        "resolved" => format!("[IPAI] Resolved: {}", what(&a.condition)),
        "reminder" => format!("[IPAI] Still open: {}", what(&a.condition)),
        _ => format!("[IPAI] Alert: {}", what(&a.condition)),
    }
}

/// (label, value) rows every message carries: what, since when, how many, the fix.
pub fn rows(a: &Claimed, base: &str) -> Vec<(&'static str, String)> {
    let mut r = vec![
        ("Condition", a.condition.clone()),
        ("Open since", a.first_seen_at.clone()),
        ("Events", a.events.to_string()),
    ];
    if let Some(s) = &a.since {
        r.push(("Oldest event since", s.clone()));
    }
    if let Some(at) = &a.resolved_at {
        r.push(("Resolved at", at.clone()));
    } else {
        r.push(("Last seen", a.last_seen_at.clone()));
    }
    if !a.detail.is_empty() {
        r.push(("Detail", a.detail.chars().take(500).collect()));
    }
    r.push(("Fix", fix(&a.condition, base)));
    r
}

/// The Mattermost incoming-webhook body (the handlers' message shape: text + one
/// attachment with fields).
pub fn mattermost_body(a: &Claimed, base: &str) -> Value {
    let color = match a.message.as_str() {
        "resolved" => mattermost::COLOR_GOOD,
        "reminder" => mattermost::COLOR_WARN,
        _ => mattermost::COLOR_BAD,
    };
    let fields: Vec<Value> = rows(a, base)
        .iter()
        .map(|(k, v)| mattermost::field(k, v, matches!(*k, "Events" | "Open since" | "Condition")))
        .collect();
    let title = headline(a);
    mattermost::message(
        None,
        &title,
        json!({"fallback": title, "color": color, "title": what(&a.condition),
               "title_link": format!("{base}/ops"), "fields": fields}),
    )
}

/// The email to `ops_alert_emails`.
pub fn alert_email(a: &Claimed, to: &[String], base: &str) -> email::Email {
    let rows = rows(a, base);
    let escaped: Vec<(&str, String)> = rows
        .iter()
        .map(|(k, v)| (*k, crate::html::escape(v)))
        .collect();
    let title = headline(a);
    email::Email {
        to: to.to_vec(),
        cc: Vec::new(),
        subject: title.clone(),
        html: email::html_body(&crate::html::escape(&title), &[], &escaped),
        text: email::text_body(&title, &[], &rows),
    }
}

/// The open alerts (for `/metrics` and `/ops`); an error is logged, not fatal.
pub fn open_alerts(db: &mut dyn Database) -> Result<Vec<OpenAlert>, DbError> {
    value(db, OPEN_SQL, &[]).and_then(decode)
}

/// `ipai_alerts_open{condition=…}`: 1 per open alert, 0 for the fixed conditions that
/// are not open.
pub fn render_metrics(open: &[OpenAlert]) -> String {
    let mut out = String::from(
        "# HELP ipai_alerts_open Open alerts by condition (1 = open), see /ops.\n\
         # TYPE ipai_alerts_open gauge\n",
    );
    let mut conditions: Vec<&str> = open.iter().map(|a| a.condition.as_str()).collect();
    for f in FIXED_CONDITIONS {
        if !conditions.contains(&f) {
            conditions.push(f);
        }
    }
    conditions.sort_unstable();
    for c in conditions {
        let n = i32::from(open.iter().any(|a| a.condition == c));
        let _ = writeln!(
            out,
            "ipai_alerts_open{{condition=\"{}\"}} {n}",
            crate::metrics::escape_label(c)
        );
    }
    out
}

/// The banner at the top of `/ops` (empty when nothing is open).
pub fn render_banner(open: &[OpenAlert], base: &str) -> String {
    if open.is_empty() {
        return String::new();
    }
    let esc = crate::html::escape;
    let mut b =
        String::from("<section id=\"alerts\" class=\"notice warn\"><h2>Open alerts</h2><ul>");
    for a in open {
        let _ = write!(
            b,
            "<li class=\"alert\" data-condition=\"{}\"><strong>{}</strong> — {} event(s), open {} (since {}). <em>{}</em>",
            esc(&a.condition),
            esc(&what(&a.condition)),
            a.events,
            crate::html::human_age(a.open_for_s as f64),
            esc(&a.first_seen_at),
            esc(&fix(&a.condition, base)),
        );
        if !a.detail.is_empty() {
            let detail: String = a.detail.chars().take(300).collect();
            let _ = write!(b, "<br><code>{}</code>", esc(&detail));
        }
        b.push_str("</li>");
    }
    b.push_str("</ul></section>");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(message: &str) -> Claimed {
        Claimed {
            id: 7,
            condition: "dead_letters".into(),
            kind: "dead_letters".into(),
            message: message.into(),
            targets: vec!["mattermost".into(), "email".into()],
            events: 3,
            since: Some("2026-11-30T10:00:00+00:00".into()),
            detail: "last: expense.submitted e1: HTTP 500".into(),
            first_seen_at: "2026-11-30T10:01:00+00:00".into(),
            last_seen_at: "2026-11-30T10:05:00+00:00".into(),
            resolved_at: None,
            reminders: 0,
        }
    }

    fn cfg() -> AlertConfig {
        AlertConfig::from_lookup(|k| {
            Some(
                match k {
                    "alert_mattermost_webhook_url" => "http://127.0.0.1:9/hooks/x",
                    "alert_mattermost_origin" => "http://127.0.0.1:9",
                    "ops_alert_emails" => "a@example.com, b@example.com",
                    "email_api_url" => "http://127.0.0.1:8/emails",
                    "email_api_origin" => "http://127.0.0.1:8",
                    "email_api_key" => "re_1",
                    "email_from" => "Bus <bus@example.com>",
                    "public_base_url" => "https://bus.example.com/",
                    _ => return None,
                }
                .to_string(),
            )
        })
        .expect("config parses")
    }

    #[test]
    fn defaults_and_bounds() {
        let c = AlertConfig::from_lookup(|_| None).expect("defaults");
        assert_eq!((c.stalled_after_s, c.reminder_interval_s), (900, 3600));
        assert!(c.targets().is_empty());
        assert!(AlertConfig::from_lookup(
            |k| (k == "alert_reminder_interval_s").then(|| "0".into())
        )
        .is_err());
        assert_eq!(cfg().targets(), vec!["mattermost", "email"]);
        assert_eq!(cfg().emails, vec!["a@example.com", "b@example.com"]);
    }

    #[test]
    fn messages_say_what_since_how_many_and_the_fix() {
        let a = claimed("opened");
        let body = mattermost_body(&a, "https://bus.example.com");
        assert_eq!(
            body["text"],
            "[IPAI] Alert: Events went dead (all delivery attempts failed)"
        );
        let fields = body["attachments"][0]["fields"].as_array().expect("fields");
        let get = |t: &str| {
            fields
                .iter()
                .find(|f| f["title"] == t)
                .map(|f| f["value"].clone())
        };
        assert_eq!(get("Events"), Some(json!("3")));
        assert_eq!(get("Open since"), Some(json!("2026-11-30T10:01:00+00:00")));
        assert!(get("Fix")
            .and_then(|v| v.as_str().map(|s| s.contains("ipai dlq requeue --all")))
            .unwrap_or(false));
        let e = alert_email(&claimed("resolved"), &["a@example.com".into()], "https://x");
        assert!(e.subject.starts_with("[IPAI] Resolved:"));
        assert!(e.text.contains("Events: 3"));
    }

    #[test]
    fn requests_check_origins_and_name_missing_variables() {
        let a = claimed("opened");
        let m = request_for("mattermost", &a, &cfg()).expect("mattermost");
        assert_eq!(m.url, "http://127.0.0.1:9/hooks/x");
        let e = request_for("email", &a, &cfg()).expect("email");
        assert!(e.headers.contains(&("authorization", "Bearer re_1".into())));
        let body: Value = serde_json::from_slice(&e.body).expect("json");
        assert_eq!(body["to"], json!(["a@example.com", "b@example.com"]));
        let mut bad = cfg();
        bad.mattermost_origin = "http://127.0.0.1:10".into();
        assert!(request_for("mattermost", &a, &bad)
            .unwrap_err()
            .contains("alert_mattermost_origin"));
        bad.email_api_key = None;
        assert!(request_for("email", &a, &bad)
            .unwrap_err()
            .contains("email_api_key"));
    }

    #[test]
    fn metrics_list_fixed_conditions_and_open_ones() {
        let open = vec![OpenAlert {
            id: 1,
            condition: "handler_misconfigured:expense".into(),
            kind: "handler_misconfigured".into(),
            first_seen_at: "t".into(),
            last_seen_at: "t".into(),
            open_for_s: 5,
            events: 2,
            since: None,
            detail: "<b>".into(),
            notified_at: None,
            reminders: 0,
            pending_message: None,
            last_send_error: None,
        }];
        let m = render_metrics(&open);
        assert!(m.contains("ipai_alerts_open{condition=\"dead_letters\"} 0\n"));
        assert!(m.contains("ipai_alerts_open{condition=\"handler_misconfigured:expense\"} 1\n"));
        let b = render_banner(&open, "http://x");
        assert!(b.contains("data-condition=\"handler_misconfigured:expense\""));
        assert!(b.contains("&lt;b&gt;"));
        assert_eq!(render_banner(&[], "http://x"), "");
    }

    /// Answers the evaluation with one claimed message and records every statement.
    struct Fake(Vec<(String, Vec<String>)>);

    impl Database for Fake {
        fn query_value(
            &mut self,
            sql: &str,
            params: &[crate::Param],
        ) -> Result<Option<Value>, DbError> {
            let texts = params.iter().map(crate::tests::text).collect();
            self.0.push((sql.to_string(), texts));
            if sql == EVALUATE_SQL {
                let a = json!({"id": 7, "condition": "dead_letters", "kind": "dead_letters",
                               "message": "opened", "targets": ["mattermost", "email"],
                               "events": 3, "since": null, "detail": "", "first_seen_at": "t1",
                               "last_seen_at": "t2", "resolved_at": null, "reminders": 0});
                Ok(Some(
                    json!({"open": 1, "opened": ["dead_letters"], "resolved": [], "sends": [a]}),
                ))
            } else {
                Ok(Some(json!(true)))
            }
        }
    }

    fn request(auth: Option<&str>) -> Request {
        let mut r = Request {
            method: "POST".into(),
            ..Default::default()
        }
        .with_path_and_query(EVALUATE_PATH);
        if let Some(a) = auth {
            r.headers.push(("authorization".into(), a.into()));
        }
        r
    }

    #[test]
    fn evaluate_needs_the_token_then_settles_each_destination() {
        let config = crate::Config {
            dispatch_token: Some("tok".into()),
            ..Default::default()
        };
        let acfg = cfg();
        let mut db = Fake(Vec::new());
        let refused = begin(&request(None), &config, Ok(&acfg), &mut db).unwrap_err();
        assert_eq!(refused.status, 401);
        assert!(db.0.is_empty(), "nothing evaluated without the token");
        let mut get = request(Some("Bearer tok"));
        get.method = "GET".into();
        assert_eq!(
            begin(&get, &config, Ok(&acfg), &mut db).unwrap_err().status,
            405
        );

        let plan = begin(&request(Some("Bearer tok")), &config, Ok(&acfg), &mut db).expect("plan");
        assert_eq!(
            db.0[0].1,
            ["900", "300", "3600", "{mattermost,email}", "60"].map(String::from)
        );
        assert_eq!(plan.deliveries.len(), 1);
        let targets: Vec<&str> = plan.deliveries[0]
            .requests
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(targets, ["mattermost", "email"]);
        let r = finish(
            &plan,
            &[vec![Err("HTTP 500: down".into()), Ok(())]],
            &mut db,
        );
        assert_eq!(r.status, 200);
        let (sql, params) = &db.0[1];
        assert_eq!(sql, SENT_SQL);
        assert_eq!(
            params,
            &["7", "opened", "{email}", "mattermost: HTTP 500: down"].map(String::from)
        );
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["sent"], 1);
        assert_eq!(body["failed"][0]["condition"], "dead_letters");
        let message = "variable x is wrong".to_string();
        let bad: Result<&AlertConfig, &String> = Err(&message);
        assert_eq!(
            begin(&request(Some("Bearer tok")), &config, bad, &mut db)
                .unwrap_err()
                .status,
            500
        );
    }

    #[test]
    fn reminders_get_their_own_idempotency_key() {
        let mut a = claimed("reminder");
        let k1 = idempotency_key(&a);
        a.reminders = 1;
        assert_ne!(k1, idempotency_key(&a));
        assert_ne!(
            idempotency_key(&claimed("opened")),
            idempotency_key(&claimed("resolved"))
        );
    }
}
