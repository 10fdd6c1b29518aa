//! mcp: the read-only MCP server (`POST /mcp`, SPEC §8).
//!
//! A thin Spin adapter over `ipai_mcp`: it gathers the request, lets the library decide
//! everything (transport rules, token, JSON-RPC, protocol versions, tools, SQL), runs the
//! statements a tool call needs (one; `replay_preview` a few) on a connection made with `db_url_readonly` (the
//! `integration_reader` role: SELECT only, read-only transactions), and writes the
//! response. The connection is opened only when a tool call needs the database.

use ipai_mcp::{Config, HttpRequest, HttpResponse};
use ipai_spin::http::{self, BodyError};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
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
            ipai_core::log::warn("mcp", None, format!("could not read the request body: {e}"));
            return ipai_mcp::unreadable_body(&e);
        }
    };
    let request = HttpRequest {
        method,
        headers,
        body,
    };
    // The read-only connection (`integration_reader`), opened on the first tool call.
    let mut db = ipai_spin::pg::Pg::new("mcp", "db_url_readonly");
    ipai_mcp::handle(&request, &config, &mut db)
}

async fn respond(out: ResponseOutparam, r: HttpResponse) {
    http::respond_with_headers(out, r.status, r.headers, r.body).await
}
