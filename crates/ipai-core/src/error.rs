//! The bus's one HTTP error model (the Svix pattern): every refusal or failure any surface
//! answers — ingest, the dispatcher, the domain handlers, the approvals callback, ops and
//! MCP's HTTP layer — is an [`ApiError`]: a status, a stable machine code, a sentence, and
//! the headers the client needs (`Allow`, `Retry-After`), written as one
//! `{"error": code, "message": sentence}` body. The causes a component can name
//! ([`IngestError`] here, `HandlerError` in `crate::handler_request`) map to it in one `From` each,
//! so components never invent statuses of their own.

use serde_json::json;

/// An HTTP error answer: what every surface of the bus sends when it refuses or fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (4xx or 5xx).
    pub status: u16,
    /// The stable machine code clients may switch on (`"error"` in the body).
    pub code: &'static str,
    /// The sentence for a human (`"message"` in the body); never a secret.
    pub message: String,
    /// Extra response headers (`allow`, `retry-after`, `www-authenticate`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `Retry-After: seconds`: the client should send the same request again later.
    pub fn retry_after(self, seconds: u32) -> Self {
        self.with_header("retry-after", seconds.to_string())
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }

    /// 405 `method_not_allowed` with `Allow: allow`.
    pub fn method_not_allowed(message: impl Into<String>, allow: &str) -> Self {
        Self::new(405, "method_not_allowed", message).with_header("allow", allow)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", message)
    }

    /// 500 `misconfigured`: a variable is missing or unusable (the message names it).
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(500, "misconfigured", message)
    }

    /// 503 `database_unavailable`.
    pub fn database_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "database_unavailable", message)
    }

    /// Whether this is the server's fault (5xx): such answers are logged.
    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }

    /// The JSON body: `{"error": code, "message": sentence}`.
    pub fn body(&self) -> Vec<u8> {
        json!({"error": self.code, "message": self.message})
            .to_string()
            .into_bytes()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let mut api = ApiError::new(e.status(), e.code(), e.message());
        for (name, value) in e.headers() {
            api = api.with_header(name, value);
        }
        api
    }
}

