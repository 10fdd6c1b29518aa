-- IPAI integration bus: least privilege (SPEC §15, issue #34 items 1 and 4).
--
-- Why. The app's login roles ipai_ingest and ipai_app were members of service_role: ALL on
-- every table of the schema, the cached OAuth tokens included, although each component
-- uses a few. And /health and /metrics (anonymous by default) shared ipai_app's
-- connections with delivery: a couple of dozen concurrent GETs held the connections the
-- dispatcher and the handlers need, and delivery stalled.
--
-- Now every privilege of the app sits on a NOLOGIN group role that holds only what its
-- components use; the login roles are members of their group and of nothing else:
--   integration_ingest  the ingest component: ingest_event() and request_dispatch(), and
--                       the rows those write (outbox, event_log, idempotency_keys,
--                       ingest_signatures, the dispatch lease).
--   integration_app     the dispatcher, the domain handlers, approvals and ops: the
--                       outbox's claim/ack/fail/requeue/purge functions, the dispatch
--                       lease, the handlers' ledgers and dashboard tables, alerts,
--                       retention. No INSERT into the outbox or the audit log, nothing on
--                       idempotency_keys, nothing at all on event_log.
--   integration_probe   /health and /metrics: EXECUTE on health_snapshot(),
--                       metrics_snapshot() and open_alerts() only (SECURITY DEFINER, as
--                       pgmq does: the functions read, the role cannot).
--   integration_reader  (unchanged) the MCP component.
-- Login roles: ipai_ingest ∈ integration_ingest, ipai_app ∈ integration_app, and the new
-- ipai_probe ∈ integration_probe (LOGIN, CONNECTION LIMIT 4, read-only sessions,
-- statement_timeout 5 s, idle sessions closed after 30 s): the probes have a budget of
-- their own, so a flood of anonymous GETs takes at most 4 connections and never one of
-- ipai_app's. `ipai migrate --probe-connection-limit N` changes the limit.
-- Grants go to group roles, not to the login roles, so that another login (a test's own
-- role, an operator's second instance) gets exactly the same by membership.
--
-- service_role itself (Supabase's role) keeps its grants; the app's roles stop being its
-- members here. Objects later migrations add must be granted to the groups explicitly.
-- Idempotent: safe to apply again. Roles and memberships are cluster-wide: another
-- database's migration may create or change them at the same moment.

-- ---------------------------------------------------------------------------------------
-- The group roles.
-- ---------------------------------------------------------------------------------------
DO $$
DECLARE
    g text;
BEGIN
    FOREACH g IN ARRAY ARRAY['integration_ingest', 'integration_app', 'integration_probe'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = g) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', g);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END;
$$;

REVOKE ALL ON SCHEMA integration FROM integration_ingest, integration_app, integration_probe;
GRANT USAGE ON SCHEMA integration TO integration_ingest, integration_app, integration_probe;
REVOKE ALL ON ALL TABLES    IN SCHEMA integration FROM integration_ingest, integration_app, integration_probe;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA integration FROM integration_ingest, integration_app, integration_probe;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA integration FROM integration_ingest, integration_app, integration_probe;

-- ---------------------------------------------------------------------------------------
-- /health and /metrics: one statement each, SECURITY DEFINER (they read the outbox and
-- the counters as the owner; the caller needs EXECUTE only). The same reads as before
-- (ipai_ops::data): partial indexes for the queue and `dead`, trigger-kept counters for
-- `done`, ingested events and deliveries; nothing grows with the log.
-- p_lock_timeout_s: a `processing` row locked longer is counted as stuck.
-- ---------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION integration.health_snapshot(p_lock_timeout_s float8)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
    SELECT jsonb_build_object(
        'counts', (SELECT coalesce(jsonb_object_agg(c.status, c.n), '{}'::jsonb) FROM (
            SELECT o.status, count(*) AS n FROM integration.outbox AS o
             WHERE o.status IN ('pending', 'processing', 'failed') GROUP BY o.status
            UNION ALL
            SELECT 'dead', count(*) FROM integration.outbox AS o WHERE o.status = 'dead') AS c),
        'oldest_pending_age_s',
            (SELECT greatest(extract(epoch FROM now() - min(o.next_attempt_at)), 0)::float8
               FROM integration.outbox AS o WHERE o.status = 'pending' HAVING count(*) > 0),
        'stuck_processing',
            (SELECT count(*) FROM integration.outbox AS o
              WHERE o.status = 'processing'
                AND o.locked_at < now() - make_interval(secs => p_lock_timeout_s)));
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
                                       HAVING sum(m.n) > 0) AS c) AS d));
