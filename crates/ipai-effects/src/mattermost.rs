//! Mattermost: incoming-webhook messages with message attachments, the bot's direct
//! messages through the REST API (the only messages that carry buttons), the Approve/Reject
//! interactive buttons with an HMAC-signed `context`, the callback Mattermost sends when a
//! button is clicked, and the `update` answer that replaces the buttons by the outcome.
//!
//! A direct message from the bot (REST API v4, Bearer `mattermost_bot_token`):
//! `GET /api/v4/users/me` → the bot's user id; `POST /api/v4/channels/direct` with
//! `["<bot id>", "<user id>"]` → the channel (created once, then the same one is returned);
//! `POST /api/v4/posts` with `{"channel_id", "message", "props": {"attachments": [...]}}`.
//!
//! Webhook body (Mattermost "incoming webhooks" + "message attachments"):
//! `{"channel"?: "town-square" | "@user", "text": "...", "attachments": [{"fallback",
//! "color", "pretext", "title", "title_link", "text", "fields": [{"short", "title",
//! "value"}], "actions": [{"id", "name", "style", "integration": {"url", "context"}}]}]}`.
//! The webhook must not be locked to a channel for `channel` overrides (DMs) to work.

use ipai_core::signature::hmac_sha256_hex;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

/// Colors of the attachment's left border.
pub const COLOR_INFO: &str = "#1f6feb";
pub const COLOR_GOOD: &str = "#2da44e";
pub const COLOR_WARN: &str = "#d29922";
pub const COLOR_BAD: &str = "#cf222e";

/// One attachment field (`short` = shown two per row).
pub fn field(title: &str, value: &str, short: bool) -> Value {
    json!({"short": short, "title": title, "value": value})
}

/// A webhook message: optional channel override, text, one attachment.
pub fn message(channel: Option<&str>, text: &str, attachment: Value) -> Value {
    let mut m = Map::new();
    if let Some(c) = channel.filter(|c| !c.is_empty()) {
        m.insert("channel".into(), Value::String(c.to_string()));
    }
    m.insert("text".into(), Value::String(text.to_string()));
    m.insert("attachments".into(), Value::Array(vec![attachment]));
    Value::Object(m)
}

/// REST path of the bot's own user (`GET`).
pub const ME_PATH: &str = "/api/v4/users/me";
/// REST path creating (or finding) the direct-message channel of two users (`POST`).
pub const DIRECT_CHANNEL_PATH: &str = "/api/v4/channels/direct";
/// REST path creating a post (`POST`).
pub const POSTS_PATH: &str = "/api/v4/posts";

/// The body of `POST /api/v4/channels/direct`: the two user ids.
pub fn direct_channel_body(bot_id: &str, user_id: &str) -> Value {
    json!([bot_id, user_id])
}

/// The `id` of a channel (or any object) the REST API answered.
pub fn object_id(body: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| "Mattermost's answer has no id".to_string())
}

/// The body of `POST /api/v4/posts` putting a [`message`] (text and attachments) into a
/// channel: the attachments go under `props`, as the REST API takes them.
pub fn post_body(channel_id: &str, message: &Value) -> Value {
    json!({
        "channel_id": channel_id,
        "message": message.get("text").cloned().unwrap_or(Value::String(String::new())),
        "props": {"attachments": message.get("attachments").cloned().unwrap_or(json!([]))},
    })
}

/// What an approval button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Refuse,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Refuse => "refuse",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approve" => Some(Decision::Approve),
            "refuse" => Some(Decision::Refuse),
            _ => None,
        }
    }

    /// Past tense for the updated post.
    pub fn done_word(self) -> &'static str {
        match self {
            Decision::Approve => "Approved",
            Decision::Refuse => "Refused",
        }
    }
}

/// A Mattermost account, as the REST API (`GET /api/v4/users/...`) or the configured
/// mapping (`mattermost_user_map`) knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MattermostUser {
    /// The 26-character user id Mattermost puts in `user_id` of a button callback.
    pub id: String,
    pub username: String,
    /// Empty when Mattermost hides addresses from the bot (privacy settings).
    pub email: String,
    /// `false` for a deactivated account (`delete_at` ≠ 0).
    pub active: bool,
}

impl MattermostUser {
    /// A user object of the REST API: `{"id", "username", "email", "delete_at", ...}`.
    pub fn from_api(body: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| "Mattermost did not answer a user object".to_string())?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        if text("id").is_empty() || text("username").is_empty() {
            return Err("Mattermost's user object lacks id or username".into());
        }
        Ok(MattermostUser {
            id: text("id").to_string(),
            username: text("username").to_ascii_lowercase(),
            email: text("email").to_ascii_lowercase(),
            active: v.get("delete_at").and_then(Value::as_i64).unwrap_or(0) == 0,
        })
    }
}

