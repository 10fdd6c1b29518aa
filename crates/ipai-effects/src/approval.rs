//! Who may decide on an expense report from Mattermost, and what a click is answered —
//! free of Spin, so every rule is unit-tested natively (SPEC §7, docs/handlers.md "Trust
//! model").
//!
//! When the approval message is planned, the report's approver (or, standing in for a
//! missing one, the configured finance approvers) is resolved to Mattermost accounts and
//! signed into the buttons' context with the employee, the submission stamp and an expiry.
//! When a button is clicked the checks below run in order, each refusal with its own answer:
//! nothing is written to Odoo unless the clicker is a signed decider, is not the report's
//! employee, is confirmed by Mattermost's directory, and the message is unexpired and still
//! stands for the report's current submission.

use crate::fields;
use crate::mattermost::{self, ActionContext, ActionRequest, Decision, MattermostUser};
use crate::odoo::SheetNow;
use serde_json::{json, Value};

/// Ledger key of an approval: one decision per report per approval message
/// (`deliveries(event_id = the expense.submitted event, channel = "odoo", target)`).
pub fn target(ctx: &ActionContext) -> String {
    format!("hr.expense.sheet/{}", ctx.sheet_id)
}

/// Ledger key of the chatter note about a self-approval attempt: one per message.
pub fn self_approval_target(ctx: &ActionContext) -> String {
    format!("hr.expense.sheet/{}#self-approval", ctx.sheet_id)
}

/// What is recorded once Odoo accepted the decision.
pub fn record(decision: Decision, who: &str, user_id: &str) -> String {
    json!({"decision": decision.as_str(), "by": who, "user_id": user_id}).to_string()
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

/// What is recorded when a message stops deciding for good without a decision (Odoo no
/// longer has the report waiting in the message's submission): the message's one use.
pub fn closed_record(why: &str) -> String {
    json!({"closed": "superseded", "why": why}).to_string()
}

fn closed_reason(detail: &str) -> Option<String> {
    let v: Value = serde_json::from_str(detail).ok()?;
    v.get("closed")?;
    Some(
        v["why"]
            .as_str()
            .unwrap_or("the report changed")
            .to_string(),
    )
}

/// The answer to a click on a message already used (its context is good for one
/// decision): the post shows the recorded outcome, and the clicking user is told nothing
/// was changed.
pub fn already_decided(ctx: &ActionContext, detail: &str) -> Value {
    if let Some(why) = closed_reason(detail) {
        let mut v = mattermost::closed_response(
            ctx,
            "Superseded",
            &format!("{why}; this message no longer decides anything"),
        );
        v["ephemeral_text"] = json!(format!(
            "{}: this message no longer decides anything ({why}); nothing was changed.",
            ctx.title
        ));
        return v;
    }
    match recorded(detail) {
        Some((decision, by)) => {
            let mut v = mattermost::update_response(ctx, decision, &by, "");
            v["ephemeral_text"] = json!(format!(
                "{} was already {} by {by}: these buttons decide once; nothing was changed.",
                ctx.title,
                decision.done_word().to_lowercase()
            ));
            v
        }
        None => mattermost::ephemeral(
            "This report was already decided from this message; nothing was changed.",
        ),
    }
}

// ------------------------------------------------------------------- at planning time

/// The report's employee, who never decides on their own report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Employee {
    /// Lower-cased; empty when the payload had none.
    pub email: String,
    /// Their Mattermost account, when the directory knows the address.
    pub account: Option<MattermostUser>,
}

impl Employee {
    /// Whether `user` is this employee (by Mattermost id, or by email address).
    pub fn is(&self, user: &MattermostUser) -> bool {
        let same_id = self.account.as_ref().is_some_and(|a| a.id == user.id);
        let same_email = !self.email.is_empty() && self.email.eq_ignore_ascii_case(&user.email);
        same_id || same_email
    }
}

/// Who decides on an approval message, as resolved when it is planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approvers {
    /// The report's approver, or the finance approvers standing in; empty = nobody
    /// could be resolved (the message then has no buttons).
    pub users: Vec<MattermostUser>,
    /// Why the finance approvers stand in for the report's approver; `None` = they do not.
    pub stand_in_reason: Option<String>,
}