/// A rejected or failed ingest request. The `Display` text is the human sentence sent to
/// the client; it never contains a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("method {0} is not allowed; use POST")]
    MethodNotAllowed(String),
    #[error("body is {0} bytes; the limit is {1} bytes")]
    PayloadTooLarge(usize, usize),
    #[error("content-type must be application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("header {0} is required")]
    MissingHeader(&'static str),
    #[error("x-idempotency-key must be 1-255 printable ASCII characters")]
    InvalidIdempotencyKey,
    #[error("request is not signed: {0} is missing")]
    MissingSignature(&'static str),
    #[error("timestamp header is not a whole number")]
    InvalidTimestamp,
    #[error("timestamp is {0} s away from the server clock; the tolerance is 300 s")]
    StaleTimestamp(i64),
    #[error("signature does not match any configured secret")]
    InvalidSignature,
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("field {0} is required")]
    MissingField(&'static str),
    #[error("field {0} must be {1}")]
    InvalidField(&'static str, &'static str),
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("event type {event_type} needs aggregate_type {expected:?}, got {got:?}")]
    AggregateTypeMismatch {
        event_type: String,
        expected: &'static str,
        got: String,
    },
    #[error("aggregate_id must be a non-empty string or an integer")]
    InvalidAggregateId,
    #[error("occurred_at must be an RFC 3339 date-time")]
    InvalidOccurredAt,
    /// A well-formed value the event store cannot hold (a NUL character, a date outside
    /// PostgreSQL's range): refused before the database call, naming the field.
    #[error("field {field} cannot be stored: {reason}")]
    UnstorableValue { field: String, reason: String },
    #[error("webhook-signature has {0} entries; at most {max} are accepted (one per active secret)", max = crate::signature::MAX_SIGNATURE_ENTRIES)]
    TooManySignatures(usize),
    #[error("Standard Webhooks signatures are not accepted: this bus has no standard_webhooks_secret; sign with x-ipai-signature")]
    UnsupportedSignatureScheme,
    #[error(
        "this signature was already used: accepted under another idempotency key, or by a request that stored nothing; sign each request anew"
    )]
    ReplayedSignature,
    #[error("idempotency key was already used with a different body (event {0})")]
    IdempotencyConflict(String),
    #[error("the event store is unreachable; retry later")]
    DatabaseUnavailable,
    /// The database answered, but the store could not finish in time: a lock held
    /// elsewhere (ingest waits at most 5 s for the aggregate's lock), a statement timeout,
    /// a serialization failure or deadlock. Nothing was stored; the same request can be
    /// retried as it is (see [`is_transient_sqlstate`]).
    #[error("the event store is busy (a lock or statement took too long); nothing was stored, retry later")]
    DatabaseBusy,
    #[error("server is misconfigured: {0}")]
    Misconfigured(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// The HTTP status of SPEC §3's outcome table.
    pub fn status(&self) -> u16 {
        use IngestError::*;
        match self {
            MethodNotAllowed(_) => 405,
            PayloadTooLarge(..) => 413,
            UnsupportedMediaType(_) => 415,
            MissingHeader(_) | InvalidIdempotencyKey => 400,
            MissingSignature(_) | InvalidTimestamp | StaleTimestamp(_) | InvalidSignature => 401,
            TooManySignatures(_) | UnsupportedSignatureScheme => 401,
            InvalidJson(_) | MissingField(_) | InvalidField(..) => 400,
            UnknownEventType(_) | AggregateTypeMismatch { .. } | InvalidAggregateId => 422,
            InvalidOccurredAt | UnstorableValue { .. } => 422,
            IdempotencyConflict(_) | ReplayedSignature => 409,
            DatabaseUnavailable | DatabaseBusy => 503,
            Misconfigured(_) | Internal(_) => 500,
        }
    }

    /// The stable machine code clients may switch on.
    pub fn code(&self) -> &'static str {
        use IngestError::*;
        match self {
            MethodNotAllowed(_) => "method_not_allowed",
            PayloadTooLarge(..) => "payload_too_large",
            UnsupportedMediaType(_) => "unsupported_media_type",
            MissingHeader(_) => "missing_header",
            InvalidIdempotencyKey => "invalid_idempotency_key",
            MissingSignature(_) => "missing_signature",
            InvalidTimestamp => "invalid_timestamp",
            StaleTimestamp(_) => "stale_timestamp",
            InvalidSignature => "invalid_signature",
            InvalidJson(_) => "invalid_json",
            MissingField(_) => "missing_field",
            InvalidField(..) => "invalid_field",
            UnknownEventType(_) => "unknown_event_type",
            AggregateTypeMismatch { .. } => "aggregate_type_mismatch",
            InvalidAggregateId => "invalid_aggregate_id",
            InvalidOccurredAt => "invalid_occurred_at",
            UnstorableValue { .. } => "unstorable_value",
            TooManySignatures(_) => "too_many_signatures",
            UnsupportedSignatureScheme => "unsupported_signature_scheme",
            ReplayedSignature => "replayed_signature",
            IdempotencyConflict(_) => "idempotency_conflict",
            DatabaseUnavailable => "database_unavailable",
            DatabaseBusy => "database_busy",
            Misconfigured(_) => "misconfigured",
            Internal(_) => "internal_error",
        }
    }

    /// Extra response headers: `Allow` for 405, `Retry-After` when the client should retry.
    pub fn headers(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            IngestError::MethodNotAllowed(_) => vec![("allow", "POST")],
            IngestError::DatabaseUnavailable
            | IngestError::DatabaseBusy
            | IngestError::Internal(_) => {
                vec![("retry-after", "5")]
            }
            _ => vec![],
        }
    }

    /// The sentence sent to the client. An internal error's detail (database error text,
    /// for one) goes to the log only: the client learns that nothing was stored.
    pub fn message(&self) -> String {
        match self {
            IngestError::Internal(_) => {
                "internal error: the event was not stored; retry later".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The JSON error body: `{"error": code, "message": sentence}` (see [`ApiError`]).
    pub fn body(&self) -> Vec<u8> {
        ApiError::from(self.clone()).body()
    }
}

/// A database failure while storing: unreachable → 503 `database_unavailable`, busy → 503
/// `database_busy` (nothing stored, retry as it is), anything else → 500 whose detail
/// goes to the log only.
impl From<crate::db::DbError> for IngestError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Misconfigured(m) => IngestError::Misconfigured(m),
            DbError::Unavailable(_) => IngestError::DatabaseUnavailable,
            DbError::Busy(_) => IngestError::DatabaseBusy,
            DbError::Failed(m) => IngestError::Internal(format!("database error: {m}")),
        }
    }
}

/// Whether a PostgreSQL error (its SQLSTATE) means "try the same statement again later"
/// rather than "this request cannot be stored": lock_not_available (55P03, ingest's 5 s
/// lock_timeout), query_canceled (57014, statement_timeout), serialization_failure
/// (40001), deadlock_detected (40P01), too_many_connections (53300),
/// cannot_connect_now (57P03) and admin_shutdown (57P01).
pub fn is_transient_sqlstate(code: &str) -> bool {
    matches!(
        code,
        "55P03" | "57014" | "40001" | "40P01" | "53300" | "57P03" | "57P01"
    )
}

