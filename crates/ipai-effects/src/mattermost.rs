//! Mattermost: incoming-webhook messages with message attachments, the Approve/Reject
//! interactive buttons with an HMAC-signed `context`, the callback Mattermost sends when a
//! button is clicked, and the `update` answer that replaces the buttons by the outcome.
//!
//! Webhook body (Mattermost "incoming webhooks" + "message attachments"):
//! `{"channel"?: "town-square" | "@user", "text": "...", "attachments": [{"fallback",
//! "color", "pretext", "title", "title_link", "text", "fields": [{"short", "title",
//! "value"}], "actions": [{"id", "name", "style", "integration": {"url", "context"}}]}]}`.
//! The webhook must not be locked to a channel for `channel` overrides (DMs) to work.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;
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

/// The data an approval button carries back, all text so it survives Mattermost's JSON
/// round trip unchanged (it decodes numbers into floats).
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
}

const SIGNING_DOMAIN: &str = "ipai-mattermost-action.v1\n";

type HmacSha256 = Hmac<Sha256>;

impl ActionContext {
    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in [
            ("v", "1"),
            ("action", self.decision.as_str()),
            ("event_id", &self.event_id),
            ("expense_id", &self.expense_id),
            ("sheet_id", &self.sheet_id),
            ("title", &self.title),
            ("summary", &self.summary),
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

    /// Verifies a `context` Mattermost sent back. Every field must be a string, `v` must
    /// be 1, and `sig` must match (constant-time); otherwise `Err` says what is wrong.
    pub fn verify(context: &Value, secret: &str) -> Result<Self, String> {
        if secret.is_empty() {
            return Err("no signing secret is configured".into());
        }
        let Some(obj) = context.as_object() else {
            return Err("context is not an object".into());
        };
        let mut fields = Map::new();
        let mut sig = None;
        for (k, v) in obj {
            let Some(s) = v.as_str() else {
                return Err(format!("context field {k} is not a string"));
            };
            if k == "sig" {
                sig = Some(s.to_string());
            } else {
                fields.insert(k.clone(), Value::String(s.to_string()));
            }
        }
        let Some(sig) = sig else {
            return Err("context is not signed".into());
        };
        let expected = signature(secret, &fields);
        if !bool::from(
            sig.to_ascii_lowercase()
                .as_bytes()
                .ct_eq(expected.as_bytes()),
        ) {
            return Err("context signature does not match".into());
        }
        let get = |k: &str| {
            fields
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("context lacks {k}"))
        };
        if get("v")? != "1" {
            return Err("unsupported context version".into());
        }
        let decision =
            Decision::parse(&get("action")?).ok_or_else(|| "unknown action".to_string())?;
        Ok(ActionContext {
            decision,
            event_id: get("event_id")?,
            expense_id: get("expense_id")?,
            sheet_id: get("sheet_id")?,
            title: get("title")?,
            summary: get("summary")?,
        })
    }
}

fn signature(secret: &str, fields: &Map<String, Value>) -> String {
    // serde_json's Map is ordered by key, so this text is canonical.
    let canonical = Value::Object(fields.clone()).to_string();
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(SIGNING_DOMAIN.as_bytes());
    mac.update(canonical.as_bytes());
    hex::encode(mac.finalize().into_bytes())
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
            .contains("signature"));
        let mut unsigned = ctx().signed("s3cret");
        unsigned.as_object_mut().unwrap().remove("sig");
        assert!(ActionContext::verify(&unsigned, "s3cret").is_err());
        let mut numeric = ctx().signed("s3cret");
        numeric["sheet_id"] = json!(310);
        assert!(ActionContext::verify(&numeric, "s3cret").is_err());
        assert!(ActionContext::verify(&json!("x"), "s3cret").is_err());
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
