//! The outside services of the domain handlers and approvals as loopback fakes, each
//! checking the exact shape of what it receives (URL, headers, auth, JSON fields) and
//! answering as the real service does: Mattermost incoming webhooks and its REST API to the
//! bot token (the user directory `GET /api/v4/users/email/{email}`, `GET
//! /api/v4/users/{id}`; the bot's direct messages `GET /api/v4/users/me`, `POST
//! /api/v4/channels/direct`, `POST /api/v4/posts`),
//! Resend's `POST /emails`, Google's OAuth token endpoint and Calendar `events.insert`,
//! Odoo JSON-RPC.
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
/// The Mattermost bot's REST API token.
pub const MM_BOT_TOKEN: &str = "mm-bot-token-7f3kq9xw2";
/// Mattermost user ids (26 characters, as Mattermost makes them) of the directory's people.
pub const MARIA_MM_ID: &str = "mariasantos000000000000001";
pub const JUAN_MM_ID: &str = "juandelacruz00000000000002";
pub const ANA_MM_ID: &str = "anareyes000000000000000003";
pub const JOSE_MM_ID: &str = "josegarcia0000000000000004";
pub const ROSA_MM_ID: &str = "rosareviewer00000000000005";
/// The bot's own Mattermost user id (`GET /api/v4/users/me`).
pub const MM_BOT_ID: &str = "ipaibusbot0000000000000006";
/// The finance approvers who stand in when a report's approver cannot decide.
pub const FINANCE_APPROVERS: &str = "ana.reyes@example.com, jose.garcia@example.com";

/// Mattermost's user directory: (id, username, email). Maria approves; Juan is the
/// employee of every test report; Ana and José are finance approvers; Rosa is someone else.
pub const MATTERMOST_USERS: [(&str, &str, &str); 5] = [
    (MARIA_MM_ID, "maria.santos", "maria.santos@example.com"),
    (JUAN_MM_ID, "juan.delacruz", "juan.delacruz@example.com"),
    (ANA_MM_ID, "ana.reyes", "ana.reyes@example.com"),
    (JOSE_MM_ID, "jose.garcia", "jose.garcia@example.com"),
    (ROSA_MM_ID, "rosa.reviewer", "rosa.reviewer@example.com"),
];

/// A user object as Mattermost's REST API returns it (a sanitized subset).
fn mattermost_user(id: &str, username: &str, email: &str) -> Value {
    let (first, last) = username.split_once('.').unwrap_or((username, ""));
    json!({"id": id, "create_at": 1_700_000_000_000_i64, "update_at": 1_700_000_000_000_i64,
           "delete_at": 0, "username": username, "auth_data": "", "auth_service": "",
           "email": email, "nickname": "", "first_name": first, "last_name": last,
           "position": "", "roles": "system_user", "locale": "en"})
}

fn mattermost_error(status: u16, id: &str, message: &str) -> (u16, String) {
    (
        status,
        json!({"id": id, "message": message, "detailed_error": "", "request_id": "r1",
               "status_code": status})
        .to_string(),
    )
}

/// The id of the direct-message channel of the bot and `user_id` (Mattermost makes a
/// random one; here it is derived, so the stand-in needs no state).
pub fn dm_channel_id(user_id: &str) -> String {
    format!("dmchannel{}", &user_id[..17.min(user_id.len())])
}

/// `POST /api/v4/channels/direct`: exactly `[bot id, a known user id]` → 201 the channel.
fn direct_channel_answer(r: &Recorded) -> (u16, String) {
    let ids = serde_json::from_slice::<Vec<String>>(&r.body).unwrap_or_default();
    let known = |id: &str| MATTERMOST_USERS.iter().any(|(i, _, _)| *i == id);
    match ids.as_slice() {
        [bot, user] if bot == MM_BOT_ID && known(user) => (
            201,
            json!({"id": dm_channel_id(user), "type": "D", "name": format!("{bot}__{user}"),
                   "display_name": "", "team_id": "", "create_at": 1_700_000_000_000_i64})
            .to_string(),
        ),
        _ => mattermost_error(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing user_ids in request body.",
        ),
    }
}

