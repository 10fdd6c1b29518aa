//! Issue #19 end to end: alerts that find the operator, with the built components under the
//! runtime `IPAI_RUNTIME` selects, each test on a fresh database, the shipped manifest with
//! every default on (ingest kick, dispatch-cron every 5 s, which evaluates the alerts after
//! each run), the handlers' outside services as loopback fakes (tests/support/services.rs)
//! and the alert channel as a loopback Mattermost webhook whose every request is checked.
//!
//! Conditions are produced the way they happen: a handler missing a variable answers
//! `misconfigured`, an email API refusing the key, an event running out of attempts
//! (`max_attempts` lowered by SQL), a queue blocked behind a failing event (its timestamps
//! moved back by SQL to simulate time). Evaluations come from the cron tick and, to be
//! quick, from `POST /ops/alerts/evaluate` on demand; both may overlap, as in production.

use ipai_tests::fake_http::{FakeServer, Recorded};
use ipai_tests::runtime::{TEST_OPS_PASSWORD, TEST_OPS_TOKEN};
use ipai_tests::services::{self, Services};
use ipai_tests::Fixture;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ALERT_HOOK: &str = "/hooks/ops-alerts-7fq2";
const OPS_EMAILS: &str = "oncall@example.com, finance.ops@example.com";

struct World {
    f: Fixture,
    svc: Services,
    channel: FakeServer,
}

async fn world(edit: impl FnOnce(&mut BTreeMap<String, String>)) -> World {
    let svc = Services::start().await;
    let channel = FakeServer::start().await;
    channel.respond_with(200, "ok");
    let url = channel.url.clone();
    let f = Fixture::with(|v| {
        svc.configure(v);
        v.insert(
            "alert_mattermost_webhook_url".into(),
            format!("{url}{ALERT_HOOK}"),
        );
        v.insert("alert_mattermost_origin".into(), url);
        v.insert("ops_alert_emails".into(), OPS_EMAILS.into());
        edit(v);
    })
    .await
    .expect("system starts");
    World { f, svc, channel }
}

/// The calendar id unset: `asset.reserved` fails with the asset handler's 500
/// `misconfigured` (its email is still sent, once).
fn asset_handler_misconfigured(v: &mut BTreeMap<String, String>) {
    v.insert("google_calendar_id".into(), String::new());
}

fn booking(event_type: &str, id: &str) -> Value {
    let mut e = ipai_cli::samples::sample(event_type).expect("sample");
    e["aggregate_id"] = json!(id);
    e["payload"]["booking_id"] = json!(id.parse::<i64>().unwrap_or(1));
    e
}

/// Checks the exact shape of one alert post at the channel; returns its body.
fn channel_post(r: &Recorded) -> Value {
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", ALERT_HOOK));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json();
    let text = b["text"].as_str().expect("text");
    assert!(
        text.starts_with("[IPAI] Alert: ")
            || text.starts_with("[IPAI] Still open: ")
            || text.starts_with("[IPAI] Resolved: "),
        "{b}"
    );
    assert!(b.get("channel").is_none(), "the webhook's own channel: {b}");
    let att = &b["attachments"][0];
    assert_eq!(att["fallback"], b["text"]);
    assert!(
        att["title_link"].as_str().expect("link").ends_with("/ops"),
        "{b}"
    );
    let fields = att["fields"].as_array().expect("fields");
    for name in ["Condition", "Open since", "Events", "Fix"] {
        assert!(
            fields.iter().any(|f| f["title"] == name
                && f["value"].as_str().is_some_and(|v| !v.is_empty())
                && f["short"].is_boolean()),
            "field {name} missing in {b}"
        );
    }
    b
}

fn field<'a>(b: &'a Value, name: &str) -> &'a str {
    b["attachments"][0]["fields"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["title"] == name))
        .and_then(|f| f["value"].as_str())
        .unwrap_or("")
}

