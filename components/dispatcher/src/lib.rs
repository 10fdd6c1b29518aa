//! dispatcher: `POST /dispatch` (bearer `dispatch_token`) runs one dispatch run.
//!
//! At most one run claims at a time per database: a run first takes the dispatcher lease
//! (`integration.start_dispatch_run`); when another run holds it, this call only marks
//! "claim again" for that run and answers `{"coalesced": true, ...}` at once. The lease
//! holder claims batches with `integration.claim_dispatch_batch` (which renews the lease,
//! claims with `claim_outbox`'s SKIP LOCKED and per-aggregate FIFO, and releases the lease
//! when nothing is left), posts each envelope to its domain handler — by Spin service
//! chaining, or over HTTP where chaining is unavailable — keeping `dispatch_concurrency`
//! in flight, `ack_outbox`es 2xx answers in groups and `fail_outbox`es everything else,
//! until the queue is empty or the time budget is spent. It answers with the run's
//! summary. The loop itself is `ipai_core::dispatch::run` (natively tested); this
//! component is its adapter to Spin's PostgreSQL and outbound HTTP.

use ipai_core::auth::bearer_matches;
use ipai_core::dispatch::run::{run_dispatch, Queue, RunLimits};
use ipai_core::dispatch::{
    outcome_of_response, DispatchSettings, EventEnvelope, Outcome, RunSummary, Transport,
};
use ipai_spin::http::{header, method, respond_json};
use ipai_spin::{timer, vars};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError};
use std::time::Duration;

/// A failure of the run itself (not of one delivery).
enum RunError {
    Unauthorized,
    MethodNotAllowed,
    Misconfigured(String),
    Database(String),
}

impl RunError {
    fn status(&self) -> u16 {
        match self {
            RunError::Unauthorized => 401,
            RunError::MethodNotAllowed => 405,
            RunError::Misconfigured(_) => 500,
            RunError::Database(_) => 503,
        }
    }

    fn body(&self) -> Vec<u8> {
        let (code, msg) = match self {
            RunError::Unauthorized => ("unauthorized", "missing or wrong bearer token".to_string()),
            RunError::MethodNotAllowed => ("method_not_allowed", "use POST".to_string()),
            RunError::Misconfigured(m) => ("misconfigured", m.clone()),
            RunError::Database(m) => ("database_unavailable", m.clone()),
        };
        json!({"error": code, "message": msg})
            .to_string()
            .into_bytes()
    }
}

fn db(e: PgError) -> RunError {
    RunError::Database(format!("{e:?}"))
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    match authorize(&req).and_then(|_| configure()) {
        Err(e) => {
            let extra = if matches!(e, RunError::MethodNotAllowed) {
                vec![("allow", "POST".to_string())]
            } else {
                vec![]
            };
            if e.status() >= 500 {
                eprintln!("dispatcher: {}", String::from_utf8_lossy(&e.body()));
            }
            respond_json(out, e.status(), e.body(), &extra).await
        }
        Ok(cfg) => match run(&cfg).await {
            Ok(summary) => {
                if summary.claimed > 0 {
                    eprintln!("dispatcher: {}", json!(summary));
                }
                respond_json(out, 200, json!(summary).to_string().into_bytes(), &[]).await
            }
            Err(e) => {
                eprintln!(
                    "dispatcher: run failed: {}",
                    String::from_utf8_lossy(&e.body())
                );
                respond_json(
                    out,
                    e.status(),
                    e.body(),
                    &[("retry-after", "5".to_string())],
                )
                .await
            }
        },
    }
}

fn authorize(req: &IncomingRequest) -> Result<(), RunError> {
    if !method(req).eq_ignore_ascii_case("POST") {
        return Err(RunError::MethodNotAllowed);
    }
    let token = vars::required("dispatch_token").map_err(RunError::Misconfigured)?;
    if bearer_matches(header(req, "authorization").as_deref(), &token) {
        Ok(())
    } else {
        Err(RunError::Unauthorized)
    }
}

struct Config {
    db_url: String,
    token: String,
    transport: Transport,
    settings: DispatchSettings,
    worker: String,
}

