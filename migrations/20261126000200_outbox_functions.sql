-- IPAI integration bus: the outbox queue's whole contract as SQL functions (SPEC §5).
-- Each call is one round trip and atomic. All functions are SECURITY INVOKER: callers
-- need the table privileges/policies granted in 20261126000300_roles_rls.sql.
-- Status lifecycle:
--   pending --claim--> processing --ack--> done
--                      processing --fail--> failed (retry later) | dead (attempts exhausted)
--   failed --claim (when due)--> processing;  dead|failed --requeue--> pending
-- Column types returned are all carried by spin:postgres@4.0.0.
-- Idempotent: CREATE OR REPLACE keeps existing grants.

-- ingest_event: store one accepted event.
-- Guarantees:
--  * New key: inserts the outbox row and the event_log row (same id, same seq) in the
--    caller's transaction; returns (id, duplicate = false, conflict = false).
--  * Known key: writes nothing; returns the ORIGINAL id, duplicate = true, and
--    conflict = (stored body_sha256 is distinct from p_body_sha256). Never raises for it.
--  * Concurrency-safe under READ COMMITTED (the default): racing calls with one key
--    produce exactly one row; the losers wait for the winner's commit and return its id.
--  * Ingests of one aggregate are serialised (transaction advisory lock), so within an
--    aggregate seq order equals commit order and claim_outbox's FIFO check cannot be
--    overtaken by a late-committing older event. Callers that ingest several events in
--    one explicit transaction should do so in a consistent order.
--  * seq increases but has gaps (a duplicate call consumes an identity value).
--  * p_source NULL -> 'odoo'. NULL in a NOT NULL field raises not_null_violation.
CREATE OR REPLACE FUNCTION integration.ingest_event(
    p_event_type      text,
    p_aggregate_type  text,
    p_aggregate_id    text,
    p_payload         jsonb,
    p_idempotency_key text,
    p_body_sha256     text,
    p_occurred_at     timestamptz,
    p_source          text
)
RETURNS TABLE (id uuid, duplicate boolean, conflict boolean)
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_id     uuid;
    v_seq    bigint;
    v_sha    text;
    v_source text := coalesce(p_source, 'odoo');
BEGIN
    PERFORM pg_advisory_xact_lock(
        1769236481, hashtext(p_aggregate_type || '/' || p_aggregate_id));

    FOR attempt IN 1..3 LOOP
        INSERT INTO integration.outbox AS o
            (event_type, aggregate_type, aggregate_id, payload,
             idempotency_key, body_sha256, source, occurred_at)
        VALUES
            (p_event_type, p_aggregate_type, p_aggregate_id, p_payload,
             p_idempotency_key, p_body_sha256, v_source, p_occurred_at)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING o.id, o.seq INTO v_id, v_seq;

        IF v_id IS NOT NULL THEN
            INSERT INTO integration.event_log
                (id, seq, event_type, aggregate_type, aggregate_id, payload,
                 idempotency_key, body_sha256, source, occurred_at)
            VALUES
                (v_id, v_seq, p_event_type, p_aggregate_type, p_aggregate_id, p_payload,
                 p_idempotency_key, p_body_sha256, v_source, p_occurred_at);
            RETURN QUERY SELECT v_id, false, false;
            RETURN;
        END IF;

        -- A new statement has a new snapshot: it sees the committed conflicting row.
        SELECT o.id, o.body_sha256 INTO v_id, v_sha
          FROM integration.outbox AS o
         WHERE o.idempotency_key = p_idempotency_key;

        IF v_id IS NOT NULL THEN
            RETURN QUERY SELECT v_id, true, (v_sha IS DISTINCT FROM p_body_sha256);
            RETURN;
        END IF;
        -- The conflicting row was deleted in between: insert again.
    END LOOP;

    RAISE EXCEPTION 'ingest_event: idempotency key % neither insertable nor visible',
        p_idempotency_key USING ERRCODE = 'serialization_failure';
END;
$$;

