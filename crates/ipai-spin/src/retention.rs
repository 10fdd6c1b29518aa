//! The retention call a scheduled component makes: `POST {public_base_url}/ops/retention`
//! with the dispatch token. The ops component deletes done outbox rows older than
//! `outbox_retention_days` in bounded batches (`integration.purge_done_outbox`); the audit
//! log (`event_log`) is never touched. When nothing is old enough the call costs one
//! index probe. Failures are logged and never fail the caller (the next tick retries).

use std::time::Duration;

/// Asks the app at `base_url` to purge old done outbox rows.
pub async fn purge(base_url: &str, token: &str) {
    let url = format!("{}/ops/retention", base_url.trim_end_matches('/'));
    let headers = [("authorization", format!("Bearer {token}"))];
    match crate::http::post(&url, &headers, Vec::new(), Duration::from_secs(60)).await {
        Ok((200, body)) => {
            let text = String::from_utf8_lossy(&body);
            if !text.contains("\"deleted\":0") {
                println!("retention: {text}");
            }
        }
        Ok((status, body)) => eprintln!(
            "retention: {url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(e) => eprintln!("retention: {url}: {e}"),
    }
}
