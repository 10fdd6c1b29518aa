//! Spin-free logic of the ops component (SPEC §9): `/health`, `/metrics`, the `/ops`
//! dashboard with its requeue form, and `/ops/retention`.
//!
//! The component gathers the request into a [`Request`], reads its variables into a
//! [`Config`], and lets [`handle`] decide everything; the database is behind the
//! [`Database`] trait (one row, one column per statement), so every route is unit-tested
//! natively with a fake.

pub mod alerts;
pub mod auth;
pub mod chart;
pub mod csrf;
pub mod data;
pub mod html;
pub mod metrics;

pub use ipai_core::db::{Database, DbError, Param};
pub use ipai_core::ApiError;

use data::{DashboardData, HealthData, MetricsData, QUEUE_STATUSES};
use ipai_core::log;
use serde_json::{json, Value};

/// Largest request body the component reads (the requeue form is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// `/ops/retention` runs at most this many purge batches per request.
pub const RETENTION_MAX_BATCHES: i64 = 50;

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
    /// `dispatch_token`: bearer of `/ops/retention`.
    pub dispatch_token: Option<String>,
    /// `metrics_token`: when set, `/metrics` needs it as a bearer token.
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
    /// `approval_expiry_days` (default 14, 1–365): how long approval buttons stay valid;
    /// the ledgers that judge a click keep their rows at least one day longer.
    pub approval_expiry_days: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ops_password: None,
            dispatch_token: None,
            metrics_token: None,
            max_pending_age_s: 300.0,
            lock_timeout_s: 600,
            retention_days: 7,
            retention_batch: 1000,
            ledger_retention_days: 30,
            approval_expiry_days: 14,
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
            dispatch_token: get("dispatch_token"),
            metrics_token: get("metrics_token"),
            max_pending_age_s: number(&get, "health_max_pending_age_s", 300.0, 1.0, 1e9)?,
            lock_timeout_s: number(&get, "outbox_lock_timeout_s", 600, 1, 86_400)?,
            retention_days: number(&get, "outbox_retention_days", 7, 0, 36_500)?,
            retention_batch: number(&get, "retention_batch_size", 1000, 1, 10_000)?,
            ledger_retention_days: number(&get, "ledger_retention_days", 30, 1, 36_500)?,
            approval_expiry_days: number(&get, "approval_expiry_days", 14, 1, 365)?,
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

