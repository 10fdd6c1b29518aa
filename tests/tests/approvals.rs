//! SPEC §7 approvals: Mattermost's button callback (`POST /mattermost/actions`). Only the
//! approver the message was bound to decides — never the report's employee, another user
//! or a forged `user_id` — and only on the report's current, unexpired submission; the
//! decision is made in Odoo exactly once and named in the report's chatter, and the post
//! is updated. The buttons reach only the decider, as a direct message from the bot; a
//! message decides once and expires. Odoo and Mattermost (webhook + REST API) are loopback
//! fakes that check each request's shape (tests/support/services.rs).

use ipai_effects::mattermost::{ActionContext, Deciders, Decision};
use ipai_tests::manifest;
use ipai_tests::runtime::TEST_ACTION_SECRET;
use ipai_tests::services::{
    self, OdooWrites, Services, ANA_MM_ID, JOSE_MM_ID, JUAN_MM_ID, MARIA_MM_ID, ROSA_MM_ID,
};
use ipai_tests::Fixture;
use serde_json::{json, Value};

async fn system(svc: &Services) -> Fixture {
    let m = manifest::variant(manifest::without_cron);
    Fixture::with_manifest(m, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        svc.configure(v);
    })
    .await
    .unwrap()
}

/// An `expense.submitted` event of Juan dela Cruz's expense `expense_id` in report
/// `sheet_id`, submitted at `submitted_at`.
fn submitted(expense_id: i64, sheet_id: i64, submitted_at: &str) -> Value {
    json!({"event_type": "expense.submitted", "aggregate_type": "expense", "aggregate_id": expense_id.to_string(),
        "payload": {"expense_id": expense_id, "employee_name": "Juan dela Cruz",
                    "employee_email": "juan.delacruz@example.com", "amount": 1250.5, "currency": "PHP",
                    "description": "Client lunch", "sheet_id": sheet_id, "submitted_at": submitted_at,
                    "status": "submit"}})
}

/// Ingests and dispatches an event; returns the messages it posted.
async fn messages_for(f: &Fixture, svc: &Services, key: &str, event: &Value) -> Vec<Value> {
    let before = svc.posts().len();
    let id = f.ingest(key, event).await;
    let s = f.dispatch().await;
    assert_eq!(f.db.status(&id).await, "done", "{s}\n{}", f.sys.output());
    svc.posts()[before..].to_vec()
}

/// Ingests and dispatches an event; returns the one approval message it posted.
async fn post_for(f: &Fixture, svc: &Services, key: &str, event: &Value) -> Value {
    let posts = messages_for(f, svc, key, event).await;
    assert_eq!(posts.len(), 1, "one message: {posts:?}\n{}", svc.received());
    posts[0].clone()
}

/// The (Approve, Reject) contexts of an approval message, which only the bot's direct
/// message carries.
fn buttons(post: &Value) -> (Value, Value) {
    assert_eq!(
        post["from_bot"], true,
        "buttons only in the bot's DM: {post}"
    );
    let actions = &post["attachments"][0]["actions"];
    (
        actions[0]["integration"]["context"].clone(),
        actions[1]["integration"]["context"].clone(),
    )
}

