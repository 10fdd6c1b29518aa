//! Issue #19: the alerts' SQL contract (`migrations/20261130000500_alerts.sql`) against a
//! real PostgreSQL: `evaluate_alerts` opens one alert per condition however many events
//! and however many evaluations run at once, owes reminders and one resolved message;
//! `alert_sent` strikes off destinations one by one and releases the lease on failure; the
//! app role may evaluate, the read-only role may only read.
//!
//! Events are made with `ingest_event`, `claim_outbox` and `fail_outbox`, never by UPDATE;
//! the one exception is the clock (moving `created_at` / `notified_at` back), said where done.

use ipai_tests::TestDb;
use serde_json::{json, Value};
use tokio_postgres::Client;
use uuid::Uuid;

async fn ingest(c: &Client, event_type: &str, aggregate_id: &str, key: &str) -> Uuid {
    c.query_one(
        "SELECT id FROM integration.ingest_event($1, $2, $3, $4, $5, $6, now(), $7)",
        &[
            &event_type,
            &event_type.split('.').next().unwrap_or("x"),
            &aggregate_id,
            &json!({"key": key}),
            &key,
            &format!("sha-{key}"),
            &None::<String>,
        ],
    )
    .await
    .expect("ingest_event")
    .get(0)
}

/// Claims everything due and fails `id` with `error` (after `max_attempts` it is dead).
async fn fail_with(c: &Client, id: Uuid, error: &str) -> String {
    c.query("SELECT id FROM integration.claim_outbox(100, 'w')", &[])
        .await
        .expect("claim");
    c.query_one(
        "SELECT integration.fail_outbox($1, $2)::text",
        &[&id, &error],
    )
    .await
    .expect("fail")
    .get(0)
}

async fn evaluate(c: &Client, targets: &str, reminder_s: i32) -> Value {
    c.query_one(
        "SELECT integration.evaluate_alerts(900, 300, $1, $2::text::text[], 60)",
        &[&reminder_s, &targets],
    )
    .await
    .expect("evaluate_alerts")
    .get(0)
}

async fn sent(c: &Client, id: i64, message: &str, sent: &str, error: Option<&str>) -> bool {
    c.query_one(
        "SELECT integration.alert_sent($1, $2, $3::text::text[], $4)",
        &[&id, &message, &sent, &error],
    )
    .await
    .expect("alert_sent")
    .get(0)
}

