//! dispatch-cron: the safety net under the ingest kick. On every tick of its
//! `[[trigger.cron]]` schedule it calls the app's own `POST /dispatch` over HTTP (a cron
//! component may not use service chaining: the cron plugin refuses an app where it even
//! lists a `*.spin.internal` host), so events are delivered even if a kick was lost.

use ipai_spin::vars;
use std::time::Duration;

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
    let token = vars::required("dispatch_token")?;
    let url = format!("{}/dispatch", base.trim_end_matches('/'));
    let headers = [("authorization", format!("Bearer {token}"))];
    // Retention: POST /ops/retention purges done outbox rows older than outbox_retention_days.
    ipai_spin::retention::purge(&base, &token).await;
    match ipai_spin::http::post(&url, &headers, Vec::new(), Duration::from_secs(60)).await {
        Ok((200, body)) => {
            let text = String::from_utf8_lossy(&body);
            if !text.contains("\"claimed\":0") {
                println!("dispatch-cron {timestamp}: {text}");
            }
            Ok(())
        }
        Ok((status, body)) => Err(format!(
            "dispatch-cron {timestamp}: {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(e) => Err(format!("dispatch-cron {timestamp}: {url}: {e}")),
    }
}
