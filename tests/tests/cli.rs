//! The `ipai` binary (target/release/ipai) against a running system: `send` for every
//! taxonomy event, `status`, and the dead-letter queue (`dlq list`, `dlq requeue`).
//! Rows are made dead through the SQL contract (claim_outbox / fail_outbox with a low
//! max_attempts), as a failing dispatcher would.

use ipai_cli::samples;
use ipai_core::taxonomy::all_event_types;
use ipai_tests::ipai_bin::{ipai, text};
use ipai_tests::{manifest, Fixture};
use serde_json::Value;

const SECRET: &str = "test-secret";

/// A system that does not dispatch (no cron trigger, no kick after ingest): rows stay
/// where the test puts them.
async fn quiet() -> Fixture {
    Fixture::with_manifest(manifest::variant(manifest::without_cron), |v| {
        v.insert("dispatch_kick".into(), "off".into());
    })
    .await
    .unwrap()
}

/// Sends the sample of `event_type` with the CLI; returns its outbox id.
async fn send_one(f: &Fixture, event_type: &str) -> uuid::Uuid {
    let key = format!("cli-test-{}", uuid::Uuid::new_v4().simple());
    let url = f.sys.url("/odoo-webhook");
    let out = ipai(
        &["send", event_type, "--url", &url, "--idempotency-key", &key],
        &[("IPAI_SECRET", SECRET)],
    )
    .await;
    assert!(out.status.success(), "{:?}", text(&out));
    f.db.client
        .query_one(
            "SELECT id FROM integration.outbox WHERE idempotency_key = $1",
            &[&key],
        )
        .await
        .unwrap()
        .get(0)
}

/// Makes `id` dead the way the dispatcher would: max_attempts 1, claim, fail.
async fn make_dead(f: &Fixture, id: uuid::Uuid, error: &str) {
    let db = &f.db.client;
    db.execute(
        "UPDATE integration.outbox SET max_attempts = 1 WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let claimed: Vec<uuid::Uuid> = ipai_tests::db::column(
        db,
        "SELECT id FROM integration.claim_outbox(100, 'cli-test')",
        &[],
    )
    .await;
    assert!(claimed.contains(&id), "claimed {claimed:?}");
    for other in claimed.iter().filter(|c| **c != id) {
        // Put back anything else that was claimed along (an attempt, not a failure).
        db.execute(
            "SELECT integration.fail_outbox($1, 'not this one')",
            &[other],
        )
        .await
        .unwrap();
        db.execute("SELECT integration.requeue_outbox($1)", &[other])
            .await
            .unwrap();
    }
    let status: Option<String> = db
        .query_one("SELECT integration.fail_outbox($1, $2)", &[&id, &error])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status.as_deref(), Some("dead"));
}