/// Serves one request.
pub fn handle(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let path = req.path.trim_end_matches('/');
    match path {
        "/health" => only(req, &["GET", "HEAD"]).unwrap_or_else(|| health(req, cfg, db)),
        "/metrics" => only(req, &["GET", "HEAD"]).unwrap_or_else(|| metrics(req, cfg, db)),
        "/ops/retention" => only(req, &["POST"]).unwrap_or_else(|| retention(req, cfg, db)),
        _ if path == "/ops" || path.starts_with("/ops/") => {
            if let Some(refusal) = basic_auth(req, cfg) {
                return refusal;
            }
            if path == "/ops" {
                return only(req, &["GET", "HEAD"]).unwrap_or_else(|| dashboard(req, cfg, db));
            }
            match requeue_id(path) {
                Some(id) => only(req, &["POST"]).unwrap_or_else(|| requeue(req, cfg, db, id)),
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

fn requeue_id(path: &str) -> Option<&str> {
    let id = path
        .strip_prefix("/ops/outbox/")?
        .strip_suffix("/requeue")?;
    (!id.contains('/')).then_some(id)
}

fn basic_auth(req: &Request, cfg: &Config) -> Option<Response> {
    let Some(password) = cfg.ops_password.as_deref() else {
        return Some(misconfigured(
            "variable ops_password is not set: set SPIN_VARIABLE_OPS_PASSWORD",
        ));
    };
    if auth::basic_matches(req.header("authorization"), password) {
        None
    } else {
        Some(
            ApiError::unauthorized("user ops and the ops password are required")
                .with_header("www-authenticate", auth::CHALLENGE)
                .into(),
        )
    }
}

fn head_strip(req: &Request, mut r: Response) -> Response {
    if req.is("HEAD") {
        r.body.clear();
    }
    r
}

fn health(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let lock = cfg.lock_timeout_s.to_string();
    let result = value(db, &data::health_sql(), &[lock]).and_then(decode::<HealthData>);
    let r = match result {
        Err(e) => {
            log::error("ops", None, format_args!("/health: {e}"));
            // A busy database (a statement timeout) answered: "error", as before Busy
            // was told apart from other failures.
            let db_state = match e {
                DbError::Unavailable(_) => "unreachable",
                DbError::Busy(_) | DbError::Failed(_) | DbError::Misconfigured(_) => "error",
            };
            Response::json(
                503,
                &json!({"status": "unhealthy", "db": db_state,
                        "problems": [format!("database {db_state}")]}),
            )
            .with("retry-after", "5")
        }
        Ok(h) => {
            let mut problems = Vec::new();
            if let Some(age) = h.oldest_pending_age_s {
                if age > cfg.max_pending_age_s {
                    problems.push(format!(
                        "the oldest pending event has waited {} s (limit {} s): is dispatch running?",
                        age.round(),
                        cfg.max_pending_age_s
                    ));
                }
            }
            let queue: serde_json::Map<String, Value> = QUEUE_STATUSES
                .iter()
                .map(|s| (s.to_string(), json!(h.counts.get(*s).copied().unwrap_or(0))))
                .collect();
            let ok = problems.is_empty();
            Response::json(
                if ok { 200 } else { 503 },
                &json!({
                    "status": if ok { "ok" } else { "unhealthy" },
                    "db": "ok",
                    "queue": queue,
                    "oldest_pending_age_s": h.oldest_pending_age_s,
                    "dead": h.counts.get("dead").copied().unwrap_or(0),
                    "stuck_processing": h.stuck_processing,
                    "max_pending_age_s": cfg.max_pending_age_s,
                    "problems": problems,
                }),
            )
        }
    };
    head_strip(req, r)
}

fn metrics(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    if let Some(token) = cfg.metrics_token.as_deref() {
        if !ipai_core::auth::bearer_matches(req.header("authorization"), token) {
            return ApiError::unauthorized("missing or wrong bearer token")
                .with_header("www-authenticate", "Bearer realm=\"IPAI metrics\"")
                .into();
        }
    }
    let lock = cfg.lock_timeout_s.to_string();
    let data = match value(db, &data::metrics_sql(), &[lock]).and_then(decode::<MetricsData>) {
        Ok(d) => Some(d),
        Err(e) => {
            log::error("ops", None, format_args!("/metrics: {e}"));
            None
        }
    };
    let mut text = metrics::render(data.as_ref());
    // Open alerts (issue #19): one indexed read of integration.alerts.
    match alerts::open_alerts(db) {
        Ok(open) => text.push_str(&alerts::render_metrics(&open)),
        Err(e) => log::error("ops", None, format_args!("/metrics: alerts: {e}")),
    }
    head_strip(req, Response::new(200, metrics::CONTENT_TYPE, text))
}

fn dashboard(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let password = cfg.ops_password.as_deref().unwrap_or_default();
    let existing = csrf::session_from_cookie(req.header("cookie"));
    let session = existing
        .clone()
        .unwrap_or_else(|| csrf::new_session(&req.entropy));
    let token = csrf::token(password, &session, req.now_unix);
    let lock = cfg.lock_timeout_s.to_string();
    let mut r = match value(db, &data::dashboard_sql(), &[lock]).and_then(decode::<DashboardData>) {
        Err(e) => {
            log::error("ops", None, format_args!("/ops: {e}"));
            Response::html(
                503,
                html::message_page(
                    "Database unreachable",
                    "The ops dashboard cannot reach PostgreSQL; see /health and the runtime log.",
                ),
            )
            .with("retry-after", "5")
        }
        Ok(d) => {
            let mut page = html::dashboard(
                &d,
                &html::PageContext {
                    csrf_token: &token,
                    notice: html::Notice::from_query(&req.query),
                    max_pending_age_s: cfg.max_pending_age_s,
                    lock_timeout_s: cfg.lock_timeout_s,
                },
            );
            // Open alerts at the top of the page (issue #19).
            match alerts::open_alerts(db) {
                Ok(open) => {
                    let banner = alerts::render_banner(&open, "");
                    page = page.replacen("<main>", &format!("<main>{banner}"), 1);
                }
                Err(e) => log::error("ops", None, format_args!("/ops: alerts: {e}")),
            }
            Response::html(200, page)
        }
    };
    if existing.is_none() {
        r = r.with("set-cookie", csrf::session_cookie(&session, req.is_https()));
    }
    head_strip(req, r)
}

fn requeue(req: &Request, cfg: &Config, db: &mut dyn Database, id: &str) -> Response {
    let password = cfg.ops_password.as_deref().unwrap_or_default();
    let checked = csrf::check_origin(
        req.header("sec-fetch-site"),
        req.header("origin"),
        req.own_authority().as_deref(),
    )
    .and_then(|_| {
        csrf::verify_token(
            password,
            csrf::session_from_cookie(req.header("cookie")).as_deref(),
            req.form_field("csrf").as_deref(),
            req.now_unix,
        )
    });
    if let Err(e) = checked {
        return if req.wants_json() {
            ApiError::new(403, "csrf_rejected", e.to_string()).into()
        } else {
            Response::html(403, html::message_page("Request refused", &e.to_string()))
        };
    }
    if !data::is_uuid(id) {
        return ApiError::new(404, "not_found", "the event id is not a UUID").into();
    }
    match value(db, data::REQUEUE_SQL, &[id.to_string()]) {
        Err(e) => {
            log::error("ops", Some(id), format_args!("requeue: {e}"));
            ApiError::database_unavailable("could not requeue: database error")
                .retry_after(5)
                .into()
        }
        Ok(v) => {
            let requeued = v.as_bool().unwrap_or(false);
            if requeued {
                log::info("ops", Some(id), "requeued by the operator");
            }
            if req.wants_json() {
                Response::json(200, &json!({"id": id, "requeued": requeued}))
            } else {
                let key = if requeued { "requeued" } else { "unchanged" };
                Response::new(303, "text/plain; charset=utf-8", "See Other")
                    .with("location", format!("/ops?{key}={id}"))
            }
        }
    }
}

fn retention(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let Some(token) = cfg.dispatch_token.as_deref() else {
        return misconfigured("variable dispatch_token is not set");
    };
    if !ipai_core::auth::bearer_matches(req.header("authorization"), token) {
        return ApiError::unauthorized("missing or wrong bearer token").into();
    }
    let params = [
        cfg.retention_days.to_string(),
        cfg.retention_batch.to_string(),
    ];
    let (mut deleted, mut batches, mut more) = (0i64, 0i64, false);
    while batches < RETENTION_MAX_BATCHES {
        let n = match value(db, data::PURGE_SQL, &params) {
            Ok(v) => v.as_i64().unwrap_or(0),
            Err(e) => {
                log::error(
                    "ops",
                    None,
                    format_args!("retention: {e} (deleted {deleted} rows before)"),
                );
                return purge_failed("purge failed", deleted, batches);
            }
        };
        batches += 1;
        deleted += n;
        more = n >= cfg.retention_batch;
        if !more {
            break;
        }
    }
    // Expired replay-protection digests: one bounded batch, best effort (ingest deletes
    // them too).
    if let Err(e) = value(db, data::PURGE_SIGNATURES_SQL, &["10000".to_string()]) {
        log::warn(
            "ops",
            None,
            format_args!("retention: expired signatures: {e}"),
        );
    }
    if deleted > 0 {
        log::info(
            "ops",
            None,
            format_args!(
                "retention deleted {deleted} done outbox rows older than {} days in {batches} batches",
                cfg.retention_days
            ),
        );
    }
    let ledgers = match purge_ledgers(cfg, db) {
        Ok(l) => l,
        Err(e) => {
            log::error("ops", None, format_args!("retention: ledgers: {e}"));
            return purge_failed("ledger purge failed", deleted, batches);
        }
    };
    Response::json(
        200,
        &json!({"deleted": deleted, "batches": batches, "more": more,
                "older_than_days": cfg.retention_days, "batch_size": cfg.retention_batch,
                "ledgers": ledgers}),
    )
}

/// 503 `database_unavailable` (retry after 5 s) whose body also says how far the purge
/// got: the [`ApiError`] body plus `deleted` and `batches`.
fn purge_failed(message: &str, deleted: i64, batches: i64) -> Response {
    let mut r = Response::from(ApiError::database_unavailable(message).retry_after(5));
    let mut body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    body["deleted"] = json!(deleted);
    body["batches"] = json!(batches);
    r.body = body.to_string().into_bytes();
    r
}

/// The handlers' ledgers (`integration.purge_ledgers`): batches until every ledger is
/// caught up or `RETENTION_MAX_BATCHES` is spent. Returns rows deleted per ledger,
/// `older_than_days` and `more` (a ledger had a full last batch).
fn purge_ledgers(cfg: &Config, db: &mut dyn Database) -> Result<Value, DbError> {
    let params = [
        cfg.ledger_window_days().to_string(),
        cfg.retention_batch.to_string(),
    ];
    let mut deleted = serde_json::Map::new();
    let mut more = false;
    for _ in 0..RETENTION_MAX_BATCHES {
        let counts = value(db, data::PURGE_LEDGERS_SQL, &params)?;
        let counts = counts.as_object().cloned().unwrap_or_default();
        more = false;
        for (ledger, n) in counts {
            let n = n.as_i64().unwrap_or(0);
            more |= n >= cfg.retention_batch;
            let total = deleted.get(&ledger).and_then(Value::as_i64).unwrap_or(0) + n;
            deleted.insert(ledger, json!(total));
        }
        if !more {
            break;
        }
    }
    let total: i64 = deleted.values().filter_map(Value::as_i64).sum();
    if total > 0 {
        log::info(
            "ops",
            None,
            format_args!(
                "retention deleted {total} ledger rows older than {} days: {}",
                cfg.ledger_window_days(),
                Value::Object(deleted.clone())
            ),
        );
    }
    Ok(json!({"deleted": deleted, "more": more, "older_than_days": cfg.ledger_window_days()}))
}

#[cfg(test)]
mod tests;
