//! Spin-free logic of the ops component (SPEC §9): `/health`, `/metrics`, the `/ops`
//! dashboard with its requeue form, the replay page `/ops/replay` (SPEC §12), and
//! `/ops/retention`.
//!
//! The component gathers the request into a [`Request`], reads its variables into a
//! [`Config`], and lets [`handle`] decide everything; the database is behind the
//! [`Database`] trait (one row, one column per statement), so every route is unit-tested
//! natively with a fake.
//!
//! This file holds what every route shares: the request and response types, the
//! variables, the router [`handle`] with its method and Basic-auth guards, and the one
//! way a route reads a statement's value. Each route is a file of `routes/`; the alert
//! evaluation route is [`alerts`].

pub mod alerts;
pub mod auth;
pub mod chart;
pub mod csrf;
pub mod data;
pub mod html;
pub mod metrics;
pub mod reconcile_panel;
mod routes;

pub use ipai_core::db::{Database, DbError, Param};
pub use ipai_core::ApiError;

use routes::{dashboard, health, metrics as metrics_route, replay, requeue, retention};
use serde_json::Value;

/// Largest request body the component reads (the requeue and replay forms are a few
/// hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// `/ops/retention` runs at most this many purge batches per request.
pub const RETENTION_MAX_BATCHES: i64 = 50;
/// The 401 of the cron's ops calls (`/ops/retention`, `/ops/alerts/evaluate`).
pub const OPS_TOKEN_REFUSAL: &str =
    "missing or wrong bearer token (Authorization: Bearer <ops_token>)";

/// One HTTP request, as the component saw it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string (e.g. `/ops/outbox/<id>/requeue`).
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wall clock, Unix seconds (CSRF token issue/expiry).
    pub now_unix: i64,
    /// 16 random bytes (a new session id, if one is needed).
    pub entropy: [u8; 16],
    /// The request's authority (`host:port`) as the runtime reports it, if any.
    pub authority: Option<String>,
}

impl Request {
    /// Splits `path?query`.
    pub fn with_path_and_query(mut self, path_and_query: &str) -> Self {
        let (p, q) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        self.path = if p.is_empty() { "/".into() } else { p.into() };
        self.query = q.into();
        self
    }

    /// A header's first value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        ipai_core::headers::header(&self.headers, name)
    }

    fn is(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }

    fn form_field(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn is_https(&self) -> bool {
        self.header("spin-full-url")
            .is_some_and(|u| u.starts_with("https://"))
            || self
                .header("x-forwarded-proto")
                .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// This request's own `host[:port]`: the `Host` header, else the authority of Spin's
    /// `spin-full-url` (WASI HTTP hands `Host` to the guest as the request authority, not
    /// as a header; the component passes that as [`Request::authority`]).
    pub fn own_authority(&self) -> Option<String> {
        if let Some(h) = self.header("host").filter(|h| !h.is_empty()) {
            return Some(h.to_string());
        }
        if let Some(a) = self.authority.as_deref().filter(|a| !a.is_empty()) {
            return Some(a.to_string());
        }
        let url = self.header("spin-full-url")?;
        let rest = url.split_once("://")?.1;
        let authority = rest.split(['/', '?']).next()?;
        (!authority.is_empty()).then(|| authority.to_string())
    }

    fn wants_json(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
    }
}

/// The response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When set, the adapter answers no sooner than this: a probe refused because its
    /// role's connections are all in use is held ([`PROBE_HOLD`]), so a flood of anonymous
    /// probes waits instead of turning into a storm of refused PostgreSQL connections.
    pub hold: Option<std::time::Duration>,
}

/// How long a probe refused for lack of connections is held before its 503 (issue #34:
/// under real Spin, whose pool opens a new connection for every probe beyond the probe
/// role's four, each refusal costs PostgreSQL a backend fork; a client looping on `/health`
/// would otherwise cause hundreds a second).
pub const PROBE_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a failed statement means the role's connection budget is spent (PostgreSQL's
/// "too many connections", SQLSTATE 53300), not that the database is down.
pub fn budget_spent(e: &DbError) -> bool {
    matches!(e, DbError::Unavailable(m) | DbError::Failed(m)
        if m.contains("too many connections") || m.contains("53300"))
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), "no-store".into()),
                ("x-content-type-options".into(), "nosniff".into()),
            ],
            body: body.into(),
            hold: None,
        }
    }

    fn json(status: u16, body: &Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    fn html(status: u16, body: String) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
            .with(
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            )
            .with("x-frame-options", "DENY")
            .with("referrer-policy", "same-origin")
    }

    fn held(mut self, hold: Option<std::time::Duration>) -> Self {
        self.hold = hold;
        self
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A header's value (tests).
    pub fn header(&self, name: &str) -> Option<&str> {
        ipai_core::headers::header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Every JSON error the component answers: the [`ApiError`]'s status, its headers after
/// the security headers every response carries, and its one `{"error", "message"}` body.
impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        let mut r = Response::new(e.status, "application/json", e.body());
        for (name, value) in e.headers {
            r = r.with(name, value);
        }
        r
    }
}

