//! dispatcher: `POST /dispatch` (bearer `dispatch_token`) runs one dispatch run; it sends
//! the handlers `handler_token` (SPEC §15: one token per door).
//!
//! At most one run claims at a time per database: a run first takes the dispatcher lease
//! (`integration.start_dispatch_run`); when another run holds it, this call only marks
//! "claim again" for that run and answers `{"coalesced": true, ...}` at once. The lease
//! holder claims batches with `integration.claim_dispatch_batch` (which renews the lease,
//! claims with `claim_outbox`'s SKIP LOCKED and per-aggregate FIFO, and releases the lease
//! when nothing is left), posts each envelope to its domain handler — by Spin service
//! chaining, or over HTTP where chaining is unavailable — keeping `dispatch_concurrency`
//! in flight, acks 2xx answers in groups (`ack_outbox_batch`) and `fail_outbox`es
//! everything else, until the queue is empty or the time budget is spent. It answers with
//! the run's summary. The loop itself is `ipai_core::dispatch::run` (natively tested), the
//! SQL of each queue call `ipai_core::outbox`; this component is their adapter to Spin's
//! PostgreSQL and outbound HTTP.

use ipai_core::auth::bearer_matches_any;
use ipai_core::db::DbError;
use ipai_core::dispatch::run::{run_dispatch, Queue, RunLimits};
use ipai_core::dispatch::{
    outcome_of_response, DispatchSettings, EventEnvelope, Outcome, RunSummary, Transport,
};
use ipai_core::outbox::{self, ACK_SQL, CLAIM_BATCH_SQL, END_RUN_SQL, FAIL_SQL, START_RUN_SQL};
use ipai_core::{log, ApiError};
use ipai_spin::http::{header, method, respond_error, respond_json};
use ipai_spin::{pg, timer, vars};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue};
use std::time::Duration;

const COMPONENT: &str = "dispatcher";

/// A run that could not start or went wrong as a whole (not one delivery): 503, retry.
fn run_failed(e: DbError) -> ApiError {
    match e {
        DbError::Misconfigured(m) => ApiError::misconfigured(m),
        other => ApiError::database_unavailable(other.to_string()),
    }
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    match authorize(&req).and_then(|_| configure()) {
        Err(e) => {
            if e.is_server_error() {
                log::error(COMPONENT, None, &e);
            }
            respond_error(out, &e).await
        }
        Ok(cfg) => match run(&cfg).await {
            Ok(summary) => {
                if summary.claimed > 0 {
                    log::info(COMPONENT, None, json!(summary));
                }
                respond_json(out, 200, json!(summary).to_string().into_bytes(), &[]).await
            }
            Err(e) => {
                let e = run_failed(e).retry_after(5);
                log::error(COMPONENT, None, format!("run failed: {e}"));
                respond_error(out, &e).await
            }
        },
    }
}

fn authorize(req: &IncomingRequest) -> Result<(), ApiError> {
    if !method(req).eq_ignore_ascii_case("POST") {
        return Err(ApiError::method_not_allowed("use POST", "POST"));
    }
    let token = vars::required("dispatch_token").map_err(ApiError::misconfigured)?;
    if bearer_matches_any(header(req, "authorization").as_deref(), &token) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("missing or wrong bearer token"))
    }
}

struct Config {
    db_url: String,
    /// The bearer sent to the handlers (the first token `handler_token` lists).
    handler_token: String,
    transport: Transport,
    settings: DispatchSettings,
    worker: String,
}

fn configure() -> Result<Config, ApiError> {
    let settings =
        DispatchSettings::from_lookup(vars::optional).map_err(ApiError::misconfigured)?;
    let transport = Transport::from_settings(
        &vars::optional("service_chaining").unwrap_or_default(),
        &vars::optional("handler_base_url").unwrap_or_default(),
    )
    .map_err(ApiError::misconfigured)?;
    // db_url before the token: a run without a database is misconfigured first.
    let db_url = vars::required("db_url").map_err(ApiError::misconfigured)?;
    Ok(Config {
        db_url,
        handler_token: vars::sending_token("handler_token").map_err(ApiError::misconfigured)?,
        transport,
        settings,
        worker: format!(
            "dispatcher-{:016x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
        ),
    })
}

/// The queue functions (`ipai_core::outbox`) over this run's connection.
struct PgQueue<'a> {
    conn: Connection,
    cfg: &'a Config,
}

