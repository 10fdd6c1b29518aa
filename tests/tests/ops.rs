//! SPEC §9 end to end: the ops component (`/health`, `/metrics`, `/ops`, requeue) with
//! the built components under the runtime `IPAI_RUNTIME` selects, each test on a fresh
//! database. Retention (`/ops/retention`) is tested in `retention.rs`, the `make deploy`
//! plan and the Fermyon Cloud manifest in `deploy.rs`.
//!
//! Deterministic queues: the systems here run without the cron trigger and with the
//! ingest kick off, so events move only when a test calls `POST /dispatch`; handlers are a
//! loopback fake (service chaining off) whose answer the test sets. Time is simulated by
//! moving timestamps back (`UPDATE … SET done_at/created_at/next_attempt_at`), never by
//! waiting.

use ipai_tests::fake_http::FakeServer;
use ipai_tests::quiet::*;
use ipai_tests::runtime::TEST_OPS_PASSWORD;
use ipai_tests::{workspace_root, Fixture};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

async fn scalar_f64(f: &Fixture, sql: &str) -> Option<f64> {
    f.db.client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, Option<f64>>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_queue_depth_and_is_503_once_the_oldest_pending_event_is_too_old() {
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |_| {}).await;
    let (status, body) = get_json(&f, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["db"], "ok");
    assert_eq!(body["oldest_pending_age_s"], Value::Null, "nothing pending");

    let dead = make_dead(&f, &fake, "h-dead", &event("expense.paid", "expense", "1")).await;
    let p1 = f
        .ingest("h-1", &event("asset.reserved", "asset_booking", "7"))
        .await;
    f.ingest("h-2", &event("finance_task.created", "finance_task", "T-1"))
        .await;
    let (status, body) = get_json(&f, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["queue"],
        json!({"pending": 2, "processing": 0, "failed": 0, "dead": 1})
    );
    assert_eq!(body["dead"], 1);
    let age = body["oldest_pending_age_s"].as_f64().expect("an age");
    assert!((0.0..30.0).contains(&age), "{age}");
    assert!(!dead.is_empty());

    // Simulate a stalled dispatcher: the oldest pending event has waited 400 s (> 300 s).
    f.db.client
        .execute(
            "UPDATE integration.outbox SET next_attempt_at = now() - interval '400 seconds', \
             created_at = now() - interval '400 seconds' WHERE id::text = $1",
            &[&p1],
        )
        .await
        .unwrap();
    let (status, body) = get_json(&f, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["db"], "ok");
    let age = body["oldest_pending_age_s"].as_f64().unwrap();
    assert!((400.0..430.0).contains(&age), "{age}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("oldest pending"),
        "{body}"
    );

    // Delivering the queue makes it healthy again.
    fake.respond_with(200, "{}");
    f.dispatch().await;
    let (status, body) = get_json(&f, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queue"]["pending"], 0);
    assert_eq!(body["dead"], 1, "dead letters wait for an operator");
}

/// A loopback TCP proxy in front of the machine's PostgreSQL that the test can stop
/// (closing the port and cutting every open connection) and start again on the same port,
/// so "PostgreSQL stopped / restarted" is simulated without touching the shared server.
struct PgProxy {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl PgProxy {
    async fn start() -> Self {
        // A port no stand-in of this process can take while the proxy is stopped.
        let listener = ipai_tests::fake_http::ports::bind_fresh_tokio().unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Stops listening and cuts every connection: the port is closed.
    async fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        // Until the port refuses connections.
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Listens again on the same port.
    async fn restart(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("rebind the proxy port");
        self.serve(listener);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Polls `/health` until it answers `want` (or 20 s pass); returns the last answer.
async fn health_until(f: &Fixture, want: u16) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = get_json(f, "/health").await;
        if got.0 == want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The ops component's error lines the runtime printed after its first `skip` lines, once
/// they have arrived (up to 5 s for the first two, then 0.5 s for any more).
async fn ops_errors_after(f: &Fixture, skip: usize) -> Vec<String> {
    let lines = || -> Vec<String> {
        f.sys
            .output()
            .lines()
            .skip(skip)
            .filter(|l| l.contains("level=error component=ops"))
            .map(String::from)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    lines()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_postgresql_is_unreachable_and_200_again_when_it_is_back() {
    // The machine's PostgreSQL is shared with other tests, so it is never stopped here.
    // Instead the app's db_url/db_host point at a loopback proxy in front of it. Stopping
    // the proxy closes that port (connections refused) and cuts open connections — to the
    // app exactly what a stopped server looks like; restarting it on the same port is the
    // server coming back. The real server is reachable throughout (the test's own
    // connection checks the data).
    let proxy = PgProxy::start().await;
    let port = proxy.port;
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, move |v| {
        for name in ["db_url", "db_url_ingest", "db_url_probe"] {
            let url = v[name].replace("127.0.0.1:5432", &format!("127.0.0.1:{port}"));
            v.insert(name.into(), url);
        }
        v.insert("db_host".into(), format!("127.0.0.1:{port}"));
    })
    .await;
    f.ingest("pg-1", &event("expense.submitted", "expense", "1"))
        .await;
    let (status, body) = get_json(&f, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queue"]["pending"], 1);

    proxy.stop().await;
    let (status, body) = health_until(&f, 503).await;
    assert_eq!(status, 503, "{body}\n{}", f.sys.output());
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["db"], "unreachable", "{body}");
    // /metrics still answers, with the outage as a value; /ops says so.
    let printed = f.sys.output().lines().count();
    let text = f
        .http
        .get(f.sys.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("ipai_database_up 0\n"), "{text}");
    // Each failure is logged once, with the route that met it: /metrics stops at its first
    // read that fails (the open alerts would fail too), so one line.
    let logged = ops_errors_after(&f, printed).await;
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(logged[0].contains("msg=\"/metrics: "), "{logged:#?}");
    assert!(!logged[0].contains("alerts"), "{logged:#?}");
    let resp = f
        .http
        .get(f.sys.url("/ops"))
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);

    proxy.restart().await;
    let (status, body) = health_until(&f, 200).await;
    assert_eq!(status, 200, "{body}\n{}", f.sys.output());
    assert_eq!(body["db"], "ok");
    assert_eq!(body["queue"]["pending"], 1, "nothing was lost");
}

/// Runs `tests/python/parse_metrics.py` (prometheus_client's parser) over `text`.
fn parse_with_prometheus_client(text: &str) -> Value {
    let script = workspace_root().join("tests/python/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (make setup installs prometheus_client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition:\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output is JSON")
}

/// The value of sample `name` with exactly `labels`.
fn sample(parsed: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parsed["families"]
        .as_array()?
        .iter()
        .flat_map(|f| f["samples"].as_array().cloned().unwrap_or_default())
        .find(|s| {
            s["name"] == name
                && serde_json::from_value::<BTreeMap<String, String>>(s["labels"].clone())
                    .ok()
                    .as_ref()
                    == Some(&want)
        })
        .and_then(|s| s["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_prometheus_client_and_match_the_database() {
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |_| {}).await;

    // A known sequence: 5 events delivered, 1 dead, 1 failed (retry pending), 2 pending.
    let delivered = [
        ("m-1", event("expense.submitted", "expense", "1")),
        ("m-2", event("expense.submitted", "expense", "2")),
        ("m-3", event("expense.approved", "expense", "3")),
        ("m-4", event("asset.reserved", "asset_booking", "4")),
        ("m-5", event("finance_task.created", "finance_task", "T-5")),
    ];
    for (k, e) in &delivered {
        f.ingest(k, e).await;
    }
    let s = f.dispatch().await;
    assert_eq!(s["done"], 5, "{s}");
    make_dead(
        &f,
        &fake,
        "m-6",
        &event("asset.overdue", "asset_booking", "6"),
    )
    .await;
    let failed = f
        .ingest("m-7", &event("finance_task.overdue", "finance_task", "T-7"))
        .await;
    f.dispatch().await;
    assert_eq!(f.db.status(&failed).await, "failed");
    f.ingest("m-8", &event("expense.submitted", "expense", "8"))
        .await;
    f.ingest("m-9", &event("asset.reserved", "asset_booking", "9"))
        .await;
    // The handlers' delivery ledger (written by the real handlers; set here directly).
    f.db.client
        .batch_execute(
            "INSERT INTO integration.deliveries (event_id, channel, target, status, response_code) \
             SELECT id, 'mattermost', 'finance', 'sent', 200 FROM integration.outbox WHERE idempotency_key IN ('m-1', 'm-2'); \
             INSERT INTO integration.deliveries (event_id, channel, target, status, response_code) \
             SELECT id, 'email', 'a@example.com', 'failed', 502 FROM integration.outbox WHERE idempotency_key = 'm-4';",
        )
        .await
        .unwrap();

    let resp = f.http.get(f.sys.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let db_pending_age = scalar_f64(
        &f,
        "SELECT extract(epoch FROM now() - min(next_attempt_at))::float8 \
         FROM integration.outbox WHERE status = 'pending'",
    )
    .await
    .unwrap();
    let parsed = parse_with_prometheus_client(&text);

    // Every family is typed and documented.
    for fam in parsed["families"].as_array().unwrap() {
        assert_ne!(fam["type"], "unknown", "{fam}");
        assert!(!fam["help"].as_str().unwrap_or("").is_empty(), "{fam}");
    }
    let types: BTreeMap<String, String> = parsed["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(types["ipai_events_ingested"], "counter");
    assert_eq!(types["ipai_outbox_events"], "gauge");

    assert_eq!(sample(&parsed, "ipai_database_up", &[]), Some(1.0));
    // Outbox per status, against the database and against the known sequence.
    let expected = [
        ("pending", 2.0),
        ("processing", 0.0),
        ("failed", 1.0),
        ("dead", 1.0),
        ("done", 5.0),
    ];
    for (status, n) in expected {
        let db: i64 =
            f.db.client
                .query_one(
                    "SELECT count(*) FROM integration.outbox WHERE status = $1",
                    &[&status],
                )
                .await
                .unwrap()
                .get(0);
        let got = sample(&parsed, "ipai_outbox_events", &[("status", status)]);
        assert_eq!(got, Some(db as f64), "{status}");
        assert_eq!(got, Some(n), "{status}");
    }
    assert_eq!(sample(&parsed, "ipai_dead_letters", &[]), Some(1.0));
    // Ingested per type = event_log per type (and zero for types never seen).
    let rows =
        f.db.client
            .query(
                "SELECT event_type, count(*) FROM integration.event_log GROUP BY event_type",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        let (t, n): (String, i64) = (r.get(0), r.get(1));
        let domain = ipai_core::taxonomy::domain_of(&t).unwrap().name;
        assert_eq!(
            sample(
                &parsed,
                "ipai_events_ingested_total",
                &[("event_type", &t), ("domain", domain)]
            ),
            Some(n as f64),
            "{t}"
        );
    }
    assert_eq!(
        sample(
            &parsed,
            "ipai_events_ingested_total",
            &[("event_type", "expense.submitted"), ("domain", "expense")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &parsed,
            "ipai_events_ingested_total",
            &[("event_type", "expense.paid"), ("domain", "expense")]
        ),
        Some(0.0)
    );
    // Oldest pending age: scraped just before the test's own query.
    let age = sample(&parsed, "ipai_outbox_oldest_pending_age_seconds", &[]).unwrap();
    assert!(
        age >= 0.0 && age <= db_pending_age + 0.5 && db_pending_age - age < 10.0,
        "metric {age} vs database {db_pending_age}"
    );
    // Deliveries per channel and status.
    assert_eq!(
        sample(
            &parsed,
            "ipai_deliveries",
            &[("channel", "mattermost"), ("status", "sent")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &parsed,
            "ipai_deliveries",
            &[("channel", "email"), ("status", "failed")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&parsed, "ipai_outbox_stuck_processing", &[]),
        Some(0.0)
    );
}

/// The token of the first requeue form on a dashboard page.
fn form_token(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_needs_basic_auth_and_requeue_needs_its_csrf_token() {
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |_| {}).await;
    let dead = make_dead(&f, &fake, "d-1", &event("expense.rejected", "expense", "1")).await;
    let url = f.sys.url("/ops");

    // No credentials, a wrong password, a wrong user: 401 with a Basic challenge.
    for creds in [
        None,
        Some(("ops", "wrong")),
        Some(("admin", TEST_OPS_PASSWORD)),
    ] {
        let mut rq = f.http.get(&url);
        if let Some((u, p)) = creds {
            rq = rq.basic_auth(u, Some(p));
        }
        let resp = rq.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{creds:?}");
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }

    // A browser-like client: the right credentials, the session cookie sent back.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(&url)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let html = resp.text().await.unwrap();
    assert!(html.contains("data-testid=\"count-dead\">1<"), "{html}");
    assert!(html.contains(&format!("data-event-id=\"{dead}\"")));
    assert!(
        html.contains("boom: receiver refused &lt;b&gt;&quot;it&quot;&lt;/b&gt;"),
        "the last error is shown, escaped"
    );
    let token = form_token(&html);
    let requeue = f.sys.url(&format!("/ops/outbox/{dead}/requeue"));

    // Refused: no token, a forged token, another site's origin, no credentials.
    let attempts = [
        (None, None, true),
        (Some("1.deadbeef".to_string()), None, true),
        (Some(token.clone()), Some("https://evil.example"), true),
        (Some(token.clone()), None, false),
    ];
    for (tok, origin, authed) in attempts {
        let mut rq = client.post(&requeue).header("cookie", &cookie);
        if authed {
            rq = rq.basic_auth("ops", Some(TEST_OPS_PASSWORD));
        }
        if let Some(o) = origin {
            rq = rq
                .header("origin", o)
                .header("sec-fetch-site", "cross-site");
        }
        if let Some(t) = &tok {
            rq = rq.form(&[("csrf", t.as_str())]);
        }
        let status = rq.send().await.unwrap().status().as_u16();
        assert_eq!(status, if authed { 403 } else { 401 }, "{tok:?} {origin:?}");
        assert_eq!(f.db.status(&dead).await, "dead");
    }

    // Accepted: the token from the page, same origin.
    let resp = client
        .post(&requeue)
        .header("cookie", &cookie)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .header("origin", f.sys.base_url.clone())
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("/ops?requeued={dead}")
    );
    assert_eq!(f.db.status(&dead).await, "pending");
    let attempts: i32 =
        f.db.client
            .query_one(
                "SELECT attempts FROM integration.outbox WHERE id::text = $1",
                &[&dead],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(attempts, 0);
    // Requeueing it again changes nothing and says so.
    let resp = client
        .post(&requeue)
        .header("cookie", &cookie)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("/ops?unchanged={dead}")
    );
    // And the requeued event is delivered by the next run.
    fake.respond_with(200, "{}");
    f.dispatch().await;
    assert_eq!(f.db.status(&dead).await, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_headless_chromium_the_dashboard_shows_counts_and_chart_and_requeues_a_dead_letter() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let browser_dir = workspace_root().join("tests/browser");
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: `make setup` installs Debian's chromium"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: `make setup` runs npm ci in tests/browser"
    );
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |_| {}).await;
    // 3 expense, 2 asset, 1 finance delivered; 2 dead letters; 1 pending.
    for (i, (t, a)) in [
        ("expense.submitted", "expense"),
        ("expense.approved", "expense"),
        ("expense.paid", "expense"),
        ("asset.reserved", "asset_booking"),
        ("asset.checked_out", "asset_booking"),
        ("finance_task.created", "finance_task"),
    ]
    .iter()
    .enumerate()
    {
        f.ingest(&format!("b-{i}"), &event(t, a, &format!("{i}")))
            .await;
    }
    f.dispatch().await;
    let dead1 = make_dead(
        &f,
        &fake,
        "b-d1",
        &event("asset.overdue", "asset_booking", "d1"),
    )
    .await;
    let dead2 = make_dead(
        &f,
        &fake,
        "b-d2",
        &event("finance_task.filed", "finance_task", "d2"),
    )
    .await;
    f.ingest("b-p", &event("expense.submitted", "expense", "p"))
        .await;
    // History: 3 expense events logged 5 hours ago (event_log takes INSERTs; only UPDATE
    // and DELETE are refused), so the chart has a second, earlier bar.
    f.db.client
        .batch_execute(
            "INSERT INTO integration.event_log (id, seq, event_type, aggregate_type, aggregate_id, \
                    payload, idempotency_key, body_sha256, received_at) \
             SELECT gen_random_uuid(), 0, 'expense.paid', 'expense', 'h-' || g, '{}'::jsonb, \
                    'h-' || g, 'h', now() - interval '5 hours' FROM generate_series(1, 3) AS g",
        )
        .await
        .unwrap();
    let five_hours_ago = "SELECT to_char(date_bin('1 hour', now() - interval '5 hours', \
         timestamptz '2000-01-01 00:00:00+00') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00\"Z\"')";
    let hour_before: String =
        f.db.client
            .query_one(five_hours_ago, &[])
            .await
            .unwrap()
            .get(0);

    let shots = workspace_root().join(format!("target/browser/ops-{}", f.sys.runtime.name()));
    let out = tokio::task::spawn_blocking({
        let base = f.sys.base_url.clone();
        let shots = shots.clone();
        let id = dead1.clone();
        move || {
            Command::new("node")
                .arg("ops.mjs")
                .current_dir(&browser_dir)
                .env("OPS_URL", base)
                .env("OPS_PASSWORD", TEST_OPS_PASSWORD)
                .env("REQUEUE_ID", id)
                .env("SCREENSHOT_DIR", shots)
                .env("CHROMIUM", chromium)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        f.sys.output()
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let hour_after: String =
        f.db.client
            .query_one(five_hours_ago, &[])
            .await
            .unwrap()
            .get(0);
    let before = &r["before"];
    assert_eq!(r["title"], "IPAI ops");
    assert_eq!(
        before["counts"],
        json!({"pending": 1, "processing": 0, "failed": 0, "dead": 2, "done": 6})
    );
    // The chart: every event of the last 24 h in its domain's bars, drawn.
    assert_eq!(before["chart_visible"], true);
    assert_eq!(
        before["legend"],
        json!({"expense": 7, "asset": 3, "finance": 2, "other": 0})
    );
    let bars = before["bars"].as_array().unwrap();
    let total: i64 = bars.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 12, "{bars:?}");
    // The historical events are one expense bar of 3, five hours back (either hour if the
    // clock crossed an hour boundary during the test).
    let old_bar: Vec<&Value> = bars
        .iter()
        .filter(|b| b["hour"] == hour_before.as_str() || b["hour"] == hour_after.as_str())
        .collect();
    assert_eq!(old_bar.len(), 1, "{bars:?} {hour_before} {hour_after}");
    assert_eq!(
        (&old_bar[0]["domain"], &old_bar[0]["count"]),
        (&json!("expense"), &json!(3))
    );
    assert!(bars.iter().all(|b| b["height"].as_f64().unwrap() > 0.0));
    assert!(bars
        .iter()
        .all(|b| b["tooltip"].as_str().unwrap().contains("UTC")));
    let dead_ids: Vec<&str> = before["dead"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(before["dead_total"], 2);
    assert!(dead_ids.contains(&dead1.as_str()) && dead_ids.contains(&dead2.as_str()));
    assert!(before["dead"][0]["error"]
        .as_str()
        .unwrap()
        .contains("boom: receiver refused <b>\"it\"</b>"));

    // After the click: back on the dashboard, the event left the list, the counts moved.
    let after = &r["after"];
    assert_eq!(r["landed_status"], 200);
    assert!(after["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/ops?requeued={dead1}")));
    assert!(after["notice"].as_str().unwrap().contains("requeued"));
    let after_ids: Vec<&str> = after["dead"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(after_ids, vec![dead2.as_str()]);
    assert_eq!(after["dead_total"], 1);
    assert_eq!(after["counts"]["pending"], 2);
    assert_eq!(f.db.status(&dead1).await, "pending");
    assert_eq!(r["console_errors"], json!([]));
    for name in ["ops-before.png", "ops-after.png"] {
        let len = std::fs::metadata(shots.join(name)).map(|m| m.len()).ok();
        assert!(len.unwrap_or(0) > 10_000, "{name}: {len:?}");
    }
}
