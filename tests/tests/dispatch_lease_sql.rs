//! The connection and coalescing contract of `migrations/20261130000100_app_roles_dispatch_lease.sql`,
//! checked against a real PostgreSQL:
//! - one dispatcher run holds the lease at a time; a kick during a run only marks it to
//!   claim again, and that run (or the next one) claims the kicked event, never cron;
//! - a run that died loses the lease when it expires;
//! - the app's login roles are not superusers, have a connection limit the server
//!   enforces, and session defaults (idle sessions closed, statement timeout).
//!
//! Where a test must let time pass (a lease expiring) it moves `lease_until` into the past
//! with an UPDATE: that simulates the clock and nothing else.

use ipai_tests::db::connect;
use ipai_tests::TestDb;
use serde_json::json;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

async fn ingest(c: &Client, aggregate_id: &str, key: &str) -> uuid::Uuid {
    c.query_one(
        "SELECT id FROM integration.ingest_event('finance_task.created', 'finance_task', $1, $2, $3, $4, now(), NULL)",
        &[&aggregate_id, &json!({"k": key}), &key, &format!("sha-{key}")],
    )
    .await
    .unwrap_or_else(|e| panic!("ingest {key}: {e}"))
    .get(0)
}

async fn start(c: &Client, worker: &str) -> bool {
    c.query_one(
        "SELECT integration.start_dispatch_run($1, interval '30 seconds')",
        &[&worker],
    )
    .await
    .unwrap()
    .get(0)
}

async fn request(c: &Client) -> bool {
    c.query_one("SELECT integration.request_dispatch()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn claim(c: &Client, worker: &str) -> Vec<uuid::Uuid> {
    ipai_tests::db::column(
        c,
        "SELECT id FROM integration.claim_dispatch_batch($1, 50, interval '30 seconds')",
        &[&worker],
    )
    .await
}

async fn ack_all(c: &Client, ids: &[uuid::Uuid]) {
    for id in ids {
        let ok: bool = c
            .query_one("SELECT integration.ack_outbox($1)", &[id])
            .await
            .unwrap()
            .get(0);
        assert!(ok);
    }
}

/// (holder, rerun) of the lease row.
async fn lease(c: &Client) -> (Option<String>, bool) {
    let r = c
        .query_one("SELECT holder, rerun FROM integration.dispatch_lease", &[])
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn one_run_holds_the_lease_and_a_second_start_only_marks_it_to_claim_again() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    assert!(request(c).await, "no run going: the kicker must start one");
    assert!(start(c, "w1").await);
    assert_eq!(lease(c).await, (Some("w1".into()), false));
    assert!(!start(c, "w2").await, "a second run must not start");
    assert_eq!(lease(c).await, (Some("w1".into()), true));
    assert!(!request(c).await, "a kick during a run starts nothing");
    assert!(claim(c, "w2").await.is_empty(), "only the holder claims");
    assert_eq!(lease(c).await.0.as_deref(), Some("w1"));
}

#[tokio::test]
async fn a_burst_of_kicks_into_an_idle_bus_starts_one_run_not_one_per_post() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    assert!(request(c).await, "the first kick starts a run");
    for _ in 0..5 {
        assert!(
            !request(c).await,
            "the run is starting: later kicks start nothing"
        );
    }
    // The run starts: its claims see every row committed before it.
    assert!(start(c, "w1").await);
    assert!(!request(c).await);
    assert_eq!(lease(c).await, (Some("w1".into()), true));
    // A kick that was lost (no run ever started) is retried after the window:
    // simulate the lost kick and the time passing.
    c.batch_execute(
        "UPDATE integration.dispatch_lease
            SET holder = NULL, lease_until = '-infinity', rerun = false,
                kicked_at = now() - interval '6 seconds'",
    )
    .await
    .unwrap();
    assert!(
        request(c).await,
        "after the window a kick starts a run again"
    );
}

