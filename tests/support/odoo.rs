//! A real Odoo 18.0 for the loop suite (tests/tests/odoo_loop.rs): a database copied from
//! the addon's clean install that `scripts/test-odoo.sh` keeps as a template (its name in
//! `target/odoo18/loop-template`), prepared by `tests/python/odoo_loop_setup.py` in
//! `odoo-bin shell`, then served by `odoo-bin` (threaded, one cron thread) on a loopback
//! port; JSON-RPC as its users; a TCP front for the bus (`BusFront`) so Odoo's
//! `ipai.webhook.url` stays the same while the bus is stopped, restarted on another port
//! or made to hang.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the Odoo of this machine is and which template to copy, or why there is none.
pub enum Availability {
    Ready {
        home: PathBuf,
        template: String,
    },
    /// No Odoo here and no archive to make one from: the suite is skipped (one line says why).
    Skipped(String),
}

/// Finds the template `scripts/test-odoo.sh` left. Its absence fails when the Odoo archive
/// is there (`../shared/odoo18/`: CI must never skip silently), else skips.
pub fn availability() -> Availability {
    let root = crate::workspace_root();
    let marker = root.join("target/odoo18/loop-template");
    let template = std::fs::read_to_string(&marker)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let archive = root
        .parent()
        .map(|p| p.join("shared/odoo18"))
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".tar"));
    let Some(template) = template else {
        if archive {
            panic!(
                "{} is missing although ../shared/odoo18 has the Odoo archive: run \
                 scripts/test-odoo.sh (make test runs it before the e2e legs) to install the \
                 addon and keep the template the Odoo loop suite copies",
                marker.display()
            );
        }
        return Availability::Skipped(format!(
            "no Odoo 18 here ({} missing and no archive in ../shared/odoo18)",
            marker.display()
        ));
    };
    let hash = template.rsplit('_').next().unwrap_or_default();
    let home = root.join("target/odoo18").join(hash);
    if !home.join("venv/bin/python").exists() {
        panic!(
            "the template {template} names ODOO_HOME {} which has no venv: run scripts/test-odoo.sh",
            home.display()
        );
    }
    Availability::Ready { home, template }
}

/// The people and records `odoo_loop_setup.py` made (its `IPAI-LOOP` line).
#[derive(Debug, Clone)]
pub struct People {
    pub raw: Value,
}

impl People {
    pub fn id(&self, name: &str) -> i64 {
        self.raw[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} in {}", self.raw))
    }
    pub fn text(&self, name: &str) -> String {
        self.raw[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {}", self.raw))
            .to_string()
    }
}

/// A user over JSON-RPC: (uid, password or API key).
#[derive(Debug, Clone)]
pub struct Login {
    pub uid: i64,
    pub secret: String,
}

/// One running Odoo on its own database; stopped and dropped with it.
pub struct Odoo {
    pub db: String,
    pub url: String,
    pub log: PathBuf,
    pub people: People,
    pub pg: tokio_postgres::Client,
    http: reqwest::Client,
    child: Option<Child>,
}

/// `odoo-bin [subcommand] <options>`: the subcommand (`shell`) must come first.
fn odoo_args(home: &std::path::Path, subcommand: Option<&str>) -> Vec<String> {
    let root = crate::workspace_root();
    let mut args = vec![home.join("src/odoo-bin").display().to_string()];
    args.extend(subcommand.map(str::to_string));
    args.extend([
        format!(
            "--addons-path={},{},{}",
            home.join("src/odoo/addons").display(),
            home.join("src/addons").display(),
            root.join("odoo").display()
        ),
        "--db_host=127.0.0.1".into(),
        "--db_port=5432".into(),
        "--db_user=odoo18_test".into(),
        "--db_password=odoo18_test".into(),
        format!("--data-dir={}", root.join("target/odoo18/data").display()),
    ]);
    args
}

impl Odoo {
    /// Copies the template, prepares it for the bus at `webhook_url`, starts the server.
    pub async fn start(home: &std::path::Path, template: &str, webhook_url: &str) -> Result<Self> {
        let db = format!(
            "ipai_loop_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let status = Command::new("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-O",
                "odoo18_test",
                "-T",
            ])
            .arg(template)
            .arg(&db)
            .status()
            .context("createdb")?;
        if !status.success() {
            bail!("createdb -T {template} {db} failed ({status})");
        }
        // From here on the database is dropped when `guard` goes (a failed setup included).
        let mut guard = DropDb(Some(db.clone()));
        let logs = crate::workspace_root().join("target/test-logs");
        std::fs::create_dir_all(&logs)?;
        let log = logs.join(format!("odoo-{db}.log"));

