//! The whole loop against a real Odoo 18.0 (issue #33): Odoo threaded with its cron worker,
//! the addon pointed at the bus (started from the shipped `spin.toml`, dispatch kick and
//! cron on, as `make up` runs it), the bus's Odoo settings pointed at that same Odoo (a bus
//! user with an API key). Only Mattermost, the email API and Google are loopback stand-ins
//! (tests/support/services.rs). Users act over Odoo's JSON-RPC as themselves: Juan (the
//! employee), Maria (his manager, the approver), Ana (an accountant), the administrator.
//! Reconciliation (SPEC §11): a proxy in front of the bus swallows a minute of events; the
//! addon's digest finds exactly those keys, the `events_missing` alert opens, Odoo resends
//! them at the bus's request (once the bus's user has the addon's group) and it resolves.
//!
//! Needs the template `scripts/test-odoo.sh` keeps (tests/support/odoo.rs): without it the
//! suite fails when the Odoo archive is in ../shared/odoo18, else says it is skipped.

use ipai_effects::mattermost::ActionContext;
use ipai_tests::odoo::{availability, poll, Availability, BusFront, Login, Odoo};
use ipai_tests::runtime::TEST_ACTION_SECRET;
use ipai_tests::services::{Services, FINANCE_CHANNEL, MARIA_MM_ID};
use ipai_tests::Fixture;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long an event may take from a user's commit in Odoo to its handler's effects.
const FLOW: Duration = Duration::from_secs(90);
/// The read timeout of the addon's sender (`ipai.webhook.timeout`, 10 s by default): a call
/// that waited on a hanging bus would take at least this long.
const SENDER_TIMEOUT: Duration = Duration::from_secs(10);

struct Loop {
    svc: Services,
    front: BusFront,
    odoo: Odoo,
    f: Fixture,
}

impl Loop {
    /// Odoo prepared and serving, the bus started against it; `None` when skipped.
    async fn start() -> Option<Loop> {
        let (home, template) = match availability() {
            Availability::Ready { home, template } => (home, template),
            Availability::Skipped(why) => {
                println!("odoo loop: skipped ({why})");
                return None;
            }
        };
        let svc = Services::start().await;
        let front = BusFront::start().await.expect("bus front");
        let odoo = Odoo::start(&home, &template, &front.webhook_url())
            .await
            .expect("a real Odoo");
        let (url, db, key) = (
            odoo.url.clone(),
            odoo.db.clone(),
            odoo.people.text("bus_key"),
        );
        let f = Fixture::with(|v| {
            svc.configure(v);
            v.insert("odoo_url".into(), url);
            v.insert("odoo_db".into(), db);
            v.insert("odoo_user".into(), "bus@example.com".into());
            v.insert("odoo_api_key".into(), key);
        })
        .await
        .expect("the bus");
        front.forward_to(&f.sys.base_url);
        Some(Loop {
            svc,
            front,
            odoo,
            f,
        })
    }

    fn juan(&self) -> Login {
        self.odoo.user("juan_uid", "juan.delacruz@example.com")
    }

    fn maria(&self) -> Login {
        self.odoo.user("maria_uid", "maria.santos@example.com")
    }

    fn ana(&self) -> Login {
        self.odoo.user("ana_uid", "ana.reyes@example.com")
    }

    /// Juan files a report of one own-account expense and submits it; returns
    /// (expense id, report id, how long the submit call took).
    async fn submit(&self, name: &str, amount: f64) -> (i64, i64, Duration) {
        let juan = self.juan();
        let expense = self
            .odoo
            .ok(
                &juan,
                "hr.expense",
                "create",
                json!([{"name": name, "employee_id": self.odoo.people.id("juan_employee"),
                        "product_id": self.odoo.people.id("product"),
                        "total_amount_currency": amount, "payment_mode": "own_account"}]),
                json!({}),
            )
            .await;
        let expense = expense.as_i64().expect("expense id");
        let sheet = self
            .odoo
            .ok(
                &juan,
                "hr.expense.sheet",
                "create",
                json!([{"name": name, "employee_id": self.odoo.people.id("juan_employee"),
                        "expense_line_ids": [[6, 0, [expense]]]}]),
                json!({}),
            )
            .await;
        let sheet = sheet.as_i64().expect("sheet id");
        let t = Instant::now();
        self.odoo
            .ok(
                &juan,
                "hr.expense.sheet",
                "action_submit_sheet",
                json!([[sheet]]),
                json!({}),
            )
            .await;
        (expense, sheet, t.elapsed())
    }

