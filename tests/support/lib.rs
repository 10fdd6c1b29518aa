//! Test support: a fresh PostgreSQL database per test, the system started under a Spin
//! runtime (the local host, or the real `spin` CLI), and signed requests.

pub mod db;
pub mod runtime;
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
        let db = TestDb::new().await?;
        let mut vars = runtime::default_variables(&db.url);
        edit(&mut vars);
        let rt = Runtime::from_env();
        let sys = tokio::task::spawn_blocking(move || System::start(rt, &vars)).await??;
        Ok(Self {
            db,
            sys,
            http: reqwest::Client::new(),
        })
    }
}
