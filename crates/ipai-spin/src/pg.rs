//! The one way a component talks to PostgreSQL through Spin's `spin:postgres@4.0.0`:
//! open a connection from a variable, map `PgError` to [`DbError`], and decode the one
//! row every statement of the bus returns. Two rules of Spin 4.0.0–4.0.2 hold here:
//!
//! * a `query` whose result is empty never completes (spinframework/spin#3671): every
//!   statement is written to return exactly one row — an aggregate (`jsonb_agg`,
//!   `count`), a scalar function call, or `coalesce` over a sub-select;
//! * a `timestamptz` column cannot be read: timestamps leave the database as text
//!   (`::text`, `to_char`) or as ages in seconds;
//! * a `jsonb` parameter or column is re-encoded by the host through a `serde_json::Value`
//!   built without `arbitrary_precision`, which rounds every number beyond 64 bits or 17
//!   significant digits (and refuses `1e400`): JSON crosses as text, cast in SQL
//!   (`$n::text::jsonb`; [`Pg`] reads every value as `to_jsonb(…)::text`), so numbers
//!   arrive exactly as stored (SPEC §3).
//!
//! An error met while the statement runs comes back as text holding the database error;
//! its SQLSTATE decides whether the call is [`DbError::Busy`] (retry as it is).

use crate::vars;
use ipai_core::db::{Database, DbError, Param};
use ipai_core::error::{is_transient_sqlstate, sqlstate_in_text};
use serde_json::Value;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError, RowSet};

/// Opens a connection to the database the variable `variable` names.
pub fn open(variable: &str) -> Result<Connection, DbError> {
    let url = vars::required(variable).map_err(DbError::Misconfigured)?;
    open_url(&url)
}

/// Opens a connection to `url`.
pub fn open_url(url: &str) -> Result<Connection, DbError> {
    Connection::open(url).map_err(|e| match e {
        PgError::ConnectionFailed(m) => DbError::Unavailable(m),
        other => DbError::Unavailable(format!("{other:?}")),
    })
}

/// What a failed call means: no connection, busy (a lock or statement timeout, a
/// serialization failure — retry as it is), or failed.
pub fn db_error(e: PgError) -> DbError {
    match e {
        PgError::ConnectionFailed(m) => DbError::Unavailable(m),
        PgError::QueryFailed(QueryError::DbError(d)) if is_transient_sqlstate(&d.code) => {
            DbError::Busy(format!("{} ({})", d.message, d.code))
        }
        PgError::QueryFailed(QueryError::Text(t))
            if sqlstate_in_text(&t).is_some_and(is_transient_sqlstate) =>
        {
            DbError::Busy(t)
        }
        other => DbError::Failed(format!("{other:?}")),
    }
}

/// The first row of a result (every statement of the bus returns one).
pub fn first_row(rows: &RowSet) -> Option<&[DbValue]> {
    rows.rows.first().map(|r| r.as_slice())
}

/// The first column of the first row.
pub fn first_value(rows: &RowSet) -> Option<&DbValue> {
    first_row(rows).and_then(|r| r.first())
}

/// A bound parameter as Spin takes it: JSON as its text (the placeholder is
/// `$n::text::jsonb`), so no number is rounded on the way in.
pub fn parameter(p: &Param) -> ParameterValue {
    match p {
        Param::Text(s) => ParameterValue::Str(s.clone()),
        Param::Int(i) => ParameterValue::Int64(*i),
        Param::Json(v) => ParameterValue::Str(v.to_string()),
    }
}

/// `sql` (one statement returning one row with one column) rewritten to return that value
/// as the text of its JSON (`to_jsonb`: jsonb as itself, text as a string, numbers and
/// booleans as themselves), so a jsonb value leaves the database exactly; NULL (or no row)
/// stays NULL, and the statement always returns one row.
pub fn json_text_sql(sql: &str) -> String {
    format!("SELECT to_jsonb(({sql}))::text")
}

/// A [`Database`] over the connection a variable names, opened on the first statement
/// (a request that needs no data never connects). Each failure is logged once: here under
/// `component` ([`Pg::new`]), or by a caller that logs it with its own context
/// ([`Pg::logged_by_caller`]).
pub struct Pg {
    /// Where failures are logged here; `None`: the caller logs them.
    component: Option<&'static str>,
    variable: &'static str,
    conn: Option<Connection>,
}

impl Pg {
    /// Logs each failed statement under `component` (for callers that only turn errors
    /// into answers: MCP).
    pub fn new(component: &'static str, variable: &'static str) -> Self {
        Self {
            component: Some(component),
            variable,
            conn: None,
        }
    }

    /// Leaves logging to the caller, which logs every failure with its context (ops'
    /// routes: `/metrics: …`, `/health: …`), so an outage is one line per failure, not two.
    pub fn logged_by_caller(variable: &'static str) -> Self {
        Self {
            component: None,
            variable,
            conn: None,
        }
    }

    fn connection(&mut self) -> Result<&Connection, DbError> {
        if self.conn.is_none() {
            self.conn = Some(open(self.variable)?);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| DbError::Unavailable("no connection".into()))
    }
}

impl Database for Pg {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        let params: Vec<ParameterValue> = params.iter().map(parameter).collect();
        let sql = json_text_sql(sql);
        let result = self
            .connection()
            .and_then(|conn| conn.query(&sql, &params).map_err(db_error))
            .and_then(|rows| match first_value(&rows) {
                None | Some(DbValue::DbNull) => Ok(None),
                Some(DbValue::Str(text)) => serde_json::from_str(text).map(Some).map_err(|e| {
                    DbError::Failed(format!("the database returned invalid JSON: {e}"))
                }),
                Some(other) => Err(DbError::Failed(format!(
                    "unexpected column value {other:?}"
                ))),
            });
        if let (Err(e), Some(component)) = (&result, self.component) {
            ipai_core::log::error(component, None, e);
        }
        result
    }
}