/// The report's approver as the decider, or why the finance approvers must stand in:
/// `approver_email` is the Odoo approver's address, `account` what the directory found
/// for it.
pub fn report_approver(
    approver_email: Option<&str>,
    account: Option<MattermostUser>,
    employee: &Employee,
) -> Result<MattermostUser, String> {
    let Some(email) = approver_email else {
        return Err("no approver is set on the report in Odoo".into());
    };
    if !employee.email.is_empty() && employee.email.eq_ignore_ascii_case(email) {
        return Err("the report's approver in Odoo is its own employee".into());
    }
    match account {
        None => Err(format!("the approver {email} has no Mattermost account")),
        Some(a) if !a.active => Err(format!(
            "the approver {email}'s Mattermost account is deactivated"
        )),
        Some(a) if employee.is(&a) => Err("the report's approver is its own employee".into()),
        Some(a) => Ok(a),
    }
}

/// The finance approvers who stand in (`mattermost_finance_approvers`, each address with
/// what the directory found): active accounts other than the employee, each once.
pub fn stand_ins(
    candidates: Vec<(String, Option<MattermostUser>)>,
    employee: &Employee,
) -> Vec<MattermostUser> {
    let mut users: Vec<MattermostUser> = Vec::new();
    for (email, account) in candidates {
        let Some(a) = account else { continue };
        let is_employee =
            employee.is(&a) || (!employee.email.is_empty() && employee.email == email);
        if a.active && !is_employee && !users.iter().any(|u| u.id == a.id) {
            users.push(a);
        }
    }
    users
}

/// The finance approvers' addresses from `mattermost_finance_approvers` (comma-separated).
pub fn finance_approver_emails(setting: Option<&str>) -> Vec<String> {
    setting
        .unwrap_or_default()
        .split([',', '\n', ' '])
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| e.contains('@'))
        .collect()
}

// ---------------------------------------------------------------------- at click time

/// The newest approval request of a report: `($1 = "hr.expense.sheet/<id>@%")` → one row,
/// its key, or `''` when the report has none. (The pattern matches only approval
/// requests: a decision's key has `/<transition>` before its `@`.)
pub const NEWEST_REQUEST_SQL: &str = "SELECT coalesce((SELECT r.message_key \
    FROM integration.report_messages r WHERE r.message_key LIKE $1::text \
    ORDER BY r.created_at DESC, r.message_key DESC LIMIT 1), '')";

/// `NEWEST_REQUEST_SQL`'s pattern for a report (its id is a number: no LIKE wildcards).
pub fn requests_of_sheet(sheet_id: i64) -> String {
    format!("hr.expense.sheet/{sheet_id}@%")
}

/// The `claim_report_message` key of the submission a message was made for.
pub fn request_key(ctx: &ActionContext) -> Option<String> {
    (!ctx.submitted_at.is_empty())
        .then(|| format!("hr.expense.sheet/{}@{}", ctx.sheet_id, ctx.submitted_at))
}

/// Why a click decides nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A genuine button from before approvers were bound to messages.
    Outdated,
    /// The clicker is the report's employee.
    SelfApproval,
    /// The clicker is not among the message's signed deciders.
    NotADecider,
    /// Mattermost's directory does not confirm the clicker (unknown id, deactivated,
    /// or a `user_name` that is not the id's).
    IdentityUnconfirmed(String),
    /// The buttons are past their expiry.
    Expired,
    /// The message no longer stands for the report's current submission.
    Superseded(String),
}

