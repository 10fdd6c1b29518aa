//! JSON-RPC 2.0 framing: classifying one decoded message, error codes, replies.

use serde_json::{json, Map, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available (in this protocol revision).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (also: unknown tool, missing `_meta` envelope).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: HTTP headers disagree with the body, or a required one is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: a capability the request needs was not declared by the client.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28: the requested protocol version is not served here.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }

    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
            .with_data(json!({ "method": method }))
    }

    pub fn to_json(&self) -> Value {
        let mut e = Map::new();
        e.insert("code".into(), json!(self.code));
        e.insert("message".into(), json!(self.message));
        if let Some(d) = &self.data {
            e.insert("data".into(), d.clone());
        }
        Value::Object(e)
    }
}

/// One decoded JSON-RPC message as the server sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request: has a valid `id` and a `method`.
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// A notification: a `method` and no `id` member.
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response (`result` or `error`, no `method`): clients may post these in the
    /// 2025 revisions; this server never sends requests, so it only acknowledges them.
    Response,
    /// Not a valid message; `id` is the request id when it could be read.
    Invalid { id: Value, error: RpcError },
}

/// Whether `id` is a valid MCP request id: a string or an integer (never null).
fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// Classifies one decoded JSON value (an element of a batch, or a whole body).
pub fn classify(v: &Value) -> Message {
    let Some(obj) = v.as_object() else {
        return Message::Invalid {
            id: Value::Null,
            error: RpcError::invalid_request("a JSON-RPC message must be a JSON object"),
        };
    };
    let id = obj.get("id");
    let readable_id = id.filter(|i| valid_id(i)).cloned().unwrap_or(Value::Null);
    if obj.get("jsonrpc") != Some(&json!("2.0")) {
        return Message::Invalid {
            id: readable_id,
            error: RpcError::invalid_request("\"jsonrpc\" must be \"2.0\""),
        };
    }
    let method = obj.get("method");
    if method.is_none() && (obj.contains_key("result") || obj.contains_key("error")) {
        return Message::Response;
    }
    let Some(method) = method.and_then(Value::as_str) else {
        return Message::Invalid {
            id: readable_id,
            error: RpcError::invalid_request("\"method\" must be a string"),
        };
    };
    let params = obj.get("params").cloned();
    match id {
        None => Message::Notification {
            method: method.to_string(),
            params,
        },
        Some(i) if valid_id(i) => Message::Request {
            id: i.clone(),
            method: method.to_string(),
            params,
        },
        Some(_) => Message::Invalid {
            id: Value::Null,
            error: RpcError::invalid_request("\"id\" must be a string or an integer"),
        },
    }
}

/// A success reply.
pub fn result_reply(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// An error reply (`id` is `null` when the request id could not be read).
pub fn error_reply(id: &Value, error: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let r = classify(&json!({"jsonrpc":"2.0","id":1,"method":"ping"}));
        assert_eq!(
            r,
            Message::Request {
                id: json!(1),
                method: "ping".into(),
                params: None
            }
        );
        let n = classify(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        assert!(matches!(n, Message::Notification { .. }));
        assert_eq!(
            classify(&json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Message::Response
        );
    }

    #[test]
    fn malformed_messages_are_invalid_requests_keeping_a_readable_id() {
        for (v, id) in [
            (json!([1]), Value::Null),
            (json!("x"), Value::Null),
            (json!({"id": 3, "method": "ping"}), json!(3)),
            (
                json!({"jsonrpc": "1.0", "id": "q", "method": "ping"}),
                json!("q"),
            ),
            (json!({"jsonrpc": "2.0", "id": 4, "method": 7}), json!(4)),
            (
                json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
                Value::Null,
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}),
                Value::Null,
            ),
            (
                json!({"jsonrpc": "2.0", "id": {"a":1}, "method": "ping"}),
                Value::Null,
            ),
        ] {
            match classify(&v) {
                Message::Invalid { id: got, error } => {
                    assert_eq!(got, id, "{v}");
                    assert_eq!(error.code, INVALID_REQUEST, "{v}");
                }
                other => panic!("{v} classified as {other:?}"),
            }
        }
    }

    #[test]
    fn error_replies_carry_code_message_and_data() {
        let e = RpcError::method_not_found("nope");
        let r = error_reply(&json!(9), &e);
        assert_eq!(r["id"], 9);
        assert_eq!(r["error"]["code"], METHOD_NOT_FOUND);
        assert_eq!(r["error"]["data"]["method"], "nope");
        let r = error_reply(&Value::Null, &RpcError::new(PARSE_ERROR, "Parse error"));
        assert!(r.as_object().unwrap().contains_key("id"));
        assert!(r["id"].is_null());
        assert!(r["error"].get("data").is_none());
    }
}
