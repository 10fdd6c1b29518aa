//! `spin:postgres/postgres@4.0.0` for the local host, on tokio-postgres + deadpool-postgres.
//!
//! Behaviour follows Spin 4.0.2's `crates/factor-outbound-pg` (`allowed_hosts.rs`,
//! `client.rs`, `host.rs`, `types.rs`, `types/*.rs`) so that a component that works here
//! works under `spin up`:
//!
//! * `open` checks every host of the connection string against the component's
//!   `allowed_outbound_hosts` (`ConnectionFailed("address postgres://HOST:PORT is not
//!   permitted")`; Unix sockets are refused; a malformed string is `ConnectionFailed` with
//!   tokio-postgres' parse error), then takes a connection from a pool kept per component
//!   and address (Spin's `configure_app` gives every component a client factory of its
//!   own, each caching one pool per address: deadpool, 64 connections,
//!   `RecyclingMethod::Clean`, idle connections never closed); a failure there is
//!   `ConnectionFailed` with the error chain. A store holds at most 1024 open connections
//!   ("too many connections").
//! * TLS unless the string says `sslmode=disable`, always with certificate verification
//!   (see `tls.rs`).
//! * `query`/`execute`: parameters that do not convert are `BadParameter` (query) or
//!   `ValueConversionFailed` (execute); errors from PostgreSQL are
//!   `QueryFailed(DbError{..})` with Spin's fields and extras; an error that arrives while the
//!   rows stream in (an execution error, a value that cannot be converted) comes back the way
//!   Spin 4.0.2 returns it: `QueryFailed(Text("Error::QueryFailed(...)"))`. Results are capped
//!   at 128 MiB.
//! * A `query` that returns no rows never completes under Spin 4.0.0–4.0.2
//!   (spinframework/spin#3671). By default this host fails such a call with a `QueryFailed`
//!   text saying so instead of hanging; [`EmptyResultPolicy::Columns`] (or
//!   `IPAI_PG_EMPTY_RESULT=allow`) returns the columns and no rows, as the fixed Spin does.

#![allow(clippy::result_large_err)] // the WIT error variant (db-error) is large by design

mod convert;
mod errors;
mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use wasmtime::component::{HasSelf, Resource};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ipai:host/postgres-host",
        imports: { default: async | trappable },
        additional_derives: [PartialEq],
    });
}

use bindings::spin::postgres::postgres as pg;
use pg::{Column, DbError, Error, ParameterValue, QueryError, RowSet};

/// Connections per address pool (Spin's `CONNECTION_POOL_SIZE`).
const CONNECTION_POOL_SIZE: usize = 64;
/// Open connections one store may hold (Spin's resource table capacity).
const MAX_CONNECTIONS_PER_STORE: usize = 1024;
/// Largest `query` result Spin buffers (`MAX_HOST_BUFFERED_BYTES`).
const MAX_RESULT_BYTES: usize = 128 << 20;
/// Environment variable choosing the [`EmptyResultPolicy`] of [`PgPools::new`].
pub const EMPTY_RESULT_ENV: &str = "IPAI_PG_EMPTY_RESULT";

/// What `query` does when its statement returns no rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyResultPolicy {
    /// Fail the call with `QueryFailed(Text(..))` explaining that Spin 4.0.0–4.0.2 would
    /// never return from it (spinframework/spin#3671). The default.
    Error,
    /// Return the statement's columns and no rows (Spin after the fix, spinframework/spin#3673).
    Columns,
}

/// Connection pools shared by every request: one deadpool pool per component and
/// connection string, created on first use. So, as under Spin, an app whose N components
/// use one database may hold up to N × 64 connections to it.
pub struct PgPools {
    pools: Mutex<HashMap<(String, String), deadpool_postgres::Pool>>,
    empty_result: EmptyResultPolicy,
}

impl Default for PgPools {
    fn default() -> Self {
        Self::new()
    }
}

impl PgPools {
    /// Pools with the empty-result policy from `IPAI_PG_EMPTY_RESULT` (`allow` →
    /// [`EmptyResultPolicy::Columns`], anything else or unset → [`EmptyResultPolicy::Error`]).
    pub fn new() -> Self {
        let empty_result = match std::env::var(EMPTY_RESULT_ENV).as_deref() {
            Ok("allow") | Ok("columns") => EmptyResultPolicy::Columns,
            _ => EmptyResultPolicy::Error,
        };
        Self {
            pools: Mutex::new(HashMap::new()),
            empty_result,
        }
    }

    pub fn with_empty_result_policy(mut self, policy: EmptyResultPolicy) -> Self {
        self.empty_result = policy;
        self
    }

    pub fn empty_result_policy(&self) -> EmptyResultPolicy {
        self.empty_result
    }

