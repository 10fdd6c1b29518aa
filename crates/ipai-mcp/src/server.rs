//! MCP methods: version negotiation, `server/discover`, `initialize`, `ping`, `tools/list`,
//! `tools/call`, shaped for the protocol revision each request speaks.

use crate::jsonrpc::RpcError;
use crate::tools::{self, ToolDef};
use crate::{Database, DbError};
use serde_json::{json, Map, Value};

/// The current (stateless, per-request `_meta`) revision.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The handshake revisions served through `initialize`, newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// What a 2025 request without an `MCP-Protocol-Version` header is taken to speak
/// (2025-06-18 transports: "the server SHOULD assume protocol version 2025-03-26").
pub const VERSION_WITHOUT_HEADER: &str = "2025-03-26";

pub const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
pub const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
pub const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
pub const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

pub const SERVER_NAME: &str = "ipai-integration-bus";
pub const SERVER_TITLE: &str = "IPAI Integration Bus (read-only)";
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long clients may cache `server/discover` and `tools/list` (the tool set only
/// changes with a deployment).
pub const DISCOVER_TTL_MS: u64 = 3_600_000;
pub const TOOLS_TTL_MS: u64 = 300_000;

const INSTRUCTIONS: &str = "Read-only access to the IPAI integration bus: the audit log of every \
    event Odoo sent (expenses, asset bookings, finance tasks and BIR filings) and the state of \
    the delivery outbox. Use query_expense_events, query_asset_events and query_finance_events \
    for one domain with a summary, query_events to search across domains, get_event for one \
    event with its delivery state, outbox_health for the queue, list_alerts for the operator \
    alerts, reconcile_status for the proof that every event Odoo sent reached the bus, and \
    replay_preview for what a replay of dead or failed events would do (a dry run \
    that changes nothing). Nothing here can change data. Dates are UTC.";

/// Every version this endpoint serves, current first.
pub fn all_versions() -> Vec<&'static str> {
    std::iter::once(MODERN_VERSION)
        .chain(LEGACY_VERSIONS.iter().copied())
        .collect()
}

/// The protocol revision a request is served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: no handshake, `_meta` on every request, `resultType` on every result.
    Modern,
    /// A 2025 revision negotiated with `initialize`.
    Legacy(&'static str),
}

impl Era {
    pub fn version(self) -> &'static str {
        match self {
            Era::Modern => MODERN_VERSION,
            Era::Legacy(v) => v,
        }
    }

    /// `structuredContent`, `outputSchema` and `title` arrived in 2025-06-18.
    fn since_2025_06_18(self) -> bool {
        self.version() >= "2025-06-18"
    }
}

fn server_info(era: Era) -> Value {
    if era.since_2025_06_18() {
        json!({"name": SERVER_NAME, "title": SERVER_TITLE, "version": SERVER_VERSION})
    } else {
        json!({"name": SERVER_NAME, "version": SERVER_VERSION})
    }
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

/// Adds what every 2026-07-28 result carries: `resultType` and the server's identity.
fn modern(mut result: Value) -> Value {
    result["resultType"] = json!("complete");
    result["_meta"] = json!({ SERVER_INFO_KEY: server_info(Era::Modern) });
    result
}

/// `params` as an object (absent or null = empty); anything else is invalid params.
pub(crate) fn params_object(params: Option<&Value>) -> Result<Map<String, Value>, RpcError> {
    match params {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(RpcError::invalid_params("params must be an object")),
    }
}

/// Answers one request under `era`. `db` is used by `tools/call` only.
pub fn dispatch(
    era: Era,
    method: &str,
    params: Option<&Value>,
    db: &mut dyn Database,
) -> Result<Value, RpcError> {
    let params = params_object(params)?;
    match (era, method) {
        (Era::Modern, "server/discover") => Ok(modern(json!({
            "supportedVersions": [MODERN_VERSION],
            "capabilities": capabilities(),
            "serverInfo": server_info(Era::Modern),
            "instructions": INSTRUCTIONS,
            "ttlMs": DISCOVER_TTL_MS,
            "cacheScope": "private",
        }))),
        (Era::Legacy(_), "initialize") => Ok(initialize(&params)),
        (Era::Legacy(_), "ping") => Ok(json!({})),
        (_, "tools/list") => Ok(list_tools(era)),
        (_, "tools/call") => call_tool(era, &params, db),
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// Version negotiation (2025 lifecycle): the requested version when served, else the
/// newest served 2025 revision.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| LEGACY_VERSIONS.iter().copied().find(|v| *v == r))
        .unwrap_or(LEGACY_VERSIONS[0])
}

fn initialize(params: &Map<String, Value>) -> Value {
    let version = negotiate(params.get("protocolVersion").and_then(Value::as_str));
    let era = Era::Legacy(version);
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(era),
        "instructions": INSTRUCTIONS,
    })
}

