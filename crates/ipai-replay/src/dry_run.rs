//! The dry run of one event: which side effects a replay would skip (the deliveries
//! ledger records them performed) and which it would run. The effects an event has are
//! the handler's own plan (`ipai_effects::plan`), made here from the stored envelope
//! without calling anything: a look-up's effect (an approval request) is named by the
//! look-up, and a setting the plan needs but this process does not know stands as
//! `<variable>` and matches whatever the ledger recorded in its place.

use ipai_core::dispatch::EventEnvelope;
use ipai_effects::plan::{self, Found, Settings};
use serde::Serialize;
use serde_json::Value;

/// An effect key as the ledger writes it: `channel:target`.
fn key(channel: &str, target: &str) -> String {
    format!("{channel}:{target}")
}

/// What one event of a replay would do; serialized as SPEC §12's per-event JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPlan {
    pub id: String,
    #[serde(skip)]
    pub seq: i64,
    pub event_type: String,
    pub aggregate: String,
    pub status: String,
    /// Replayed because an earlier event of its aggregate is (it keeps the dashboards at
    /// their newest state), not because it matched.
    pub follower: bool,
    /// Recorded as performed: the ledger skips them.
    pub skip: Vec<String>,
    /// Not recorded as performed (or asked for again): the handler performs them.
    pub run: Vec<String>,
    /// Why the plan could not be made, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl EventPlan {
    /// SPEC §12's per-event JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The settings the plan is made with: each variable `known` returns, the others as
/// `<variable>` placeholders (so every effect a configured handler would perform shows).
pub fn settings(known: &dyn Fn(&str) -> Option<String>) -> Settings {
    let var = |name: &str| Some(known(name).unwrap_or_else(|| format!("<{name}>")));
    Settings {
        public_base_url: Some(
            known("public_base_url").unwrap_or_else(|| "https://public-base-url.invalid".into()),
        ),
        odoo_url: Some(known("odoo_url").unwrap_or_else(|| "https://odoo-url.invalid".into())),
        finance_channel: known("mattermost_finance_channel"),
        it_admin_email: var("it_admin_email"),
        finance_director_email: var("finance_director_email"),
        action_secret: var("mattermost_action_secret"),
        approval_expiry_days: known("approval_expiry_days"),
        bot_configured: true,
    }
}

/// Whether a recorded target is the planned one (a `<variable>` in the planned target
/// stands for anything).
fn same_target(planned: &str, recorded: &str) -> bool {
    match (planned.find('<'), planned.find('>')) {
        (Some(a), Some(b)) if a < b => {
            let (prefix, suffix) = (&planned[..a], &planned[b + 1..]);
            recorded.len() >= prefix.len() + suffix.len()
                && recorded.starts_with(prefix)
                && recorded.ends_with(suffix)
        }
        _ => planned == recorded,
    }
}

