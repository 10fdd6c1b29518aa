//! SPEC §5 roles, in plain SQL against a freshly migrated database: the MCP component's
//! login role `integration_reader` can read but never write — not through any table, not
//! through the outbox functions, not even inside a transaction it declares READ WRITE —
//! and `anon` reads nothing. Every role of the app holds exactly what its components use
//! (an expected table per role, SPEC §15), none inherits `service_role`, and the probe
//! role of `/health` and `/metrics` reads through two functions and no table.

use ipai_tests::db::connect;
use ipai_tests::runtime::readonly_url;
use ipai_tests::TestDb;
use tokio_postgres::error::SqlState;

/// A migrated database holding one event (outbox + event_log) and a row in every other
/// table, written as the owner.
async fn seeded() -> (TestDb, String) {
    let db = {
        let _shipped = SHIPPED_ROLES.lock().await;
        TestDb::new().await.expect("test database")
    };
    let row = db
        .client
        .query_one(
            "SELECT id::text FROM integration.ingest_event('expense.submitted', 'expense', '42',
                 '{\"employee_code\": \"E-0042\", \"amount\": 10}', 'k-42', 'sha', NULL, 'odoo')",
            &[],
        )
        .await
        .expect("ingest_event as owner");
    let id: String = row.get(0);
    db.client
        .batch_execute(&format!(
            "INSERT INTO integration.deliveries (event_id, channel, target, status) VALUES ('{id}', 'mattermost', 't', 'sent');
             INSERT INTO integration.id_map (odoo_model, odoo_id, system, external_id, event_id) VALUES ('hr.expense', '42', 'mattermost', 'p1', '{id}');
             INSERT INTO integration.payment_queue (expense_id, amount) VALUES ('42', 10);
             INSERT INTO integration.asset_availability (asset_id, status) VALUES ('3', 'available');
             INSERT INTO integration.ppm_tasks (task_id, status) VALUES ('9', 'open');
             INSERT INTO integration.bir_compliance (bir_form, period, status) VALUES ('1601-C', '2026-10', 'filed');
             INSERT INTO integration.oauth_tokens (name, access_token, expires_at) VALUES ('google_calendar', 'ya29.secret', now());"
        ))
        .await
        .expect("seed as owner");
    (db, id)
}

/// The tables `seeded` writes one row to (oauth_tokens too, which the reader must not see).
const SEEDED: &[&str] = &[
    "outbox",
    "event_log",
    "deliveries",
    "id_map",
    "payment_queue",
    "asset_availability",
    "ppm_tasks",
    "bir_compliance",
];

/// Every table of the schema with one of its columns (from the catalog, so a table
/// added later is covered without editing this test).
async fn tables(db: &TestDb) -> Vec<(String, String)> {
    let rows = db
        .client
        .query(
            "SELECT c.relname::text,
                    (SELECT a.attname::text FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attgenerated = '' AND a.attidentity = ''
                      ORDER BY a.attnum LIMIT 1)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'integration' AND c.relkind IN ('r', 'p', 'v', 'm')
              ORDER BY 1",
            &[],
        )
        .await
        .expect("catalog");
    let t: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        t.len() >= 9,
        "expected the nine integration tables, got {t:?}"
    );
    t
}

async fn counts(db: &TestDb, tables: &[(String, String)]) -> Vec<i64> {
    let mut out = Vec::new();
    for (t, _) in tables {
        out.push(db.count(t).await);
    }
    out
}