impl Refusal {
    /// A short name for logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Outdated => "outdated",
            Refusal::SelfApproval => "self_approval",
            Refusal::NotADecider => "not_a_decider",
            Refusal::IdentityUnconfirmed(_) => "identity_unconfirmed",
            Refusal::Expired => "expired",
            Refusal::Superseded(_) => "superseded",
        }
    }

    /// The answer to Mattermost. Refusals about the clicker go to the clicker alone
    /// (`ephemeral_text`, the post unchanged); an expired or superseded message is marked
    /// so, its buttons removed.
    pub fn answer(&self, ctx: Option<&ActionContext>) -> Value {
        let title = ctx.map_or("This report", |c| c.title.as_str());
        match (self, ctx) {
            (Refusal::Expired, Some(ctx)) => mattermost::closed_response(
                ctx,
                "Expired",
                &format!(
                    "these buttons expired on {}; approve or refuse the report in Odoo",
                    human_time(ctx.expires_at)
                ),
            ),
            (Refusal::Superseded(why), Some(ctx)) => mattermost::closed_response(
                ctx,
                "Superseded",
                &format!("{why}; this message no longer decides anything"),
            ),
            (Refusal::SelfApproval, _) => mattermost::ephemeral(&format!(
                "{title}: you submitted this report, so you cannot approve or refuse it. \
                 Nothing was changed; the attempt is noted on the report in Odoo."
            )),
            (Refusal::NotADecider, Some(ctx)) => mattermost::ephemeral(&format!(
                "{title}: only {} can approve or refuse this report. Nothing was changed.",
                ctx.deciders.mentions(" or ")
            )),
            (Refusal::IdentityUnconfirmed(why), _) => mattermost::ephemeral(&format!(
                "{title}: your Mattermost identity could not be confirmed ({why}). \
                 Nothing was changed."
            )),
            _ => mattermost::ephemeral(
                "This button was made before approvals were bound to their approver and no \
                 longer decides anything: approve or refuse the report in Odoo.",
            ),
        }
    }
}

fn human_time(unix_s: i64) -> String {
    chrono::DateTime::from_timestamp(unix_s, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| unix_s.to_string())
}

/// The checks on the signed context alone: the employee never decides (by Mattermost
/// id), and only a signed decider does.
pub fn check_clicker(ctx: &ActionContext, click: &ActionRequest) -> Result<(), Refusal> {
    if !ctx.employee_user_id.is_empty() && click.user_id == ctx.employee_user_id {
        return Err(Refusal::SelfApproval);
    }
    if !ctx.deciders.includes(&click.user_id) {
        return Err(Refusal::NotADecider);
    }
    Ok(())
}

/// The checks against Mattermost's directory entry for the click's `user_id` (`None` =
/// unknown to Mattermost): an active account whose username is the click's `user_name`
/// (when the request carries one, as Mattermost's do), and not the employee's email address.
pub fn check_directory(
    ctx: &ActionContext,
    click: &ActionRequest,
    account: Option<&MattermostUser>,
) -> Result<(), Refusal> {
    let Some(a) = account else {
        return Err(Refusal::IdentityUnconfirmed(
            "Mattermost does not know this user id".into(),
        ));
    };
    if !a.active {
        return Err(Refusal::IdentityUnconfirmed(
            "the account is deactivated".into(),
        ));
    }
    let user_name = click.user_name.trim();
    if !user_name.is_empty() && !a.username.eq_ignore_ascii_case(user_name) {
        return Err(Refusal::IdentityUnconfirmed(
            "the user name does not belong to this user id".into(),
        ));
    }
    if !ctx.employee_email.is_empty() && a.email.eq_ignore_ascii_case(&ctx.employee_email) {
        return Err(Refusal::SelfApproval);
    }
    Ok(())
}

