//! Starts the whole application under a Spin runtime for a test: the local host
//! (`ipai-spin-host`, always) or the real Spin CLI (`IPAI_RUNTIME=spin`). Both are given
//! the same `spin.toml`, the same `SPIN_VARIABLE_*` environment and a free loopback port.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The development secret the tests sign with.
pub const TEST_SECRET: &str = "test-secret-rotated,test-secret";
/// The dispatch token test systems get.
pub const TEST_DISPATCH_TOKEN: &str = "test-dispatch-token";
/// The handler token test systems get (the dispatcher → handlers door).
pub const TEST_HANDLER_TOKEN: &str = "test-handler-token";
/// The ops token test systems get (`/ops/retention`, `/ops/alerts/evaluate`).
pub const TEST_OPS_TOKEN: &str = "test-ops-token";
/// The key test systems sign Mattermost button contexts with.
pub const TEST_ACTION_SECRET: &str = "test-mattermost-action-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Local,
    Spin,
}

impl Runtime {
    /// The runtime this test run targets: `IPAI_RUNTIME=spin|local` (default local).
    pub fn from_env() -> Self {
        match std::env::var("IPAI_RUNTIME").as_deref() {
            Ok("spin") => Runtime::Spin,
            _ => Runtime::Local,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Local => "local",
            Runtime::Spin => "spin",
        }
    }

    fn command(self) -> Result<Command> {
        let root = crate::workspace_root();
        Ok(match self {
            Runtime::Local => {
                let bin = std::env::var("IPAI_SPIN_HOST")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| root.join("target/release/ipai-spin-host"));
                if !bin.exists() {
                    bail!("{} is missing: run `make build` first", bin.display());
                }
                let mut c = Command::new(bin);
                c.arg("up");
                c
            }
            Runtime::Spin => {
                let bin = std::env::var("SPIN_BIN").unwrap_or_else(|_| "spin".into());
                let mut c = Command::new(bin);
                c.arg("up");
                c
            }
        })
    }
}

/// A running system; killed (with its whole process group) when dropped.
pub struct System {
    pub runtime: Runtime,
    pub base_url: String,
    pub log: PathBuf,
    child: Child,
}

/// The bearer token of the mcp component in tests.
pub const TEST_MCP_TOKEN: &str = "test-mcp-token";

/// `db_url` with its user replaced by the read-only role `integration_reader`.
pub fn readonly_url(db_url: &str) -> String {
    url_as(db_url, "integration_reader")
}

/// `db_url` with its user (and password) replaced by `user`.
pub fn url_as(db_url: &str, user: &str) -> String {
    match db_url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{user}@{host}")
        }
        None => db_url.to_string(),
    }
}

/// The password of the ops dashboard (user `ops`) in tests.
pub const TEST_OPS_PASSWORD: &str = "test-ops-password";

/// The variables a test system gets unless the test overrides them: it connects as the
/// test database's own ingest, app, probe and read-only roles, as `make up` connects as
/// `ipai_ingest`, `ipai_app`, `ipai_probe` and `integration_reader`.
pub fn default_variables(db: &crate::TestDb) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("db_url".into(), db.app_url());
    v.insert("db_url_ingest".into(), db.ingest_url());
    v.insert("db_url_probe".into(), db.probe_url());
    v.insert("db_host".into(), "127.0.0.1:5432".into());
    v.insert("odoo_webhook_secret".into(), TEST_SECRET.into());
    v.insert("dispatch_token".into(), TEST_DISPATCH_TOKEN.into());
    v.insert("handler_token".into(), TEST_HANDLER_TOKEN.into());
    v.insert("ops_token".into(), TEST_OPS_TOKEN.into());
    // Handlers and approvals (docs/handlers.md): the signing secret is required; the
    // outside services are pointed at loopback fakes by the tests that use them.
    v.insert("mattermost_action_secret".into(), TEST_ACTION_SECRET.into());
    v.insert("ops_password".into(), TEST_OPS_PASSWORD.into());
    v.insert("mcp_token".into(), TEST_MCP_TOKEN.into());
    v.insert("db_url_readonly".into(), db.reader_url());
    // standard_webhooks_secret stays unset: the shipped default (the scheme is off). The
    // suites that need the scheme turn it on where they start the system
    // (`with_standard_webhooks`).
    v
}

/// The `standard_webhooks_secret` of the suites that turn the scheme on.
pub const TEST_STANDARD_WEBHOOKS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Turns on the Standard Webhooks scheme (off by default, SPEC §3) with
/// `TEST_STANDARD_WEBHOOKS_SECRET`: for `Fixture::with`.
pub fn with_standard_webhooks(v: &mut BTreeMap<String, String>) {
    v.insert(
        "standard_webhooks_secret".into(),
        TEST_STANDARD_WEBHOOKS_SECRET.into(),
    );
}

/// `[application] name` of a manifest.
fn application_name(manifest: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let value: toml::Value = toml::from_str(&text).context("parsing the manifest")?;
    value["application"]["name"]
        .as_str()
        .map(str::to_string)
        .context("the manifest has no [application] name")
}

