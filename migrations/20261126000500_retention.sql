-- IPAI integration bus: retention of delivered outbox rows (SPEC §5, issue 7).
-- The outbox is the queue, not the archive: integration.event_log keeps every accepted
-- event forever (append-only audit log), so a delivered ('done') outbox row is only useful
-- for a while (dashboards, "what happened to event X" via get_event). This function
-- deletes old done rows in bounded batches; the ops component's POST /ops/retention calls
-- it (bearer dispatch_token), on a schedule (dispatch-cron) or from any scheduler.
-- Idempotent: safe to apply again.

-- Finds purgeable rows without touching open, dead or recent rows.
CREATE INDEX IF NOT EXISTS outbox_done_at_idx
    ON integration.outbox (done_at)
    WHERE status = 'done';

-- purge_done_outbox: delete at most p_batch 'done' rows whose done_at is older than
-- p_older_than; returns how many were deleted.
-- Guarantees:
--  * Only rows with status = 'done' AND done_at < now() - p_older_than are deleted
--    (oldest first). 'pending', 'processing', 'failed' and 'dead' rows are never touched,
--    whatever their age; done rows without done_at are kept.
--  * integration.event_log is never touched (it has no foreign key to the outbox, and its
--    append-only trigger would reject a DELETE anyway); nor are deliveries or id_map.
--  * Bounded: p_batch is clamped to 1..10000 (NULL or <= 0 deletes nothing), so one call
--    holds its row locks briefly; call it again while it returns p_batch.
--  * Concurrency-safe: rows are picked FOR UPDATE SKIP LOCKED and re-checked, so it never
--    waits for, nor deletes a row changed by, a concurrent dispatcher, requeue or purge.
--  * p_older_than NULL or negative deletes nothing.
CREATE OR REPLACE FUNCTION integration.purge_done_outbox(p_older_than interval, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_batch   integer := least(coalesce(p_batch, 0), 10000);
    v_deleted integer;
BEGIN
    IF v_batch <= 0 OR p_older_than IS NULL OR p_older_than < interval '0' THEN
        RETURN 0;
    END IF;

    -- The batch is picked once (a materialized CTE: an IN (SELECT ... LIMIT ... FOR
    -- UPDATE) subquery may be re-scanned by the planner and exceed the limit).
    WITH picked AS MATERIALIZED (
        SELECT s.id
          FROM integration.outbox AS s
         WHERE s.status = 'done'
           AND s.done_at < now() - p_older_than
         ORDER BY s.done_at
         LIMIT v_batch
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM integration.outbox AS o
     USING picked
     WHERE o.id = picked.id
       AND o.status = 'done';
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

REVOKE ALL ON FUNCTION integration.purge_done_outbox(interval, integer) FROM PUBLIC;
DO $$
BEGIN
    -- The role exists after 20261126000300_roles_rls.sql; integration_reader (read-only)
    -- gets nothing.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION integration.purge_done_outbox(interval, integer) TO service_role;
    END IF;
END;
$$;