/// REST path of a user by email (`GET`, bot token as Bearer). The address goes in the
/// path as Mattermost's own clients put it: `@` kept, anything outside `A-Z a-z 0-9 - _ . ~ @`
/// percent-encoded.
pub fn user_by_email_path(email: &str) -> String {
    format!("/api/v4/users/email/{}", path_segment(email.trim()))
}

/// REST path of a user by id.
pub fn user_by_id_path(user_id: &str) -> String {
    format!("/api/v4/users/{}", path_segment(user_id.trim()))
}

fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The configured mapping used when the REST API is not (no `mattermost_bot_token`):
/// `mattermost_user_map` = comma-separated `email=username:user_id` entries, e.g.
/// `maria.santos@example.com=maria.santos:kq7xpw3fujgcbcz8rgmy1tqgph`.
pub fn parse_user_map(text: &str) -> Result<Vec<MattermostUser>, String> {
    let mut users = Vec::new();
    for entry in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let parsed = entry.split_once('=').and_then(|(email, account)| {
            let (username, id) = account.split_once(':')?;
            let (email, username, id) = (email.trim(), username.trim(), id.trim());
            (email.contains('@') && !username.is_empty() && !id.is_empty()).then(|| {
                MattermostUser {
                    id: id.to_string(),
                    username: username.trim_start_matches('@').to_ascii_lowercase(),
                    email: email.to_ascii_lowercase(),
                    active: true,
                }
            })
        });
        match parsed {
            Some(u) => users.push(u),
            None => {
                return Err(format!(
                    "variable mattermost_user_map: entry {entry:?} is not email=username:user_id"
                ))
            }
        }
    }
    Ok(users)
}

/// Who may decide on an approval message: Mattermost user ids and usernames, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deciders {
    pub user_ids: Vec<String>,
    pub usernames: Vec<String>,
}

impl Deciders {
    pub fn of(users: &[MattermostUser]) -> Self {
        Deciders {
            user_ids: users.iter().map(|u| u.id.clone()).collect(),
            usernames: users.iter().map(|u| u.username.clone()).collect(),
        }
    }

    pub fn includes(&self, user_id: &str) -> bool {
        !user_id.is_empty() && self.user_ids.iter().any(|id| id == user_id)
    }

    /// The deciders' @-mentions joined by `separator`: `@maria.santos`, or
    /// `@ana.reyes or @jose.garcia` with `" or "`.
    pub fn mentions(&self, separator: &str) -> String {
        let names: Vec<String> = self.usernames.iter().map(|u| format!("@{u}")).collect();
        names.join(separator)
    }
}

/// The data an approval button carries back, all text so it survives Mattermost's JSON
/// round trip unchanged (it decodes numbers into floats). Version 2 binds the message to
/// who may decide, whose report it is, which submission it was made for and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionContext {
    pub decision: Decision,
    /// The `expense.submitted` event (outbox id) the message was posted for.
    pub event_id: String,
    pub expense_id: String,
    pub sheet_id: String,
    /// Title and one-line summary shown again when the post is updated.
    pub title: String,
    pub summary: String,
    /// The submission the message stands for: the report's `submitted_at` as the payload
    /// carried it (the stamp in `claim_report_message`'s key), empty when it had none.
    pub submitted_at: String,
    /// Unix seconds after which the buttons are refused.
    pub expires_at: i64,
    /// The only Mattermost users whose click decides.
    pub deciders: Deciders,
    /// The report's employee, who may never decide on it: Mattermost user id (empty when
    /// unknown) and email address (lower-cased, empty when unknown).
    pub employee_user_id: String,
    pub employee_email: String,
}

/// Why a button's `context` is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextError {
    /// Not signed by us, altered, or malformed: answered 401.
    Invalid(String),
    /// Genuinely signed, but by a version that bound no approver (v1): refused to the
    /// clicker, never decided.
    Outdated,
}

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContextError::Invalid(m) => f.write_str(m),
            ContextError::Outdated => f.write_str("the button predates approver binding"),
        }
    }
}

const SIGNING_DOMAIN: &str = "ipai-mattermost-action.v1\n";
const CONTEXT_VERSION: &str = "2";

