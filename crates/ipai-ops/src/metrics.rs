//! Prometheus text exposition format 0.0.4: `# HELP` / `# TYPE` lines, escaped label
//! values, one family at a time.

use crate::data::{MetricsData, STATUSES};
use std::fmt::Write;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (`\`, `"`, newline).
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `# HELP` text (`\`, newline).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as Prometheus writes it (`+Inf`, `-Inf`, `NaN`, shortest round-trip form).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Builds the exposition text family by family.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: `kind` is `gauge` or `counter`; for counters, `name` is the
    /// sample name ending in `_total`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// The whole `/metrics` page. `data` is `None` when the database is unreachable: then
/// only `ipai_database_up 0` is exposed (a scrape that still succeeds, so the outage is
/// an alertable value rather than a missing target).
pub fn render(data: Option<&MetricsData>) -> String {
    let mut x = Exposition::default();
    x.family(
        "ipai_database_up",
        "gauge",
        "Whether the ops component could query PostgreSQL (1) or not (0).",
    )
    .sample(
        "ipai_database_up",
        &[],
        if data.is_some() { 1.0 } else { 0.0 },
    );
    let Some(d) = data else {
        return x.finish();
    };

    x.family(
        "ipai_outbox_events",
        "gauge",
        "Outbox events per status (pending, processing, failed, dead, done).",
    );
    for status in STATUSES {
        let n = d
            .outbox
            .iter()
            .find(|r| r.status == status)
            .map_or(0, |r| r.count);
        x.sample("ipai_outbox_events", &[("status", status)], n as f64);
    }
    x.family(
        "ipai_outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest outbox event per status since it was created (0 when there is none).",
    );
    for status in STATUSES {
        let age = d
            .outbox
            .iter()
            .find(|r| r.status == status)
            .and_then(|r| r.oldest_age_s)
            .unwrap_or(0.0);
        x.sample("ipai_outbox_oldest_age_seconds", &[("status", status)], age);
    }
    let dead = d
        .outbox
        .iter()
        .find(|r| r.status == "dead")
        .map_or(0, |r| r.count);
    x.family(
        "ipai_dead_letters",
        "gauge",
        "Events that exhausted their attempts and wait for an operator (requeue on /ops).",
    )
    .sample("ipai_dead_letters", &[], dead as f64);
    x.family(
        "ipai_outbox_oldest_pending_age_seconds",
        "gauge",
        "Seconds since the oldest pending event became due (queued or requeued); 0 when none is pending.",
    )
    .sample(
        "ipai_outbox_oldest_pending_age_seconds",
        &[],
        d.oldest_pending_age_s.unwrap_or(0.0),
    );
    x.family(
        "ipai_outbox_stuck_processing",
        "gauge",
        "Processing events locked longer than the lock timeout (their dispatcher run died).",
    )
    .sample(
        "ipai_outbox_stuck_processing",
        &[],
        d.stuck_processing as f64,
    );

    x.family(
        "ipai_events_ingested_total",
        "counter",
        "Events accepted by ingest, per event type (from the append-only event_log).",
    );
    let mut types: Vec<(String, i64)> = ipai_core::taxonomy::all_event_types()
        .map(|t| (t.to_string(), d.ingested.get(t).copied().unwrap_or(0)))
        .collect();
    for (t, n) in &d.ingested {
        if ipai_core::taxonomy::domain_of(t).is_none() {
            types.push((t.clone(), *n));
        }
    }
    for (t, n) in &types {
        let domain = ipai_core::taxonomy::domain_of(t).map_or("other", |d| d.name);
        x.sample(
            "ipai_events_ingested_total",
            &[("event_type", t), ("domain", domain)],
            *n as f64,
        );
    }

    x.family(
        "ipai_deliveries",
        "gauge",
        "Side-effect deliveries recorded by the handlers, per channel and status.",
    );
    for r in &d.deliveries {
        x.sample(
            "ipai_deliveries",
            &[("channel", &r.channel), ("status", &r.status)],
            r.count as f64,
        );
    }

    x.family(
        "ipai_reconcile_missing_events",
        "gauge",
        "Events Odoo's digests list as sent that the bus never stored (SPEC 11; `ipai reconcile`).",
    )
    .sample(
        "ipai_reconcile_missing_events",
        &[],
        d.reconcile.missing as f64,
    );
    x.family(
        "ipai_reconcile_last_digest_age_seconds",
        "gauge",
        "Seconds since the newest digest from Odoo arrived (no sample until the first one).",
    );
    if let Some(age) = d.reconcile.last_digest_age_s {
        x.sample("ipai_reconcile_last_digest_age_seconds", &[], age);
    }
    x.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DeliveryRow, StatusRow};

    fn sample() -> MetricsData {
        MetricsData {
            outbox: vec![
                StatusRow {
                    status: "pending".into(),
                    count: 2,
                    oldest_age_s: Some(12.5),
                },
                StatusRow {
                    status: "dead".into(),
                    count: 1,
                    oldest_age_s: Some(99.0),
                },
            ],
            oldest_pending_age_s: Some(3.25),
            stuck_processing: 0,
            ingested: [
                ("expense.submitted".to_string(), 4),
                ("x.\"odd\"\n".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            deliveries: vec![DeliveryRow {
                channel: "mattermost".into(),
                status: "sent".into(),
                count: 3,
            }],
            reconcile: crate::data::ReconcileData {
                missing: 2,
                last_digest_age_s: Some(61.5),
            },
        }
    }

    #[test]
    fn the_reconciliation_shows_its_missing_events_and_the_digest_age() {
        let text = render(Some(&sample()));
        assert!(
            text.contains("\nipai_reconcile_missing_events 2\n"),
            "{text}"
        );
        assert!(text.contains("\nipai_reconcile_last_digest_age_seconds 61.5\n"));
        let mut never = sample();
        never.reconcile = Default::default();
        let text = render(Some(&never));
        assert!(text.contains("\nipai_reconcile_missing_events 0\n"));
        assert!(text.contains("# TYPE ipai_reconcile_last_digest_age_seconds gauge\n"));
        assert!(!text.contains("\nipai_reconcile_last_digest_age_seconds "));
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = render(Some(&sample()));
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{name} has no TYPE line before it");
            }
        }
        assert!(text.contains("# TYPE ipai_events_ingested_total counter"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn values_statuses_and_types_are_all_present() {
        let text = render(Some(&sample()));
        assert!(text.contains("ipai_database_up 1\n"));
        assert!(text.contains("ipai_outbox_events{status=\"pending\"} 2\n"));
        assert!(text.contains("ipai_outbox_events{status=\"done\"} 0\n"));
        assert!(text.contains("ipai_dead_letters 1\n"));
        assert!(text.contains("ipai_outbox_oldest_pending_age_seconds 3.25\n"));
        assert!(text.contains(
            "ipai_events_ingested_total{event_type=\"expense.submitted\",domain=\"expense\"} 4\n"
        ));
        assert!(text.contains(
            "ipai_events_ingested_total{event_type=\"asset.overdue\",domain=\"asset\"} 0\n"
        ));
        assert!(text.contains("ipai_deliveries{channel=\"mattermost\",status=\"sent\"} 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let text = render(Some(&sample()));
        assert!(text.contains("event_type=\"x.\\\"odd\\\"\\n\",domain=\"other\"} 1\n"));
        assert_eq!(escape_label("a\\b"), "a\\\\b");
    }

    #[test]
    fn an_unreachable_database_is_a_value_not_a_failed_scrape() {
        let text = render(None);
        assert!(text.contains("ipai_database_up 0\n"));
        assert!(!text.contains("ipai_outbox_events"));
    }

    #[test]
    fn special_floats_use_prometheus_spelling() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(7.0), "7");
    }
}
