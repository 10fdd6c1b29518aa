//! Test support: a fresh PostgreSQL database per test, the system started under a Spin
//! runtime (the local host, or the real `spin` CLI), and signed requests.

pub mod db;
pub mod ipai_bin;
/// Loopback stand-ins for external services (crates/ipai-loopback, shared with the bench).
pub use ipai_loopback as fake_http;
pub mod manifest;
pub mod odoo;
pub mod quiet;
pub mod runtime;
pub mod services;
pub mod signing;

pub use db::TestDb;
pub use runtime::{Runtime, System};
pub use signing::{signed_request, EventRequest};

/// The workspace root (where `spin.toml` lives).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A test's world: its own database and the system running against it.
pub struct Fixture {
    pub db: TestDb,
    pub sys: System,
    pub http: reqwest::Client,
    vars: std::collections::BTreeMap<String, String>,
    manifest: std::path::PathBuf,
}

impl Fixture {
    /// Fresh database + system under `Runtime::from_env()` with the default variables.
    pub async fn new() -> anyhow::Result<Self> {
        Self::with(|_| {}).await
    }

    /// Like `new`, letting the test change the variables first.
    pub async fn with(
        edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) -> anyhow::Result<Self> {
        Self::with_manifest(workspace_root().join("spin.toml"), edit).await
    }

    /// Like `with`, running another manifest (see `manifest::variant`).
    pub async fn with_manifest(
        manifest: std::path::PathBuf,
        edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) -> anyhow::Result<Self> {
        let db = TestDb::new().await?;
        let mut vars = runtime::default_variables(&db);
        edit(&mut vars);
        let rt = Runtime::from_env();
        let (v, m) = (vars.clone(), manifest.clone());
        let sys = tokio::task::spawn_blocking(move || System::start_with(rt, &v, &m)).await??;
        Ok(Self {
            db,
            sys,
            http: reqwest::Client::new(),
            vars,
            manifest,
        })
    }
}

impl Fixture {
    /// Kills the running system (SIGKILL) and starts a new one on the same database.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.sys.kill();
        let (v, m, rt) = (self.vars.clone(), self.manifest.clone(), self.sys.runtime);
        self.sys = tokio::task::spawn_blocking(move || System::start_with(rt, &v, &m)).await??;
        Ok(())
    }

    /// Kills the running system and starts a new one on the same database with the
    /// variables changed by `edit` (e.g. a variable an operator has just set).
    pub async fn restart_with(
        &mut self,
        edit: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
    ) -> anyhow::Result<()> {
        edit(&mut self.vars);
        self.restart().await
    }

    /// Starts a second instance of the app (same manifest and variables, its own port)
    /// on the same database, as a second Spin host or replica would run.
    pub async fn start_another(&self) -> anyhow::Result<System> {
        let (v, m, rt) = (self.vars.clone(), self.manifest.clone(), self.sys.runtime);
        tokio::task::spawn_blocking(move || System::start_with(rt, &v, &m)).await?
    }

    /// `POST /dispatch` with the test token; returns the HTTP status and the body.
    pub async fn try_dispatch(&self) -> (u16, serde_json::Value) {
        match self
            .http
            .post(self.sys.url("/dispatch"))
            .bearer_auth(runtime::TEST_DISPATCH_TOKEN)
            .send()
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(serde_json::Value::Null))
            }
            Err(e) => (0, serde_json::Value::String(e.to_string())),
        }
    }

    /// `POST /dispatch` with the test token as a run of its own; returns the run summary.
    /// One run claims at a time (the dispatcher lease): while another run holds the lease
    /// (the cron trigger's, a kick's), this waits for it to finish and calls again, so the
    /// summary is of a run that claimed whatever was due when it started.
    pub async fn dispatch(&self) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            self.wait_for_no_run(deadline).await;
            let resp = self
                .http
                .post(self.sys.url("/dispatch"))
                .bearer_auth(runtime::TEST_DISPATCH_TOKEN)
                .send()
                .await
                .expect("POST /dispatch");
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.expect("dispatch summary is JSON");
            assert_eq!(status, 200, "dispatch failed: {body}");
            if body["coalesced"] != true || std::time::Instant::now() > deadline {
                return body;
            }
        }
    }

    /// Waits until no dispatcher run holds the lease (or `deadline`).
    async fn wait_for_no_run(&self, deadline: std::time::Instant) {
        while std::time::Instant::now() < deadline {
            let busy: bool = self
                .db
                .value("SELECT holder IS NOT NULL AND lease_until > now() FROM integration.dispatch_lease")
                .await;
            if !busy {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `POST /ops/alerts/evaluate` with the test's ops token (what dispatch-cron does after
    /// every run), on demand; checks it answered 200 and returns its summary.
    pub async fn evaluate_alerts(&self) -> serde_json::Value {
        let resp = self
            .http
            .post(self.sys.url("/ops/alerts/evaluate"))
            .bearer_auth(runtime::TEST_OPS_TOKEN)
            .send()
            .await
            .expect("POST /ops/alerts/evaluate");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        assert_eq!(status, 200, "evaluate: {body}");
        body
    }

    /// Calls MCP tool `name` with `arguments` (the current protocol revision, the test's MCP
    /// token); checks the call succeeded and returns its `structuredContent`.
    pub async fn mcp_tool(&self, name: &str, arguments: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": name, "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "ipai-tests", "version": "1"}}}});
        let resp = self
            .http
            .post(self.sys.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header(
                "authorization",
                format!("Bearer {}", runtime::TEST_MCP_TOKEN),
            )
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", name)
            .body(body.to_string())
            .send()
            .await
            .expect("POST /mcp");
        assert_eq!(resp.status().as_u16(), 200);
        let v: serde_json::Value = resp.json().await.expect("json");
        assert_ne!(v["result"]["isError"], true, "{v}");
        v["result"]["structuredContent"].clone()
    }

    /// Posts a correctly signed event; returns its outbox id.
    pub async fn ingest(&self, key: &str, event: &serde_json::Value) -> String {
        let secret = runtime::TEST_SECRET.split(',').nth(1).unwrap_or_default();
        let resp = signed_request(secret, key, event)
            .post(&self.http, &self.sys.url("/odoo-webhook"))
            .await
            .expect("POST /odoo-webhook");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("ingest answer is JSON");
        assert!(
            status == 202 || status == 200,
            "ingest answered {status}: {body}"
        );
        body["id"].as_str().unwrap_or_default().to_string()
    }

    /// Polls until the outbox row `id` has `status` (or `timeout`); returns the last status.
    pub async fn wait_status(
        &self,
        id: &str,
        status: &str,
        timeout: std::time::Duration,
    ) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let current = self.db.status(id).await;
            if current == status || std::time::Instant::now() >= deadline {
                return current;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}