/// The channel's posts about `condition`: (kind word, body), where kind is `Alert`,
/// `Still open` or `Resolved`.
fn posts_about(w: &World, condition: &str) -> Vec<(String, Value)> {
    w.channel
        .requests()
        .iter()
        .map(channel_post)
        .filter(|b| field(b, "Condition") == condition)
        .map(|b| {
            let text = b["text"].as_str().unwrap_or("");
            let kind = text
                .trim_start_matches("[IPAI] ")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            (kind, b)
        })
        .collect()
}

fn kinds(posts: &[(String, Value)]) -> Vec<&str> {
    posts.iter().map(|(k, _)| k.as_str()).collect()
}

/// Alert emails (subject `[IPAI] …`) at the email API fake, shape checked.
fn alert_emails(w: &World, condition: &str) -> Vec<Value> {
    w.svc
        .email
        .requests()
        .iter()
        .filter_map(|r| {
            let b = r.json();
            if !b["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("[IPAI] "))
            {
                return None;
            }
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/emails"));
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {}", services::EMAIL_KEY).as_str())
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert!(r
                .header("idempotency-key")
                .is_some_and(|k| k.starts_with("ipai/alert-")));
            assert_eq!(b["from"], services::EMAIL_FROM);
            assert_eq!(
                b["to"],
                json!(["oncall@example.com", "finance.ops@example.com"])
            );
            assert!(b["html"].as_str().is_some_and(|h| h.contains("<table")));
            let text = b["text"].as_str().unwrap_or("");
            text.contains(&format!("Condition: {condition}\n"))
                .then_some(b)
        })
        .collect()
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for `n` posts about `condition`.
async fn wait_posts(w: &World, condition: &str, n: usize) -> Vec<(String, Value)> {
    wait_until(
        &format!("{n} post(s) about {condition}"),
        Duration::from_secs(40),
        || async { posts_about(w, condition).len() >= n },
    )
    .await;
    posts_about(w, condition)
}

/// Lets at least one cron tick (every 5 s: dispatch, then alerts) run.
async fn a_tick_passes(w: &World) {
    tokio::time::sleep(Duration::from_secs(6)).await;
    w.f.evaluate_alerts().await;
}

/// (id, pending_message, last_send_error, reminders, events) of the open alert.
async fn open_row(
    f: &Fixture,
    condition: &str,
) -> Option<(i64, Option<String>, Option<String>, i32, i64)> {
    f.db.client
        .query_opt(
            "SELECT id, pending_message, last_send_error, reminders, events FROM integration.alerts \
              WHERE condition = $1 AND resolved_at IS NULL",
            &[&condition],
        )
        .await
        .expect("alerts row")
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
}

async fn rows_of(f: &Fixture, condition: &str) -> i64 {
    f.db.client
        .query_one(
            "SELECT count(*) FROM integration.alerts WHERE condition = $1",
            &[&condition],
        )
        .await
        .expect("count")
        .get(0)
}

async fn metric(f: &Fixture, condition: &str) -> Option<String> {
    let text = f
        .http
        .get(f.sys.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    let prefix = format!("ipai_alerts_open{{condition=\"{condition}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

/// Runs the built `ipai` binary; returns its stdout (it must succeed).
async fn ipai(args: &[&str]) -> String {
    let bin = std::env::var("IPAI_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| ipai_tests::workspace_root().join("target/release/ipai"));
    let out = tokio::process::Command::new(&bin)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SPIN_VARIABLE_OPS_TOKEN")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release -p ipai-cli)", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ipai {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misconfigured_handler_and_dead_letters_open_one_alert_each_survive_a_restart_and_resolve_once(
) {
    let mut w = world(asset_handler_misconfigured).await;
    let id =
        w.f.ingest("alerts-reserved-1", &booking("asset.reserved", "901"))
            .await;
    assert_eq!(
        w.f.wait_status(&id, "failed", Duration::from_secs(20))
            .await,
        "failed"
    );
    // A second event with the same error class: still one alert.
    let id2 =
        w.f.ingest("alerts-reserved-2", &booking("asset.reserved", "902"))
            .await;
    assert_eq!(
        w.f.wait_status(&id2, "failed", Duration::from_secs(20))
            .await,
        "failed"
    );

    let cond = "handler_misconfigured:asset";
    let first = w.f.evaluate_alerts().await;
    assert!(first["open"].as_i64().unwrap_or(0) >= 1, "{first}");
    let posts = wait_posts(&w, cond, 1).await;
    assert_eq!(kinds(&posts), ["Alert"], "{}", w.channel.received());
    let b = &posts[0].1;
    assert_eq!(
        b["text"],
        "[IPAI] Alert: The asset handler is misconfigured"
    );
    // The alert opens at the first evaluation that sees a failure: a cron tick may come
    // between the two failures, so its post counts one or both; the open row counts both.
    assert!(["1", "2"].contains(&field(b, "Events")), "{b}");
    wait_until(
        "the misconfigured alert counts both",
        Duration::from_secs(20),
        || async { open_row(&w.f, cond).await.is_some_and(|r| r.4 == 2) },
    )
    .await;
    assert!(field(b, "Detail").contains("google_calendar_id"), "{b}");
    assert!(field(b, "Fix").contains("Set the variable"), "{b}");
    wait_until("the alert email", Duration::from_secs(20), || async {
        alert_emails(&w, cond).len() == 1
    })
    .await;

    // Make both events dead: one attempt allowed, due now; the cron tick claims them.
    w.f.db
        .client
        .execute(
            "UPDATE integration.outbox SET max_attempts = 1, next_attempt_at = now() \
              WHERE id::text = ANY($1)",
            &[&vec![id.clone(), id2.clone()]],
        )
        .await
        .expect("lower max_attempts");
    assert_eq!(
        w.f.wait_status(&id, "dead", Duration::from_secs(30)).await,
        "dead"
    );
    assert_eq!(
        w.f.wait_status(&id2, "dead", Duration::from_secs(30)).await,
        "dead"
    );
    let dead = wait_posts(&w, "dead_letters", 1).await;
    wait_until(
        "dead_letters counts both",
        Duration::from_secs(20),
        || async {
            open_row(&w.f, "dead_letters")
                .await
                .is_some_and(|r| r.4 == 2)
        },
    )
    .await;
    assert!(dead[0].1["text"]
        .as_str()
        .unwrap_or("")
        .contains("Events went dead"));
    assert!(field(&dead[0].1, "Fix").contains("ipai dlq requeue --all"));

    // Repeats (on demand and a cron tick) neither open another row nor send again.
    w.f.evaluate_alerts().await;
    w.f.evaluate_alerts().await;
    a_tick_passes(&w).await;
    assert_eq!(
        kinds(&posts_about(&w, cond)),
        ["Alert"],
        "{}",
        w.channel.received()
    );
    assert_eq!(
        kinds(&posts_about(&w, "dead_letters")),
        ["Alert"],
        "{}",
        w.channel.received()
    );
    assert_eq!(rows_of(&w.f, cond).await, 1);
    assert_eq!(rows_of(&w.f, "dead_letters").await, 1);
    assert_eq!(
        alert_emails(&w, cond).len(),
        1,
        "{}",
        w.svc.email.received()
    );

    // Visible: /metrics, /ops (top of the page), MCP list_alerts.
    assert_eq!(metric(&w.f, "dead_letters").await.as_deref(), Some("1"));
    assert_eq!(metric(&w.f, cond).await.as_deref(), Some("1"));
    assert_eq!(metric(&w.f, "queue_stalled").await.as_deref(), Some("0"));
    let page =
        w.f.http
            .get(w.f.sys.url("/ops"))
            .basic_auth("ops", Some(TEST_OPS_PASSWORD))
            .send()
            .await
            .expect("GET /ops")
            .text()
            .await
            .expect("page");
    let alerts_at = page.find("id=\"alerts\"").expect("alerts section on /ops");
    let queue_at = page.find("id=\"queue\"").expect("queue section");
    assert!(alerts_at < queue_at, "alerts come first");
    assert!(page.contains("data-condition=\"dead_letters\""));
    let listed = w.f.mcp_tool("list_alerts", json!({})).await;
    let conditions: Vec<&str> = listed["open"]
        .as_array()
        .expect("open")
        .iter()
        .filter_map(|a| a["condition"].as_str())
        .collect();
    assert!(
        conditions.contains(&"dead_letters") && conditions.contains(&cond),
        "{listed}"
    );

    // The CLI: `ipai status` lists them; `ipai alerts --evaluate` evaluates through the app.
    let status = ipai(&["status", "--database-url", &w.f.db.url]).await;
    assert!(status.contains("alerts: 2 open"), "{status}");
    assert!(
        status.contains("dead_letters") && status.contains(cond),
        "{status}"
    );
    assert!(status.contains("ipai dlq requeue --all"), "{status}");
    let listed = ipai(&[
        "alerts",
        "--json",
        "--database-url",
        &w.f.db.url,
        "--evaluate",
        &w.f.sys.url(""),
        "--token",
        TEST_OPS_TOKEN,
    ])
    .await;
    let listed: Value = serde_json::from_str(&listed).expect("ipai alerts --json");
    assert_eq!(listed["open"].as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed["evaluation"]["open"], 2, "{listed}");

    // Restart (SIGKILL, a new runtime on the same database): the alerts are still open,
    // the same rows, and nothing is sent again. The operator fixes the variable.
    let before = open_row(&w.f, cond).await.expect("open").0;
    w.f.restart_with(|v| {
        v.insert("google_calendar_id".into(), services::CALENDAR_ID.into());
    })
    .await
    .expect("restart");
    w.f.evaluate_alerts().await;
    assert_eq!(open_row(&w.f, cond).await.expect("still open").0, before);
    assert_eq!(
        kinds(&posts_about(&w, cond)),
        ["Alert"],
        "{}",
        w.channel.received()
    );

    // Replay the dead letters (what `ipai dlq requeue --all` does): they are delivered,
    // both alerts resolve, with one resolved message each.
    for i in [&id, &id2] {
        let ok: bool =
            w.f.db
                .client
                .query_one("SELECT integration.requeue_outbox($1::text::uuid)", &[i])
                .await
                .expect("requeue")
                .get(0);
        assert!(ok);
    }
    assert_eq!(
        w.f.wait_status(&id, "done", Duration::from_secs(30)).await,
        "done"
    );
    assert_eq!(
        w.f.wait_status(&id2, "done", Duration::from_secs(30)).await,
        "done"
    );
    let resolved = wait_posts(&w, cond, 2).await;
    assert_eq!(
        kinds(&resolved),
        ["Alert", "Resolved"],
        "{}",
        w.channel.received()
    );
    assert!(!field(&resolved[1].1, "Resolved at").is_empty());
    let dead = wait_posts(&w, "dead_letters", 2).await;
    assert_eq!(
        kinds(&dead),
        ["Alert", "Resolved"],
        "{}",
        w.channel.received()
    );
    a_tick_passes(&w).await;
    assert_eq!(
        kinds(&posts_about(&w, cond)),
        ["Alert", "Resolved"],
        "{}",
        w.channel.received()
    );
    assert_eq!(
        kinds(&posts_about(&w, "dead_letters")),
        ["Alert", "Resolved"],
        "{}",
        w.channel.received()
    );
    assert_eq!(
        alert_emails(&w, cond).len(),
        2,
        "{}",
        w.svc.email.received()
    );
    assert_eq!(metric(&w.f, "dead_letters").await.as_deref(), Some("0"));
    assert_eq!(metric(&w.f, cond).await, None);
    let listed =
        w.f.mcp_tool("list_alerts", json!({"include_resolved": true}))
            .await;
    assert_eq!(listed["open"], json!([]));
    assert!(
        listed["resolved"].as_array().is_some_and(|r| r.len() == 2),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_queue_and_degraded_health_open_one_alert_each() {
    let w = world(asset_handler_misconfigured).await;
    // A failing event blocks the next one of its aggregate (per-aggregate FIFO).
    let a =
        w.f.ingest("alerts-stall-a", &booking("asset.reserved", "911"))
            .await;
    assert_eq!(
        w.f.wait_status(&a, "failed", Duration::from_secs(20)).await,
        "failed"
    );
    let b =
        w.f.ingest("alerts-stall-b", &booking("asset.checked_out", "911"))
            .await;
    // Simulate time: the blocked event has waited 2 h, due for 1 h.
    w.f.db
        .client
        .execute(
            "UPDATE integration.outbox SET created_at = now() - interval '2 hours', \
                    next_attempt_at = now() - interval '1 hour' WHERE id::text = $1",
            &[&b],
        )
        .await
        .expect("backdate");
    assert_eq!(w.f.db.status(&b).await, "pending");
    let health =
        w.f.http
            .get(w.f.sys.url("/health"))
            .send()
            .await
            .expect("health");
    assert_eq!(health.status().as_u16(), 503);

    let e = w.f.evaluate_alerts().await;
    let opened: Vec<&str> = e["opened"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // (The cron tick may have opened them first.)
    assert!(e["open"].as_i64().unwrap_or(0) >= 3, "{e} {opened:?}");
    for cond in ["queue_stalled", "health_degraded"] {
        let posts = wait_posts(&w, cond, 1).await;
        assert_eq!(kinds(&posts), ["Alert"], "{cond}\n{}", w.channel.received());
        assert_eq!(field(&posts[0].1, "Events"), "1", "{cond}");
        assert!(field(&posts[0].1, "Fix").contains("/dispatch"), "{cond}");
        assert!(field(&posts[0].1, "Detail").contains(&b) || cond == "health_degraded");
    }
    a_tick_passes(&w).await;
    for cond in ["queue_stalled", "health_degraded"] {
        assert_eq!(
            kinds(&posts_about(&w, cond)),
            ["Alert"],
            "{cond}\n{}",
            w.channel.received()
        );
        assert_eq!(rows_of(&w.f, cond).await, 1);
        assert_eq!(metric(&w.f, cond).await.as_deref(), Some("1"));
        assert_eq!(
            alert_emails(&w, cond).len(),
            1,
            "{cond}\n{}",
            w.svc.email.received()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_are_one_alert_per_class_not_per_event() {
    // Alerts only to Mattermost here: the email API fake refuses the key for everyone.
    let w = world(|v| {
        v.remove("ops_alert_emails");
    })
    .await;
    w.svc.email.respond_with(
        403,
        r#"{"statusCode":403,"message":"API key is invalid","name":"invalid_api_key"}"#,
    );
    let mut ids = Vec::new();
    for n in ["921", "922", "923"] {
        ids.push(
            w.f.ingest(&format!("alerts-cred-{n}"), &booking("asset.overdue", n))
                .await,
        );
    }
    for id in &ids {
        assert_eq!(
            w.f.wait_status(id, "failed", Duration::from_secs(20)).await,
            "failed"
        );
    }
    w.f.evaluate_alerts().await;
    let cond = "credentials_rejected:email";
    let posts = wait_posts(&w, cond, 1).await;
    assert_eq!(
        posts[0].1["text"],
        "[IPAI] Alert: The email API rejected the bus's credentials"
    );
    assert_eq!(field(&posts[0].1, "Events"), "3");
    assert!(field(&posts[0].1, "Fix").contains("email_api_key"));
    a_tick_passes(&w).await;
    assert_eq!(
        kinds(&posts_about(&w, cond)),
        ["Alert"],
        "{}",
        w.channel.received()
    );
    assert_eq!(rows_of(&w.f, cond).await, 1);
    // Not also reported as a misconfigured handler.
    assert_eq!(rows_of(&w.f, "handler_misconfigured:asset").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reminder_comes_after_the_interval_while_the_alert_stays_open() {
    let w = world(|v| {
        asset_handler_misconfigured(v);
        v.insert("alert_reminder_interval_s".into(), "3".into());
    })
    .await;
    let id =
        w.f.ingest("alerts-remind", &booking("asset.reserved", "931"))
            .await;
    assert_eq!(
        w.f.wait_status(&id, "failed", Duration::from_secs(20))
            .await,
        "failed"
    );
    w.f.evaluate_alerts().await;
    let cond = "handler_misconfigured:asset";
    wait_posts(&w, cond, 1).await;
    // Right after the message nothing more comes before the interval has passed.
    w.f.evaluate_alerts().await;
    assert_eq!(
        kinds(&posts_about(&w, cond)),
        ["Alert"],
        "{}",
        w.channel.received()
    );
    let posts = wait_posts(&w, cond, 2).await;
    assert_eq!(
        kinds(&posts)[..2],
        ["Alert", "Still open"],
        "{}",
        w.channel.received()
    );
    assert!(posts[1].1["text"]
        .as_str()
        .unwrap_or("")
        .starts_with("[IPAI] Still open: The asset handler"));
    let gap: f64 = w
        .f
        .db
        .value(
            "SELECT extract(epoch FROM notified_at - first_seen_at)::float8 FROM integration.alerts \
              WHERE condition = 'handler_misconfigured:asset'",
        )
        .await;
    assert!(gap >= 3.0, "the reminder came {gap} s after opening");
    assert!(open_row(&w.f, cond).await.expect("open").3 >= 1);
    wait_until("a reminder email", Duration::from_secs(20), || async {
        alert_emails(&w, cond).len() >= 2
    })
    .await;
    let emails = alert_emails(&w, cond);
    assert!(emails[1]["subject"]
        .as_str()
        .unwrap_or("")
        .starts_with("[IPAI] Still open: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_alert_channel_does_not_disturb_delivery_and_the_send_is_retried() {
    let w = world(asset_handler_misconfigured).await;
    w.channel.respond_with(500, "channel down");
    let id =
        w.f.ingest("alerts-down-1", &booking("asset.reserved", "941"))
            .await;
    assert_eq!(
        w.f.wait_status(&id, "failed", Duration::from_secs(20))
            .await,
        "failed"
    );
    let cond = "handler_misconfigured:asset";
    w.f.evaluate_alerts().await;
    // The failed send is recorded and retried on the next tick(s).
    wait_until(
        "two attempts at the channel",
        Duration::from_secs(30),
        || async { posts_about(&w, cond).len() >= 2 },
    )
    .await;
    let row = open_row(&w.f, cond).await.expect("open");
    assert_eq!(row.1.as_deref(), Some("opened"), "still owed");
    assert!(
        row.2.as_deref().unwrap_or("").contains("HTTP 500"),
        "{row:?}"
    );
    // Email, the other destination, got it exactly once meanwhile.
    assert_eq!(
        alert_emails(&w, cond).len(),
        1,
        "{}",
        w.svc.email.received()
    );

    // Delivery is not disturbed: new events go through at once (kick) and by cron.
    let ok1 =
        w.f.ingest("alerts-down-ok1", &booking("asset.checked_in", "942"))
            .await;
    let task = ipai_cli::samples::sample("finance_task.created").expect("sample");
    let ok2 = w.f.ingest("alerts-down-ok2", &task).await;
    assert_eq!(
        w.f.wait_status(&ok1, "done", Duration::from_secs(10)).await,
        "done"
    );
    assert_eq!(
        w.f.wait_status(&ok2, "done", Duration::from_secs(10)).await,
        "done"
    );

    // The channel comes back: the next tick sends the owed message once, then nothing.
    let attempts = posts_about(&w, cond).len();
    w.channel.respond_with(200, "ok");
    wait_until(
        "the owed message delivered",
        Duration::from_secs(30),
        || async { open_row(&w.f, cond).await.is_some_and(|r| r.1.is_none()) },
    )
    .await;
    let settled = posts_about(&w, cond).len();
    // (A request in flight while the channel came back may have been the one.)
    assert!(
        settled == attempts || settled == attempts + 1,
        "{attempts} then {settled}"
    );
    a_tick_passes(&w).await;
    assert_eq!(
        posts_about(&w, cond).len(),
        settled,
        "nothing more once delivered"
    );
    assert_eq!(
        alert_emails(&w, cond).len(),
        1,
        "email is not sent again\n{}",
        w.svc.email.received()
    );
}
