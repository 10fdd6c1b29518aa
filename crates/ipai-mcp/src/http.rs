//! The Streamable HTTP transport, stateless: one POST in, one JSON response (or `202`) out.
//! No `Mcp-Session-Id`, no SSE, no GET stream.
//!
//! Order of checks: method (405) → configuration (500) → bearer token (401) → `Origin`
//! (403) → `Content-Type` (415) → `Accept` (406) → body size (413) → JSON (-32700) →
//! protocol era (header/body) → JSON-RPC shape → the revision's own rules.

use crate::jsonrpc::{self, Message, RpcError};
use crate::server::{self, Era};
use crate::Database;
use base64::Engine as _;
use ipai_core::auth::bearer_matches;
use ipai_core::headers::header;
use serde_json::{json, Value};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Server configuration (from Spin variables).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The `mcp_token` variable: one bearer token, or several separated by commas
    /// (rotation). `None` or blank: the server refuses every request with a 500.
    pub token: Option<String>,
}

impl Config {
    fn tokens(&self) -> Vec<&str> {
        ipai_core::auth::token_list(self.token.as_deref().unwrap_or(""))
    }
}

/// A request as the component received it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The response to send.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl From<ipai_core::ApiError> for HttpResponse {
    fn from(e: ipai_core::ApiError) -> Self {
        let mut response = Self {
            status: e.status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: e.body(),
        };
        for (name, value) in &e.headers {
            response.headers.push((name.to_string(), value.clone()));
        }
        response
    }
}

impl HttpResponse {
    fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    /// An HTTP-level refusal before any JSON-RPC: `{"error": code, "message": …}`.
    fn refusal(status: u16, code: &'static str, message: &str) -> Self {
        Self::from(ipai_core::ApiError::new(status, code, message))
    }

    fn accepted() -> Self {
        Self {
            status: 202,
            headers: vec![],
            body: vec![],
        }
    }

    fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A header of this response (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn header_count(headers: &[(String, String)], name: &str) -> usize {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .count()
}

const REALM: &str = "Bearer realm=\"ipai-mcp\"";

/// The checks that need no body: method, configuration, token, origin, content type.
/// `Some(response)` means refuse with it; the component calls this before reading the body.
pub fn preflight(method: &str, headers: &[(String, String)], cfg: &Config) -> Option<HttpResponse> {
    if !method.eq_ignore_ascii_case("POST") {
        return Some(
            HttpResponse::refusal(
                405,
                "method_not_allowed",
                "this MCP endpoint is stateless: send every JSON-RPC message as a POST (no GET stream, no sessions)",
            )
            .with_header("allow", "POST"),
        );
    }
    let tokens = cfg.tokens();
    if tokens.is_empty() {
        return Some(HttpResponse::refusal(
            500,
            "misconfigured",
            "the server's mcp_token variable is not set",
        ));
    }
    let authorization = header(headers, "authorization");
    let is_bearer = authorization
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if !is_bearer {
        return Some(
            HttpResponse::refusal(
                401,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer <mcp_token>)",
            )
            .with_header("www-authenticate", REALM),
        );
    }
    // Compare with every configured token, without stopping early.
    let valid = tokens
        .iter()
        .fold(false, |acc, good| acc | bearer_matches(authorization, good));
    if !valid {
        return Some(
            HttpResponse::refusal(401, "unauthorized", "the bearer token is not valid")
                .with_header(
                    "www-authenticate",
                    &format!("{REALM}, error=\"invalid_token\""),
                ),
        );
    }
    if let Some(origin) = header(headers, "origin") {
        if !origin_allowed(origin, header(headers, "host")) {
            return Some(HttpResponse::refusal(
                403,
                "forbidden_origin",
                "cross-origin requests are not accepted (Origin must match Host)",
            ));
        }
    }
    let content_type = header(headers, "content-type").unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Some(protocol_error(
            415,
            &Value::Null,
            &RpcError::invalid_request("Content-Type must be application/json"),
        ));
    }
    if let Some(accept) = header(headers, "accept") {
        let ok = accept.split(',').any(|item| {
            let m = item.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case("application/json")
                || m == "*/*"
                || m.eq_ignore_ascii_case("application/*")
        });
        if !ok {
            return Some(protocol_error(
                406,
                &Value::Null,
                &RpcError::invalid_request("Accept must allow application/json"),
            ));
        }
    }
    None
}

/// DNS-rebinding protection (Streamable HTTP "Security"): a browser `Origin` must name
/// the host the request was sent to. Non-browser clients send no `Origin`.
fn origin_allowed(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .trim_end_matches('/');
    !authority.is_empty() && authority.eq_ignore_ascii_case(host.trim())
}

fn protocol_error(status: u16, id: &Value, e: &RpcError) -> HttpResponse {
    HttpResponse::json(status, &jsonrpc::error_reply(id, e))
}

