//! The outside services of the domain handlers and approvals as loopback fakes, each
//! checking the exact shape of what it receives (URL, headers, auth, JSON fields) and
//! answering as the real service does: Mattermost incoming webhooks, Resend's `POST
//! /emails`, Google's OAuth token endpoint and Calendar `events.insert`, Odoo JSON-RPC.
//! A request of the wrong shape gets the error the real service would give, so a
//! handler that sends it fails visibly.

use crate::fake_http::{FakeServer, Recorded};
// Odoo and Google answer by request (path, JSON-RPC method): the loopback server, scripted.
use crate::fake_http::FakeServer as ScriptedServer;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const MATTERMOST_HOOK_PATH: &str = "/hooks/3xuqwn5tqpgiipai7testhook";
pub const EMAIL_KEY: &str = "re_test_123456789";
pub const EMAIL_FROM: &str = "IPAI Bus <bus@example.com>";
pub const GOOGLE_CLIENT_EMAIL: &str = "ipai-bus@ipai-test.iam.gserviceaccount.com";
pub const GOOGLE_TOKEN: &str = "ya29.test-access-token";
pub const CALENDAR_ID: &str = "assets@group.calendar.google.com";
pub const ODOO_DB: &str = "ipai";
pub const ODOO_LOGIN: &str = "bus@example.com";
pub const ODOO_KEY: &str = "odoo-test-api-key";
pub const ODOO_UID: i64 = 2;
pub const IT_ADMIN: &str = "it.admin@example.com";
pub const DIRECTOR: &str = "fin.director@example.com";
pub const FINANCE_CHANNEL: &str = "finance";

/// The approver Odoo returns for every expense report.
pub fn approver() -> Value {
    json!({"id": 5, "name": "Maria Santos", "login": "maria", "email": "maria.santos@example.com"})
}

/// Report 320 ("Team offsite") holds expenses 2001–2003; every other expense is alone in
/// report 310 ("November expenses", PHP 1,250.50). Both are approved by Maria Santos.
pub const OFFSITE_LINES: [i64; 3] = [2001, 2002, 2003];

/// The `sheet_id` value Odoo's `web_read` returns for an expense line.
fn report_of(expense_id: i64) -> Value {
    if OFFSITE_LINES.contains(&expense_id) {
        json!({"id": 320, "name": "Team offsite", "total_amount": 4350.25,
               "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": OFFSITE_LINES,
               "user_id": approver()})
    } else {
        json!({"id": 310, "name": "November expenses", "total_amount": 1250.5,
               "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": [expense_id],
               "user_id": approver()})
    }
}

/// The reviewer Odoo returns for user 3.
pub fn reviewer() -> Value {
    json!({"id": 3, "name": "Rosa Reviewer", "login": "rosa", "email": "rosa.reviewer@example.com"})
}

/// What the fake Odoo does with `execute_kw` writes: answer true, or fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OdooWrites {
    Succeed,
    Fail(String),
}

/// All fakes, started together.
pub struct Services {
    pub mattermost: FakeServer,
    pub email: FakeServer,
    pub google: ScriptedServer,
    pub odoo: ScriptedServer,
    odoo_writes: Arc<Mutex<OdooWrites>>,
}

fn rpc_error(name: &str, message: &str) -> (u16, String) {
    (
        200,
        json!({"jsonrpc": "2.0", "id": 2, "error": {"code": 200, "message": "Odoo Server Error",
               "data": {"name": name, "message": message}}})
        .to_string(),
    )
}

