//! Applies `migrations/` with sqlx's migrator (checksummed, recorded in
//! `public._sqlx_migrations`), creating the database first when it does not exist, then
//! sets the connection limits of the app's login roles (`integration.ensure_login_role`).

use anyhow::{Context, Result};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::Postgres;
use std::path::Path;

/// The app's login roles and their limits (docs/deploy.md, "Connection budget").
#[derive(Debug, Clone)]
pub struct LoginRoles {
    /// The role the ingest component connects as (its own budget: a flood of posts
    /// cannot take the connections delivery needs).
    pub ingest: String,
    pub ingest_connection_limit: i32,
    /// The role the dispatcher, the handlers, approvals and ops connect as.
    pub app: String,
    pub app_connection_limit: i32,
    /// The read-only role of the MCP component.
    pub reader: String,
    pub reader_connection_limit: i32,
    /// The role `/health` and `/metrics` connect as (`db_url_probe`): a small budget of
    /// its own, so anonymous probes never take delivery's connections.
    pub probe: String,
    pub probe_connection_limit: i32,
}

/// Server-side defaults of every session of the ingest and app roles: idle pooled
/// connections are closed by the server, and no statement runs for minutes.
pub const APP_ROLE_SETTINGS: &[&str] = &[
    "idle_session_timeout=60s",
    "idle_in_transaction_session_timeout=60s",
    "statement_timeout=30s",
];
/// The same for the read-only role, whose transactions are all read-only.
pub const READER_ROLE_SETTINGS: &[&str] = &[
    "default_transaction_read_only=on",
    "idle_session_timeout=60s",
    "idle_in_transaction_session_timeout=60s",
    "statement_timeout=15s",
];
/// The probe role's sessions: read-only, short statements, idle ones closed soon.
pub const PROBE_ROLE_SETTINGS: &[&str] = &[
    "default_transaction_read_only=on",
    "idle_session_timeout=30s",
    "idle_in_transaction_session_timeout=10s",
    "statement_timeout=5s",
];

impl Default for LoginRoles {
    /// The shipped roles and limits: together 68 connections, leaving about a third of
    /// PostgreSQL's default `max_connections` of 100 to everyone else.
    fn default() -> Self {
        Self {
            ingest: "ipai_ingest".into(),
            ingest_connection_limit: 32,
            app: "ipai_app".into(),
            app_connection_limit: 24,
            reader: "integration_reader".into(),
            reader_connection_limit: 8,
            probe: "ipai_probe".into(),
            probe_connection_limit: 4,
        }
    }
}

/// Creates the database named in `url` if missing, applies every pending migration from
/// `dir`, then gives the app's login roles their limits. Returns how many migrations
/// were applied by this call.
pub async fn migrate(url: &str, dir: &Path) -> Result<usize> {
    migrate_with_roles(url, dir, &LoginRoles::default()).await
}

/// [`migrate`] with other role names or limits.
pub async fn migrate_with_roles(url: &str, dir: &Path, roles: &LoginRoles) -> Result<usize> {
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
    ensure_login_roles(&pool, roles).await?;
    pool.close().await;
    Ok(after.saturating_sub(before))
}

/// Creates or updates the app's four login roles through the SQL contract. Each is a
/// member of the group role holding its component's grants (migration
/// 20261207000100_least_privilege.sql), never of `service_role`.
pub async fn ensure_login_roles(pool: &sqlx::PgPool, roles: &LoginRoles) -> Result<()> {
    let list = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for (name, member_of, limit, settings) in [
        (
            &roles.ingest,
            Some("integration_ingest"),
            roles.ingest_connection_limit,
            list(APP_ROLE_SETTINGS),
        ),
        (
            &roles.app,
            Some("integration_app"),
            roles.app_connection_limit,
            list(APP_ROLE_SETTINGS),
        ),
        (
            &roles.probe,
            Some("integration_probe"),
            roles.probe_connection_limit,
            list(PROBE_ROLE_SETTINGS),
        ),
        (
            &roles.reader,
            (roles.reader != "integration_reader").then_some("integration_reader"),
            roles.reader_connection_limit,
            list(READER_ROLE_SETTINGS),
        ),
    ] {
        sqlx::query("SELECT integration.ensure_login_role($1, $2, $3, $4)")
            .bind(name)
            .bind(member_of)
            .bind(limit)
            .bind(&settings)
            .execute(pool)
            .await
            .with_context(|| format!("cannot set up the login role {name}"))?;
    }
    Ok(())
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
