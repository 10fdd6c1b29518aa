-- IPAI integration bus: replay by filter, with a dry run (SPEC §12, issue #38).
--
-- Why. An operator could requeue one dead letter at a time. After an incident (a wrong
-- Mattermost webhook for six hours, Google refusing the service account overnight) they
-- need to replay hundreds of events, only some of them, and know beforehand that nobody
-- gets a second email or a second approval request. Every side effect is in the
-- deliveries ledger, so the plan can say which effects a replay would skip and which it
-- would run; the ledger still decides when it runs.
--
-- The contract, in four functions (the Rust side, crates/ipai-replay, calls them and
-- re-implements none of them):
--   replay_page(filter, after, limit, fol.) read-only: a page of the matching events (or of
--                                           their followers), with each one's ledger entries
--   replay_summary(filter)                  read-only: how many match, per status, and how
--                                           many later events of their aggregates follow
--   replay_begin(by, via, filter, redo)     records the replay (the audit) and the events it
--                                           covers; resumes an unfinished identical one
--   replay_step(replay, batch)              requeues up to `batch` of them in one short
--                                           transaction; finishes the replay after the last
--
-- The filter is jsonb, validated by crates/ipai-replay before it gets here:
--   {"statuses": ["dead", "failed", "done"],   at least one; pending/processing never
--    "type_like": "expense.%",                 LIKE pattern of event_type (or absent)
--    "event_types": ["expense.paid", ...],     the target handler's types (or absent)
--    "aggregate_type": "expense", "aggregate_id": "4011",   (each optional)
--    "since": RFC 3339, "until": RFC 3339}     created_at in [since, until)
-- Idempotent: safe to apply again.

-- A ledger entry the replay reopens is 'redo' until its effect is performed again:
-- claim_delivery hands it out like a 'failed' one.
ALTER TABLE integration.deliveries DROP CONSTRAINT IF EXISTS deliveries_status_check;
ALTER TABLE integration.deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'skipped', 'redo'));