/// 413 for a body over [`MAX_BODY_BYTES`].
pub fn payload_too_large() -> Response {
    ApiError::payload_too_large(format!("the body exceeds {MAX_BODY_BYTES} bytes")).into()
}

/// 500 for a variable that cannot be used.
pub fn misconfigured(message: &str) -> Response {
    ApiError::misconfigured(message).into()
}

/// The component's variables, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `ops_password`: Basic auth of `/ops` (user `ops`).
    pub ops_password: Option<String>,
    /// `ops_token`: bearer of `/ops/retention` and `/ops/alerts/evaluate` (the cron's ops
    /// calls); a comma list during a rotation.
    pub ops_token: Option<String>,
    /// `metrics_token`: when set, `/metrics` needs it (or one of its comma list) as a
    /// bearer token.
    pub metrics_token: Option<String>,
    /// `health_max_pending_age_s` (default 300): `/health` is 503 past it.
    pub max_pending_age_s: f64,
    /// `outbox_lock_timeout_s` (default 600): processing rows locked longer are stuck.
    pub lock_timeout_s: i64,
    /// `outbox_retention_days` (default 7): done rows older than this are purged.
    pub retention_days: i64,
    /// `retention_batch_size` (default 1000, 1–10000): rows per purge batch.
    pub retention_batch: i64,
    /// `ledger_retention_days` (default 30, 1–36500): the handlers' ledgers (deliveries,
    /// report_messages, id_map) keep rows at least this long (`integration.purge_ledgers`).
    pub ledger_retention_days: i64,
    /// `approval_expiry_days` (default 7, 1–365): how long approval buttons stay valid;
    /// the ledgers that judge a click keep their rows at least one day longer.
    pub approval_expiry_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ops_password: None,
            ops_token: None,
            metrics_token: None,
            max_pending_age_s: 300.0,
            lock_timeout_s: 600,
            retention_days: 7,
            retention_batch: 1000,
            ledger_retention_days: 30,
            approval_expiry_days: 7,
        }
    }
}

fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, String> {
    ipai_core::settings::number(name, get(name).as_deref(), default, min, max)
}

impl Config {
    /// Days the handlers' ledger rows live at least: `ledger_retention_days`, and always
    /// longer than an approval message's buttons (a click is judged by the ledgers).
    pub fn ledger_window_days(&self) -> i64 {
        self.ledger_retention_days
            .max(self.approval_expiry_days + 1)
    }

    /// Reads the variables through `get` (unset or empty → `None`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        Ok(Self {
            ops_password: get("ops_password"),
            ops_token: get("ops_token"),
            metrics_token: get("metrics_token"),
            max_pending_age_s: number(&get, "health_max_pending_age_s", 300.0, 1.0, 1e9)?,
            lock_timeout_s: number(&get, "outbox_lock_timeout_s", 600, 1, 86_400)?,
            retention_days: number(&get, "outbox_retention_days", 7, 0, 36_500)?,
            retention_batch: number(&get, "retention_batch_size", 1000, 1, 10_000)?,
            ledger_retention_days: number(&get, "ledger_retention_days", 30, 1, 36_500)?,
            approval_expiry_days: number(&get, "approval_expiry_days", 7, 1, 365)?,
        })
    }
}

/// One statement's value, every parameter bound as text (the SQL casts it, e.g.
/// `$1::text::int`). Every statement of the component returns one row; no row and NULL
/// both read as `Value::Null`.
pub(crate) fn value(db: &mut dyn Database, sql: &str, params: &[String]) -> Result<Value, DbError> {
    let params: Vec<Param> = params.iter().map(|p| Param::Text(p.clone())).collect();
    Ok(db.query_value(sql, &params)?.unwrap_or(Value::Null))
}