impl ActionContext {
    fn fields(&self) -> Map<String, Value> {
        let expires_at = self.expires_at.to_string();
        let approver_ids = self.deciders.user_ids.join(",");
        let approver_names = self.deciders.usernames.join(",");
        let mut m = Map::new();
        for (k, v) in [
            ("v", CONTEXT_VERSION),
            ("action", self.decision.as_str()),
            ("event_id", &self.event_id),
            ("expense_id", &self.expense_id),
            ("sheet_id", &self.sheet_id),
            ("title", &self.title),
            ("summary", &self.summary),
            ("submitted_at", &self.submitted_at),
            ("expires_at", &expires_at),
            ("approver_ids", &approver_ids),
            ("approver_names", &approver_names),
            ("employee_user_id", &self.employee_user_id),
            ("employee_email", &self.employee_email),
        ] {
            m.insert(k.to_string(), Value::String(v.to_string()));
        }
        m
    }

    /// The `context` object for the button: the fields plus `sig`, the hex
    /// HMAC-SHA256 over the canonical JSON of the fields (keys sorted).
    pub fn signed(&self, secret: &str) -> Value {
        let mut m = self.fields();
        let sig = signature(secret, &m);
        m.insert("sig".into(), Value::String(sig));
        Value::Object(m)
    }

    /// Verifies a `context` Mattermost sent back. Every field must be a string and `sig`
    /// must match (constant-time); a genuine version-1 context is `Outdated`; anything
    /// else wrong is `Invalid` saying what.
    pub fn verify(context: &Value, secret: &str) -> Result<Self, ContextError> {
        let invalid = |m: &str| ContextError::Invalid(m.to_string());
        if secret.is_empty() {
            return Err(invalid("no signing secret is configured"));
        }
        let Some(obj) = context.as_object() else {
            return Err(invalid("context is not an object"));
        };
        let mut fields = Map::new();
        let mut sig = None;
        for (k, v) in obj {
            let Some(s) = v.as_str() else {
                return Err(ContextError::Invalid(format!(
                    "context field {k} is not a string"
                )));
            };
            if k == "sig" {
                sig = Some(s.to_string());
            } else {
                fields.insert(k.clone(), Value::String(s.to_string()));
            }
        }
        let Some(sig) = sig else {
            return Err(invalid("context is not signed"));
        };
        let expected = signature(secret, &fields);
        if !bool::from(
            sig.to_ascii_lowercase()
                .as_bytes()
                .ct_eq(expected.as_bytes()),
        ) {
            return Err(invalid("context signature does not match"));
        }
        let get = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ContextError::Invalid(format!("context lacks {k}")))
        };
        match get("v")?.as_str() {
            CONTEXT_VERSION => {}
            "1" => return Err(ContextError::Outdated),
            _ => return Err(invalid("unsupported context version")),
        }
        let decision = Decision::parse(&get("action")?).ok_or_else(|| invalid("unknown action"))?;
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let deciders = Deciders {
            user_ids: list(get("approver_ids")?),
            usernames: list(get("approver_names")?),
        };
        if deciders.user_ids.is_empty() || deciders.user_ids.len() != deciders.usernames.len() {
            return Err(invalid("context names no approver"));
        }
        Ok(ActionContext {
            decision,
            event_id: get("event_id")?,
            expense_id: get("expense_id")?,
            sheet_id: get("sheet_id")?,
            title: get("title")?,
            summary: get("summary")?,
            submitted_at: get("submitted_at")?,
            expires_at: get("expires_at")?
                .parse()
                .map_err(|_| invalid("expires_at is not a number"))?,
            deciders,
            employee_user_id: get("employee_user_id")?,
            employee_email: get("employee_email")?,
        })
    }
}

fn signature(secret: &str, fields: &Map<String, Value>) -> String {
    // serde_json's Map is ordered by key, so this text is canonical.
    let canonical = Value::Object(fields.clone()).to_string();
    hmac_sha256_hex(
        secret.as_bytes(),
        &[SIGNING_DOMAIN.as_bytes(), canonical.as_bytes()],
    )
}

/// An Approve or Reject button posting to `actions_url` with its signed context.
pub fn button(id: &str, name: &str, style: &str, actions_url: &str, context: Value) -> Value {
    json!({"id": id, "name": name, "type": "button", "style": style,
           "integration": {"url": actions_url, "context": context}})
}

/// The request Mattermost sends to the integration URL when a button is clicked.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionRequest {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub post_id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub context: Value,
}

