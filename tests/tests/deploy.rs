//! Deployment end to end: the `make deploy` plan (`scripts/deploy.py`: every variable
//! passed, secrets redacted) and the Fermyon Cloud manifest it uploads, served with the
//! built components under the runtime `IPAI_RUNTIME` selects. Split out of `ops.rs` (#20)
//! so the deploy checks sit apart from the ops component's own.

use ipai_tests::quiet::*;
use ipai_tests::runtime::{TEST_DISPATCH_TOKEN, TEST_OPS_TOKEN};
use ipai_tests::{workspace_root, Fixture};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// Runs `scripts/deploy.py` with `args` and exactly the `SPIN_VARIABLE_*` in `vars`.
fn deploy_py(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("scripts/deploy.py"))
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPIN_VARIABLE_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
    }
    cmd.output().expect("python3 runs scripts/deploy.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_deploy_plans_a_cloud_deploy_with_every_variable_and_secrets_redacted() {
    let required = [
        (
            "db_url",
            "postgres://u:pw@db.example.supabase.co:5432/postgres?sslmode=require",
        ),
        ("db_host", "db.example.supabase.co:5432"),
        (
            "db_url_ingest",
            "postgres://ipai_ingest:pw@db.example.supabase.co:5432/postgres?sslmode=require",
        ),
        (
            "db_url_probe",
            "postgres://ipai_probe:pw@db.example.supabase.co:5432/postgres?sslmode=require",
        ),
        ("odoo_webhook_secret", "s3cret-odoo"),
        ("dispatch_token", "s3cret-dispatch"),
        ("handler_token", "s3cret-handler"),
        ("ops_token", "s3cret-ops-token"),
        ("mcp_token", "s3cret-mcp"),
        (
            "db_url_readonly",
            "postgres://integration_reader:pw@db.example.supabase.co:5432/postgres",
        ),
        ("ops_password", "s3cret-ops"),
        ("mattermost_action_secret", "s3cret-mm"),
        ("public_base_url", "https://ipai.example.fermyon.app"),
    ];
    // Without the required variables: refused, each named.
    let out = deploy_py(&["--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in [
        "db_url",
        "ops_password",
        "dispatch_token",
        "handler_token",
        "ops_token",
        "db_url_ingest",
        "db_url_probe",
    ] {
        assert!(err.contains(name), "{err}");
    }
    let out = deploy_py(&["--dry-run"], &required);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{plan}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(plan.contains("build --from"), "{plan}");
    assert!(plan.contains("cloud deploy --from"), "{plan}");
    assert!(plan.contains("target/deploy/spin.toml"), "{plan}");
    assert!(plan.contains("--variable service_chaining=off"), "{plan}");
    assert!(plan.contains("--variable public_base_url=https://ipai.example.fermyon.app"));
    assert!(plan.contains("--variable ops_password=***"), "{plan}");
    assert!(plan.contains("--variable handler_token=***"), "{plan}");
    assert!(plan.contains("--variable ops_token=***"), "{plan}");
    assert!(
        !plan.contains("s3cret") && !plan.contains(":pw@"),
        "secrets leak: {plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fermyon_cloud_manifest_runs_the_app_over_plain_http_without_cron() {
    // The manifest `make deploy` uploads: no cron trigger, no *.spin.internal hosts.
    let dir = workspace_root()
        .join("target/test-manifests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    let path = dir.join("spin.toml");
    let out = deploy_py(&["--manifest-only", path.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("[[trigger.cron]]"));
    assert!(!text.contains("\"http://expense-handler.spin.internal\""));
    // Without chaining the dispatcher reaches the handlers over HTTP: their private
    // routes (spin.toml) are public there, and only there.
    let shipped = std::fs::read_to_string(workspace_root().join("spin.toml")).unwrap();
    for domain in ["expense", "asset", "finance"] {
        let public = format!("route = \"/handlers/{domain}\"\ncomponent = \"{domain}-handler\"");
        let private = format!("route = {{ private = true }}\ncomponent = \"{domain}-handler\"");
        assert!(
            text.contains(&public),
            "{domain} has no public route:\n{text}"
        );
        assert!(
            shipped.contains(&private) && !shipped.contains(&public),
            "{domain}"
        );
    }
    assert!(!text.contains("private = true"), "{text}");
    // Served as Fermyon Cloud would (service_chaining=off; the ingest kick and the
    // dispatcher go over HTTP to the app's own URL), an event is delivered end to end.
    let f = Fixture::with_manifest(path, |v| {
        v.insert("service_chaining".into(), "off".into());
    })
    .await
    .unwrap();
    let id = f
        .ingest(
            "cloud-1",
            &event("finance_task.created", "finance_task", "T-cloud"),
        )
        .await;
    assert_eq!(
        f.wait_status(&id, "done", Duration::from_secs(20)).await,
        "done",
        "{}",
        f.sys.output()
    );
    let (status, body) = get_json(&f, "/health").await;
    assert_eq!(
        (status, &body["queue"]["pending"]),
        (200, &json!(0)),
        "{body}"
    );
    // Those public routes open only with handler_token (the dispatcher's own, above).
    for token in [None, Some(TEST_DISPATCH_TOKEN), Some(TEST_OPS_TOKEN)] {
        let mut req = f
            .http
            .post(f.sys.url("/handlers/finance"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{token:?}");
    }
}

#[test]
fn make_deploy_refuses_service_chaining_on_beside_the_public_handler_routes() {
    let vars = [
        ("db_url", "postgres://u:pw@db.example.com:5432/postgres"),
        (
            "db_url_ingest",
            "postgres://i:pw@db.example.com:5432/postgres",
        ),
        (
            "db_url_probe",
            "postgres://p:pw@db.example.com:5432/postgres",
        ),
        ("odoo_webhook_secret", "s"),
        ("dispatch_token", "d"),
        ("handler_token", "h"),
        ("ops_token", "o"),
        ("mcp_token", "m"),
        (
            "db_url_readonly",
            "postgres://r@db.example.com:5432/postgres",
        ),
        ("ops_password", "p"),
        ("mattermost_action_secret", "a"),
        ("service_chaining", "on"),
    ];
    let out = deploy_py(&["--dry-run"], &vars);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("service_chaining must be off"), "{err}");
    let out = deploy_py(&["--dry-run"], &vars[..vars.len() - 1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
