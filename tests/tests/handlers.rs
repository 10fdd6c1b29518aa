//! SPEC §7 end to end: ingest → dispatcher → the real domain handlers (service chaining),
//! with Mattermost, the email API (Resend), Google (token + Calendar) and Odoo JSON-RPC as
//! loopback fakes that check each request's shape. Every event type of the taxonomy, the
//! dashboard rows, redelivery without repeated side effects, escalation levels, failing
//! services and a missing variable.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ipai_effects::mattermost::{ActionContext, Decision};
use ipai_loopback::segments::SegmentProbe;
use ipai_tests::manifest;
use ipai_tests::runtime::{TEST_ACTION_SECRET, TEST_HANDLER_TOKEN};
use ipai_tests::services::{self, Services};
use ipai_tests::Fixture;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A system without the cron trigger or the ingest kick: events are delivered by the
/// test's own `POST /dispatch`, so every step is deterministic. The handler routes are
/// public too (as scripts/deploy.py makes them without chaining), for `call_handler`.
async fn system(svc: &Services, edit: impl FnOnce(&mut BTreeMap<String, String>)) -> Fixture {
    let m = manifest::variant(|t| manifest::with_public_handler_routes(manifest::without_cron(t)));
    Fixture::with_manifest(m, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        svc.configure(v);
        edit(v);
    })
    .await
    .unwrap()
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (base.as_object_mut(), extra) {
        a.extend(b);
    }
    base
}

fn expense(event_type: &str, id: u64, extra: Value) -> Value {
    let payload = merge(
        json!({"expense_id": id, "employee_id": 7, "employee_name": "Juan dela Cruz",
               "employee_code": "E-0042", "employee_email": "juan.delacruz@example.com",
               "amount": 1250.5, "currency": "PHP", "description": "Client lunch - Makati",
               "date": "2026-11-20", "category": "Meals", "submitted_at": "2026-11-24T01:15:00Z",
               "sheet_id": 310, "status": "submit"}),
        extra,
    );
    json!({"event_type": event_type, "aggregate_type": "expense", "aggregate_id": id.to_string(), "payload": payload})
}

fn booking(event_type: &str, id: u64, extra: Value) -> Value {
    let payload = merge(
        json!({"booking_id": id, "asset_id": 12, "asset_name": "Projector Epson EB-X51",
               "asset_code": "PRJ-0012", "employee_id": 7, "employee_name": "Juan dela Cruz",
               "employee_email": "juan.delacruz@example.com", "manager_email": "maria.santos@example.com",
               "start": "2026-11-27T01:00:00Z", "end": "2026-11-27T09:00:00Z",
               "location": "Makati HQ, 12F", "status": "reserved"}),
        extra,
    );
    json!({"event_type": event_type, "aggregate_type": "asset_booking", "aggregate_id": id.to_string(), "payload": payload})
}

fn task(event_type: &str, id: u64, extra: Value) -> Value {
    let payload = merge(
        json!({"task_id": id, "name": "BIR 1601-C October 2026", "project": "Month-end close",
               "bir_form": "1601-C", "period": "2026-10", "deadline": "2026-11-10",
               "responsible_emails": ["ana.reyes@example.com", "jose.garcia@example.com"],
               "reviewer_id": 3, "stage": "In Progress", "status": "01_in_progress"}),
        extra,
    );
    json!({"event_type": event_type, "aggregate_type": "finance_task", "aggregate_id": id.to_string(), "payload": payload})
}

/// Ingests and dispatches one event; asserts it is done.
async fn deliver(f: &Fixture, key: &str, event: &Value) -> String {
    let id = f.ingest(key, event).await;
    let s = f.dispatch().await;
    assert_eq!(
        f.db.status(&id).await,
        "done",
        "{key}: {s} {:?}\n{}",
        last_error(f, &id).await,
        f.sys.output()
    );
    id
}

async fn last_error(f: &Fixture, id: &str) -> Option<String> {
    f.db.client
        .query_one(
            "SELECT last_error FROM integration.outbox WHERE id::text = $1",
            &[&id],
        )
        .await
        .ok()
        .and_then(|r| r.get(0))
}