-- The audit: one row per executed replay.
CREATE TABLE IF NOT EXISTS integration.replays (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_by text        NOT NULL,
    via          text        NOT NULL CHECK (via IN ('cli', 'ops')),
    filter       jsonb       NOT NULL,
    redo_effects text[]      NOT NULL DEFAULT '{}',
    matched      integer     NOT NULL,
    followers    integer     NOT NULL,
    requeued     integer     NOT NULL DEFAULT 0,
    redone       integer     NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
COMMENT ON TABLE integration.replays IS
    'Every replay executed (SPEC §12): who asked (CLI user or ops user), through what, the '
    'filter, the effect kinds performed again, how many events matched, how many later '
    'events of their aggregates were replayed with them, how many rows were requeued and '
    'ledger entries reopened, when it started and finished (NULL: unfinished, resumable).';

-- The events a replay covers, fixed when it begins, so a resumed replay does exactly what
-- was planned and no event is requeued (nor its effects reopened) twice.
CREATE TABLE IF NOT EXISTS integration.replay_items (
    replay_id bigint      NOT NULL REFERENCES integration.replays (id) ON DELETE CASCADE,
    seq       bigint      NOT NULL,
    event_id  uuid        NOT NULL,
    follower  boolean     NOT NULL,
    done_at   timestamptz,
    PRIMARY KEY (replay_id, seq)
);
CREATE INDEX IF NOT EXISTS replay_items_open_idx
    ON integration.replay_items (replay_id, seq) WHERE done_at IS NULL;

-- claim_delivery: as 20261126000400's, with 'redo' claimable like 'failed'.
CREATE OR REPLACE FUNCTION integration.claim_delivery(
    p_event_id uuid,
    p_channel  text,
    p_target   text,
    p_lease_s  integer
)
RETURNS TABLE (decision text, detail text)
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_id     bigint;
    v_status text;
    v_detail text;
BEGIN
    INSERT INTO integration.deliveries AS d (event_id, channel, target, status, attempts)
    VALUES (p_event_id, p_channel, p_target, 'pending', 1)
    ON CONFLICT (event_id, channel, target) DO UPDATE
        SET status = 'pending', attempts = d.attempts + 1, updated_at = now(),
            response_code = NULL
        WHERE d.status IN ('failed', 'redo')
           OR (d.status = 'pending'
               AND d.updated_at < now() - make_interval(secs => greatest(p_lease_s, 1)))
    RETURNING d.id INTO v_id;

    IF v_id IS NOT NULL THEN
        RETURN QUERY SELECT 'send'::text, NULL::text;
        RETURN;
    END IF;

    SELECT d.status, d.detail INTO v_status, v_detail
    FROM integration.deliveries d
    WHERE d.event_id = p_event_id AND d.channel = p_channel AND d.target = p_target;

    RETURN QUERY SELECT
        CASE WHEN v_status IN ('sent', 'skipped') THEN 'done' ELSE 'busy' END,
        v_detail;
END;
$$;

-- replay_matches: the outbox rows a filter selects (seq order not implied). Only rows in
-- one of the filter's statuses, and only dead/failed/done: an event pending or being
-- delivered is already on its way. No SET clause (every name is qualified): PostgreSQL
-- inlines it into the caller's query, so a page reads the seq index and stops at its limit.
CREATE OR REPLACE FUNCTION integration.replay_matches(p_filter jsonb)
RETURNS SETOF integration.outbox
LANGUAGE sql
STABLE
AS $$
    SELECT o.* FROM integration.outbox AS o
     WHERE o.status IN ('dead', 'failed', 'done')
       AND o.status = ANY (ARRAY(SELECT jsonb_array_elements_text(p_filter -> 'statuses')))
       AND (p_filter ->> 'type_like' IS NULL OR o.event_type LIKE p_filter ->> 'type_like')
       AND (p_filter -> 'event_types' IS NULL
            OR o.event_type = ANY (ARRAY(SELECT jsonb_array_elements_text(p_filter -> 'event_types'))))
       AND (p_filter ->> 'aggregate_type' IS NULL OR o.aggregate_type = p_filter ->> 'aggregate_type')
       AND (p_filter ->> 'aggregate_id' IS NULL OR o.aggregate_id = p_filter ->> 'aggregate_id')
       AND (p_filter ->> 'since' IS NULL OR o.created_at >= (p_filter ->> 'since')::timestamptz)
       AND (p_filter ->> 'until' IS NULL OR o.created_at <  (p_filter ->> 'until')::timestamptz);
$$;

-- replay_followers: the later 'done' events of the matched events' aggregates, not matched
-- themselves. A replayed old event would otherwise leave the dashboards in its (older)
-- state: replaying its aggregate's later events after it, in order, brings them back to
-- the newest. Their side effects are in the ledger: they are skipped.
CREATE OR REPLACE FUNCTION integration.replay_followers(p_filter jsonb)
RETURNS SETOF integration.outbox
LANGUAGE sql
STABLE
AS $$
    SELECT o.* FROM integration.outbox AS o
      JOIN (SELECT m.aggregate_type, m.aggregate_id, min(m.seq) AS seq
              FROM integration.replay_matches(p_filter) AS m
             GROUP BY m.aggregate_type, m.aggregate_id) AS f
        ON f.aggregate_type = o.aggregate_type AND f.aggregate_id = o.aggregate_id
       AND o.seq > f.seq
     WHERE o.status = 'done'
       AND NOT EXISTS (SELECT 1 FROM integration.replay_matches(p_filter) AS again
                        WHERE again.id = o.id);
$$;

-- replay_page: the dry run's input, a page at a time: the matched events in seq order
-- (after p_after_seq, at most p_limit), each as the dispatcher would send it with its
-- ledger entries {"channel:target": status}; with p_followers the followers instead (the
-- same shape). Read-only; a page costs its own rows, not the whole match. PL/pgSQL with
-- custom plans: the filter's values are known when each query is planned, so the parts
-- of the filter it does not use fold away (a generic plan guesses and can nest-loop).
-- json, not jsonb: the page is built once and read once, and json_agg is half the cost.
CREATE OR REPLACE FUNCTION integration.replay_page(p_filter jsonb, p_after_seq bigint,
                                                   p_limit integer, p_followers boolean)
RETURNS json
LANGUAGE plpgsql
STABLE
SET search_path = integration, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN (SELECT coalesce(json_agg(e ORDER BY e.seq), '[]'::json) FROM (
            SELECT o.id, o.seq, o.event_type, o.aggregate_type, o.aggregate_id, o.payload,
                   o.idempotency_key, o.source, o.occurred_at, o.created_at, o.status,
                   o.attempts, o.last_error, p_followers AS follower,
                   (SELECT coalesce(json_object_agg(d.channel || ':' || d.target, d.status), '{}'::json)
                      FROM integration.deliveries AS d WHERE d.event_id = o.id) AS recorded
              FROM (SELECT m.* FROM integration.replay_matches(p_filter) AS m
                     WHERE NOT p_followers AND m.seq > p_after_seq
                     ORDER BY m.seq LIMIT greatest(p_limit, 0)) AS o
            UNION ALL
            SELECT o.id, o.seq, o.event_type, o.aggregate_type, o.aggregate_id, o.payload,
                   o.idempotency_key, o.source, o.occurred_at, o.created_at, o.status,
                   o.attempts, o.last_error, p_followers,
                   (SELECT coalesce(json_object_agg(d.channel || ':' || d.target, d.status), '{}'::json)
                      FROM integration.deliveries AS d WHERE d.event_id = o.id)
              FROM (SELECT f.* FROM integration.replay_followers(p_filter) AS f
                     WHERE p_followers AND f.seq > p_after_seq
                     ORDER BY f.seq LIMIT greatest(p_limit, 0)) AS o) AS e);
END;
$$;

-- replay_summary: {"matched": N, "followers": M, "by_status": {"dead": n, ...}}. Read-only.
CREATE OR REPLACE FUNCTION integration.replay_summary(p_filter jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = integration, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
            'matched', (SELECT count(*) FROM integration.replay_matches(p_filter)),
            'followers', (SELECT count(*) FROM integration.replay_followers(p_filter)),
            'by_status', (SELECT coalesce(jsonb_object_agg(s.status, s.n), '{}'::jsonb)
                            FROM (SELECT m.status, count(*) AS n
                                    FROM integration.replay_matches(p_filter) AS m
                                   GROUP BY m.status) AS s)));