-- claim_outbox: lease up to p_limit events (capped at 1000; <= 0 or NULL claims none).
-- Guarantees:
--  * Claims due 'pending'/'failed' rows (next_attempt_at <= now()) and 'processing' rows
--    whose lock is older than p_lock_timeout (NULL -> 10 minutes): the worker died.
--  * FOR UPDATE SKIP LOCKED: concurrent claimers never receive the same row and never
--    wait for each other.
--  * Per-aggregate FIFO: a row is not claimed while an older (smaller seq) row of the
--    same (aggregate_type, aggregate_id) is pending, processing (stale or not) or failed;
--    'dead' and 'done' rows do not block. So at most the oldest open event of an
--    aggregate is claimed; a stale-processing oldest event is re-claimed itself.
--  * A stale 'processing' row that has no attempts left becomes 'dead' (last_error says
--    the lock expired) instead of being re-claimed forever.
--  * Claimed rows: status = 'processing', attempts + 1, locked_at = now(),
--    locked_by = p_worker. Returned in seq order; attempts is the current attempt (1-based).
--  * Cost grows with the open rows it must skip (not due or FIFO-blocked, ~10 us each);
--    done and dead rows are never read.
CREATE OR REPLACE FUNCTION integration.claim_outbox(
    p_limit        integer,
    p_worker       text,
    p_lock_timeout interval DEFAULT interval '10 minutes'
)
RETURNS TABLE (
    id              uuid,
    seq             bigint,
    event_type      text,
    aggregate_type  text,
    aggregate_id    text,
    payload         jsonb,
    idempotency_key text,
    source          text,
    occurred_at     timestamptz,
    created_at      timestamptz,
    attempts        integer,
    max_attempts    integer
)
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_limit   integer  := least(coalesce(p_limit, 0), 1000);
    v_timeout interval := coalesce(p_lock_timeout, interval '10 minutes');
BEGIN
    IF v_limit <= 0 THEN
        RETURN;
    END IF;

    UPDATE integration.outbox AS d
       SET status     = 'dead',
           last_error = left(format('lock expired after attempt %s of %s (worker %s)',
                                    d.attempts, d.max_attempts, coalesce(d.locked_by, '?'))
                             || coalesce('; previous error: ' || d.last_error, ''), 2000),
           locked_at  = NULL,
           locked_by  = NULL,
           updated_at = now()
     WHERE d.id IN (SELECT s.id
                      FROM integration.outbox AS s
                     WHERE s.status = 'processing'
                       AND s.locked_at < now() - v_timeout
                       AND s.attempts >= s.max_attempts
                       FOR UPDATE SKIP LOCKED)
       AND d.status = 'processing';

    RETURN QUERY
    WITH picked AS (
        SELECT c.id
          FROM integration.outbox AS c
         -- First condition repeats the partial indexes' predicate, so the planner
         -- never walks the (possibly millions of) done rows in seq order.
         WHERE c.status IN ('pending', 'processing', 'failed')
           AND ((c.status IN ('pending', 'failed') AND c.next_attempt_at <= now())
             OR (c.status = 'processing' AND c.locked_at < now() - v_timeout))
           AND NOT EXISTS (
                SELECT 1
                  FROM integration.outbox AS b
                 WHERE b.aggregate_type = c.aggregate_type
                   AND b.aggregate_id = c.aggregate_id
                   AND b.seq < c.seq
                   AND b.status IN ('pending', 'processing', 'failed'))
         ORDER BY c.seq
         LIMIT v_limit
           FOR UPDATE OF c SKIP LOCKED
    ), claimed AS (
        UPDATE integration.outbox AS u
           SET status     = 'processing',
               attempts   = u.attempts + 1,
               locked_at  = now(),
               locked_by  = p_worker,
               updated_at = now()
          FROM picked
         WHERE u.id = picked.id
        RETURNING u.id, u.seq, u.event_type, u.aggregate_type, u.aggregate_id, u.payload,
                  u.idempotency_key, u.source, u.occurred_at, u.created_at,
                  u.attempts, u.max_attempts
    )
    SELECT k.id, k.seq, k.event_type, k.aggregate_type, k.aggregate_id, k.payload,
           k.idempotency_key, k.source, k.occurred_at, k.created_at,
           k.attempts, k.max_attempts
      FROM claimed AS k
     ORDER BY k.seq;
END;
$$;

