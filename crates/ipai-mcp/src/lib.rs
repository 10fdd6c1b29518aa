//! The read-only MCP server of the IPAI bus, without Spin (SPEC §8).
//!
//! Everything the `mcp` component decides lives here and is unit-tested natively: the
//! Streamable HTTP rules (stateless POST, bearer token, 405 for GET), JSON-RPC 2.0
//! framing and errors, protocol version handling (2026-07-28 with per-request `_meta`,
//! `server/discover` and `resultType`; 2025-11-25, 2025-06-18 and 2025-03-26 through
//! `initialize`), the tools with their JSON Schemas, argument validation and limits, and
//! the SQL each tool runs — as data ([`Query`]): static text with every filter value a
//! bound parameter. The component only moves bytes and runs the query it is handed
//! through [`Database`], on a connection made with the read-only database role.

pub mod alerts_tool;
pub mod args;
pub mod http;
pub mod jsonrpc;
pub mod reconcile_tool;
pub mod replay_tool;
pub mod server;
pub mod sql;
pub mod tools;

pub use http::{
    handle, payload_too_large, preflight, unreadable_body, Config, HttpRequest, HttpResponse,
    MAX_BODY_BYTES,
};
pub use sql::{Param, Query};

pub use ipai_core::db::{Database, DbError};

/// Runs a tool's [`Query`] on the database: the first column of its one row as JSON.
pub fn run_query(db: &mut dyn Database, q: &Query) -> Result<Option<serde_json::Value>, DbError> {
    db.query_value(&q.sql, &q.params)
}

#[cfg(test)]
mod tests;