    /// Everything that tells what happened: Odoo's queue, the bus's outbox, the stand-ins'
    /// requests, both logs' tails.
    async fn report(&self) -> String {
        let outbox: Vec<String> = self
            .f
            .db
            .column(
                "SELECT seq::text || ' ' || event_type || ' ' || aggregate_id || ' ' || status
                        || ' ' || coalesce(last_error, '') FROM integration.outbox ORDER BY seq",
                &[],
            )
            .await;
        let deliveries: Vec<String> = self
            .f
            .db
            .column(
                "SELECT channel || ' ' || target || ' ' || status || ' ' || coalesce(detail, '')
                   FROM integration.deliveries ORDER BY 1",
                &[],
            )
            .await;
        let out = self.f.sys.output();
        let bus_tail: Vec<&str> = out.lines().rev().take(30).collect();
        format!(
            "Odoo queue: {:#?}\nbus outbox: {outbox:#?}\ndeliveries: {deliveries:#?}\n\
             Mattermost: {:#?}\nemails: {}\nOdoo log ({}):\n{}\nbus log ({}):\n{}",
            self.odoo.queue().await,
            self.svc
                .mattermost
                .requests()
                .iter()
                .map(|r| format!(
                    "{} {} {}",
                    r.method,
                    r.path,
                    String::from_utf8_lossy(&r.body)
                ))
                .collect::<Vec<_>>(),
            self.svc.email.requests().len(),
            self.odoo.log.display(),
            self.odoo.log_tail(30),
            self.f.sys.log.display(),
            bus_tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        )
    }

    /// Waits until the bus has handled `event_type` of expense `expense` (`done`); returns
    /// its stored payload.
    async fn handled(&self, event_type: &str, expense: i64, within: Duration) -> Value {
        self.handled_n(event_type, expense, 1, within)
            .await
            .remove(0)
    }

    /// Waits until the bus has stored `n` events `event_type` of record `id` (its aggregate
    /// type from the event type) and handled them all; returns their payloads in order.
    async fn handled_n(&self, event_type: &str, id: i64, n: usize, within: Duration) -> Vec<Value> {
        let aggregate_type = match event_type.split('.').next() {
            Some("asset") => "asset_booking",
            Some(domain) => domain,
            None => "",
        };
        let id = id.to_string();
        let found = poll(within, || async {
            let rows = self
                .f
                .db
                .client
                .query(
                    "SELECT status, payload FROM integration.outbox
                      WHERE event_type = $1 AND aggregate_type = $2 AND aggregate_id = $3
                      ORDER BY seq",
                    &[&event_type, &aggregate_type, &id],
                )
                .await
                .expect("outbox");
            (rows.len() >= n && rows.iter().all(|r| r.get::<_, String>(0) == "done"))
                .then(|| rows.iter().map(|r| r.get::<_, Value>(1)).collect())
        })
        .await;
        match found {
            Some(p) => p,
            None => panic!(
                "{n} × {event_type} of {aggregate_type} {id} not handled within {within:?}\n{}",
                self.report().await
            ),
        }
    }

    /// Waits for the approval message of report `sheet` (its buttons' context names it).
    async fn approval_post(&self, sheet: i64) -> Value {
        let found = poll(FLOW, || async {
            self.svc.posts().into_iter().find(|p| {
                let ctx = &p["attachments"][0]["actions"][0]["integration"]["context"];
                ActionContext::verify(ctx, TEST_ACTION_SECRET)
                    .is_ok_and(|c| c.sheet_id == sheet.to_string())
            })
        })
        .await;
        match found {
            Some(p) => p,
            None => panic!(
                "no approval message for report {sheet}\n{}",
                self.report().await
            ),
        }
    }

    /// Waits for a Mattermost post to `channel` whose text or fields contain `needle`.
    async fn post_to(&self, channel: &str, needle: &str) -> Value {
        let found = poll(FLOW, || async {
            self.svc
                .posts()
                .into_iter()
                .find(|p| p["channel"] == channel && p.to_string().contains(needle))
        })
        .await;
        match found {
            Some(p) => p,
            None => panic!(
                "no post to {channel} containing {needle:?}\n{}",
                self.report().await
            ),
        }
    }

    /// The `payment_queue` row of `expense` as (status, payment_ref), once it has `status`.
    async fn payment_row(&self, expense: i64, status: &str) -> (String, Option<String>) {
        let id = expense.to_string();
        let found = poll(FLOW, || async {
            self.f
                .db
                .client
                .query_opt(
                    "SELECT status, payment_ref FROM integration.payment_queue WHERE expense_id = $1",
                    &[&id],
                )
                .await
                .expect("payment_queue")
                .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
                .filter(|(s, _)| s == status)
        })
        .await;
        match found {
            Some(row) => row,
            None => panic!(
                "payment_queue row of expense {expense} never {status}\n{}",
                self.report().await
            ),
        }
    }

