//! Variants of `spin.toml` for tests that need a different manifest (no cron trigger, a
//! 7-field schedule, public handler routes…): written under `target/test-manifests/` with
//! component sources made absolute so they still resolve.

use std::path::PathBuf;

/// Writes `edit(spin.toml text)` as a new manifest and returns its path.
pub fn variant(edit: impl FnOnce(String) -> String) -> PathBuf {
    let root = crate::workspace_root();
    let text = std::fs::read_to_string(root.join("spin.toml")).expect("read spin.toml");
    let text = text.replace(
        "source = \"target/",
        &format!("source = \"{}/target/", root.display()),
    );
    let dir = root
        .join("target/test-manifests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).expect("create manifest dir");
    let path = dir.join("spin.toml");
    std::fs::write(&path, edit(text)).expect("write manifest");
    path
}

/// Removes the `[[trigger.cron]]` table (the cron safety net) from a manifest text.
pub fn without_cron(text: String) -> String {
    let start = text
        .find("[[trigger.cron]]")
        .expect("manifest has a cron trigger");
    let rest = &text[start..];
    let end = rest[1..]
        .find("\n[")
        .map(|i| start + 1 + i + 1)
        .unwrap_or(text.len());
    format!("{}{}", &text[..start], &text[end..])
}

/// Makes the domain handlers' private routes public as `/handlers/<domain>`, as
/// `scripts/deploy.py` does for the service_chaining=off (Fermyon Cloud) manifest: for the
/// suites that call a handler from outside (with `handler_token`).
pub fn with_public_handler_routes(text: String) -> String {
    let mut text = text;
    for domain in ["expense", "asset", "finance"] {
        let private = format!("route = {{ private = true }}\ncomponent = \"{domain}-handler\"");
        assert!(
            text.contains(&private),
            "spin.toml has no private route of {domain}-handler"
        );
        text = text.replace(
            &private,
            &format!("route = \"/handlers/{domain}\"\ncomponent = \"{domain}-handler\""),
        );
    }
    text
}
