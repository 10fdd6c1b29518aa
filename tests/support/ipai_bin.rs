//! The built `ipai` command (target/release/ipai, or `IPAI_BIN`) run as an operator would,
//! with only the environment a test gives it (none of the caller's `SPIN_VARIABLE_`/`IPAI_`
//! variables or `DATABASE_URL` leak in).

use std::process::Output;

/// Runs `ipai` with `args` and `env` only; fails the test after 120 s.
pub async fn ipai(args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = std::env::var("IPAI_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| crate::workspace_root().join("target/release/ipai"));
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release -p ipai-cli",
        bin.display()
    );
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(args).kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPIN_VARIABLE_")
            || k.starts_with("IPAI_")
            || [
                "DATABASE_URL",
                "ODOO_WEBHOOK_SECRET",
                "SUPABASE_FUNCTION_URL",
            ]
            .contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("ipai timed out")
        .expect("run ipai")
}

/// Standard output and standard error as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
