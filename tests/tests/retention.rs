//! SPEC §9 end to end: retention (`POST /ops/retention` and the `integration.purge_*`
//! functions behind it) with the built components under the runtime `IPAI_RUNTIME`
//! selects, each test on a fresh database. Split out of `ops.rs` (#20) so the purge
//! contracts sit apart from health, metrics and the dashboard.
//!
//! Deterministic queues, as in `ops.rs`: no cron trigger and no ingest kick, so events
//! move only when a test calls `POST /dispatch`; handlers are a loopback fake (service
//! chaining off). Time is simulated by moving timestamps back, never by waiting.

use ipai_tests::fake_http::FakeServer;
use ipai_tests::quiet::*;
use ipai_tests::runtime::TEST_OPS_TOKEN;
use ipai_tests::{workspace_root, Fixture};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `POST /ops/retention` with the ops token: the JSON answer.
async fn purge(f: &Fixture) -> Value {
    f.http
        .post(f.sys.url("/ops/retention"))
        .bearer_auth(TEST_OPS_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_done_rows_in_bounded_batches_and_keeps_everything_else() {
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |v| {
        v.insert("retention_batch_size".into(), "2".into());
    })
    .await;
    // Through the app: 6 delivered events, 1 dead, 1 pending.
    for i in 0..6 {
        f.ingest(
            &format!("r-{i}"),
            &event("expense.submitted", "expense", &format!("{i}")),
        )
        .await;
    }
    f.dispatch().await;
    let dead = make_dead(
        &f,
        &fake,
        "r-dead",
        &event("asset.overdue", "asset_booking", "x"),
    )
    .await;
    let pending = f
        .ingest(
            "r-pending",
            &event("finance_task.created", "finance_task", "y"),
        )
        .await;
    // Simulated time: 5 done rows delivered 8 days ago, 1 done yesterday; the dead and
    // pending rows are a month old.
    f.db.client
        .batch_execute(
            "UPDATE integration.outbox SET done_at = now() - interval '8 days', \
                    created_at = now() - interval '8 days' \
              WHERE idempotency_key IN ('r-0', 'r-1', 'r-2', 'r-3', 'r-4'); \
             UPDATE integration.outbox SET done_at = now() - interval '1 day' WHERE idempotency_key = 'r-5'; \
             UPDATE integration.outbox SET created_at = now() - interval '30 days', \
                    updated_at = now() - interval '30 days' \
              WHERE idempotency_key IN ('r-dead', 'r-pending');",
        )
        .await
        .unwrap();
    let log_before = f.db.count("event_log").await;
    assert_eq!(log_before, 8);

    let retention = f.sys.url("/ops/retention");
    let resp = f.http.post(&retention).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "needs the ops token");
    let resp = f
        .http
        .post(&retention)
        .bearer_auth(TEST_OPS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"deleted": 5, "batches": 3, "more": false, "older_than_days": 7, "batch_size": 2,
               "ledgers": {"deleted": {"deliveries": 0, "report_messages": 0, "id_map": 0,
                                       "oauth_tokens": 0, "reconcile_windows": 0},
                           "more": false, "older_than_days": 30}})
    );
    let left: Vec<String> =
        f.db.column(
            "SELECT idempotency_key || ':' || status FROM integration.outbox ORDER BY seq",
            &[],
        )
        .await;
    assert_eq!(left, vec!["r-5:done", "r-dead:dead", "r-pending:pending"]);
    assert_eq!(f.db.status(&dead).await, "dead");
    assert_eq!(f.db.status(&pending).await, "pending");
    assert_eq!(
        f.db.count("event_log").await,
        log_before,
        "the audit log is kept"
    );

    // Bounded per call: 120 old done rows, batches of 2, at most 50 batches per request.
    f.db.client
        .batch_execute(
            "SELECT integration.ingest_event('expense.paid', 'expense', 'bulk-' || g, '{}'::jsonb, \
                    'bulk-' || g, 'h', NULL, NULL) FROM generate_series(1, 120) AS g; \
             UPDATE integration.outbox SET status = 'done', done_at = now() - interval '10 days' \
              WHERE idempotency_key LIKE 'bulk-%';",
        )
        .await
        .unwrap();
    let call = || purge(&f);
    let first = call().await;
    assert_eq!(
        (&first["deleted"], &first["batches"], &first["more"]),
        (&json!(100), &json!(50), &json!(true))
    );
    let second = call().await;
    assert_eq!(
        (&second["deleted"], &second["more"]),
        (&json!(20), &json!(false))
    );
    assert_eq!(call().await["deleted"], 0, "idempotent once caught up");
    assert_eq!(f.db.count("outbox").await, 3);
    assert_eq!(f.db.count("event_log").await, log_before + 120);
}

