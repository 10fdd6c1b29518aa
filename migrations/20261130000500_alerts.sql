-- IPAI integration bus: alerts that find the operator (issue #19).
-- One row per occurrence of a condition (dead letters, a stalled queue, a handler that is
-- misconfigured, an outside service rejecting credentials, /health degraded): opened once,
-- reminded after an interval while it stays open, resolved once when the condition clears.
-- Every message owed (opened, reminder, resolved) is kept on the row until it has reached
-- every destination, so a failed send is retried on the next evaluation.
-- Rows change only through the functions below (pgmq style); the ops component calls them
-- from POST /ops/alerts/evaluate, which dispatch-cron calls on every tick after /dispatch.
-- Idempotent: safe to apply again. Runs on PostgreSQL 15+ and Supabase.

CREATE TABLE IF NOT EXISTS integration.alerts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- What is wrong: 'dead_letters', 'queue_stalled', 'health_degraded',
    -- 'handler_misconfigured:<domain>', 'credentials_rejected:<service>'.
    condition         text NOT NULL,
    -- The condition's family (the part before ':'): the label of ipai_alerts_open.
    kind              text NOT NULL,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    -- Evaluations that saw the condition.
    seen              bigint NOT NULL DEFAULT 1,
    -- Events affected at the last evaluation that saw it, and the oldest one's time.
    events            bigint NOT NULL DEFAULT 0,
    since             timestamptz,
    -- One line about it (the last error, the oldest age): for the messages.
    detail            text NOT NULL DEFAULT '',
    resolved_at       timestamptz,
    -- Bookkeeping of the messages: when the last opened/reminder message reached every
    -- destination, how many reminders went out, what is still owed.
    notified_at       timestamptz,
    reminders         integer NOT NULL DEFAULT 0,
    -- 'opened' | 'reminder' | 'resolved': a message owed; NULL: nothing owed.
    pending_message   text CHECK (pending_message IN ('opened', 'reminder', 'resolved')),
    -- Destinations ('mattermost', 'email') the owed message has not reached yet; NULL
    -- until it is first claimed.
    pending_targets   text[],
    -- A claimed send is not claimed again before this (an evaluation still sending).
    send_lease_until  timestamptz,
    send_attempts     integer NOT NULL DEFAULT 0,
    last_send_error   text,
    last_send_error_at timestamptz
);

-- At most one open alert per condition; also the index of every open-alert read
-- (/metrics, /ops, MCP list_alerts, ipai status): constant cost whatever the history.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open_condition_idx
    ON integration.alerts (condition) WHERE resolved_at IS NULL;
-- Messages owed.
CREATE INDEX IF NOT EXISTS alerts_pending_message_idx
    ON integration.alerts (id) WHERE pending_message IS NOT NULL;
-- History, newest first.
CREATE INDEX IF NOT EXISTS alerts_first_seen_idx ON integration.alerts (first_seen_at DESC);

-- current_alert_conditions: what is wrong right now, one row per condition (none when
-- all is well). Reads only the queue's partial indexes (pending/failed/dead rows), never
-- the done history.
--  * dead_letters: events that exhausted their attempts (status dead).
--  * queue_stalled: pending/failed events created more than p_stalled_after_s ago.
--  * health_degraded: pending events due for longer than p_health_max_pending_age_s
--    (what makes GET /health answer 503).
--  * credentials_rejected:<odoo|email|google|mattermost>: failed/dead events whose last
--    error says the service refused the bus's credentials (HTTP 401/403, Odoo's
--    authenticate returning false or AccessDenied, Google's token endpoint refusing).
--  * handler_misconfigured:<domain>: failed/dead events whose handler answered
--    'misconfigured' (a variable missing or wrong) for any other reason.
-- Each error class is one row however many events carry it.
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
                 WHEN o.last_error ~* 'Odoo rejected odoo_user|AccessDenied|Access Denied|Odoo JSON-RPC: HTTP 40[13]'
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
    )
    -- (The detail rows come from LIMIT 1 look-ups in index order: outbox_dead_idx,
    -- outbox_open_seq_idx.)
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
     GROUP BY e.condition;
$$;

