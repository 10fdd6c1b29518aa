//! The outbox contract as the Rust side calls it: the SQL text of each call to the queue's
//! functions (`migrations/*_outbox_functions.sql`, `*_app_roles_dispatch_lease.sql`,
//! `*_hostile_input.sql` — the functions carry the guarantees; nothing here re-implements
//! them), the parameters in placeholder order, and the row each call returns, decoded.
//! The ingest and dispatcher components bind these and run them; everything else about a
//! call is written once, here.
//!
//! Every statement returns exactly one row (Spin 4.0.2 never completes a query with no
//! rows) and no `timestamptz` column (Spin 4.0.2 cannot read one). JSON crosses as text,
//! never as a `jsonb` parameter or column: Spin's host re-encodes those through a
//! `serde_json::Value` without `arbitrary_precision`, which rounds every number beyond 64
//! bits or 17 significant digits (SPEC §3: numbers are kept exactly).

use crate::dispatch::EventEnvelope;
use std::sync::LazyLock;

/// `ingest_event` + the kick decision, in one round trip and one transaction.
///
/// Parameters: $1 event_type, $2 aggregate_type, $3 aggregate_id, $4 payload (JSON text),
/// $5 idempotency_key, $6 body_sha256, $7 occurred_at (RFC 3339 text or NULL), $8 source,
/// $9 kick on (bool), $10 signature digest (text or NULL).
///
/// Row: [`IngestOutcome`] — `(id text, duplicate, conflict, replayed, start_run)`. For a
/// new event with the kick on, `request_dispatch()` decides in the same transaction
/// whether this request must start a dispatcher run (true) or a run already going will
/// claim again. A signature already accepted under another key comes back `replayed`,
/// nothing stored and no kick.
pub const INGEST_SQL: &str = "SELECT coalesce(i.id::text, '') AS id, i.duplicate, i.conflict, \
            i.replayed, \
            CASE WHEN $9::bool AND NOT i.duplicate AND NOT i.replayed \
                 THEN integration.request_dispatch() ELSE false END AS start_run \
     FROM integration.ingest_event($1, $2, $3, $4::text::jsonb, $5, $6, $7::text::timestamptz, $8, \
                                   $10::text) AS i";

/// The row of [`INGEST_SQL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The event's id (the stored one for a duplicate or conflict; empty when replayed).
    pub id: String,
    /// The same key with the same body was stored before: nothing new stored.
    pub duplicate: bool,
    /// The same key with a different body was stored before: nothing stored.
    pub conflict: bool,
    /// The signature was accepted before under another key: nothing stored.
    pub replayed: bool,
    /// No dispatcher run is going or starting: this request must start one.
    pub start_run: bool,
}

/// `spend_signature($1 signature digest, $2 idempotency key)`: remembers the signature of a
/// request that stored nothing although its signature passed (see
/// `ingest::spent_signature`); one boolean, true when newly recorded.
pub const SPEND_SIGNATURE_SQL: &str = "SELECT integration.spend_signature($1::text, $2::text)";

/// `start_dispatch_run($1 worker, $2 lease ms)`: one boolean — true when this run holds
/// the dispatcher lease; false when another run holds it (it was told to claim again).
pub const START_RUN_SQL: &str =
    "SELECT integration.start_dispatch_run($1::text, $2::int8 * interval '1 millisecond')";

/// `end_dispatch_run($1 worker)`: releases the lease if this run still holds it.
pub const END_RUN_SQL: &str = "SELECT integration.end_dispatch_run($1::text)";

/// `ack_outbox_batch($1 ids)`: `ack_outbox` for a group of delivered events (text[] of ids)
/// in one statement; one bigint, how many were acked (an event a newer claim took over is
/// not).
pub const ACK_SQL: &str = "SELECT integration.ack_outbox_batch($1::text[]::uuid[])";

/// `fail_outbox($1 id, $2 error)`: the row's new status as text (`pending` with a backoff,
/// or `dead` after the last attempt).
pub const FAIL_SQL: &str = "SELECT integration.fail_outbox($1::text::uuid, $2::text)";

/// `requeue_outbox($1 id)`: one boolean — true when a dead (or stuck) event went back to
/// `pending` with its attempts reset; the function refuses other statuses.
pub const REQUEUE_SQL: &str = "SELECT integration.requeue_outbox($1::text::uuid)";

