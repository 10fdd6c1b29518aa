//! Odoo's external JSON-RPC API (`POST {odoo_url}/jsonrpc`), Odoo 17/18:
//! `common.authenticate(db, login, api_key, {})` → uid, then
//! `object.execute_kw(db, uid, api_key, model, method, args, kwargs)`.
//! Look-ups use `web_read` with a nested specification, so an approver or reviewer is one
//! round trip; the write-backs are `hr.expense.sheet.action_approve_expense_sheets` and the
//! addon's `hr.expense.sheet.ipai_refuse(reason)` (the refuse wizard's logic, RPC-callable).

use serde_json::{json, Value};

/// Credentials for `execute_kw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub db: String,
    pub uid: i64,
    pub api_key: String,
}

/// The JSON-RPC body calling `service.method(args)`.
pub fn call(service: &str, method: &str, args: Value, id: u64) -> Value {
    json!({"jsonrpc": "2.0", "method": "call",
           "params": {"service": service, "method": method, "args": args}, "id": id})
}

/// `common.authenticate(db, login, api_key, {})`.
pub fn authenticate(db: &str, login: &str, api_key: &str) -> Value {
    call("common", "authenticate", json!([db, login, api_key, {}]), 1)
}

/// `object.execute_kw(db, uid, api_key, model, method, args, kwargs)`.
pub fn execute_kw(s: &Session, model: &str, method: &str, args: Value, kwargs: Value) -> Value {
    call(
        "object",
        "execute_kw",
        json!([s.db, s.uid, s.api_key, model, method, args, kwargs]),
        2,
    )
}

/// The fields read of a user (approver, reviewer).
fn user_spec() -> Value {
    json!({"fields": {"name": {}, "login": {}, "email": {}}})
}

/// An expense line's report, the report's total and lines, and its manager
/// (`hr.expense.sheet.user_id`, the approver Odoo assigns):
/// `hr.expense.web_read([id], {sheet_id: {name, total_amount, currency_id, expense_line_ids,
/// user_id: {...}}})`. The approver decides on the whole report, so the message shows its
/// total rather than one line's amount.
pub fn expense_approver_lookup(s: &Session, expense_id: i64) -> Value {
    execute_kw(
        s,
        "hr.expense",
        "web_read",
        json!([[expense_id]]),
        json!({"specification": {"sheet_id": {"fields": {
            "name": {},
            "total_amount": {},
            "currency_id": {"fields": {"name": {}}},
            "expense_line_ids": {},
            "user_id": user_spec(),
        }}}}),
    )
}

/// A user by id: `res.users.web_read([id], {name, login, email})`.
pub fn user_lookup(s: &Session, user_id: i64) -> Value {
    execute_kw(
        s,
        "res.users",
        "web_read",
        json!([[user_id]]),
        json!({"specification": {"name": {}, "login": {}, "email": {}}}),
    )
}

/// Approve the report (Odoo 18 `hr.expense.sheet.action_approve_expense_sheets`).
pub fn approve_sheet(s: &Session, sheet_id: i64) -> Value {
    execute_kw(
        s,
        "hr.expense.sheet",
        "action_approve_expense_sheets",
        json!([[sheet_id]]),
        json!({}),
    )
}

/// Refuse the report with a reason (the addon's `ipai_refuse`, which runs the refuse
/// wizard's checks and `_do_refuse`).
pub fn refuse_sheet(s: &Session, sheet_id: i64, reason: &str) -> Value {
    execute_kw(
        s,
        "hr.expense.sheet",
        "ipai_refuse",
        json!([[sheet_id], reason]),
        json!({}),
    )
}

/// The report's workflow state (`draft`, `submit`, `approve`, `post`, `done`, `cancel`) and
/// the addon's stamp of its latest submission:
/// `hr.expense.sheet.read([[id]], {fields: ["state", "ipai_submitted_at"]})`. An approval
/// click decides only while the report is `submit` in the submission it was made for.
pub fn sheet_state_read(s: &Session, sheet_id: i64) -> Value {
    execute_kw(
        s,
        "hr.expense.sheet",
        "read",
        json!([[sheet_id]]),
        json!({"fields": ["state", "ipai_submitted_at"]}),
    )
}

/// A report as `sheet_state_read` found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SheetNow {
    /// `None` when the report no longer exists (empty list) or has no state.
    pub state: Option<String>,
    /// `ipai_submitted_at` as Odoo returns it (`2026-11-24 01:15:00`, UTC); `None` when
    /// never stamped (`false`).
    pub submitted_at: Option<String>,
}