/// `POST /api/v4/posts`: exactly `{"channel_id", "message", "props": {"attachments"}}`
/// into a direct channel of the bot → 201 the post.
fn post_answer(r: &Recorded) -> (u16, String) {
    let b = r.json();
    let keys: Vec<&str> = b
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let props_keys: Vec<&str> = b["props"]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let channel = b["channel_id"].as_str().unwrap_or_default();
    let dm = MATTERMOST_USERS
        .iter()
        .any(|(id, _, _)| dm_channel_id(id) == channel);
    if keys != ["channel_id", "message", "props"]
        || props_keys != ["attachments"]
        || !b["message"].is_string()
        || !b["props"]["attachments"].is_array()
    {
        return mattermost_error(
            400,
            "api.context.invalid_body_param.app_error",
            "Invalid or missing post in request body.",
        );
    }
    if !dm {
        return mattermost_error(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        );
    }
    (
        201,
        json!({"id": "post0000000000000000000001", "channel_id": channel,
               "user_id": MM_BOT_ID, "message": b["message"], "props": b["props"]})
        .to_string(),
    )
}

/// Mattermost: the incoming webhook accepts posts; the REST API answers the bot token:
/// users by email and by id (404 for anyone it does not know), the bot itself, direct
/// channels of the bot and a known user, and posts into them.
pub fn mattermost_answer(r: &Recorded) -> (u16, String) {
    let Some(api_path) = r.path.strip_prefix("/api/v4/") else {
        return if r.method == "POST" && r.path == MATTERMOST_HOOK_PATH {
            (200, "ok".into())
        } else {
            (404, "Not found".into())
        };
    };
    if r.header("authorization") != Some(&format!("Bearer {MM_BOT_TOKEN}")) {
        return mattermost_error(
            401,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        );
    }
    match (r.method.as_str(), api_path) {
        ("POST", _) if r.header("content-type") != Some("application/json") => {
            return mattermost_error(
                400,
                "api.context.invalid_body_param.app_error",
                "Invalid body.",
            )
        }
        ("POST", "channels/direct") => return direct_channel_answer(r),
        ("POST", "posts") => return post_answer(r),
        ("GET", "users/me") => {
            return (200, mattermost_user(MM_BOT_ID, "ipai-bus", "").to_string())
        }
        ("GET", _) => {}
        _ => return mattermost_error(405, "api.context.method_not_allowed", "Method not allowed"),
    }
    let found = if let Some(email) = api_path.strip_prefix("users/email/") {
        MATTERMOST_USERS
            .iter()
            .find(|(_, _, e)| e.eq_ignore_ascii_case(email))
    } else if let Some(id) = api_path.strip_prefix("users/") {
        MATTERMOST_USERS.iter().find(|(i, _, _)| *i == id)
    } else {
        return mattermost_error(
            404,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        );
    };
    match found {
        Some((id, username, email)) => (200, mattermost_user(id, username, email).to_string()),
        None => mattermost_error(
            404,
            "app.user.missing_account.const",
            "Unable to find the user.",
        ),
    }
}

/// The approver Odoo returns for every expense report.
pub fn approver() -> Value {
    json!({"id": 5, "name": "Maria Santos", "login": "maria", "email": "maria.santos@example.com"})
}

/// Report 320 ("Team offsite") holds expenses 2001–2003, report 340 (below) 4001–4005;
/// every other expense is alone in report 310 ("November expenses", PHP 1,250.50). Both are approved by Maria Santos.
pub const OFFSITE_LINES: [i64; 3] = [2001, 2002, 2003];
/// Report 340 ("Sales trip Cebu", PHP 6,250.00) holds five expenses, 4001–4005.
pub const SALES_TRIP_LINES: [i64; 5] = [4001, 4002, 4003, 4004, 4005];
/// Expense 3001 is alone in report 330, which has no approver in Odoo.
pub const UNAPPROVED_LINE: i64 = 3001;
/// Expense 3002 is alone in report 331, whose approver in Odoo is its own employee, Juan.
pub const SELF_APPROVED_LINE: i64 = 3002;

