//! dispatch-cron: the safety net under the ingest kick. On every tick of its
//! `[[trigger.cron]]` schedule it calls the app's own `POST /dispatch` over HTTP (a cron
//! component may not use service chaining: the cron plugin refuses an app where it even
//! lists a `*.spin.internal` host), so events are delivered even if a kick was lost.
//! A run that stopped because its time budget ran out (`"budget_spent": true`) is
//! followed at once by the next (up to `MAX_RUNS_BACK_TO_BACK`), so a backlog drains
//! without waiting a tick between runs. After the runs it asks the ops component to
//! evaluate the alerts (`POST /ops/alerts/evaluate`, issue #19). One token per door
//! (SPEC §15): `/dispatch` gets `dispatch_token`, the ops calls (`/ops/retention`,
//! `/ops/alerts/evaluate`) get `ops_token`; from a comma list (rotation) the first.

use ipai_core::log;
use ipai_spin::dispatch_runs::run_back_to_back;
use ipai_spin::vars;
use std::time::Duration;

const COMPONENT: &str = "dispatch-cron";

spin_sdk::wit_bindgen::generate!({
    world: "spin-cron",
    path: "../../wit/deps/spin-cron@2.0.0",
    runtime_path: "spin_sdk::wit_bindgen::rt",
});

struct DispatchCron;

impl Guest for DispatchCron {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        spin_sdk::http::run(async move { tick(metadata.timestamp).await }).map_err(Error::Other)
    }
}

export!(DispatchCron);

async fn tick(timestamp: u64) -> Result<(), String> {
    let base = vars::required("public_base_url")?;
    let dispatch_token = vars::sending_token("dispatch_token")?;
    // A missing ops_token fails only the ops calls (logged each tick), never delivery.
    let ops_token = vars::sending_token("ops_token");
    let base = base.trim_end_matches('/').to_string();
    let url = format!("{base}/dispatch");
    let headers = [("authorization", format!("Bearer {dispatch_token}"))];
    let ops_headers = ops_token
        .as_ref()
        .map(|token| [("authorization", format!("Bearer {token}"))]);
    // Retention: POST /ops/retention purges done outbox rows older than outbox_retention_days.
    match &ops_token {
        Ok(token) => ipai_spin::retention::purge(&base, token).await,
        Err(e) => log::error(
            COMPONENT,
            None,
            format!("tick {timestamp}: retention skipped: {e}"),
        ),
    }
    let result = dispatch(timestamp, &url, &headers).await;
    // Alerts (issue #19): evaluated after the run, in a request of their own to the ops
    // component, so sending an alert never delays or fails a dispatcher run; evaluated
    // whatever the run's outcome (a failing /dispatch is what a stalled-queue alert is for).
    match &ops_headers {
        Ok(ops_headers) => evaluate_alerts(timestamp, &base, ops_headers).await,
        Err(e) => log::error(
            COMPONENT,
            None,
            format!("tick {timestamp}: alerts skipped: {e}"),
        ),
    }
    result
}

/// `POST {public_base_url}/ops/alerts/evaluate`: failures are logged, never returned
/// (the next tick evaluates again and retries the sends left).
async fn evaluate_alerts(timestamp: u64, base: &str, headers: &[(&str, String)]) {
    let url = format!("{base}/ops/alerts/evaluate");
    match ipai_spin::http::post(&url, headers, Vec::new(), Duration::from_secs(60)).await {
        Ok((200, body)) => {
            let text = String::from_utf8_lossy(&body);
            let quiet = [
                "\"sent\":0",
                "\"failed\":[]",
                "\"opened\":[]",
                "\"resolved\":[]",
            ];
            if !quiet.iter().all(|q| text.contains(q)) {
                log::info(COMPONENT, None, format!("tick {timestamp}: alerts: {text}"));
            }
        }
        Ok((status, body)) => log::error(
            COMPONENT,
            None,
            format!(
                "tick {timestamp}: {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        ),
        Err(e) => log::error(COMPONENT, None, format!("tick {timestamp}: {url}: {e}")),
    }
}

/// `POST /dispatch`, again at once while a run stops on its budget; each run that
/// claimed something is logged.
async fn dispatch(timestamp: u64, url: &str, headers: &[(&str, String)]) -> Result<(), String> {
    run_back_to_back(url, headers, |run| {
        if !run.contains("\"claimed\":0") {
            log::info(COMPONENT, None, format!("tick {timestamp}: {run}"));
        }
    })
    .await
    .map_err(|e| format!("dispatch-cron {timestamp}: {e}"))
}