/// `sheet_state_read`'s result: `[{"id": 310, "state": "submit", "ipai_submitted_at":
/// "2026-11-24 01:15:00" | false}]`.
pub fn parse_sheet_now(result: &Value) -> SheetNow {
    SheetNow {
        state: crate::fields::text(&result[0], "state"),
        submitted_at: crate::fields::text(&result[0], "ipai_submitted_at"),
    }
}

/// A note in the report's chatter (`mail.thread.message_post`, internal note), so Odoo's
/// own audit trail names who decided in Mattermost, or who was refused.
pub fn sheet_note(s: &Session, sheet_id: i64, body: &str) -> Value {
    execute_kw(
        s,
        "hr.expense.sheet",
        "message_post",
        json!([[sheet_id]]),
        json!({"body": body, "message_type": "comment", "subtype_xmlid": "mail.mt_note"}),
    )
}

/// The model and method of the addon the bus asks to send rows again (SPEC §11's healing):
/// `ipai.event.queue.ipai_resend_keys(keys)`, callable only by a user of the addon's group
/// `ipai_enterprise_bridge.group_ipai_bus` (the bus's own Odoo user).
pub const RESEND_MODEL: &str = "ipai.event.queue";
pub const RESEND_METHOD: &str = "ipai_resend_keys";

/// Asks Odoo to send the rows with these idempotency keys again, under their own keys.
pub fn resend_keys(s: &Session, keys: &[String]) -> Value {
    execute_kw(s, RESEND_MODEL, RESEND_METHOD, json!([keys]), json!({}))
}

/// What Odoo did with a resend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resent {
    /// Rows sent again, under their own keys.
    pub requeued: Vec<String>,
    /// Keys no row has (deleted in Odoo): they stay missing.
    pub unknown: Vec<String>,
    /// Rows an administrator cancelled: Odoo does not send them (they stay missing).
    pub cancelled: Vec<String>,
}

/// Reads `ipai_resend_keys`' answer (`cancelled` may be absent: an older addon).
pub fn parse_resend(result: &Value) -> Result<Resent, String> {
    let list = |name: &str| -> Result<Vec<String>, String> {
        result[name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .ok_or_else(|| format!("Odoo's {RESEND_METHOD} answered without \"{name}\": {result}"))
    };
    Ok(Resent {
        requeued: list("requeued")?,
        unknown: list("unknown")?,
        cancelled: if result.get("cancelled").is_some() {
            list("cancelled")?
        } else {
            Vec::new()
        },
    })
}

/// A JSON-RPC answer: `result`, or the server's error message (Odoo answers HTTP 200
/// with `{"error": {"message", "data": {"name", "message"}}}` for exceptions).
/// A method that returns `None` (18.0's `action_approve_expense_sheets` when the report has
/// no duplicates) is answered `{"jsonrpc": "2.0", "id": …}` without `result`
/// (`JsonRPCDispatcher._response` in `odoo/http.py` leaves it out): that is `null`.
pub fn parse_response(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| "Odoo did not answer JSON-RPC (is odoo_url right?)".to_string())?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let name = err["data"]["name"].as_str().unwrap_or_default();
        let msg = err["data"]["message"]
            .as_str()
            .or_else(|| err["message"].as_str())
            .unwrap_or("unknown error");
        return Err(if name.is_empty() {
            format!("Odoo error: {msg}")
        } else {
            format!("Odoo error {name}: {msg}")
        });
    }
    match v.get("result") {
        Some(result) => Ok(result.clone()),
        None if v.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => Ok(Value::Null),
        None => Err("Odoo answered neither result nor error".to_string()),
    }
}

/// `authenticate`'s result: the uid, or `false` for a wrong login/key.
pub fn parse_uid(result: &Value) -> Result<i64, String> {
    result.as_i64().filter(|uid| *uid > 0).ok_or_else(|| {
        "Odoo rejected odoo_user / odoo_api_key (authenticate returned false)".to_string()
    })
}

/// A person found in Odoo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub login: Option<String>,
    pub email: Option<String>,
}

impl Person {
    fn from_value(v: &Value) -> Option<Self> {
        let obj = v.as_object()?;
        let s = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let p = Person {
            id: obj.get("id").and_then(Value::as_i64),
            name: s("name"),
            login: s("login"),
            email: s("email"),
        };
        (p.id.is_some() || p.name.is_some()).then_some(p)
    }

