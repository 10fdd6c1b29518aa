//! The request the dispatcher sends a domain handler, as the handler receives it:
//! authenticate the dispatcher (bearer `handler_token`, a comma list during a rotation)
//! and parse the event envelope,
//! before any domain logic. ("Handler" alone names three things in this tree: this
//! request, its Spin transport `ipai_spin::handler_http`, and the domain handlers'
//! logic, the `ipai-handlers` crate.) Its errors map to statuses in `ApiError::from`.
use crate::auth::bearer_matches_any;
use crate::dispatch::EventEnvelope;
use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    #[error("method {0} is not allowed; use POST")]
    MethodNotAllowed(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("invalid event envelope: {0}")]
    InvalidEnvelope(String),
    #[error("event type {event_type} does not belong to the {handler} handler")]
    WrongHandler { event_type: String, handler: String },
    #[error("server is misconfigured: {0}")]
    Misconfigured(String),
    /// A side effect failed; the dispatcher retries the event later.
    #[error("{0}")]
    Upstream(String),
}

impl HandlerError {
    pub fn status(&self) -> u16 {
        match self {
            HandlerError::MethodNotAllowed(_) => 405,
            HandlerError::Unauthorized => 401,
            HandlerError::InvalidEnvelope(_) => 400,
            HandlerError::WrongHandler { .. } => 422,
            HandlerError::Misconfigured(_) => 500,
            HandlerError::Upstream(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            HandlerError::MethodNotAllowed(_) => "method_not_allowed",
            HandlerError::Unauthorized => "unauthorized",
            HandlerError::InvalidEnvelope(_) => "invalid_envelope",
            HandlerError::WrongHandler { .. } => "wrong_handler",
            HandlerError::Misconfigured(_) => "misconfigured",
            HandlerError::Upstream(_) => "upstream_failed",
        }
    }

    pub fn body(&self) -> Vec<u8> {
        ApiError::from(self.clone()).body()
    }
}

impl From<HandlerError> for ApiError {
    fn from(e: HandlerError) -> Self {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

/// Checks method and bearer token: what a handler decides before it reads a body (an
/// unauthenticated caller never makes it read up to the envelope limit). `handler_token` is
/// the variable's value: any token it lists opens.
pub fn authorize(
    method: &str,
    authorization: Option<&str>,
    handler_token: &str,
) -> Result<(), HandlerError> {
    if !method.eq_ignore_ascii_case("POST") {
        return Err(HandlerError::MethodNotAllowed(method.to_string()));
    }
    if !bearer_matches_any(authorization, handler_token) {
        return Err(HandlerError::Unauthorized);
    }
    Ok(())
}

/// Authenticates and parses a handler request for the handler component `handler`.
pub fn accept_envelope(
    handler: &str,
    method: &str,
    authorization: Option<&str>,
    handler_token: &str,
    body: &[u8],
) -> Result<EventEnvelope, HandlerError> {
    authorize(method, authorization, handler_token)?;
    let envelope: EventEnvelope =
        serde_json::from_slice(body).map_err(|e| HandlerError::InvalidEnvelope(e.to_string()))?;
    match envelope.domain() {
        Some(d) if d.handler == handler => Ok(envelope),
        _ => Err(HandlerError::WrongHandler {
            event_type: envelope.event_type,
            handler: handler.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn authorize_needs_post_and_the_token_and_nothing_else() {
        assert!(authorize("POST", Some("Bearer t"), "t").is_ok());
        assert_eq!(
            authorize("POST", None, "t"),
            Err(HandlerError::Unauthorized)
        );
        assert_eq!(
            authorize("GET", Some("Bearer t"), "t").map_err(|e| e.status()),
            Err(405)
        );
    }

    #[test]
    fn during_a_rotation_both_handler_tokens_open_and_nothing_else() {
        assert!(authorize("POST", Some("Bearer new"), "new,old").is_ok());
        assert!(authorize("POST", Some("Bearer old"), "new,old").is_ok());
        assert_eq!(
            authorize("POST", Some("Bearer new,old"), "new,old"),
            Err(HandlerError::Unauthorized)
        );
        assert_eq!(
            authorize("POST", Some("Bearer "), " , "),
            Err(HandlerError::Unauthorized)
        );
    }

    fn body(event_type: &str) -> Vec<u8> {
        json!({"id": "e1", "seq": 1, "event_type": event_type, "aggregate_type": "expense",
               "aggregate_id": "42", "payload": {}, "idempotency_key": "k", "source": "odoo",
               "occurred_at": null, "created_at": "2026-11-26T05:00:00Z", "attempt": 1})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_valid_envelope_with_the_token_is_accepted() {
        let e = accept_envelope(
            "expense-handler",
            "POST",
            Some("Bearer t"),
            "t",
            &body("expense.paid"),
        )
        .unwrap();
        assert_eq!(e.attempt, 1);
    }

    #[test]
    fn token_method_shape_and_domain_are_checked() {
        let b = body("expense.paid");
        assert_eq!(
            accept_envelope("expense-handler", "POST", None, "t", &b)
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            accept_envelope("expense-handler", "GET", Some("Bearer t"), "t", &b)
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            accept_envelope("expense-handler", "POST", Some("Bearer t"), "t", b"{}")
                .unwrap_err()
                .status(),
            400
        );
        let wrong =
            accept_envelope("asset-handler", "POST", Some("Bearer t"), "t", &b).unwrap_err();
        assert_eq!(wrong.code(), "wrong_handler");
    }
}