impl ActionRequest {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("not a Mattermost action request: {e}"))
    }

    /// `@name` of the clicking user, or their id when Mattermost sent no name.
    pub fn who(&self) -> String {
        if !self.user_name.is_empty() {
            format!("@{}", self.user_name)
        } else if !self.user_id.is_empty() {
            format!("user {}", self.user_id)
        } else {
            "someone".into()
        }
    }
}

/// The answer replacing the post's buttons by the outcome: the same title and summary,
/// no actions, the decision and who made it.
pub fn update_response(ctx: &ActionContext, decision: Decision, who: &str, note: &str) -> Value {
    let color = match decision {
        Decision::Approve => COLOR_GOOD,
        Decision::Refuse => COLOR_BAD,
    };
    let outcome = format!("**{}** by {who}", decision.done_word());
    let text = if note.is_empty() {
        format!("{}\n{outcome}", ctx.summary)
    } else {
        format!("{}\n{outcome}\n{note}", ctx.summary)
    };
    json!({
        "update": {
            "message": "",
            "props": {"attachments": [{
                "fallback": format!("{}: {} by {who}", ctx.title, decision.done_word()),
                "color": color,
                "title": ctx.title,
                "text": text,
                "fields": [field("Decision", &format!("{} by {who}", decision.done_word()), false)],
            }]}
        },
        "ephemeral_text": format!("{}: {}.", ctx.title, decision.done_word().to_lowercase()),
    })
}

/// The answer replacing the post's buttons by a note that nothing can be decided on it
/// any more (superseded, expired): the same title and summary, no actions.
pub fn closed_response(ctx: &ActionContext, headline: &str, explanation: &str) -> Value {
    json!({
        "update": {
            "message": "",
            "props": {"attachments": [{
                "fallback": format!("{}: {headline}", ctx.title),
                "color": COLOR_WARN,
                "title": ctx.title,
                "text": format!("{}\n**{headline}**: {explanation}", ctx.summary),
            }]}
        },
        "ephemeral_text": format!("{}: {headline}. {explanation}", ctx.title),
    })
}