/// The envelope a handler receives, column by column: (JSON key of [`EventEnvelope`],
/// SQL expression over `claim_dispatch_batch`'s row `c`). Written once; the claim
/// statement is built from it and a test pins it to `EventEnvelope`'s fields.
pub const ENVELOPE_COLUMNS: &[(&str, &str)] = &[
    ("id", "c.id"),
    ("seq", "c.seq"),
    ("event_type", "c.event_type"),
    ("aggregate_type", "c.aggregate_type"),
    ("aggregate_id", "c.aggregate_id"),
    ("payload", "c.payload"),
    ("idempotency_key", "c.idempotency_key"),
    ("source", "c.source"),
    ("occurred_at", "c.occurred_at::text"),
    ("created_at", "c.created_at::text"),
    ("attempt", "c.attempts"),
];

/// `claim_dispatch_batch($2 worker, $1 limit, $4 lease ms, $3 lock timeout s)` as one row:
/// the claimed batch as the text of a JSON array of envelopes in `seq` order (`claim_outbox`'s SKIP
/// LOCKED and per-aggregate FIFO; the call renews the lease). An empty array means the
/// run is over: the lease was released (or another run had taken it over).
pub static CLAIM_BATCH_SQL: LazyLock<String> = LazyLock::new(|| {
    let fields: Vec<String> = ENVELOPE_COLUMNS
        .iter()
        .map(|(key, expr)| format!("'{key}', {expr}"))
        .collect();
    format!(
        "SELECT coalesce(jsonb_agg(jsonb_build_object({}) ORDER BY c.seq), '[]'::jsonb)::text \
         FROM integration.claim_dispatch_batch($2::text, $1::int4, \
              $4::int8 * interval '1 millisecond', make_interval(secs => $3::int8)) c",
        fields.join(", ")
    )
});

/// The claimed batch from [`CLAIM_BATCH_SQL`]'s column (JSON text).
pub fn decode_batch(json: &[u8]) -> Result<Vec<EventEnvelope>, String> {
    serde_json::from_slice(json).map_err(|e| format!("claim returned an unexpected batch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_columns_are_exactly_the_envelopes_fields() {
        let envelope = EventEnvelope {
            id: "e".into(),
            seq: 1,
            event_type: "expense.submitted".into(),
            aggregate_type: "expense".into(),
            aggregate_id: "1".into(),
            payload: json!({}),
            idempotency_key: "k".into(),
            source: "odoo".into(),
            occurred_at: None,
            created_at: "2026-11-30 00:00:00+00".into(),
            attempt: 1,
        };
        let value = serde_json::to_value(&envelope).unwrap();
        let mut fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns: Vec<&str> = ENVELOPE_COLUMNS.iter().map(|(k, _)| *k).collect();
        fields.sort_unstable();
        columns.sort_unstable();
        assert_eq!(fields, columns);
    }

    #[test]
    fn the_claim_statement_names_every_column_and_decodes_into_envelopes() {
        for (key, expr) in ENVELOPE_COLUMNS {
            assert!(
                CLAIM_BATCH_SQL.contains(&format!("'{key}', {expr}")),
                "{key}"
            );
        }
        let batch = br#"[{"id":"a","seq":7,"event_type":"finance_task.created",
            "aggregate_type":"finance_task","aggregate_id":"9","payload":{"x":1},
            "idempotency_key":"k","source":"odoo","occurred_at":null,
            "created_at":"2026-11-30 10:00:00+00","attempt":2}]"#;
        let events = decode_batch(batch).unwrap();
        assert_eq!((events[0].seq, events[0].attempt), (7, 2));
        assert!(decode_batch(b"[{}]")
            .unwrap_err()
            .contains("unexpected batch"));
    }

    #[test]
    fn payloads_cross_as_text_and_the_envelope_keeps_every_digit() {
        // Spin re-encodes jsonb parameters and columns through a lossy Value: text only.
        assert!(INGEST_SQL.contains("$4::text::jsonb"), "{INGEST_SQL}");
        assert!(CLAIM_BATCH_SQL.contains("'[]'::jsonb)::text FROM"));
        let numbers = r#"{"a":123456789012345678901234567890,"b":1234567890.123456789012345,"c":1e400,"d":0.1}"#;
        let batch = format!(
            r#"[{{"id":"a","seq":7,"event_type":"finance_task.created",
            "aggregate_type":"finance_task","aggregate_id":"9","payload":{numbers},
            "idempotency_key":"k","source":"odoo","occurred_at":null,
            "created_at":"2026-11-30 10:00:00+00","attempt":1}}]"#
        );
        let events = decode_batch(batch.as_bytes()).unwrap();
        // What the dispatcher sends the handler.
        let sent = serde_json::to_string(&events[0]).unwrap();
        // The same numbers (serde_json writes an exponent with its sign).
        let expected = numbers.replace("1e400", "1e+400");
        assert!(sent.contains(&format!(r#""payload":{expected}"#)), "{sent}");
    }
}
