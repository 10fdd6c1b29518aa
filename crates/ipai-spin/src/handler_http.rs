//! The receiving half every domain handler shares: read the dispatcher's request,
//! authenticate it (bearer `handler_token`), parse the envelope
//! (`ipai_core::handler_request`), and answer in one shape.

use crate::http::{header, method, read_body, respond_error, respond_json};
use crate::vars;
use ipai_core::dispatch::EventEnvelope;
use ipai_core::handler_request::{accept_envelope, authorize, HandlerError};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};

/// Largest envelope a handler reads (ingest caps bodies at 256 KiB).
const MAX_ENVELOPE_BYTES: usize = 512 * 1024;

/// Authenticates and parses a request for handler component `handler`.
pub async fn receive(req: IncomingRequest, handler: &str) -> Result<EventEnvelope, HandlerError> {
    let method = method(&req);
    let auth = header(&req, "authorization");
    let token = vars::required("handler_token").map_err(HandlerError::Misconfigured)?;
    // Method and token before the body: a caller without the token is refused unread.
    authorize(&method, auth.as_deref(), &token)?;
    let body = read_body(req, MAX_ENVELOPE_BYTES)
        .await
        .map_err(|e| HandlerError::InvalidEnvelope(e.to_string()))?;
    accept_envelope(handler, &method, auth.as_deref(), &token, &body)
}

/// What a handler did with an event it accepted.
pub enum Handled {
    /// Side effects done (or already done earlier).
    Done(Vec<String>),
    /// Deliberately ignored, with the reason.
    Skipped(String),
}

/// Answers the dispatcher: 2xx acks the event, anything else makes it retry later.
pub async fn answer(
    out: ResponseOutparam,
    component: &str,
    event_id: Option<&str>,
    result: Result<Handled, HandlerError>,
) {
    match result {
        Ok(Handled::Done(effects)) => {
            let body = json!({"status": "done", "event_id": event_id, "effects": effects});
            respond_json(out, 200, body.to_string().into_bytes(), &[]).await
        }
        Ok(Handled::Skipped(reason)) => {
            let body = json!({"status": format!("skipped: {reason}"), "event_id": event_id});
            respond_json(out, 200, body.to_string().into_bytes(), &[]).await
        }
        Err(e) => {
            if e.status() >= 500 {
                ipai_core::log::error(component, event_id, &e);
            }
            respond_error(out, &ipai_core::ApiError::from(e)).await
        }
    }
}
