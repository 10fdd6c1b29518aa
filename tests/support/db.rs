//! A fresh database per test: created on the local PostgreSQL, migrated with the same
//! migrator as `ipai migrate`, dropped when the test ends. Roles are cluster-wide, so each
//! test also gets login roles of its own, made by the same SQL contract as the shipped
//! `ipai_ingest` / `ipai_app` / `ipai_probe` / `integration_reader` (members of the same group
//! roles, same limits and settings): the app under test connects as those, and one test's connections never count against
//! another's limit.

use anyhow::{Context, Result};

/// The server tests create their databases on (`TEST_PG_URL`, default local trust auth).
pub fn server_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub struct TestDb {
    pub name: String,
    /// URL with `?sslmode=disable`, as components use locally; the migrating superuser
    /// (the test's own view of the database).
    pub url: String,
    pub client: tokio_postgres::Client,
    /// The test's app and read-only login roles (see the module comment).
    pub roles: ipai_cli::migrate::LoginRoles,
}

impl TestDb {
    /// Creates and migrates `ipai_test_<random>`, with the roles `ipai_in_<random>`,
    /// `ipai_app_<random>`, `ipai_probe_<random>` and `ipai_ro_<random>` at the shipped
    /// connection limits.
    pub async fn new() -> Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("ipai_test_{id}");
        let url = format!("{}/{}?sslmode=disable", server_url(), name);
        let roles = ipai_cli::migrate::LoginRoles {
            ingest: format!("ipai_in_{id}"),
            app: format!("ipai_app_{id}"),
            reader: format!("ipai_ro_{id}"),
            probe: format!("ipai_probe_{id}"),
            ..Default::default()
        };
        ipai_cli::migrate::migrate_with_roles(
            &url,
            &crate::workspace_root().join("migrations"),
            &roles,
        )
        .await
        .context("migrating the test database")?;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(Self {
            name,
            url,
            client,
            roles,
        })
    }

    /// The URL ingest connects with (`db_url_ingest`): the test's ingest role.
    pub fn ingest_url(&self) -> String {
        crate::runtime::url_as(&self.url, &self.roles.ingest)
    }

    /// The URL the app connects with (`db_url`): the test's app role.
    pub fn app_url(&self) -> String {
        crate::runtime::url_as(&self.url, &self.roles.app)
    }

    /// The URL `/health` and `/metrics` connect with (`db_url_probe`): the test's probe role.
    pub fn probe_url(&self) -> String {
        crate::runtime::url_as(&self.url, &self.roles.probe)
    }

    /// The read-only URL (`db_url_readonly`): the test's read-only role.
    pub fn reader_url(&self) -> String {
        crate::runtime::url_as(&self.url, &self.roles.reader)
    }

    /// `SELECT count(*)` of an `integration` table.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM integration.{table}");
        self.client
            .query_one(&sql, &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl TestDb {
    /// The value a query returns: the first column of its one row.
    pub async fn value<T: tokio_postgres::types::FromSqlOwned>(&self, sql: &str) -> T {
        self.client
            .query_one(sql, &[])
            .await
            .map(|r| r.get::<_, T>(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row a query returns, in order.
    pub async fn column<T: tokio_postgres::types::FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<T> {
        column(&self.client, sql, params).await
    }

    /// Makes event `id` due now: the clock reaching its `next_attempt_at` (a failed event's
    /// backoff), and nothing else.
    pub async fn make_due(&self, id: &str) {
        self.client
            .execute(
                "UPDATE integration.outbox SET next_attempt_at = now() WHERE id::text = $1",
                &[&id],
            )
            .await
            .expect("make the event due");
    }

    /// The outbox status of event `id`.
    pub async fn status(&self, id: &str) -> String {
        self.client
            .query_one(
                "SELECT status FROM integration.outbox WHERE id::text = $1",
                &[&id],
            )
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_else(|e| format!("<no row: {e}>"))
    }
}

/// A connection to `url` with its connection task running (panics naming the URL).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// The first column of every row a query returns on `client`, in order.
pub async fn column<T: tokio_postgres::types::FromSqlOwned>(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<T> {
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, T>(0))
        .collect()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let roles = [
            self.roles.ingest.clone(),
            self.roles.app.clone(),
            self.roles.reader.clone(),
            self.roles.probe.clone(),
        ];
        // Dropping needs its own runtime: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let url = format!("{}/postgres?sslmode=disable", server_url());
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                for role in roles {
                    client
                        .batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
    }
}
