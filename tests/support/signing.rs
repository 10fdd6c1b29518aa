//! Builds requests to ingest the way Odoo signs them (SPEC §3).

use ipai_core::signature::sign;
use serde_json::{json, Value};

/// One request to ingest, with every header under the test's control.
#[derive(Debug, Clone)]
pub struct EventRequest {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// A correctly signed request for `body` with idempotency key `key`.
pub fn signed_request(secret: &str, key: &str, body: &Value) -> EventRequest {
    let body = body.to_string().into_bytes();
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let sig = sign(secret, &ts, &body);
    EventRequest {
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-ipai-timestamp".into(), ts),
            ("x-ipai-signature".into(), sig),
            ("x-idempotency-key".into(), key.into()),
        ],
        body,
    }
}

impl EventRequest {
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    pub async fn post(
        &self,
        client: &reqwest::Client,
        url: &str,
    ) -> reqwest::Result<reqwest::Response> {
        let mut req = client.post(url).body(self.body.clone());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.send().await
    }
}

/// The sample event most suites post: an `expense.submitted` of aggregate `id`.
pub fn expense_submitted(id: &str) -> Value {
    json!({"event_type": "expense.submitted", "aggregate_type": "expense", "aggregate_id": id,
           "payload": {"expense_id": 42, "employee_code": "E-0042", "amount": 1250.5,
                       "currency": "PHP", "status": "submit"},
           "occurred_at": "2026-11-26T05:00:00Z"})
}

/// An answer's status and body: JSON when it parses, else the text as a JSON string.
pub async fn status_and_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}
