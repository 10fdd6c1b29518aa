//! The dispatcher's decisions, free of Spin: where an event goes, what the handler is
//! sent, how a handler's answer becomes ack or fail, the run's settings and its summary.
//! The queue itself is the SQL contract (`claim_outbox`, `ack_outbox`, `fail_outbox`).

pub mod run;

use crate::settings::number;
use crate::taxonomy::{domain_of, Domain};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How much of a failed handler's body is kept in `last_error`.
pub const ERROR_BODY_BYTES: usize = 500;

/// An event as `claim_outbox` hands it out, and as the handler receives it (the envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub id: String,
    pub seq: i64,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub payload: Value,
    pub idempotency_key: String,
    pub source: String,
    pub occurred_at: Option<String>,
    pub created_at: String,
    /// 1 for the first delivery.
    pub attempt: i32,
}

impl EventEnvelope {
    pub fn domain(&self) -> Option<&'static Domain> {
        domain_of(&self.event_type)
    }
}

/// How the dispatcher reaches handler components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Spin local service chaining: `http://<handler>.spin.internal` (HTTP-triggered only).
    Chaining,
    /// Plain HTTP to the handlers' public, token-protected routes under this origin
    /// (Fermyon Cloud, or any runtime without chaining).
    Http { base_url: String },
}

/// Where ingest's kick reaches the dispatcher by service chaining.
pub const DISPATCHER_CHAINING_URL: &str = "http://dispatcher.spin.internal/dispatch";

/// The `service_chaining` variable: `true` for "on" (the default: unset or empty), `false`
/// for "off"; anything else is a configuration error naming the variable. The one parser
/// of this setting (the dispatcher and ingest's kick both use it).
pub fn service_chaining_on(value: &str) -> Result<bool, String> {
    match value.trim() {
        "" | "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!(
            "variable service_chaining must be \"on\" or \"off\", got {other:?}"
        )),
    }
}

impl Transport {
    /// `service_chaining` = "on" | "off"; `handler_base_url` is used when off.
    pub fn from_settings(service_chaining: &str, handler_base_url: &str) -> Result<Self, String> {
        match service_chaining_on(service_chaining)? {
            true => Ok(Transport::Chaining),
            false => {
                let base = handler_base_url.trim().trim_end_matches('/');
                if !(base.starts_with("http://") || base.starts_with("https://")) {
                    return Err(format!(
                        "variable handler_base_url must be an http(s) origin when service_chaining is off, got {base:?}"
                    ));
                }
                Ok(Transport::Http {
                    base_url: base.to_string(),
                })
            }
        }
    }

    /// The URL of `domain`'s handler route.
    pub fn handler_url(&self, domain: &Domain) -> String {
        match self {
            Transport::Chaining => format!(
                "http://{}.spin.internal/handlers/{}",
                domain.handler, domain.name
            ),
            Transport::Http { base_url } => format!("{base_url}/handlers/{}", domain.name),
        }
    }
}

/// What happens to a claimed event after its delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// `fail_outbox` with this error text.
    Fail(String),
}

/// A handler's HTTP answer: 2xx acks, anything else fails with the status and the start
/// of the body.
pub fn outcome_of_response(status: u16, body: &[u8]) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Ack;
    }
    let cut = truncate_utf8(body, ERROR_BODY_BYTES);
    let text = String::from_utf8_lossy(cut);
    let text = text.trim();
    if text.is_empty() {
        Outcome::Fail(format!("HTTP {status}"))
    } else {
        Outcome::Fail(format!("HTTP {status}: {text}"))
    }
}

fn truncate_utf8(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut end = max;
    // Step back to a UTF-8 boundary so the stored error stays valid text.
    while end > 0 && (bytes[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
    }
    &bytes[..end]
}

/// Settings of one dispatch run, read from Spin variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchSettings {
    pub batch_size: i32,
    pub budget_ms: u64,
    pub delivery_timeout_ms: u64,
    pub lock_timeout_s: i64,
    /// Deliveries in flight at once. Each holds a handler instance and its
    /// PostgreSQL connection, so this bounds what a run adds to the app role's
    /// connection budget (docs/deploy.md).
    pub concurrency: usize,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            batch_size: 50,
            budget_ms: 20_000,
            delivery_timeout_ms: 10_000,
            lock_timeout_s: 600,
            concurrency: 16,
        }
    }
}

