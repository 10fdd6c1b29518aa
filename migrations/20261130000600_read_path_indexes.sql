-- IPAI integration bus: read paths whose cost does not grow with the log (issue 15).
--
--  * MCP payload filters. Each field the per-domain tools filter on has a B-tree on
--    (payload->>'field', received_at DESC, seq DESC), partial by the tool's aggregate
--    type: an equality filter reads its matches newest first, so the tools' LIMITs (page,
--    summary cap) stop the scan, however common the value. The expressions also give
--    ANALYZE statistics on those fields. Per event only its own domain's indexes are
--    written (expense 2, asset 5, finance 4). query_events' free payload_field =
--    payload_value and query_finance_events' responsible_email go through one GIN index on
--    the payload (jsonb_path_ops) as `payload @> {...}` containments, with the exact
--    comparison rechecked on the rows found (crates/ipai-mcp/src/tools.rs).
--  * The /ops dashboard. Its volume chart (events per hour and type, last 24 hours) comes
--    from event_volume_hourly, kept by the statement trigger that already keeps
--    /metrics' counters (one more row upsert in the same statement, 16 shards per hour and
--    type like metric_counts); rows older than 48 hours are deleted by the same trigger
--    when a new hour row appears. outbox_stats() counts `done` rows from metric_counts and
--    the open and dead statuses through their partial indexes, so it (the dashboard,
--    MCP outbox_health, `ipai status`) no longer reads every delivered row.
--  * Advisory locks. PostgreSQL grants pg_advisory_lock & co. to PUBLIC, so the read-only
--    role could hold the lock ingest_event takes for an aggregate. When this file is
--    applied by a superuser (plain PostgreSQL, `ipai migrate` as postgres) EXECUTE on the
--    lock-taking advisory functions is revoked from PUBLIC in this database and granted to
--    service_role (ingest and the app roles are its members) and the database owner. Where
--    the migrating role is not a superuser (Supabase: the `postgres` role does not own
--    pg_catalog) nothing changes and a NOTICE says so; ingest_event's 5 s lock_timeout
--    then bounds what a lock holder can do (one post answers 503 + Retry-After). See
--    docs/deploy.md "Advisory locks".
--
-- Plain CREATE INDEX (not CONCURRENTLY): `ipai migrate` (sqlx) and the Supabase CLI run
-- each file in a transaction, where CONCURRENTLY is refused. Writers to event_log wait
-- while the indexes are built (about a second per 200,000 events here); on a large log,
-- build them by hand first with CREATE INDEX CONCURRENTLY under the same names (the
-- statements below are then no-ops). Idempotent: safe to apply again.

-- ---------------------------------------------------------------------------------------
-- Payload filters (MCP).
-- ---------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS event_log_payload_path_idx
    ON integration.event_log USING gin (payload jsonb_path_ops);
