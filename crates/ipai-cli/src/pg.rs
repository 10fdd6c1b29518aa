//! `tokio_postgres` as `ipai_core::db::Database`: the shared Spin-free crates
//! (`ipai-replay`, `ipai-reconcile`) call SQL functions that answer one json(b) value; the
//! commands hand them this adapter.

use ipai_core::db::{Database, DbError, Param};
use serde_json::Value;

/// `tokio_postgres` as the blocking [`Database`] `ipai-replay` drives: one statement,
/// one jsonb value.
pub(crate) struct Blocking<'a>(pub(crate) &'a tokio_postgres::Client);

impl Database for Blocking<'_> {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        let client = self.0;
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(query_value(client, sql, params))
        })
    }
}

/// One statement's one json(b) value, its failure as the [`DbError`] the crate expects.
pub(crate) async fn query_value(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[Param],
) -> Result<Option<Value>, DbError> {
    let owned: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Param::Text(s) => Box::new(s.clone()),
                Param::Int(n) => Box::new(*n),
                Param::Json(v) => Box::new(v.to_string()),
            }
        })
        .collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = owned
        .iter()
        .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let row = client
        .query_opt(sql, &refs)
        .await
        .map_err(|e| match e.code() {
            Some(c) if c.code().starts_with("40") || c.code() == "55P03" || c.code() == "57014" => {
                DbError::Busy(e.to_string())
            }
            _ if e.is_closed() => DbError::Unavailable(e.to_string()),
            _ => DbError::Failed(
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
            ),
        })?;
    Ok(row.and_then(|r| r.get::<_, Option<Value>>(0)))
}