/// Refuses buttons past their expiry (`now` in Unix seconds).
pub fn check_expiry(ctx: &ActionContext, now: i64) -> Result<(), Refusal> {
    if now > ctx.expires_at {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// Refuses a message whose submission is not the report's newest approval request
/// (`newest` from `NEWEST_REQUEST_SQL`; `''` = none recorded). A message without a
/// submission stamp is judged by Odoo's state alone.
pub fn check_newest_request(ctx: &ActionContext, newest: &str) -> Result<(), Refusal> {
    match request_key(ctx) {
        Some(mine) if !newest.is_empty() && newest != mine => Err(Refusal::Superseded(
            "the report was submitted again after this message was posted".into(),
        )),
        _ => Ok(()),
    }
}

/// Refuses a report that Odoo no longer has waiting for approval in the submission the
/// message was made for (`now` from `odoo::parse_sheet_now`): not `submit` (decided, reset
/// or gone), or submitted again since — even if the bus has not received that submission's
/// event yet.
pub fn check_sheet_now(ctx: &ActionContext, now: &SheetNow) -> Result<(), Refusal> {
    match now.state.as_deref() {
        Some("submit") => {}
        Some(other) => {
            return Err(Refusal::Superseded(format!(
                "the report is no longer waiting for approval in Odoo (state: {other})"
            )))
        }
        None => {
            return Err(Refusal::Superseded(
                "the report no longer exists in Odoo".into(),
            ))
        }
    }
    let signed = fields::parse_datetime(&ctx.submitted_at);
    let current = now.submitted_at.as_deref().and_then(fields::parse_datetime);
    match (signed, current) {
        (Some(signed), Some(current)) if signed != current => Err(Refusal::Superseded(
            "the report was submitted again in Odoo after this message was posted".into(),
        )),
        _ => Ok(()),
    }
}

/// The signed username of a decider (the click's `user_name` cannot change what is shown).
pub fn decider_name(ctx: &ActionContext, user_id: &str) -> String {
    ctx.deciders
        .user_ids
        .iter()
        .position(|id| id == user_id)
        .and_then(|i| ctx.deciders.usernames.get(i))
        .map(|u| format!("@{u}"))
        .unwrap_or_else(|| "someone".into())
}

fn submission(ctx: &ActionContext) -> String {
    if ctx.submitted_at.is_empty() {
        String::new()
    } else {
        format!(" for the submission of {}", ctx.submitted_at)
    }
}

/// The chatter note naming who decided in Mattermost.
pub fn decision_note(ctx: &ActionContext, decision: Decision, who: &str, user_id: &str) -> String {
    format!(
        "{} in Mattermost by {who} (Mattermost user id {user_id}), from the approval message{}.",
        decision.done_word(),
        submission(ctx)
    )
}

/// The chatter note about the employee's attempt to decide on their own report.
pub fn self_approval_note(ctx: &ActionContext, click: &ActionRequest) -> String {
    format!(
        "{} (Mattermost user id {}), the report's own employee, tried to {} it from the \
         approval message{}. Refused: nobody approves or refuses their own expenses.",
        click.who(),
        click.user_id,
        ctx.decision.as_str(),
        submission(ctx)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mattermost::Deciders;

    const MARIA: &str = "mariasantos000000000000001";
    const JUAN: &str = "juandelacruz00000000000002";

    fn ctx() -> ActionContext {
        ActionContext {
            decision: Decision::Refuse,
            event_id: "e".into(),
            expense_id: "1042".into(),
            sheet_id: "310".into(),
            title: "Expense report 310".into(),
            summary: "s".into(),
            submitted_at: "2026-11-24T01:15:00Z".into(),
            expires_at: 1_800_000_000,
            deciders: Deciders {
                user_ids: vec![MARIA.into()],
                usernames: vec!["maria.santos".into()],
            },
            employee_user_id: JUAN.into(),
            employee_email: "juan.delacruz@example.com".into(),
        }
    }

    fn click(user_id: &str, user_name: &str) -> ActionRequest {
        ActionRequest {
            user_id: user_id.into(),
            user_name: user_name.into(),
            post_id: "p".into(),
            channel_id: "c".into(),
            context: Value::Null,
        }
    }

    fn account(id: &str, username: &str, email: &str) -> MattermostUser {
        MattermostUser {
            id: id.into(),
            username: username.into(),
            email: email.into(),
            active: true,
        }
    }

    fn maria() -> MattermostUser {
        account(MARIA, "maria.santos", "maria.santos@example.com")
    }

    fn is_ephemeral_only(v: &Value) -> bool {
        v.get("update").is_none() && v["ephemeral_text"].is_string()
    }

    #[test]
    fn decisions_are_recorded_and_replayed_for_a_second_click() {
        assert_eq!(target(&ctx()), "hr.expense.sheet/310");
        assert_eq!(
            self_approval_target(&ctx()),
            "hr.expense.sheet/310#self-approval"
        );
        let d = record(Decision::Approve, "@maria", MARIA);
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
        // A message closed without a decision stays closed.
        let closed = already_decided(&ctx(), &closed_record("the report was reset"));
        assert!(closed["update"]["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("**Superseded**: the report was reset"));
        assert!(closed["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("no longer decides anything"));
        assert_eq!(refuse_reason("@maria"), "Refused in Mattermost by @maria");
    }

    #[test]
    fn the_signed_approver_passes_every_check() {
        let c = ctx();
        let k = click(MARIA, "maria.santos");
        assert_eq!(check_clicker(&c, &k), Ok(()));
        assert_eq!(check_directory(&c, &k, Some(&maria())), Ok(()));
        // A request without user_name is judged by its user_id alone.
        assert_eq!(
            check_directory(&c, &click(MARIA, ""), Some(&maria())),
            Ok(())
        );
        assert_eq!(check_expiry(&c, c.expires_at), Ok(()));
        let mine = "hr.expense.sheet/310@2026-11-24T01:15:00Z";
        assert_eq!(check_newest_request(&c, mine), Ok(()));
        assert_eq!(check_newest_request(&c, ""), Ok(()));
        let waiting = SheetNow {
            state: Some("submit".into()),
            submitted_at: Some("2026-11-24 01:15:00".into()),
        };
        assert_eq!(check_sheet_now(&c, &waiting), Ok(()));
        assert_eq!(decider_name(&c, MARIA), "@maria.santos");
        let note = decision_note(&c, Decision::Approve, "@maria.santos", MARIA);
        assert_eq!(
            note,
            "Approved in Mattermost by @maria.santos (Mattermost user id \
             mariasantos000000000000001), from the approval message for the submission of \
             2026-11-24T01:15:00Z."
        );
    }

    #[test]
    fn refusal_the_employee_by_mattermost_id_or_email() {
        let c = ctx();
        let by_id = check_clicker(&c, &click(JUAN, "juan.delacruz")).unwrap_err();
        assert_eq!(by_id, Refusal::SelfApproval);
        // Somehow named approver (a second account): caught by the directory's email.
        let mut named = c.clone();
        named.deciders = Deciders::of(&[account("juan2", "jdc", "Juan.DelaCruz@example.com")]);
        let k = click("juan2", "jdc");
        assert_eq!(check_clicker(&named, &k), Ok(()));
        let by_email = check_directory(
            &named,
            &k,
            Some(&account("juan2", "jdc", "juan.delacruz@example.com")),
        )
        .unwrap_err();
        assert_eq!(by_email, Refusal::SelfApproval);
        let answer = by_email.answer(Some(&c));
        assert!(is_ephemeral_only(&answer), "{answer}");
        assert!(answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("you submitted this report"));
        let note = self_approval_note(&c, &click(JUAN, "juan.delacruz"));
        assert!(
            note.starts_with("@juan.delacruz (Mattermost user id juandelacruz00000000000002)")
                && note.contains("tried to refuse")
                && note.contains("Refused"),
            "{note}"
        );
    }

    #[test]
    fn refusal_another_user() {
        let c = ctx();
        let r = check_clicker(&c, &click("rosareviewer00000000000005", "rosa")).unwrap_err();
        assert_eq!(r, Refusal::NotADecider);
        let answer = r.answer(Some(&c));
        assert!(is_ephemeral_only(&answer));
        assert!(answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("only @maria.santos can approve"));
        // No user id at all decides nothing either.
        assert_eq!(
            check_clicker(&c, &click("", "maria.santos")),
            Err(Refusal::NotADecider)
        );
    }

    #[test]
    fn refusal_forged_user_id_or_name() {
        let c = ctx();
        // The approver's name with another id: not a decider.
        assert_eq!(
            check_clicker(&c, &click("mallory0000000000000000009", "maria.santos")),
            Err(Refusal::NotADecider)
        );
        // The approver's id with another name: the directory does not confirm it.
        let k = click(MARIA, "mallory");
        assert_eq!(check_clicker(&c, &k), Ok(()));
        let r = check_directory(&c, &k, Some(&maria())).unwrap_err();
        assert_eq!(r.code(), "identity_unconfirmed");
        assert!(is_ephemeral_only(&r.answer(Some(&c))));
        assert_eq!(
            check_directory(&c, &click(MARIA, "maria.santos"), None)
                .unwrap_err()
                .code(),
            "identity_unconfirmed"
        );
        let mut gone = maria();
        gone.active = false;
        assert_eq!(
            check_directory(&c, &click(MARIA, "maria.santos"), Some(&gone))
                .unwrap_err()
                .code(),
            "identity_unconfirmed"
        );
    }

    #[test]
    fn refusal_expired() {
        let c = ctx();
        let r = check_expiry(&c, c.expires_at + 1).unwrap_err();
        assert_eq!(r, Refusal::Expired);
        let answer = r.answer(Some(&c));
        let att = &answer["update"]["props"]["attachments"][0];
        assert!(att.get("actions").is_none(), "buttons removed: {answer}");
        assert!(att["text"].as_str().unwrap().contains("**Expired**"));
        assert!(answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("2027-01-15 08:00 UTC"));
    }

    #[test]
    fn refusal_superseded_by_a_resubmission_or_by_odoo() {
        let c = ctx();
        let r = check_newest_request(&c, "hr.expense.sheet/310@2026-11-26T07:30:00Z").unwrap_err();
        assert_eq!(r.code(), "superseded");
        let answer = r.answer(Some(&c));
        assert!(answer["update"]["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("**Superseded**: the report was submitted again"));
        // Without a stamp only Odoo can tell.
        let mut unstamped = c.clone();
        unstamped.submitted_at = String::new();
        assert_eq!(request_key(&unstamped), None);
        assert_eq!(
            check_newest_request(&unstamped, "hr.expense.sheet/310@x"),
            Ok(())
        );
        let decided = SheetNow {
            state: Some("approve".into()),
            submitted_at: None,
        };
        assert!(
            check_sheet_now(&c, &decided).unwrap_err().answer(Some(&c))["update"]["props"]
                ["attachments"][0]["text"]
                .as_str()
                .unwrap()
                .contains("state: approve")
        );
        assert_eq!(
            check_sheet_now(&c, &SheetNow::default())
                .unwrap_err()
                .code(),
            "superseded"
        );
        // Refused, corrected and submitted again in Odoo before the bus saw the new event.
        let resubmitted = SheetNow {
            state: Some("submit".into()),
            submitted_at: Some("2026-11-26 07:30:00".into()),
        };
        assert!(matches!(
            check_sheet_now(&c, &resubmitted),
            Err(Refusal::Superseded(why)) if why.contains("submitted again in Odoo")
        ));
        // Never stamped, or a message without a stamp: the state decides.
        let unstamped_sheet = SheetNow {
            state: Some("submit".into()),
            submitted_at: None,
        };
        assert_eq!(check_sheet_now(&c, &unstamped_sheet), Ok(()));
        assert_eq!(check_sheet_now(&unstamped, &resubmitted), Ok(()));
        assert_eq!(requests_of_sheet(310), "hr.expense.sheet/310@%");
    }

    #[test]
    fn refusal_outdated_button() {
        let answer = Refusal::Outdated.answer(None);
        assert!(is_ephemeral_only(&answer));
        assert!(answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("in Odoo"));
    }

    #[test]
    fn the_report_approver_decides_unless_missing_unknown_or_the_employee() {
        let juan = Employee {
            email: "juan.delacruz@example.com".into(),
            account: Some(account(JUAN, "juan.delacruz", "juan.delacruz@example.com")),
        };
        assert_eq!(
            report_approver(Some("maria.santos@example.com"), Some(maria()), &juan),
            Ok(maria())
        );
        assert!(report_approver(None, None, &juan)
            .unwrap_err()
            .contains("no approver"));
        assert!(report_approver(Some("x@example.com"), None, &juan)
            .unwrap_err()
            .contains("no Mattermost account"));
        assert!(
            report_approver(Some("Juan.DelaCruz@example.com"), None, &juan)
                .unwrap_err()
                .contains("own employee")
        );
        let same_account = account(JUAN, "juan.delacruz", "");
        assert!(
            report_approver(Some("jdc@example.com"), Some(same_account), &juan)
                .unwrap_err()
                .contains("own employee")
        );
        let mut gone = maria();
        gone.active = false;
        assert!(
            report_approver(Some("maria.santos@example.com"), Some(gone), &juan)
                .unwrap_err()
                .contains("deactivated")
        );

        let ana = account("ana", "ana.reyes", "ana.reyes@example.com");
        let users = stand_ins(
            vec![
                ("ana.reyes@example.com".into(), Some(ana.clone())),
                ("juan.delacruz@example.com".into(), juan.account.clone()),
                ("ghost@example.com".into(), None),
                ("ana.reyes@example.com".into(), Some(ana.clone())),
            ],
            &juan,
        );
        assert_eq!(users, vec![ana]);
        assert_eq!(
            finance_approver_emails(Some(" Ana.Reyes@example.com, jose.garcia@example.com,,x")),
            vec!["ana.reyes@example.com", "jose.garcia@example.com"]
        );
        assert!(finance_approver_emails(None).is_empty());
    }
}
