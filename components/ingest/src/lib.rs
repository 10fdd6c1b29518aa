//! ingest: the bus's front door (`POST /odoo-webhook`, `POST /functions/v1/odoo-webhook`).
//!
//! A thin Spin adapter: it gathers the request, lets `ipai_core::check_request` decide,
//! stores an accepted event with one call to the SQL function `integration.ingest_event`
//! (outbox row + audit row, atomically, idempotent), and maps every failure to the status
//! `ipai_core::IngestError` defines. After answering Odoo it kicks a dispatch run, so a
//! new event is delivered in milliseconds rather than at the next cron tick. The kick is
//! decided in the same round trip as the store (`integration.request_dispatch`, in the
//! same transaction): it marks a run that is already going to claim again, and only when
//! none is going or starting does ingest call `/dispatch` (so a burst of posts starts one
//! run, not one per post). The connection goes back to the pool before the answer.

use ipai_core::dispatch::{service_chaining_on, DISPATCHER_CHAINING_URL};
use ipai_core::ingest::{check_preamble, MAX_BODY_BYTES};
use ipai_core::{check_request, IngestConfig, IngestError, IngestRequest, ValidEvent};
use ipai_spin::http::{headers, method, read_body, respond_json, BodyError};
use ipai_spin::vars;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError};
use std::time::Duration;

