//! mcp: the read-only MCP server (`POST /mcp`, SPEC §8).
//!
//! A thin Spin adapter over `ipai_mcp`: it gathers the request, lets the library decide
//! everything (transport rules, token, JSON-RPC, protocol versions, tools, SQL), runs the
//! one query a tool call needs on a connection made with `db_url_readonly` (the
//! `integration_reader` role: SELECT only, read-only transactions), and writes the
//! response. The connection is opened only when a tool call needs the database.

use ipai_mcp::{Config, Database, DbError, HttpRequest, HttpResponse, Param, Query};
use ipai_spin::http::{self, BodyError};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::pg4::{self, Connection, DbValue, ParameterValue};
use spin_sdk::variables;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let response = serve(req).await;
    respond(out, response).await;
}

async fn serve(req: IncomingRequest) -> HttpResponse {
    let method = req.method().to_string();
    let headers = http::headers(&req);
    let config = Config {
        token: variables::get("mcp_token").ok(),
    };
    if let Some(refusal) = ipai_mcp::preflight(&method, &headers, &config) {
        return refusal;
    }
    let body = match http::read_body(req, ipai_mcp::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => return ipai_mcp::payload_too_large(),
        Err(BodyError::Read(e)) => {
            eprintln!("mcp: could not read the request body: {e}");
            return ipai_mcp::unreadable_body(&e);
        }
    };
    let request = HttpRequest {
        method,
        headers,
        body,
    };
    let mut db = ReadOnlyDb { conn: None };
    ipai_mcp::handle(&request, &config, &mut db)
}

async fn respond(out: ResponseOutparam, r: HttpResponse) {
    http::respond_with_headers(out, r.status, r.headers, r.body).await
}

/// The read-only connection, opened on first use.
struct ReadOnlyDb {
    conn: Option<Connection>,
}

impl ReadOnlyDb {
    fn connection(&mut self) -> Result<&Connection, DbError> {
        if self.conn.is_none() {
            let url = match variables::get("db_url_readonly") {
                Ok(u) if !u.trim().is_empty() => u,
                Ok(_) => {
                    eprintln!("mcp: variable db_url_readonly is empty");
                    return Err(DbError::Unavailable("db_url_readonly is empty".into()));
                }
                Err(e) => {
                    eprintln!("mcp: variable db_url_readonly: {e}");
                    return Err(DbError::Unavailable(format!("db_url_readonly: {e}")));
                }
            };
            let conn = Connection::open(&url).map_err(db_error)?;
            self.conn = Some(conn);
        }
        self.conn
            .as_ref()
            .ok_or_else(|| DbError::Unavailable("no connection".into()))
    }
}

fn db_error(e: pg4::PgError) -> DbError {
    match e {
        pg4::PgError::ConnectionFailed(msg) => {
            eprintln!("mcp: database connection failed: {msg}");
            DbError::Unavailable(msg)
        }
        other => {
            eprintln!("mcp: query failed: {other:?}");
            DbError::Failed(format!("{other:?}"))
        }
    }
}

fn parameter(p: &Param) -> ParameterValue {
    match p {
        Param::Text(s) => ParameterValue::Str(s.clone()),
        Param::Int(i) => ParameterValue::Int64(*i),
        Param::Json(v) => ParameterValue::Jsonb(serde_json::to_vec(v).unwrap_or_default()),
    }
}

impl Database for ReadOnlyDb {
    fn query(&mut self, q: &Query) -> Result<Option<serde_json::Value>, DbError> {
        let params: Vec<ParameterValue> = q.params.iter().map(parameter).collect();
        let rows = self
            .connection()?
            .query(&q.sql, &params)
            .map_err(db_error)?;
        match rows.rows.first().and_then(|r| r.first()) {
            None | Some(DbValue::DbNull) => Ok(None),
            Some(DbValue::Jsonb(bytes)) => serde_json::from_slice(bytes).map(Some).map_err(|e| {
                eprintln!("mcp: the database returned invalid JSON: {e}");
                DbError::Failed(e.to_string())
            }),
            Some(other) => {
                eprintln!("mcp: unexpected column value {other:?}");
                Err(DbError::Failed("unexpected column type".into()))
            }
        }
    }
}