/// The `sheet_id` value Odoo's `web_read` returns for an expense line.
fn report_of(expense_id: i64) -> Value {
    if OFFSITE_LINES.contains(&expense_id) {
        json!({"id": 320, "name": "Team offsite", "total_amount": 4350.25,
               "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": OFFSITE_LINES,
               "user_id": approver()})
    } else if SALES_TRIP_LINES.contains(&expense_id) {
        json!({"id": 340, "name": "Sales trip Cebu", "total_amount": 6250.0,
               "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": SALES_TRIP_LINES,
               "user_id": approver()})
    } else if expense_id == UNAPPROVED_LINE {
        json!({"id": 330, "name": "Conference fees", "total_amount": 980.0,
               "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": [expense_id],
               "user_id": false})
    } else if expense_id == SELF_APPROVED_LINE {
        json!({"id": 331, "name": "Taxi fares", "total_amount": 420.0,
               "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": [expense_id],
               "user_id": {"id": 7, "name": "Juan dela Cruz", "login": "juan",
                           "email": "juan.delacruz@example.com"}})
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

/// How the fake Odoo answers: approve/refuse writes, and each report's state
/// (`submit` unless set).
#[derive(Debug, Clone)]
struct OdooBehaviour {
    writes: OdooWrites,
    sheet_states: BTreeMap<i64, String>,
    /// `ipai_submitted_at` per report (`false`, never stamped, unless set).
    sheet_submitted_at: BTreeMap<i64, String>,
    /// Every call answered `502 Bad Gateway`, as a proxy in front of a stopped Odoo does.
    down: bool,
    /// Keys `ipai_resend_keys` answers as unknown (Odoo has no row with them).
    resend_unknown: Vec<String>,
}

/// All fakes, started together.
pub struct Services {
    pub mattermost: FakeServer,
    pub email: FakeServer,
    pub google: ScriptedServer,
    pub odoo: ScriptedServer,
    odoo_behaviour: Arc<Mutex<OdooBehaviour>>,
}

fn rpc_error(name: &str, message: &str) -> (u16, String) {
    (
        200,
        json!({"jsonrpc": "2.0", "id": 2, "error": {"code": 200, "message": "Odoo Server Error",
               "data": {"name": name, "message": message}}})
        .to_string(),
    )
}

fn odoo_answer(r: &Recorded, behaviour: &OdooBehaviour) -> (u16, String) {
    if behaviour.down {
        return (502, "<html><h1>502 Bad Gateway</h1></html>".into());
    }
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
                | (Some("hr.expense.sheet"), Some("ipai_refuse")) => match &behaviour.writes {
                    OdooWrites::Succeed => ok(json!(true)),
                    OdooWrites::Fail(m) => rpc_error("odoo.exceptions.UserError", m),
                },
                (Some("hr.expense.sheet"), Some("read")) => {
                    if args[6] != json!({"fields": ["state", "ipai_submitted_at"]}) {
                        return rpc_error("builtins.ValueError", "unexpected fields");
                    }
                    let Some(id) = args[5][0][0].as_i64() else {
                        return rpc_error("builtins.TypeError", "ids must be a list of ints");
                    };
                    let state = behaviour
                        .sheet_states
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| "submit".into());
                    let submitted_at = match behaviour.sheet_submitted_at.get(&id) {
                        Some(at) => json!(at),
                        None => json!(false),
                    };
                    ok(json!([{"id": id, "state": state, "ipai_submitted_at": submitted_at}]))
                }
                (Some("hr.expense.sheet"), Some("message_post")) => {
                    let kw = &args[6];
                    let shaped = args[5][0].as_array().is_some_and(|ids| ids.len() == 1)
                        && kw["body"].as_str().is_some_and(|b| !b.is_empty())
                        && kw["message_type"] == "comment"
                        && kw["subtype_xmlid"] == "mail.mt_note";
                    if shaped {
                        ok(json!(9001))
                    } else {
                        rpc_error("builtins.ValueError", "Expected singleton or bad note")
                    }
                }
                // The addon's healing method (SPEC §11): a list of string keys, no kwargs.
                (Some("ipai.event.queue"), Some("ipai_resend_keys")) => {
                    let keys: Option<Vec<&str>> = args[5]
                        .as_array()
                        .filter(|a| a.len() == 1)
                        .and_then(|a| a[0].as_array())
                        .and_then(|k| k.iter().map(Value::as_str).collect());
                    match (keys, &behaviour.writes) {
                        (None, _) => {
                            rpc_error("builtins.TypeError", "keys must be a list of strings")
                        }
                        (Some(_), _) if args[6] != json!({}) => {
                            rpc_error("builtins.TypeError", "unexpected keyword arguments")
                        }
                        (Some(_), OdooWrites::Fail(m)) => rpc_error("odoo.exceptions.UserError", m),
                        (Some(keys), OdooWrites::Succeed) => {
                            let (unknown, requeued): (Vec<&str>, Vec<&str>) = keys
                                .into_iter()
                                .partition(|k| behaviour.resend_unknown.iter().any(|u| u == k));
                            ok(json!({"requeued": requeued, "unknown": unknown}))
                        }
                    }
                }
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
        let mattermost = FakeServer::start_scripted(mattermost_answer).await;
        let email = FakeServer::start().await;
        email.respond_with(200, r#"{"id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}"#);
        let google = ScriptedServer::start_scripted(google_answer).await;
        let odoo_behaviour = Arc::new(Mutex::new(OdooBehaviour {
            writes: OdooWrites::Succeed,
            sheet_states: BTreeMap::new(),
            sheet_submitted_at: BTreeMap::new(),
            down: false,
            resend_unknown: Vec::new(),
        }));
        let b = odoo_behaviour.clone();
        let odoo = ScriptedServer::start_scripted(move |r| {
            let behaviour = b.lock().expect("odoo behaviour").clone();
            odoo_answer(r, &behaviour)
        })
        .await;
        Services {
            mattermost,
            email,
            google,
            odoo,
            odoo_behaviour,
        }
    }

    /// How the fake Odoo answers approve/refuse calls from now on.
    pub fn odoo_writes(&self, w: OdooWrites) {
        self.odoo_behaviour.lock().expect("odoo behaviour").writes = w;
    }

    /// The `ipai_submitted_at` Odoo reports for report `sheet_id` from now on
    /// (`2026-11-26 07:30:00`, naive UTC as Odoo returns it; `false` by default).
    pub fn odoo_sheet_submitted_at(&self, sheet_id: i64, at: &str) {
        self.odoo_behaviour
            .lock()
            .expect("odoo behaviour")
            .sheet_submitted_at
            .insert(sheet_id, at.to_string());
    }

    /// Keys the fake Odoo's `ipai_resend_keys` answers as unknown from now on.
    pub fn odoo_resend_unknown(&self, keys: &[&str]) {
        self.odoo_behaviour
            .lock()
            .expect("odoo behaviour")
            .resend_unknown = keys.iter().map(|k| k.to_string()).collect();
    }

    /// From now on Odoo is down (every call answered 502) or back.
    pub fn odoo_down(&self, down: bool) {
        self.odoo_behaviour.lock().expect("odoo behaviour").down = down;
    }

    /// The state Odoo reports for report `sheet_id` from now on (`submit` by default).
    pub fn odoo_sheet_state(&self, sheet_id: i64, state: &str) {
        self.odoo_behaviour
            .lock()
            .expect("odoo behaviour")
            .sheet_states
            .insert(sheet_id, state.to_string());
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
            ("mattermost_bot_token", MM_BOT_TOKEN.into()),
            ("mattermost_finance_approvers", FINANCE_APPROVERS.into()),
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

    /// What each stand-in received so far, one request a line (method, path, the first 200
    /// bytes of the body): the message of a failed assertion on any of them.
    pub fn received(&self) -> String {
        [
            ("Mattermost", &self.mattermost),
            ("email", &self.email),
            ("Google", &self.google),
            ("Odoo", &self.odoo),
        ]
        .map(|(name, fake)| format!("{name} at {}", fake.received()))
        .join("\n")
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

    /// Odoo chatter notes on expense reports as (report id, body).
    pub fn odoo_notes(&self) -> Vec<(i64, String)> {
        self.odoo
            .requests()
            .iter()
            .map(|r| r.json())
            .filter(|b| {
                let a = &b["params"]["args"];
                b["params"]["method"] == "execute_kw"
                    && a[3] == "hr.expense.sheet"
                    && a[4] == "message_post"
            })
            .map(|b| {
                let a = &b["params"]["args"];
                (
                    a[5][0][0].as_i64().unwrap_or_default(),
                    a[6]["body"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Look-ups in Mattermost's user directory (`GET /api/v4/users/...`, not the bot's
    /// own `users/me`) as (method, path), after checking each carries the bot token.
    pub fn mattermost_api_requests(&self) -> Vec<(String, String)> {
        self.mattermost
            .requests()
            .iter()
            .filter(|r| {
                r.method == "GET" && r.path.starts_with("/api/") && r.path != "/api/v4/users/me"
            })
            .map(|r| {
                assert_eq!(
                    r.header("authorization"),
                    Some(format!("Bearer {MM_BOT_TOKEN}").as_str())
                );
                (r.method.clone(), r.path.clone())
            })
            .collect()
    }

    /// Every message Mattermost accepted, in order, after checking each request's shape:
    /// webhook posts as their JSON bodies, and the bot's direct messages (`POST
    /// /api/v4/posts` answered 201) as `{"channel": "@<recipient>", "text", "attachments",
    /// "from_bot": true}` — each after the `POST /api/v4/channels/direct` of exactly the
    /// bot and that recipient that opened its channel.
    pub fn posts(&self) -> Vec<Value> {
        let requests = self.mattermost.requests();
        let mut opened = Vec::new();
        let mut messages = Vec::new();
        for r in &requests {
            if !r.path.starts_with("/api/") {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("POST", MATTERMOST_HOOK_PATH)
                );
                assert_eq!(r.header("content-type"), Some("application/json"));
                let body = r.json();
                assert!(body.get("from_bot").is_none(), "{body}");
                messages.push(body);
                continue;
            }
            if r.method != "POST" {
                continue;
            }
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {MM_BOT_TOKEN}").as_str())
            );
            match r.path.as_str() {
                "/api/v4/channels/direct" => {
                    let ids: Vec<String> = serde_json::from_slice(&r.body).expect("user ids");
                    assert_eq!(ids.len(), 2, "a direct channel is the bot and one user");
                    assert_eq!(ids[0], MM_BOT_ID, "the bot opens its own channel");
                    opened.push(dm_channel_id(&ids[1]));
                }
                "/api/v4/posts" => {
                    let b = r.json();
                    let channel = b["channel_id"].as_str().unwrap_or_default();
                    assert!(
                        opened.iter().any(|c| c == channel),
                        "a post into a channel the bot opened first: {b}"
                    );
                    let (_, username, _) = MATTERMOST_USERS
                        .iter()
                        .find(|(id, _, _)| dm_channel_id(id) == channel)
                        .expect("a direct channel of a known user");
                    messages.push(json!({"channel": format!("@{username}"),
                        "text": b["message"], "attachments": b["props"]["attachments"],
                        "from_bot": true}));
                }
                other => panic!("unexpected POST {other}"),
            }
        }
        messages
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
