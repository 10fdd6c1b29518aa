//! The database as the Spin-free crates see it (`ipai-ops`, `ipai-mcp`): one statement
//! that returns one row with one column, parameters bound separately, and the four ways
//! a call fails. The Spin adapter is `ipai_spin::pg::Pg`; tests hand in closures or a
//! native client.

use serde_json::Value;

/// One bound parameter. Each placeholder is cast explicitly in the SQL text
/// (`$1::text`, `$2::int8`, `$3::text::jsonb`), so the database never guesses a type.
/// JSON is bound as its text (`Json(v)` → `v.to_string()`): a `jsonb` parameter would be
/// re-encoded by Spin's host with its numbers rounded.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Json(Value),
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Param::Text(s.to_string())
    }
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Param::Text(s)
    }
}

impl From<i64> for Param {
    fn from(n: i64) -> Self {
        Param::Int(n)
    }
}

/// Why a statement produced no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The variable naming the database is missing or empty (the text names it).
    Misconfigured(String),
    /// No connection: the server is down or unreachable, refused us, or TLS failed.
    Unavailable(String),
    /// The database answered but could not finish in time (a lock, a statement timeout,
    /// a serialization failure): the same call may be retried as it is.
    Busy(String),
    /// The statement failed or returned something unexpected (a bug, a missing grant).
    Failed(String),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Misconfigured(m) => write!(f, "{m}"),
            DbError::Unavailable(m) => write!(f, "database unreachable: {m}"),
            DbError::Busy(m) => write!(f, "database busy: {m}"),
            DbError::Failed(m) => write!(f, "query failed: {m}"),
        }
    }
}

/// Runs statements that return one row with one column (`jsonb`, `boolean`, an integer or
/// `text`): that value as JSON, `None` when there is no row or the value is NULL.
pub trait Database {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError>;
}

impl<F> Database for F
where
    F: FnMut(&str, &[Param]) -> Result<Option<Value>, DbError>,
{
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        self(sql, params)
    }
}