    /// The Mattermost username: the local part of the email, else of the login when it is
    /// an address, else the login itself.
    pub fn handle(&self) -> Option<String> {
        self.email
            .as_deref()
            .and_then(crate::fields::handle_of_email)
            .or_else(|| {
                self.login
                    .as_deref()
                    .and_then(crate::fields::handle_of_email)
            })
            .or_else(|| {
                self.login
                    .as_deref()
                    .filter(|l| {
                        l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                    })
                    .map(str::to_ascii_lowercase)
            })
    }
}

/// An expense report (`hr.expense.sheet`) as the approval message shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub id: i64,
    pub name: Option<String>,
    /// `total_amount` as Odoo sent it (a number), in `currency`.
    pub total: Option<String>,
    pub currency: Option<String>,
    /// How many expense lines the report holds.
    pub lines: Option<usize>,
}

/// The report and approver from `expense_approver_lookup`'s result:
/// `[{"id": 1042, "sheet_id": {"id": 310, "name": "...", "total_amount": 3750.5,
/// "currency_id": {"id": 2, "name": "PHP"}, "expense_line_ids": [1042, 1043],
/// "user_id": {...} | false} | false}]`.
pub fn parse_expense_approver(result: &Value) -> (Option<Report>, Option<Person>) {
    let sheet = &result[0]["sheet_id"];
    let report = sheet["id"].as_i64().map(|id| Report {
        id,
        name: crate::fields::text(sheet, "name"),
        total: crate::fields::number(sheet, "total_amount"),
        currency: crate::fields::text(&sheet["currency_id"], "name"),
        lines: sheet["expense_line_ids"].as_array().map(Vec::len),
    });
    (report, Person::from_value(&sheet["user_id"]))
}

/// The user from `user_lookup`'s result: `[{"id", "name", "login", "email"}]`.
pub fn parse_user(result: &Value) -> Option<Person> {
    Person::from_value(&result[0])
}

/// What an approve call's result means: `true`/`null` = done; an action dictionary = Odoo
/// wants a person to confirm something first (e.g. the duplicate-expense wizard).
pub fn approve_outcome(result: &Value) -> Result<(), String> {
    match result {
        Value::Object(action) if action.contains_key("type") => Err(format!(
            "Odoo asks for a confirmation in its UI first ({}): open the report in Odoo",
            action
                .get("res_model")
                .and_then(Value::as_str)
                .unwrap_or("a wizard")
        )),
        _ => Ok(()),
    }
}

