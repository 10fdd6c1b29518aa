//! A fresh database per test: created on the local PostgreSQL, migrated with the same
//! migrator as `ipai migrate`, dropped when the test ends.

use anyhow::{Context, Result};

/// The server tests create their databases on (`TEST_PG_URL`, default local trust auth).
pub fn server_url() -> String {
    std::env::var("TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub struct TestDb {
    pub name: String,
    /// URL with `?sslmode=disable`, as components use locally.
    pub url: String,
    pub client: tokio_postgres::Client,
}

impl TestDb {
    /// Creates and migrates `ipai_test_<random>`.
    pub async fn new() -> Result<Self> {
        let name = format!("ipai_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}/{}?sslmode=disable", server_url(), name);
        ipai_cli::migrate::migrate(&url, &crate::workspace_root().join("migrations"))
            .await
            .context("migrating the test database")?;
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(Self { name, url, client })
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

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
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
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
    }
}
