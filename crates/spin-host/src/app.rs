//! The loaded application: engine, pre-instantiated components, their variables and
//! outbound permissions, and the per-instance state every import reads from.

use crate::manifest::{Manifest, RouteSpec};
use crate::outbound::AllowedHosts;
use crate::postgres::{PgPools, PgState};
use crate::router::Router;
use crate::variables::{AppVariables, ComponentVariables, VariablesState};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::body::HyperOutgoingBody;
use wasmtime_wasi_http::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::{HttpResult, WasiHttpCtx, WasiHttpView};

/// Everything the host knows about one component.
pub struct LoadedComponent {
    pub id: String,
    pub pre: wasmtime::component::InstancePre<InstanceState>,
    pub allowed: Arc<AllowedHosts>,
    pub variables: Arc<ComponentVariables>,
    /// The manifest's `environment` table, for WASI `get-environment`.
    pub environment: Vec<(String, String)>,
}

pub struct App {
    pub engine: Engine,
    pub components: HashMap<String, Arc<LoadedComponent>>,
    pub router: Router,
    pub variables: Arc<AppVariables>,
    pub pg_pools: Arc<PgPools>,
    pub manifest: Manifest,
    /// Where self requests go: the HTTP trigger's listening address, once it listens.
    pub self_origin: std::sync::OnceLock<std::net::SocketAddr>,
    /// Outbound HTTP (and self requests) over pooled connections, shared by every component.
    pub http_client: crate::http_client::HttpClient,
}

/// Which trigger started an instance: only HTTP-triggered instances may use service
/// chaining (the cron plugin does not support it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Http,
    Cron,
}

/// Per-instance (per-request) state.
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pg: PgState,
    vars: VariablesState,
    allowed: Arc<AllowedHosts>,
    component: String,
    trigger: TriggerKind,
    /// Set for HTTP-triggered instances only: Spin's cron trigger sets no origin.
    self_origin: Option<std::net::SocketAddr>,
    app: std::sync::Weak<App>,
}

impl InstanceState {
    /// Spin's self request, to `http://self.alt/<path>`: allowed by `http://self` (or any
    /// host), sent over plain HTTP to the app's own listener with that `Host`; without an
    /// origin (cron) it is `HttpRequestUriInvalid`. (A relative URL without any authority
    /// is refused by wasmtime-wasi-http 41's `handle` before it gets here.)
    fn send_self_request(
        &self,
        mut request: hyper::Request<HyperOutgoingBody>,
        mut config: OutgoingRequestConfig,
    ) -> HostFutureIncomingResponse {
        let refuse = |code| HostFutureIncomingResponse::ready(Ok(Err(code)));
        if !self.allowed.allows_self_requests() {
            eprintln!(
                "[{}] Outbound network destination not allowed: self request to {}; add \"http://self\" to allowed_outbound_hosts",
                self.component,
                request.uri()
            );
            return refuse(ErrorCode::HttpRequestDenied);
        }
        let Some(origin) = self.self_origin else {
            eprintln!(
                "[{}] Couldn't handle outbound HTTP request to relative URI; no origin set",
                self.component
            );
            return refuse(ErrorCode::HttpRequestUriInvalid);
        };
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let (Ok(uri), Ok(host)) = (
            format!("http://{origin}{path}").parse::<hyper::Uri>(),
            hyper::header::HeaderValue::from_str(&origin.to_string()),
        ) else {
            return refuse(ErrorCode::HttpRequestUriInvalid);
        };
        *request.uri_mut() = uri;
        request.headers_mut().insert(hyper::header::HOST, host);
        config.use_tls = false;
        self.send_pooled(request, config)
    }

