//! Runs the Python helpers of `tests/python/` (the Odoo addon's sender, the official
//! `standardwebhooks` library) from the end-to-end tests. `PYTHON` overrides `python3`.

#![allow(dead_code)]

use serde_json::Value;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// `python3 tests/python/<script> <args…>` with `stdin`; its stdout parsed as JSON.
/// Panics with the script's stderr when it fails.
pub async fn run(script: &str, args: &[&str], stdin: &str) -> Value {
    let root = ipai_tests::workspace_root();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = tokio::process::Command::new(&python)
        .arg(root.join("tests/python").join(script))
        .args(args)
        .current_dir(root.join("tests/python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("python helper timed out")
        .expect("python helper output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{script}: not JSON ({e}): {stdout}"))
}