-- evaluate_alerts: one evaluation, atomic, one round trip; serialised by a transaction
-- advisory lock, so overlapping callers (two cron processes, an operator) never open the
-- same alert twice. It
--  1. opens an alert (message 'opened' owed) for each current condition without an open
--     one, and refreshes last_seen_at / seen / events / since / detail of those open;
--  2. resolves open alerts whose condition is gone (message 'resolved' owed, replacing
--     any message still owed about it);
--  3. owes a 'reminder' for an alert still open p_reminder_interval_s after its last
--     message reached every destination;
--  4. claims the owed messages for p_targets (the destinations configured now, e.g.
--     {mattermost,email}) under a send lease of p_send_lease_s seconds and returns them.
--     With no destination configured, owed messages count as delivered (nothing can be
--     sent; the alert is still recorded and shown).
-- The caller sends each claimed message and reports with alert_sent(). A claimed message
-- never reported (the caller died) is claimed again once its lease has expired.
-- Returns {"open": n, "opened": [conditions], "resolved": [conditions], "sends": [...]}.
CREATE OR REPLACE FUNCTION integration.evaluate_alerts(
    p_stalled_after_s           integer,
    p_health_max_pending_age_s  integer,
    p_reminder_interval_s       integer,
    p_targets                   text[],
    p_send_lease_s              integer DEFAULT 60
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_targets  text[] := coalesce(p_targets, '{}'::text[]);
    v_now      jsonb;
    v_opened   jsonb;
    v_resolved jsonb;
    v_sends    jsonb;
    v_open     bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('integration.evaluate_alerts'));

    SELECT coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb) INTO v_now
      FROM integration.current_alert_conditions(p_stalled_after_s, p_health_max_pending_age_s) AS c;

    -- 1. open / refresh
    WITH up AS (
        INSERT INTO integration.alerts AS a (condition, kind, events, since, detail, pending_message)
        SELECT n.condition, split_part(n.condition, ':', 1), n.events, n.since,
               left(coalesce(n.detail, ''), 1000), 'opened'
          FROM jsonb_to_recordset(v_now) AS n(condition text, events bigint, since timestamptz, detail text)
        ON CONFLICT (condition) WHERE resolved_at IS NULL DO UPDATE
            SET last_seen_at = now(), seen = a.seen + 1, events = excluded.events,
                since = excluded.since, detail = excluded.detail
        RETURNING a.condition, (xmax = 0) AS inserted
    )
    SELECT coalesce(jsonb_agg(up.condition ORDER BY up.condition) FILTER (WHERE up.inserted), '[]'::jsonb)
      INTO v_opened FROM up;

    -- 2. resolve
    WITH r AS (
        UPDATE integration.alerts AS a
           SET resolved_at = now(), pending_message = 'resolved', pending_targets = NULL,
               send_lease_until = NULL
         WHERE a.resolved_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(v_now) AS n(condition text)
                            WHERE n.condition = a.condition)
        RETURNING a.condition
    )
    SELECT coalesce(jsonb_agg(r.condition ORDER BY r.condition), '[]'::jsonb) INTO v_resolved FROM r;

    -- 3. reminders
    UPDATE integration.alerts AS a
       SET pending_message = 'reminder', pending_targets = NULL
     WHERE a.resolved_at IS NULL AND a.pending_message IS NULL
       AND a.notified_at < now() - make_interval(secs => greatest(p_reminder_interval_s, 1));

    -- 4. claim (or, with no destination, count as delivered)
    IF cardinality(v_targets) = 0 THEN
        UPDATE integration.alerts AS a
           SET pending_message = NULL, pending_targets = NULL, send_lease_until = NULL,
               notified_at = CASE WHEN a.pending_message = 'resolved' THEN a.notified_at ELSE now() END
         WHERE a.pending_message IS NOT NULL;
        v_sends := '[]'::jsonb;
    ELSE
        WITH c AS (
            UPDATE integration.alerts AS a
               SET pending_targets = ARRAY(SELECT t FROM unnest(coalesce(a.pending_targets, v_targets)) AS t
                                           WHERE t = ANY (v_targets)),
                   send_lease_until = now() + make_interval(secs => greatest(p_send_lease_s, 1)),
                   send_attempts = a.send_attempts + 1
             WHERE a.pending_message IS NOT NULL
               AND (a.send_lease_until IS NULL OR a.send_lease_until < now())
            RETURNING a.*
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'id', c.id, 'condition', c.condition, 'kind', c.kind,
                   'message', c.pending_message, 'targets', to_jsonb(c.pending_targets),
                   'events', c.events, 'since', c.since, 'detail', c.detail,
                   'first_seen_at', c.first_seen_at, 'last_seen_at', c.last_seen_at,
                   'resolved_at', c.resolved_at, 'reminders', c.reminders,
                   'send_attempts', c.send_attempts) ORDER BY c.id), '[]'::jsonb)
          INTO v_sends FROM c;
        -- A message whose destinations are all gone from the configuration: delivered.
        UPDATE integration.alerts AS a
           SET pending_message = NULL, pending_targets = NULL, send_lease_until = NULL
         WHERE a.pending_message IS NOT NULL AND cardinality(a.pending_targets) = 0;
    END IF;

    SELECT count(*) INTO v_open FROM integration.alerts AS a WHERE a.resolved_at IS NULL;
    RETURN jsonb_build_object('open', v_open, 'opened', v_opened, 'resolved', v_resolved,
                              'sends', v_sends);