async fn row(f: &Fixture, id: uuid::Uuid) -> (String, i32, Option<String>) {
    let r =
        f.db.client
            .query_one(
                "SELECT status, attempts, last_error FROM integration.outbox WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_gives_a_check_for_every_event_type_and_one_row_each() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let out = ipai(
        &["send", "--all", "--url", &url],
        &[("IPAI_SECRET", SECRET)],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let types: Vec<&str> = all_event_types().collect();
    assert_eq!(lines.len(), 15, "{stdout}");
    for (line, t) in lines.iter().zip(&types) {
        assert_eq!(*line, format!("✅ {t}"));
    }
    assert_eq!(lines[14], "14 of 14 events accepted");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));

    assert_eq!(f.db.count("outbox").await, 14);
    for t in &types {
        let rows = f
            .db
            .client
            .query(
                "SELECT aggregate_type, aggregate_id, payload FROM integration.outbox WHERE event_type = $1",
                &[t],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{t}");
        let sample = samples::sample(t).unwrap();
        assert_eq!(
            rows[0].get::<_, String>(0),
            sample["aggregate_type"].as_str().unwrap()
        );
        assert_eq!(
            rows[0].get::<_, String>(1),
            sample["aggregate_id"].as_str().unwrap()
        );
        assert_eq!(rows[0].get::<_, Value>(2), sample["payload"], "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gives_a_cross_a_non_zero_exit_and_no_row() {
    let f = quiet().await;
    let url = f.sys.url("/odoo-webhook");
    // The secret from a file (a flag's value is visible in `ps`).
    let file = std::env::temp_dir().join(format!("ipai-wrong-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, "not-the-bus-secret-4711\n").unwrap();
    let out = ipai(
        &[
            "send",
            "expense.submitted",
            "--url",
            &url,
            "--secret-file",
            &file.to_string_lossy(),
        ],
        &[],
    )
    .await;
    std::fs::remove_file(&file).ok();
    let wrong = "not-the-bus-secret-4711";
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("❌ expense.submitted: HTTP 401 invalid_signature"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "the secret is never echoed"
    );
    assert_eq!(f.db.count("outbox").await, 0);

    // Unreachable bus: a cross too, not a crash.
    let dead = format!(
        "http://127.0.0.1:{}/odoo-webhook",
        ipai_tests::runtime::free_port().expect("a free port")
    );
    let out = ipai(
        &["send", "asset.reserved", "--url", &dead],
        &[("IPAI_SECRET", SECRET)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).0.starts_with("❌ asset.reserved: no answer"),
        "{:?}",
        text(&out)
    );

    // No secret at all: a clear error naming where it is looked up.
    let out = ipai(&["send", "asset.reserved", "--url", &url], &[]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("IPAI_SECRET"), "{:?}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_file_is_sent_and_a_resend_with_its_key_is_a_duplicate() {
    let f = quiet().await;
    let url = f.sys.url("/odoo-webhook");
    let dir = std::env::temp_dir().join(format!("ipai-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("overdue.json");
    std::fs::write(
        &file,
        r#"{"aggregate_id": "B-77", "occurred_at": "2026-11-26T05:00:00Z",
            "payload": {"booking_id": 77, "status": "checked_out", "escalation_level": 3, "days_overdue": 9}}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let args = [
        "send",
        "asset.overdue",
        "--payload",
        file,
        "--url",
        &url,
        "--idempotency-key",
        "overdue-77-L3",
        "-v",
    ];
    // The secret from the variable Spin reads, as a rotation list: the first entry signs.
    let env = [(
        "SPIN_VARIABLE_ODOO_WEBHOOK_SECRET",
        "test-secret-rotated,test-secret",
    )];
    let first = ipai(&args, &env).await;
    let (stdout, _) = text(&first);
    assert!(first.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("✅ asset.overdue\n   202 queued "),
        "{stdout}"
    );
    let again = ipai(&args, &env).await;
    assert!(
        text(&again).0.contains("200 duplicate"),
        "{:?}",
        text(&again)
    );
    let r = f
        .db
        .client
        .query_one(
            "SELECT aggregate_type, aggregate_id, payload FROM integration.outbox WHERE idempotency_key = 'overdue-77-L3'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "asset_booking");
    assert_eq!(r.get::<_, String>(1), "B-77");
    assert_eq!(r.get::<_, Value>(2)["escalation_level"], 3);
    assert_eq!(f.db.count("outbox").await, 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_can_sign_with_the_standard_webhooks_scheme() {
    // Standard Webhooks is off by default: this system turns it on.
    let f = Fixture::with_manifest(manifest::variant(manifest::without_cron), |v| {
        v.insert("dispatch_kick".into(), "off".into());
        ipai_tests::runtime::with_standard_webhooks(v);
    })
    .await
    .unwrap();
    let url = f.sys.url("/odoo-webhook");
    let out = ipai(
        &[
            "send",
            "finance_task.filed",
            "--url",
            &url,
            "--scheme",
            "standard-webhooks",
            "--idempotency-key",
            "msg_cli_1",
        ],
        &[(
            "IPAI_STANDARD_WEBHOOKS_SECRET",
            ipai_tests::runtime::TEST_STANDARD_WEBHOOKS_SECRET,
        )],
    )
    .await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, "✅ finance_task.filed\n");
    let key: String =
        f.db.value("SELECT idempotency_key FROM integration.outbox")
            .await;
    assert_eq!(key, "msg_cli_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_counts_per_status_the_oldest_pending_age_and_recent_failures() {
    let f = quiet().await;
    let pending = send_one(&f, "expense.submitted").await;
    let dead = send_one(&f, "asset.reserved").await;
    let _other = send_one(&f, "finance_task.created").await;
    make_dead(&f, dead, "HTTP 500 from asset-handler: calendar down").await;
    let db_url = f.db.url.clone();

    let out = ipai(&["status", "--json"], &[("DATABASE_URL", &db_url)]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["counts"]["pending"], 2, "{v}");
    assert_eq!(v["counts"]["dead"], 1, "{v}");
    assert_eq!(v["counts"]["done"], 0, "{v}");
    assert!(
        v["oldest_pending_age_seconds"].as_f64().unwrap() >= 0.0,
        "{v}"
    );
    let failures = v["recent_failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{v}");
    assert_eq!(failures[0]["id"], dead.to_string());
    assert_eq!(
        failures[0]["last_error"],
        "HTTP 500 from asset-handler: calendar down"
    );
    let _ = pending;

    let out = ipai(&["status", "--database-url", &db_url], &[]).await;
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("oldest pending: "), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("dead") && l.contains(" 1")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&dead.to_string()) && stdout.contains("calendar down"),
        "{stdout}"
    );

    // A database that is not there: an error naming it without its password.
    let out = ipai(
        &[
            "status",
            "--database-url",
            "postgres://ops:hunter2@127.0.0.1:1/ipai?sslmode=disable",
        ],
        &[],
    )
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("127.0.0.1:1") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_requeue_moves_a_dead_event_back_to_pending() {
    let f = quiet().await;
    let id = send_one(&f, "expense.approved").await;
    make_dead(&f, id, "HTTP 502 from expense-handler").await;
    let db = [("DATABASE_URL", f.db.url.as_str())];

    let out = ipai(&["dlq", "list"], &db).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("1 dead event(s):"), "{stdout}");
    assert!(
        stdout.contains(&id.to_string()) && stdout.contains("HTTP 502 from expense-handler"),
        "{stdout}"
    );
    let out = ipai(&["dlq", "list", "--json"], &db).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["total"].as_i64(), v["dead"][0]["attempts"].as_i64()),
        (Some(1), Some(1))
    );

    let out = ipai(&["dlq", "requeue", &id.to_string()], &db).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, format!("requeued {id}: pending\n"));
    let (status, attempts, last_error) = row(&f, id).await;
    assert_eq!((status.as_str(), attempts), ("pending", 0));
    assert_eq!(
        last_error.as_deref(),
        Some("HTTP 502 from expense-handler"),
        "kept as history"
    );
    assert!(text(&ipai(&["dlq", "list"], &db).await).0.contains("empty"));

    // Requeuing it again, or an unknown id, is an error that says why.
    let out = ipai(&["dlq", "requeue", &id.to_string()], &db).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("is pending"), "{:?}", text(&out));
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = ipai(&["dlq", "requeue", &unknown], &db).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("no outbox event"), "{:?}", text(&out));
    let out = ipai(&["dlq", "requeue", "not-a-uuid"], &db).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap rejects it: {:?}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_requeue_all_moves_every_dead_event_and_nothing_else() {
    let f = quiet().await;
    let a = send_one(&f, "expense.paid").await;
    let b = send_one(&f, "asset.overdue").await;
    let c = send_one(&f, "finance_task.overdue").await;
    make_dead(&f, a, "boom a").await;
    make_dead(&f, b, "boom b").await;
    let db = [("DATABASE_URL", f.db.url.as_str())];
    let out = ipai(&["dlq", "requeue", "--all"], &db).await;
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, "requeued 2 dead event(s)\n");
    for id in [a, b, c] {
        assert_eq!(row(&f, id).await.0, "pending");
    }
    let out = ipai(&["dlq", "requeue", "--all"], &db).await;
    assert_eq!(text(&out).0, "requeued 0 dead event(s)\n");
}