CREATE INDEX IF NOT EXISTS event_log_expense_employee_code_idx
    ON integration.event_log ((payload->>'employee_code'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'expense';
CREATE INDEX IF NOT EXISTS event_log_expense_status_idx
    ON integration.event_log ((payload->>'status'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'expense';
CREATE INDEX IF NOT EXISTS event_log_asset_asset_id_idx
    ON integration.event_log ((payload->>'asset_id'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'asset_booking';
CREATE INDEX IF NOT EXISTS event_log_asset_asset_code_idx
    ON integration.event_log ((payload->>'asset_code'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'asset_booking';
CREATE INDEX IF NOT EXISTS event_log_asset_employee_id_idx
    ON integration.event_log ((payload->>'employee_id'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'asset_booking';
CREATE INDEX IF NOT EXISTS event_log_asset_status_idx
    ON integration.event_log ((payload->>'status'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'asset_booking';
CREATE INDEX IF NOT EXISTS event_log_asset_employee_email_idx
    ON integration.event_log (lower(payload->>'employee_email'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'asset_booking';
CREATE INDEX IF NOT EXISTS event_log_finance_project_idx
    ON integration.event_log ((payload->>'project'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'finance_task';
CREATE INDEX IF NOT EXISTS event_log_finance_bir_form_idx
    ON integration.event_log ((payload->>'bir_form'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'finance_task';
CREATE INDEX IF NOT EXISTS event_log_finance_period_idx
    ON integration.event_log ((payload->>'period'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'finance_task';
CREATE INDEX IF NOT EXISTS event_log_finance_status_idx
    ON integration.event_log ((payload->>'status'), received_at DESC, seq DESC)
    WHERE aggregate_type = 'finance_task';

-- ---------------------------------------------------------------------------------------
-- Events per hour and type, for the dashboard's chart.
-- ---------------------------------------------------------------------------------------
DO $$
BEGIN
    LOCK TABLE integration.event_log IN SHARE ROW EXCLUSIVE MODE;
END;
$$;

CREATE TABLE IF NOT EXISTS integration.event_volume_hourly (
    hour       timestamptz NOT NULL,   -- start of the UTC hour of received_at
    event_type text        NOT NULL,
    shard      smallint    NOT NULL,
    n          bigint      NOT NULL DEFAULT 0,
    CONSTRAINT event_volume_hourly_pkey PRIMARY KEY (hour, event_type, shard)
);
COMMENT ON TABLE integration.event_volume_hourly IS
    'Events received per UTC hour and type (sum n over shards), kept by the trigger on '
    'event_log for the /ops chart; rows older than 48 hours are deleted.';

-- Trigger: ingested events per type (metric_counts) and per hour and type
-- (event_volume_hourly), in one statement. When the statement created an hour row (the
-- first of an hour, type and shard), rows older than 48 hours are deleted.
CREATE OR REPLACE FUNCTION integration.count_event_log()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM integration.metric_counts WHERE family = 'ingested';
        DELETE FROM integration.event_volume_hourly;
        RETURN NULL;
    END IF;
    WITH counted AS (
        INSERT INTO integration.metric_counts AS c (family, key, shard, n)
        SELECT 'ingested', r.event_type, floor(random() * 16)::smallint, count(*)
          FROM new_rows AS r GROUP BY r.event_type
        ON CONFLICT (family, key, shard) DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
    ), hourly AS (
        INSERT INTO integration.event_volume_hourly AS v (hour, event_type, shard, n)
        SELECT h.hour, h.event_type, floor(random() * 16)::smallint, h.n
          FROM (SELECT date_bin('1 hour', r.received_at, timestamptz '2000-01-01 00:00:00+00')
                       AS hour, r.event_type, count(*) AS n
                  FROM new_rows AS r GROUP BY 1, 2) AS h
        ON CONFLICT (hour, event_type, shard) DO UPDATE SET n = v.n + excluded.n
        RETURNING (v.xmax = 0) AS created
    )
    DELETE FROM integration.event_volume_hourly AS stale
     WHERE (SELECT bool_or(h.created) FROM hourly AS h)
       AND stale.hour < date_bin('1 hour', now(), timestamptz '2000-01-01 00:00:00+00')
                      - interval '47 hours';
    RETURN NULL;
END;
$$;

-- The last 48 hours so far (event_log is locked: nothing is added meanwhile). Recomputed
-- on every run, so applying this file again leaves them exact.
DELETE FROM integration.event_volume_hourly;
INSERT INTO integration.event_volume_hourly (hour, event_type, shard, n)
SELECT date_bin('1 hour', e.received_at, timestamptz '2000-01-01 00:00:00+00'), e.event_type,
       0, count(*)
  FROM integration.event_log AS e
 WHERE e.received_at >= date_bin('1 hour', now(), timestamptz '2000-01-01 00:00:00+00')
                        - interval '47 hours'
 GROUP BY 1, 2;

REVOKE ALL ON integration.event_volume_hourly FROM PUBLIC;
GRANT ALL ON integration.event_volume_hourly TO service_role;
GRANT SELECT ON integration.event_volume_hourly TO integration_reader;
ALTER TABLE integration.event_volume_hourly ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON integration.event_volume_hourly;
CREATE POLICY service_role_all ON integration.event_volume_hourly
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS integration_reader_select ON integration.event_volume_hourly;
CREATE POLICY integration_reader_select ON integration.event_volume_hourly
    FOR SELECT TO integration_reader USING (true);

-- ---------------------------------------------------------------------------------------
-- outbox_stats: same contract (one row per status, always all five, lifecycle order), now
-- at a cost that does not grow with the delivered rows: pending, processing, failed and
-- dead are read through their partial indexes; `done` is counted by metric_counts and its
-- age is that of the row retention would purge first (the oldest done_at,
-- outbox_done_at_idx), as /metrics reports it.
-- ---------------------------------------------------------------------------------------
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
      LEFT JOIN (SELECT o.status, count(*) AS n,
                        extract(epoch FROM now() - min(o.created_at))::float8 AS age
                   FROM integration.outbox AS o
                  WHERE o.status IN ('pending', 'processing', 'failed')
                  GROUP BY o.status
                 UNION ALL
                 SELECT 'dead', count(*), extract(epoch FROM now() - min(o.created_at))::float8
                   FROM integration.outbox AS o WHERE o.status = 'dead'
                 UNION ALL
                 SELECT 'done',
                        (SELECT coalesce(sum(m.n), 0) FROM integration.metric_counts AS m
                          WHERE m.family = 'outbox_done' AND m.key = ''),
                        (SELECT extract(epoch FROM now() - o.created_at)::float8
                           FROM integration.outbox AS o
                          WHERE o.status = 'done' ORDER BY o.done_at LIMIT 1)) AS a
             ON a.status = s.status
     ORDER BY s.ord;
$$;
REVOKE ALL ON FUNCTION integration.outbox_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.outbox_stats() TO service_role, integration_reader;

-- ---------------------------------------------------------------------------------------
-- Advisory locks: only service_role and the database owner may take them (superuser only;
-- see the header).
-- ---------------------------------------------------------------------------------------
DO $$
DECLARE
    f     regprocedure;
    owner text := (SELECT pg_get_userbyid(d.datdba) FROM pg_database AS d
                    WHERE d.datname = current_database());
BEGIN
    IF NOT coalesce((SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = current_user),
                    false) THEN
        RAISE NOTICE 'pg_advisory_lock & co. stay executable by PUBLIC: revoking them needs '
                     'a superuser (docs/deploy.md, "Advisory locks")';
        RETURN;
    END IF;
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
         WHERE p.pronamespace = 'pg_catalog'::regnamespace
           AND p.proname IN ('pg_advisory_lock', 'pg_advisory_lock_shared',
                             'pg_try_advisory_lock', 'pg_try_advisory_lock_shared',
                             'pg_advisory_xact_lock', 'pg_advisory_xact_lock_shared',
                             'pg_try_advisory_xact_lock', 'pg_try_advisory_xact_lock_shared')
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO service_role', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, owner);
    END LOOP;
END;
$$;