fn odoo_answer(r: &Recorded, writes: &OdooWrites) -> (u16, String) {
    if r.method != "POST" || r.path != "/jsonrpc" {
        return (404, "not found".into());
    }
    if !r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return (415, "json only".into());
    }
    let b = r.json();
    if b["jsonrpc"] != "2.0" || b["method"] != "call" {
        return (400, "not JSON-RPC 2.0".into());
    }
    let p = &b["params"];
    let args = &p["args"];
    let ok = |result: Value| {
        (
            200,
            json!({"jsonrpc": "2.0", "id": b["id"], "result": result}).to_string(),
        )
    };
    match (p["service"].as_str(), p["method"].as_str()) {
        (Some("common"), Some("authenticate")) => {
            if *args == json!([ODOO_DB, ODOO_LOGIN, ODOO_KEY, {}]) {
                ok(json!(ODOO_UID))
            } else {
                ok(json!(false))
            }
        }
        (Some("object"), Some("execute_kw")) => {
            if args[0] != ODOO_DB || args[1] != ODOO_UID || args[2] != ODOO_KEY {
                return rpc_error("odoo.exceptions.AccessDenied", "Access Denied");
            }
            let (model, method) = (args[3].as_str(), args[4].as_str());
            match (model, method) {
                (Some("hr.expense"), Some("web_read")) => {
                    let spec = &args[6]["specification"]["sheet_id"]["fields"];
                    if spec["user_id"]["fields"]["email"] != json!({})
                        || spec["name"] != json!({})
                        || spec["total_amount"] != json!({})
                        || spec["currency_id"]["fields"]["name"] != json!({})
                        || spec["expense_line_ids"] != json!({})
                    {
                        return rpc_error("builtins.ValueError", "bad specification");
                    }
                    let id = args[5][0][0].clone();
                    ok(json!([{"id": id, "sheet_id": report_of(id.as_i64().unwrap_or(0))}]))
                }
                (Some("res.users"), Some("web_read")) => {
                    if args[5] == json!([[3]]) {
                        ok(json!([reviewer()]))
                    } else {
                        ok(json!([]))
                    }
                }
                (Some("hr.expense.sheet"), Some("action_approve_expense_sheets"))
                | (Some("hr.expense.sheet"), Some("ipai_refuse")) => match writes {
                    OdooWrites::Succeed => ok(json!(true)),
                    OdooWrites::Fail(m) => rpc_error("odoo.exceptions.UserError", m),
                },
                _ => rpc_error(
                    "odoo.exceptions.MissingError",
                    &format!("unexpected call {model:?}.{method:?}"),
                ),
            }
        }
        _ => rpc_error("KeyError", "unknown service"),
    }
}

