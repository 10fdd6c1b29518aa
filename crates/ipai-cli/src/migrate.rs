//! Applies `migrations/` with sqlx's migrator (checksummed, recorded in
//! `public._sqlx_migrations`), creating the database first when it does not exist.

use anyhow::{Context, Result};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::Postgres;
use std::path::Path;

/// Creates the database named in `url` if missing, then applies every pending migration
/// from `dir`. Returns how many migrations were applied by this call.
pub async fn migrate(url: &str, dir: &Path) -> Result<usize> {
    if !Postgres::database_exists(url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", redact(url)))?
    {
        Postgres::create_database(url)
            .await
            .with_context(|| format!("cannot create database {}", redact(url)))?;
    }
    let migrator = Migrator::new(dir)
        .await
        .with_context(|| format!("cannot read migrations from {}", dir.display()))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    let before = applied_count(&pool).await;
    migrator.run(&pool).await.context("migration failed")?;
    let after = applied_count(&pool).await;
    pool.close().await;
    Ok(after.saturating_sub(before))
}

async fn applied_count(pool: &sqlx::PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

/// A URL safe to print: the password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