/// One accepted request's outcome.
struct Stored {
    id: String,
    duplicate: bool,
    /// No dispatcher run is going or starting: this request must start one.
    start_run: bool,
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    match ingest(req).await {
        Ok(s) if s.duplicate => {
            let body = format!(r#"{{"id":"{}","status":"duplicate"}}"#, s.id);
            respond_json(out, 200, body.into_bytes(), &[]).await
        }
        Ok(s) => {
            let body = format!(r#"{{"id":"{}","status":"queued"}}"#, s.id);
            respond_json(out, 202, body.into_bytes(), &[]).await;
            // Odoo has its answer; now start delivery (cron remains the safety net).
            if s.start_run {
                kick_dispatch().await;
            }
        }
        Err(e) => {
            if e.status() >= 500 {
                eprintln!("ingest: {} {}: {}", e.status(), e.code(), e);
            }
            let extra: Vec<(&str, String)> = e
                .headers()
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect();
            respond_json(out, e.status(), e.body(), &extra).await
        }
    }
}

async fn ingest(req: IncomingRequest) -> Result<Stored, IngestError> {
    let method = method(&req);
    let headers = headers(&req);
    let content_length = ipai_core::headers::header(&headers, "content-length");
    check_preamble(&method, content_length)?;
    let body = read_body(req, MAX_BODY_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge(n) => IngestError::PayloadTooLarge(n, MAX_BODY_BYTES),
        BodyError::Read(msg) => IngestError::InvalidJson(msg),
    })?;

    let config = IngestConfig {
        odoo_webhook_secret: vars::required("odoo_webhook_secret")
            .map_err(IngestError::Misconfigured)?,
        standard_webhooks_secret: vars::optional("standard_webhooks_secret").unwrap_or_default(),
    };
    let request = IngestRequest {
        method,
        headers,
        body,
    };
    let event = check_request(&request, &config, now_ms())?;
    store(&event)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn db_error(e: PgError) -> IngestError {
    match e {
        PgError::ConnectionFailed(msg) => {
            eprintln!("ingest: database connection failed: {msg}");
            IngestError::DatabaseUnavailable
        }
        // A lock held elsewhere past ingest_event's lock_timeout, a statement timeout, a
        // serialization failure: nothing was stored and the same request may be retried.
        // (Spin 4.0.2 returns an error met while the statement runs as text holding the
        // database error; its SQLSTATE is read from there.)
        PgError::QueryFailed(QueryError::DbError(d))
            if ipai_core::error::is_transient_sqlstate(&d.code) =>
        {
            eprintln!(
                "ingest: database busy ({}): {}; answered 503",
                d.code, d.message
            );
            IngestError::DatabaseBusy
        }
        PgError::QueryFailed(QueryError::Text(t))
            if ipai_core::error::sqlstate_in_text(&t)
                .is_some_and(ipai_core::error::is_transient_sqlstate) =>
        {
            eprintln!("ingest: database busy: {t}; answered 503");
            IngestError::DatabaseBusy
        }
        // Logged in full by the caller; the client's body says only that nothing was
        // stored (`IngestError::message`).
        other => IngestError::Internal(format!("database error: {other:?}")),
    }
}

/// Stores the event and, for a new one when the kick is on ($9), asks for its delivery in
/// the same transaction (`request_dispatch`: true = start a run). $10 is the signature
/// digest: a signature already accepted under another key comes back `replayed`, with
/// nothing stored and no kick.
const INGEST_SQL: &str = "SELECT coalesce(i.id::text, '') AS id, i.duplicate, i.conflict, \
            i.replayed, \
            CASE WHEN $9::bool AND NOT i.duplicate AND NOT i.replayed \
                 THEN integration.request_dispatch() ELSE false END AS start_run \
     FROM integration.ingest_event($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8, \
                                   $10::text) AS i";

/// Stores the event with one round trip to `integration.ingest_event`.
fn store(event: &ValidEvent) -> Result<Stored, IngestError> {
    let e = &event.envelope;
    // Ingest's own role (db_url_ingest) when configured, else the app's.
    let db_url = match vars::optional("db_url_ingest") {
        Some(url) => url,
        None => vars::required("db_url").map_err(IngestError::Misconfigured)?,
    };
    let conn = Connection::open(&db_url).map_err(db_error)?;
    let payload =
        serde_json::to_vec(&e.payload).map_err(|err| IngestError::Internal(err.to_string()))?;
    let params = [
        ParameterValue::Str(e.event_type.clone()),
        ParameterValue::Str(e.aggregate_type.clone()),
        ParameterValue::Str(e.aggregate_id.clone()),
        ParameterValue::Jsonb(payload),
        ParameterValue::Str(event.idempotency_key.clone()),
        ParameterValue::Str(event.body_sha256.clone()),
        e.occurred_at
            .clone()
            .map_or(ParameterValue::DbNull, ParameterValue::Str),
        ParameterValue::Str(e.source.clone()),
        ParameterValue::Boolean(vars::optional("dispatch_kick").as_deref() != Some("off")),
        event
            .signature_digest
            .clone()
            .map_or(ParameterValue::DbNull, ParameterValue::Str),
    ];
    let rows = conn.query(INGEST_SQL, &params).map_err(db_error)?;
    let row = rows
        .rows
        .first()
        .ok_or_else(|| IngestError::Internal("ingest_event returned no row".into()))?;
    let (id, duplicate, conflict, replayed, start_run) = match row.as_slice() {
        [DbValue::Str(id), DbValue::Boolean(d), DbValue::Boolean(c), DbValue::Boolean(r), DbValue::Boolean(k)] => {
            (id.clone(), *d, *c, *r, *k)
        }
        other => {
            return Err(IngestError::Internal(format!(
                "unexpected ingest_event row {other:?}"
            )))
        }
    };
    if replayed {
        return Err(IngestError::ReplayedSignature);
    }
    if conflict {
        return Err(IngestError::IdempotencyConflict(id));
    }
    Ok(Stored {
        id,
        duplicate,
        start_run,
    })
}

/// Starts a dispatcher run: by service chaining where available, else over HTTP to
/// `public_base_url`. Failures are only logged: the event is safe in the outbox and the
/// next kick or the cron trigger will deliver it.
async fn kick_dispatch() {
    let Ok(token) = vars::required("dispatch_token") else {
        eprintln!("ingest: dispatch kick skipped: variable dispatch_token is not set");
        return;
    };
    let chaining = vars::optional("service_chaining").unwrap_or_default();
    let url = match service_chaining_on(&chaining) {
        Ok(true) => DISPATCHER_CHAINING_URL.to_string(),
        Ok(false) => match vars::optional("public_base_url") {
            Some(base) => format!("{}/dispatch", base.trim_end_matches('/')),
            None => {
                eprintln!("ingest: dispatch kick skipped: variable public_base_url is not set");
                return;
            }
        },
        Err(e) => {
            eprintln!("ingest: dispatch kick skipped: {e}");
            return;
        }
    };
    let headers = [("authorization", format!("Bearer {token}"))];
    match ipai_spin::http::post(&url, &headers, Vec::new(), Duration::from_secs(60)).await {
        Ok((200, _)) => {}
        Ok((status, body)) => eprintln!(
            "ingest: dispatch kick answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(e) => eprintln!("ingest: dispatch kick failed: {e}"),
    }
}