-- ack_outbox: mark a claimed event delivered.
-- Guarantees: only a 'processing' row changes (-> 'done', done_at = now(), lock cleared,
-- last_error kept as history); returns true iff a row changed. Acking twice, or acking a
-- row that was reclaimed/failed meanwhile, returns false (a lease is not checked against
-- the worker: an ack after a lock-timeout reclaim still counts as delivered).
CREATE OR REPLACE FUNCTION integration.ack_outbox(p_id uuid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    UPDATE integration.outbox AS o
       SET status     = 'done',
           done_at    = now(),
           locked_at  = NULL,
           locked_by  = NULL,
           updated_at = now()
     WHERE o.id = p_id
       AND o.status = 'processing';
    RETURN FOUND;
END;
$$;

-- fail_outbox: record a failed delivery of a claimed event; returns the new status.
-- Guarantees: only a 'processing' row changes; returns NULL if p_id is not processing.
--  * attempts >= max_attempts -> 'dead' (kept until requeue_outbox).
--  * otherwise 'failed' with next_attempt_at = now() + least(10 s * 3^(attempts-1), 6 h)
--    * random factor in [0.8, 1.2). attempts counts this attempt (claim increments it),
--    so the delays are 10 s, 30 s, 90 s, ... 6 h; with max_attempts 10 the last attempt
--    runs about 15 h (12-18 h with jitter) after the first.
--  * last_error = p_error truncated to 2000 characters; lock cleared.
CREATE OR REPLACE FUNCTION integration.fail_outbox(p_id uuid, p_error text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE integration.outbox AS o
       SET status          = CASE WHEN o.attempts >= o.max_attempts
                                  THEN 'dead' ELSE 'failed' END,
           next_attempt_at = CASE WHEN o.attempts >= o.max_attempts
                                  THEN o.next_attempt_at
                                  ELSE now()
                                       + least(interval '10 seconds'
                                               * power(3::float8,
                                                       least(greatest(o.attempts - 1, 0), 20)),
                                               interval '6 hours')
                                       * (0.8 + 0.4 * random())
                             END,
           last_error      = left(coalesce(nullif(p_error, ''), '(no error message)'), 2000),
           locked_at       = NULL,
           locked_by       = NULL,
           updated_at      = now()
     WHERE o.id = p_id
       AND o.status = 'processing'
    RETURNING o.status INTO v_status;
    RETURN v_status;
END;
$$;

-- requeue_outbox: operator retry of a 'dead' or 'failed' event.
-- Guarantees: only 'dead'/'failed' rows change -> 'pending', attempts = 0,
-- next_attempt_at = now(), lock and done_at cleared; last_error is KEPT as history
-- (overwritten by the next failure). Returns true iff a row changed. A requeued old
-- event blocks newer open events of its aggregate again (FIFO), but newer events
-- already delivered are not replayed.
CREATE OR REPLACE FUNCTION integration.requeue_outbox(p_id uuid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    UPDATE integration.outbox AS o
       SET status          = 'pending',
           attempts        = 0,
           next_attempt_at = now(),
           locked_at       = NULL,
           locked_by       = NULL,
           done_at         = NULL,
           updated_at      = now()
     WHERE o.id = p_id
       AND o.status IN ('dead', 'failed');
    RETURN FOUND;
END;
$$;

-- outbox_stats: read-only queue summary for health pages and metrics.
-- One row per status, always all five (count 0, age NULL when empty), in lifecycle
-- order; oldest_age_seconds = now() - min(created_at) of that status.
CREATE OR REPLACE FUNCTION integration.outbox_stats()
RETURNS TABLE (status text, count bigint, oldest_age_seconds double precision)
LANGUAGE sql
STABLE
SET search_path = integration, pg_temp
AS $$
    SELECT s.status,
           coalesce(a.n, 0)::bigint,
           a.age
      FROM (VALUES ('pending', 1), ('processing', 2), ('failed', 3),
                   ('dead', 4), ('done', 5)) AS s (status, ord)
      LEFT JOIN (SELECT o.status,
                        count(*) AS n,
                        extract(epoch FROM now() - min(o.created_at))::float8 AS age
                   FROM integration.outbox AS o
                  GROUP BY o.status) AS a
             ON a.status = s.status
     ORDER BY s.ord;
$$;

-- No function is executable by PUBLIC; 20261126000300_roles_rls.sql grants them.
REVOKE ALL ON FUNCTION integration.ingest_event(text, text, text, jsonb, text, text, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.claim_outbox(integer, text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.ack_outbox(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.fail_outbox(uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.requeue_outbox(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.outbox_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.event_log_append_only() FROM PUBLIC;
