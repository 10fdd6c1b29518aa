//! The retention call a scheduled component makes: `POST {public_base_url}/ops/retention`
//! with the ops token (`ops_token`, SPEC §15). The ops component deletes done outbox rows
//! older than `outbox_retention_days` in bounded batches (`integration.purge_done_outbox`), and the
//! handlers' ledger rows past their window (`integration.purge_ledgers`: deliveries,
//! report_messages, id_map, expired OAuth tokens); the audit log (`event_log`) is never
//! touched. When nothing is old enough the call costs a few index probes. Failures are
//! logged and never fail the caller (the next tick retries).

use ipai_core::log;
use std::time::Duration;

/// Asks the app at `base_url` to purge old done outbox rows and ledger rows; `ops_token`
/// is the token sent (one, not a list).
pub async fn purge(base_url: &str, ops_token: &str) {
    let url = format!("{}/ops/retention", base_url.trim_end_matches('/'));
    let headers = [("authorization", format!("Bearer {ops_token}"))];
    match crate::http::post(&url, &headers, Vec::new(), Duration::from_secs(60)).await {
        Ok((200, body)) => {
            let text = String::from_utf8_lossy(&body);
            if rows_deleted(&body) != Some(0) {
                log::info("retention", None, text);
            }
        }
        Ok((status, body)) => log::error(
            "retention",
            None,
            format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
        ),
        Err(e) => log::error("retention", None, format!("{url}: {e}")),
    }
}

/// Rows an `/ops/retention` answer says were deleted: the outbox's `deleted` plus every
/// ledger's (`ledgers.deleted.*`); `None` when the answer is not that JSON.
fn rows_deleted(body: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let outbox = v.get("deleted")?.as_i64()?;
    let ledgers: i64 = v
        .pointer("/ledgers/deleted")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.values().filter_map(serde_json::Value::as_i64).sum())
        .unwrap_or(0);
    Some(outbox + ledgers)
}

#[cfg(test)]
mod tests {
    use super::rows_deleted;

    #[test]
    fn counts_the_outbox_and_every_ledger() {
        assert_eq!(
            rows_deleted(br#"{"deleted":0,"ledgers":{"deleted":{"a":0,"b":0}}}"#),
            Some(0)
        );
        assert_eq!(
            rows_deleted(br#"{"deleted":0,"ledgers":{"deleted":{"a":0,"b":3}}}"#),
            Some(3)
        );
        assert_eq!(rows_deleted(br#"{"deleted":2}"#), Some(2));
        assert_eq!(rows_deleted(b"oops"), None);
    }
}
