//! The approvals callback's decisions, free of Spin: which ledger key a click is recorded
//! under, what is recorded, and what a repeated click is answered.

use crate::mattermost::{self, ActionContext, Decision};
use serde_json::{json, Value};

/// Ledger key of an approval: one decision per report per approval message
/// (`deliveries(event_id = the expense.submitted event, channel = "odoo", target)`).
pub fn target(ctx: &ActionContext) -> String {
    format!("hr.expense.sheet/{}", ctx.sheet_id)
}

/// What is recorded once Odoo accepted the decision.
pub fn record(decision: Decision, who: &str) -> String {
    json!({"decision": decision.as_str(), "by": who}).to_string()
}

/// A recorded decision: (decision, who).
pub fn recorded(detail: &str) -> Option<(Decision, String)> {
    let v: Value = serde_json::from_str(detail).ok()?;
    Some((
        Decision::parse(v["decision"].as_str()?)?,
        v["by"].as_str().unwrap_or("someone").to_string(),
    ))
}

/// The refusal reason written to Odoo.
pub fn refuse_reason(who: &str) -> String {
    format!("Refused in Mattermost by {who}")
}

/// The answer to a click on a report already decided: the post shows the recorded
/// outcome, and the clicking user is told nothing was changed.
pub fn already_decided(ctx: &ActionContext, detail: &str) -> Value {
    match recorded(detail) {
        Some((decision, by)) => {
            let mut v = mattermost::update_response(ctx, decision, &by, "");
            v["ephemeral_text"] = json!(format!(
                "{} was already {} by {by}; nothing was changed.",
                ctx.title,
                decision.done_word().to_lowercase()
            ));
            v
        }
        None => mattermost::ephemeral("This report was already decided; nothing was changed."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ActionContext {
        ActionContext {
            decision: Decision::Refuse,
            event_id: "e".into(),
            expense_id: "1042".into(),
            sheet_id: "310".into(),
            title: "Expense report 310".into(),
            summary: "s".into(),
        }
    }

    #[test]
    fn decisions_are_recorded_and_replayed_for_a_second_click() {
        assert_eq!(target(&ctx()), "hr.expense.sheet/310");
        let d = record(Decision::Approve, "@maria");
        assert_eq!(recorded(&d), Some((Decision::Approve, "@maria".into())));
        assert_eq!(recorded("garbage"), None);
        let again = already_decided(&ctx(), &d);
        assert!(again["update"]["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("**Approved** by @maria"));
        assert!(again["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("already approved by @maria"));
        assert!(already_decided(&ctx(), "").get("update").is_none());
        assert_eq!(refuse_reason("@maria"), "Refused in Mattermost by @maria");
    }
}