/// Link to a record's form view (works on Odoo 16–18).
pub fn record_url(odoo_url: &str, model: &str, id: &str) -> String {
    format!(
        "{}/web#id={id}&model={model}&view_type=form",
        odoo_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_asks_the_addon_for_the_keys_and_reads_what_it_requeued() {
        let s = Session {
            db: "odoo".into(),
            uid: 7,
            api_key: "k".into(),
        };
        let body = resend_keys(&s, &["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(
            body["params"]["args"],
            json!([
                "odoo",
                7,
                "k",
                "ipai.event.queue",
                "ipai_resend_keys",
                [["a:1", "b:2"]],
                {}
            ])
        );
        let answer = json!({"requeued": ["a:1"], "unknown": ["b:2"], "cancelled": ["c:3"]});
        assert_eq!(
            parse_resend(&answer),
            Ok(Resent {
                requeued: vec!["a:1".to_string()],
                unknown: vec!["b:2".to_string()],
                cancelled: vec!["c:3".to_string()],
            })
        );
        let older = json!({"requeued": [], "unknown": []});
        assert_eq!(parse_resend(&older), Ok(Resent::default()));
        assert!(parse_resend(&json!(true)).unwrap_err().contains("requeued"));
    }

    fn s() -> Session {
        Session {
            db: "prod".into(),
            uid: 2,
            api_key: "k".into(),
        }
    }

    #[test]
    fn request_bodies_follow_execute_kw() {
        assert_eq!(
            authenticate("prod", "bus@x.com", "k"),
            json!({"jsonrpc": "2.0", "method": "call", "id": 1,
                   "params": {"service": "common", "method": "authenticate", "args": ["prod", "bus@x.com", "k", {}]}})
        );
        let a = approve_sheet(&s(), 310);
        assert_eq!(
            a["params"]["args"],
            json!([
                "prod",
                2,
                "k",
                "hr.expense.sheet",
                "action_approve_expense_sheets",
                [[310]],
                {}
            ])
        );
        let r = refuse_sheet(&s(), 310, "No receipt");
        assert_eq!(r["params"]["args"][4], "ipai_refuse");
        assert_eq!(r["params"]["args"][5], json!([[310], "No receipt"]));
        let l = expense_approver_lookup(&s(), 1042);
        assert_eq!(l["params"]["args"][3], "hr.expense");
        assert_eq!(l["params"]["args"][4], "web_read");
        assert_eq!(
            l["params"]["args"][6]["specification"]["sheet_id"]["fields"]["user_id"]["fields"]
                ["login"],
            json!({})
        );
        assert_eq!(user_lookup(&s(), 9)["params"]["args"][5], json!([[9]]));
        let st = sheet_state_read(&s(), 310);
        assert_eq!(
            st["params"]["args"],
            json!(["prod", 2, "k", "hr.expense.sheet", "read", [[310]],
                   {"fields": ["state", "ipai_submitted_at"]}])
        );
        assert_eq!(
            parse_sheet_now(&json!([{"id": 310, "state": "submit",
                                     "ipai_submitted_at": "2026-11-24 01:15:00"}])),
            SheetNow {
                state: Some("submit".into()),
                submitted_at: Some("2026-11-24 01:15:00".into())
            }
        );
        let never =
            parse_sheet_now(&json!([{"id": 310, "state": "submit", "ipai_submitted_at": false}]));
        assert_eq!(never.submitted_at, None);
        assert_eq!(parse_sheet_now(&json!([])), SheetNow::default());
        let note = sheet_note(&s(), 310, "Approved in Mattermost by @maria");
        assert_eq!(
            note["params"]["args"],
            json!(["prod", 2, "k", "hr.expense.sheet", "message_post", [[310]],
                   {"body": "Approved in Mattermost by @maria", "message_type": "comment",
                    "subtype_xmlid": "mail.mt_note"}])
        );
    }

    #[test]
    fn answers_errors_and_people_are_parsed() {
        assert_eq!(
            parse_response(br#"{"jsonrpc":"2.0","id":1,"result":7}"#).unwrap(),
            json!(7)
        );
        let err = parse_response(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":200,"message":"Odoo Server Error","data":{"name":"odoo.exceptions.UserError","message":"You cannot approve your own expenses"}}}"#,
        )
        .unwrap_err();
        assert!(err.contains("UserError") && err.contains("own expenses"));
        assert!(parse_response(b"<html>").is_err());
        // A method returning None: Odoo 18 leaves `result` out.
        assert_eq!(
            parse_response(br#"{"jsonrpc": "2.0", "id": 2}"#).unwrap(),
            Value::Null
        );
        assert!(parse_response(br#"{"id": 2}"#).is_err());
        assert_eq!(parse_uid(&json!(2)).unwrap(), 2);
        assert!(parse_uid(&json!(false)).is_err());
        let (sheet, approver) = parse_expense_approver(&json!([{"id": 1042, "sheet_id": {
            "id": 310, "name": "Nov", "total_amount": 3750.5, "currency_id": {"id": 2, "name": "PHP"},
            "expense_line_ids": [1042, 1043, 1044],
            "user_id": {"id": 5, "name": "Maria Santos", "login": "maria", "email": "Maria.Santos@example.com"}}}]));
        assert_eq!(
            sheet,
            Some(Report {
                id: 310,
                name: Some("Nov".into()),
                total: Some("3750.5".into()),
                currency: Some("PHP".into()),
                lines: Some(3),
            })
        );
        let approver = approver.unwrap();
        assert_eq!(approver.handle().as_deref(), Some("maria.santos"));
        let (bare, none) =
            parse_expense_approver(&json!([{"id": 1, "sheet_id": {"id": 3, "user_id": false}}]));
        assert_eq!(none, None);
        assert_eq!(
            bare,
            Some(Report {
                id: 3,
                ..Report::default()
            })
        );
        let (no_report, _) = parse_expense_approver(&json!([{"id": 1, "sheet_id": false}]));
        assert_eq!(no_report, None);
        let login_only = Person {
            login: Some("Ana".into()),
            ..Person::default()
        };
        assert_eq!(login_only.handle().as_deref(), Some("ana"));
        assert!(approve_outcome(&json!(true)).is_ok());
        assert!(approve_outcome(&Value::Null).is_ok());
        assert!(approve_outcome(
            &json!({"type": "ir.actions.act_window", "res_model": "hr.expense.approve.duplicate"})
        )
        .unwrap_err()
        .contains("duplicate"));
        assert_eq!(
            record_url("https://odoo.x/", "project.task", "7"),
            "https://odoo.x/web#id=7&model=project.task&view_type=form"
        );
    }
}