/// An answer that leaves the post as it is and tells only the clicking user.
pub fn ephemeral(text: &str) -> Value {
    json!({"ephemeral_text": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ActionContext {
        ActionContext {
            decision: Decision::Approve,
            event_id: "0b6c3f3e-1111-4a4a-9c9c-000000000001".into(),
            expense_id: "1042".into(),
            sheet_id: "310".into(),
            title: "Expense report 310".into(),
            summary: "Juan · PHP 1,250.50".into(),
            submitted_at: "2026-11-24T01:15:00Z".into(),
            expires_at: 1_796_000_000,
            deciders: Deciders {
                user_ids: vec!["mariasantos000000000000001".into()],
                usernames: vec!["maria.santos".into()],
            },
            employee_user_id: "juandelacruz00000000000002".into(),
            employee_email: "juan.delacruz@example.com".into(),
        }
    }

    #[test]
    fn a_signed_context_verifies_and_round_trips_through_json() {
        let signed = ctx().signed("s3cret");
        let text = signed.to_string();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ActionContext::verify(&back, "s3cret").unwrap(), ctx());
    }

    #[test]
    fn forged_altered_unsigned_or_wrong_secret_contexts_are_rejected() {
        let mut signed = ctx().signed("s3cret");
        assert!(ActionContext::verify(&signed, "other").is_err());
        assert!(ActionContext::verify(&signed, "").is_err());
        // Turning an approve button into a refuse one breaks the signature.
        signed["action"] = json!("refuse");
        assert!(ActionContext::verify(&signed, "s3cret")
            .unwrap_err()
            .to_string()
            .contains("signature"));
        let mut unsigned = ctx().signed("s3cret");
        unsigned.as_object_mut().unwrap().remove("sig");
        assert!(ActionContext::verify(&unsigned, "s3cret").is_err());
        let mut numeric = ctx().signed("s3cret");
        numeric["sheet_id"] = json!(310);
        assert!(ActionContext::verify(&numeric, "s3cret").is_err());
        assert!(ActionContext::verify(&json!("x"), "s3cret").is_err());
        // Another approver, a later expiry or another submission under a genuine signature.
        for (k, v) in [
            ("approver_ids", "rosareviewer00000000000005"),
            ("expires_at", "4102444800"),
            ("submitted_at", "2026-12-01T00:00:00Z"),
            ("employee_user_id", ""),
        ] {
            let mut altered = ctx().signed("s3cret");
            altered[k] = json!(v);
            assert!(
                matches!(
                    ActionContext::verify(&altered, "s3cret"),
                    Err(ContextError::Invalid(_))
                ),
                "{k}"
            );
        }
    }

    #[test]
    fn a_genuine_version_1_context_is_outdated_and_one_without_approver_is_invalid() {
        // As the bus signed buttons before approvers were bound to them.
        let mut v1 = Map::new();
        for (k, v) in [
            ("v", "1"),
            ("action", "approve"),
            ("event_id", "e"),
            ("expense_id", "1"),
            ("sheet_id", "310"),
            ("title", "t"),
            ("summary", "s"),
        ] {
            v1.insert(k.into(), json!(v));
        }
        let sig = signature("s3cret", &v1);
        v1.insert("sig".into(), json!(sig));
        assert_eq!(
            ActionContext::verify(&Value::Object(v1), "s3cret"),
            Err(ContextError::Outdated)
        );
        let mut nobody = ctx();
        nobody.deciders = Deciders::default();
        assert!(matches!(
            ActionContext::verify(&nobody.signed("s3cret"), "s3cret"),
            Err(ContextError::Invalid(_))
        ));
    }

    #[test]
    fn users_come_from_the_rest_api_or_the_configured_map() {
        let u = MattermostUser::from_api(
            br#"{"id":"mariasantos000000000000001","username":"Maria.Santos","email":"maria.santos@example.com","delete_at":0,"roles":"system_user"}"#,
        )
        .unwrap();
        assert_eq!((u.username.as_str(), u.active), ("maria.santos", true));
        let gone = MattermostUser::from_api(
            br#"{"id":"x","username":"old","email":"","delete_at":1764000000000}"#,
        )
        .unwrap();
        assert!(!gone.active);
        assert!(MattermostUser::from_api(br#"{"message":"nope"}"#).is_err());
        assert_eq!(
            user_by_email_path("Maria+fin@example.com"),
            "/api/v4/users/email/Maria%2Bfin@example.com"
        );
        assert_eq!(user_by_id_path("abc/../x"), "/api/v4/users/abc%2F..%2Fx");
        let map = parse_user_map(
            "maria.santos@example.com=maria.santos:mariasantos000000000000001,\n Ana.Reyes@example.com=@ana.reyes:anareyes000000000000000003",
        )
        .unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map[1].email, "ana.reyes@example.com");
        assert_eq!(map[1].username, "ana.reyes");
        assert!(parse_user_map("").unwrap().is_empty());
        assert!(parse_user_map("maria=x")
            .unwrap_err()
            .contains("mattermost_user_map"));
        let d = Deciders::of(&map);
        assert!(d.includes("anareyes000000000000000003") && !d.includes(""));
        assert_eq!(d.mentions(" or "), "@maria.santos or @ana.reyes");
        assert_eq!(d.mentions(", "), "@maria.santos, @ana.reyes");
    }

    #[test]
    fn the_update_drops_the_buttons_and_names_who_decided() {
        let u = update_response(&ctx(), Decision::Approve, "@maria", "");
        let att = &u["update"]["props"]["attachments"][0];
        assert!(att.get("actions").is_none());
        assert_eq!(att["color"], COLOR_GOOD);
        assert!(att["text"]
            .as_str()
            .unwrap()
            .contains("**Approved** by @maria"));
        assert_eq!(u["update"]["message"], "");
    }

    #[test]
    fn a_direct_message_is_a_channel_of_two_and_a_post_with_the_attachments_under_props() {
        assert_eq!(direct_channel_body("bot", "maria"), json!(["bot", "maria"]));
        assert_eq!(object_id(br#"{"id":"c1","type":"D"}"#).unwrap(), "c1");
        assert!(object_id(br#"{"id":""}"#).is_err() && object_id(b"nope").is_err());
        let m = message(None, "hi", json!({"title": "t"}));
        assert_eq!(
            post_body("c1", &m),
            json!({"channel_id": "c1", "message": "hi",
                   "props": {"attachments": [{"title": "t"}]}})
        );
    }

    #[test]
    fn messages_carry_the_channel_only_when_given() {
        let m = message(None, "hi", json!({"fallback": "x"}));
        assert!(m.get("channel").is_none());
        let m = message(Some("@ana"), "hi", json!({}));
        assert_eq!(m["channel"], "@ana");
        let r = ActionRequest::parse(br#"{"user_name":"maria","context":{"a":"b"}}"#).unwrap();
        assert_eq!(r.who(), "@maria");
        assert!(ActionRequest::parse(b"nope").is_err());
    }
}
