//! SPEC §7 approvals: Mattermost's button callback (`POST /mattermost/actions`) verifies
//! the signed context, approves or refuses the expense report in Odoo exactly once, and
//! answers with an `update` replacing the buttons by the outcome and who clicked.

use ipai_effects::mattermost::{ActionContext, Decision};
use ipai_tests::manifest;
use ipai_tests::runtime::TEST_ACTION_SECRET;
use ipai_tests::services::{OdooWrites, Services};
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

fn context(decision: Decision, event_id: &str, secret: &str) -> Value {
    ActionContext {
        decision,
        event_id: event_id.into(),
        expense_id: "1042".into(),
        sheet_id: "310".into(),
        title: "Expense report 310: Client lunch".into(),
        summary: "Juan dela Cruz · PHP 1,250.50 · Client lunch".into(),
    }
    .signed(secret)
}

/// Clicks a button as Mattermost does; returns (status, answer).
async fn click(f: &Fixture, user: &str, context: &Value) -> (u16, Value) {
    let body = json!({"user_id": format!("uid-{user}"), "user_name": user, "channel_id": "ch1",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_on_a_posted_approval_approves_in_odoo_once_and_updates_the_post() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    // The real message: ingest → dispatcher → expense-handler → Mattermost.
    let event = json!({"event_type": "expense.submitted", "aggregate_type": "expense", "aggregate_id": "1042",
        "payload": {"expense_id": 1042, "employee_name": "Juan dela Cruz", "employee_email": "juan.delacruz@example.com",
                    "amount": 1250.5, "currency": "PHP", "description": "Client lunch", "sheet_id": 310, "status": "submit"}});
    let id = f.ingest("exp-1042-sub", &event).await;
    assert_eq!(f.dispatch().await["done"], 1);
    let post = svc.posts().remove(0);
    let approve = post["attachments"][0]["actions"][0]["integration"]["context"].clone();
    let reject = post["attachments"][0]["actions"][1]["integration"]["context"].clone();

    let (status, answer) = click(&f, "maria.santos", &approve).await;
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
    assert_eq!(
        svc.odoo_writes_made(),
        vec![("action_approve_expense_sheets".to_string(), json!([[310]]))]
    );
    let row = f.db.client
        .query_one("SELECT status, detail FROM integration.deliveries WHERE event_id::text = $1 AND channel = 'odoo' AND target = 'hr.expense.sheet/310'", &[&id])
        .await.unwrap();
    assert_eq!(row.get::<_, String>(0), "sent");
    assert!(row.get::<_, String>(1).contains("@maria.santos"));
    let post_id: String = f.db.client
        .query_one("SELECT external_id FROM integration.id_map WHERE odoo_model = 'hr.expense.sheet' AND odoo_id = '310' AND system = 'mattermost_post'", &[])
        .await.unwrap().get(0);
    assert_eq!(post_id, "post-9xk3");

    // A second click, and a click on the other button: answered from the record, no Odoo call.
    let (status, again) = click(&f, "maria.santos", &approve).await;
    assert_eq!(status, 200);
    assert!(
        again["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("already approved by @maria.santos"),
        "{again}"
    );
    let (status, other) = click(&f, "jose", &reject).await;
    assert_eq!(status, 200);
    assert!(
        other["update"]["props"]["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .contains("**Approved** by @maria.santos"),
        "{other}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 1, "Odoo was called once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_altered_contexts_are_rejected_without_calling_odoo() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let event_id = "0b6c3f3e-1111-4a4a-9c9c-000000000001";
    // Signed with another key.
    let (status, body) = click(
        &f,
        "mallory",
        &context(Decision::Approve, event_id, "guessed-secret"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    // A genuine approve context turned into a refusal.
    let mut altered = context(Decision::Approve, event_id, TEST_ACTION_SECRET);
    altered["action"] = json!("refuse");
    assert_eq!(click(&f, "mallory", &altered).await.0, 401);
    // Another report under a genuine signature.
    let mut other = context(Decision::Approve, event_id, TEST_ACTION_SECRET);
    other["sheet_id"] = json!("311");
    assert_eq!(click(&f, "mallory", &other).await.0, 401);
    // No context at all, or not a Mattermost request.
    assert_eq!(click(&f, "mallory", &json!({})).await.0, 401);
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
    assert!(svc.odoo.requests().is_empty(), "Odoo was never called");
    assert_eq!(f.db.count("deliveries").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_clicks_and_refusals_call_odoo_once_and_odoo_errors_keep_the_buttons() {
    let svc = Services::start().await;
    let f = system(&svc).await;
    let event_id = "0b6c3f3e-1111-4a4a-9c9c-000000000002";
    let refuse = context(Decision::Refuse, event_id, TEST_ACTION_SECRET);

    // Odoo refuses the write: the user sees why, the buttons stay, nothing is recorded as done.
    svc.odoo_writes(OdooWrites::Fail(
        "You cannot refuse your own expense report".into(),
    ));
    let (status, answer) = click(&f, "juan", &refuse).await;
    assert_eq!(status, 200);
    assert!(answer.get("update").is_none(), "{answer}");
    assert!(
        answer["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("cannot refuse your own"),
        "{answer}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 1);

    // Fixed: two clicks at once → one refusal in Odoo, with the reason naming the user.
    svc.odoo_writes(OdooWrites::Succeed);
    let (a, b) = tokio::join!(
        click(&f, "maria.santos", &refuse),
        click(&f, "maria.santos", &refuse)
    );
    assert_eq!((a.0, b.0), (200, 200));
    let writes = svc.odoo_writes_made();
    assert_eq!(
        writes.len(),
        2,
        "one failed attempt, then exactly one refusal: {writes:?}"
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
    let (_, later) = click(&f, "maria.santos", &refuse).await;
    assert!(
        later["ephemeral_text"]
            .as_str()
            .unwrap()
            .contains("already refused"),
        "{later}"
    );
    assert_eq!(svc.odoo_writes_made().len(), 2);
    let auth = svc
        .odoo
        .requests()
        .iter()
        .filter(|r| r.json()["params"]["service"] == "common")
        .count();
    assert_eq!(auth, 2, "authenticate only when Odoo is really called");
}
