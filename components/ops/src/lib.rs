//! ops: `GET /health`, `GET /metrics`, `GET /ops` (dashboard, HTTP Basic auth user `ops`),
//! `POST /ops/outbox/{id}/requeue` and `GET`/`POST /ops/replay` (replay by filter with its
//! plan; same auth + CSRF token), `POST /ops/retention`
//! (bearer `ops_token`; purges done outbox rows and the handlers' ledgers in bounded
//! batches) and `POST /ops/alerts/evaluate` (bearer `ops_token`; opens, reminds and
//! resolves alerts and sends them to Mattermost / email, see `ipai_ops::alerts`).
//!
//! A thin Spin adapter over `ipai_ops`, which decides everything: this file gathers the
//! request, reads the variables, runs the library's statements on a `db_url` connection
//! (`db_url_probe` for `/health` and `/metrics`, when set) opened on first use, and writes
//! the response.

use ipai_core::log;
use ipai_ops::{Config, Request, Response};
use ipai_spin::http::{headers, method, read_body, BodyError};
use ipai_spin::pg::Pg;
use ipai_spin::vars;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let response = serve(req).await;
    if let Some(hold) = response.hold {
        // A probe refused for lack of connections waits before its 503 (ipai_ops::PROBE_HOLD).
        std::thread::sleep(hold);
    }
    write(out, response).await;
}

async fn serve(req: IncomingRequest) -> Response {
    let config = match Config::from_lookup(vars::optional) {
        Ok(c) => c,
        Err(e) => {
            log::error("ops", None, &e);
            return ipai_ops::misconfigured(&e);
        }
    };
    let path = req.path_with_query().unwrap_or_else(|| "/".into());
    let authority = req.authority();
    let method = method(&req);
    let headers = headers(&req);
    let body = if method.eq_ignore_ascii_case("POST") {
        match read_body(req, ipai_ops::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(BodyError::TooLarge(_)) => return ipai_ops::payload_too_large(),
            Err(e) => {
                log::warn("ops", None, e);
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut entropy = [0u8; 16];
    let random = wasi::random::random::get_random_bytes(16);
    for (e, r) in entropy.iter_mut().zip(random) {
        *e = r;
    }
    let request = Request {
        method,
        headers,
        body,
        now_unix,
        entropy,
        authority,
        ..Default::default()
    }
    .with_path_and_query(&path);
    // Every route logs its database failures with its own context. The anonymous probes
    // connect as their own role (`db_url_probe`, a small connection budget) when it is
    // set, so a flood of them never holds the connections delivery needs.
    let variable =
        if ipai_ops::is_probe_path(&request.path) && vars::optional("db_url_probe").is_some() {
            "db_url_probe"
        } else {
            "db_url"
        };
    let mut db = Pg::logged_by_caller(variable);
    if request.path.trim_end_matches('/') == ipai_ops::alerts::EVALUATE_PATH {
        return evaluate_alerts(&request, &config, &mut db).await;
    }
    ipai_ops::handle(&request, &config, &mut db)
}

/// `POST /ops/alerts/evaluate` (issue #19): the library evaluates and builds every
/// request; this sends them one after another (each with the handlers' 5 s deadline)
/// and lets the library settle the outcomes. Called by dispatch-cron after `/dispatch`,
/// in its own request, so a slow or failing alert channel never touches a dispatcher run.
async fn evaluate_alerts(request: &Request, config: &Config, db: &mut Pg) -> Response {
    let alert_config = ipai_ops::alerts::AlertConfig::from_lookup(vars::optional);
    let plan = match ipai_ops::alerts::begin(request, config, alert_config.as_ref(), db) {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    let mut outcomes = Vec::with_capacity(plan.deliveries.len());
    for delivery in &plan.deliveries {
        let mut results = Vec::with_capacity(delivery.requests.len());
        for (_, prepared) in &delivery.requests {
            results.push(match prepared {
                Err(e) => Err(e.clone()),
                Ok(out) => send(out).await,
            });
        }
        outcomes.push(results);
    }
    ipai_ops::alerts::finish(&plan, &outcomes, db)
}

/// One alert request: `Ok` on a 2xx answer, else the status and the start of the body.
async fn send(out: &ipai_ops::alerts::Outgoing) -> Result<(), String> {
    let headers: Vec<(&str, String)> = out.headers.iter().map(|(k, v)| (*k, v.clone())).collect();
    match ipai_spin::http::post(&out.url, &headers, out.body.clone(), ALERT_SEND_TIMEOUT).await {
        Ok((status, _)) if (200..300).contains(&status) => Ok(()),
        Ok((status, body)) => {
            let cut = &body[..body.len().min(300)];
            Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(cut).trim()
            ))
        }
        Err(e) => Err(e),
    }
}

/// Deadline of one alert request.
const ALERT_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn write(out: ResponseOutparam, r: Response) {
    ipai_spin::http::respond_with_headers(out, r.status, r.headers, r.body).await
}