END;
$$;

-- replay_begin: starts a replay, or resumes one. Returns {"replay": id, "resumed": bool,
-- "matched": N, "followers": M, "remaining": K}.
-- Guarantees:
--  * An unfinished replay with the same filter and redo kinds is resumed, not started
--    again: the events it covers were fixed when it began and those already stepped are
--    not requeued (nor their effects reopened) again, so an interrupted replay run again
--    doubles nothing.
--  * Otherwise the audit row is written with who and how, and the events the filter
--    matches now plus their followers become its items.
--  * Concurrent begins are serialised (one transaction-scoped advisory lock): two
--    operators running the same replay at once get the same one.
CREATE OR REPLACE FUNCTION integration.replay_begin(p_by text, p_via text, p_filter jsonb, p_redo text[])
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_redo   text[] := ARRAY(SELECT DISTINCT r FROM unnest(coalesce(p_redo, '{}')) AS r ORDER BY r);
    v_id     bigint;
    v_resume boolean := true;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('integration.replay_begin', 0));
    SELECT r.id INTO v_id FROM integration.replays AS r
     WHERE r.finished_at IS NULL AND r.filter = p_filter AND r.redo_effects = v_redo
     ORDER BY r.id LIMIT 1;
    IF v_id IS NULL THEN
        v_resume := false;
        INSERT INTO integration.replays (requested_by, via, filter, redo_effects, matched, followers)
        VALUES (left(p_by, 200), p_via, p_filter, v_redo, 0, 0)
        RETURNING id INTO v_id;
        INSERT INTO integration.replay_items (replay_id, seq, event_id, follower)
        SELECT v_id, m.seq, m.id, false FROM integration.replay_matches(p_filter) AS m
        UNION ALL
        SELECT v_id, f.seq, f.id, true FROM integration.replay_followers(p_filter) AS f;
        UPDATE integration.replays AS r
           SET matched   = (SELECT count(*) FROM integration.replay_items AS i
                             WHERE i.replay_id = v_id AND NOT i.follower),
               followers = (SELECT count(*) FROM integration.replay_items AS i
                             WHERE i.replay_id = v_id AND i.follower)
         WHERE r.id = v_id;
    END IF;
    RETURN (SELECT jsonb_build_object('replay', r.id, 'resumed', v_resume,
                'matched', r.matched, 'followers', r.followers,
                'remaining', (SELECT count(*) FROM integration.replay_items AS i
                               WHERE i.replay_id = r.id AND i.done_at IS NULL))
              FROM integration.replays AS r WHERE r.id = v_id);
