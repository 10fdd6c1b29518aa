//! `POST /ops/retention` (bearer `ops_token`): purges done outbox rows, expired
//! signature digests and the handlers' ledgers in bounded batches. Its own file because
//! it is the only route that deletes, and its batching rules are its own.

use crate::data;
use crate::{
    misconfigured, value, ApiError, Config, Database, DbError, Request, Response,
    RETENTION_MAX_BATCHES,
};
use ipai_core::log;
use serde_json::{json, Value};

/// `POST /ops/retention`: the outbox purge, then the signatures, then the ledgers.
pub(crate) fn retention(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let Some(token) = cfg.ops_token.as_deref() else {
        return misconfigured("variable ops_token is not set");
    };
    if !ipai_core::auth::bearer_matches_any(req.header("authorization"), token) {
        return ApiError::unauthorized(crate::OPS_TOKEN_REFUSAL).into();
    }
    let params = [
        cfg.retention_days.to_string(),
        cfg.retention_batch.to_string(),
    ];
    let (mut deleted, mut batches, mut more) = (0i64, 0i64, false);
    while batches < RETENTION_MAX_BATCHES {
        let n = match value(db, data::PURGE_SQL, &params) {
            Ok(v) => v.as_i64().unwrap_or(0),
            Err(e) => {
                log::error(
                    "ops",
                    None,
                    format_args!("retention: {e} (deleted {deleted} rows before)"),
                );
                return purge_failed("purge failed", deleted, batches);
            }
        };
        batches += 1;
        deleted += n;
        more = n >= cfg.retention_batch;
        if !more {
            break;
        }
    }
    // Expired replay-protection digests: one bounded batch, best effort (ingest deletes
    // them too).
    if let Err(e) = value(db, data::PURGE_SIGNATURES_SQL, &["10000".to_string()]) {
        log::warn(
            "ops",
            None,
            format_args!("retention: expired signatures: {e}"),
        );
    }
    if deleted > 0 {
        log::info(
            "ops",
            None,
            format_args!(
                "retention deleted {deleted} done outbox rows older than {} days in {batches} batches",
                cfg.retention_days
            ),
        );
    }
    let ledgers = match purge_ledgers(cfg, db) {
        Ok(l) => l,
        Err(e) => {
            log::error("ops", None, format_args!("retention: ledgers: {e}"));
            return purge_failed("ledger purge failed", deleted, batches);
        }
    };
    Response::json(
        200,
        &json!({"deleted": deleted, "batches": batches, "more": more,
                "older_than_days": cfg.retention_days, "batch_size": cfg.retention_batch,
                "ledgers": ledgers}),
    )
}

/// 503 `database_unavailable` (retry after 5 s) whose body also says how far the purge
/// got: the [`ApiError`] body plus `deleted` and `batches`.
fn purge_failed(message: &str, deleted: i64, batches: i64) -> Response {
    let mut r = Response::from(ApiError::database_unavailable(message).retry_after(5));
    let mut body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    body["deleted"] = json!(deleted);
    body["batches"] = json!(batches);
    r.body = body.to_string().into_bytes();
    r
}

/// The handlers' ledgers (`integration.purge_ledgers`): batches until every ledger is
/// caught up or `RETENTION_MAX_BATCHES` is spent. Returns rows deleted per ledger,
/// `older_than_days` and `more` (a ledger had a full last batch).
fn purge_ledgers(cfg: &Config, db: &mut dyn Database) -> Result<Value, DbError> {
    let params = [
        cfg.ledger_window_days().to_string(),
        cfg.retention_batch.to_string(),
    ];
    let mut deleted = serde_json::Map::new();
    let mut more = false;
    for _ in 0..RETENTION_MAX_BATCHES {
        let counts = value(db, data::PURGE_LEDGERS_SQL, &params)?;
        let counts = counts.as_object().cloned().unwrap_or_default();
        more = false;
        for (ledger, n) in counts {
            let n = n.as_i64().unwrap_or(0);
            more |= n >= cfg.retention_batch;
            let total = deleted.get(&ledger).and_then(Value::as_i64).unwrap_or(0) + n;
            deleted.insert(ledger, json!(total));
        }
        if !more {
            break;
        }
    }
    let total: i64 = deleted.values().filter_map(Value::as_i64).sum();
    if total > 0 {
        log::info(
            "ops",
            None,
            format_args!(
                "retention deleted {total} ledger rows older than {} days: {}",
                cfg.ledger_window_days(),
                Value::Object(deleted.clone())
            ),
        );
    }
    Ok(json!({"deleted": deleted, "more": more, "older_than_days": cfg.ledger_window_days()}))
}