fn sends(v: &Value) -> Vec<(i64, String, String, Vec<String>)> {
    v["sends"]
        .as_array()
        .expect("sends")
        .iter()
        .map(|s| {
            (
                s["id"].as_i64().unwrap_or(0),
                s["condition"].as_str().unwrap_or("").to_string(),
                s["message"].as_str().unwrap_or("").to_string(),
                s["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

const MISCONFIGURED: &str = r#"HTTP 500: {"error":"misconfigured","message":"server is misconfigured: variable odoo_db is empty"}"#;
const EMAIL_403: &str = r#"HTTP 502: {"error":"upstream_failed","message":"email juan@example.com#level2: HTTP 403: {\"name\":\"invalid_api_key\"}"}"#;
const ODOO_LOGIN: &str = r#"HTTP 500: {"error":"misconfigured","message":"server is misconfigured: Odoo rejected odoo_user / odoo_api_key (authenticate returned false)"}"#;

#[tokio::test]
async fn one_alert_per_error_class_however_many_events_and_evaluations() {
    let db = TestDb::new().await.expect("db");
    let c = &db.client;
    for (n, error) in [
        (1, MISCONFIGURED),
        (2, MISCONFIGURED),
        (3, EMAIL_403),
        (4, EMAIL_403),
        (5, ODOO_LOGIN),
    ] {
        let t = if n <= 2 || n == 5 {
            "expense.submitted"
        } else {
            "asset.overdue"
        };
        let id = ingest(c, t, &format!("{n}"), &format!("k{n}")).await;
        assert_eq!(fail_with(c, id, error).await, "failed");
    }
    // Several evaluations at once: the advisory lock serialises them, one row each.
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = db.app_url();
        handles.push(tokio::spawn(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("app role connects");
            tokio::spawn(conn);
            evaluate(&client, "{mattermost,email}", 3600).await
        }));
    }
    let mut opened = Vec::new();
    let mut claimed = Vec::new();
    for h in handles {
        let v = h.await.expect("join");
        opened.extend(
            v["opened"]
                .as_array()
                .expect("opened")
                .iter()
                .filter_map(|x| x.as_str().map(String::from)),
        );
        claimed.extend(sends(&v));
    }
    opened.sort();
    assert_eq!(
        opened,
        [
            "credentials_rejected:email",
            "credentials_rejected:odoo",
            "handler_misconfigured:expense"
        ]
    );
    // Each opened message claimed once (the lease keeps the others off it).
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert!(claimed
        .iter()
        .all(|s| s.2 == "opened" && s.3 == ["mattermost".to_string(), "email".to_string()]));
    let events: Vec<(String, i64)> = c
        .query(
            "SELECT condition, events FROM integration.alerts ORDER BY condition",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        events,
        [
            ("credentials_rejected:email".to_string(), 2),
            ("credentials_rejected:odoo".to_string(), 1),
            ("handler_misconfigured:expense".to_string(), 2)
        ]
    );
}

#[tokio::test]
async fn messages_are_owed_per_destination_reminded_and_resolved_once() {
    let db = TestDb::new().await.expect("db");
    let c = &db.client;
    let id = ingest(c, "expense.submitted", "1", "k1").await;
    assert_eq!(fail_with(c, id, MISCONFIGURED).await, "failed");
    let v = evaluate(c, "{mattermost,email}", 3600).await;
    let s = sends(&v);
    assert_eq!(s.len(), 1);
    let alert = s[0].0;
    // Mattermost failed, email reached: only Mattermost is owed, released at once.
    assert!(!sent(c, alert, "opened", "{email}", Some("mattermost: HTTP 500")).await);
    let v = evaluate(c, "{mattermost,email}", 3600).await;
    assert_eq!(
        sends(&v),
        [(
            alert,
            "handler_misconfigured:expense".to_string(),
            "opened".to_string(),
            vec!["mattermost".to_string()]
        )]
    );
    assert!(sent(c, alert, "opened", "{mattermost}", None).await);
    assert!(sends(&evaluate(c, "{mattermost,email}", 3600).await).is_empty());
    // Settling a message that is not owed changes nothing.
    assert!(!sent(c, alert, "opened", "{mattermost}", None).await);

    // The clock: the last message went out two hours ago; a reminder is owed.
    c.execute(
        "UPDATE integration.alerts SET notified_at = now() - interval '2 hours'",
        &[],
    )
    .await
    .expect("clock");
    let v = evaluate(c, "{mattermost}", 3600).await;
    assert_eq!(sends(&v)[0].2, "reminder");
    assert_eq!(sends(&v)[0].3, ["mattermost".to_string()]);
    assert!(sent(c, alert, "reminder", "{mattermost}", None).await);
    let reminders: i32 = c
        .query_one(
            "SELECT reminders FROM integration.alerts WHERE id = $1",
            &[&alert],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(reminders, 1);

    // The condition clears (the event is requeued and delivered): one resolved message.
    let ok: bool = c
        .query_one("SELECT integration.requeue_outbox($1)", &[&id])
        .await
        .expect("requeue")
        .get(0);
    assert!(ok);
    c.query("SELECT id FROM integration.claim_outbox(100, 'w')", &[])
        .await
        .expect("claim");
    c.query("SELECT integration.ack_outbox($1)", &[&id])
        .await
        .expect("ack");
    let v = evaluate(c, "{mattermost}", 3600).await;
    assert_eq!(v["resolved"], json!(["handler_misconfigured:expense"]));
    assert_eq!(sends(&v)[0].2, "resolved");
    assert!(sent(c, alert, "resolved", "{mattermost}", None).await);
    let v = evaluate(c, "{mattermost}", 3600).await;
    assert!(sends(&v).is_empty() && v["open"] == 0, "{v}");
    let open: String = c
        .query_one("SELECT integration.open_alerts()::text", &[])
        .await
        .expect("open")
        .get(0);
    assert_eq!(open, "[]");

    // It comes back: a new alert row (history kept), opened again.
    let id2 = ingest(c, "expense.submitted", "2", "k2").await;
    assert_eq!(fail_with(c, id2, MISCONFIGURED).await, "failed");
    let v = evaluate(c, "{}", 3600).await;
    assert_eq!(v["opened"], json!(["handler_misconfigured:expense"]));
    // With no destination configured nothing is claimed and nothing stays owed.
    assert!(sends(&v).is_empty());
    let (rows, owed): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE pending_message IS NOT NULL) FROM integration.alerts",
                &[],
            )
            .await
            .expect("count");
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, owed), (2, 0));
}

#[tokio::test]
async fn stalled_and_dead_conditions_and_the_roles() {
    let db = TestDb::new().await.expect("db");
    let c = &db.client;
    let a = ingest(c, "finance_task.created", "1", "k1").await;
    // The clock: the event was created an hour ago and never dispatched.
    c.execute(
        "UPDATE integration.outbox SET created_at = now() - interval '1 hour', \
                next_attempt_at = now() - interval '1 hour' WHERE id = $1",
        &[&a],
    )
    .await
    .expect("clock");
    let b = ingest(c, "finance_task.created", "2", "k2").await;
    c.execute(
        "UPDATE integration.outbox SET max_attempts = 1 WHERE id = $1",
        &[&b],
    )
    .await
    .expect("one attempt");
    // (claim takes both; fail b to dead, give a back by failing and requeueing it)
    assert_eq!(fail_with(c, b, "HTTP 503").await, "dead");
    c.query("SELECT integration.fail_outbox($1, 'x')", &[&a])
        .await
        .expect("fail a");
    c.query("SELECT integration.requeue_outbox($1)", &[&a])
        .await
        .expect("requeue a");
    let v = evaluate(c, "{}", 3600).await;
    let mut opened: Vec<String> = v["opened"]
        .as_array()
        .expect("opened")
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    opened.sort();
    assert_eq!(opened, ["dead_letters", "queue_stalled"], "{v}");

    // The read-only role reads alerts (MCP list_alerts) but cannot evaluate or settle.
    let (reader, conn) = tokio_postgres::connect(&db.reader_url(), tokio_postgres::NoTls)
        .await
        .expect("reader connects");
    tokio::spawn(conn);
    let n: i64 = reader
        .query_one("SELECT count(*) FROM integration.alerts", &[])
        .await
        .expect("reader selects")
        .get(0);
    assert_eq!(n, 2);
    assert!(reader
        .query_one(
            "SELECT integration.evaluate_alerts(900, 300, 3600, '{}', 60)",
            &[]
        )
        .await
        .is_err());
    assert!(reader
        .execute("UPDATE integration.alerts SET resolved_at = now()", &[])
        .await
        .is_err());
}