/// Ledger rows of every kind, some past their window, some not (SQL only; the ages are
/// simulated). Outbox: `lx-done` delivered, `lx-dead` dead (a line of report 2).
const LEDGER_ROWS: &str = "\
    SELECT integration.ingest_event('expense.paid', 'expense', 'lx-' || k, \
           jsonb_build_object('sheet_id', s), 'lx-' || k, 'h', NULL, NULL) \
      FROM (VALUES ('done', 1), ('dead', 2)) AS v(k, s); \
    UPDATE integration.outbox SET status = 'done', done_at = now() WHERE idempotency_key = 'lx-done'; \
    UPDATE integration.outbox SET status = 'dead' WHERE idempotency_key = 'lx-dead'; \
    INSERT INTO integration.deliveries (event_id, channel, target, status, updated_at) \
    SELECT o.id, 'mattermost', t, 'sent', now() - age \
      FROM integration.outbox AS o, \
           (VALUES ('@old', interval '40 days'), ('@young', interval '10 days')) AS v(t, age) \
     WHERE o.idempotency_key IN ('lx-done', 'lx-dead'); \
    INSERT INTO integration.deliveries (event_id, channel, target, status, updated_at) \
    VALUES (gen_random_uuid(), 'email', 'gone@example.com', 'sent', now() - interval '40 days'); \
    INSERT INTO integration.report_messages (message_key, event_id, created_at) VALUES \
      ('hr.expense.sheet/1/paid@a', gen_random_uuid(), now() - interval '40 days'), \
      ('hr.expense.sheet/2/paid@a', gen_random_uuid(), now() - interval '40 days'), \
      ('hr.expense.sheet/1@b', gen_random_uuid(), now() - interval '10 days'); \
    INSERT INTO integration.id_map (odoo_model, odoo_id, system, external_id, created_at) VALUES \
      ('ipai.asset.booking', '1', 'google_calendar', 'ipaiold', now() - interval '40 days'), \
      ('ipai.asset.booking', '2', 'google_calendar', 'ipaiyoung', now() - interval '10 days'); \
    INSERT INTO integration.oauth_tokens (name, access_token, expires_at) VALUES \
      ('expired', 'ya29.old', now() - interval '1 minute'), \
      ('google_calendar', 'ya29.valid', now() + interval '50 minutes'); \
    INSERT INTO integration.reconcile_windows \
      (source, window_start, window_end, expected, keys_sha256, missing, digest_event, received_at) VALUES \
      ('arrived', '2026-10-01T10:00Z', '2026-10-01T11:00Z', 1, 'x', '{lx-done}', gen_random_uuid(), now() - interval '40 days'), \
      ('missing', '2026-10-01T10:00Z', '2026-10-01T11:00Z', 1, 'x', '{never-came}', gen_random_uuid(), now() - interval '40 days'), \
      ('young', '2026-11-28T10:00Z', '2026-11-28T11:00Z', 1, 'x', '{}', gen_random_uuid(), now() - interval '10 days');";

/// What is left of `LEDGER_ROWS`, one text per row, sorted.
async fn ledger_rows_left(c: &tokio_postgres::Client) -> Vec<String> {
    ipai_tests::db::column(c, "SELECT x FROM ( \
           SELECT 'delivery ' || d.target || ' of ' || coalesce(o.idempotency_key, 'a purged event') AS x \
             FROM integration.deliveries AS d LEFT JOIN integration.outbox AS o ON o.id = d.event_id \
           UNION ALL SELECT 'message ' || message_key FROM integration.report_messages \
           UNION ALL SELECT 'id_map ' || external_id FROM integration.id_map \
           UNION ALL SELECT 'token ' || name FROM integration.oauth_tokens \
           UNION ALL SELECT 'window ' || source FROM integration.reconcile_windows) AS r ORDER BY x", &[]).await
}