    /// Sends over the app's pooled client (see `http_client`).
    fn send_pooled(
        &self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HostFutureIncomingResponse {
        let Some(app) = self.app.upgrade() else {
            return HostFutureIncomingResponse::ready(Ok(Err(ErrorCode::InternalError(Some(
                "app is shutting down".into(),
            )))));
        };
        let client = app.http_client.clone();
        drop(app);
        let handle =
            wasmtime_wasi::runtime::spawn(async move { Ok(client.send(request, config).await) });
        HostFutureIncomingResponse::pending(handle)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn ctx(&mut self) -> &mut WasiHttpCtx {
        &mut self.http
    }

    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// As Spin's outbound HTTP factor: `outgoing-handler/handle` always returns the future,
    /// and a request the component may not make resolves it to `HttpRequestDenied` (the
    /// guest sees the refusal from `future-incoming-response#get`, not from `handle`).
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        if request.uri().host() == Some(crate::outbound::SELF_REQUEST_HOST) {
            return Ok(self.send_self_request(request, config));
        }
        let url = request.uri().to_string();
        let chaining_target = request
            .uri()
            .host()
            .and_then(|h| h.strip_suffix(crate::outbound::SERVICE_CHAINING_SUFFIX))
            .map(str::to_string);
        let denied = || HostFutureIncomingResponse::ready(Ok(Err(ErrorCode::HttpRequestDenied)));
        if chaining_target.is_some() && self.trigger != TriggerKind::Http {
            eprintln!(
                "[{}] service chaining is only available to HTTP-triggered components: {url}",
                self.component
            );
            return Ok(denied());
        }
        if !self.allowed.allows_url(&url) {
            eprintln!(
                "[{}] Outbound network destination not allowed: {url}; add it to allowed_outbound_hosts",
                self.component
            );
            return Ok(denied());
        }
        if let Some(target) = chaining_target {
            let Some(app) = self.app.upgrade() else {
                return Ok(HostFutureIncomingResponse::ready(Ok(Err(
                    ErrorCode::InternalError(Some("app is shutting down".into())),
                ))));
            };
            let handle = wasmtime_wasi::runtime::spawn(async move {
                Ok(
                    crate::http_trigger::chain(app, &target, request, config.between_bytes_timeout)
                        .await,
                )
            });
            return Ok(HostFutureIncomingResponse::pending(handle));
        }
        Ok(self.send_pooled(request, config))
    }
}

fn engine() -> Result<Engine> {
    let mut config = Config::new();
    config.async_support(true);
    config.wasm_component_model(true);
    // Instances come from a pool of pre-reserved slots, as in Spin: a request's
    // instantiation reuses memory instead of mapping it anew. As Spin 4.0.2 (crates/core),
    // a slot keeps the first 2 MiB of its linear memory and 512 KiB of its tables resident
    // when it is returned (zeroed in place, not given back to the kernel and faulted in
    // again by the next instance).
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(2000)
        .total_core_instances(10_000)
        .total_memories(2000)
        .total_tables(4000)
        .max_memory_size(256 << 20)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(512 << 10);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config.memory_reservation(256 << 20);
    config.memory_guard_size(32 << 20);
    Engine::new(&config)
}

/// Spin also runs a core module as `source` by wrapping it into a component first
/// (spin-componentize). The host does the same for modules built by wit-bindgen ≥ 0.5
/// without WASI preview 1 imports (e.g. `wasm32-unknown-unknown` builds, as Spin's
/// conformance components are); a module that needs the preview 1 adapter, which Spin
/// embeds, is refused with a message.
fn componentize_if_module(bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !wasmparser::Parser::is_core_wasm(&bytes) {
        return Ok(bytes);
    }
    let needs_adapter = wasmparser::Parser::new(0)
        .parse_all(&bytes)
        .filter_map(|payload| match payload {
            Ok(wasmparser::Payload::ImportSection(imports)) => Some(imports),
            _ => None,
        })
        .flat_map(|imports| imports.into_imports())
        .any(|import| import.is_ok_and(|i| i.module == "wasi_snapshot_preview1"));
    if needs_adapter {
        anyhow::bail!(
            "this core module imports wasi_snapshot_preview1: the local host runs components and adapter-free modules only (build for wasm32-wasip2)"
        );
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .and_then(|mut encoder| encoder.encode())
        .context("cannot make a component of this core module")
}

/// Compiles a component, reusing a previous compilation of the same bytes by this engine.
fn load_component(engine: &Engine, path: &Path, cache_dir: &Path) -> Result<Component> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read component {} (run the build first)",
            path.display()
        )
    })?;
    let bytes = componentize_if_module(bytes)?;
    let mut h = Sha256::new();
    h.update(&bytes);
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
    h.update(std::hash::Hasher::finish(&engine_hash).to_le_bytes());
    let cached = cache_dir.join(format!("{}.cwasm", hex::encode(h.finalize())));
    if cached.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash, in a cache folder only this host writes.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(c);
        }
    }
    let compiled = engine.precompile_component(&bytes)?;
    if std::fs::create_dir_all(cache_dir).is_ok() {
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &compiled).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    // SAFETY: `compiled` was produced just above by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