#[tokio::test]
async fn the_holder_releases_the_lease_when_nothing_is_left_and_the_next_kick_starts_a_run() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    let a = ingest(c, "1", "a").await;
    assert!(start(c, "w1").await);
    let batch = claim(c, "w1").await;
    assert_eq!(batch, vec![a]);
    ack_all(c, &batch).await;
    assert!(claim(c, "w1").await.is_empty());
    assert_eq!(lease(c).await, (None, false), "released");
    ingest(c, "2", "b").await;
    assert!(
        request(c).await,
        "after the release a kick must start a run"
    );
}

#[tokio::test]
async fn an_event_kicked_during_a_run_is_claimed_by_that_run_before_it_lets_go() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    ingest(c, "1", "a").await;
    assert!(start(c, "w1").await);
    let first = claim(c, "w1").await;
    assert_eq!(first.len(), 1);
    // The run delivers; meanwhile Odoo posts another event and ingest kicks.
    let b = ingest(c, "2", "b").await;
    assert!(!request(c).await);
    ack_all(c, &first).await;
    assert_eq!(
        claim(c, "w1").await,
        vec![b],
        "the same run claims the kicked event"
    );
    assert_eq!(lease(c).await.0.as_deref(), Some("w1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_racing_the_release_either_is_claimed_or_starts_a_new_run() {
    let db = TestDb::new().await.unwrap();
    let run = connect(&db.url).await;
    let kicker = connect(&db.url).await;
    assert!(start(&run, "w1").await);
    // The run's final claim is in flight (its transaction holds the lease row) ...
    run.batch_execute("BEGIN").await.unwrap();
    assert!(claim(&run, "w1").await.is_empty());
    // ... when an event is stored and its kick arrives: the kick waits for the release.
    let b = ingest(&kicker, "2", "b").await;
    let kick = tokio::spawn(async move { request(&kicker).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !kick.is_finished(),
        "the kick must wait for the run's decision"
    );
    run.batch_execute("COMMIT").await.unwrap();
    assert!(
        kick.await.unwrap(),
        "the run let go without seeing the event: the kick must start a new run"
    );
    assert!(start(&run, "w2").await);
    assert_eq!(claim(&run, "w2").await, vec![b]);
}

#[tokio::test]
async fn a_run_that_died_loses_the_lease_when_it_expires_and_cannot_take_it_back() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    let a = ingest(c, "1", "a").await;
    assert!(start(c, "dead-run").await);
    assert!(!start(c, "w2").await, "the lease is live");
    // Time passes beyond the lease (simulated clock).
    c.execute(
        "UPDATE integration.dispatch_lease SET lease_until = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    assert!(request(c).await, "an expired lease is no run");
    assert!(start(c, "w2").await, "a new run takes over");
    assert!(
        claim(c, "dead-run").await.is_empty(),
        "the old run's late claim gets nothing"
    );
    assert_eq!(lease(c).await.0.as_deref(), Some("w2"));
    assert_eq!(claim(c, "w2").await, vec![a]);
}

#[tokio::test]
async fn end_dispatch_run_releases_only_the_holders_lease() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    assert!(start(c, "w1").await);
    let end = |w: &'static str| async move {
        c.query_one("SELECT integration.end_dispatch_run($1)", &[&w])
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    assert!(!end("w2").await);
    assert_eq!(lease(c).await.0.as_deref(), Some("w1"));
    assert!(end("w1").await);
    assert_eq!(lease(c).await, (None, false));
}

// ---------------------------------------------------------------------------------------
// The app's login roles.
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_shipped_roles_are_not_superusers_and_have_limits_and_session_defaults() {
    let db = TestDb::new().await.unwrap();
    for (role, limit) in [
        ("ipai_ingest", 32),
        ("ipai_app", 24),
        ("integration_reader", 8),
    ] {
        let r = db
            .client
            .query_one(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit,
                        coalesce((SELECT setconfig FROM pg_db_role_setting
                                   WHERE setrole = r.oid AND setdatabase = 0), '{}')
                   FROM pg_roles r WHERE rolname = $1",
                &[&role],
            )
            .await
            .unwrap();
        let (sup, cr, cd, login): (bool, bool, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(!sup && !cr && !cd && login, "{role}");
        assert_eq!(r.get::<_, i32>(4), limit, "{role}");
        let settings: Vec<String> = r.get(5);
        for s in ["idle_session_timeout=60s", "statement_timeout="] {
            assert!(
                settings.iter().any(|x| x.starts_with(s)),
                "{role}: {settings:?}"
            );
        }
    }
    let app: Vec<String> = db
        .client
        .query_one(
            "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
              WHERE r.rolname = 'ipai_app' AND setdatabase = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        app.contains(&"statement_timeout=30s".to_string()),
        "{app:?}"
    );
}

#[tokio::test]
async fn the_app_role_runs_the_whole_queue_contract_and_nothing_more() {
    let db = TestDb::new().await.unwrap();
    let app = connect(&db.app_url()).await;
    let who: (String, String) = app
        .query_one(
            "SELECT current_user::text, current_setting('statement_timeout')",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(who, (db.roles.app.clone(), "30s".to_string()));
    // Events come in through ingest's role; the app role holds none of ingest's grants.
    let err = app
        .query_one(
            "SELECT id FROM integration.ingest_event('finance_task.created', 'finance_task', '1', '{}'::jsonb, 'x', 'sha-x', now(), NULL)",
            &[],
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("permission denied"), "{err:?}");
    let ingest_role = connect(&db.ingest_url()).await;
    let a = ingest(&ingest_role, "1", "a").await;
    assert!(request(&ingest_role).await);
    assert!(start(&app, "w1").await);
    let batch = claim(&app, "w1").await;
    assert_eq!(batch, vec![a]);
    ack_all(&app, &batch).await;
    let err = app
        .batch_execute("CREATE DATABASE ipai_should_not_exist")
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("permission denied"), "{err:?}");
    let err = app
        .batch_execute("DELETE FROM integration.event_log")
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_connections_beyond_the_role_limit_and_admits_others() {
    let db = TestDb::new().await.unwrap();
    // A role with a small limit, made by the same contract as the shipped ones.
    let role = format!("{}_lim", db.roles.app);
    db.client
        .execute(
            "SELECT integration.ensure_login_role($1, $2, 3, ARRAY['idle_session_timeout=60s'])",
            &[&role, &db.roles.app],
        )
        .await
        .unwrap();
    let url = ipai_tests::runtime::url_as(&db.url, &role);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&url).await);
    }
    let refused = tokio_postgres::connect(&url, NoTls).await.err();
    let other = tokio_postgres::connect(&db.url, NoTls).await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.client
        .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .await
        .ok();
    let refused = refused.expect("the 4th connection must be refused");
    assert!(
        format!("{refused:?}").contains("too many connections for role"),
        "{refused}"
    );
    assert!(other.is_ok(), "another role must still connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_idle_sessions_of_the_app_role() {
    let db = TestDb::new().await.unwrap();
    let role = format!("{}_idle", db.roles.app);
    db.client
        .execute(
            "SELECT integration.ensure_login_role($1, $2, 5, ARRAY['idle_session_timeout=1s'])",
            &[&role, &db.roles.app],
        )
        .await
        .unwrap();
    let (client, conn) =
        tokio_postgres::connect(&ipai_tests::runtime::url_as(&db.url, &role), NoTls)
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let closed = client.is_closed() || client.simple_query("SELECT 1").await.is_err();
    drop(client);
    let _ = conn.await;
    db.client
        .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .await
        .ok();
    assert!(closed, "an idle session must be closed by the server");
}

#[tokio::test]
async fn ensure_login_role_rejects_a_missing_or_absurd_limit_and_is_idempotent() {
    let db = TestDb::new().await.unwrap();
    for bad in [0, -1, 10_001] {
        let err = db
            .client
            .execute(
                "SELECT integration.ensure_login_role('ipai_never_made', NULL, $1, NULL)",
                &[&bad],
            )
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("connection limit"), "{err:?}");
    }
    // Applying the shipped setup again changes nothing and fails nothing.
    for _ in 0..2 {
        db.client
            .execute(
                "SELECT integration.ensure_login_role('ipai_app', 'service_role', 24,
                   ARRAY['idle_session_timeout=60s', 'idle_in_transaction_session_timeout=60s',
                         'statement_timeout=30s'])",
                &[],
            )
            .await
            .unwrap();
    }
}
