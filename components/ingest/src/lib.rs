//! ingest: the bus's front door (`POST /odoo-webhook`, `POST /functions/v1/odoo-webhook`).
//!
//! A thin Spin adapter: it gathers the request, lets `ipai_core::check_request` decide,
//! stores an accepted event with one call to the SQL function `integration.ingest_event`
//! (`ipai_core::outbox::INGEST_SQL`: outbox row + audit row, atomically, idempotent), and
//! answers every failure with the status `ipai_core::IngestError` maps it to. After
//! answering Odoo it kicks a dispatch run, so a new event is delivered in milliseconds
//! rather than at the next cron tick. The kick is decided in the same round trip as the
//! store (`integration.request_dispatch`, in the same transaction): it marks a run that is
//! already going to claim again, and only when none is going or starting does ingest call
//! `/dispatch` (so a burst of posts starts one run, not one per post). The connection goes
//! back to the pool before the answer.

use ipai_core::db::DbError;
use ipai_core::dispatch::{service_chaining_on, DISPATCHER_CHAINING_URL};
use ipai_core::ingest::{check_preamble, spent_signature, MAX_BODY_BYTES};
use ipai_core::outbox::{IngestOutcome, INGEST_SQL, SPEND_SIGNATURE_SQL};
use ipai_core::{
    check_request, log, ApiError, IngestConfig, IngestError, IngestRequest, ValidEvent,
};
use ipai_spin::dispatch_runs::run_back_to_back;
use ipai_spin::http::{headers, method, read_body, respond_error, respond_json, BodyError};
use ipai_spin::{pg, vars};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::{DbValue, ParameterValue};

const COMPONENT: &str = "ingest";

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
                kick_dispatch(&s.id).await;
            }
        }
        Err(e) => {
            if e.status() >= 500 {
                // The detail (a database error's text) goes to the log, not to the client.
                log::error(COMPONENT, None, format!("{} {}: {e}", e.status(), e.code()));
            }
            respond_error(out, &ApiError::from(e)).await
        }
    }
}

async fn ingest(req: IncomingRequest) -> Result<IngestOutcome, IngestError> {
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
    let now = now_ms();
    let event = check_request(&request, &config, now).inspect_err(|_| {
        if let Some((key, digest)) = spent_signature(&request, &config, now) {
            spend_signature(&digest, &key);
        }
    })?;
    let stored = store(&event).inspect_err(|_| {
        if let Some(digest) = &event.signature_digest {
            spend_signature(digest, &event.idempotency_key);
        }
    })?;
    if stored.replayed {
        return Err(IngestError::ReplayedSignature);
    }
    if stored.conflict {
        return Err(IngestError::IdempotencyConflict(stored.id));
    }
    Ok(stored)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A database failure as ingest answers it. The client learns only that nothing was
/// stored; the log gets the cause (the TLS error, the refused address, the lock) here,
/// since `IngestError` keeps no detail for 503s.
fn logged(e: DbError) -> IngestError {
    if matches!(e, DbError::Unavailable(_) | DbError::Busy(_)) {
        log::error(COMPONENT, None, &e);
    }
    IngestError::from(e)
}

/// Remembers the signature of a request that stored nothing although its signature
/// passed ([`SPEND_SIGNATURE_SQL`], a transaction of its own: the failed store rolled
/// back), so the same request cannot be sent again to succeed; best effort, logged.
fn spend_signature(digest: &str, key: &str) {
    let spent = connect().and_then(|conn| {
        conn.query(
            SPEND_SIGNATURE_SQL,
            &[
                ParameterValue::Str(digest.to_string()),
                ParameterValue::Str(key.to_string()),
            ],
        )
        .map_err(pg::db_error)
    });
    if let Err(e) = spent {
        log::warn(
            COMPONENT,
            None,
            format!("could not record the spent signature of key {key}: {e}"),
        );
    }
}

/// Ingest's own role (db_url_ingest) when configured, else the app's.
fn connect() -> Result<spin_sdk::pg4::Connection, DbError> {
    match vars::optional("db_url_ingest") {
        Some(url) => pg::open_url(&url),
        None => pg::open("db_url"),
    }
}

/// Stores the event with one round trip ([`INGEST_SQL`]).
fn store(event: &ValidEvent) -> Result<IngestOutcome, IngestError> {
    let e = &event.envelope;
    let conn = connect().map_err(logged)?;
    // As text, cast to jsonb in SQL: every number exactly as sent (`INGEST_SQL`).
    let payload =
        serde_json::to_string(&e.payload).map_err(|err| IngestError::Internal(err.to_string()))?;
    let params = [
        ParameterValue::Str(e.event_type.clone()),
        ParameterValue::Str(e.aggregate_type.clone()),
        ParameterValue::Str(e.aggregate_id.clone()),
        ParameterValue::Str(payload),
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
    let rows = conn
        .query(INGEST_SQL, &params)
        .map_err(|e| logged(pg::db_error(e)))?;
    match pg::first_row(&rows) {
        Some(
            [DbValue::Str(id), DbValue::Boolean(duplicate), DbValue::Boolean(conflict), DbValue::Boolean(replayed), DbValue::Boolean(start_run)],
        ) => Ok(IngestOutcome {
            id: id.clone(),
            duplicate: *duplicate,
            conflict: *conflict,
            replayed: *replayed,
            start_run: *start_run,
        }),
        other => Err(IngestError::Internal(format!(
            "unexpected ingest_event row {other:?}"
        ))),
    }
}

/// Starts a dispatcher run: by service chaining where available, else over HTTP to
/// `public_base_url`; while the run stops on its time budget, the next at once (a burst's
/// backlog then drains without waiting for a cron tick). Failures are only logged: the
/// event is safe in the outbox and the next kick or the cron trigger will deliver it.
async fn kick_dispatch(event_id: &str) {
    let event = Some(event_id);
    let token = match vars::sending_token("dispatch_token") {
        Ok(token) => token,
        Err(e) => {
            log::error(COMPONENT, event, format!("dispatch kick skipped: {e}"));
            return;
        }
    };
    let chaining = vars::optional("service_chaining").unwrap_or_default();
    let url = match service_chaining_on(&chaining) {
        Ok(true) => DISPATCHER_CHAINING_URL.to_string(),
        Ok(false) => match vars::optional("public_base_url") {
            Some(base) => format!("{}/dispatch", base.trim_end_matches('/')),
            None => {
                log::error(
                    COMPONENT,
                    event,
                    "dispatch kick skipped: variable public_base_url is not set",
                );
                return;
            }
        },
        Err(e) => {
            log::error(COMPONENT, event, format!("dispatch kick skipped: {e}"));
            return;
        }
    };
    let headers = [("authorization", format!("Bearer {token}"))];
    if let Err(e) = run_back_to_back(&url, &headers, |_| {}).await {
        log::warn(COMPONENT, event, format!("dispatch kick failed: {e}"));
    }
}
