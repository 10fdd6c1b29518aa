//! Faults during dispatch: the host killed with SIGKILL in the middle of a run, and
//! PostgreSQL restarted during a run. Afterwards every event is `done` and the handler's
//! received-log shows every event id — none lost. These tests restart shared machinery,
//! so they run one at a time.

use ipai_tests::fake_http::FakeServer;
use ipai_tests::Fixture;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

async fn system(fake: &FakeServer) -> Fixture {
    let url = fake.url.clone();
    Fixture::with(move |v| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
        v.insert("dispatch_kick".into(), "off".into());
        v.insert("dispatch_batch_size".into(), "5".into());
        // Short lock timeout so rows a dead run left in `processing` come back quickly.
        v.insert("outbox_lock_timeout_s".into(), "2".into());
    })
    .await
    .unwrap()
}

async fn ingest_many(f: &Fixture, prefix: &str, n: u32) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let ev = json!({"event_type": "expense.approved", "aggregate_type": "expense",
                        "aggregate_id": format!("{prefix}-{i}"), "payload": {"status": "approve"}});
        ids.push(f.ingest(&format!("{prefix}-{i}"), &ev).await);
    }
    ids
}

/// Dispatches until every id is done (runs may fail while the fault lasts), counting
/// through `db` (a connection of the test's own, which may be newer than the fixture's).
async fn drain(f: &Fixture, db: &tokio_postgres::Client, ids: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let done: i64 = db
            .query_one(
                "SELECT count(*) FROM integration.outbox WHERE status = 'done'",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if done == ids.len() as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {done}/{} done:\n{}",
            ids.len(),
            f.sys.output()
        );
        f.try_dispatch().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn received_ids(fake: &FakeServer) -> HashSet<String> {
    fake.requests()
        .iter()
        .filter_map(|r| r.header("x-ipai-event-id").map(str::to_string))
        .collect()
}

async fn wait_for_deliveries(fake: &FakeServer, n: usize) {
    let got = fake.wait_for(n, Duration::from_secs(20)).await;
    assert!(got.len() >= n, "the run did not start delivering");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_run_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(300));
    let mut f = system(&fake).await;
    let ids = ingest_many(&f, "kill", 20).await;

    let run = {
        let (http, url) = (f.http.clone(), f.sys.url("/dispatch"));
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(ipai_tests::runtime::TEST_DISPATCH_TOKEN)
                .send()
                .await
        })
    };
    wait_for_deliveries(&fake, 3).await;
    f.sys.kill();
    let _ = run.await; // the killed run's connection is cut
    let stuck: i64 =
        f.db.client
            .query_one(
                "SELECT count(*) FROM integration.outbox WHERE status = 'processing'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    assert!(
        stuck > 0,
        "the kill must leave claimed rows behind for this test to mean anything"
    );

    fake.delay(Duration::ZERO);
    f.restart().await.unwrap();
    drain(&f, &f.db.client, &ids, Duration::from_secs(60)).await;
    let received = received_ids(&fake);
    for id in &ids {
        assert!(
            received.contains(id),
            "event {id} never reached the handler"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_during_a_run_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let fake = FakeServer::start().await;
    fake.delay(Duration::from_millis(150));
    let f = system(&fake).await;
    let ids = ingest_many(&f, "pg", 30).await;

    let run = {
        let (http, url) = (f.http.clone(), f.sys.url("/dispatch"));
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(ipai_tests::runtime::TEST_DISPATCH_TOKEN)
                .send()
                .await
        })
    };
    wait_for_deliveries(&fake, 5).await;
    let cluster = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a PostgreSQL cluster under /etc/postgresql");
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &cluster, "main", "restart"])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "restarting PostgreSQL failed");
    let answer = run.await.unwrap();
    if let Ok(resp) = answer {
        // The run either finished before the restart hit it or reports the outage.
        assert!([200, 503].contains(&resp.status().as_u16()));
    }
    // The test's own connection died with the restart: reconnect for the checks.
    let (client, conn) = tokio_postgres::connect(&f.db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    drain(&f, &client, &ids, Duration::from_secs(60)).await;
    let received = received_ids(&fake);
    for id in &ids {
        assert!(
            received.contains(id),
            "event {id} never reached the handler"
        );
    }
}