fn tool_json(era: Era, t: &ToolDef) -> Value {
    let mut annotations = json!({
        "readOnlyHint": true,
        "destructiveHint": false,
        "idempotentHint": true,
        "openWorldHint": false,
    });
    let mut v = json!({
        "name": t.name,
        "description": t.description,
        "inputSchema": t.input_schema(),
    });
    if era.since_2025_06_18() {
        v["title"] = json!(t.title);
        v["outputSchema"] = t.output_schema();
    } else {
        annotations["title"] = json!(t.title);
    }
    v["annotations"] = annotations;
    v
}

fn list_tools(era: Era) -> Value {
    let tools: Vec<Value> = tools::tools().iter().map(|t| tool_json(era, t)).collect();
    match era {
        Era::Modern => modern(json!({
            "tools": tools,
            "ttlMs": TOOLS_TTL_MS,
            "cacheScope": "private",
        })),
        Era::Legacy(_) => json!({ "tools": tools }),
    }
}

fn tool_result(era: Era, text: String, structured: Value, is_error: bool) -> Value {
    let json_text = serde_json::to_string(&structured).unwrap_or_default();
    let mut v = json!({
        "content": [
            {"type": "text", "text": text},
            {"type": "text", "text": json_text},
        ],
        "isError": is_error,
    });
    if era.since_2025_06_18() {
        v["structuredContent"] = structured;
    }
    match era {
        Era::Modern => modern(v),
        Era::Legacy(_) => v,
    }
}

fn call_tool(
    era: Era,
    params: &Map<String, Value>,
    db: &mut dyn Database,
) -> Result<Value, RpcError> {
    let name = match params.get("name") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(RpcError::invalid_params("params.name must be a string")),
        None => return Err(RpcError::invalid_params("params.name is required")),
    };
    let Some(tool) = tools::find(name) else {
        let known: Vec<&str> = tools::tools().iter().map(|t| t.name).collect();
        return Err(RpcError::invalid_params(format!("Unknown tool: {name}"))
            .with_data(json!({"tool": name, "known_tools": known})));
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "params.arguments must be an object",
            ))
        }
    };
    // Input validation failures are tool execution errors (SEP-1303, 2025-11-25 on), so
    // the model sees them and can correct its call.
    let args = match tool.validate(&arguments) {
        Ok(a) => a,
        Err(problems) => {
            let text = format!(
                "Invalid arguments for {}: {}.",
                tool.name,
                problems.join("; ")
            );
            return Ok(tool_result(
                era,
                text,
                json!({"error": "invalid_arguments", "problems": problems}),
                true,
            ));
        }
    };
    match tool.fetch(&args, db) {
        Ok(row) => Ok(match tool.shape(&args, row) {
            Ok((text, structured)) => tool_result(era, text, structured, false),
            Err((text, structured)) => tool_result(era, text, structured, true),
        }),
        Err(DbError::Unavailable(_) | DbError::Misconfigured(_)) => Ok(tool_result(
            era,
            "The event database is unreachable right now; try again shortly.".into(),
            json!({"error": "database_unavailable"}),
            true,
        )),
        Err(DbError::Failed(_) | DbError::Busy(_)) => Ok(tool_result(
            era,
            "The query failed on the server (the error was logged there).".into(),
            json!({"error": "query_failed"}),
            true,
        )),
    }
}
