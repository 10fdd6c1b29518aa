-- IPAI integration bus: ack_outbox_batch, ack_outbox for a group of delivered events in one
-- statement (issue 17).
--
-- The dispatcher acks the events its handlers delivered in groups (half of
-- dispatch_concurrency, and whatever is left before each claim). It called
-- ack_outbox(uuid) once per id of the group (unnest + LATERAL): one UPDATE, and one run of
-- the outbox's statement trigger (count_outbox_done, with its transition tables), per
-- event. ack_outbox_batch(uuid[]) is the same transition for the whole group in one UPDATE,
-- so the trigger runs once per group. (A name of its own, not an ack_outbox overload: a
-- caller's untyped ack_outbox($1) would become ambiguous.)
--
-- Guarantees, as ack_outbox(uuid) for each id: only a 'processing' row changes (-> 'done',
-- done_at = now(), lock cleared, last_error kept as history); no lease is checked against
-- the worker. Returns how many rows changed: an id acked already, unknown, or reclaimed or
-- failed meanwhile is not counted (nor is an id given twice counted twice); NULL or an
-- empty array changes nothing and returns 0. Rows are locked in index order, whatever the
-- order of the array. Idempotent.
CREATE OR REPLACE FUNCTION integration.ack_outbox_batch(p_ids uuid[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_acked bigint;
BEGIN
    UPDATE integration.outbox AS o
       SET status     = 'done',
           done_at    = now(),
           locked_at  = NULL,
           locked_by  = NULL,
           updated_at = now()
     WHERE o.id = ANY (p_ids)
       AND o.status = 'processing';
    GET DIAGNOSTICS v_acked = ROW_COUNT;
    RETURN v_acked;
END;
$$;

-- ack_outbox(uuid) is the group of one, so the transition is written once. Same
-- signature, result and guarantees as in 20261126000200_outbox_functions.sql.
CREATE OR REPLACE FUNCTION integration.ack_outbox(p_id uuid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    RETURN integration.ack_outbox_batch(ARRAY[p_id]) = 1;
END;
$$;

REVOKE ALL ON FUNCTION integration.ack_outbox_batch(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.ack_outbox_batch(uuid[]) TO service_role;