/// HTTP status of a JSON-RPC error reply. 2026-07-28 maps codes to statuses (404 for an
/// unknown method, 400 for malformed input); the 2025 revisions answer in-protocol errors
/// with 200 and only unreadable input with 400.
fn error_status(era: Era, code: i64) -> u16 {
    use jsonrpc::*;
    match (era, code) {
        (_, PARSE_ERROR | INVALID_REQUEST | UNSUPPORTED_PROTOCOL_VERSION) => 400,
        (Era::Modern, INVALID_PARAMS | HEADER_MISMATCH | MISSING_REQUIRED_CLIENT_CAPABILITY) => 400,
        (Era::Modern, METHOD_NOT_FOUND) => 404,
        _ => 200,
    }
}

fn reply(era: Era, id: &Value, outcome: Result<Value, RpcError>) -> HttpResponse {
    match outcome {
        Ok(result) => HttpResponse::json(200, &jsonrpc::result_reply(id, result)),
        Err(e) => protocol_error(error_status(era, e.code), id, &e),
    }
}

fn unsupported_version(requested: &str) -> RpcError {
    RpcError::new(
        jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "Unsupported protocol version {requested:?}; this server speaks {}",
            server::all_versions().join(", ")
        ),
    )
    .with_data(json!({"supported": server::all_versions(), "requested": requested}))
}

/// The revision a body is served under, from the `MCP-Protocol-Version` header, else the
/// body: a 2026-07-28 `_meta` envelope (or `server/discover`) means modern; anything else
/// is a 2025 client that sent no header (2025-03-26, or `initialize`).
fn era_of(headers: &[(String, String)], body: &Value) -> Result<Era, String> {
    if let Some(v) = header(headers, "mcp-protocol-version") {
        let v = v.trim();
        if v == server::MODERN_VERSION {
            return Ok(Era::Modern);
        }
        return server::LEGACY_VERSIONS
            .iter()
            .find(|l| **l == v)
            .map(|l| Era::Legacy(l))
            .ok_or_else(|| v.to_string());
    }
    let modern_meta = body
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(server::PROTOCOL_VERSION_KEY))
        .is_some();
    let discover = body.get("method").and_then(Value::as_str) == Some("server/discover");
    if modern_meta || discover {
        Ok(Era::Modern)
    } else {
        Ok(Era::Legacy(server::VERSION_WITHOUT_HEADER))
    }
}

/// The `413` for a body over [`MAX_BODY_BYTES`] (for callers that stop reading early).
pub fn payload_too_large() -> HttpResponse {
    protocol_error(
        413,
        &Value::Null,
        &RpcError::invalid_request(format!("the body exceeds {MAX_BODY_BYTES} bytes")),
    )
}

/// The `400` for a body that could not be read (the connection broke mid-body): nothing
/// is parsed from a partial body.
pub fn unreadable_body(detail: &str) -> HttpResponse {
    protocol_error(
        400,
        &Value::Null,
        &RpcError::invalid_request(format!("could not read the request body: {detail}")),
    )
}

/// Handles one HTTP request to the MCP endpoint.
pub fn handle(req: &HttpRequest, cfg: &Config, db: &mut dyn Database) -> HttpResponse {
    if let Some(refusal) = preflight(&req.method, &req.headers, cfg) {
        return refusal;
    }
    if req.body.len() > MAX_BODY_BYTES {
        return payload_too_large();
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return protocol_error(
                400,
                &Value::Null,
                &RpcError::new(jsonrpc::PARSE_ERROR, format!("Parse error: {e}")),
            )
        }
    };
    let era = match era_of(&req.headers, &body) {
        Ok(era) => era,
        Err(requested) => {
            let id = body.get("id").cloned().unwrap_or(Value::Null);
            return protocol_error(400, &id, &unsupported_version(&requested));
        }
    };
    match (&body, era) {
        (Value::Array(items), Era::Legacy("2025-03-26")) => batch(items, db),
        (Value::Array(_), _) => protocol_error(
            400,
            &Value::Null,
            &RpcError::invalid_request(format!(
                "JSON-RPC batches are not part of protocol version {}",
                era.version()
            )),
        ),
        (_, Era::Modern) => modern(&req.headers, &body, db),
        (_, Era::Legacy(_)) => legacy(era, &body, db),
    }
}

/// Most messages in one 2025-03-26 batch: each request may run a query, so one POST
/// costs at most this many.
pub const MAX_BATCH_ITEMS: usize = 16;