    /// Registers a payment of the report's bill as Ana (`amount`: the residual when `None`).
    async fn pay(&self, bills: &Value, amount: Option<f64>) {
        let ana = self.ana();
        let ctx = json!({"context": {"active_model": "account.move", "active_ids": bills}});
        let values = match amount {
            Some(a) => json!({ "amount": a }),
            None => json!({}),
        };
        let wizard = self
            .odoo
            .ok(
                &ana,
                "account.payment.register",
                "create",
                json!([values]),
                ctx.clone(),
            )
            .await;
        self.odoo
            .ok(
                &ana,
                "account.payment.register",
                "action_create_payments",
                json!([[wizard]]),
                ctx,
            )
            .await;
    }

    /// Every event the bus stored is handled (none failed or dead), and every row Odoo
    /// queued was sent and is in the bus's outbox under its key.
    async fn nothing_lost(&self) {
        let report = self.report().await;
        let keys: Vec<String> = self
            .odoo
            .pg
            .query(
                "SELECT idempotency_key FROM ipai_event_queue WHERE state = 'sent' ORDER BY id",
                &[],
            )
            .await
            .expect("queue keys")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let queued = self.odoo.queue().await;
        assert_eq!(keys.len(), queued.len(), "every queued row sent:\n{report}");
        let stored: Vec<String> = self
            .f
            .db
            .column(
                "SELECT idempotency_key FROM integration.outbox ORDER BY seq",
                &[],
            )
            .await;
        let mut a = keys.clone();
        let mut b = stored.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "the bus stored exactly what Odoo queued:\n{report}");
        let not_done: i64 = self
            .f
            .db
            .value("SELECT count(*) FROM integration.outbox WHERE status <> 'done'")
            .await;
        assert_eq!(not_done, 0, "every event handled:\n{report}");
    }
}