/// A statement's JSON value as the type the route reads.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, DbError> {
    serde_json::from_value(v).map_err(|e| DbError::Failed(format!("unexpected result: {e}")))
}

/// Whether `path` is one of the probes (`/health`, `/metrics`): anonymous by default, so
/// the component connects for them as the probe role (`db_url_probe`) when it is set.
pub fn is_probe_path(path: &str) -> bool {
    matches!(path.trim_end_matches('/'), "/health" | "/metrics")
}

/// Serves one request.
pub fn handle(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let path = req.path.trim_end_matches('/');
    match path {
        "/health" => only(req, &["GET", "HEAD"]).unwrap_or_else(|| health::health(req, cfg, db)),
        "/metrics" => {
            only(req, &["GET", "HEAD"]).unwrap_or_else(|| metrics_route::metrics(req, cfg, db))
        }
        "/ops/retention" => {
            only(req, &["POST"]).unwrap_or_else(|| retention::retention(req, cfg, db))
        }
        _ if path == "/ops" || path.starts_with("/ops/") => {
            if let Some(refusal) = basic_auth(req, cfg, db) {
                return refusal;
            }
            if path == "/ops" {
                return only(req, &["GET", "HEAD"])
                    .unwrap_or_else(|| dashboard::dashboard(req, cfg, db));
            }
            if path == replay::PATH {
                return only(req, &["GET", "HEAD", "POST"]).unwrap_or_else(|| {
                    if req.is("POST") {
                        replay::execute(req, cfg, db)
                    } else {
                        replay::page(req, cfg, db)
                    }
                });
            }
            match requeue::requeue_id(path) {
                Some(id) => {
                    only(req, &["POST"]).unwrap_or_else(|| requeue::requeue(req, cfg, db, id))
                }
                None => ApiError::new(404, "not_found", "no such ops page").into(),
            }
        }
        _ => ApiError::new(404, "not_found", "no such route").into(),
    }
}

/// 405 unless the method is one of `allowed`.
fn only(req: &Request, allowed: &[&str]) -> Option<Response> {
    if allowed.iter().any(|m| req.is(m)) {
        None
    } else {
        let list = allowed.join(", ");
        Some(ApiError::method_not_allowed(format!("use {list}"), &list).into())
    }
}

/// The guard of every `/ops` page: HTTP Basic auth, user `ops`, password `ops_password`,
/// throttled per client address ([`auth`]): while throttled, 429 with `Retry-After`
/// whatever the password; a throttle that cannot be asked is 503 (nothing served unasked).
fn basic_auth(req: &Request, cfg: &Config, db: &mut dyn Database) -> Option<Response> {
    let Some(password) = cfg.ops_password.as_deref() else {
        return Some(misconfigured(
            "variable ops_password is not set: set SPIN_VARIABLE_OPS_PASSWORD",
        ));
    };
    let matched = auth::basic_matches(req.header("authorization"), password);
    let client = auth::client_address(req.header("spin-client-addr"));
    let attempt = value(
        db,
        auth::AUTH_ATTEMPT_SQL,
        &[client.clone(), (!matched).to_string()],
    )
    .and_then(|v| {
        v.as_i64()
            .ok_or_else(|| DbError::Failed(format!("unexpected result {v}")))
    });
    match attempt {
        Ok(0) if matched => None,
        Ok(0) => Some(
            ApiError::unauthorized("user ops and the ops password are required")
                .with_header("www-authenticate", auth::CHALLENGE)
                .into(),
        ),
        Ok(wait) => {
            ipai_core::log::warn(
                "ops",
                None,
                format_args!("/ops: {client} throttled for {wait} s after failed logins"),
            );
            Some(
                ApiError::new(
                    429,
                    "too_many_failed_logins",
                    format!("too many failed logins from this address; try again in {wait} s"),
                )
                .retry_after(wait.clamp(1, 3600) as u32)
                .into(),
            )
        }
        Err(e) => {
            ipai_core::log::error("ops", None, format_args!("/ops: login throttle: {e}"));
            Some(
                ApiError::database_unavailable(
                    "the login throttle cannot reach the database; try again shortly",
                )
                .retry_after(5)
                .into(),
            )
        }
    }
}

/// `HEAD`: the `GET` answer without its body.
fn head_strip(req: &Request, mut r: Response) -> Response {
    if req.is("HEAD") {
        r.body.clear();
    }
    r
}

#[cfg(test)]
mod tests;
