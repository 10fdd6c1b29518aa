//! What each alert message says and where it goes: the Mattermost body, the email, and
//! the one request per destination (checked against its allowed origin).

use super::{AlertConfig, Claimed, Outgoing};
use ipai_effects::{config, email, mattermost};
use serde_json::{json, Value};

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
    email::idempotency_key(&format!("alert-{}", a.id), &format!("{}-{n}", a.message), 0)
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
        "events_missing" => {
            "Events Odoo marked sent never reached the bus (its digest lists them)".into()
        }
        "digest_late" => "No digest from Odoo for 2 hours: reconciliation has stopped".into(),
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
        "events_missing" => format!(
            "The bus has asked Odoo to send them again; they close the gap as they arrive. `ipai reconcile` lists the keys ({base}/ops); if they stay missing, check what answers Odoo at the webhook URL (a proxy answering 2xx without forwarding) and that the bus's Odoo user is in the group \"IPAI: the bus's integration user\" (docs/deploy.md, Reconciliation)"
        ),
        "digest_late" => "In Odoo, check the cron \"IPAI: send the reconciliation digest\" and the event queue (Settings → Technical → IPAI Event Queue: rows failing or dead); \"Send digest now\" there sends one at once (docs/deploy.md, Reconciliation)".to_string(),
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