/// Every row younger than its window, every row an event still waiting could need, and every
/// reconciliation window still missing a key.
const LEDGER_ROWS_KEPT: [&str; 9] = [
    "delivery @old of lx-dead",
    "delivery @young of lx-dead",
    "delivery @young of lx-done",
    "id_map ipaiyoung",
    "message hr.expense.sheet/1@b",
    "message hr.expense.sheet/2/paid@a",
    "token google_calendar",
    "window missing",
    "window young",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_every_ledger_past_its_window_and_keeps_the_rest() {
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |_| {}).await;
    f.db.client.batch_execute(LEDGER_ROWS).await.unwrap();
    let call = || purge(&f);
    let body = call().await;
    assert_eq!(
        body["ledgers"],
        json!({"deleted": {"deliveries": 2, "report_messages": 1, "id_map": 1, "oauth_tokens": 1,
                           "reconcile_windows": 1},
               "more": false, "older_than_days": 30}),
        "{body}"
    );
    assert_eq!(ledger_rows_left(&f.db.client).await, LEDGER_ROWS_KEPT);
    // Idempotent once caught up.
    assert_eq!(
        call().await["ledgers"]["deleted"],
        json!({"deliveries": 0, "report_messages": 0, "id_map": 0, "oauth_tokens": 0,
               "reconcile_windows": 0})
    );
    assert_eq!(f.db.count("event_log").await, 2, "the audit log is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_purges_are_bounded_skip_locked_rows_keep_younger_ones_and_reapply() {
    // SQL contract of the purge_* functions of 20261130000400, without a running system.
    let db = ipai_tests::TestDb::new().await.unwrap();
    let c = &db.client;
    c.batch_execute(LEDGER_ROWS).await.unwrap();
    c.batch_execute(
        "INSERT INTO integration.id_map (odoo_model, odoo_id, system, external_id, created_at) \
         SELECT 'ipai.asset.booking', 'bulk-' || g, 'google_calendar', 'ipaibulk' || g, \
                now() - interval '40 days' FROM generate_series(1, 5) AS g;",
    )
    .await
    .unwrap();
    let purge = |function: &'static str, older: Option<&'static str>, batch: Option<i32>| async move {
        let sql = match function {
            "purge_expired_oauth_tokens" => {
                format!("SELECT integration.{function}($2) FROM (SELECT $1::text) AS unused")
            }
            _ => format!("SELECT integration.{function}($1::text::interval, $2)"),
        };
        c.query_one(&sql, &[&older, &batch])
            .await
            .unwrap()
            .get::<_, i32>(0)
    };
    let windowed = [
        "purge_deliveries",
        "purge_report_messages",
        "purge_id_map",
        "purge_reconcile_windows",
    ];
    // Nothing for a zero, NULL or negative batch, a NULL or negative age, or young rows.
    for function in windowed {
        assert_eq!(purge(function, Some("30 days"), Some(0)).await, 0);
        assert_eq!(purge(function, Some("30 days"), None).await, 0);
        assert_eq!(purge(function, Some("-1 days"), Some(10)).await, 0);
        assert_eq!(purge(function, None, Some(10)).await, 0);
        assert_eq!(
            purge(function, Some("50 days"), Some(10)).await,
            0,
            "{function}"
        );
    }
    assert_eq!(purge("purge_expired_oauth_tokens", None, Some(0)).await, 0);

    // Another transaction holds an old id_map row: skipped, never waited for.
    let (other, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    other
        .batch_execute(
            "BEGIN; SELECT 1 FROM integration.id_map WHERE external_id = 'ipaiold' FOR UPDATE",
        )
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(purge("purge_id_map", Some("30 days"), Some(3)).await, 3);
    assert_eq!(purge("purge_id_map", Some("30 days"), Some(3)).await, 2);
    assert_eq!(purge("purge_id_map", Some("30 days"), Some(3)).await, 0);
    assert!(started.elapsed() < Duration::from_secs(5), "never blocked");
    other.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        purge("purge_id_map", Some("30 days"), Some(3)).await,
        1,
        "once released"
    );

    // The rest, in batches of one; then nothing (idempotent).
    assert_eq!(purge("purge_deliveries", Some("30 days"), Some(1)).await, 1);
    assert_eq!(purge("purge_deliveries", Some("30 days"), Some(1)).await, 1);
    assert_eq!(
        purge("purge_deliveries", Some("30 days"), Some(1)).await,
        0,
        "not the dead event's"
    );
    assert_eq!(
        purge("purge_report_messages", Some("30 days"), Some(5)).await,
        1
    );
    assert_eq!(purge("purge_expired_oauth_tokens", None, Some(5)).await, 1);
    // The window whose key arrived since; never the one still missing a key.
    assert_eq!(
        purge("purge_reconcile_windows", Some("30 days"), Some(1)).await,
        1
    );
    for function in windowed {
        assert_eq!(
            purge(function, Some("30 days"), Some(10)).await,
            0,
            "{function}"
        );
    }
    assert_eq!(ledger_rows_left(c).await, LEDGER_ROWS_KEPT);

    // Once the dead line is delivered, its report's message and deliveries may go.
    c.batch_execute(
        "UPDATE integration.outbox SET status = 'done', done_at = now() WHERE idempotency_key = 'lx-dead'",
    )
    .await
    .unwrap();
    let all: Value = c
        .query_one("SELECT integration.purge_ledgers('30 days', 10)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        all,
        json!({"deliveries": 1, "report_messages": 1, "id_map": 0, "oauth_tokens": 0,
               "reconcile_windows": 0})
    );

    // The migration file applies again without error; its functions are the service
    // role's alone.
    let sql = std::fs::read_to_string(
        workspace_root().join("migrations/20261130000400_report_messages_retention.sql"),
    )
    .unwrap();
    c.batch_execute(&sql).await.unwrap();
    for function in [
        "purge_deliveries(interval, integer)",
        "purge_report_messages(interval, integer)",
        "purge_id_map(interval, integer)",
        "purge_expired_oauth_tokens(integer)",
        "purge_ledgers(interval, integer)",
        "claim_report_message(text, uuid)",
    ] {
        let row = c
            .query_one(
                "SELECT has_function_privilege('integration_reader', $1, 'EXECUTE'), \
                        has_function_privilege('service_role', $1, 'EXECUTE')",
                &[&format!("integration.{function}")],
            )
            .await
            .unwrap();
        assert_eq!(
            (row.get::<_, bool>(0), row.get::<_, bool>(1)),
            (false, true),
            "{function}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_the_cron_schedule() {
    // dispatch-cron calls /ops/retention on its schedule (docs/deploy.md "Retention"): old
    // done rows go without anyone calling the route by hand.
    let f = Fixture::new().await.unwrap();
    f.db.client
        .batch_execute(
            "SELECT integration.ingest_event('expense.paid', 'expense', 'old-' || g, '{}'::jsonb, \
                    'old-' || g, 'h', NULL, NULL) FROM generate_series(1, 3) AS g; \
             UPDATE integration.outbox SET status = 'done', done_at = now() - interval '10 days';",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.db.count("outbox").await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(f.db.count("outbox").await, 0, "{}", f.sys.output());
    assert_eq!(f.db.count("event_log").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_done_outbox_is_bounded_skips_locked_rows_and_its_migration_reapplies() {
    // SQL contract of integration.purge_done_outbox, without a running system.
    let db = ipai_tests::TestDb::new().await.unwrap();
    let c = &db.client;
    c.batch_execute(
        "SELECT integration.ingest_event('expense.paid', 'expense', 'p-' || g, '{}'::jsonb, \
                'p-' || g, 'h', NULL, NULL) FROM generate_series(1, 6) AS g; \
         UPDATE integration.outbox SET status = 'done', done_at = now() - interval '9 days'; \
         UPDATE integration.outbox SET done_at = NULL WHERE idempotency_key = 'p-6';",
    )
    .await
    .unwrap();
    let purge = |older: &'static str, batch: Option<i32>| async move {
        c.query_one(
            "SELECT integration.purge_done_outbox($1::text::interval, $2)",
            &[&older, &batch],
        )
        .await
        .unwrap()
        .get::<_, i32>(0)
    };
    // Nothing for a zero, NULL or negative batch, a NULL or negative age, or too young rows.
    assert_eq!(purge("7 days", Some(0)).await, 0);
    assert_eq!(purge("7 days", None).await, 0);
    assert_eq!(purge("-1 days", Some(10)).await, 0);
    assert_eq!(purge("10 days", Some(10)).await, 0);

    // Another transaction holds p-1: it is skipped, never waited for.
    let (other, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    other
        .batch_execute(
            "BEGIN; SELECT 1 FROM integration.outbox WHERE idempotency_key = 'p-1' FOR UPDATE",
        )
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(purge("7 days", Some(3)).await, 3);
    assert_eq!(purge("7 days", Some(3)).await, 1);
    assert_eq!(purge("7 days", Some(3)).await, 0);
    assert!(started.elapsed() < Duration::from_secs(5), "never blocked");
    other.batch_execute("COMMIT").await.unwrap();
    assert_eq!(purge("7 days", Some(3)).await, 1, "p-1 once released");
    // The done row without done_at stays, and so does the whole audit log.
    assert_eq!(db.count("outbox").await, 1);
    assert_eq!(db.count("event_log").await, 6);

    // The migration file applies again without error or change (idempotent).
    let sql =
        std::fs::read_to_string(workspace_root().join("migrations/20261126000500_retention.sql"))
            .unwrap();
    c.batch_execute(&sql).await.unwrap();
    // Only the service role (and the owner) may execute it; the read-only role may not.
    let row = c
        .query_one(
            "SELECT has_function_privilege('integration_reader', \
                    'integration.purge_done_outbox(interval, integer)', 'EXECUTE'), \
                    has_function_privilege('service_role', \
                    'integration.purge_done_outbox(interval, integer)', 'EXECUTE')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, bool>(0), row.get::<_, bool>(1)),
        (false, true)
    );
}