/// Clicks a button as Mattermost does; returns (status, answer).
async fn click(f: &Fixture, user_id: &str, user_name: &str, context: &Value) -> (u16, Value) {
    let body = json!({"user_id": user_id, "user_name": user_name, "channel_id": "ch1",
        "channel_name": "town-square", "team_id": "t1", "team_domain": "ipai", "post_id": "post-9xk3",
        "trigger_id": "trig", "type": "", "data_source": "", "context": context});
    let r = f
        .http
        .post(f.sys.url("/mattermost/actions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The answer tells only the clicker (`ephemeral_text` containing `needle`) and leaves
/// the post as it is.
fn only_told(answer: &Value, needle: &str) {
    assert!(
        answer.get("update").is_none(),
        "the post is unchanged: {answer}"
    );
    let text = answer["ephemeral_text"].as_str().unwrap_or_default();
    assert!(text.contains(needle), "{needle:?} in {answer}");
}

/// The answer marks the post with `headline` and removes its buttons.
fn marked(answer: &Value, headline: &str) {
    let att = &answer["update"]["props"]["attachments"][0];
    assert!(att.get("actions").is_none(), "buttons removed: {answer}");
    assert!(
        att["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("**{headline}**")),
        "{answer}"
    );
}

async fn odoo_decisions(f: &Fixture) -> i64 {
    f.db.value::<i64>("SELECT count(*) FROM integration.deliveries WHERE channel = 'odoo' AND target NOT LIKE '%#%'")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approver_s_click_approves_once_and_odoo_names_who_decided() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    // The real message: ingest → dispatcher → expense-handler → Mattermost.
    let post = post_for(
        &f,
        &svc,
        "exp-1042-sub",
        &submitted(1042, 310, "2026-11-24T01:15:00Z"),
    )
    .await;
    assert_eq!(post["channel"], "@maria.santos");
    assert_eq!(
        post["from_bot"], true,
        "a direct message from the bot: {post}"
    );
    // Nothing went through the webhook, and the bot opened its channel with Maria alone.
    let hook_posts = svc
        .mattermost
        .requests()
        .iter()
        .filter(|r| r.path == services::MATTERMOST_HOOK_PATH)
        .count();
    assert_eq!(hook_posts, 0, "{}", svc.received());
    let dm_calls: Vec<(String, String, Value)> = svc
        .mattermost
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/") && !r.path.starts_with("/api/v4/users/email/"))
        .map(|r| (r.method.clone(), r.path.clone(), r.json()))
        .collect();
    assert_eq!(
        dm_calls,
        vec![
            ("GET".into(), "/api/v4/users/me".into(), Value::Null),
            (
                "POST".into(),
                "/api/v4/channels/direct".into(),
                json!([services::MM_BOT_ID, MARIA_MM_ID])
            ),
            (
                "POST".into(),
                "/api/v4/posts".into(),
                json!({"channel_id": services::dm_channel_id(MARIA_MM_ID),
                       "message": "@maria.santos, an expense is waiting for your approval.",
                       "props": {"attachments": post["attachments"]}})
            ),
        ],
        "{}",
        svc.received()
    );
    let parts =
        f.db.value::<String>(
            "SELECT string_agg(target || ' ' || status, ', ' ORDER BY target) \
             FROM integration.deliveries WHERE channel = 'mattermost'",
        )
        .await;
    assert_eq!(
        parts,
        "approval-request sent, approval-request/dm/@maria.santos sent"
    );
    // Maria and Juan were resolved in Mattermost's directory by email, with the bot token.
    assert_eq!(
        svc.mattermost_api_requests(),
        vec![
            (
                "GET".to_string(),
                "/api/v4/users/email/juan.delacruz@example.com".to_string()
            ),
            (
                "GET".to_string(),
                "/api/v4/users/email/maria.santos@example.com".to_string()
            ),
        ],
        "{}",
        svc.received()
    );
    let (approve, reject) = buttons(&post);
    let ctx = ActionContext::verify(&approve, TEST_ACTION_SECRET).unwrap();
    assert_eq!(ctx.deciders.user_ids, vec![MARIA_MM_ID.to_string()]);
    assert_eq!(ctx.employee_user_id, JUAN_MM_ID);
    assert_eq!(ctx.submitted_at, "2026-11-24T01:15:00Z");
    let now = chrono::Utc::now().timestamp();
    assert!(
        (ctx.expires_at - now - 7 * 86_400).abs() < 120,
        "expires in 7 days: {}",
        ctx.expires_at
    );
    let odoo_before = svc.odoo.requests().len();

    let (status, answer) = click(&f, MARIA_MM_ID, "maria.santos", &approve).await;
    assert_eq!(status, 200, "{answer}");
    let att = &answer["update"]["props"]["attachments"][0];
    assert!(
        att.get("actions").is_none(),
        "the buttons are gone: {answer}"
    );
    assert!(
        att["text"]
            .as_str()
            .unwrap()
            .contains("**Approved** by @maria.santos"),
        "{answer}"
    );
    assert_eq!(att["title"], post["attachments"][0]["title"]);
    // Odoo: authenticate, the report is still submitted, approve, the chatter note.
    let calls: Vec<(String, String, Value)> = svc.odoo_calls().into_iter().skip(1).collect();
    assert_eq!(
        calls,
        vec![
            ("hr.expense.sheet".into(), "read".into(), json!([[310]])),
            (
                "hr.expense.sheet".into(),
                "action_approve_expense_sheets".into(),
                json!([[310]])
            ),
            (
                "hr.expense.sheet".into(),
                "message_post".into(),
                json!([[310]])
            ),
        ],
        "{}",
        svc.received()
    );
    svc.odoo
        .assert_received(odoo_before + 4, "authenticate, read, approve, note");
    assert_eq!(
        svc.odoo_notes(),
        vec![(
            310,
            format!(
                "Approved in Mattermost by @maria.santos (Mattermost user id {MARIA_MM_ID}), \
                 from the approval message for the submission of 2026-11-24T01:15:00Z."
            )
        )],
        "{}",
        svc.received()
    );
    // The clicker was confirmed in the directory by id.
    assert_eq!(
        svc.mattermost_api_requests().last().unwrap().1,
        format!("/api/v4/users/{MARIA_MM_ID}")
    );
    let detail: String = f.db.value(
        "SELECT status || ' ' || detail FROM integration.deliveries WHERE channel = 'odoo' AND target = 'hr.expense.sheet/310'",
    )
    .await;
    assert!(
        detail.starts_with("sent ")
            && detail.contains("@maria.santos")
            && detail.contains(MARIA_MM_ID),
        "{detail}"
    );
    let post_id: String = f.db.value(
        "SELECT external_id FROM integration.id_map WHERE odoo_model = 'hr.expense.sheet' AND odoo_id = '310' AND system = 'mattermost_post'",
    )
    .await;
    assert_eq!(post_id, "post-9xk3");

    // A second click, and a click on the other button: answered from the record.
    let (status, again) = click(&f, MARIA_MM_ID, "maria.santos", &approve).await;
    assert_eq!(status, 200);
    assert!(
        again["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("already approved by @maria.santos"),
        "{again}"
    );
    let (_, other) = click(&f, MARIA_MM_ID, "maria.santos", &reject).await;
    assert!(
        other["update"]["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("**Approved** by @maria.santos"),
        "{other}"
    );
    assert_eq!(
        svc.odoo_writes_made().len(),
        1,
        "Odoo decided once\n{}",
        svc.received()
    );
    assert_eq!(svc.odoo_notes().len(), 1, "{}", svc.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_or_a_forged_user_id_decides_nothing() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let post = post_for(
        &f,
        &svc,
        "exp-1042-sub",
        &submitted(1042, 310, "2026-11-24T01:15:00Z"),
    )
    .await;
    let (approve, reject) = buttons(&post);
    let odoo_before = svc.odoo.requests().len();

    // Another user (a channel member, a forwarded post…).
    let (status, answer) = click(&f, ROSA_MM_ID, "rosa.reviewer", &approve).await;
    assert_eq!(status, 200);
    only_told(&answer, "only @maria.santos can approve or refuse");
    // The approver's name under another user id.
    let (_, answer) = click(&f, "mallory0000000000000000009", "maria.santos", &reject).await;
    only_told(&answer, "only @maria.santos");
    // The approver's user id under another name: the directory does not confirm it.
    let (_, answer) = click(&f, MARIA_MM_ID, "mallory", &approve).await;
    only_told(&answer, "could not be confirmed");
    // No user id at all.
    let (_, answer) = click(&f, "", "maria.santos", &approve).await;
    only_told(&answer, "only @maria.santos");

    svc.odoo.assert_received(odoo_before, "Odoo was not called");
    assert_eq!(odoo_decisions(&f).await, 0, "nothing claimed");
    // The approver can still decide afterwards.
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &reject).await;
    assert!(
        answer["update"]
            .to_string()
            .contains("**Refused** by @maria.santos"),
        "{answer}"
    );
    assert_eq!(
        svc.odoo_writes_made(),
        vec![(
            "ipai_refuse".to_string(),
            json!([[310], "Refused in Mattermost by @maria.santos"])
        )],
        "{}",
        svc.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submitter_never_approves_their_own_report_and_odoo_notes_the_attempt() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let post = post_for(
        &f,
        &svc,
        "exp-1042-sub",
        &submitted(1042, 310, "2026-11-24T01:15:00Z"),
    )
    .await;
    let (approve, _) = buttons(&post);

    let (status, answer) = click(&f, JUAN_MM_ID, "juan.delacruz", &approve).await;
    assert_eq!(status, 200);
    only_told(&answer, "you submitted this report");
    let (_, again) = click(&f, JUAN_MM_ID, "juan.delacruz", &approve).await;
    only_told(&again, "you submitted this report");
    // Nothing decided in Odoo; the attempt is in the report's chatter, once.
    assert!(svc.odoo_writes_made().is_empty(), "{}", svc.received());
    let notes = svc.odoo_notes();
    assert_eq!(notes.len(), 1, "{notes:?}\n{}", svc.received());
    assert_eq!(notes[0].0, 310);
    assert!(
        notes[0].1.starts_with(&format!("@juan.delacruz (Mattermost user id {JUAN_MM_ID}), the report's own employee, tried to approve it"))
            && notes[0].1.contains("Refused"),
        "{notes:?}"
    );
    assert_eq!(odoo_decisions(&f).await, 0);

    // A report whose approver in Odoo is its own employee: the finance approvers decide.
    let line = services::SELF_APPROVED_LINE;
    let posts = messages_for(
        &f,
        &svc,
        "exp-3002-sub",
        &submitted(line, 331, "2026-11-25T09:00:00Z"),
    )
    .await;
    let [ana, jose, notice] = posts.as_slice() else {
        panic!("a DM to each finance approver and a notice: {posts:?}")
    };
    assert_eq!(
        (ana["channel"].as_str(), jose["channel"].as_str()),
        (Some("@ana.reyes"), Some("@jose.garcia"))
    );
    assert_eq!(notice["channel"], services::FINANCE_CHANNEL);
    assert!(
        notice["attachments"][0].get("actions").is_none(),
        "no buttons in the channel: {notice}"
    );
    assert!(
        notice["text"]
            .as_str()
            .unwrap()
            .starts_with("@ana.reyes, @jose.garcia:"),
        "{notice}"
    );
    let (approve, _) = buttons(jose);
    let ctx = ActionContext::verify(&approve, TEST_ACTION_SECRET).unwrap();
    assert_eq!(ctx.deciders.user_ids, vec![JOSE_MM_ID.to_string()]);
    let ana_ctx = ActionContext::verify(&buttons(ana).0, TEST_ACTION_SECRET).unwrap();
    assert_eq!(ana_ctx.deciders.user_ids, vec![ANA_MM_ID.to_string()]);
    // José's buttons are worth nothing to Ana.
    let (_, answer) = click(&f, ANA_MM_ID, "ana.reyes", &approve).await;
    only_told(&answer, "only @jose.garcia");
    let (_, answer) = click(&f, JUAN_MM_ID, "juan.delacruz", &approve).await;
    only_told(&answer, "you submitted this report");
    assert!(svc.odoo_writes_made().is_empty(), "{}", svc.received());
    let (_, answer) = click(&f, JOSE_MM_ID, "jose.garcia", &approve).await;
    assert!(
        answer["update"]
            .to_string()
            .contains("**Approved** by @jose.garcia"),
        "{answer}"
    );
    assert_eq!(
        svc.odoo_writes_made(),
        vec![("action_approve_expense_sheets".to_string(), json!([[331]]))],
        "{}",
        svc.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_approver_only_the_finance_approvers_decide_never_the_channel() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let line = services::UNAPPROVED_LINE;
    let posts = messages_for(
        &f,
        &svc,
        "exp-3001-sub",
        &submitted(line, 330, "2026-11-25T10:00:00Z"),
    )
    .await;
    let channels: Vec<&str> = posts
        .iter()
        .map(|p| p["channel"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        channels,
        ["@ana.reyes", "@jose.garcia", services::FINANCE_CHANNEL]
    );
    assert!(
        posts[2]["attachments"][0].get("actions").is_none(),
        "{posts:?}"
    );
    let (approve, reject) = buttons(&posts[0]);
    let odoo_before = svc.odoo.requests().len();
    let (_, answer) = click(&f, ROSA_MM_ID, "rosa.reviewer", &approve).await;
    only_told(&answer, "only @ana.reyes can");
    svc.odoo.assert_received(odoo_before, "Odoo was not called");
    let (_, answer) = click(&f, ANA_MM_ID, "ana.reyes", &reject).await;
    assert!(
        answer["update"]
            .to_string()
            .contains("**Refused** by @ana.reyes"),
        "{answer}"
    );
    assert_eq!(svc.odoo_notes().len(), 1, "{}", svc.received());
    assert!(svc.odoo_notes()[0]
        .1
        .starts_with("Refused in Mattermost by @ana.reyes"));
    // José's buttons were for the same message: its one decision is spent.
    let (_, answer) = click(&f, JOSE_MM_ID, "jose.garcia", &buttons(&posts[1]).0).await;
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap_or_default()
            .contains("already refused by @ana.reyes"),
        "{answer}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 1, "{}", svc.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_or_expired_message_is_refused_and_marked_so() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    // Submitted, refused in Odoo, corrected and submitted again: a new message.
    let old = post_for(
        &f,
        &svc,
        "exp-1042-sub",
        &submitted(1042, 310, "2026-11-24T01:15:00Z"),
    )
    .await;
    let new = post_for(
        &f,
        &svc,
        "exp-1042-sub2",
        &submitted(1042, 310, "2026-11-26T07:30:00Z"),
    )
    .await;
    let odoo_before = svc.odoo.requests().len();
    let (status, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&old).0).await;
    assert_eq!(status, 200);
    marked(&answer, "Superseded");
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("submitted again"),
        "{answer}"
    );
    svc.odoo.assert_received(odoo_before, "Odoo was not called");
    assert_eq!(odoo_decisions(&f).await, 0);
    // The current message decides.
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&new).0).await;
    assert!(
        answer["update"].to_string().contains("**Approved**"),
        "{answer}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 1, "{}", svc.received());

    // Odoo no longer has the report waiting (decided in Odoo itself): read, never written.
    let offsite = post_for(
        &f,
        &svc,
        "off-a",
        &submitted(services::OFFSITE_LINES[0], 320, "2026-11-25T02:00:00Z"),
    )
    .await;
    svc.odoo_sheet_state(320, "approve");
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&offsite).1).await;
    marked(&answer, "Superseded");
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("state: approve"),
        "{answer}"
    );
    assert_eq!(
        svc.odoo_writes_made().len(),
        1,
        "no refusal written\n{}",
        svc.received()
    );
    let last = svc.odoo_calls().pop().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        ("hr.expense.sheet", "read")
    );

    // Refused, corrected and submitted again in Odoo, its new event not delivered yet:
    // Odoo's submission stamp is not the message's.
    let lunch = post_for(
        &f,
        &svc,
        "off-b",
        &submitted(services::OFFSITE_LINES[1], 320, "2026-11-27T02:00:00Z"),
    )
    .await;
    svc.odoo_sheet_state(320, "submit");
    svc.odoo_sheet_submitted_at(320, "2026-11-28 05:00:00");
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&lunch).0).await;
    marked(&answer, "Superseded");
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("submitted again in Odoo"),
        "{answer}"
    );
    // Its one use is spent: found superseded, the message stays closed.
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&lunch).0).await;
    marked(&answer, "Superseded");
    assert_eq!(svc.odoo_writes_made().len(), 1, "{}", svc.received());
    // The message of Odoo's current submission decides.
    let current = post_for(
        &f,
        &svc,
        "off-c",
        &submitted(services::OFFSITE_LINES[2], 320, "2026-11-28T05:00:00Z"),
    )
    .await;
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&current).0).await;
    assert!(
        answer["update"].to_string().contains("**Approved**"),
        "{answer}"
    );
    assert_eq!(
        svc.odoo_writes_made().len(),
        2,
        "only current submissions decided\n{}",
        svc.received()
    );

    // An expired button (a genuine context past its expiry).
    let expired = ActionContext {
        decision: Decision::Approve,
        event_id: "0b6c3f3e-1111-4a4a-9c9c-000000000003".into(),
        expense_id: "1042".into(),
        sheet_id: "310".into(),
        title: "Expense report 310".into(),
        summary: "Juan dela Cruz · PHP 1,250.50".into(),
        submitted_at: String::new(),
        expires_at: chrono::Utc::now().timestamp() - 60,
        deciders: Deciders {
            user_ids: vec![MARIA_MM_ID.into()],
            usernames: vec!["maria.santos".into()],
        },
        employee_user_id: JUAN_MM_ID.into(),
        employee_email: "juan.delacruz@example.com".into(),
    }
    .signed(TEST_ACTION_SECRET);
    let odoo_before = svc.odoo.requests().len();
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &expired).await;
    marked(&answer, "Expired");
    svc.odoo.assert_received(odoo_before, "Odoo was not called");
}