impl PgQueue<'_> {
    /// Runs one queue call: its one row's first column.
    fn call(&self, sql: &str, params: &[ParameterValue]) -> Result<Option<DbValue>, DbError> {
        let rows = self.conn.query(sql, params).map_err(pg::db_error)?;
        Ok(pg::first_value(&rows).cloned())
    }

    fn worker(&self) -> ParameterValue {
        ParameterValue::Str(self.cfg.worker.clone())
    }
}

fn unexpected(call: &str, value: Option<DbValue>) -> DbError {
    DbError::Failed(format!("{call} returned {value:?}"))
}

impl Queue for PgQueue<'_> {
    type Error = DbError;

    fn start(&mut self) -> Result<bool, DbError> {
        let lease = ParameterValue::Int64(self.cfg.settings.lease_ms() as i64);
        match self.call(START_RUN_SQL, &[self.worker(), lease])? {
            Some(DbValue::Boolean(b)) => Ok(b),
            other => Err(unexpected("start_dispatch_run", other)),
        }
    }

    fn claim(&mut self, limit: i32) -> Result<Vec<EventEnvelope>, DbError> {
        let settings = &self.cfg.settings;
        let params = [
            ParameterValue::Int32(limit),
            self.worker(),
            ParameterValue::Int64(settings.lock_timeout_s),
            ParameterValue::Int64(settings.lease_ms() as i64),
        ];
        match self.call(&CLAIM_BATCH_SQL, &params)? {
            Some(DbValue::Str(json)) => {
                outbox::decode_batch(json.as_bytes()).map_err(DbError::Failed)
            }
            other => Err(unexpected("claim_dispatch_batch", other)),
        }
    }

    /// Acks a group of delivered events in one round trip.
    fn ack(&mut self, ids: Vec<String>) -> Result<u32, DbError> {
        let ids = ids.into_iter().map(Some).collect();
        match self.call(ACK_SQL, &[ParameterValue::ArrayStr(ids)])? {
            Some(DbValue::Int64(n)) => Ok(n as u32),
            other => Err(unexpected("ack_outbox_batch", other)),
        }
    }

    fn fail(&mut self, event: &EventEnvelope, error: String) -> Result<Option<String>, DbError> {
        log::warn(
            COMPONENT,
            Some(&event.id),
            format!(
                "{} attempt {} failed: {error}",
                event.event_type, event.attempt
            ),
        );
        let params = [
            ParameterValue::Str(event.id.clone()),
            ParameterValue::Str(error),
        ];
        Ok(match self.call(FAIL_SQL, &params)? {
            Some(DbValue::Str(s)) => Some(s),
            _ => None,
        })
    }

    fn end(&mut self) -> Result<(), DbError> {
        self.call(END_RUN_SQL, &[self.worker()]).map(|_| ())
    }
}

/// Delivers one event; the outcome decides ack or fail.
async fn deliver(cfg: &Config, event: EventEnvelope) -> (EventEnvelope, Outcome) {
    let Some(domain) = event.domain() else {
        let error = format!("no handler routes event type {}", event.event_type);
        return (event, Outcome::Fail(error));
    };
    let url = cfg.transport.handler_url(domain);
    let body = match serde_json::to_vec(&event) {
        Ok(b) => b,
        Err(e) => return (event, Outcome::Fail(format!("cannot encode envelope: {e}"))),
    };
    let headers = [
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {}", cfg.handler_token)),
        ("x-ipai-event-id", event.id.clone()),
        ("x-ipai-attempt", event.attempt.to_string()),
    ];
    let timeout = Duration::from_millis(cfg.settings.delivery_timeout_ms);
    let outcome = match ipai_spin::http::post(&url, &headers, body, timeout).await {
        Ok((status, body)) => outcome_of_response(status, &body),
        Err(e) => Outcome::Fail(format!("{} {url}: {e}", domain.handler)),
    };
    (event, outcome)
}

async fn run(cfg: &Config) -> Result<RunSummary, DbError> {
    let started = timer::deadline_in(Duration::ZERO);
    let deadline = timer::deadline_in(Duration::from_millis(cfg.settings.budget_ms));
    let mut queue = PgQueue {
        conn: pg::open_url(&cfg.db_url)?,
        cfg,
    };
    let limits = RunLimits {
        batch_size: cfg.settings.batch_size,
        concurrency: cfg.settings.concurrency,
    };
    let mut summary = run_dispatch(
        &mut queue,
        limits,
        |event| deliver(cfg, event),
        || timer::passed(deadline),
    )
    .await?;
    summary.ms = timer::deadline_in(Duration::ZERO).saturating_sub(started) / 1_000_000;
    Ok(summary)
}
