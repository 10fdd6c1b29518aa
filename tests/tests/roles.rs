//! SPEC §5 roles, in plain SQL against a freshly migrated database: the MCP component's
//! login role `integration_reader` can read but never write — not through any table, not
//! through the outbox functions, not even inside a transaction it declares READ WRITE —
//! and `anon` reads nothing.

use ipai_tests::db::connect;
use ipai_tests::runtime::readonly_url;
use ipai_tests::TestDb;
use tokio_postgres::error::SqlState;

/// A migrated database holding one event (outbox + event_log) and a row in every other
/// table, written as the owner.
async fn seeded() -> (TestDb, String) {
    let db = TestDb::new().await.expect("test database");
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
    // Of the schema's functions only the two read-only views of state are executable by
    // the reader: outbox_stats() and open_alerts() (MCP's outbox_health and list_alerts).
    let executable: Vec<String> = db.column("SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'integration' AND has_function_privilege('integration_reader', p.oid, 'EXECUTE')
              ORDER BY 1", &[]).await;
    assert_eq!(executable, ["open_alerts", "outbox_stats"]);
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
