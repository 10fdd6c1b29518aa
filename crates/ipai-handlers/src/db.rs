//! The handlers' database calls over Spin's pg4: dashboard statements, the deliveries
//! ledger, id_map and the OAuth token cache. Every `query` returns exactly one row.

use ipai_core::db::DbError;
use ipai_core::handler_request::HandlerError;
use ipai_effects::approval;
use ipai_effects::dashboard::Statement;
use ipai_effects::deliveries::{self, Claim};
use ipai_spin::pg::first_row;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError};

/// A database failure: the event is retried later.
pub fn db_error(e: PgError) -> HandlerError {
    database(ipai_spin::pg::db_error(e))
}

/// A database failure (or a missing `db_url`, which an operator must fix).
fn database(e: DbError) -> HandlerError {
    match e {
        DbError::Misconfigured(m) => HandlerError::Misconfigured(m),
        other => HandlerError::Upstream(format!("database: {other}")),
    }
}

fn text(s: &str) -> ParameterValue {
    ParameterValue::Str(s.to_string())
}

fn opt(s: &Option<String>) -> ParameterValue {
    match s {
        Some(v) => ParameterValue::Str(v.clone()),
        None => ParameterValue::DbNull,
    }
}

/// Opens the connection named by `db_url`.
pub fn open() -> Result<Connection, HandlerError> {
    ipai_spin::pg::open("db_url").map_err(database)
}

/// Runs a dashboard statement.
pub fn run(conn: &Connection, st: &Statement) -> Result<(), HandlerError> {
    let params: Vec<ParameterValue> = st.params.iter().map(opt).collect();
    conn.execute(st.sql, &params).map(|_| ()).map_err(db_error)
}

/// Claims side effect `(event_id, channel, target)` (see `claim_delivery`).
pub fn claim(
    conn: &Connection,
    event_id: &str,
    channel: &str,
    target: &str,
) -> Result<Claim, HandlerError> {
    let rows = conn
        .query(
            deliveries::CLAIM_SQL,
            &[
                text(event_id),
                text(channel),
                text(target),
                ParameterValue::Int32(deliveries::LEASE_S),
            ],
        )
        .map_err(db_error)?;
    match first_row(&rows) {
        Some([DbValue::Str(decision), DbValue::Str(detail)]) => {
            Claim::parse(decision, detail).map_err(HandlerError::Upstream)
        }
        other => Err(HandlerError::Upstream(format!(
            "claim_delivery returned {other:?}"
        ))),
    }
}

/// The event that sends the report message `key` (see `claim_report_message`).
pub fn claim_report_message(
    conn: &Connection,
    key: &str,
    event_id: &str,
) -> Result<String, HandlerError> {
    let rows = conn
        .query(
            deliveries::CLAIM_REPORT_MESSAGE_SQL,
            &[text(key), text(event_id)],
        )
        .map_err(db_error)?;
    match first_row(&rows) {
        Some([DbValue::Str(owner)]) => Ok(owner.clone()),
        other => Err(HandlerError::Upstream(format!(
            "claim_report_message returned {other:?}"
        ))),
    }
}

/// Claims the delivery `(event_id, channel, target)` an event looks up for, before the
/// look-up, together with the report message `key` when the event may own one (one round
/// trip, see `claim_report_message_and_delivery`): (the event that sends the report's
/// message, `None` without a key; the claim, `None` when another event owns the message
/// and nothing was claimed). A `Claim::Send` must be performed or [`release`]d.
pub fn claim_before_look_up(
    conn: &Connection,
    key: Option<&str>,
    event_id: &str,
    channel: &str,
    target: &str,
) -> Result<(Option<String>, Option<Claim>), HandlerError> {
    let key = match key {
        Some(k) => text(k),
        None => ParameterValue::DbNull,
    };
    let rows = conn
        .query(
            deliveries::CLAIM_BEFORE_LOOKUP_SQL,
            &[
                key,
                text(event_id),
                text(channel),
                text(target),
                ParameterValue::Int32(deliveries::LEASE_S),
            ],
        )
        .map_err(db_error)?;
    match first_row(&rows) {
        Some([DbValue::Str(owner), DbValue::Str(decision), DbValue::Str(detail)]) => {
            let owner = Some(owner.clone()).filter(|o| !o.is_empty());
            let claim = match decision.as_str() {
                "" => None,
                d => Some(Claim::parse(d, detail).map_err(HandlerError::Upstream)?),
            };
            Ok((owner, claim))
        }
        other => Err(HandlerError::Upstream(format!(
            "claim_report_message_and_delivery returned {other:?}"
        ))),
    }
}