/// Whether `GET /.well-known/spin/info` on `port` answers with this application's name.
fn serves_app(port: u16, name: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /.well-known/spin/info HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(&format!("\"{name}\""))
}

/// A loopback port free now and never handed out again by this test process (to a runtime,
/// a loopback stand-in, or as a port nothing listens on): `ipai_loopback::ports`, the one
/// allocator the stand-ins bind from too.
///
/// Every system of a suite serves the same application name, so `wait_ready` cannot tell
/// two of them apart: were two concurrent tests handed the same port, the runtime that lost
/// the bind would pass for ready while its test talked to the other test's system (and
/// database). And a stand-in that took a runtime's port before the runtime bound it would
/// record that test's readiness probes (`GET /.well-known/spin/info`) as requests of its own.
pub fn free_port() -> Result<u16> {
    Ok(ipai_loopback::ports::fresh_port()?)
}

impl System {
    /// Starts the app with `variables` (names as in spin.toml; absent = unset).
    pub fn start(runtime: Runtime, variables: &BTreeMap<String, String>) -> Result<Self> {
        Self::start_with(
            runtime,
            variables,
            &crate::workspace_root().join("spin.toml"),
        )
    }

    pub fn start_with(
        runtime: Runtime,
        variables: &BTreeMap<String, String>,
        manifest: &std::path::Path,
    ) -> Result<Self> {
        // The port is picked free and then handed to the runtime, so another process can
        // take it in between (this process's stand-ins cannot: `free_port`): the runtime
        // then cannot listen and exits, and is started again on another port.
        let mut attempt = 1;
        loop {
            let (mut sys, port) = Self::spawn(runtime, variables, manifest)?;
            match sys.wait_ready(port, manifest) {
                Ok(()) => return Ok(sys),
                Err(e) if attempt < 3 && sys.lost_its_port() => {
                    eprintln!(
                        "{} lost port {port} to another listener: {e}",
                        runtime.name()
                    );
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The runtime exited because its address was taken.
    fn lost_its_port(&mut self) -> bool {
        self.kill();
        let out = self.output().to_ascii_lowercase();
        out.contains("address already in use") || out.contains("os error 98")
    }

    fn spawn(
        runtime: Runtime,
        variables: &BTreeMap<String, String>,
        manifest: &std::path::Path,
    ) -> Result<(Self, u16)> {
        let port = free_port()?;
        let logs = crate::workspace_root().join("target/test-logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{}-{port}.log", runtime.name()));
        let out = std::fs::File::create(&log)?;
        let mut cmd = runtime.command()?;
        cmd.arg("--from")
            .arg(manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(crate::workspace_root())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, _) in std::env::vars() {
            if k.starts_with("SPIN_VARIABLE_") {
                cmd.env_remove(k);
            }
        }
        let own_origin = format!("http://127.0.0.1:{port}");
        let mut variables = variables.clone();
        for name in ["public_base_url", "handler_base_url"] {
            variables
                .entry(name.to_string())
                .or_insert_with(|| own_origin.clone());
        }
        for (k, v) in &variables {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", runtime.name()))?;
        Ok((
            System {
                runtime,
                base_url: format!("http://127.0.0.1:{port}"),
                log,
                child,
            },
            port,
        ))
    }

    /// Waits until the runtime serves this app: `/.well-known/spin/info` names the
    /// manifest's application (a bare TCP connect could reach whatever took the port).
    fn wait_ready(&mut self, port: u16, manifest: &std::path::Path) -> Result<()> {
        let name = application_name(manifest)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before serving:\n{}",
                    self.runtime.name(),
                    self.output()
                );
            }
            if serves_app(port, &name) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not serve {name} on port {port} within 60 s:\n{}",
            self.runtime.name(),
            self.output()
        )
    }

    /// Starts the runtime expecting it to refuse the app: waits (up to 60 s) for it to
    /// exit by itself — it may listen briefly first, as `spin up` does before a trigger
    /// fails — and returns (exit code, everything it printed).
    pub fn expect_exit(
        runtime: Runtime,
        variables: &BTreeMap<String, String>,
        manifest: &std::path::Path,
    ) -> Result<(i32, String)> {
        let (mut sys, _) = Self::spawn(runtime, variables, manifest)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = sys.child.try_wait()? {
                return Ok((status.code().unwrap_or(-1), sys.output()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} kept running although it should have refused:\n{}",
            runtime.name(),
            sys.output()
        )
    }

    /// Everything the runtime printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the runtime (SIGKILL to the whole process group).
    pub fn kill(&mut self) {
        let pid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runtime_ports_come_from_the_allocator_the_stand_ins_bind_from() {
        // Else a stand-in of a concurrent test could bind a runtime's port before the
        // runtime does, and record that test's readiness probes as its own requests.
        let port = super::free_port().unwrap();
        assert!(ipai_loopback::ports::was_handed_out(port));
        assert_ne!(super::free_port().unwrap(), port);
    }
}
