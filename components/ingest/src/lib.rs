//! ingest: the bus's front door (`POST /odoo-webhook`, `POST /functions/v1/odoo-webhook`).
//!
//! A thin Spin adapter: it gathers the request, lets `ipai_core::check_request` decide,
//! stores an accepted event with one call to the SQL function `integration.ingest_event`
//! (outbox row + audit row, atomically, idempotent), and maps every failure to the status
//! `ipai_core::IngestError` defines.

use futures::{SinkExt, StreamExt};
use ipai_core::ingest::{check_preamble, MAX_BODY_BYTES};
use ipai_core::{check_request, IngestConfig, IngestError, IngestRequest, ValidEvent};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::{self, Connection, DbValue, ParameterValue};
use spin_sdk::variables;

/// One accepted request's outcome.
struct Stored {
    id: String,
    duplicate: bool,
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let (status, body, extra) = match ingest(req).await {
        Ok(s) if s.duplicate => (
            200,
            format!(r#"{{"id":"{}","status":"duplicate"}}"#, s.id),
            vec![],
        ),
        Ok(s) => (
            202,
            format!(r#"{{"id":"{}","status":"queued"}}"#, s.id),
            vec![],
        ),
        Err(e) => {
            if e.status() >= 500 {
                eprintln!("ingest: {} {}: {}", e.status(), e.code(), e);
            }
            let headers = e
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (
                e.status(),
                String::from_utf8_lossy(&e.body()).into_owned(),
                headers,
            )
        }
    };
    respond(out, status, body, extra).await;
}

async fn respond(out: ResponseOutparam, status: u16, body: String, extra: Vec<(String, String)>) {
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    headers.extend(extra.into_iter().map(|(k, v)| (k, v.into_bytes())));
    let response =
        OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = response.set_status_code(status);
    let mut sink = response.take_body();
    out.set(response);
    if let Err(e) = sink.send(body.into_bytes()).await {
        eprintln!("ingest: could not write the response body: {e:?}");
    }
}

async fn ingest(req: IncomingRequest) -> Result<Stored, IngestError> {
    let method = req.method().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let content_length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str());
    check_preamble(&method, content_length)?;
    let body = read_body_limited(req).await?;

    let config = IngestConfig {
        odoo_webhook_secret: variable("odoo_webhook_secret")?,
        standard_webhooks_secret: variables::get("standard_webhooks_secret").unwrap_or_default(),
    };
    let request = IngestRequest {
        method,
        headers,
        body,
    };
    let event = check_request(&request, &config, now_ms())?;
    store(&event).await
}

/// Reads the body, stopping as soon as it exceeds the limit.
async fn read_body_limited(req: IncomingRequest) -> Result<Vec<u8>, IngestError> {
    let mut body = Vec::new();
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| IngestError::InvalidJson(format!("could not read the body: {e:?}")))?;
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY_BYTES {
            return Err(IngestError::PayloadTooLarge(body.len(), MAX_BODY_BYTES));
        }
    }
    Ok(body)
}

fn variable(name: &str) -> Result<String, IngestError> {
    match variables::get(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(IngestError::Misconfigured(format!(
            "variable {name} is empty"
        ))),
        Err(e) => Err(IngestError::Misconfigured(format!("variable {name}: {e}"))),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn db_error(e: pg4::PgError) -> IngestError {
    match e {
        pg4::PgError::ConnectionFailed(msg) => {
            eprintln!("ingest: database connection failed: {msg}");
            IngestError::DatabaseUnavailable
        }
        other => IngestError::Internal(format!("database error: {other:?}")),
    }
}

const INGEST_SQL: &str = "SELECT id::text AS id, duplicate, conflict \
     FROM integration.ingest_event($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)";

/// Stores the event with one round trip to `integration.ingest_event`.
async fn store(event: &ValidEvent) -> Result<Stored, IngestError> {
    let e = &event.envelope;
    let db_url = variable("db_url")?;
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
    ];
    let rows = conn.query(INGEST_SQL, &params).map_err(db_error)?;
    let row = rows
        .rows
        .first()
        .ok_or_else(|| IngestError::Internal("ingest_event returned no row".into()))?;
    let (id, duplicate, conflict) = match row.as_slice() {
        [DbValue::Str(id), DbValue::Boolean(d), DbValue::Boolean(c)] => (id.clone(), *d, *c),
        other => {
            return Err(IngestError::Internal(format!(
                "unexpected ingest_event row {other:?}"
            )))
        }
    };
    if conflict {
        return Err(IngestError::IdempotencyConflict(id));
    }
    Ok(Stored { id, duplicate })
}