fn google_answer(r: &Recorded) -> (u16, String) {
    let calendar_path = format!(
        "/calendar/v3/calendars/{}/events",
        CALENDAR_ID.replace('@', "%40")
    );
    if r.method == "POST" && r.path == "/token" {
        let form = String::from_utf8_lossy(&r.body).to_string();
        let form_ok = r.header("content-type") == Some("application/x-www-form-urlencoded")
            && form.starts_with(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=",
            );
        if !form_ok {
            return (
                400,
                json!({"error": "invalid_request", "error_description": "bad form"}).to_string(),
            );
        }
        return (
            200,
            json!({"access_token": GOOGLE_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
                .to_string(),
        );
    }
    if r.method == "POST" && r.path == calendar_path {
        if r.header("authorization") != Some(&format!("Bearer {GOOGLE_TOKEN}")) {
            return (
                401,
                json!({"error": {"code": 401, "message": "Invalid Credentials"}}).to_string(),
            );
        }
        let b = r.json();
        if b["start"]["dateTime"].is_null() || b["end"]["dateTime"].is_null() {
            return (
                400,
                json!({"error": {"code": 400, "message": "Missing end time."}}).to_string(),
            );
        }
        return (
            200,
            json!({"kind": "calendar#event", "id": b["id"], "status": "confirmed",
                   "htmlLink": "https://calendar.google.com/event?eid=x"})
            .to_string(),
        );
    }
    (
        404,
        json!({"error": {"code": 404, "message": "Not Found"}}).to_string(),
    )
}

impl Services {
    pub async fn start() -> Self {
        let mattermost = FakeServer::start().await;
        mattermost.respond_with(200, "ok");
        let email = FakeServer::start().await;
        email.respond_with(200, r#"{"id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}"#);
        let google = ScriptedServer::start_scripted(google_answer).await;
        let odoo_writes = Arc::new(Mutex::new(OdooWrites::Succeed));
        let w = odoo_writes.clone();
        let odoo = ScriptedServer::start_scripted(move |r| {
            let writes = w.lock().expect("odoo writes").clone();
            odoo_answer(r, &writes)
        })
        .await;
        Services {
            mattermost,
            email,
            google,
            odoo,
            odoo_writes,
        }
    }

    /// How the fake Odoo answers approve/refuse calls from now on.
    pub fn odoo_writes(&self, w: OdooWrites) {
        *self.odoo_writes.lock().expect("odoo writes") = w;
    }

    /// Points every handler variable at the fakes.
    pub fn configure(&self, v: &mut BTreeMap<String, String>) {
        let sa = json!({
            "type": "service_account", "project_id": "ipai-test", "private_key_id": "test-key-1",
            "private_key": test_private_key(), "client_email": GOOGLE_CLIENT_EMAIL,
            "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token"});
        for (k, val) in [
            (
                "mattermost_webhook_url",
                format!("{}{MATTERMOST_HOOK_PATH}", self.mattermost.url),
            ),
            ("mattermost_origin", self.mattermost.url.clone()),
            ("mattermost_finance_channel", FINANCE_CHANNEL.into()),
            ("email_api_url", format!("{}/emails", self.email.url)),
            ("email_api_origin", self.email.url.clone()),
            ("email_api_key", EMAIL_KEY.into()),
            ("email_from", EMAIL_FROM.into()),
            ("google_service_account_json", sa.to_string()),
            ("google_calendar_id", CALENDAR_ID.into()),
            (
                "google_oauth_token_url",
                format!("{}/token", self.google.url),
            ),
            ("google_oauth_origin", self.google.url.clone()),
            (
                "google_calendar_api_base",
                format!("{}/calendar/v3", self.google.url),
            ),
            ("google_calendar_origin", self.google.url.clone()),
            ("odoo_url", self.odoo.url.clone()),
            ("odoo_db", ODOO_DB.into()),
            ("odoo_user", ODOO_LOGIN.into()),
            ("odoo_api_key", ODOO_KEY.into()),
            ("it_admin_email", IT_ADMIN.into()),
            ("finance_director_email", DIRECTOR.into()),
        ] {
            v.insert(k.to_string(), val);
        }
    }

    /// Odoo `execute_kw` calls as (model, method, args).
    pub fn odoo_calls(&self) -> Vec<(String, String, Value)> {
        self.odoo
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|b| b["params"]["method"] == "execute_kw")
            .map(|b| {
                let a = &b["params"]["args"];
                (
                    a[3].as_str().unwrap_or_default().to_string(),
                    a[4].as_str().unwrap_or_default().to_string(),
                    a[5].clone(),
                )
            })
            .collect()
    }

    /// Odoo write calls (approve/refuse).
    pub fn odoo_writes_made(&self) -> Vec<(String, Value)> {
        self.odoo_calls()
            .into_iter()
            .filter(|(m, method, _)| {
                m == "hr.expense.sheet"
                    && (method == "action_approve_expense_sheets" || method == "ipai_refuse")
            })
            .map(|(_, method, args)| (method, args))
            .collect()
    }

    /// Mattermost webhook posts (JSON bodies), after checking each request's shape.
    pub fn posts(&self) -> Vec<Value> {
        self.mattermost
            .requests()
            .iter()
            .map(|r| {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("POST", MATTERMOST_HOOK_PATH)
                );
                assert_eq!(r.header("content-type"), Some("application/json"));
                r.json()
            })
            .collect()
    }

    /// Emails sent (JSON bodies), after checking each request's Resend shape.
    pub fn emails(&self) -> Vec<(Value, String)> {
        self.email
            .requests()
            .iter()
            .map(|r| {
                assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/emails"));
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {EMAIL_KEY}").as_str())
                );
                assert_eq!(r.header("content-type"), Some("application/json"));
                let b = r.json();
                assert_eq!(b["from"], EMAIL_FROM);
                for k in ["to", "subject", "html", "text"] {
                    assert!(!b[k].is_null(), "email lacks {k}: {b}");
                }
                (
                    b,
                    r.header("idempotency-key").unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Google requests by path.
    pub fn google_requests(&self, path_suffix: &str) -> Vec<Recorded> {
        self.google
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(path_suffix))
            .collect()
    }
}

/// The throwaway RSA key of the test service account.
pub fn test_private_key() -> String {
    std::fs::read_to_string(
        crate::workspace_root().join("crates/ipai-effects/testdata/test_rsa_key.pem"),
    )
    .expect("test key")
}