/// Hands back a claim this attempt will not perform (see `release_delivery`): the next
/// attempt may claim it at once.
pub fn release(
    conn: &Connection,
    event_id: &str,
    channel: &str,
    target: &str,
) -> Result<(), HandlerError> {
    conn.query(
        deliveries::RELEASE_SQL,
        &[text(event_id), text(channel), text(target)],
    )
    .map(|_| ())
    .map_err(db_error)
}

/// The key of a report's newest approval request, `""` when it has none (see
/// `ipai_effects::approval::NEWEST_REQUEST_SQL`).
pub fn newest_approval_request(conn: &Connection, sheet_id: i64) -> Result<String, HandlerError> {
    let rows = conn
        .query(
            approval::NEWEST_REQUEST_SQL,
            &[text(&approval::requests_of_sheet(sheet_id))],
        )
        .map_err(db_error)?;
    match first_row(&rows) {
        Some([DbValue::Str(key)]) => Ok(key.clone()),
        other => Err(HandlerError::Upstream(format!(
            "newest approval request returned {other:?}"
        ))),
    }
}

/// Records the outcome of a claimed side effect.
pub fn finish(
    conn: &Connection,
    event_id: &str,
    channel: &str,
    target: &str,
    status: &str,
    code: Option<u16>,
    detail: &str,
) -> Result<(), HandlerError> {
    conn.query(
        deliveries::FINISH_SQL,
        &[
            text(event_id),
            text(channel),
            text(target),
            text(status),
            match code {
                Some(c) => ParameterValue::Int32(c as i32),
                None => ParameterValue::DbNull,
            },
            text(detail),
        ],
    )
    .map(|_| ())
    .map_err(db_error)
}

/// Links an Odoo record to an external object.
pub fn map_id(
    conn: &Connection,
    model: &str,
    odoo_id: &str,
    system: &str,
    external_id: &str,
    event_id: &str,
) -> Result<(), HandlerError> {
    conn.execute(
        deliveries::ID_MAP_SQL,
        &[
            text(model),
            text(odoo_id),
            text(system),
            text(external_id),
            text(event_id),
        ],
    )
    .map(|_| ())
    .map_err(db_error)
}

/// A cached token valid for at least `margin_s` more seconds.
pub fn cached_token(
    conn: &Connection,
    name: &str,
    margin_s: i32,
) -> Result<Option<String>, HandlerError> {
    let rows = conn
        .query(
            deliveries::TOKEN_GET_SQL,
            &[text(name), ParameterValue::Int32(margin_s)],
        )
        .map_err(db_error)?;
    Ok(match first_row(&rows) {
        Some([DbValue::Str(t)]) if !t.is_empty() => Some(t.clone()),
        _ => None,
    })
}

/// Caches a token for `expires_in` seconds.
pub fn store_token(
    conn: &Connection,
    name: &str,
    token: &str,
    expires_in: i64,
) -> Result<(), HandlerError> {
    conn.execute(
        deliveries::TOKEN_PUT_SQL,
        &[text(name), text(token), ParameterValue::Int64(expires_in)],
    )
    .map(|_| ())
    .map_err(db_error)
}