impl DispatchSettings {
    /// Reads the settings through `get` (a Spin variable lookup); unset means default.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let d = Self::default();
        Ok(Self {
            batch_size: number(
                "dispatch_batch_size",
                get("dispatch_batch_size").as_deref(),
                d.batch_size,
                1,
                500,
            )?,
            budget_ms: number(
                "dispatch_budget_ms",
                get("dispatch_budget_ms").as_deref(),
                d.budget_ms,
                100,
                600_000,
            )?,
            delivery_timeout_ms: number(
                "delivery_timeout_ms",
                get("delivery_timeout_ms").as_deref(),
                d.delivery_timeout_ms,
                100,
                300_000,
            )?,
            lock_timeout_s: number(
                "outbox_lock_timeout_s",
                get("outbox_lock_timeout_s").as_deref(),
                d.lock_timeout_s,
                1,
                86_400,
            )?,
            concurrency: number(
                "dispatch_concurrency",
                get("dispatch_concurrency").as_deref(),
                d.concurrency,
                1,
                500,
            )?,
        })
    }

    /// How long a run's lease on the dispatcher (`integration.dispatch_lease`) lasts
    /// without renewal. Renewed at every claim; one batch takes at most the delivery
    /// timeout plus a few round trips, so a live run never loses it, and a run that died
    /// is taken over this long after its last claim.
    pub fn lease_ms(&self) -> u64 {
        self.delivery_timeout_ms + 10_000
    }
}

/// What one run did; returned by `POST /dispatch` and logged by the cron trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `true` when another run held the dispatcher lease: this call only asked it to
    /// claim again before it finishes (a coalesced kick), and claimed nothing itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coalesced: bool,
    /// `true` when the time budget (`dispatch_budget_ms`) ran out before a claim found the
    /// queue empty: the run let go of the lease with events possibly left, and its caller
    /// may start the next run at once (dispatch-cron does, instead of waiting for a tick).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budget_spent: bool,
    pub claimed: u32,
    pub done: u32,
    pub failed: u32,
    pub dead: u32,
    pub batches: u32,
    pub ms: u64,
}

/// Runs a caller of `POST /dispatch` (an ingest kick, a cron tick) starts back to back
/// while each stops on its budget: 12 × the default 20 s budget = 4 minutes. Meanwhile
/// other kicks and ticks coalesce into the run in progress; they take over when it stops.
pub const MAX_RUNS_BACK_TO_BACK: u32 = 12;

/// Whether a `POST /dispatch` 200 answer's body is a run that stopped on its time budget
/// ([`RunSummary::budget_spent`]): its caller starts the next run at once instead of
/// leaving the rest of the backlog to the next cron tick.
pub fn run_stopped_on_budget(body: &[u8]) -> bool {
    serde_json::from_slice::<RunSummary>(body).is_ok_and(|run| run.budget_spent)
}