/// A genuine context of the given decision and event, bound to Maria as approver.
fn context(decision: Decision, event_id: &str, secret: &str) -> Value {
    ActionContext {
        decision,
        event_id: event_id.into(),
        expense_id: "1042".into(),
        sheet_id: "310".into(),
        title: "Expense report 310: Client lunch".into(),
        summary: "Juan dela Cruz · PHP 1,250.50 · Client lunch".into(),
        submitted_at: String::new(),
        expires_at: chrono::Utc::now().timestamp() + 3600,
        deciders: Deciders {
            user_ids: vec![MARIA_MM_ID.into()],
            usernames: vec!["maria.santos".into()],
        },
        employee_user_id: JUAN_MM_ID.into(),
        employee_email: "juan.delacruz@example.com".into(),
    }
    .signed(secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_or_outdated_contexts_are_rejected_without_calling_odoo() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let event_id = "0b6c3f3e-1111-4a4a-9c9c-000000000001";
    // Signed with another key.
    let (status, body) = click(
        &f,
        MARIA_MM_ID,
        "maria.santos",
        &context(Decision::Approve, event_id, "guessed-secret"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    // A genuine approve context turned into a refusal, or given another approver.
    let mut altered = context(Decision::Approve, event_id, TEST_ACTION_SECRET);
    altered["action"] = json!("refuse");
    assert_eq!(
        click(&f, MARIA_MM_ID, "maria.santos", &altered).await.0,
        401
    );
    let mut rebound = context(Decision::Approve, event_id, TEST_ACTION_SECRET);
    rebound["approver_ids"] = json!(ROSA_MM_ID);
    assert_eq!(
        click(&f, ROSA_MM_ID, "rosa.reviewer", &rebound).await.0,
        401
    );
    // Another report under a genuine signature.
    let mut other = context(Decision::Approve, event_id, TEST_ACTION_SECRET);
    other["sheet_id"] = json!("311");
    assert_eq!(click(&f, MARIA_MM_ID, "maria.santos", &other).await.0, 401);
    // No context at all, or not a Mattermost request.
    assert_eq!(
        click(&f, MARIA_MM_ID, "maria.santos", &json!({})).await.0,
        401
    );
    let r = f
        .http
        .post(f.sys.url("/mattermost/actions"))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = f
        .http
        .get(f.sys.url("/mattermost/actions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // A genuine button from before approvers were bound to messages (version 1).
    let v1 = json!({"v": "1", "action": "approve", "event_id": event_id, "expense_id": "1042",
        "sheet_id": "310", "title": "Expense report 310", "summary": "s"});
    let (status, answer) = click(&f, ROSA_MM_ID, "rosa.reviewer", &sign_v1(v1)).await;
    assert_eq!(status, 200, "{answer}");
    only_told(&answer, "no longer decides anything");
    svc.odoo.assert_received_nothing("Odoo was never called");
    assert_eq!(f.db.count("deliveries").await, 0);
}

/// Signs a version-1 context as the bus did before approvers were bound (same domain,
/// canonical JSON of the sorted fields).
fn sign_v1(mut fields: Value) -> Value {
    use hmac::{Hmac, Mac};
    let canonical = fields.to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(TEST_ACTION_SECRET.as_bytes()).unwrap();
    mac.update(b"ipai-mattermost-action.v1\n");
    mac.update(canonical.as_bytes());
    fields["sig"] = json!(hex::encode(mac.finalize().into_bytes()));
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_clicks_and_refusals_call_odoo_once_and_odoo_errors_keep_the_buttons() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let event_id = "0b6c3f3e-1111-4a4a-9c9c-000000000002";
    let refuse = context(Decision::Refuse, event_id, TEST_ACTION_SECRET);

    // Odoo refuses the write: the approver is told so in our words (Odoo's text, which may
    // carry a traceback or a secret, only in the log), the buttons stay, nothing is
    // recorded as done.
    let odoo_text = "You cannot refuse this expense report\nTraceback (most recent call last):\n  \
                     File \"/odoo/addons/hr_expense.py\", api_key=sk-live-4242SECRET";
    svc.odoo_writes(OdooWrites::Fail(odoo_text.into()));
    let (status, answer) = click(&f, MARIA_MM_ID, "maria.santos", &refuse).await;
    assert_eq!(status, 200);
    only_told(
        &answer,
        "Odoo did not refuse the report, so nothing was changed",
    );
    for leak in [
        "cannot refuse this expense report",
        "Traceback",
        "sk-live-4242SECRET",
    ] {
        assert!(!answer.to_string().contains(leak), "{leak} shown: {answer}");
    }
    assert!(
        f.sys.output().contains("sk-live-4242SECRET"),
        "Odoo's text is in the component log"
    );
    assert_eq!(svc.odoo_writes_made().len(), 1, "{}", svc.received());
    assert!(
        svc.odoo_notes().is_empty(),
        "no note for a decision Odoo refused\n{}",
        svc.received()
    );

    // Fixed: two clicks at once → one refusal in Odoo, with the reason naming the user.
    svc.odoo_writes(OdooWrites::Succeed);
    let (a, b) = tokio::join!(
        click(&f, MARIA_MM_ID, "maria.santos", &refuse),
        click(&f, MARIA_MM_ID, "maria.santos", &refuse)
    );
    assert_eq!((a.0, b.0), (200, 200));
    let writes = svc.odoo_writes_made();
    assert_eq!(
        writes.len(),
        2,
        "one failed attempt, then exactly one refusal: {writes:?}\n{}",
        svc.received()
    );
    assert_eq!(
        writes[1],
        (
            "ipai_refuse".to_string(),
            json!([[310], "Refused in Mattermost by @maria.santos"])
        )
    );
    let updated = [&a.1, &b.1]
        .iter()
        .filter(|v| {
            v["update"]["props"]["attachments"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("**Refused** by @maria.santos"))
        })
        .count();
    assert!(updated >= 1, "{a:?} {b:?}");
    // A later click is answered from the record.
    let (_, later) = click(&f, MARIA_MM_ID, "maria.santos", &refuse).await;
    assert!(
        later["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("already refused"),
        "{later}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 2, "{}", svc.received());
    assert_eq!(svc.odoo_notes().len(), 1, "{}", svc.received());
    let auth = svc
        .odoo
        .requests()
        .iter()
        .filter(|r| r.json()["params"]["service"] == "common")
        .count();
    assert_eq!(
        auth,
        2,
        "authenticate only when Odoo is really called\n{}",
        svc.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bot_token_no_message_carries_buttons_and_the_map_still_confirms_clickers() {
    let svc = Services::start().await;
    let map = format!(
        "maria.santos@example.com=maria.santos:{MARIA_MM_ID}, \
         juan.delacruz@example.com=juan.delacruz:{JUAN_MM_ID}"
    );
    let m = manifest::variant(manifest::without_cron);
    let mut f = Fixture::with_manifest(m, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        svc.configure(v);
        v.insert("mattermost_bot_token".into(), String::new());
        v.insert("mattermost_user_map".into(), map);
    })
    .await
    .unwrap();
    let post = post_for(
        &f,
        &svc,
        "exp-1042-sub",
        &submitted(1042, 310, "2026-11-24T01:15:00Z"),
    )
    .await;
    // No bot, no direct message: the webhook tells the approver to decide in Odoo.
    assert_eq!(post["channel"], "@maria.santos");
    assert!(post.get("from_bot").is_none(), "{post}");
    assert!(post["attachments"][0].get("actions").is_none(), "{post}");
    assert_eq!(
        post["text"],
        "@maria.santos, an expense is waiting for your approval: approve or refuse it in Odoo."
    );
    // A button posted before (a genuine context): the map still confirms who clicks.
    let approve = context(
        Decision::Approve,
        "0b6c3f3e-1111-4a4a-9c9c-000000000007",
        TEST_ACTION_SECRET,
    );
    let (_, answer) = click(&f, JUAN_MM_ID, "juan.delacruz", &approve).await;
    only_told(&answer, "you submitted this report");
    let (_, answer) = click(&f, MARIA_MM_ID, "mallory", &approve).await;
    only_told(&answer, "could not be confirmed");
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &approve).await;
    assert!(
        answer["update"]
            .to_string()
            .contains("**Approved** by @maria.santos"),
        "{answer}"
    );
    assert!(
        svc.mattermost_api_requests().is_empty(),
        "no REST API without a token\n{}",
        svc.received()
    );

    // Neither a token nor a map: nobody can be bound, so no buttons; decided in Odoo.
    f.restart_with(|v| {
        v.insert("mattermost_user_map".into(), String::new());
    })
    .await
    .unwrap();
    let post = post_for(
        &f,
        &svc,
        "exp-1043-sub",
        &submitted(1043, 310, "2026-11-27T00:00:00Z"),
    )
    .await;
    assert_eq!(post["channel"], services::FINANCE_CHANNEL);
    assert!(post["attachments"][0].get("actions").is_none(), "{post}");
    assert!(
        post["text"]
            .as_str()
            .unwrap()
            .contains("approve or refuse it in Odoo"),
        "{post}"
    );

    // A bot token Mattermost refuses: the event fails naming the variable, and waits.
    f.restart_with(|v| {
        v.insert("mattermost_bot_token".into(), "not-the-bot-token".into());
    })
    .await
    .unwrap();
    let id = f
        .ingest(
            "exp-1044-sub",
            &submitted(1044, 310, "2026-11-28T00:00:00Z"),
        )
        .await;
    let s = f.dispatch().await;
    assert_eq!(s["failed"], 1, "{s}");
    let err: String =
        f.db.value(&format!(
            "SELECT coalesce(last_error, '') FROM integration.outbox WHERE id::text = '{id}'"
        ))
        .await;
    assert!(
        err.starts_with("HTTP 500") && err.contains("mattermost_bot_token"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_directory_delays_the_message_and_never_posts_it_unbound() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    svc.mattermost.script(|r| {
        if r.path.starts_with("/api/") {
            (503, r#"{"message":"Service Unavailable"}"#.to_string())
        } else {
            services::mattermost_answer(r)
        }
    });
    let id = f
        .ingest(
            "exp-1042-sub",
            &submitted(1042, 310, "2026-11-24T01:15:00Z"),
        )
        .await;
    assert_eq!(f.dispatch().await["failed"], 1);
    let err: String =
        f.db.value(&format!(
            "SELECT coalesce(last_error, '') FROM integration.outbox WHERE id::text = '{id}'"
        ))
        .await;
    assert!(
        err.starts_with("HTTP 502") && err.contains("Mattermost user directory: HTTP 503"),
        "{err}"
    );
    assert!(
        svc.posts().is_empty(),
        "nothing posted without its approver\n{}",
        svc.received()
    );
    // Mattermost is back: the retry posts the message, bound to the approver.
    svc.mattermost.script(services::mattermost_answer);
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["done"], 1);
    let posts = svc.posts();
    assert_eq!(posts.len(), 1, "{}", svc.received());
    let ctx = ActionContext::verify(&buttons(&posts[0]).0, TEST_ACTION_SECRET).unwrap();
    assert_eq!(ctx.deciders.user_ids, vec![MARIA_MM_ID.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_decides_once_never_another_submission_and_expires_as_configured() {
    let svc = Services::start().await;
    let m = manifest::variant(manifest::without_cron);
    let f = Fixture::with_manifest(m, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        svc.configure(v);
        v.insert("approval_expiry_days".into(), "2".into());
    })
    .await
    .unwrap();
    let first = post_for(
        &f,
        &svc,
        "exp-1042-sub",
        &submitted(1042, 310, "2026-11-24T01:15:00Z"),
    )
    .await;
    let (approve, reject) = buttons(&first);
    // The expiry is the setting's: 2 days from now.
    let ctx = ActionContext::verify(&approve, TEST_ACTION_SECRET).unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (ctx.expires_at - now - 2 * 86_400).abs() < 120,
        "{}",
        ctx.expires_at
    );

    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &approve).await;
    assert!(
        answer["update"]
            .to_string()
            .contains("**Approved** by @maria.santos"),
        "{answer}"
    );
    // The same context replayed, or the other button: refused, Odoo not called again.
    let odoo_before = svc.odoo.requests().len();
    for context in [&approve, &reject, &approve] {
        let (status, again) = click(&f, MARIA_MM_ID, "maria.santos", context).await;
        assert_eq!(status, 200);
        assert!(
            again["ephemeral_text"]
                .as_str()
                .unwrap_or_default()
                .contains("these buttons decide once; nothing was changed"),
            "{again}"
        );
    }
    svc.odoo
        .assert_received(odoo_before, "Odoo was not called for a replay");

    // Refused in Odoo, reset and submitted again: the old contexts decide nothing on the
    // new submission; only the new message's do.
    let second = post_for(
        &f,
        &svc,
        "exp-1042-sub2",
        &submitted(1042, 310, "2026-11-26T07:30:00Z"),
    )
    .await;
    let odoo_before = svc.odoo.requests().len();
    for context in [&approve, &reject] {
        let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", context).await;
        marked(&answer, "Superseded");
    }
    svc.odoo
        .assert_received(odoo_before, "Odoo was not called for an old context");
    assert_eq!(svc.odoo_writes_made().len(), 1, "{}", svc.received());
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&second).1).await;
    assert!(
        answer["update"]
            .to_string()
            .contains("**Refused** by @maria.santos"),
        "{answer}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 2, "{}", svc.received());

    // A message without a submission stamp that Odoo found decided stays closed, even when
    // the report later waits for approval again.
    let mut unstamped = submitted(1050, 311, "x");
    unstamped["payload"]
        .as_object_mut()
        .unwrap()
        .remove("submitted_at");
    let third = post_for(&f, &svc, "exp-1050-sub", &unstamped).await;
    svc.odoo_sheet_state(310, "approve");
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&third).0).await;
    marked(&answer, "Superseded");
    svc.odoo_sheet_state(310, "submit");
    let odoo_before = svc.odoo.requests().len();
    let (_, answer) = click(&f, MARIA_MM_ID, "maria.santos", &buttons(&third).0).await;
    marked(&answer, "Superseded");
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer decides anything"),
        "{answer}"
    );
    svc.odoo
        .assert_received(odoo_before, "a closed message calls Odoo no more");
    assert_eq!(svc.odoo_writes_made().len(), 2, "{}", svc.received());

    // A context issued 8 days ago under a 7-day expiry: refused without calling Odoo.
    let mut old = ActionContext::verify(&buttons(&second).0, TEST_ACTION_SECRET).unwrap();
    old.event_id = "0b6c3f3e-1111-4a4a-9c9c-000000000042".into();
    old.expires_at = now - 8 * 86_400 + 7 * 86_400;
    assert!(old.expires_at < now);
    let (_, answer) = click(
        &f,
        MARIA_MM_ID,
        "maria.santos",
        &old.signed(TEST_ACTION_SECRET),
    )
    .await;
    marked(&answer, "Expired");
    svc.odoo
        .assert_received(odoo_before, "Odoo was not called for an expired context");
}
