//! The observed behaviour of Spin 4.0.2 and its cron plugin (shared/TOOLCHAIN.md), pinned
//! on whichever runtime `IPAI_RUNTIME` selects, so the local host cannot drift from Spin.

use ipai_tests::runtime::default_variables;
use ipai_tests::{manifest, signed_request, Fixture, Runtime, System, TestDb};
use serde_json::json;
use std::time::Duration;

/// An event the real expense handler completes without outside services (a dashboard write).
fn expense() -> serde_json::Value {
    json!({"event_type": "expense.paid", "aggregate_type": "expense", "aggregate_id": "1",
           "payload": {"status": "done"}})
}

/// Starts `manifest` with `vars` and expects the runtime to refuse: (exit code, output).
async fn refused(
    manifest: std::path::PathBuf,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> (i32, String) {
    let db = TestDb::new().await.unwrap();
    let mut vars = default_variables(&db);
    edit(&mut vars);
    tokio::task::spawn_blocking(move || System::expect_exit(Runtime::from_env(), &vars, &manifest))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seven_field_cron_expression_stops_start_up_with_parse_schedule() {
    let m = manifest::variant(|t| {
        t.replace(
            r#"cron_expression = "*/5 * * * * *""#,
            r#"cron_expression = "*/5 * * * * * *""#,
        )
    });
    let (code, out) = refused(m, |_| {}).await;
    assert_ne!(code, 0);
    assert!(out.contains("ParseSchedule"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_component_listing_a_spin_internal_host_is_refused() {
    let m = manifest::variant(|t| {
        t.replace(
            r#"allowed_outbound_hosts = ["{{ public_base_url }}"]"#,
            r#"allowed_outbound_hosts = ["{{ public_base_url }}", "http://dispatcher.spin.internal"]"#,
        )
    });
    let (code, out) = refused(m, |_| {}).await;
    assert_ne!(code, 0);
    assert!(out.contains("local_service_chaining"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_variable_refuses_to_start_naming_it() {
    let m = ipai_tests::workspace_root().join("spin.toml");
    let (code, out) = refused(m, |v| {
        v.remove("dispatch_token");
    })
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no provider resolved required variable(s)") && out.contains("dispatch_token"),
        "{out}"
    );
}

/// Starts the app with `db_url` rewritten by `edit`, posts a signed event and expects a
/// 503 with nothing stored; returns what the runtime logged.
async fn ingest_refused_by_the_database(edit: impl Fn(&str) -> String) -> String {
    let f = Fixture::with(|v| {
        for name in ["db_url", "db_url_ingest"] {
            let url = edit(&v[name]);
            v.insert(name.into(), url);
        }
    })
    .await
    .unwrap();
    let resp = signed_request("test-secret", "k", &expense())
        .post(&f.http, &f.sys.url("/odoo-webhook"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(f.db.count("outbox").await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.sys.output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sslmode_disable_the_local_self_signed_server_is_refused_as_503() {
    let out = ingest_refused_by_the_database(|url| url.replace("?sslmode=disable", "")).await;
    assert!(
        out.to_lowercase().contains("certificate"),
        "the log should name the TLS failure:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_hosts_match_literally_so_localhost_is_denied_when_127_0_0_1_is_allowed() {
    let out = ingest_refused_by_the_database(|url| url.replace("127.0.0.1", "localhost")).await;
    assert!(
        out.contains("address postgres://localhost:5432 is not permitted"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_route_is_404_from_outside_yet_reachable_by_chaining() {
    // The shipped spin.toml: the handlers' routes are private.
    let f = Fixture::new().await.unwrap();
    let r = f
        .http
        .post(f.sys.url("/handlers/expense"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(
        r.bytes().await.unwrap().is_empty(),
        "Spin's 404 has an empty body"
    );
    let id = f.ingest("k-private", &expense()).await;
    assert_eq!(
        f.wait_status(&id, "done", Duration::from_secs(15)).await,
        "done",
        "{}",
        f.sys.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_an_empty_404_and_the_well_known_health_answers_ok() {
    let f = Fixture::new().await.unwrap();
    let r = f.http.get(f.sys.url("/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = f
        .http
        .get(f.sys.url("/.well-known/spin/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_reached_by_service_chaining_sees_spins_chaining_headers() {
    // The expense handler is swapped for a fixture that answers 418 with the spin-* headers
    // it received; the dispatcher (chaining) stores that answer as the event's last_error.
    let m = manifest::variant(|t| {
        t.replace("release/expense_handler.wasm", "release/echo_headers.wasm")
    });
    let f = Fixture::with_manifest(m, |_| {}).await.unwrap();
    let id = f.ingest("k-chain", &expense()).await;
    assert_eq!(
        f.wait_status(&id, "failed", Duration::from_secs(15)).await,
        "failed",
        "{}",
        f.sys.output()
    );
    let err: String =
        f.db.client
            .query_one(
                "SELECT last_error FROM integration.outbox WHERE id::text = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
    let json = err
        .strip_prefix("HTTP 418: ")
        .unwrap_or_else(|| panic!("unexpected error {err}"));
    let seen: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        seen["spin-full-url"], "http://localhost/handlers/expense",
        "{seen}"
    );
    assert_eq!(seen["spin-path-info"], "/handlers/expense", "{seen}");
    assert_eq!(seen["spin-matched-route"], "/...", "{seen}");
    assert_eq!(seen["spin-client-addr"], "0.0.0.0:0", "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_under_a_timeout_leave_no_pollable_behind_in_the_instance() {
    // The MCP component is swapped for a fixture that runs 200 one-millisecond waits, each
    // under a 60 s `ipai_spin::timer::timeout` (what a dispatcher run does per delivery),
    // and reports the handle number a new pollable gets before and after. Every pollable
    // left registered with spin-sdk's executor keeps its handle, so `after` would be at
    // least 200 above `before`; freed handles are reused, so it stays close.
    let m = manifest::variant(|t| t.replace("release/mcp.wasm", "release/timer_probe.wasm"));
    let f = Fixture::with_manifest(m, |_| {}).await.unwrap();
    let r = f.http.get(f.sys.url("/mcp?n=200")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["n"], 200, "{seen}");
    let (before, after) = (
        seen["before"].as_i64().unwrap(),
        seen["after"].as_i64().unwrap(),
    );
    assert!(
        after - before < 10,
        "{} pollables outlived their waits: {seen}",
        after - before
    );
}