/// The SQLSTATE in an error that reached the component as text. Spin 4.0.2 (and the local
/// host, which mimics it) returns an error met while a statement executes as
/// `QueryFailed(Text("Error::QueryFailed(QueryError::DbError(DbError { …, code: \"55P03\", … }))"))`:
/// the first `code: "XXXXX"` of that text.
pub fn sqlstate_in_text(text: &str) -> Option<&str> {
    text.match_indices("code: \"").find_map(|(i, m)| {
        let rest = text.get(i + m.len()..)?;
        let code = rest.get(..5)?;
        (code.bytes().all(|b| b.is_ascii_alphanumeric()) && rest[5..].starts_with('"'))
            .then_some(code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_outcome_table() {
        assert_eq!(IngestError::MethodNotAllowed("GET".into()).status(), 405);
        assert_eq!(IngestError::PayloadTooLarge(1, 0).status(), 413);
        assert_eq!(
            IngestError::UnsupportedMediaType("text/plain".into()).status(),
            415
        );
        assert_eq!(IngestError::InvalidSignature.status(), 401);
        assert_eq!(IngestError::StaleTimestamp(301).status(), 401);
        assert_eq!(IngestError::MissingField("payload").status(), 400);
        assert_eq!(IngestError::UnknownEventType("x.y".into()).status(), 422);
        assert_eq!(IngestError::IdempotencyConflict("id".into()).status(), 409);
        assert_eq!(IngestError::DatabaseUnavailable.status(), 503);
        assert_eq!(IngestError::DatabaseBusy.status(), 503);
    }

    #[test]
    fn a_busy_database_is_503_with_retry_after_and_transient_states_are_recognised() {
        let e = IngestError::DatabaseBusy;
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"], "database_busy");
        assert!(v["message"].as_str().unwrap().contains("retry later"));
        assert_eq!(e.headers(), vec![("retry-after", "5")]);
        for code in ["55P03", "57014", "40001", "40P01"] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        let spin_text =
            "Error::QueryFailed(QueryError::DbError(DbError { as-text: \"Error { kind: Db, \
            cause: Some(DbError { code: SqlState(E55P03) }) }\", severity: \"ERROR\", \
            code: \"55P03\", message: \"canceling statement due to lock timeout\" }))";
        assert_eq!(sqlstate_in_text(spin_text), Some("55P03"));
        assert_eq!(sqlstate_in_text("code: \"12\""), None);
        assert_eq!(sqlstate_in_text("no code here"), None);
        // A value the database refuses is not retried as it is.
        for code in ["22P05", "22021", "23505", "42501"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn error_body_has_code_and_message_and_retry_after_when_retriable() {
        let e = IngestError::DatabaseUnavailable;
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"], "database_unavailable");
        assert!(v["message"].as_str().unwrap().contains("retry"));
        assert_eq!(e.headers(), vec![("retry-after", "5")]);
    }

    #[test]
    fn an_internal_error_body_never_carries_its_detail() {
        let e = IngestError::Internal("database error: QueryFailed(\"invalid byte\")".into());
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"], "internal_error");
        assert!(
            !v["message"].as_str().unwrap().contains("QueryFailed"),
            "{v}"
        );
        assert!(
            e.to_string().contains("QueryFailed"),
            "the log keeps the detail"
        );
        assert_eq!(e.status(), 500);
    }

    #[test]
    fn every_ingest_error_becomes_one_api_error_with_its_status_code_and_headers() {
        let api = ApiError::from(IngestError::MethodNotAllowed("GET".into()));
        assert_eq!((api.status, api.code), (405, "method_not_allowed"));
        assert_eq!(api.headers, vec![("allow", "POST".to_string())]);
        let api = ApiError::from(IngestError::Internal("secret detail".into()));
        assert_eq!(api.headers, vec![("retry-after", "5".to_string())]);
        assert!(!api.message.contains("secret detail"));
        let v: serde_json::Value = serde_json::from_slice(&api.body()).unwrap();
        assert_eq!(
            v,
            json!({"error": "internal_error", "message": api.message})
        );
        assert!(api.is_server_error());
        assert_eq!(
            ApiError::unauthorized("x").retry_after(3).headers,
            vec![("retry-after", "3".to_string())]
        );
    }

    #[test]
    fn the_new_refusals_are_4xx() {
        let unstorable = IngestError::UnstorableValue {
            field: "payload.note".into(),
            reason: "it contains a NUL character".into(),
        };
        assert_eq!(
            (unstorable.status(), unstorable.code()),
            (422, "unstorable_value")
        );
        assert!(unstorable.to_string().contains("payload.note"));
        assert_eq!(IngestError::ReplayedSignature.status(), 409);
        assert_eq!(IngestError::TooManySignatures(9).status(), 401);
        assert_eq!(IngestError::UnsupportedSignatureScheme.status(), 401);
    }
}
