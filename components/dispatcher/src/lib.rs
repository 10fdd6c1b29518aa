//! dispatcher: `POST /dispatch` (bearer `dispatch_token`) runs one dispatch run.
//!
//! At most one run claims at a time per database: a run first takes the dispatcher lease
//! (`integration.start_dispatch_run`); when another run holds it, this call only marks
//! "claim again" for that run and answers `{"coalesced": true, ...}` at once. The lease
//! holder claims batches with `integration.claim_dispatch_batch` (which renews the lease,
//! claims with `claim_outbox`'s SKIP LOCKED and per-aggregate FIFO, and releases the lease
//! when nothing is left), posts each envelope to its domain handler — by Spin service
//! chaining, or over HTTP where chaining is unavailable — at most `dispatch_concurrency`
//! at once, then `ack_outbox`es 2xx answers and `fail_outbox`es everything else, until the
//! queue is empty or the time budget is spent. It answers with the run's summary.

use futures::stream::{self, StreamExt as _};
use ipai_core::auth::bearer_matches;
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

/// Takes the dispatcher lease; `false` when another run holds it (it is then marked to
/// claim again before it finishes).
fn start_run(conn: &Connection, cfg: &Config) -> Result<bool, RunError> {
    let rows = conn
        .query(
            "SELECT integration.start_dispatch_run($1::text, $2::int8 * interval '1 millisecond')",
            &[
                ParameterValue::Str(cfg.worker.clone()),
                ParameterValue::Int64(cfg.settings.lease_ms() as i64),
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

/// Lets go of the lease before the queue is empty (budget spent, or the run failed).
fn end_run(conn: &Connection, cfg: &Config) -> Result<(), RunError> {
    conn.query(
        "SELECT integration.end_dispatch_run($1::text)",
        &[ParameterValue::Str(cfg.worker.clone())],
    )
    .map(|_| ())
    .map_err(db)
}

fn claim(conn: &Connection, cfg: &Config) -> Result<Vec<EventEnvelope>, RunError> {
    let rows = conn
        .query(
            CLAIM_SQL,
            &[
                ParameterValue::Int32(cfg.settings.batch_size),
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

/// Delivers one event; the outcome decides ack or fail.
async fn deliver(cfg: &Config, event: &EventEnvelope) -> Outcome {
    let Some(domain) = event.domain() else {
        return Outcome::Fail(format!("no handler routes event type {}", event.event_type));
    };
    let url = cfg.transport.handler_url(domain);
    let body = match serde_json::to_vec(event) {
        Ok(b) => b,
        Err(e) => return Outcome::Fail(format!("cannot encode envelope: {e}")),
    };
    let headers = [
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {}", cfg.token)),
        ("x-ipai-event-id", event.id.clone()),
        ("x-ipai-attempt", event.attempt.to_string()),
    ];
    let timeout = Duration::from_millis(cfg.settings.delivery_timeout_ms);
    match ipai_spin::http::post(&url, &headers, body, timeout).await {
        Ok((status, body)) => outcome_of_response(status, &body),
        Err(e) => Outcome::Fail(format!("{} {url}: {e}", domain.handler)),
    }
}

async fn run(cfg: &Config) -> Result<RunSummary, RunError> {
    let started = timer::deadline_in(Duration::ZERO);
    let conn = Connection::open(&cfg.db_url).map_err(db)?;
    let mut summary = RunSummary::default();
    if !start_run(&conn, cfg)? {
        summary.coalesced = true;
    } else {
        let outcome = run_batches(&conn, cfg, &mut summary).await;
        if !matches!(outcome, Ok(RunEnd::QueueEmpty)) {
            // Budget spent or a failure: let go now rather than when the lease expires.
            // If the database is gone this fails too, and the lease simply expires.
            let _ = end_run(&conn, cfg);
        }
        outcome?;
    }
    summary.ms = timer::deadline_in(Duration::ZERO).saturating_sub(started) / 1_000_000;
    Ok(summary)
}

/// Why a lease holder's run stopped.
enum RunEnd {
    /// `claim_dispatch_batch` found nothing more and released the lease.
    QueueEmpty,
    /// The time budget is spent; the lease is still held.
    BudgetSpent,
}

async fn run_batches(
    conn: &Connection,
    cfg: &Config,
    summary: &mut RunSummary,
) -> Result<RunEnd, RunError> {
    let deadline = timer::deadline_in(Duration::from_millis(cfg.settings.budget_ms));
    loop {
        let batch = claim(conn, cfg)?;
        if batch.is_empty() {
            return Ok(RunEnd::QueueEmpty);
        }
        summary.batches += 1;
        summary.claimed += batch.len() as u32;
        let outcomes: Vec<Outcome> = stream::iter(batch.iter().map(|e| deliver(cfg, e)))
            .buffered(cfg.settings.concurrency)
            .collect()
            .await;
        let mut acked = Vec::new();
        for (event, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Ack => acked.push(Some(event.id.clone())),
                Outcome::Fail(error) => fail(conn, event, error, summary)?,
            }
        }
        summary.done += ack_all(conn, acked)?;
        if timer::passed(deadline) {
            return Ok(RunEnd::BudgetSpent);
        }
    }
}

/// Acks every delivered event of a batch in one round trip (`ack_outbox` per id).
fn ack_all(conn: &Connection, ids: Vec<Option<String>>) -> Result<u32, RunError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = conn
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

fn fail(
    conn: &Connection,
    event: &EventEnvelope,
    error: String,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    eprintln!(
        "dispatcher: event {} ({}) attempt {} failed: {error}",
        event.id, event.event_type, event.attempt
    );
    let rows = conn
        .query(
            "SELECT integration.fail_outbox($1::text::uuid, $2::text)",
            &[
                ParameterValue::Str(event.id.clone()),
                ParameterValue::Str(error),
            ],
        )
        .map_err(db)?;
    let status = match rows.rows.first().and_then(|r| r.first()) {
        Some(DbValue::Str(s)) => Some(s.as_str()),
        _ => None,
    };
    summary.record_fail(status);
    Ok(())
}