    fn pool(&self, component: &str, address: &str) -> anyhow::Result<deadpool_postgres::Pool> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let key = (component.to_owned(), address.to_owned());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let pool = create_pool(address).context("establishing PostgreSQL connection pool")?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    async fn get(
        &self,
        component: &str,
        address: &str,
    ) -> anyhow::Result<deadpool_postgres::Object> {
        let pool = self.pool(component, address)?;
        Ok(pool.get().await?)
    }

    /// Connections currently open in `component`'s pool for `address` (in use or idle).
    pub fn open_connections(&self, component: &str, address: &str) -> usize {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .get(&(component.to_owned(), address.to_owned()))
            .map_or(0, |p| p.status().size)
    }
}

fn create_pool(address: &str) -> anyhow::Result<deadpool_postgres::Pool> {
    let config: tokio_postgres::Config = address
        .parse()
        .context("parsing Postgres connection string")?;
    let manager_config = deadpool_postgres::ManagerConfig {
        recycling_method: deadpool_postgres::RecyclingMethod::Clean,
    };
    let manager = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        deadpool_postgres::Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        deadpool_postgres::Manager::from_config(
            config,
            tls::MakeRustlsConnect::new(),
            manager_config,
        )
    };
    deadpool_postgres::Pool::builder(manager)
        .max_size(CONNECTION_POOL_SIZE)
        .build()
        .context("building Postgres connection pool")
}

/// Per-request (per-store) state: the connections the guest holds open.
pub struct PgState {
    pools: Arc<PgPools>,
    component: String,
    is_allowed: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    connections: HashMap<u32, deadpool_postgres::Object>,
    next_rep: u32,
}

impl PgState {
    /// `is_allowed` is called with `postgres://HOST:PORT` for every host of the connection
    /// string (`postgres://HOST` when the string names no port: Spin then matches the
    /// allow-list with PostgreSQL's default port 5432) and answers whether the component's
    /// `allowed_outbound_hosts` permit it.
    /// `component` picks the component's own pools.
    pub fn new(
        pools: Arc<PgPools>,
        component: &str,
        is_allowed: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    ) -> Self {
        Self {
            pools,
            component: component.to_owned(),
            is_allowed,
            connections: HashMap::new(),
            next_rep: 0,
        }
    }