/// The effects the handler's plan has for `event` (`channel:target`, once each).
fn planned_effects(event: &EventEnvelope, settings: &Settings) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    if let Some((_, channel, target)) = plan::lookup_for(event) {
        out.push(key(channel, &target));
    }
    let p = plan::plan(event, settings, &Found::default()).map_err(|e| e.to_string())?;
    for e in &p.effects {
        let k = key(e.channel(), e.target());
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// One row of `integration.replay_page` → its plan. `redo`: the effect kinds (channels)
/// performed again (for matched events, not followers).
pub fn plan_event(mut row: Value, redo: &[String], settings: &Settings) -> EventPlan {
    let payload = row["payload"].take();
    let text = |k: &str| row[k].as_str().unwrap_or_default().to_string();
    let follower = row["follower"].as_bool().unwrap_or(false);
    let envelope = EventEnvelope {
        id: text("id"),
        seq: row["seq"].as_i64().unwrap_or_default(),
        event_type: text("event_type"),
        aggregate_type: text("aggregate_type"),
        aggregate_id: text("aggregate_id"),
        payload,
        idempotency_key: text("idempotency_key"),
        source: text("source"),
        occurred_at: row["occurred_at"].as_str().map(str::to_string),
        created_at: text("created_at"),
        attempt: 1,
    };
    let recorded: Vec<(String, String)> = row["recorded"]
        .as_object()
        .map(|m| {
            let mut v: Vec<(String, String)> = m
                .iter()
                .map(|(k, s)| (k.clone(), s.as_str().unwrap_or_default().to_string()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    let redone = |k: &str| {
        !follower
            && redo
                .iter()
                .any(|c| k.split_once(':').map(|(ch, _)| ch) == Some(c.as_str()))
    };
    let performed = |s: &str| s == "sent" || s == "skipped";

    let (mut skip, mut run) = (Vec::new(), Vec::new());
    let (planned, note) = match planned_effects(&envelope, settings) {
        Ok(p) => (p, None),
        Err(e) => (Vec::new(), Some(format!("no plan: {e}"))),
    };
    for p in &planned {
        let (channel, target) = p.split_once(':').unwrap_or((p, ""));
        let done = recorded.iter().find(|(k, s)| {
            performed(s)
                && k.split_once(':')
                    .is_some_and(|(c, t)| c == channel && same_target(target, t))
        });
        match done {
            Some((k, _)) if !redone(k) => skip.push(k.clone()),
            Some((k, _)) => run.push(k.clone()),
            None => run.push(p.clone()),
        }
    }
    // What the ledger holds beyond the plan (the parts of an approval request, Odoo
    // write-backs): performed ones are skipped, unfinished ones run with their effect.
    for (k, s) in &recorded {
        if skip.contains(k) || run.contains(k) {
            continue;
        }
        if performed(s) && !redone(k) {
            skip.push(k.clone());
        } else if k.split_once(':').map(|(c, _)| c) != Some(plan::ODOO) {
            run.push(k.clone());
        }
    }
    EventPlan {
        id: envelope.id,
        seq: envelope.seq,
        aggregate: format!("{}/{}", envelope.aggregate_type, envelope.aggregate_id),
        event_type: envelope.event_type,
        status: text("status"),
        follower,
        skip,
        run,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(event_type: &str, payload: Value, recorded: Value, follower: bool) -> Value {
        json!({"id": "6be0c80e-fa6a-4810-9f3b-b7d874e04f65", "seq": 7, "event_type": event_type,
               "aggregate_type": "asset_booking", "aggregate_id": "501", "payload": payload,
               "idempotency_key": "k", "source": "odoo", "occurred_at": null,
               "created_at": "2026-12-07T08:00:00Z", "status": "dead", "follower": follower,
               "recorded": recorded})
    }

    fn reservation() -> Value {
        json!({"booking_id": 501, "asset_name": "Projector", "employee_name": "Juan",
               "employee_email": "juan@example.com",
               "start": "2026-11-27T01:00:00Z", "end": "2026-11-27T09:00:00Z"})
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn an_effect_the_ledger_records_is_skipped_and_a_missing_one_runs() {
        let r = row(
            "asset.reserved",
            reservation(),
            json!({"email:juan@example.com": "sent", "google_calendar:booking/501": "failed"}),
            false,
        );
        let p = plan_event(r, &[], &settings(&none));
        assert_eq!(p.skip, vec!["email:juan@example.com"]);
        assert_eq!(p.run, vec!["google_calendar:booking/501"]);
        assert_eq!(p.aggregate, "asset_booking/501");
        assert!(p.note.is_none());
    }

    #[test]
    fn redo_kinds_run_again_for_matched_events_but_not_for_followers() {
        let recorded =
            json!({"email:juan@example.com": "sent", "google_calendar:booking/501": "sent"});
        let redo = vec!["email".to_string()];
        let matched = plan_event(
            row("asset.reserved", reservation(), recorded.clone(), false),
            &redo,
            &settings(&none),
        );
        assert_eq!(matched.run, vec!["email:juan@example.com"]);
        assert_eq!(matched.skip, vec!["google_calendar:booking/501"]);
        let follower = plan_event(
            row("asset.reserved", reservation(), recorded, true),
            &redo,
            &settings(&none),
        );
        assert!(follower.run.is_empty(), "{follower:?}");
        assert_eq!(follower.skip.len(), 2);
    }

    #[test]
    fn an_unknown_setting_matches_what_the_ledger_recorded_in_its_place() {
        assert!(same_target(
            "<it_admin_email>#level3",
            "it@example.com#level3"
        ));
        assert!(!same_target(
            "<it_admin_email>#level3",
            "it@example.com#level2"
        ));
        assert!(same_target("booking/501", "booking/501"));
        assert!(!same_target("booking/501", "booking/502"));
    }

    #[test]
    fn ledger_rows_beyond_the_plan_are_listed_and_odoo_write_backs_never_run() {
        let r = row(
            "asset.reserved",
            reservation(),
            json!({"email:juan@example.com": "sent", "google_calendar:booking/501": "sent",
                   "odoo:approve": "failed", "mattermost:extra": "sent"}),
            false,
        );
        let p = plan_event(r, &[], &settings(&none));
        assert!(p.run.is_empty(), "{p:?}");
        assert!(p.skip.contains(&"mattermost:extra".to_string()));
    }

    #[test]
    fn the_per_event_json_is_the_specs() {
        let p = plan_event(
            row("asset.reserved", reservation(), json!({}), false),
            &[],
            &settings(&none),
        );
        let v = p.to_json();
        assert_eq!(v["event_type"], "asset.reserved");
        assert_eq!(v["status"], "dead");
        assert_eq!(
            v["run"],
            json!(["email:juan@example.com", "google_calendar:booking/501"])
        );
        assert_eq!(v["skip"], json!([]));
    }
}