$$;

-- open_alerts() (the open alerts /metrics and MCP's list_alerts show) reads as its owner
-- too, so the probe needs no SELECT on integration.alerts.
ALTER FUNCTION integration.open_alerts() SECURITY DEFINER;

REVOKE ALL ON FUNCTION integration.health_snapshot(float8) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.metrics_snapshot(float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.health_snapshot(float8) TO service_role;
GRANT EXECUTE ON FUNCTION integration.metrics_snapshot(float8) TO service_role;

-- ---------------------------------------------------------------------------------------
-- integration_probe: /health and /metrics.
-- ---------------------------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION integration.health_snapshot(float8) TO integration_probe;
GRANT EXECUTE ON FUNCTION integration.metrics_snapshot(float8) TO integration_probe;
GRANT EXECUTE ON FUNCTION integration.open_alerts() TO integration_probe;

-- ---------------------------------------------------------------------------------------
-- integration_ingest: the ingest component (ipai_core::outbox::INGEST_SQL). The functions
-- are SECURITY INVOKER: the role holds the rows they write. FOR UPDATE (the signature
-- purge) needs UPDATE.
-- ---------------------------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION integration.ingest_event(text, text, text, jsonb, text, text, timestamptz, text, text) TO integration_ingest;
GRANT EXECUTE ON FUNCTION integration.ingest_event(text, text, text, jsonb, text, text, timestamptz, text) TO integration_ingest;
GRANT EXECUTE ON FUNCTION integration.request_dispatch(interval) TO integration_ingest;
GRANT SELECT, INSERT                 ON integration.outbox            TO integration_ingest;
GRANT INSERT                         ON integration.event_log         TO integration_ingest;
GRANT SELECT, INSERT                 ON integration.idempotency_keys  TO integration_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration.ingest_signatures TO integration_ingest;
GRANT SELECT, UPDATE                 ON integration.dispatch_lease    TO integration_ingest;
GRANT USAGE                          ON SEQUENCE integration.outbox_seq_seq TO integration_ingest;

-- ---------------------------------------------------------------------------------------
-- integration_app: dispatcher (claim, ack, fail, the lease), domain handlers and approvals
-- (delivery ledger, report messages, id_map, OAuth token cache, dashboard tables), ops
-- (/ops dashboard and requeue, retention, alerts; /health and /metrics when db_url_probe
-- is not set).
-- ---------------------------------------------------------------------------------------
GRANT EXECUTE ON FUNCTION
    integration.start_dispatch_run(text, interval),
    integration.claim_dispatch_batch(text, integer, interval, interval),
    integration.claim_outbox(integer, text, interval),
    integration.end_dispatch_run(text),
    integration.ack_outbox(uuid),
    integration.ack_outbox_batch(uuid[]),
    integration.fail_outbox(uuid, text),
    integration.requeue_outbox(uuid),
    integration.claim_delivery(uuid, text, text, integer),
    integration.finish_delivery(uuid, text, text, text, integer, text),
    integration.release_delivery(uuid, text, text),
    integration.claim_report_message(text, uuid),
    integration.claim_report_message_and_delivery(text, uuid, text, text, integer),
    integration.cached_oauth_token(text, integer),
    integration.purge_done_outbox(interval, integer),
    integration.purge_expired_signatures(integer),
    integration.purge_ledgers(interval, integer),
    integration.purge_deliveries(interval, integer),
    integration.purge_report_messages(interval, integer),
    integration.purge_id_map(interval, integer),
    integration.purge_expired_oauth_tokens(integer),
    integration.evaluate_alerts(integer, integer, integer, text[], integer),
    integration.current_alert_conditions(integer, integer),
    integration.alert_sent(bigint, text, text[], text),
    integration.open_alerts(),
    integration.health_snapshot(float8),
    integration.metrics_snapshot(float8)
TO integration_app;
GRANT SELECT, UPDATE, DELETE         ON integration.outbox             TO integration_app;
GRANT SELECT, UPDATE                 ON integration.dispatch_lease     TO integration_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration.deliveries         TO integration_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration.report_messages    TO integration_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration.id_map             TO integration_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration.oauth_tokens       TO integration_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON integration.payment_queue      TO integration_app;
GRANT SELECT, INSERT, UPDATE         ON integration.asset_availability TO integration_app;
GRANT SELECT, INSERT, UPDATE         ON integration.ppm_tasks          TO integration_app;
GRANT SELECT, INSERT, UPDATE         ON integration.bir_compliance     TO integration_app;
GRANT SELECT, INSERT, UPDATE         ON integration.alerts             TO integration_app;
GRANT SELECT, UPDATE, DELETE         ON integration.ingest_signatures  TO integration_app;
GRANT SELECT                         ON integration.metric_counts      TO integration_app;
GRANT SELECT                         ON integration.event_volume_hourly TO integration_app;
GRANT USAGE ON SEQUENCE integration.deliveries_id_seq, integration.alerts_id_seq TO integration_app;

-- Advisory locks: where 20261130000600 took pg_advisory_xact_lock & co. from PUBLIC (the
-- migrating role is a superuser), service_role and the owner kept them; now the groups get
-- the one form each uses: ingest_event's per-aggregate lock (integer, integer) and
-- evaluate_alerts' single lock (bigint). Elsewhere (Supabase) PUBLIC still has them.
DO $$
BEGIN
    IF coalesce((SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = current_user), false) THEN
        GRANT EXECUTE ON FUNCTION pg_catalog.pg_advisory_xact_lock(integer, integer) TO integration_ingest;
        GRANT EXECUTE ON FUNCTION pg_catalog.pg_advisory_xact_lock(bigint) TO integration_app;
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Row-level security: the groups see every row of the tables they hold privileges on
-- (the privileges above are what narrows them).
-- ---------------------------------------------------------------------------------------
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('integration_ingest', ARRAY['outbox', 'event_log', 'idempotency_keys',
                                     'ingest_signatures', 'dispatch_lease']),
        ('integration_app',    ARRAY['outbox', 'dispatch_lease', 'deliveries',
                                     'report_messages', 'id_map', 'oauth_tokens',
                                     'payment_queue', 'asset_availability', 'ppm_tasks',
                                     'bir_compliance', 'alerts', 'ingest_signatures',
                                     'metric_counts', 'event_volume_hourly'])) AS t(grp, tables)
    LOOP
        FOR i IN 1..array_length(r.tables, 1) LOOP
            EXECUTE format('DROP POLICY IF EXISTS %I ON integration.%I',
                           r.grp || '_all', r.tables[i]);
            EXECUTE format('CREATE POLICY %I ON integration.%I FOR ALL TO %I '
                           'USING (true) WITH CHECK (true)',
                           r.grp || '_all', r.tables[i], r.grp);
        END LOOP;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Memberships: the shipped login roles join their group and leave service_role; the probe
-- role is new. (`ipai migrate` keeps them so with the configured connection limits.)
-- ---------------------------------------------------------------------------------------
SELECT integration.ensure_login_role(
    'ipai_probe', 'integration_probe', 4,
    ARRAY['default_transaction_read_only=on', 'idle_session_timeout=30s',
          'idle_in_transaction_session_timeout=10s', 'statement_timeout=5s']);

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('ipai_ingest', 'integration_ingest'),
                                   ('ipai_app', 'integration_app')) AS t(login, grp)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.login) THEN
            CONTINUE;
        END IF;
        FOR attempt IN 1..5 LOOP
            BEGIN
                IF NOT pg_has_role(r.login, r.grp, 'MEMBER') THEN
                    EXECUTE format('GRANT %I TO %I', r.grp, r.login);
                END IF;
                IF EXISTS (SELECT 1 FROM pg_auth_members m
                            WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = r.login)
                              AND m.roleid = (SELECT oid FROM pg_roles WHERE rolname = 'service_role'))
                THEN
                    EXECUTE format('REVOKE service_role FROM %I', r.login);
                END IF;
                EXIT;
            EXCEPTION
                -- Another database's migration changed the same membership at the same
                -- moment ("tuple concurrently updated" is XX000): look again.
                WHEN duplicate_object OR unique_violation OR internal_error THEN
                    IF attempt = 5 THEN
                        RAISE;
                    END IF;
                    PERFORM pg_sleep(0.05 * attempt);
            END;
        END LOOP;
    END LOOP;
END;
$$;
