//! SPEC §15: `make up` never serves beyond this machine with the development secrets, and
//! the scripts take secrets from the environment or a file, never from their command line
//! (which any local user reads in `ps`).

use ipai_tests::runtime::TEST_SECRET;
use ipai_tests::{workspace_root, Fixture};
use std::process::{Command, Output};

/// Runs `script` from the workspace root with exactly the `SPIN_VARIABLE_*` of `vars`
/// (plus what `scripts/env.sh` defaults when the script sources it) and `env`.
fn run(script: &str, args: &[&str], vars: &[(&str, &str)], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(workspace_root().join(script));
    cmd.current_dir(workspace_root()).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPIN_VARIABLE_") || k == "LISTEN" || k == "IPAI_SECRET_FILE" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in vars {
        cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("{script} runs: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Secrets of one's own for every variable scripts/env.sh gives a development default.
const OWN_SECRETS: &[(&str, &str)] = &[
    ("odoo_webhook_secret", "own-odoo-secret-7f3a"),
    ("dispatch_token", "own-dispatch-token-91c2"),
    ("ops_password", "own-ops-password-55d0"),
    ("mcp_token", "own-mcp-token-0b8e"),
    ("mattermost_action_secret", "own-action-secret-c4a1"),
    ("handler_token", "own-handler-token-2e6f"),
    ("ops_token", "own-ops-token-8d17"),
    (
        "db_url_probe",
        "postgres://ipai_probe@127.0.0.1:5432/ipai?sslmode=disable",
    ),
];

#[test]
fn make_up_refuses_a_public_listen_with_development_secrets_and_names_them() {
    // A database name nobody has: `make up` must stop before it migrates (creates) it.
    let db = format!("ipai_never_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable");
    let out = run(
        "scripts/up.sh",
        &[],
        &[],
        &[("LISTEN", "0.0.0.0:3999"), ("DATABASE_URL", &url)],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refusing to listen on 0.0.0.0:3999"), "{err}");
    for name in [
        "SPIN_VARIABLE_ODOO_WEBHOOK_SECRET",
        "SPIN_VARIABLE_DISPATCH_TOKEN",
        "SPIN_VARIABLE_OPS_PASSWORD",
        "SPIN_VARIABLE_MCP_TOKEN",
        "SPIN_VARIABLE_MATTERMOST_ACTION_SECRET",
        "SPIN_VARIABLE_HANDLER_TOKEN",
        "SPIN_VARIABLE_OPS_TOKEN",
    ] {
        assert!(err.contains(name), "{name} not named: {err}");
    }
    let listed = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg(format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{db}'"
        ))
        .output()
        .expect("psql runs");
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "0");
}

#[test]
fn loopback_listens_keep_the_development_secrets() {
    for listen in [
        "127.0.0.1:3000",
        "127.0.0.2:8080",
        "localhost:3000",
        "[::1]:3000",
    ] {
        let out = Command::new("bash")
            .current_dir(workspace_root())
            .args(["-c", ". scripts/env.sh && scripts/refuse-dev-secrets.sh"])
            .env("LISTEN", listen)
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{listen}: {}", stderr(&out));
    }
}

#[test]
fn a_public_listen_needs_every_secret_changed_and_names_the_one_left() {
    for listen in ["0.0.0.0:3000", "[::]:3000", "10.1.2.3:80"] {
        let out = run(
            "scripts/refuse-dev-secrets.sh",
            &[],
            OWN_SECRETS,
            &[("LISTEN", listen)],
        );
        assert!(out.status.success(), "{listen}: {}", stderr(&out));
    }
    let mut one_left: Vec<(&str, &str)> = OWN_SECRETS.to_vec();
    one_left[3] = ("mcp_token", "dev-mcp-token-change-me");
    let out = run(
        "scripts/refuse-dev-secrets.sh",
        &[],
        &one_left,
        &[("LISTEN", "0.0.0.0:3000")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("SPIN_VARIABLE_MCP_TOKEN"), "{err}");
    assert!(!err.contains("SPIN_VARIABLE_DISPATCH_TOKEN"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_event_signs_with_a_secret_from_a_file_and_refuses_one_on_its_command_line() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let dir = std::env::temp_dir().join(format!("ipai-secret-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("odoo_webhook_secret");
    // The rotation list as the app holds it: its first entry signs.
    std::fs::write(&file, TEST_SECRET).unwrap();

    // On the command line: refused before anything is sent.
    let out = run(
        "scripts/send-test-event.sh",
        &[&url, "test-secret"],
        &[],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("IPAI_SECRET_FILE"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.db.count("outbox").await, 0);

    // From a file: accepted.
    let file_str = file.to_string_lossy().into_owned();
    let out = run(
        "scripts/send-test-event.sh",
        &[&url],
        &[],
        &[("IPAI_SECRET_FILE", &file_str)],
    );
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(answer.contains("\"queued\""), "{answer}");
    assert_eq!(f.db.count("outbox").await, 1);

    // A file that is not there: a clear error, nothing sent.
    let out = run(
        "scripts/send-test-event.sh",
        &[&url],
        &[],
        &[("IPAI_SECRET_FILE", "/nonexistent/secret")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a readable file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.db.count("outbox").await, 1);
    std::fs::remove_dir_all(&dir).ok();
}