        // Setup in `odoo-bin shell` (the script on stdin).
        let script =
            std::fs::read(crate::workspace_root().join("tests/python/odoo_loop_setup.py"))?;
        let mut cmd = Command::new(home.join("venv/bin/python"));
        cmd.args(odoo_args(home, Some("shell")))
            .args(["--no-http", "--log-level=warn", "-d", &db])
            .env("IPAI_LOOP_WEBHOOK_URL", webhook_url)
            .env("IPAI_LOOP_SECRET", crate::runtime::TEST_SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || -> Result<std::process::Output> {
            let mut child = cmd.spawn().context("odoo-bin shell")?;
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(&script)?;
            Ok(child.wait_with_output()?)
        })
        .await??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("IPAI-LOOP ")) else {
            bail!(
                "odoo_loop_setup.py printed no IPAI-LOOP line:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let people = People {
            raw: serde_json::from_str(line)?,
        };

        // The server: threaded, one cron thread (the sender is triggered by each commit).
        let port = crate::runtime::free_port()?;
        let logfile = std::fs::File::create(&log)?;
        let mut cmd = Command::new(home.join("venv/bin/python"));
        cmd.args(odoo_args(home, None))
            .args(["-d", &db, "--db-filter", &format!("^{db}$")])
            .args([
                "--http-interface",
                "127.0.0.1",
                "--http-port",
                &port.to_string(),
            ])
            .args(["--workers", "0", "--max-cron-threads", "1"])
            .stdin(Stdio::null())
            .stdout(logfile.try_clone()?)
            .stderr(logfile);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().context("odoo-bin")?;
        let (client, conn) = tokio_postgres::connect(
            &format!("{}/{db}", crate::db::server_url()),
            tokio_postgres::NoTls,
        )
        .await?;
        tokio::spawn(conn);
        let mut odoo = Odoo {
            db: db.clone(),
            url: format!("http://127.0.0.1:{port}"),
            log,
            people,
            pg: client,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()?,
            child: Some(child),
        };
        guard.0 = None; // `odoo` drops the database from now on
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let answer = odoo
                .http
                .post(format!("{}/web/webclient/version_info", odoo.url))
                .json(&json!({"jsonrpc": "2.0", "method": "call", "params": {}}))
                .send()
                .await;
            if let Ok(r) = answer {
                if r.status().is_success() {
                    break;
                }
            }
            if let Some(status) = odoo
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("odoo-bin exited with {status}:\n{}", odoo.log_tail(40));
            }
            if Instant::now() > deadline {
                bail!(
                    "odoo-bin did not answer within 90 s:\n{}",
                    odoo.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(odoo)
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The user `login_field` (e.g. `juan_uid`) logging in with their password (= login).
    pub fn user(&self, uid_field: &str, login: &str) -> Login {
        Login {
            uid: self.people.id(uid_field),
            secret: login.to_string(),
        }
    }

    pub fn admin(&self) -> Login {
        Login {
            uid: 2,
            secret: "admin".into(),
        }
    }

    /// `object.execute_kw` as `who`; the result (`null` when Odoo leaves it out, as it does
    /// for a method returning `None`) or Odoo's error message.
    pub async fn call(
        &self,
        who: &Login,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> std::result::Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": [self.db, who.uid, who.secret, model, method, args, kwargs]}});
        let r = self
            .http
            .post(format!("{}/jsonrpc", self.url))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{model}.{method}: {e}"))?;
        let v: Value = r
            .json()
            .await
            .map_err(|e| format!("{model}.{method}: {e}"))?;
        if let Some(e) = v.get("error") {
            return Err(format!(
                "{model}.{method}: {} {}",
                e["data"]["name"].as_str().unwrap_or_default(),
                e["data"]["message"]
                    .as_str()
                    .or(e["message"].as_str())
                    .unwrap_or_default()
            ));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Like `call`, panicking with the log's tail on an error.
    pub async fn ok(
        &self,
        who: &Login,
        model: &str,
        method: &str,
        args: Value,
        kwargs: Value,
    ) -> Value {
        match self.call(who, model, method, args, kwargs).await {
            Ok(v) => v,
            Err(e) => panic!("{e}\nOdoo log:\n{}", self.log_tail(40)),
        }
    }

    /// Fields of one record, read as the administrator.
    pub async fn read(&self, model: &str, id: i64, fields: &[&str]) -> Value {
        let v = self
            .ok(
                &self.admin(),
                model,
                "read",
                json!([[id]]),
                json!({ "fields": fields }),
            )
            .await;
        v[0].clone()
    }

    /// The addon's queue (`ipai_event_queue`) as (event_type, aggregate_id, state, attempts,
    /// last_error), oldest first.
    pub async fn queue(&self) -> Vec<(String, String, String, i32, String)> {
        self.pg
            .query(
                "SELECT event_type, aggregate_id, state, attempts, coalesce(last_error, '')
                   FROM ipai_event_queue ORDER BY id",
                &[],
            )
            .await
            .expect("ipai_event_queue")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect()
    }
}

impl Drop for Odoo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(DropDb(Some(self.db.clone())));
    }
}

struct DropDb(Option<String>);

impl Drop for DropDb {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            if std::env::var_os("IPAI_KEEP_ODOO_DB").is_none() {
                let _ = Command::new("dropdb")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "--if-exists",
                        "--force",
                    ])
                    .arg(&db)
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// What the front does with a connection.
#[derive(Debug, Clone)]
enum FrontMode {
    /// Forward to this `host:port`.
    Forward(String),
    /// Accept and never answer (a hung bus): whoever waits on it waits its whole timeout.
    Hang,
    /// Read each request and answer `202 Accepted` without forwarding it: a proxy or load
    /// balancer that loses what it acknowledges (what reconciliation exists to find).
    Swallow,
}

/// A TCP front for the bus on a port of its own: Odoo's `ipai.webhook.url` points here, so
/// the bus can be stopped, made to hang and restarted on another port under it.
pub struct BusFront {
    pub port: u16,
    mode: Arc<Mutex<FrontMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl BusFront {
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let mode = Arc::new(Mutex::new(FrontMode::Hang));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let current = m.lock().expect("front mode").clone();
                tokio::spawn(async move {
                    match current {
                        FrontMode::Forward(addr) => {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(&addr).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        }
                        FrontMode::Hang => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            drop(inbound);
                        }
                        FrontMode::Swallow => swallow(&mut inbound).await,
                    }
                });
            }
        });
        Ok(Self { port, mode, task })
    }

    /// The URL Odoo posts events to.
    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/odoo-webhook", self.port)
    }

    /// New connections go to the system at `base_url` (`http://127.0.0.1:<port>`).
    pub fn forward_to(&self, base_url: &str) {
        let addr = base_url.trim_start_matches("http://").to_string();
        *self.mode.lock().expect("front mode") = FrontMode::Forward(addr);
    }

    /// New connections are accepted and never answered.
    pub fn hang(&self) {
        *self.mode.lock().expect("front mode") = FrontMode::Hang;
    }

    /// New connections are answered `202 Accepted` and forwarded nowhere.
    pub fn swallow(&self) {
        *self.mode.lock().expect("front mode") = FrontMode::Swallow;
    }
}

/// Reads one HTTP/1.1 request (headers, then `content-length` bytes) and answers 202 with
/// an ingest-like body, closing the connection.
async fn swallow(inbound: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let body_end = loop {
        let Ok(n) = inbound.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break at + 4 + length;
        }
    };
    while buf.len() < body_end {
        match inbound.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = format!(r#"{{"id":"{}","status":"accepted"}}"#, uuid::Uuid::new_v4());
    let answer = format!(
        "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = inbound.write_all(answer.as_bytes()).await;
    let _ = inbound.shutdown().await;
}

impl Drop for BusFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `probe` every 250 ms until it returns `Some` or `timeout` passes (then `None`).
pub async fn poll<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