/// The (Approve, Reject) contexts of an approval message, which only the bot's direct
/// message to the decider carries.
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
        .expect("POST /mattermost/actions");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn post_text(answer: &Value) -> String {
    answer["update"]["props"]["attachments"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Chatter notes on report `sheet` containing `needle`, in Odoo's own tables.
async fn notes(odoo: &Odoo, sheet: i64, needle: &str) -> i64 {
    odoo.pg
        .query_one(
            "SELECT count(*) FROM mail_message WHERE model = 'hr.expense.sheet' AND res_id = $1
                AND body::text LIKE '%' || $2 || '%'",
            &[&(sheet as i32), &needle],
        )
        .await
        .expect("mail_message")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_approved_from_mattermost_in_the_real_odoo_and_its_payment_closes_the_row() {
    let Some(l) = Loop::start().await else {
        return;
    };
    let started = Instant::now();
    let (expense, sheet, _) = l.submit("Client lunch", 1250.5).await;

    // Odoo → bus: the signed event is stored and handled; the approver found in Odoo.
    let submitted = l.handled("expense.submitted", expense, FLOW).await;
    assert_eq!(submitted["sheet_id"], sheet, "{submitted}");
    assert_eq!(submitted["employee_email"], "juan.delacruz@example.com");
    assert_eq!(submitted["status"], "submit");
    let post = l.approval_post(sheet).await;
    assert_eq!(post["channel"], "@maria.santos", "{post}");
    let (approve, _) = buttons(&post);
    let ctx = ActionContext::verify(&approve, TEST_ACTION_SECRET).unwrap();
    assert_eq!(ctx.deciders.user_ids, vec![MARIA_MM_ID.to_string()]);

    // Maria's click approves the report in the real Odoo, as the bus user, with a note.
    let (status, answer) = click(&l.f, MARIA_MM_ID, "maria.santos", &approve).await;
    assert_eq!(status, 200, "{answer}\n{}", l.report().await);
    assert!(
        post_text(&answer).contains("**Approved** by @maria.santos"),
        "{answer}\n{}",
        l.report().await
    );
    let now = l.odoo.read("hr.expense.sheet", sheet, &["state"]).await;
    assert_eq!(now["state"], "approve", "{now}");
    assert_eq!(
        notes(&l.odoo, sheet, "Approved in Mattermost by @maria.santos").await,
        1
    );
    // The same context replayed decides nothing more: one decision per message.
    let (status, again) = click(&l.f, MARIA_MM_ID, "maria.santos", &approve).await;
    assert_eq!(status, 200, "{again}");
    assert!(
        again["ephemeral_text"]
            .as_str()
            .unwrap_or_default()
            .contains("these buttons decide once"),
        "{again}"
    );
    assert_eq!(
        notes(&l.odoo, sheet, "Approved in Mattermost by @maria.santos").await,
        1,
        "Odoo was written once"
    );

    // Odoo → expense.approved → payment_queue and the finance channel.
    let approved = l.handled("expense.approved", expense, FLOW).await;
    assert_eq!(approved["approved_by"], "IPAI Bus", "{approved}");
    assert_eq!(l.payment_row(expense, "queued").await.0, "queued");
    l.post_to(FINANCE_CHANNEL, "IPAI Bus").await;

    // Ana posts the bill and pays part of it: nothing is announced.
    let ana = l.ana();
    l.odoo
        .ok(
            &ana,
            "hr.expense.sheet",
            "action_sheet_move_post",
            json!([[sheet]]),
            json!({}),
        )
        .await;
    let bills = l
        .odoo
        .read("hr.expense.sheet", sheet, &["account_move_ids"])
        .await["account_move_ids"]
        .clone();
    l.pay(&bills, Some(500.0)).await;
    let now = l
        .odoo
        .read("hr.expense.sheet", sheet, &["state", "payment_state"])
        .await;
    assert_eq!(now["payment_state"], "partial", "{now}");
    // The addon queues in the payment's own transaction: no row now is no row ever.
    let paid_rows = l
        .odoo
        .queue()
        .await
        .into_iter()
        .filter(|r| r.0 == "expense.paid")
        .count();
    assert_eq!(paid_rows, 0, "a partial payment announces nothing");

    // The rest: expense.paid closes the row and tells Juan.
    l.pay(&bills, None).await;
    let now = l
        .odoo
        .read("hr.expense.sheet", sheet, &["state", "payment_state"])
        .await;
    assert_eq!(now["state"], "done", "{now}");
    let paid = l.handled("expense.paid", expense, FLOW).await;
    let payment_ref = paid["payment_ref"].as_str().unwrap_or_default().to_string();
    assert!(!payment_ref.is_empty(), "{paid}");
    let (_, row_ref) = l.payment_row(expense, "paid").await;
    assert_eq!(row_ref.as_deref(), Some(payment_ref.as_str()));
    l.post_to("@juan.delacruz", &payment_ref).await;
    let paid_events: i64 =
        l.f.db
            .value("SELECT count(*) FROM integration.outbox WHERE event_type = 'expense.paid'")
            .await;
    assert_eq!(paid_events, 1, "{}", l.report().await);
    l.nothing_lost().await;
    println!(
        "odoo loop ({}): submitted → approved → paid in {:?}",
        l.f.sys.runtime.name(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_mattermost_refuses_the_report_in_odoo_and_juan_gets_the_reason() {
    let Some(l) = Loop::start().await else {
        return;
    };
    let (expense, sheet, _) = l.submit("Taxi fares", 420.0).await;
    l.handled("expense.submitted", expense, FLOW).await;
    let post = l.approval_post(sheet).await;
    let (_, reject) = buttons(&post);
    let (status, answer) = click(&l.f, MARIA_MM_ID, "maria.santos", &reject).await;
    assert_eq!(status, 200, "{answer}\n{}", l.report().await);
    assert!(
        post_text(&answer).contains("**Refused** by @maria.santos"),
        "{answer}\n{}",
        l.report().await
    );
    let now = l.odoo.read("hr.expense.sheet", sheet, &["state"]).await;
    assert_eq!(now["state"], "cancel", "{now}");
    let reason = "Refused in Mattermost by @maria.santos";
    // Odoo 18 posts the reason in the report's chatter; the bus adds its note.
    assert!(notes(&l.odoo, sheet, reason).await >= 1);
    let rejected = l.handled("expense.rejected", expense, FLOW).await;
    assert_eq!(rejected["reason"], reason, "{rejected}");
    assert_eq!(rejected["refused_by"], "IPAI Bus", "{rejected}");
    l.post_to("@juan.delacruz", reason).await;
    assert_eq!(l.f.db.count("payment_queue").await, 0);
    l.nothing_lost().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_without_the_bus_loses_and_reorders_nothing_and_no_click_waits_for_it() {
    let Some(mut l) = Loop::start().await else {
        return;
    };
    let (first, first_sheet, _) = l.submit("Hotel Cebu", 3200.0).await;
    l.handled("expense.submitted", first, FLOW).await;

    // The bus goes away: its front accepts connections and never answers (the worst case
    // for a caller: it waits its whole timeout), the system is killed.
    l.front.hang();
    l.f.sys.kill();
    let outage = Instant::now();
    let maria = l.maria();
    let (second, second_sheet, submit_took) = l.submit("Team dinner", 1800.0).await;
    let mut approvals = Vec::new();
    for sheet in [first_sheet, second_sheet] {
        let t = Instant::now();
        l.odoo
            .ok(
                &maria,
                "hr.expense.sheet",
                "action_approve_expense_sheets",
                json!([[sheet]]),
                json!({}),
            )
            .await;
        approvals.push(t.elapsed());
    }
    println!(
        "odoo loop ({}): with the bus hanging, submit took {submit_took:?}, approvals {approvals:?}",
        l.f.sys.runtime.name()
    );
    for took in approvals.iter().chain([&submit_took]) {
        assert!(
            *took < SENDER_TIMEOUT - Duration::from_secs(2),
            "a user's call waited on the bus: {took:?} (submit {submit_took:?}, approvals {approvals:?})"
        );
    }
    // Odoo's sender tried during the outage and keeps the rows.
    let tried = poll(Duration::from_secs(60), || async {
        l.odoo
            .queue()
            .await
            .iter()
            .any(|r| r.2 == "pending" && r.3 >= 1)
            .then_some(())
    })
    .await;
    assert!(
        tried.is_some(),
        "no failed attempt seen:\n{}",
        l.report().await
    );
    let rest = Duration::from_secs(60).saturating_sub(outage.elapsed());
    tokio::time::sleep(rest).await; // the outage's length itself, not a wait for a result

    // Back on another port, under the same URL: Odoo's retries deliver everything.
    l.f.restart().await.expect("the bus again");
    l.front.forward_to(&l.f.sys.base_url);
    let back = Instant::now();
    let within = Duration::from_secs(300);
    l.handled("expense.approved", first, within).await;
    l.handled("expense.submitted", second, within).await;
    l.handled("expense.approved", second, within).await;
    println!(
        "odoo loop ({}): everything delivered {:?} after the bus came back",
        l.f.sys.runtime.name(),
        back.elapsed()
    );
    // Per expense, the bus stored the events in Odoo's order.
    for expense in [first, second] {
        let order: Vec<String> = l
            .f
            .db
            .column(
                "SELECT event_type FROM integration.outbox WHERE aggregate_id = $1 ORDER BY seq",
                &[&expense.to_string()],
            )
            .await;
        assert_eq!(
            order,
            vec!["expense.submitted", "expense.approved"],
            "expense {expense}:\n{}",
            l.report().await
        );
    }
    l.payment_row(first, "queued").await;
    l.payment_row(second, "queued").await;
    l.nothing_lost().await;
}

/// `now - ago` as Odoo writes a datetime (naive UTC).
fn odoo_time(ago: chrono::Duration) -> String {
    (chrono::Utc::now() - ago)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Loop {
    /// Runs one of the addon's crons now, as the administrator's "Run Manually" does.
    async fn run_cron(&self, xml_name: &str) {
        let admin = self.odoo.admin();
        let found = self
            .odoo
            .ok(
                &admin,
                "ir.model.data",
                "search_read",
                json!([[
                    ["module", "=", "ipai_enterprise_bridge"],
                    ["name", "=", xml_name]
                ]]),
                json!({"fields": ["res_id"]}),
            )
            .await;
        let id = found[0]["res_id"].as_i64().expect("the cron's id");
        self.odoo
            .ok(
                &admin,
                "ir.cron",
                "method_direct_trigger",
                json!([[id]]),
                json!({}),
            )
            .await;
    }

    /// The `asset_availability` status of the projector, once it is `status`.
    async fn availability(&self, status: &str) {
        let asset = self.odoo.people.id("equipment").to_string();
        let seen = poll(FLOW, || async {
            self.f
                .db
                .client
                .query_opt(
                    "SELECT status FROM integration.asset_availability WHERE asset_id = $1",
                    &[&asset],
                )
                .await
                .expect("asset_availability")
                .map(|r| r.get::<_, String>(0))
                .filter(|s| s == status)
        })
        .await;
        if seen.is_none() {
            panic!("the projector never {status}\n{}", self.report().await);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_reserved_checked_out_and_the_overdue_cron_escalates_through_levels_1_to_3() {
    let Some(l) = Loop::start().await else {
        return;
    };
    let juan = l.juan();
    let booking = l
        .odoo
        .ok(
            &juan,
            "ipai.asset.booking",
            "create",
            json!([{"equipment_id": l.odoo.people.id("equipment"),
                    "employee_id": l.odoo.people.id("juan_employee"),
                    "start": odoo_time(chrono::Duration::days(10)),
                    "end": odoo_time(chrono::Duration::hours(1))}]),
            json!({}),
        )
        .await
        .as_i64()
        .expect("booking id");
    let act = |method: &'static str| {
        let juan = juan.clone();
        let odoo = &l.odoo;
        async move {
            odoo.ok(
                &juan,
                "ipai.asset.booking",
                method,
                json!([[booking]]),
                json!({}),
            )
            .await
        }
    };
    act("action_reserve").await;
    let reserved = l.handled("asset.reserved", booking, FLOW).await;
    assert_eq!(
        reserved["asset_name"], "Projector Epson EB-X51",
        "{reserved}"
    );
    l.availability("reserved").await;
    let calendar = poll(FLOW, || async {
        (!l.svc.google_requests("/events").is_empty()).then_some(())
    })
    .await;
    assert!(
        calendar.is_some(),
        "no calendar event\n{}",
        l.report().await
    );
    act("action_checkout").await;
    l.handled("asset.checked_out", booking, FLOW).await;
    l.availability("checked_out").await;

    // Overdue: 1 day (level 1), then as if days passed, 4 days (2) and 8 days (3); the
    // cron run by the administrator each time. Juan moves his booking's end back to stand
    // for the days passing.
    for (level, ago) in [
        (1usize, chrono::Duration::hours(1)),
        (2, chrono::Duration::hours(84)),
        (3, chrono::Duration::hours(180)),
    ] {
        if level > 1 {
            l.odoo
                .ok(
                    &juan,
                    "ipai.asset.booking",
                    "write",
                    json!([[booking], {"end": odoo_time(ago)}]),
                    json!({}),
                )
                .await;
        }
        l.run_cron("ir_cron_ipai_asset_overdue").await;
        let overdue = l.handled_n("asset.overdue", booking, level, FLOW).await;
        assert_eq!(overdue.len(), level, "{overdue:?}");
        assert_eq!(overdue[level - 1]["escalation_level"], level, "{overdue:?}");
    }
    // Once per level: another run announces nothing more.
    l.run_cron("ir_cron_ipai_asset_overdue").await;
    let rows = l
        .odoo
        .queue()
        .await
        .into_iter()
        .filter(|r| r.0 == "asset.overdue")
        .count();
    assert_eq!(rows, 3);
    l.availability("overdue").await;
    let escalations = poll(FLOW, || async {
        let m: Vec<Value> = l
            .svc
            .emails()
            .into_iter()
            .map(|(m, _)| m)
            .filter(|m| m["subject"].as_str().unwrap_or_default().contains("level"))
            .collect();
        (m.len() >= 3).then_some(m)
    })
    .await;
    let Some(mails) = escalations else {
        panic!("three escalation emails expected\n{}", l.report().await);
    };
    for (i, m) in mails.iter().enumerate() {
        assert_eq!(m["to"], json!(["juan.delacruz@example.com"]), "{m}");
        assert!(
            m["subject"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("level {}", i + 1)),
            "{m}"
        );
    }
    assert!(mails[0].get("cc").is_none(), "level 1: Juan only");
    assert_eq!(mails[1]["cc"], json!(["maria.santos@example.com"]));
    assert_eq!(
        mails[2]["cc"],
        json!(["maria.santos@example.com", ipai_tests::services::IT_ADMIN])
    );
    l.nothing_lost().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_stage_moves_fill_ppm_tasks_and_bir_compliance_and_ask_the_reviewer() {
    let Some(l) = Loop::start().await else {
        return;
    };
    let ana = l.ana();
    let stages = l.odoo.people.raw["stages"].clone();
    let stage = |name: &str| stages[name].as_i64().expect("stage id");
    let task = l
        .odoo
        .ok(
            &ana,
            "project.task",
            "create",
            json!([{"name": "BIR 1601-C October 2026", "project_id": l.odoo.people.id("project"),
                    "ipai_bir_form": "1601-C", "ipai_period": "2026-10",
                    "date_deadline": odoo_time(-chrono::Duration::days(10)),
                    "ipai_reviewer_id": l.odoo.people.id("maria_uid"),
                    "user_ids": [[6, 0, [l.odoo.people.id("ana_uid")]]],
                    "stage_id": stage("created")}]),
            json!({}),
        )
        .await
        .as_i64()
        .expect("task id");
    l.handled("finance_task.created", task, FLOW).await;
    let move_to = |name: &'static str, extra: Value| {
        let ana = ana.clone();
        let odoo = &l.odoo;
        let mut values = extra;
        values["stage_id"] = json!(stage(name));
        async move {
            odoo.ok(
                &ana,
                "project.task",
                "write",
                json!([[task], values]),
                json!({}),
            )
            .await
        }
    };
    let ppm = |expected: &'static str| {
        let id = task.to_string();
        let l = &l;
        async move {
            let seen = poll(FLOW, || async {
                l.f.db
                    .client
                    .query_opt(
                        "SELECT stage, bir_form, responsible_emails FROM integration.ppm_tasks
                          WHERE task_id = $1",
                        &[&id],
                    )
                    .await
                    .expect("ppm_tasks")
                    .filter(|r| r.get::<_, String>(0) == expected)
                    .map(|r| (r.get::<_, String>(1), r.get::<_, Vec<String>>(2)))
            })
            .await;
            match seen {
                Some(row) => row,
                None => panic!("ppm_tasks never at {expected}\n{}", l.report().await),
            }
        }
    };
    move_to("in_progress", json!({})).await;
    l.handled("finance_task.in_progress", task, FLOW).await;
    let (form, responsible) = ppm("Preparing").await;
    assert_eq!(form, "1601-C");
    assert_eq!(responsible, vec!["ana.reyes@example.com"]);

    // Submitted: the reviewer is found in the real Odoo and asked in Mattermost.
    move_to("submitted", json!({})).await;
    l.handled("finance_task.submitted", task, FLOW).await;
    let review = l.post_to("@maria.santos", "model=project.task").await;
    assert!(
        review
            .to_string()
            .contains(&format!("{}/web#id={task}", l.odoo.url)),
        "{review}"
    );

    // Approved, then filed with its reference: bir_compliance.
    move_to("approved", json!({})).await;
    l.handled("finance_task.approved", task, FLOW).await;
    move_to(
        "filed",
        json!({"ipai_reference_no": "eFPS-2026-1601C-000123"}),
    )
    .await;
    let filed = l.handled("finance_task.filed", task, FLOW).await;
    assert_eq!(filed["reference_no"], "eFPS-2026-1601C-000123", "{filed}");
    let row = poll(FLOW, || async {
        l.f.db
            .client
            .query_opt(
                "SELECT status, reference_no, approved_at IS NOT NULL FROM integration.bir_compliance
                  WHERE bir_form = '1601-C' AND period = '2026-10'",
                &[],
            )
            .await
            .expect("bir_compliance")
            .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1), r.get::<_, bool>(2)))
            .filter(|r| r.0 == "filed")
    })
    .await;
    assert_eq!(
        row,
        Some((
            "filed".to_string(),
            Some("eFPS-2026-1601C-000123".to_string()),
            true
        )),
        "{}",
        l.report().await
    );
    l.nothing_lost().await;
}

/// The open `events_missing` alert's event count, if open.
async fn events_missing_alert(f: &Fixture) -> Option<i64> {
    f.db.client
        .query(
            "SELECT events FROM integration.alerts WHERE condition = 'events_missing' AND resolved_at IS NULL",
            &[],
        )
        .await
        .expect("alerts")
        .first()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_proxy_swallowed_is_found_by_the_digest_resent_by_odoo_and_the_alert_resolves() {
    let Some(l) = Loop::start().await else {
        return;
    };
    let admin = l.odoo.admin();
    // The bus's user starts without the addon's group: Odoo refuses its resend until the
    // operator grants it (docs/deploy.md, Reconciliation), which keeps the gap open long
    // enough to be seen.
    let group = l
        .odoo
        .ok(
            &admin,
            "ir.model.data",
            "search_read",
            json!([[
                ["module", "=", "ipai_enterprise_bridge"],
                ["name", "=", "group_ipai_bus"]
            ]]),
            json!({"fields": ["res_id"]}),
        )
        .await[0]["res_id"]
        .as_i64()
        .expect("the addon's bus group");
    let bus_uid = l.odoo.people.id("bus_uid");
    let set_group = |op: i64| {
        l.odoo.ok(
            &admin,
            "res.users",
            "write",
            json!([[bus_uid], {"groups_id": [[op, group]]}]),
            json!({}),
        )
    };
    set_group(3).await;

    let (first, first_sheet, _) = l.submit("Hotel Cebu", 3200.0).await;
    l.handled("expense.submitted", first, FLOW).await;
    let before: i32 = l
        .odoo
        .pg
        .query_one("SELECT coalesce(max(id), 0) FROM ipai_event_queue", &[])
        .await
        .expect("queue")
        .get(0);

    // For a minute, a proxy in front of the bus answers 202 and forwards nothing, while Juan
    // submits a second report and Maria approves the first.
    l.front.swallow();
    let outage = Instant::now();
    let (lost, _, _) = l.submit("Team dinner", 1800.0).await;
    l.odoo
        .ok(
            &l.maria(),
            "hr.expense.sheet",
            "action_approve_expense_sheets",
            json!([[first_sheet]]),
            json!({}),
        )
        .await;
    let swallowed: Vec<String> = poll(FLOW, || async {
        let keys: Vec<String> = l
            .odoo
            .pg
            .query(
                "SELECT idempotency_key FROM ipai_event_queue
                  WHERE id > $1 AND state = 'sent' AND event_type <> 'bus.digest'
                  ORDER BY idempotency_key",
                &[&before],
            )
            .await
            .expect("queue")
            .iter()
            .map(|r| r.get(0))
            .collect();
        (keys.len() >= 2).then_some(keys)
    })
    .await
    .unwrap_or_else(|| panic!("Odoo never marked the swallowed rows sent"));
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(outage.elapsed())).await; // the outage itself
    l.front.forward_to(&l.f.sys.base_url);
    let stored: Vec<String> =
        l.f.db
            .column("SELECT idempotency_key FROM integration.outbox", &[])
            .await;
    assert!(
        swallowed.iter().all(|k| !stored.contains(k)),
        "the proxy lost them: {swallowed:?} / {stored:?}"
    );

    // The administrator sends the digest now: it finds exactly the swallowed keys.
    l.odoo
        .ok(
            &admin,
            "ipai.event.queue",
            "action_send_digest_now",
            json!([[]]),
            json!({}),
        )
        .await;
    let missing: Vec<String> = poll(FLOW, || async {
        let rows =
            l.f.db
                .client
                .query(
                    "SELECT m FROM integration.reconcile_windows, unnest(missing) AS m ORDER BY m",
                    &[],
                )
                .await
                .expect("windows");
        (!rows.is_empty()).then(|| rows.iter().map(|r| r.get(0)).collect())
    })
    .await
    .unwrap_or_else(|| panic!("no window recorded"));
    assert_eq!(missing, swallowed);
    l.f.evaluate_alerts().await;
    assert_eq!(
        events_missing_alert(&l.f).await,
        Some(swallowed.len() as i64),
        "the alert opens"
    );
    // The resend was refused (the group is missing): the digest waits to be retried.
    let digest_error: String = poll(FLOW, || async {
        let error: String = l
            .f
            .db
            .value(
                "SELECT coalesce(max(last_error), '') FROM integration.outbox WHERE event_type = 'bus.digest' AND status = 'failed'",
            )
            .await;
        (!error.is_empty()).then_some(error)
    })
    .await
    .unwrap_or_default();
    assert!(
        digest_error.contains("AccessError"),
        "{digest_error}\n{}",
        l.report().await
    );
    l.f.evaluate_alerts().await;
    let rejected: i64 = l
        .f
        .db
        .value("SELECT count(*) FROM integration.alerts WHERE condition = 'credentials_rejected:odoo' AND resolved_at IS NULL")
        .await;
    assert_eq!(rejected, 1, "the missing right is named to the operator");

    // The operator grants the group; the digest's retry asks again, Odoo resends the rows
    // under their own keys and the gap closes.
    set_group(4).await;
    l.f.db
        .client
        .execute(
            "UPDATE integration.outbox SET next_attempt_at = now() WHERE event_type = 'bus.digest' AND status = 'failed'",
            &[],
        )
        .await
        .expect("the digest due now");
    l.f.dispatch().await;
    l.handled("expense.submitted", lost, FLOW).await;
    l.handled("expense.approved", first, FLOW).await;
    l.payment_row(first, "queued").await;
    let closed = poll(FLOW, || async {
        l.f.evaluate_alerts().await;
        events_missing_alert(&l.f).await.is_none().then_some(())
    })
    .await;
    assert!(
        closed.is_some(),
        "the alert resolves:\n{}",
        l.report().await
    );
    let resolved: i64 = l
        .f
        .db
        .value("SELECT count(*) FROM integration.alerts WHERE condition = 'events_missing' AND resolved_at IS NOT NULL")
        .await;
    assert_eq!(resolved, 1);
    // What `ipai reconcile` and MCP read: every digested key stored now.
    let status: Value =
        l.f.db
            .value("SELECT integration.reconcile_status(NULL)")
            .await;
    assert_eq!(status["missing_total"], 0, "{status}");
    l.nothing_lost().await;
}