/// `(channel, target, status)` of an event's deliveries, sorted.
async fn deliveries(f: &Fixture, id: &str) -> Vec<(String, String, String)> {
    f.db.client
        .query(
            "SELECT channel, target, status FROM integration.deliveries WHERE event_id::text = $1 ORDER BY channel, target",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn d(channel: &str, target: &str, status: &str) -> (String, String, String) {
    (channel.into(), target.into(), status.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expense_events_post_approvals_queue_payments_and_notify_the_employee() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;

    // submitted: the approver comes from Odoo, the message carries signed buttons.
    let submitted = deliver(
        &f,
        "exp-1042-sub",
        &expense("expense.submitted", 1042, json!({})),
    )
    .await;
    let auth: Vec<Value> = svc
        .odoo
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["params"]["service"] == "common")
        .collect();
    assert_eq!(auth.len(), 1, "{}", svc.received());
    assert_eq!(
        auth[0]["params"]["args"],
        json!([
            services::ODOO_DB,
            services::ODOO_LOGIN,
            services::ODOO_KEY,
            {}
        ])
    );
    let calls = svc.odoo_calls();
    assert_eq!(calls.len(), 1, "{}", svc.received());
    assert_eq!(
        (calls[0].0.as_str(), calls[0].1.as_str()),
        ("hr.expense", "web_read")
    );
    assert_eq!(calls[0].2, json!([[1042]]));
    let posts = svc.posts();
    assert_eq!(posts.len(), 1, "{}", svc.received());
    let post = &posts[0];
    // The buttons reach Maria alone: a direct message from the bot, not the webhook.
    assert_eq!(post["channel"], "@maria.santos");
    assert_eq!(post["from_bot"], true, "{post}");
    assert!(post["text"].as_str().unwrap().contains("@maria.santos"));
    let att = &post["attachments"][0];
    assert_eq!(
        att["title_link"],
        format!(
            "{}/web#id=310&model=hr.expense.sheet&view_type=form",
            svc.odoo.url
        )
    );
    assert!(att["fields"].to_string().contains("PHP 1,250.50"));
    let actions = att["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["name"], "Approve");
    assert_eq!(actions[1]["name"], "Reject");
    assert_eq!(
        actions[0]["integration"]["url"],
        f.sys.url("/mattermost/actions")
    );
    let ctx =
        ActionContext::verify(&actions[0]["integration"]["context"], TEST_ACTION_SECRET).unwrap();
    assert_eq!(
        (ctx.decision, ctx.sheet_id.as_str(), ctx.event_id.as_str()),
        (Decision::Approve, "310", submitted.as_str())
    );
    let ctx =
        ActionContext::verify(&actions[1]["integration"]["context"], TEST_ACTION_SECRET).unwrap();
    assert_eq!(ctx.decision, Decision::Refuse);
    assert_eq!(
        deliveries(&f, &submitted).await,
        vec![
            d("mattermost", "approval-request", "sent"),
            d("mattermost", "approval-request/dm/@maria.santos", "sent")
        ]
    );

    // approved: payment_queue row + finance channel.
    let approved = deliver(
        &f,
        "exp-1042-app",
        &expense("expense.approved", 1042, json!({"status": "approve", "approved_by": "Maria Santos", "approved_at": "2026-11-24T03:30:00Z"})),
    )
    .await;
    let row = f.db.client
        .query_one("SELECT status, amount::text, currency, approved_by, approved_at::text, sheet_id, employee_code, event_id::text FROM integration.payment_queue WHERE expense_id = '1042'", &[])
        .await.unwrap();
    assert_eq!(row.get::<_, String>(0), "queued");
    assert_eq!(row.get::<_, String>(1), "1250.5");
    assert_eq!(row.get::<_, String>(2), "PHP");
    assert_eq!(row.get::<_, String>(3), "Maria Santos");
    assert!(row.get::<_, String>(4).starts_with("2026-11-24 03:30:00"));
    assert_eq!(row.get::<_, String>(5), "310");
    assert_eq!(row.get::<_, String>(6), "E-0042");
    assert_eq!(row.get::<_, String>(7), approved);
    let posts = svc.posts();
    assert_eq!(posts.len(), 2, "{}", svc.received());
    assert_eq!(posts[1]["channel"], services::FINANCE_CHANNEL);
    assert!(posts[1]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Maria Santos"));

    // paid: the row is closed, the employee gets a DM.
    deliver(
        &f,
        "exp-1042-paid",
        &expense("expense.paid", 1042, json!({"status": "done", "paid_at": "2026-11-28T02:00:00Z", "payment_ref": "BNK1/2026/00042"})),
    )
    .await;
    let row = f.db.client
        .query_one("SELECT status, payment_ref, paid_at::text, approved_by FROM integration.payment_queue WHERE expense_id = '1042'", &[])
        .await.unwrap();
    assert_eq!(row.get::<_, String>(0), "paid");
    assert_eq!(row.get::<_, String>(1), "BNK1/2026/00042");
    assert!(row.get::<_, String>(2).starts_with("2026-11-28 02:00:00"));
    assert_eq!(
        row.get::<_, String>(3),
        "Maria Santos",
        "approval facts are kept"
    );
    let posts = svc.posts();
    assert_eq!(posts.len(), 3, "{}", svc.received());
    assert_eq!(posts[2]["channel"], "@juan.delacruz");
    assert!(posts[2]["attachments"][0]["fields"]
        .to_string()
        .contains("BNK1/2026/00042"));

    // rejected (another expense, queued first): DM with the reason, row removed.
    deliver(
        &f,
        "exp-1043-app",
        &expense(
            "expense.approved",
            1043,
            // Another report (an approval of report 310 at the same moment would be the
            // same decision: one post).
            json!({"approved_by": "M", "approved_at": "2026-11-24T03:30:00Z", "sheet_id": 311}),
        ),
    )
    .await;
    let rejected = deliver(
        &f,
        "exp-1043-rej",
        &expense("expense.rejected", 1043, json!({"status": "cancel", "reason": "No official receipt attached", "refused_by": "Maria Santos"})),
    )
    .await;
    let posts = svc.posts();
    assert_eq!(posts.len(), 5, "{}", svc.received());
    assert_eq!(posts[4]["channel"], "@juan.delacruz");
    let text = posts[4]["attachments"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("No official receipt attached") && text.contains("Maria Santos"),
        "{text}"
    );
    assert_eq!(
        f.db.count("payment_queue").await,
        1,
        "the refused expense left the queue"
    );
    assert_eq!(
        deliveries(&f, &rejected).await,
        vec![d("mattermost", "@juan.delacruz", "sent")]
    );
    svc.email
        .assert_received_nothing("expense events send no email");
    svc.google
        .assert_received_nothing("expense events make no Google call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_with_several_lines_gets_one_approval_request_per_submission() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;
    // Odoo emits expense.submitted for each of report 320's three lines, in one go.
    let line = |id: i64, amount: f64, submitted_at: &str| {
        expense(
            "expense.submitted",
            id as u64,
            json!({"amount": amount, "sheet_id": 320, "submitted_at": submitted_at}),
        )
    };
    let [a, b, c] = services::OFFSITE_LINES;
    let first = f
        .ingest("off-a", &line(a, 1200.0, "2026-11-25T02:00:00Z"))
        .await;
    let second = f
        .ingest("off-b", &line(b, 850.25, "2026-11-25T02:00:00Z"))
        .await;
    let third = f
        .ingest("off-c", &line(c, 2300.0, "2026-11-25T02:00:00Z"))
        .await;
    let s = f.dispatch().await;
    for id in [&first, &second, &third] {
        assert_eq!(f.db.status(id).await, "done", "{s}\n{}", f.sys.output());
    }
    let posts = svc.posts();
    assert_eq!(
        posts.len(),
        1,
        "one message for the report: {posts:?}\n{}",
        svc.received()
    );
    let att = &posts[0]["attachments"][0];
    assert_eq!(posts[0]["channel"], "@maria.santos");
    assert_eq!(att["title"], "Expense report Team offsite");
    let fields = att["fields"].to_string();
    assert!(
        fields.contains("PHP 4,350.25") && fields.contains("3 expenses"),
        "the report's total, not one line's: {fields}"
    );
    let ctx = ActionContext::verify(
        &att["actions"][0]["integration"]["context"],
        TEST_ACTION_SECRET,
    )
    .unwrap();
    assert_eq!(ctx.sheet_id, "320");
    // The owner posted through the ledger; the other lines recorded no side effect.
    let owner: String =
        f.db.value(
            "SELECT event_id::text FROM integration.report_messages \
             WHERE message_key = 'hr.expense.sheet/320@2026-11-25T02:00:00Z'",
        )
        .await;
    assert_eq!(owner, ctx.event_id);
    let mut with_post = 0;
    for id in [&first, &second, &third] {
        let rows = deliveries(&f, id).await;
        if *id == owner {
            assert_eq!(
                rows,
                vec![
                    d("mattermost", "approval-request", "sent"),
                    d("mattermost", "approval-request/dm/@maria.santos", "sent")
                ]
            );
            with_post += 1;
        } else {
            assert!(rows.is_empty(), "{id}: {rows:?}");
        }
    }
    assert_eq!(with_post, 1);

    // A line redelivered by hand posts nothing again.
    let redelivered = envelope(&second, &line(b, 850.25, "2026-11-25T02:00:00Z"));
    let (status, answer) = call_handler(&f, "expense", &redelivered).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(svc.posts().len(), 1, "{}", svc.received());

    // Refused, corrected and submitted again: a new submission, a new request.
    let again = f
        .ingest("off-a-2", &line(a, 1200.0, "2026-11-26T07:30:00Z"))
        .await;
    let later = f
        .ingest("off-b-2", &line(b, 850.25, "2026-11-26T07:30:00Z"))
        .await;
    f.dispatch().await;
    assert_eq!(f.db.status(&again).await, "done");
    assert_eq!(f.db.status(&later).await, "done");
    assert_eq!(svc.posts().len(), 2, "{}", svc.received());
    assert_eq!(f.db.count("report_messages").await, 2);
    assert_eq!(
        f.db.count("approval_requests").await,
        2,
        "the previous release's view"
    );
}

/// The events of one transition of report 340 (five lines, `services::SALES_TRIP_LINES`),
/// ingested together and dispatched; asserts every line is done. Returns their ids.
async fn report_transition(f: &Fixture, event_type: &str, key: &str, extra: Value) -> Vec<String> {
    let mut ids = Vec::new();
    for id in services::SALES_TRIP_LINES {
        let event = expense(
            event_type,
            id as u64,
            merge(json!({"sheet_id": 340, "amount": 1250.0}), extra.clone()),
        );
        ids.push(f.ingest(&format!("{key}-{id}"), &event).await);
    }
    let s = f.dispatch().await;
    for id in &ids {
        assert_eq!(
            f.db.status(id).await,
            "done",
            "{s} {:?}\n{}",
            last_error(f, id).await,
            f.sys.output()
        );
    }
    ids
}

/// Every delivery recorded for `ids`: `(channel, target, status)`.
async fn deliveries_of(f: &Fixture, ids: &[String]) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for id in ids {
        all.extend(deliveries(f, id).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_line_report_gets_one_message_per_decision_and_five_payment_rows() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;
    let web_reads = || {
        svc.odoo_calls()
            .iter()
            .filter(|(m, method, _)| m == "hr.expense" && method == "web_read")
            .count()
    };

    // Refused: one DM to the employee, with the reason, the report's total and its lines.
    let refused = report_transition(
        &f,
        "expense.rejected",
        "trip-ref",
        json!({"status": "cancel", "reason": "Receipts missing", "refused_by": "Maria Santos",
               "refused_at": "2026-11-26T08:00:00Z"}),
    )
    .await;
    let posts = svc.posts();
    assert_eq!(
        posts.len(),
        1,
        "one refusal DM for the report: {posts:?}\n{}",
        svc.received()
    );
    assert_eq!(posts[0]["channel"], "@juan.delacruz");
    assert_eq!(
        posts[0]["text"],
        "@juan.delacruz, your expense report was refused."
    );
    let att = &posts[0]["attachments"][0];
    assert_eq!(att["title"], "Expense report refused: Sales trip Cebu");
    let text = att["text"].as_str().unwrap();
    assert!(
        text.contains("Receipts missing") && text.contains("Maria Santos"),
        "{text}"
    );
    let fields = att["fields"].to_string();
    assert!(
        fields.contains("PHP 6,250.00") && fields.contains("5 expenses"),
        "{fields}"
    );
    assert_eq!(web_reads(), 1, "only the owner looks the report up");
    assert_eq!(
        deliveries_of(&f, &refused).await,
        vec![d("mattermost", "@juan.delacruz", "sent")]
    );

    // Approved (after a resubmission): one finance post, five payment_queue rows.
    let approved = report_transition(
        &f,
        "expense.approved",
        "trip-app",
        json!({"status": "approve", "approved_by": "Maria Santos",
               "approved_at": "2026-11-27T03:00:00Z"}),
    )
    .await;
    let posts = svc.posts();
    assert_eq!(
        posts.len(),
        2,
        "one finance post for the report: {posts:?}\n{}",
        svc.received()
    );
    assert_eq!(posts[1]["channel"], services::FINANCE_CHANNEL);
    let att = &posts[1]["attachments"][0];
    assert_eq!(
        att["title"],
        "Approved for payment: expense report Sales trip Cebu"
    );
    assert!(att["text"].as_str().unwrap().contains("Maria Santos"));
    assert!(att["fields"].to_string().contains("PHP 6,250.00"));
    let queued: i64 =
        f.db.value("SELECT count(*) FROM integration.payment_queue WHERE sheet_id = '340' AND status = 'queued'")
            .await;
    assert_eq!(queued, 5, "the payment queue stays per line");
    assert_eq!(
        deliveries_of(&f, &approved).await,
        vec![d("mattermost", "finance-channel", "sent")]
    );

    // Paid: one DM, every row closed.
    let paid = report_transition(
        &f,
        "expense.paid",
        "trip-paid",
        json!({"status": "done", "paid_at": "2026-11-28T02:00:00Z", "payment_ref": "BNK1/2026/00077"}),
    )
    .await;
    let posts = svc.posts();
    assert_eq!(
        posts.len(),
        3,
        "one payment DM for the report: {posts:?}\n{}",
        svc.received()
    );
    assert_eq!(
        posts[2]["text"],
        "@juan.delacruz, your expense report was paid."
    );
    assert!(posts[2]["attachments"][0]["fields"]
        .to_string()
        .contains("BNK1/2026/00077"));
    let paid_rows: i64 =
        f.db.value("SELECT count(*) FROM integration.payment_queue WHERE sheet_id = '340' AND status = 'paid'")
            .await;
    assert_eq!(paid_rows, 5);
    assert_eq!(web_reads(), 3, "one look-up per decision");
    let keys: Vec<String> =
        f.db.column(
            "SELECT message_key FROM integration.report_messages ORDER BY message_key",
            &[],
        )
        .await;
    assert_eq!(
        keys,
        vec![
            "hr.expense.sheet/340/approved@2026-11-27T03:00:00Z",
            "hr.expense.sheet/340/paid@2026-11-28T02:00:00Z",
            "hr.expense.sheet/340/refused@2026-11-26T08:00:00Z",
        ]
    );

    // A redelivery of every line (owner or not) sends nothing new and looks nothing up.
    for (ids, event_type, extra) in [
        (
            &refused,
            "expense.rejected",
            json!({"reason": "Receipts missing", "refused_at": "2026-11-26T08:00:00Z"}),
        ),
        (
            &approved,
            "expense.approved",
            json!({"approved_by": "Maria Santos", "approved_at": "2026-11-27T03:00:00Z"}),
        ),
        (
            &paid,
            "expense.paid",
            json!({"paid_at": "2026-11-28T02:00:00Z", "payment_ref": "BNK1/2026/00077"}),
        ),
    ] {
        for (id, line) in ids.iter().zip(services::SALES_TRIP_LINES) {
            let event = expense(
                event_type,
                line as u64,
                merge(json!({"sheet_id": 340}), extra.clone()),
            );
            let (status, answer) = call_handler(&f, "expense", &envelope(id, &event)).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    assert_eq!(svc.posts().len(), 3, "nothing new\n{}", svc.received());
    assert_eq!(web_reads(), 3, "no look-up on redelivery");

    // Through the dispatcher: the owner of the approval requeued from dead posts nothing.
    let owner: String =
        f.db.value(
            "SELECT event_id::text FROM integration.report_messages \
             WHERE message_key LIKE 'hr.expense.sheet/340/approved@%'",
        )
        .await;
    for id in [&owner, &approved[4]] {
        f.db.client
            .execute(
                "UPDATE integration.outbox SET status = 'dead' WHERE id::text = $1",
                &[id],
            )
            .await
            .unwrap();
        f.db.client
            .query_one("SELECT integration.requeue_outbox($1::text::uuid)", &[id])
            .await
            .unwrap();
    }
    f.dispatch().await;
    assert_eq!(f.db.status(&owner).await, "done");
    assert_eq!(svc.posts().len(), 3, "{}", svc.received());

    // An older addon's lines (no stamp) keep one message each.
    for id in [4001u64, 4002] {
        deliver(
            &f,
            &format!("trip-old-{id}"),
            &expense(
                "expense.paid",
                id,
                json!({"sheet_id": 340, "payment_ref": "X"}),
            ),
        )
        .await;
    }
    assert_eq!(svc.posts().len(), 5, "{}", svc.received());
}

/// `claim_approval_request` of one fixed key by event `me`: the owner's id.
async fn claim_approval_request(client: &tokio_postgres::Client, me: &str) -> String {
    client
        .query_one(
            "SELECT integration.claim_approval_request('hr.expense.sheet/9@t', $1::text::uuid)",
            &[&me],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_of_one_approval_request_agree_on_one_owner() {
    let db = ipai_tests::TestDb::new().await.unwrap();
    let mut claims = Vec::new();
    for _ in 0..16 {
        let url = db.url.clone();
        claims.push(tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let me = uuid::Uuid::new_v4().to_string();
            let owner = claim_approval_request(&client, &me).await;
            // Asking again (a redelivery) gives the same answer.
            let again = claim_approval_request(&client, &me).await;
            assert_eq!(owner, again);
            (me, owner)
        }));
    }
    let mut results = Vec::new();
    for c in claims {
        results.push(c.await.unwrap());
    }
    let owner = &results[0].1;
    assert!(results.iter().all(|(_, o)| o == owner), "{results:?}");
    assert_eq!(results.iter().filter(|(me, _)| me == owner).count(), 1);
    assert_eq!(db.count("report_messages").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_events_email_book_the_calendar_and_track_availability() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;

    let reserved = deliver(&f, "b-501-res", &booking("asset.reserved", 501, json!({}))).await;
    // Email: Resend shape, idempotency key, content.
    let mails = svc.emails();
    assert_eq!(mails.len(), 1, "{}", svc.received());
    let (mail, key) = &mails[0];
    assert_eq!(mail["to"], json!(["juan.delacruz@example.com"]));
    assert!(mail.get("cc").is_none());
    assert_eq!(
        mail["subject"],
        "Reservation confirmed: Projector Epson EB-X51 (PRJ-0012)"
    );
    assert!(mail["html"]
        .as_str()
        .unwrap()
        .contains("2026-11-27 01:00 UTC"));
    assert!(mail["text"].as_str().unwrap().contains("Makati HQ, 12F"));
    assert_eq!(key, &format!("ipai/{reserved}/juan.delacruz@example.com"));
    // Google: one token request with a signed assertion, one events.insert.
    let tokens = svc.google_requests("/token");
    assert_eq!(tokens.len(), 1, "{}", svc.received());
    let form = String::from_utf8_lossy(&tokens[0].body).to_string();
    let jwt = form.split("assertion=").nth(1).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], services::GOOGLE_CLIENT_EMAIL);
    assert_eq!(claims["aud"], format!("{}/token", svc.google.url));
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/calendar.events"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len() == 256,
        "RS256 with a 2048-bit key"
    );
    let inserts = svc.google_requests("/events");
    assert_eq!(inserts.len(), 1, "{}", svc.received());
    let ev = inserts[0].json();
    let cal_id = format!("ipai{}", reserved.replace('-', ""));
    assert_eq!(ev["id"], cal_id);
    assert_eq!(
        ev["summary"],
        "Projector Epson EB-X51 (PRJ-0012) — Juan dela Cruz"
    );
    assert_eq!(ev["start"]["dateTime"], "2026-11-27T01:00:00Z");
    assert_eq!(ev["end"]["dateTime"], "2026-11-27T09:00:00Z");
    assert_eq!(ev["location"], "Makati HQ, 12F");
    assert_eq!(
        ev["extendedProperties"]["private"]["ipai_booking_id"],
        "501"
    );
    // Dashboard, id_map, ledger.
    let row = f.db.client
        .query_one("SELECT status, booking_id, employee_name, start_at::text, end_at::text, location FROM integration.asset_availability WHERE asset_id = '12'", &[])
        .await.unwrap();
    assert_eq!(row.get::<_, String>(0), "reserved");
    assert_eq!(row.get::<_, String>(1), "501");
    assert_eq!(row.get::<_, String>(2), "Juan dela Cruz");
    assert!(row.get::<_, String>(3).starts_with("2026-11-27 01:00:00"));
    assert!(row.get::<_, String>(4).starts_with("2026-11-27 09:00:00"));
    assert_eq!(row.get::<_, String>(5), "Makati HQ, 12F");
    let map: String = f.db.client
        .query_one("SELECT external_id FROM integration.id_map WHERE odoo_model = 'ipai.asset.booking' AND odoo_id = '501' AND system = 'google_calendar'", &[])
        .await.unwrap().get(0);
    assert_eq!(map, cal_id);
    assert_eq!(
        deliveries(&f, &reserved).await,
        vec![
            d("email", "juan.delacruz@example.com", "sent"),
            d("google_calendar", "booking/501", "sent")
        ]
    );
    let cached: i64 = f.db.client
        .query_one("SELECT count(*) FROM integration.oauth_tokens WHERE name = $1 AND expires_at > now() + interval '50 minutes'", &[&format!("google_calendar:{}", services::GOOGLE_CLIENT_EMAIL)])
        .await.unwrap().get(0);
    assert_eq!(cached, 1);

    // checked_out / checked_in: status only.
    deliver(
        &f,
        "b-501-out",
        &booking("asset.checked_out", 501, json!({"status": "checked_out"})),
    )
    .await;
    async fn status(f: &Fixture) -> String {
        f.db.client
            .query_one(
                "SELECT status FROM integration.asset_availability WHERE asset_id = '12'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
    }
    assert_eq!(status(&f).await, "checked_out");
    // Another booking's reservation does not displace the booking that has the asset out.
    deliver(
        &f,
        "b-777-res",
        &booking(
            "asset.reserved",
            777,
            json!({"start": "2026-12-01T01:00:00Z", "end": "2026-12-01T09:00:00Z"}),
        ),
    )
    .await;
    assert_eq!(status(&f).await, "checked_out");
    deliver(
        &f,
        "b-501-in",
        &booking("asset.checked_in", 501, json!({"status": "checked_in"})),
    )
    .await;
    assert_eq!(status(&f).await, "available");
    // The second reservation reused the cached token: still one token request.
    assert_eq!(svc.google_requests("/token").len(), 1, "{}", svc.received());
    assert_eq!(
        svc.google_requests("/events").len(),
        2,
        "{}",
        svc.received()
    );
    assert_eq!(svc.emails().len(), 2, "{}", svc.received());
    svc.mattermost
        .assert_received_nothing("asset events post nothing to Mattermost");
    svc.odoo
        .assert_received_nothing("asset events make no Odoo call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_overdue_escalates_level_1_employee_2_manager_3_it_admin() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;
    for level in 1..=3u64 {
        let id = deliver(
            &f,
            &format!("b-90{level}-overdue"),
            &booking("asset.overdue", 900 + level, json!({"escalation_level": level, "days_overdue": level * 2, "status": "checked_out"})),
        )
        .await;
        assert_eq!(deliveries(&f, &id).await.len(), 1);
    }
    let mails = svc.emails();
    assert_eq!(mails.len(), 3, "{}", svc.received());
    for (i, (m, _)) in mails.iter().enumerate() {
        assert_eq!(m["to"], json!(["juan.delacruz@example.com"]));
        assert!(
            m["subject"]
                .as_str()
                .unwrap()
                .contains(&format!("level {}", i + 1)),
            "{}",
            m["subject"]
        );
    }
    assert!(mails[0].0.get("cc").is_none(), "level 1: the employee only");
    assert_eq!(mails[1].0["cc"], json!(["maria.santos@example.com"]));
    assert_eq!(
        mails[2].0["cc"],
        json!(["maria.santos@example.com", services::IT_ADMIN])
    );
    assert!(mails[1].0["text"]
        .as_str()
        .unwrap()
        .contains("4 days overdue"));
    let overdue: i64 = f.db.client
        .query_one("SELECT count(*) FROM integration.asset_availability WHERE status = 'overdue' AND booking_id = '903'", &[])
        .await.unwrap().get(0);
    assert_eq!(overdue, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_events_fill_ppm_and_bir_dashboards_request_reviews_and_escalate() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;

    deliver(
        &f,
        "t-created",
        &task("finance_task.created", 7001, json!({"stage": "New"})),
    )
    .await;
    deliver(
        &f,
        "t-progress",
        &task("finance_task.in_progress", 7001, json!({})),
    )
    .await;
    let row = f.db.client
        .query_one("SELECT name, project, stage, bir_form, period, deadline::text, reviewer_id, responsible_emails FROM integration.ppm_tasks WHERE task_id = '7001'", &[])
        .await.unwrap();
    assert_eq!(row.get::<_, String>(0), "BIR 1601-C October 2026");
    assert_eq!(row.get::<_, String>(1), "Month-end close");
    assert_eq!(row.get::<_, String>(2), "In Progress");
    assert_eq!(row.get::<_, String>(3), "1601-C");
    assert_eq!(row.get::<_, String>(4), "2026-10");
    assert_eq!(row.get::<_, String>(5), "2026-11-10");
    assert_eq!(row.get::<_, String>(6), "3");
    assert_eq!(
        row.get::<_, Vec<String>>(7),
        vec!["ana.reyes@example.com", "jose.garcia@example.com"]
    );
    assert!(
        svc.posts().is_empty(),
        "created/in_progress post nothing\n{}",
        svc.received()
    );

    // submitted: reviewer from Odoo, DM with a link to the task.
    deliver(
        &f,
        "t-submitted",
        &task(
            "finance_task.submitted",
            7001,
            json!({"stage": "For Review"}),
        ),
    )
    .await;
    let calls = svc.odoo_calls();
    assert_eq!(
        calls,
        vec![("res.users".into(), "web_read".into(), json!([[3]]))],
        "{}",
        svc.received()
    );
    let posts = svc.posts();
    assert_eq!(posts.len(), 1, "{}", svc.received());
    assert_eq!(posts[0]["channel"], "@rosa.reviewer");
    let link = format!(
        "{}/web#id=7001&model=project.task&view_type=form",
        svc.odoo.url
    );
    assert_eq!(posts[0]["attachments"][0]["title_link"], link);
    assert!(posts[0]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .contains(&link));
    let stage: String =
        f.db.client
            .query_one(
                "SELECT stage FROM integration.ppm_tasks WHERE task_id = '7001'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(stage, "For Review");

    // approved, then filed: bir_compliance.
    deliver(
        &f,
        "t-approved",
        &task("finance_task.approved", 7001, json!({"stage": "Approved"})),
    )
    .await;
    let row = f.db.client
        .query_one("SELECT status, task_id, approved_at IS NOT NULL FROM integration.bir_compliance WHERE bir_form = '1601-C' AND period = '2026-10'", &[])
        .await.unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2)
        ),
        ("approved".into(), "7001".into(), true)
    );
    deliver(
        &f,
        "t-filed",
        &task("finance_task.filed", 7001, json!({"stage": "Filed", "filed_at": "2026-11-09T08:00:00Z", "reference_no": "eFPS-2026-1601C-000123"})),
    )
    .await;
    let row = f.db.client
        .query_one("SELECT status, reference_no, filed_at::text, approved_at IS NOT NULL FROM integration.bir_compliance WHERE bir_form = '1601-C' AND period = '2026-10'", &[])
        .await.unwrap();
    assert_eq!(row.get::<_, String>(0), "filed");
    assert_eq!(row.get::<_, String>(1), "eFPS-2026-1601C-000123");
    assert!(row.get::<_, String>(2).starts_with("2026-11-09 08:00:00"));
    assert!(row.get::<_, bool>(3), "the approval is kept");

    // overdue at 3 days: the responsible users; at 4 days: also the Finance Director.
    let three = deliver(
        &f,
        "t2-overdue-3",
        &task("finance_task.overdue", 7002, json!({"days_overdue": 3})),
    )
    .await;
    assert_eq!(
        deliveries(&f, &three).await,
        vec![
            d("mattermost", "@ana.reyes", "sent"),
            d("mattermost", "@jose.garcia", "sent")
        ]
    );
    let four = deliver(
        &f,
        "t2-overdue-4",
        &task("finance_task.overdue", 7002, json!({"days_overdue": 4})),
    )
    .await;
    assert_eq!(
        deliveries(&f, &four).await,
        vec![
            d("mattermost", "@ana.reyes", "sent"),
            d("mattermost", "@jose.garcia", "sent"),
            d("mattermost", "director:@fin.director", "sent"),
        ]
    );
    let posts = svc.posts();
    assert_eq!(posts.len(), 6, "{}", svc.received());
    let channels: Vec<&str> = posts[1..]
        .iter()
        .map(|p| p["channel"].as_str().unwrap())
        .collect();
    assert_eq!(
        channels,
        [
            "@ana.reyes",
            "@jose.garcia",
            "@ana.reyes",
            "@jose.garcia",
            "@fin.director"
        ]
    );
    assert!(posts[3]["attachments"][0]["title"]
        .as_str()
        .unwrap()
        .starts_with("Overdue 4 days"));
    assert!(posts[5]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .contains("@ana.reyes"));
    assert_eq!(f.db.count("ppm_tasks").await, 2);
}

/// Posts `envelope` to a handler route directly (as the dispatcher does).
async fn call_handler(f: &Fixture, domain: &str, envelope: &Value) -> (u16, Value) {
    let r = f
        .http
        .post(f.sys.url(&format!("/handlers/{domain}")))
        .bearer_auth(TEST_HANDLER_TOKEN)
        .json(envelope)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn envelope(id: &str, event: &Value) -> Value {
    json!({"id": id, "seq": 1, "event_type": event["event_type"], "aggregate_type": event["aggregate_type"],
           "aggregate_id": event["aggregate_id"], "payload": event["payload"], "idempotency_key": format!("k-{id}"),
           "source": "odoo", "occurred_at": null, "created_at": "2026-11-26 05:00:00+00", "attempt": 1})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_event_posts_mails_and_books_once() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;
    let rejected = envelope(
        "6f1d2c3b-0000-4000-8000-000000000001",
        &expense(
            "expense.rejected",
            1043,
            json!({"reason": "Duplicate", "refused_by": "M"}),
        ),
    );
    let reserved = envelope(
        "6f1d2c3b-0000-4000-8000-000000000002",
        &booking("asset.reserved", 501, json!({})),
    );
    let submitted = envelope(
        "6f1d2c3b-0000-4000-8000-000000000003",
        &expense("expense.submitted", 1042, json!({})),
    );
    for attempt in 1..=2 {
        let (s, b) = call_handler(&f, "expense", &rejected).await;
        assert_eq!(s, 200, "attempt {attempt}: {b}");
        let (s, b) = call_handler(&f, "asset", &reserved).await;
        assert_eq!(s, 200, "attempt {attempt}: {b}");
        if attempt == 2 {
            assert!(b["effects"].to_string().contains("already done"), "{b}");
        }
        let (s, b) = call_handler(&f, "expense", &submitted).await;
        assert_eq!(s, 200, "attempt {attempt}: {b}");
    }
    assert_eq!(
        svc.posts().len(),
        2,
        "one refusal DM, one approval request\n{}",
        svc.received()
    );
    assert_eq!(
        svc.emails().len(),
        1,
        "one confirmation email\n{}",
        svc.received()
    );
    assert_eq!(
        svc.google_requests("/events").len(),
        1,
        "one calendar event\n{}",
        svc.received()
    );
    assert_eq!(
        svc.odoo_calls().len(),
        1,
        "the approver is not looked up again\n{}",
        svc.received()
    );

    // Through the dispatcher too: a requeued event does not notify again.
    let id = deliver(
        &f,
        "exp-1099-rej",
        &expense("expense.rejected", 1099, json!({"reason": "x"})),
    )
    .await;
    f.db.client
        .execute(
            "UPDATE integration.outbox SET status = 'dead' WHERE id::text = $1",
            &[&id],
        )
        .await
        .unwrap();
    f.db.client
        .query_one("SELECT integration.requeue_outbox($1::text::uuid)", &[&id])
        .await
        .unwrap();
    assert_eq!(f.dispatch().await["done"], 1);
    assert_eq!(svc.posts().len(), 3, "{}", svc.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_side_effect_fails_the_event_and_only_it_is_retried() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;
    svc.google.script(|r| {
        if r.path.ends_with("/events") {
            (
                503,
                json!({"error": {"code": 503, "message": "Backend Error"}}).to_string(),
            )
        } else {
            (
                200,
                json!({"access_token": services::GOOGLE_TOKEN, "expires_in": 3599}).to_string(),
            )
        }
    });
    let id = f
        .ingest("b-501-res", &booking("asset.reserved", 501, json!({})))
        .await;
    let s = f.dispatch().await;
    assert_eq!(s["failed"], 1, "{s}");
    let err = last_error(&f, &id).await.unwrap_or_default();
    assert!(
        err.starts_with("HTTP 502")
            && err.contains("google_calendar booking/501")
            && err.contains("Backend Error"),
        "{err}"
    );
    assert_eq!(
        deliveries(&f, &id).await,
        vec![
            d("email", "juan.delacruz@example.com", "sent"),
            d("google_calendar", "booking/501", "failed")
        ]
    );
    // The calendar recovers; the retry books it and does not email again.
    svc.google.script(|r| {
        if r.path.ends_with("/events") {
            (
                200,
                json!({"id": r.json()["id"], "status": "confirmed"}).to_string(),
            )
        } else {
            (
                500,
                "token endpoint must not be called: the token is cached".into(),
            )
        }
    });
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["done"], 1);
    assert_eq!(svc.emails().len(), 1, "{}", svc.received());
    assert_eq!(
        svc.google_requests("/events").len(),
        2,
        "{}",
        svc.received()
    );
    assert_eq!(
        deliveries(&f, &id).await,
        vec![
            d("email", "juan.delacruz@example.com", "sent"),
            d("google_calendar", "booking/501", "sent")
        ]
    );

    // Mattermost down: the event fails with Mattermost's answer, nothing is recorded as sent.
    svc.mattermost
        .respond_with(500, "Unable to get the channel");
    let id = f
        .ingest(
            "exp-1043-rej",
            &expense("expense.rejected", 1043, json!({"reason": "x"})),
        )
        .await;
    assert_eq!(f.dispatch().await["failed"], 1);
    let err = last_error(&f, &id).await.unwrap_or_default();
    assert!(
        err.contains("mattermost @juan.delacruz")
            && err.contains("HTTP 500: Unable to get the channel"),
        "{err}"
    );
    svc.mattermost.respond_with(200, "ok");
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["done"], 1);
    svc.mattermost
        .assert_received(2, "the failed post and the one that went through");
}

/// `(status, attempts, detail)` of the approval request's delivery of event `id`.
async fn approval_delivery(f: &Fixture, id: &str) -> Option<(String, i32, String)> {
    f.db.client
        .query_opt(
            "SELECT status, attempts, coalesce(detail, '') FROM integration.deliveries \
             WHERE event_id::text = $1 AND channel = 'mattermost' AND target = $2",
            &[&id, &ipai_effects::plan::APPROVAL_TARGET],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_claimed_before_a_failed_look_up_is_handed_back_and_posted_once_later() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;

    // Odoo down: the approver cannot be looked up. The approval request was claimed before
    // the look-up (one round trip with the report's message); the claim is handed back,
    // so no delivery is left pending and the next attempt may post at once.
    svc.odoo_down(true);
    let id = f
        .ingest(
            "exp-1050-sub",
            &expense("expense.submitted", 1050, json!({})),
        )
        .await;
    assert_eq!(f.dispatch().await["failed"], 1);
    let err = last_error(&f, &id).await.unwrap_or_default();
    assert!(err.contains("502"), "{err}");
    assert_eq!(approval_delivery(&f, &id).await, None, "claim handed back");
    assert!(svc.posts().is_empty(), "{}", svc.received());

    // Odoo back, Mattermost failing the bot's post (its user directory answers): the
    // direct message fails and is recorded as failed.
    svc.odoo_down(false);
    svc.mattermost.script(|r| {
        if r.path == "/api/v4/posts" {
            (500, "Unable to get the channel".into())
        } else {
            services::mattermost_answer(r)
        }
    });
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["failed"], 1);
    let (status, attempts, detail) = approval_delivery(&f, &id).await.unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(detail.contains("Unable to get the channel"), "{detail}");

    // Odoo down again: the failed delivery, taken over by this attempt's claim, is failed
    // again with its attempt undone and Mattermost's detail kept.
    svc.odoo_down(true);
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["failed"], 1);
    assert_eq!(
        approval_delivery(&f, &id).await,
        Some(("failed".into(), 1, detail.clone()))
    );

    // Both back: the approval request is posted once, on its second performing attempt.
    svc.odoo_down(false);
    svc.mattermost.script(services::mattermost_answer);
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["done"], 1);
    assert_eq!(f.db.status(&id).await, "done");
    let (status, attempts, _) = approval_delivery(&f, &id).await.unwrap();
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    assert_eq!(
        svc.posts().len(),
        2,
        "the failed post and the one that went through\n{}",
        svc.received()
    );
    assert_eq!(
        f.db.client
            .query_one(
                "SELECT count(*) FROM integration.deliveries WHERE status = 'pending'",
                &[]
            )
            .await
            .unwrap()
            .get::<_, i64>(0),
        0,
        "no claim left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_variable_fails_naming_it_and_the_event_waits_until_it_is_set() {
    let svc = Services::start().await;
    let mut f = system(&svc, |v| {
        v.insert("mattermost_webhook_url".into(), String::new());
    })
    .await;
    let id = f
        .ingest(
            "exp-1043-rej",
            &expense("expense.rejected", 1043, json!({"reason": "Duplicate"})),
        )
        .await;
    let s = f.dispatch().await;
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(f.db.status(&id).await, "failed");
    let err = last_error(&f, &id).await.unwrap_or_default();
    assert!(err.starts_with("HTTP 500"), "{err}");
    assert!(
        err.contains("mattermost_webhook_url")
            && err.contains("SPIN_VARIABLE_MATTERMOST_WEBHOOK_URL"),
        "{err}"
    );
    assert!(deliveries(&f, &id).await.is_empty(), "nothing was claimed");
    assert_eq!(f.db.count("payment_queue").await, 0);
    svc.mattermost
        .assert_received_nothing("nothing is sent without its URL");

    // Asset: a level-3 escalation without it_admin_email names that variable.
    let lvl3 = f
        .ingest(
            "b-9-overdue",
            &booking("asset.overdue", 9, json!({"escalation_level": 3})),
        )
        .await;
    f.restart_with(|v| {
        v.insert("it_admin_email".into(), String::new());
    })
    .await
    .unwrap();
    f.db.client
        .execute("UPDATE integration.outbox SET next_attempt_at = now()", &[])
        .await
        .unwrap();
    f.dispatch().await;
    let err = last_error(&f, &lvl3).await.unwrap_or_default();
    assert!(err.contains("it_admin_email"), "{err}");

    // The operator sets the variables; the retries deliver, nothing was lost.
    let url = format!("{}{}", svc.mattermost.url, services::MATTERMOST_HOOK_PATH);
    f.restart_with(|v| {
        v.insert("mattermost_webhook_url".into(), url);
        v.insert("it_admin_email".into(), services::IT_ADMIN.into());
    })
    .await
    .unwrap();
    f.db.client
        .execute("UPDATE integration.outbox SET next_attempt_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(f.dispatch().await["done"], 2);
    assert_eq!(svc.posts().len(), 1, "{}", svc.received());
    assert_eq!(svc.emails().len(), 1, "{}", svc.received());

    // A URL outside its allowed origin is named too (never echoing the secret URL).
    f.restart_with(|v| {
        v.insert(
            "mattermost_webhook_url".into(),
            "https://chat.example.com/hooks/SECRET".into(),
        );
    })
    .await
    .unwrap();
    let id = f
        .ingest(
            "exp-1044-rej",
            &expense("expense.rejected", 1044, json!({"reason": "x"})),
        )
        .await;
    f.dispatch().await;
    let err = last_error(&f, &id).await.unwrap_or_default();
    assert!(
        err.contains("mattermost_origin")
            && err.contains("https://chat.example.com")
            && !err.contains("SECRET"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_with_nothing_to_do_are_acknowledged_as_skipped() {
    let svc = Services::start().await;
    let f = system(&svc, |_| {}).await;
    let e = envelope(
        "6f1d2c3b-0000-4000-8000-00000000000a",
        &json!({"event_type": "asset.checked_in", "aggregate_type": "asset_booking", "aggregate_id": "5",
                "payload": {"status": "checked_in"}}),
    );
    let (s, b) = call_handler(&f, "asset", &e).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["status"].as_str().unwrap().starts_with("skipped: "),
        "{b}"
    );
    assert!(b["status"].as_str().unwrap().contains("asset_id"), "{b}");
    // Through the pipeline the event is done.
    deliver(
        &f,
        "b-5-in",
        &json!({"event_type": "asset.checked_in", "aggregate_type": "asset_booking", "aggregate_id": "5",
                "payload": {"status": "checked_in"}}),
    )
    .await;
    // Every event type of the taxonomy has been delivered to a real handler by the tests
    // above; make sure none was forgotten.
    assert_eq!(ipai_core::taxonomy::all_event_types().count(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_service_times_out_and_the_event_is_retried() {
    let svc = Services::start().await;
    let f = system(&svc, |v| {
        v.insert("delivery_timeout_ms".into(), "15000".into());
    })
    .await;
    svc.mattermost.delay(std::time::Duration::from_secs(7));
    let id = f
        .ingest(
            "exp-1043-rej",
            &expense("expense.rejected", 1043, json!({"reason": "x"})),
        )
        .await;
    assert_eq!(f.dispatch().await["failed"], 1);
    let err = last_error(&f, &id).await.unwrap_or_default();
    assert!(
        err.contains("mattermost @juan.delacruz") && err.contains("timed out after 5000 ms"),
        "{err}"
    );
    assert_eq!(
        deliveries(&f, &id).await,
        vec![d("mattermost", "@juan.delacruz", "failed")]
    );
}

/// A system whose Mattermost (webhook and API) is a `SegmentProbe`.
async fn system_behind_a_segment_probe() -> (Services, SegmentProbe, Fixture) {
    let svc = Services::start().await;
    let probe = SegmentProbe::start().await.unwrap();
    let f = system(&svc, |v| {
        let hook = format!("{}/hooks/probe", probe.url);
        v.insert("mattermost_webhook_url".into(), hook);
        v.insert("mattermost_origin".into(), probe.url.clone());
    })
    .await;
    (svc, probe, f)
}

/// An outbound POST leaves with its head and body in one write. Spin's outbound client
/// keeps Nagle's algorithm on, so a body written after the head waits for the receiver's
/// delayed ACK — up to 40 ms per request on Linux; in `make bench` it cost Spin a third of
/// its end-to-end throughput. Several events, so the runtime reuses its pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_post_leaves_with_its_head_and_body_in_one_write() {
    let (_svc, probe, f) = system_behind_a_segment_probe().await;
    for n in 0..4 {
        let id = 1050 + n;
        let event = expense("expense.rejected", id, json!({"reason": "Missing receipt"}));
        deliver(&f, &format!("exp-{id}-rej"), &event).await;
    }
    let arrivals = probe.arrivals();
    assert_eq!(arrivals.len(), 4, "{arrivals:?}");
    for a in &arrivals {
        assert_eq!(a.request_line, "POST /hooks/probe HTTP/1.1", "{arrivals:?}");
        assert!(a.body_len > 0 && a.whole_at_first_read, "{arrivals:?}");
    }
}

/// The same for a GET (the Mattermost user directory, looked up for an approval request):
/// no body and no chunked framing, so nothing trails the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_get_leaves_as_a_head_alone() {
    let (_svc, probe, f) = system_behind_a_segment_probe().await;
    for id in [1060, 1061, 1062] {
        let event = expense("expense.submitted", id, json!({"sheet_id": id}));
        f.ingest(&format!("exp-{id}-sub"), &event).await;
        // The probe's `{"ok":true}` is no Mattermost user: the attempt fails after the GET.
        f.dispatch().await;
    }
    let gets: Vec<_> = probe
        .arrivals()
        .into_iter()
        .filter(|a| a.request_line.starts_with("GET /api/v4/users/"))
        .collect();
    assert_eq!(gets.len(), 3, "{:?}", probe.arrivals());
    for a in &gets {
        assert!(
            !a.chunked && a.body_len == 0 && a.whole_at_first_read,
            "{gets:?}"
        );
    }
}