impl App {
    /// Loads `spin.toml`, resolves variables (refusing to start on a missing required one,
    /// as `spin up` does) and pre-instantiates every component.
    pub fn load(
        manifest_path: &Path,
        env: impl Fn(&str) -> Option<String>,
        cache_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let manifest = Manifest::load(manifest_path)?;
        let variables = Arc::new(AppVariables::resolve(&manifest, env)?);
        let engine = engine()?;
        let cache_dir =
            cache_dir.unwrap_or_else(|| manifest.base_dir.join("target/spin-host-cache"));

        let mut linker: Linker<InstanceState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::add_only_http_to_linker_async(&mut linker)?;
        crate::postgres::add_to_linker(&mut linker, |s: &mut InstanceState| &mut s.pg)?;
        crate::variables::add_to_linker(&mut linker, |s: &mut InstanceState| &mut s.vars)?;

        let mut components = HashMap::new();
        for (id, decl) in &manifest.component {
            let hosts = decl
                .allowed_outbound_hosts
                .iter()
                .map(|h| variables.expand(h))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("component {id}: allowed_outbound_hosts"))?;
            let allowed =
                Arc::new(AllowedHosts::parse(&hosts).with_context(|| format!("component {id}"))?);
            let component = load_component(&engine, &manifest.source_path(decl), &cache_dir)
                .with_context(|| format!("component {id}"))?;
            let pre = linker.instantiate_pre(&component).with_context(|| {
                format!("component {id} imports something this host does not provide")
            })?;
            components.insert(
                id.clone(),
                Arc::new(LoadedComponent {
                    id: id.clone(),
                    pre,
                    allowed,
                    variables: Arc::new(ComponentVariables::new(id, decl.variables.clone())),
                    environment: decl
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }),
            );
        }
        for t in &manifest.trigger.cron {
            if components
                .get(&t.component)
                .is_some_and(|c: &Arc<LoadedComponent>| c.allowed.mentions_service_chaining())
            {
                anyhow::bail!(
                    "This application requires the following features that are not available in this version of the 'cron' trigger: local_service_chaining"
                );
            }
        }
        let router = Router::new(manifest.trigger.http.iter().filter_map(|t| match &t.route {
            RouteSpec::Path(p) => Some((p.as_str(), t.component.as_str())),
            RouteSpec::Private { .. } => None,
        }));
        Ok(Self {
            engine,
            components,
            router,
            variables,
            pg_pools: Arc::new(PgPools::new()),
            manifest,
            self_origin: std::sync::OnceLock::new(),
            http_client: crate::http_client::HttpClient::new(),
        })
    }

    /// Fresh per-instance state for `component`, started by `trigger`.
    pub fn instance_state(
        self: &Arc<Self>,
        component: &LoadedComponent,
        trigger: TriggerKind,
    ) -> InstanceState {
        let allowed = component.allowed.clone();
        let pg_allowed = allowed.clone();
        InstanceState {
            wasi: WasiCtx::builder()
                .inherit_stdout()
                .inherit_stderr()
                .envs(&component.environment)
                .build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            pg: PgState::new(
                self.pg_pools.clone(),
                &component.id,
                Arc::new(move |address: &str| pg_allowed.allows_url(address)),
            ),
            vars: VariablesState {
                app: self.variables.clone(),
                component: component.variables.clone(),
            },
            allowed,
            component: component.id.clone(),
            trigger,
            self_origin: match trigger {
                TriggerKind::Http => self.self_origin.get().copied(),
                TriggerKind::Cron => None,
            },
            app: Arc::downgrade(self),
        }
    }
}