impl RunSummary {
    /// Records the status `fail_outbox` returned (`failed`, `dead`, or NULL when the row
    /// had already left `processing`).
    pub fn record_fail(&mut self, new_status: Option<&str>) {
        match new_status {
            Some("dead") => self.dead += 1,
            Some(_) => self.failed += 1,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::ROUTES;

    #[test]
    fn service_chaining_is_on_unless_off_and_anything_else_names_the_variable() {
        for on in ["", " on ", "true"] {
            assert_eq!(service_chaining_on(on), Ok(true), "{on:?}");
        }
        for off in ["off", "false", " off"] {
            assert_eq!(service_chaining_on(off), Ok(false), "{off:?}");
        }
        let err = service_chaining_on("yes").unwrap_err();
        assert!(
            err.contains("service_chaining") && err.contains("\"yes\""),
            "{err}"
        );
    }

    #[test]
    fn two_hundreds_ack_and_everything_else_fails_with_status_and_body_start() {
        assert_eq!(outcome_of_response(200, b"ok"), Outcome::Ack);
        assert_eq!(outcome_of_response(204, b""), Outcome::Ack);
        assert_eq!(
            outcome_of_response(503, b""),
            Outcome::Fail("HTTP 503".into())
        );
        assert_eq!(
            outcome_of_response(301, b"moved"),
            Outcome::Fail("HTTP 301: moved".into())
        );
        let long = "é".repeat(400); // 800 bytes
        let Outcome::Fail(msg) = outcome_of_response(500, long.as_bytes()) else {
            panic!()
        };
        assert!(msg.len() <= "HTTP 500: ".len() + ERROR_BODY_BYTES);
        assert!(msg.ends_with('é'));
    }

    #[test]
    fn handlers_are_reached_by_chaining_or_under_the_http_base_url() {
        let expense = &ROUTES[0];
        assert_eq!(
            Transport::from_settings("on", "")
                .unwrap()
                .handler_url(expense),
            "http://expense-handler.spin.internal/handlers/expense"
        );
        let http = Transport::from_settings("off", "https://bus.example.com/").unwrap();
        assert_eq!(
            http.handler_url(&ROUTES[2]),
            "https://bus.example.com/handlers/finance"
        );
        assert!(Transport::from_settings("off", "")
            .unwrap_err()
            .contains("handler_base_url"));
        assert!(Transport::from_settings("maybe", "")
            .unwrap_err()
            .contains("service_chaining"));
    }

    #[test]
    fn settings_default_and_reject_out_of_range_values_naming_the_variable() {
        assert_eq!(
            DispatchSettings::from_lookup(|_| None).unwrap(),
            DispatchSettings::default()
        );
        let s =
            DispatchSettings::from_lookup(|k| (k == "outbox_lock_timeout_s").then(|| "2".into()))
                .unwrap();
        assert_eq!(s.lock_timeout_s, 2);
        let err =
            DispatchSettings::from_lookup(|k| (k == "dispatch_batch_size").then(|| "0".into()))
                .unwrap_err();
        assert!(err.contains("dispatch_batch_size"));
        let d = DispatchSettings::default();
        assert_eq!(d.concurrency, 16);
        assert!(
            d.lease_ms() > d.delivery_timeout_ms,
            "a batch never outlives the lease"
        );
        let err =
            DispatchSettings::from_lookup(|k| (k == "dispatch_concurrency").then(|| "0".into()))
                .unwrap_err();
        assert!(err.contains("dispatch_concurrency"));
    }

    #[test]
    fn only_a_run_that_stopped_on_its_budget_asks_for_the_next() {
        let spent = serde_json::to_vec(&RunSummary {
            budget_spent: true,
            claimed: 50,
            ..RunSummary::default()
        })
        .unwrap();
        assert!(run_stopped_on_budget(&spent));
        let emptied = serde_json::to_vec(&RunSummary::default()).unwrap();
        assert!(!String::from_utf8_lossy(&emptied).contains("budget_spent"));
        assert!(!run_stopped_on_budget(&emptied));
        assert!(!run_stopped_on_budget(b"not json"));
    }

    #[test]
    fn a_coalesced_run_says_so_and_a_real_run_keeps_its_old_shape() {
        let run = serde_json::to_value(RunSummary::default()).unwrap();
        assert!(run.get("coalesced").is_none(), "{run}");
        let kick = serde_json::to_value(RunSummary {
            coalesced: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(kick["coalesced"], true);
        assert_eq!(kick["claimed"], 0);
    }

    #[test]
    fn the_summary_counts_fail_outcomes_by_the_status_sql_returned() {
        let mut s = RunSummary::default();
        s.record_fail(Some("failed"));
        s.record_fail(Some("dead"));
        s.record_fail(None);
        assert_eq!((s.failed, s.dead), (1, 1));
    }
}