END;
$$;

-- replay_step: performs the next p_batch items of a replay, oldest first, in one short
-- transaction. Returns {"replay", "processed", "requeued", "redone", "remaining",
-- "finished"}.
-- Guarantees:
--  * Each item's outbox row goes from dead/failed/done to 'pending' (attempts 0, due now,
--    lock and done_at cleared; last_error kept as history). A row that is pending or
--    being delivered meanwhile is left alone (it is on its way already).
--  * For a matched (not follower) item, its ledger entries of the replay's redo kinds
--    (channels) that are 'sent' or 'skipped' become 'redo' with the replay's number in
--    their detail: the handler performs them again, once, and records them 'sent'.
--  * Items are marked done in the same transaction: a step is all or nothing, and no item
--    is stepped twice (FOR UPDATE SKIP LOCKED: concurrent steppers share the work).
--  * Row locks only on the batch's own rows, for one statement: ingest (which inserts new
--    rows) is never blocked, and the dispatcher waits at most one batch for a row.
--  * After the last item the replay is finished (finished_at set).
CREATE OR REPLACE FUNCTION integration.replay_step(p_replay bigint, p_batch integer)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_redo      text[];
    v_seqs      bigint[];
    v_ids       uuid[];
    v_matched   uuid[];
    v_requeued  integer;
    v_redone    integer;
    v_remaining bigint;
    v_finished  boolean;
BEGIN
    SELECT r.redo_effects INTO v_redo FROM integration.replays AS r WHERE r.id = p_replay;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replay % does not exist', p_replay USING ERRCODE = 'no_data_found';
    END IF;

    SELECT coalesce(array_agg(b.seq), '{}'), coalesce(array_agg(b.event_id), '{}'),
           coalesce(array_agg(b.event_id) FILTER (WHERE NOT b.follower), '{}')
      INTO v_seqs, v_ids, v_matched
      FROM (SELECT i.seq, i.event_id, i.follower FROM integration.replay_items AS i
             WHERE i.replay_id = p_replay AND i.done_at IS NULL
             ORDER BY i.seq
             LIMIT greatest(p_batch, 1)
               FOR UPDATE SKIP LOCKED) AS b;

    UPDATE integration.deliveries AS d
       SET status = 'redo', updated_at = now(),
           detail = left(format('replay #%s: performed again (was %s: %s)', p_replay,
                                d.status, coalesce(d.detail, '')), 2000)
     WHERE d.event_id = ANY (v_matched)
       AND d.status IN ('sent', 'skipped') AND d.channel = ANY (v_redo);
    GET DIAGNOSTICS v_redone = ROW_COUNT;

    UPDATE integration.outbox AS o
       SET status = 'pending', attempts = 0, next_attempt_at = now(),
           locked_at = NULL, locked_by = NULL, done_at = NULL, updated_at = now()
     WHERE o.id = ANY (v_ids) AND o.status IN ('dead', 'failed', 'done');
    GET DIAGNOSTICS v_requeued = ROW_COUNT;

    UPDATE integration.replay_items AS i SET done_at = now()
     WHERE i.replay_id = p_replay AND i.seq = ANY (v_seqs);

    SELECT count(*) INTO v_remaining FROM integration.replay_items AS i
     WHERE i.replay_id = p_replay AND i.done_at IS NULL;
    UPDATE integration.replays AS r
       SET requeued = r.requeued + v_requeued, redone = r.redone + v_redone,
           finished_at = CASE WHEN v_remaining = 0 THEN coalesce(r.finished_at, now()) END
     WHERE r.id = p_replay
    RETURNING r.finished_at IS NOT NULL INTO v_finished;

    RETURN jsonb_build_object('replay', p_replay, 'processed', cardinality(v_seqs),
        'requeued', v_requeued, 'redone', v_redone, 'remaining', v_remaining,
        'finished', v_finished);