    fn ensure_address_allowed(&self, address: &str) -> Result<(), Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| Error::ConnectionFailed(errors::pg_display(&e)))?;
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            match host {
                tokio_postgres::config::Host::Tcp(host) => {
                    // The port at the host's index, or the only port given.
                    let port = ports.get(i).or_else(|| {
                        if ports.len() == 1 {
                            ports.first()
                        } else {
                            None
                        }
                    });
                    let target = match port {
                        Some(port) => format!("postgres://{host}:{port}"),
                        None => format!("postgres://{host}"),
                    };
                    if !(self.is_allowed)(&target) {
                        return Err(Error::ConnectionFailed(format!(
                            "address {target} is not permitted"
                        )));
                    }
                }
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(_) => {
                    return Err(Error::ConnectionFailed(
                        "Unix sockets are not supported on WebAssembly".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn push_connection(&mut self, client: deadpool_postgres::Object) -> Result<u32, Error> {
        if self.connections.len() >= MAX_CONNECTIONS_PER_STORE {
            return Err(Error::ConnectionFailed("too many connections".into()));
        }
        loop {
            let rep = self.next_rep;
            self.next_rep = self.next_rep.wrapping_add(1);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.connections.entry(rep) {
                slot.insert(client);
                return Ok(rep);
            }
        }
    }

    fn client(
        &self,
        connection: &Resource<pg::Connection>,
    ) -> Result<&deadpool_postgres::Object, Error> {
        self.connections
            .get(&connection.rep())
            .ok_or_else(|| Error::ConnectionFailed("no connection found".into()))
    }

    async fn open_connection(&mut self, address: &str) -> Result<Resource<pg::Connection>, Error> {
        self.ensure_address_allowed(address)?;
        let client = self
            .pools
            .get(&self.component, address)
            .await
            .map_err(|e| Error::ConnectionFailed(errors::debug_text(&e)))?;
        let rep = self.push_connection(client)?;
        Ok(Resource::new_own(rep))
    }
}

/// Adds `spin:postgres/postgres@4.0.0` to the linker; `get` projects the store data to the
/// [`PgState`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut PgState,
) -> anyhow::Result<()> {
    pg::add_to_linker::<T, HasSelf<PgState>>(linker, get)
}

// ----- errors -----

/// Spin's `QueryFailed` for a tokio-postgres error: structured when PostgreSQL sent one.
fn query_failed(e: tokio_postgres::Error) -> Error {
    let as_text = format!("{e:?}");
    Error::QueryFailed(match e.as_db_error() {
        None => QueryError::Text(as_text),
        Some(db) => QueryError::DbError(DbError {
            as_text,
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: db_error_extras(db),
        }),
    })
}

fn db_error_extras(db: &tokio_postgres::error::DbError) -> Vec<(String, String)> {
    let fields: [(&str, Option<String>); 10] = [
        ("column", db.column().map(str::to_owned)),
        ("constraint", db.constraint().map(str::to_owned)),
        ("routine", db.routine().map(str::to_owned)),
        ("hint", db.hint().map(str::to_owned)),
        ("table", db.table().map(str::to_owned)),
        ("datatype", db.datatype().map(str::to_owned)),
        ("schema", db.schema().map(str::to_owned)),
        ("file", db.file().map(str::to_owned)),
        ("line", db.line().map(|l| l.to_string())),
        ("where_", db.where_().map(str::to_owned)),
    ];
    fields
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
        .collect()
}

/// Spin 4.0.2 passes errors met while reading rows through `anyhow` and back into
/// `QueryFailed(Text(..))`, so the guest sees the first error's debug form as text.
fn rewrapped(e: Error) -> Error {
    Error::QueryFailed(QueryError::Text(format!("{e:?}")))
}

fn empty_result_error() -> Error {
    Error::QueryFailed(QueryError::Text(format!(
        "query returned no rows: under Spin 4.0.0-4.0.2 a `query` whose result is empty never \
         returns (spinframework/spin#3671), so this host fails it instead. Make the statement \
         return at least one row, or set {EMPTY_RESULT_ENV}=allow to get an empty row set as \
         later Spin releases do"
    )))
}

// ----- query and execute -----

async fn run_query(
    client: &tokio_postgres::Client,
    statement: &str,
    params: &[ParameterValue],
    empty_result: EmptyResultPolicy,
) -> Result<RowSet, Error> {
    let params = convert::to_sql_parameters(params)
        .map_err(|e| Error::BadParameter(errors::debug_text(&e)))?;
    let prepared = client.prepare(statement).await.map_err(query_failed)?;
    let stream = client
        .query_raw(&prepared, params)
        .await
        .map_err(query_failed)?;
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    let mut columns = None;
    let mut size = std::mem::size_of::<RowSet>();
    while let Some(row) = stream.next().await {
        let row = row.map_err(|e| rewrapped(query_failed(e)))?;
        if columns.is_none() {
            columns = Some(columns_of(row.columns()));
        }
        let values = convert::convert_row(&row)
            .map_err(|e| rewrapped(Error::QueryFailed(QueryError::Text(errors::debug_text(&e)))))?;
        size += values.iter().map(convert::memory_size).sum::<usize>();
        if size > MAX_RESULT_BYTES {
            return Err(Error::QueryFailed(QueryError::Text(format!(
                "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
            ))));
        }
        rows.push(values);
    }
    match columns {
        Some(columns) => Ok(RowSet { columns, rows }),
        None => match empty_result {
            EmptyResultPolicy::Error => {
                eprintln!(
                    "warning: spin:postgres query returned no rows; Spin 4.0.0-4.0.2 would hang here \
                     (spinframework/spin#3671): {}",
                    statement.chars().take(200).collect::<String>()
                );
                Err(empty_result_error())
            }
            EmptyResultPolicy::Columns => Ok(RowSet {
                columns: columns_of(prepared.columns()),
                rows,
            }),
        },
    }
}

fn columns_of(columns: &[tokio_postgres::Column]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            data_type: convert::column_data_type(c.type_()),
        })
        .collect()
}

async fn run_execute(
    client: &tokio_postgres::Client,
    statement: &str,
    params: &[ParameterValue],
) -> Result<u64, Error> {
    let params = convert::to_sql_parameters(params)
        .map_err(|e| Error::ValueConversionFailed(errors::debug_text(&e)))?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p.as_ref() as _).collect();
    client.execute(statement, &refs).await.map_err(query_failed)
}

// ----- the WIT interface -----

impl pg::Host for PgState {}

impl pg::HostConnection for PgState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<pg::Connection>, Error>> {
        Ok(self.open_connection(&address).await)
    }

    async fn query(
        &mut self,
        connection: Resource<pg::Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let policy = self.pools.empty_result;
        let client = match self.client(&connection) {
            Ok(client) => client,
            Err(e) => return Ok(Err(e)),
        };
        Ok(run_query(client, &statement, &params, policy).await)
    }

    async fn execute(
        &mut self,
        connection: Resource<pg::Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let client = match self.client(&connection) {
            Ok(client) => client,
            Err(e) => return Ok(Err(e)),
        };
        Ok(run_execute(client, &statement, &params).await)
    }

    async fn drop(&mut self, connection: Resource<pg::Connection>) -> wasmtime::Result<()> {
        self.connections.remove(&connection.rep());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
