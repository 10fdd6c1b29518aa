-- IPAI integration bus: reconciliation watched (SPEC §11, issue #37): the metrics, the two
-- alerts and the retention of the digested windows.
--
-- Why. `record_digest` keeps, per window, the keys Odoo marked sent that the bus never
-- stored; nobody reads a table at night. The gap has to reach the operator the way every
-- other trouble does: `/metrics` (ipai_reconcile_missing_events,
-- ipai_reconcile_last_digest_age_seconds), an alert that opens, reminds and resolves by
-- itself (`events_missing`), and one for the silence of the proof itself (`digest_late`: a
-- digest came once, none for 2 hours — the addon's cron, its sender or the path to the bus
-- is broken, and nothing else would say so).
--
-- The contract:
--   reconcile_gaps()                 SECURITY DEFINER, read-only: {"missing", "since",
--                                    "detail", "last_digest_at"}: the keys still missing
--                                    now (counted live, as reconcile_status does), the
--                                    oldest such window's arrival, one line naming it,
--                                    the newest digest's arrival (NULL: none ever came)
--   current_alert_conditions(…)      as before, plus events_missing and digest_late; Odoo's
--                                    AccessError (the bus's user lacking a right, e.g. the
--                                    addon's group for the resend) is credentials_rejected:odoo
--   metrics_snapshot(…)              as before, plus "reconcile": {"missing",
--                                    "last_digest_age_s"}
--   purge_reconcile_windows(i, n)    windows received longer ago than i whose keys have all
--                                    arrived since; a window still missing a key is kept
--                                    whatever its age (it is the evidence)
--   purge_ledgers(i, n)              as before, plus "reconcile_windows"
-- Idempotent: safe to apply again.

-- How long the bus waits for the next digest once one came: the addon sends one every hour.
CREATE OR REPLACE FUNCTION integration.digest_late_after()
RETURNS interval
LANGUAGE sql
IMMUTABLE
AS $$ SELECT interval '2 hours' $$;

CREATE OR REPLACE FUNCTION integration.reconcile_gaps()
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
    -- Only windows recorded with a missing key are read (reconcile_windows_open_idx);
    -- each of their keys is looked up in idempotency_keys' primary key.
    WITH open_windows AS (
        SELECT r.source, r.window_start, r.received_at,
               (SELECT count(*) FROM unnest(r.missing) AS k
                 WHERE NOT EXISTS (SELECT 1 FROM integration.idempotency_keys AS i
                                    WHERE i.idempotency_key = k)) AS missing
          FROM integration.reconcile_windows AS r
         WHERE cardinality(r.missing) > 0
    )
    SELECT jsonb_build_object(
        'missing', coalesce((SELECT sum(w.missing) FROM open_windows AS w), 0)::int8,
        'since', (SELECT min(w.received_at) FROM open_windows AS w WHERE w.missing > 0),
        'detail', (SELECT count(*) || ' window(s) with missing events; oldest: '
                          || (SELECT o.source || ' ' || to_char(o.window_start AT TIME ZONE 'UTC',
                                                                'YYYY-MM-DD HH24:MI') || ' UTC'
                                FROM open_windows AS o WHERE o.missing > 0
                               ORDER BY o.window_start LIMIT 1)
                     FROM open_windows AS w WHERE w.missing > 0 HAVING count(*) > 0),
        'last_digest_at', (SELECT max(r.received_at) FROM integration.reconcile_windows AS r));
$$;

CREATE OR REPLACE FUNCTION integration.current_alert_conditions(
    p_stalled_after_s           integer,
    p_health_max_pending_age_s  integer
)
RETURNS TABLE (condition text, events bigint, since timestamptz, detail text)
LANGUAGE sql
STABLE
SET search_path = integration, pg_temp
AS $$
    WITH errored AS (
        SELECT o.id, o.event_type, o.status, o.updated_at, o.last_error,
               CASE
                 WHEN o.last_error ~* 'Odoo rejected odoo_user|AccessDenied|Access Denied|Odoo JSON-RPC: HTTP 40[13]|odoo\.exceptions\.AccessError'
                   THEN 'credentials_rejected:odoo'
                 WHEN o.last_error ~* 'Google token endpoint: HTTP 4|google_calendar [^ ]*: HTTP 40[13]'
                   THEN 'credentials_rejected:google'
                 WHEN o.last_error ~* 'email [^ ]*: HTTP 40[13]'
                   THEN 'credentials_rejected:email'
                 WHEN o.last_error ~* 'mattermost [^ ]*: HTTP 40[13]'
                   THEN 'credentials_rejected:mattermost'
                 WHEN o.last_error LIKE '%"error":"misconfigured"%'
                   THEN 'handler_misconfigured:' || split_part(o.event_type, '.', 1)
               END AS condition
        FROM integration.outbox AS o
        WHERE o.status IN ('failed', 'dead') AND o.last_error IS NOT NULL
    ),
    gaps AS (SELECT integration.reconcile_gaps() AS g)
    SELECT 'dead_letters', count(*), min(o.updated_at),
           (SELECT 'last: ' || d.event_type || ' ' || d.id || ': ' || left(coalesce(d.last_error, ''), 300)
              FROM integration.outbox AS d WHERE d.status = 'dead'
             ORDER BY d.updated_at DESC LIMIT 1)
      FROM integration.outbox AS o WHERE o.status = 'dead'
    HAVING count(*) > 0
    UNION ALL
    SELECT 'queue_stalled', count(*), min(o.created_at),
           (SELECT 'oldest: ' || s.event_type || ' ' || s.id || ' (' || s.status || ')'
              FROM integration.outbox AS s WHERE s.status IN ('pending', 'failed')
               AND s.created_at < now() - make_interval(secs => greatest(p_stalled_after_s, 1))
             ORDER BY s.seq LIMIT 1)
      FROM integration.outbox AS o
     WHERE o.status IN ('pending', 'failed')
       AND o.created_at < now() - make_interval(secs => greatest(p_stalled_after_s, 1))
    HAVING count(*) > 0
    UNION ALL
    SELECT 'health_degraded', count(*), min(o.next_attempt_at),
           'oldest pending event waiting since ' || to_char(min(o.next_attempt_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
      FROM integration.outbox AS o
     WHERE o.status = 'pending'
       AND o.next_attempt_at < now() - make_interval(secs => greatest(p_health_max_pending_age_s, 1))
    HAVING count(*) > 0
    UNION ALL
    SELECT e.condition, count(*), min(e.updated_at),
           'last: ' || (array_agg(e.event_type || ' ' || e.id || ': ' || left(e.last_error, 300)
                                  ORDER BY e.updated_at DESC))[1]
      FROM errored AS e WHERE e.condition IS NOT NULL
     GROUP BY e.condition
    UNION ALL
    -- events_missing: keys a digest listed that the bus has still not stored.
    SELECT 'events_missing', (g.g->>'missing')::int8, (g.g->>'since')::timestamptz,
           coalesce(g.g->>'detail', '')
      FROM gaps AS g WHERE (g.g->>'missing')::int8 > 0
    UNION ALL
    -- digest_late: digests came, then none for digest_late_after().
    SELECT 'digest_late', 0, (g.g->>'last_digest_at')::timestamptz,
           'last digest received ' || to_char((g.g->>'last_digest_at')::timestamptz AT TIME ZONE 'UTC',
                                              'YYYY-MM-DD HH24:MI:SS') || ' UTC'
      FROM gaps AS g
     WHERE (g.g->>'last_digest_at')::timestamptz < now() - integration.digest_late_after();
$$;

CREATE OR REPLACE FUNCTION integration.metrics_snapshot(p_lock_timeout_s float8)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
    SELECT jsonb_build_object(
        'outbox', (SELECT coalesce(jsonb_agg(jsonb_build_object('status', s.status,
                        'count', s.count, 'oldest_age_s', s.oldest_age_seconds)), '[]'::jsonb)
                     FROM (
            SELECT o.status, count(*) AS count,
                   extract(epoch FROM now() - min(o.created_at))::float8 AS oldest_age_seconds
              FROM integration.outbox AS o WHERE o.status IN ('pending', 'processing', 'failed')
             GROUP BY o.status
            UNION ALL
            SELECT 'dead', count(*), extract(epoch FROM now() - min(o.created_at))::float8
              FROM integration.outbox AS o WHERE o.status = 'dead'
            UNION ALL
            SELECT 'done',
                   (SELECT coalesce(sum(m.n), 0)::int8 FROM integration.metric_counts AS m
                     WHERE m.family = 'outbox_done' AND m.key = ''),
                   (SELECT extract(epoch FROM now() - o.created_at)::float8 FROM integration.outbox AS o
                     WHERE o.status = 'done' ORDER BY o.done_at LIMIT 1)) AS s),
        'oldest_pending_age_s',
            (SELECT greatest(extract(epoch FROM now() - min(o.next_attempt_at)), 0)::float8
               FROM integration.outbox AS o WHERE o.status = 'pending' HAVING count(*) > 0),
        'stuck_processing',
            (SELECT count(*) FROM integration.outbox AS o
              WHERE o.status = 'processing'
                AND o.locked_at < now() - make_interval(secs => p_lock_timeout_s)),
        'ingested', (SELECT coalesce(jsonb_object_agg(c.key, c.n), '{}'::jsonb)
                       FROM (SELECT m.key, sum(m.n)::int8 AS n FROM integration.metric_counts AS m
                              WHERE m.family = 'ingested' GROUP BY m.key HAVING sum(m.n) > 0) AS c),
        'deliveries', (SELECT coalesce(jsonb_agg(jsonb_build_object('channel', d.channel,
                           'status', d.status, 'count', d.n) ORDER BY d.channel, d.status), '[]'::jsonb)
                         FROM (SELECT left(c.key, length(c.key) - strpos(reverse(c.key), '/')) AS channel,
                                      reverse(split_part(reverse(c.key), '/', 1)) AS status, c.n
                                 FROM (SELECT m.key, sum(m.n)::int8 AS n FROM integration.metric_counts AS m
                                        WHERE m.family = 'deliveries' GROUP BY m.key
                                       HAVING sum(m.n) > 0) AS c) AS d),
        'reconcile', (SELECT jsonb_build_object('missing', (g.g->>'missing')::int8,
                          'last_digest_age_s',
                          CASE WHEN g.g->>'last_digest_at' IS NOT NULL THEN
                              greatest(extract(epoch FROM now() - (g.g->>'last_digest_at')::timestamptz), 0)::float8
                          END)
                        FROM (SELECT integration.reconcile_gaps() AS g) AS g));
$$;

CREATE OR REPLACE FUNCTION integration.purge_reconcile_windows(p_older_than interval, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_batch   integer := least(coalesce(p_batch, 0), 10000);
    v_deleted integer;
BEGIN
    IF v_batch <= 0 OR p_older_than IS NULL OR p_older_than < interval '0' THEN
        RETURN 0;
    END IF;
    WITH picked AS MATERIALIZED (
        SELECT r.source, r.window_start
          FROM integration.reconcile_windows AS r
         WHERE r.received_at < now() - p_older_than
           AND NOT EXISTS (SELECT 1 FROM unnest(r.missing) AS k
                            WHERE NOT EXISTS (SELECT 1 FROM integration.idempotency_keys AS i
                                               WHERE i.idempotency_key = k))
         ORDER BY r.received_at
         LIMIT v_batch
           FOR UPDATE OF r SKIP LOCKED
    )
    DELETE FROM integration.reconcile_windows AS r
     USING picked
     WHERE r.source = picked.source AND r.window_start = picked.window_start
       AND r.received_at < now() - p_older_than;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

CREATE OR REPLACE FUNCTION integration.purge_ledgers(p_older_than interval, p_batch integer)
RETURNS jsonb
LANGUAGE sql
VOLATILE
SET search_path = integration, pg_temp
AS $$
    SELECT jsonb_build_object(
        'deliveries', integration.purge_deliveries(p_older_than, p_batch),
        'report_messages', integration.purge_report_messages(p_older_than, p_batch),
        'id_map', integration.purge_id_map(p_older_than, p_batch),
        'oauth_tokens', integration.purge_expired_oauth_tokens(p_batch),
        'reconcile_windows', integration.purge_reconcile_windows(p_older_than, p_batch));
$$;

REVOKE ALL ON FUNCTION integration.digest_late_after() FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.reconcile_gaps() FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_reconcile_windows(interval, integer) FROM PUBLIC;
-- integration_app: the alert evaluation (current_alert_conditions runs as the caller) and
-- the retention tick (purge_ledgers); metrics_snapshot reads as its owner.
GRANT EXECUTE ON FUNCTION integration.digest_late_after(),
                          integration.reconcile_gaps(),
                          integration.purge_reconcile_windows(interval, integer) TO integration_app;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION integration.digest_late_after(),
                                  integration.reconcile_gaps(),
                                  integration.purge_reconcile_windows(interval, integer) TO service_role;
    END IF;
END;
$$;