fn configure() -> Result<Config, RunError> {
    let settings =
        DispatchSettings::from_lookup(vars::optional).map_err(RunError::Misconfigured)?;
    let transport = Transport::from_settings(
        &vars::optional("service_chaining").unwrap_or_default(),
        &vars::optional("handler_base_url").unwrap_or_default(),
    )
    .map_err(RunError::Misconfigured)?;
    Ok(Config {
        db_url: vars::required("db_url").map_err(RunError::Misconfigured)?,
        token: vars::required("dispatch_token").map_err(RunError::Misconfigured)?,
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

/// One row always (Spin 4.0.2 never returns from a query with no rows): the claimed batch
/// as a JSON array, timestamps as text (Spin 4.0.2 cannot read `timestamptz` columns).
/// An empty batch means the run is over: `claim_dispatch_batch` released the lease (or
/// another run had taken it over).
const CLAIM_SQL: &str = "SELECT coalesce(jsonb_agg(jsonb_build_object(\
       'id', c.id, 'seq', c.seq, 'event_type', c.event_type, 'aggregate_type', c.aggregate_type, \
       'aggregate_id', c.aggregate_id, 'payload', c.payload, 'idempotency_key', c.idempotency_key, \
       'source', c.source, 'occurred_at', c.occurred_at::text, 'created_at', c.created_at::text, \
       'attempt', c.attempts) ORDER BY c.seq), '[]'::jsonb) \
     FROM integration.claim_dispatch_batch($2::text, $1::int4, $4::int8 * interval '1 millisecond', \
                                           make_interval(secs => $3::int8)) c";

/// The queue functions over this run's connection (see `ipai_core::dispatch::run`).
struct PgQueue<'a> {
    conn: Connection,
    cfg: &'a Config,
}

impl Queue for PgQueue<'_> {
    type Error = RunError;

    fn start(&mut self) -> Result<bool, RunError> {
        let rows = self
            .conn
            .query(
                "SELECT integration.start_dispatch_run($1::text, $2::int8 * interval '1 millisecond')",
                &[
                    ParameterValue::Str(self.cfg.worker.clone()),
                    ParameterValue::Int64(self.cfg.settings.lease_ms() as i64),
                ],
            )
            .map_err(db)?;
        match rows.rows.first().and_then(|r| r.first()) {
            Some(DbValue::Boolean(b)) => Ok(*b),
            other => Err(RunError::Database(format!(
                "start_dispatch_run returned {other:?}"
            ))),
        }
    }

    fn claim(&mut self, limit: i32) -> Result<Vec<EventEnvelope>, RunError> {
        let cfg = self.cfg;
        let rows = self
            .conn
            .query(
                CLAIM_SQL,
                &[
                    ParameterValue::Int32(limit),
                    ParameterValue::Str(cfg.worker.clone()),
                    ParameterValue::Int64(cfg.settings.lock_timeout_s),
                    ParameterValue::Int64(cfg.settings.lease_ms() as i64),
                ],
            )
            .map_err(db)?;
        match rows.rows.first().and_then(|r| r.first()) {
            Some(DbValue::Jsonb(json)) => serde_json::from_slice(json).map_err(|e| {
                RunError::Database(format!("claim_outbox returned an unexpected batch: {e}"))
            }),
            other => Err(RunError::Database(format!(
                "claim_outbox returned {other:?}"
            ))),
        }
    }

    /// Acks a group of delivered events in one round trip (`ack_outbox` per id).
    fn ack(&mut self, ids: Vec<String>) -> Result<u32, RunError> {
        let ids = ids.into_iter().map(Some).collect();
        let rows = self
            .conn
            .query(
                "SELECT count(*) FILTER (WHERE acked) FROM unnest($1::text[]) AS t(id), \
                 LATERAL integration.ack_outbox(t.id::uuid) AS acked",
                &[ParameterValue::ArrayStr(ids)],
            )
            .map_err(db)?;
        match rows.rows.first().and_then(|r| r.first()) {
            Some(DbValue::Int64(n)) => Ok(*n as u32),
            other => Err(RunError::Database(format!("ack_outbox returned {other:?}"))),
        }
    }

    fn fail(&mut self, event: &EventEnvelope, error: String) -> Result<Option<String>, RunError> {
        eprintln!(
            "dispatcher: event {} ({}) attempt {} failed: {error}",
            event.id, event.event_type, event.attempt
        );
        let rows = self
            .conn
            .query(
                "SELECT integration.fail_outbox($1::text::uuid, $2::text)",
                &[
                    ParameterValue::Str(event.id.clone()),
                    ParameterValue::Str(error),
                ],
            )
            .map_err(db)?;
        Ok(match rows.rows.first().and_then(|r| r.first()) {
            Some(DbValue::Str(s)) => Some(s.clone()),
            _ => None,
        })
    }

    fn end(&mut self) -> Result<(), RunError> {
        self.conn
            .query(
                "SELECT integration.end_dispatch_run($1::text)",
                &[ParameterValue::Str(self.cfg.worker.clone())],
            )
            .map(|_| ())
            .map_err(db)
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
        ("authorization", format!("Bearer {}", cfg.token)),
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

async fn run(cfg: &Config) -> Result<RunSummary, RunError> {
    let started = timer::deadline_in(Duration::ZERO);
    let deadline = timer::deadline_in(Duration::from_millis(cfg.settings.budget_ms));
    let mut queue = PgQueue {
        conn: Connection::open(&cfg.db_url).map_err(db)?,
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