fn code(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.as_db_error().map(|d| d.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_reads_every_table_but_the_oauth_token_cache() {
    let (db, id) = seeded().await;
    let reader = connect(&readonly_url(&db.url)).await;
    for (t, _) in tables(&db).await {
        let r = reader
            .query_one(&format!("SELECT count(*) FROM integration.{t}"), &[])
            .await;
        if t == "oauth_tokens" {
            let e = r.expect_err("oauth_tokens must not be readable");
            assert_eq!(code(&e), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{e}");
        } else {
            let n: i64 = r.unwrap_or_else(|e| panic!("SELECT {t}: {e}")).get(0);
            // The tables seeded above hold one row each; RLS must not hide it.
            if SEEDED.contains(&t.as_str()) {
                assert_eq!(n, 1, "{t}");
            }
        }
    }
    let stats = reader
        .query("SELECT status, count FROM integration.outbox_stats()", &[])
        .await
        .expect("outbox_stats is granted");
    assert_eq!(stats.len(), 5);
    let row = reader
        .query_one(
            "SELECT event_type FROM integration.event_log WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "expense.submitted");
    // Every session of the role is read-only by default.
    let ro: String = reader
        .query_one("SHOW default_transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ro, "on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_cannot_insert_update_delete_or_truncate_any_table() {
    let (db, _) = seeded().await;
    let tables = tables(&db).await;
    let before = counts(&db, &tables).await;
    let reader = connect(&readonly_url(&db.url)).await;
    for (t, col) in &tables {
        let statements = [
            format!("INSERT INTO integration.{t} DEFAULT VALUES"),
            format!("UPDATE integration.{t} SET {col} = {col}"),
            format!("DELETE FROM integration.{t}"),
            format!("TRUNCATE integration.{t}"),
        ];
        for sql in &statements {
            // As the session comes (read-only by default): refused.
            let e = reader
                .batch_execute(sql)
                .await
                .expect_err(&format!("{sql} must fail"));
            assert!(
                matches!(
                    code(&e),
                    Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
                        | Some(&SqlState::INSUFFICIENT_PRIVILEGE)
                ),
                "{sql}: {e}"
            );
            // Even in a transaction the role declares READ WRITE: no privilege.
            let e = reader
                .batch_execute(&format!("BEGIN READ WRITE; {sql}; COMMIT"))
                .await
                .expect_err(&format!("{sql} in READ WRITE must fail"));
            // (A view, such as approval_requests, cannot be truncated by anyone.)
            assert!(
                matches!(code(&e), Some(&SqlState::INSUFFICIENT_PRIVILEGE))
                    || (sql.starts_with("TRUNCATE")
                        && code(&e) == Some(&SqlState::WRONG_OBJECT_TYPE)),
                "{sql}: {e}"
            );
            reader.batch_execute("ROLLBACK").await.expect("rollback");
        }
    }
    assert_eq!(counts(&db, &tables).await, before, "no table changed");
    // The catalog agrees: no write privilege on anything.
    let writable: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'integration' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                AND CASE WHEN c.relkind = 'S'
                         THEN has_sequence_privilege('integration_reader', c.oid, 'USAGE, UPDATE')
                         ELSE has_table_privilege('integration_reader', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                    END",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(writable, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_cannot_call_the_outbox_functions() {
    let (db, id) = seeded().await;
    let reader = connect(&readonly_url(&db.url)).await;
    let calls = [
        "SELECT * FROM integration.ingest_event('expense.paid', 'expense', '42', '{}'::jsonb, 'k-new', 'sha', NULL, 'odoo')".to_string(),
        "SELECT * FROM integration.claim_outbox(10, 'mcp')".to_string(),
        format!("SELECT integration.ack_outbox('{id}'::uuid)"),
        format!("SELECT integration.ack_outbox_batch(ARRAY['{id}'::uuid])"),
        format!("SELECT integration.fail_outbox('{id}'::uuid, 'x')"),
        format!("SELECT integration.requeue_outbox('{id}'::uuid)"),
        // Replay: the reader may plan (MCP's replay_preview), never execute.
        "SELECT integration.replay_begin('mcp', 'cli', '{\"statuses\": [\"pending\"]}', '{}')".to_string(),
        "SELECT integration.replay_step(1, 10)".to_string(),
    ];
    for sql in &calls {
        for wrapped in [sql.clone(), format!("BEGIN READ WRITE; {sql}; COMMIT")] {
            let e = reader
                .batch_execute(&wrapped)
                .await
                .expect_err(&format!("{wrapped} must fail"));
            assert_eq!(
                code(&e),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE),
                "{wrapped}: {e}"
            );
            reader.batch_execute("ROLLBACK").await.expect("rollback");
        }
    }
    let row = db
        .client
        .query_one(
            "SELECT status, attempts FROM integration.outbox WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pending");
    assert_eq!(row.get::<_, i32>(1), 0);
    assert_eq!(db.count("outbox").await, 1);
    // Of the schema's functions only the read-only views of state are executable by the
    // reader: outbox_stats() and open_alerts() (MCP's outbox_health and list_alerts), and
    // the replay plan's (MCP's replay_preview), and reconcile_status (SPEC §11).
    let executable: Vec<String> = db.column("SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'integration' AND has_function_privilege('integration_reader', p.oid, 'EXECUTE')
              ORDER BY 1", &[]).await;
    assert_eq!(
        executable,
        [
            "open_alerts",
            "outbox_stats",
            "recent_replays",
            "reconcile_status",
            "replay_followers",
            "replay_matches",
            "replay_page",
            "replay_summary"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anon_reads_nothing_and_authenticated_only_the_event_log() {
    let (db, _) = seeded().await;
    let tables = tables(&db).await;
    let owner = connect(&db.url).await;
    owner
        .batch_execute("SET ROLE anon")
        .await
        .expect("SET ROLE anon");
    for (t, _) in &tables {
        let e = owner
            .query_one(&format!("SELECT count(*) FROM integration.{t}"), &[])
            .await
            .expect_err(&format!("anon must not read {t}"));
        assert_eq!(
            code(&e),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{t}: {e}"
        );
    }
    let e = owner
        .query("SELECT * FROM integration.outbox_stats()", &[])
        .await
        .expect_err("anon must not call outbox_stats");
    assert_eq!(code(&e), Some(&SqlState::INSUFFICIENT_PRIVILEGE));

    owner
        .batch_execute("RESET ROLE; SET ROLE authenticated")
        .await
        .unwrap();
    for (t, _) in &tables {
        let r = owner
            .query_one(&format!("SELECT count(*) FROM integration.{t}"), &[])
            .await;
        if t == "event_log" {
            assert_eq!(
                r.expect("authenticated reads event_log").get::<_, i64>(0),
                1
            );
        } else {
            let e = r.expect_err(&format!("authenticated must not read {t}"));
            assert_eq!(
                code(&e),
                Some(&SqlState::INSUFFICIENT_PRIVILEGE),
                "{t}: {e}"
            );
        }
    }
}

/// Tests that look at the shipped, cluster-wide roles (`ipai_app`, …) while no other test
/// of this file is migrating a database: an older migration of a fresh database makes
/// `ipai_app` a member of `service_role` for the moment until the least-privilege
/// migration takes it back.
static SHIPPED_ROLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every privilege `role` holds in the `integration` schema, its own and inherited (what
/// PostgreSQL checks: `has_*_privilege` follows memberships), one line per object:
/// `"table outbox: SELECT, UPDATE"`, `"sequence alerts_id_seq: USAGE"`,
/// `"function open_alerts()"`. Objects it holds nothing on are left out.
async fn effective_privileges(db: &TestDb, role: &str) -> Vec<String> {
    db.column(
        "WITH rel AS (
             SELECT c.oid, c.relname::text AS name, c.relkind
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'integration' AND c.relkind IN ('r', 'p', 'v', 'm', 'S'))
         SELECT line FROM (
             SELECT 'table ' || r.name || ': ' || string_agg(p.priv, ', ' ORDER BY p.ord) AS line
               FROM rel r
               CROSS JOIN LATERAL unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE',
                                               'TRUNCATE', 'REFERENCES', 'TRIGGER'])
                          WITH ORDINALITY AS p(priv, ord)
              WHERE r.relkind <> 'S' AND has_table_privilege($1, r.oid, p.priv)
              GROUP BY r.name
             UNION ALL
             SELECT 'sequence ' || r.name || ': ' || string_agg(p.priv, ', ' ORDER BY p.ord)
               FROM rel r
               CROSS JOIN LATERAL unnest(ARRAY['USAGE', 'SELECT', 'UPDATE'])
                          WITH ORDINALITY AS p(priv, ord)
              WHERE r.relkind = 'S' AND has_sequence_privilege($1, r.oid, p.priv)
              GROUP BY r.name
             UNION ALL
             SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'integration' AND has_function_privilege($1, p.oid, 'EXECUTE')
         ) AS all_privileges
         ORDER BY line",
        &[&role],
    )
    .await
}

/// What each component's role may do (migration 20261207000100_least_privilege.sql):
/// exactly the statements of its components, nothing on the other tables.
const INGEST_PRIVILEGES: &[&str] = &[
    "function ingest_event(p_event_type text, p_aggregate_type text, p_aggregate_id text, p_payload jsonb, p_idempotency_key text, p_body_sha256 text, p_occurred_at timestamp with time zone, p_source text)",
    "function ingest_event(p_event_type text, p_aggregate_type text, p_aggregate_id text, p_payload jsonb, p_idempotency_key text, p_body_sha256 text, p_occurred_at timestamp with time zone, p_source text, p_signature_sha256 text)",
    "function request_dispatch(p_kick_window interval)",
    // 20261207000500_replay_digests.sql: a signature spent by a request that stored nothing.
    "function spend_signature(p_signature_sha256 text, p_idempotency_key text)",
    "sequence outbox_seq_seq: USAGE",
    "table dispatch_lease: SELECT, UPDATE",
    "table event_log: INSERT",
    "table idempotency_keys: SELECT, INSERT",
    "table ingest_signatures: SELECT, INSERT, UPDATE, DELETE",
    "table outbox: SELECT, INSERT",
];

const APP_PRIVILEGES: &[&str] = &[
    "function ack_outbox(p_id uuid)",
    "function ack_outbox_batch(p_ids uuid[])",
    "function alert_sent(p_id bigint, p_message text, p_sent text[], p_error text)",
    "function cached_oauth_token(p_name text, p_margin_s integer)",
    "function claim_delivery(p_event_id uuid, p_channel text, p_target text, p_lease_s integer)",
    "function claim_dispatch_batch(p_worker text, p_limit integer, p_lease interval, p_lock_timeout interval)",
    "function claim_outbox(p_limit integer, p_worker text, p_lock_timeout interval)",
    "function claim_report_message(p_message_key text, p_event_id uuid)",
    "function claim_report_message_and_delivery(p_message_key text, p_event_id uuid, p_channel text, p_target text, p_lease_s integer)",
    "function current_alert_conditions(p_stalled_after_s integer, p_health_max_pending_age_s integer)",
    // 20261208000200_reconcile_watch.sql: the events_missing / digest_late conditions.
    "function digest_late_after()",
    "function end_dispatch_run(p_worker text)",
    "function evaluate_alerts(p_stalled_after_s integer, p_health_max_pending_age_s integer, p_reminder_interval_s integer, p_targets text[], p_send_lease_s integer)",
    "function fail_outbox(p_id uuid, p_error text)",
    "function finish_delivery(p_event_id uuid, p_channel text, p_target text, p_status text, p_response_code integer, p_detail text)",
    "function health_snapshot(p_lock_timeout_s double precision)",
    "function metrics_snapshot(p_lock_timeout_s double precision)",
    "function open_alerts()",
    // 20261207000400_ops_auth_throttle.sql: the /ops login throttle (SECURITY DEFINER).
    "function ops_auth_attempt(p_client text, p_failed boolean)",
    "function purge_deliveries(p_older_than interval, p_batch integer)",
    "function purge_done_outbox(p_older_than interval, p_batch integer)",
    "function purge_expired_oauth_tokens(p_batch integer)",
    "function purge_expired_signatures(p_batch integer)",
    "function purge_id_map(p_older_than interval, p_batch integer)",
    "function purge_ledgers(p_older_than interval, p_batch integer)",
    "function purge_reconcile_windows(p_older_than interval, p_batch integer)",
    "function purge_report_messages(p_older_than interval, p_batch integer)",
    // 20261207000600_replay.sql: the /ops replay page plans, executes and lists.
    "function recent_replays(p_limit integer)",
    // 20261208000100_reconcile.sql: the digest's handler records, /ops reads (SECURITY DEFINER).
    "function reconcile_gaps()",
    "function reconcile_status(p_window_start timestamp with time zone)",
    "function record_digest(p_event_id uuid, p_source text, p_payload jsonb)",
    "function release_delivery(p_event_id uuid, p_channel text, p_target text)",
    "function replay_begin(p_by text, p_via text, p_filter jsonb, p_redo text[])",
    "function replay_followers(p_filter jsonb)",
    "function replay_matches(p_filter jsonb)",
    "function replay_page(p_filter jsonb, p_after_seq bigint, p_limit integer, p_followers boolean)",
    "function replay_step(p_replay bigint, p_batch integer)",
    "function replay_summary(p_filter jsonb)",
    "function requeue_outbox(p_id uuid)",
    "function start_dispatch_run(p_worker text, p_lease interval)",
    "sequence alerts_id_seq: USAGE",
    "sequence deliveries_id_seq: USAGE",
    "sequence replays_id_seq: USAGE",
    "table alerts: SELECT, INSERT, UPDATE",
    "table asset_availability: SELECT, INSERT, UPDATE",
    "table bir_compliance: SELECT, INSERT, UPDATE",
    "table deliveries: SELECT, INSERT, UPDATE, DELETE",
    "table dispatch_lease: SELECT, UPDATE",
    "table event_volume_hourly: SELECT",
    "table id_map: SELECT, INSERT, UPDATE, DELETE",
    "table ingest_signatures: SELECT, UPDATE, DELETE",
    "table metric_counts: SELECT",
    "table oauth_tokens: SELECT, INSERT, UPDATE, DELETE",
    "table outbox: SELECT, UPDATE, DELETE",
    "table payment_queue: SELECT, INSERT, UPDATE, DELETE",
    "table ppm_tasks: SELECT, INSERT, UPDATE",
    "table replay_items: SELECT, INSERT, UPDATE",
    "table replays: SELECT, INSERT, UPDATE",
    "table report_messages: SELECT, INSERT, UPDATE, DELETE",
];

const PROBE_PRIVILEGES: &[&str] = &[
    "function health_snapshot(p_lock_timeout_s double precision)",
    "function metrics_snapshot(p_lock_timeout_s double precision)",
    "function open_alerts()",
];

const READER_PRIVILEGES: &[&str] = &[
    "function open_alerts()",
    "function outbox_stats()",
    // 20261207000600_replay.sql: MCP's replay_preview (read-only functions).
    "function recent_replays(p_limit integer)",
    // 20261208000100_reconcile.sql: MCP's reconcile_status.
    "function reconcile_status(p_window_start timestamp with time zone)",
    "function replay_followers(p_filter jsonb)",
    "function replay_matches(p_filter jsonb)",
    "function replay_page(p_filter jsonb, p_after_seq bigint, p_limit integer, p_followers boolean)",
    "function replay_summary(p_filter jsonb)",
    "table alerts: SELECT",
    "table approval_requests: SELECT",
    "table asset_availability: SELECT",
    "table bir_compliance: SELECT",
    "table deliveries: SELECT",
    "table dispatch_lease: SELECT",
    "table event_log: SELECT",
    "table event_volume_hourly: SELECT",
    "table id_map: SELECT",
    "table idempotency_keys: SELECT",
    "table ingest_signatures: SELECT",
    "table metric_counts: SELECT",
    "table ops_auth_failures: SELECT",
    "table outbox: SELECT",
    "table payment_queue: SELECT",
    "table ppm_tasks: SELECT",
    "table reconcile_windows: SELECT",
    "table replay_items: SELECT",
    "table replays: SELECT",
    "table report_messages: SELECT",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_holds_exactly_what_its_components_use() {
    let db = {
        let _shipped = SHIPPED_ROLES.lock().await;
        TestDb::new().await.expect("test database")
    };
    let roles = &db.roles;
    let mut wrong = Vec::new();
    for (who, role, expected) in [
        ("ingest", &roles.ingest, INGEST_PRIVILEGES),
        ("app", &roles.app, APP_PRIVILEGES),
        ("probe", &roles.probe, PROBE_PRIVILEGES),
        ("reader", &roles.reader, READER_PRIVILEGES),
    ] {
        let actual = effective_privileges(&db, role).await;
        if actual != expected {
            let extra: Vec<&String> = actual
                .iter()
                .filter(|a| !expected.contains(&a.as_str()))
                .collect();
            let missing: Vec<&&str> = expected
                .iter()
                .filter(|e| !actual.iter().any(|a| a == *e))
                .collect();
            wrong.push(format!(
                "{who} ({role}): holds more {extra:#?}\n  lacks {missing:#?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The advisory locks (taken from PUBLIC where a superuser migrated, as here): each
    // role holds the one form its functions take, the probe and the reader none.
    let advisory: Vec<String> = db
        .column(
            "SELECT r || ' ' || p.oid::regprocedure::text
               FROM unnest($1::text[]) AS r, pg_proc AS p
              WHERE p.pronamespace = 'pg_catalog'::regnamespace
                AND p.proname LIKE '%advisory%lock%' AND p.proname NOT LIKE '%unlock%'
                AND has_function_privilege(r, p.oid, 'EXECUTE')
              ORDER BY 1",
            &[&vec![
                roles.ingest.clone(),
                roles.app.clone(),
                roles.probe.clone(),
                roles.reader.clone(),
            ]],
        )
        .await;
    assert_eq!(
        advisory,
        [
            format!("{} pg_advisory_xact_lock(bigint)", roles.app),
            format!("{} pg_advisory_xact_lock(integer,integer)", roles.ingest),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_of_the_app_inherits_service_role() {
    let _shipped = SHIPPED_ROLES.lock().await;
    let db = TestDb::new().await.expect("test database");
    let roles = &db.roles;
    let logins = [
        roles.ingest.as_str(),
        roles.app.as_str(),
        roles.probe.as_str(),
        roles.reader.as_str(),
        "ipai_ingest",
        "ipai_app",
        "ipai_probe",
        "integration_reader",
        "integration_ingest",
        "integration_app",
        "integration_probe",
    ];
    let members: Vec<String> = db
        .column(
            "SELECT r::text FROM unnest($1::text[]) AS r
              WHERE pg_has_role(r, 'service_role', 'MEMBER')
                 OR pg_has_role(r, 'service_role', 'USAGE')
              ORDER BY 1",
            &[&logins.map(str::to_string).to_vec()],
        )
        .await;
    assert!(members.is_empty(), "members of service_role: {members:?}");
    // And none holds a privilege on the OAuth token cache but the app (the Google
    // Calendar handler caches its token there).
    for role in [&roles.ingest, &roles.probe, &roles.reader] {
        let lines = effective_privileges(&db, role).await;
        assert!(
            !lines.iter().any(|l| l.starts_with("table oauth_tokens")),
            "{role}: {lines:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_role_runs_the_health_and_metrics_functions_and_reads_no_table() {
    let (db, _) = seeded().await;
    let probe = connect(&db.probe_url()).await;
    let health: serde_json::Value = probe
        .query_one(&ipai_ops::data::health_sql(), &[&"600"])
        .await
        .expect("the /health statement as the probe role")
        .get(0);
    assert_eq!(health["counts"]["pending"], 1, "{health}");
    let metrics: serde_json::Value = probe
        .query_one(&ipai_ops::data::metrics_sql(), &[&"600"])
        .await
        .expect("the /metrics statement as the probe role")
        .get(0);
    assert_eq!(metrics["ingested"]["expense.submitted"], 1, "{metrics}");
    probe
        .query_one("SELECT integration.open_alerts()", &[])
        .await
        .expect("open alerts as the probe role");
    for (t, _) in tables(&db).await {
        let e = probe
            .query_one(&format!("SELECT count(*) FROM integration.{t}"), &[])
            .await
            .expect_err(&format!("the probe must not read {t}"));
        assert_eq!(
            code(&e),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{t}: {e}"
        );
    }
    // Its sessions are read-only, with a short statement timeout and a small budget.
    let row = probe
        .query_one(
            "SELECT current_setting('default_transaction_read_only'),
                    current_setting('statement_timeout'),
                    (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i32>(2)
        ),
        ("on".to_string(), "5s".to_string(), 4)
    );
}