END;
$$;

-- The audit, newest first: what /ops shows.
CREATE OR REPLACE FUNCTION integration.recent_replays(p_limit integer)
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = integration, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.id DESC), '[]'::jsonb)
      FROM (SELECT * FROM integration.replays ORDER BY id DESC LIMIT greatest(p_limit, 0)) AS r;
$$;

-- Retention: finished replays' items are kept with their replay; the ledger purge
-- (purge_deliveries) is unaffected. A replay's rows go when an operator deletes it.

REVOKE ALL ON TABLE integration.replays, integration.replay_items FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.replay_matches(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.replay_followers(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.replay_page(jsonb, bigint, integer, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.replay_summary(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.replay_begin(text, text, jsonb, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.replay_step(bigint, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.recent_replays(integer) FROM PUBLIC;

-- integration_app (the ops component: the /ops replay page plans, executes and lists).
GRANT EXECUTE ON FUNCTION
    integration.replay_matches(jsonb),
    integration.replay_followers(jsonb),
    integration.replay_page(jsonb, bigint, integer, boolean),
    integration.replay_summary(jsonb),
    integration.replay_begin(text, text, jsonb, text[]),
    integration.replay_step(bigint, integer),
    integration.recent_replays(integer)
TO integration_app;
GRANT SELECT, INSERT, UPDATE ON integration.replays      TO integration_app;
GRANT SELECT, INSERT, UPDATE ON integration.replay_items TO integration_app;
GRANT USAGE ON SEQUENCE integration.replays_id_seq TO integration_app;

-- integration_reader (MCP's replay_preview): the read-only functions; it reads the outbox
-- and the ledger already.
GRANT EXECUTE ON FUNCTION
    integration.replay_matches(jsonb),
    integration.replay_followers(jsonb),
    integration.replay_page(jsonb, bigint, integer, boolean),
    integration.replay_summary(jsonb),
    integration.recent_replays(integer)
TO integration_reader;
GRANT SELECT ON integration.replays, integration.replay_items TO integration_reader;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON integration.replays, integration.replay_items TO service_role;
    END IF;
END;
$$;

-- Row-level security like every table of the schema: the groups see every row.
ALTER TABLE integration.replays ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration.replay_items ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('integration_app'), ('integration_reader'), ('service_role')) AS t(role)
              WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = t.role) LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON integration.replays', r.role || '_all');
        EXECUTE format('CREATE POLICY %I ON integration.replays TO %I USING (true) WITH CHECK (true)',
                       r.role || '_all', r.role);
        EXECUTE format('DROP POLICY IF EXISTS %I ON integration.replay_items', r.role || '_all');
        EXECUTE format('CREATE POLICY %I ON integration.replay_items TO %I USING (true) WITH CHECK (true)',
                       r.role || '_all', r.role);
    END LOOP;
END;
$$;