/// A 2025-03-26 batch: a reply per request, in order; `202` when it held none.
fn batch(items: &[Value], db: &mut dyn Database) -> HttpResponse {
    if items.is_empty() {
        return protocol_error(
            400,
            &Value::Null,
            &RpcError::invalid_request("an empty batch is not a valid request"),
        );
    }
    if items.len() > MAX_BATCH_ITEMS {
        return protocol_error(
            400,
            &Value::Null,
            &RpcError::invalid_request(format!(
                "a batch holds {} messages; at most {MAX_BATCH_ITEMS} are accepted",
                items.len()
            )),
        );
    }
    let era = Era::Legacy("2025-03-26");
    let mut replies = Vec::new();
    for item in items {
        match jsonrpc::classify(item) {
            Message::Request { id, method, params } => {
                let outcome = if method == "initialize" {
                    Err(RpcError::invalid_request(
                        "initialize must not be part of a batch",
                    ))
                } else {
                    server::dispatch(era, &method, params.as_ref(), db)
                };
                replies.push(match outcome {
                    Ok(r) => jsonrpc::result_reply(&id, r),
                    Err(e) => jsonrpc::error_reply(&id, &e),
                });
            }
            Message::Notification { .. } | Message::Response => {}
            Message::Invalid { id, error } => replies.push(jsonrpc::error_reply(&id, &error)),
        }
    }
    if replies.is_empty() {
        HttpResponse::accepted()
    } else {
        HttpResponse::json(200, &Value::Array(replies))
    }
}

/// A 2025-revision message.
fn legacy(era: Era, body: &Value, db: &mut dyn Database) -> HttpResponse {
    match jsonrpc::classify(body) {
        Message::Request { id, method, params } => {
            let outcome = server::dispatch(era, &method, params.as_ref(), db);
            reply(era, &id, outcome)
        }
        Message::Notification { .. } | Message::Response => HttpResponse::accepted(),
        Message::Invalid { id, error } => protocol_error(400, &id, &error),
    }
}

/// Decodes an `Mcp-Name`-style header value (`=?base64?…?=` sentinel or plain).
fn decode_header_value(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(v.to_string()),
    }
}

/// The 2026-07-28 checks on a request, in the order the specification lists them:
/// the `_meta` envelope (-32602), the mirrored headers (-32020), the version (-32022).
fn modern_checks(
    headers: &[(String, String)],
    method: &str,
    params: Option<&Value>,
) -> Result<(), RpcError> {
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "params._meta must be an object carrying {} and {}",
                server::PROTOCOL_VERSION_KEY,
                server::CLIENT_CAPABILITIES_KEY
            ))
        })?;
    let missing: Vec<&str> = [
        server::PROTOCOL_VERSION_KEY,
        server::CLIENT_CAPABILITIES_KEY,
    ]
    .into_iter()
    .filter(|k| !meta.contains_key(*k))
    .collect();
    if !missing.is_empty() {
        return Err(RpcError::invalid_params(format!(
            "params._meta is missing {}",
            missing.join(" and ")
        )));
    }
    for name in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        if header_count(headers, name) > 1 {
            return Err(RpcError::new(
                jsonrpc::HEADER_MISMATCH,
                format!("the {name} header appears more than once"),
            ));
        }
    }
    let version = meta.get(server::PROTOCOL_VERSION_KEY);
    let header_version = header(headers, "mcp-protocol-version").map(str::trim);
    if header_version.is_none() || header_version != version.and_then(Value::as_str) {
        return Err(RpcError::new(
            jsonrpc::HEADER_MISMATCH,
            "the MCP-Protocol-Version header is missing or does not match params._meta",
        ));
    }
    if header(headers, "mcp-method").map(str::trim) != Some(method) {
        return Err(RpcError::new(
            jsonrpc::HEADER_MISMATCH,
            "the Mcp-Method header is missing or does not match the request method",
        ));
    }
    if method == "tools/call" {
        if let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) {
            let got = header(headers, "mcp-name").and_then(|v| decode_header_value(v.trim()));
            if got.as_deref() != Some(name) {
                return Err(RpcError::new(
                    jsonrpc::HEADER_MISMATCH,
                    "the Mcp-Name header is missing or does not match params.name",
                ));
            }
        }
    }
    match version {
        Some(Value::String(v)) if v == server::MODERN_VERSION => Ok(()),
        Some(Value::String(v)) => Err(unsupported_version(v)),
        _ => Err(RpcError::invalid_params(format!(
            "{} must be a string",
            server::PROTOCOL_VERSION_KEY
        ))),
    }
}

/// A 2026-07-28 message.
fn modern(headers: &[(String, String)], body: &Value, db: &mut dyn Database) -> HttpResponse {
    let era = Era::Modern;
    match jsonrpc::classify(body) {
        Message::Request { id, method, params } => {
            let outcome = modern_checks(headers, &method, params.as_ref())
                .and_then(|()| server::dispatch(era, &method, params.as_ref(), db));
            reply(era, &id, outcome)
        }
        // No client-to-server notification is defined at 2026-07-28; accept and drop.
        Message::Notification { .. } => HttpResponse::accepted(),
        Message::Response => protocol_error(
            400,
            &Value::Null,
            &RpcError::invalid_request(
                "the body must be a single JSON-RPC request or notification",
            ),
        ),
        Message::Invalid { id, error } => protocol_error(400, &id, &error),
    }
}