END;
$$;

-- alert_sent: the outcome of a claimed message (evaluate_alerts' "sends"): p_sent are the
-- destinations it reached now, p_error what went wrong with the others (NULL if none).
-- Reached destinations are struck off; when none is left the message is delivered
-- (an opened/reminder message also restarts the reminder clock). Otherwise the lease is
-- released so the next evaluation retries the destinations left, and only those.
-- Only the message claimed is settled: if the alert has since been resolved (another
-- message owed), nothing changes. Returns whether the message is now fully delivered.
CREATE OR REPLACE FUNCTION integration.alert_sent(
    p_id       bigint,
    p_message  text,
    p_sent     text[],
    p_error    text
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_left text[];
BEGIN
    UPDATE integration.alerts AS a
       SET pending_targets = ARRAY(SELECT t FROM unnest(a.pending_targets) AS t
                                   WHERE NOT (t = ANY (coalesce(p_sent, '{}'::text[]))))
     WHERE a.id = p_id AND a.pending_message = p_message
    RETURNING a.pending_targets INTO v_left;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF cardinality(v_left) = 0 THEN
        UPDATE integration.alerts AS a
           SET notified_at = CASE WHEN p_message = 'resolved' THEN a.notified_at ELSE now() END,
               reminders = a.reminders + CASE WHEN p_message = 'reminder' THEN 1 ELSE 0 END,
               pending_message = NULL, pending_targets = NULL, send_lease_until = NULL,
               send_attempts = 0
         WHERE a.id = p_id;
        RETURN true;
    END IF;
    UPDATE integration.alerts AS a
       SET send_lease_until = NULL,
           last_send_error = left(coalesce(p_error, 'not sent'), 1000),
           last_send_error_at = now()
     WHERE a.id = p_id;
    RETURN false;
END;
$$;

-- open_alerts: the open alerts, oldest first, as one jsonb array (always one row, as
-- Spin 4.0.2 needs): what /ops, /metrics, MCP list_alerts and `ipai status` show.
-- Reads alerts_open_condition_idx only.
CREATE OR REPLACE FUNCTION integration.open_alerts()
RETURNS jsonb
LANGUAGE sql
STABLE
SET search_path = integration, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', a.id, 'condition', a.condition, 'kind', a.kind,
               'first_seen_at', a.first_seen_at, 'last_seen_at', a.last_seen_at,
               'open_for_s', round(extract(epoch FROM now() - a.first_seen_at))::bigint,
               'seen', a.seen, 'events', a.events, 'since', a.since, 'detail', a.detail,
               'notified_at', a.notified_at, 'reminders', a.reminders,
               'pending_message', a.pending_message, 'last_send_error', a.last_send_error)
             ORDER BY a.first_seen_at, a.id), '[]'::jsonb)
      FROM integration.alerts AS a WHERE a.resolved_at IS NULL;
$$;

-- ---------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the app's roles (service_role: ipai_app) evaluate and
-- settle; the read-only role may read alerts (MCP list_alerts).
-- ---------------------------------------------------------------------------------------
REVOKE ALL ON integration.alerts FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.current_alert_conditions(integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.evaluate_alerts(integer, integer, integer, text[], integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.alert_sent(bigint, text, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.open_alerts() FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT SELECT, INSERT, UPDATE ON integration.alerts TO service_role;
        GRANT EXECUTE ON FUNCTION integration.current_alert_conditions(integer, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.evaluate_alerts(integer, integer, integer, text[], integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.alert_sent(bigint, text, text[], text) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.open_alerts() TO service_role;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'integration_reader') THEN
        GRANT SELECT ON integration.alerts TO integration_reader;
        GRANT EXECUTE ON FUNCTION integration.open_alerts() TO integration_reader;
    END IF;
END;
$$;

ALTER TABLE integration.alerts ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON integration.alerts;
CREATE POLICY service_role_all ON integration.alerts
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS integration_reader_select ON integration.alerts;
CREATE POLICY integration_reader_select ON integration.alerts
    FOR SELECT TO integration_reader USING (true);
