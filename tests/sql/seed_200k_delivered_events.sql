-- 200,000 delivered `expense.paid` events (idempotency keys `bulk-1` … `bulk-200000`,
-- 500 employees `E-0` … `E-499`), each with its audit row and one sent email delivery,
-- in one statement; then fresh statistics. The load the read paths must stay fast under:
-- seeded by the end-to-end test `tests/tests/hostile_input.rs` and by `make bench`'s
-- ingest phase (`crates/ipai-bench/src/ingest.rs`), so both measure the same data.
WITH o AS (
    INSERT INTO integration.outbox (event_type, aggregate_type, aggregate_id, payload,
           idempotency_key, body_sha256, status, done_at, created_at)
    SELECT 'expense.paid', 'expense', 'bulk-' || g,
           jsonb_build_object('employee_code', 'E-' || (g % 500), 'amount', g),
           'bulk-' || g, 'sha', 'done', now() - interval '1 day',
           now() - make_interval(secs => g)
      FROM generate_series(1, 200000) AS g
    RETURNING id, seq, event_type, aggregate_type, aggregate_id, payload,
              idempotency_key, body_sha256, created_at
), l AS (
    INSERT INTO integration.event_log (id, seq, event_type, aggregate_type,
           aggregate_id, payload, idempotency_key, body_sha256, received_at)
    SELECT id, seq, event_type, aggregate_type, aggregate_id, payload,
           idempotency_key, body_sha256, created_at FROM o
    RETURNING id
)
INSERT INTO integration.deliveries (event_id, channel, target, status, response_code)
SELECT id, 'email', 'finance@example.com', 'sent', 200 FROM l;
ANALYZE integration.outbox; ANALYZE integration.event_log;
ANALYZE integration.deliveries; ANALYZE integration.metric_counts;
