-- IPAI integration bus: the app's own login roles with connection limits, and one
-- dispatcher run at a time per database (coalesced kicks).
--
-- Why. Spin's outbound PostgreSQL keeps a pool of up to 64 connections per component and
-- connection string, and never closes idle ones. Connecting as a superuser, a burst of
-- ingest requests (plus one dispatcher run per kick) filled every slot of the server,
-- PostgreSQL's reserved superuser slots included, and locked everyone else out. The
-- server-side levers work whatever the pool does:
--   ipai_ingest         LOGIN, not a superuser, member of service_role (its privileges
--                       and RLS policies): the ingest component only. CONNECTION LIMIT
--                       (default 32), idle sessions closed by the server.
--   ipai_app            the same for the dispatcher, handlers, approvals and ops
--                       (default 24). A role of its own for ingest means a flood of posts
--                       can take at most ingest's share: the dispatcher and the handlers
--                       always find connections to deliver what was accepted (Spin keeps
--                       a pool per component, and a pool never gives idle ones back).
--   integration_reader  the MCP component's read-only login (20261126000300): now with a
--                       CONNECTION LIMIT (default 8) and the same timeouts.
-- Both get statement_timeout (no query of the app may run for minutes) and
-- idle_in_transaction_session_timeout. When a limit is reached PostgreSQL refuses the new
-- connection ("too many connections for role"): ingest answers 503 + Retry-After and
-- stores nothing, a dispatcher run or handler fails and is retried; other clients (an
-- operator's psql, Odoo, Supabase's services) can still connect.
-- `ipai migrate --ingest-connection-limit N --app-connection-limit N
-- --reader-connection-limit M` (make migrate: IPAI_INGEST_CONNECTION_LIMIT,
-- IPAI_APP_CONNECTION_LIMIT, IPAI_READER_CONNECTION_LIMIT) changes the limits; see
-- docs/deploy.md "Connection budget" for the rule.
-- No role gets a password here: locally the server trusts loopback; elsewhere
--   ALTER ROLE ipai_app PASSWORD '...';  (likewise ipai_ingest)
-- Idempotent: safe to apply again; roles are cluster-wide, so concurrent migrations of
-- other databases on the same server may be doing the same at the same moment.

-- ensure_login_role: create or update a login role the app connects as.
-- Guarantees:
--  * p_name exists afterwards as LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
--    INHERIT (an existing role keeps its password; SUPERUSER etc. are taken away).
--  * CONNECTION LIMIT p_connection_limit (1..10000; anything else raises).
--  * member of p_member_of when not NULL (privileges and RLS policies come from it).
--  * each 'name=value' of p_settings set with ALTER ROLE ... SET (role-wide defaults,
--    applied by the server at every new session of the role).
--  * Safe when another database's migration runs it at the same moment: a change already
--    made is not made again, and a concurrent update of the same role is retried.
-- Needs CREATEROLE (the migrating role). Roles are cluster-wide: tests make one per test.
CREATE OR REPLACE FUNCTION integration.ensure_login_role(
    p_name             text,
    p_member_of        text,
    p_connection_limit integer,
    p_settings         text[]
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_setting text;
    v_key     text;
    v_value   text;
BEGIN
    IF p_connection_limit IS NULL OR p_connection_limit < 1 OR p_connection_limit > 10000 THEN
        RAISE EXCEPTION 'ensure_login_role: connection limit of % must be 1..10000, got %',
            p_name, p_connection_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR attempt IN 1..5 LOOP
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_name) THEN
                EXECUTE format('CREATE ROLE %I LOGIN INHERIT', p_name);
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_name
                        AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication
                             OR NOT rolcanlogin OR NOT rolinherit
                             OR rolconnlimit <> p_connection_limit)) THEN
                EXECUTE format('ALTER ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB '
                               'NOCREATEROLE NOREPLICATION CONNECTION LIMIT %s',
                               p_name, p_connection_limit);
            END IF;
            IF p_member_of IS NOT NULL AND NOT pg_has_role(p_name, p_member_of, 'MEMBER') THEN
                EXECUTE format('GRANT %I TO %I', p_member_of, p_name);
            END IF;
            FOREACH v_setting IN ARRAY coalesce(p_settings, ARRAY[]::text[]) LOOP
                v_key   := split_part(v_setting, '=', 1);
                v_value := substr(v_setting, length(v_key) + 2);
                IF NOT EXISTS (
                    SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                     WHERE r.rolname = p_name AND s.setdatabase = 0
                       AND v_key || '=' || v_value = ANY (s.setconfig))
                THEN
                    EXECUTE format('ALTER ROLE %I SET %I = %L', p_name, v_key, v_value);
                END IF;
            END LOOP;
            RETURN;
        EXCEPTION
            -- A concurrent migration created or changed the role first ("tuple concurrently
            -- updated" is XX000): look again.
            WHEN duplicate_object OR unique_violation OR internal_error THEN
                IF attempt = 5 THEN
                    RAISE;
                END IF;
                PERFORM pg_sleep(0.05 * attempt);
        END;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION integration.ensure_login_role(text, text, integer, text[]) FROM PUBLIC;

-- The shipped roles. `ipai migrate` calls ensure_login_role again with the configured
-- limits after every migration run.
SELECT integration.ensure_login_role(
    'ipai_ingest', 'service_role', 32,
    ARRAY['idle_session_timeout=60s', 'idle_in_transaction_session_timeout=60s',
          'statement_timeout=30s']);
SELECT integration.ensure_login_role(
    'ipai_app', 'service_role', 24,
    ARRAY['idle_session_timeout=60s', 'idle_in_transaction_session_timeout=60s',
          'statement_timeout=30s']);
SELECT integration.ensure_login_role(
    'integration_reader', NULL, 8,
    ARRAY['default_transaction_read_only=on', 'idle_session_timeout=60s',
          'idle_in_transaction_session_timeout=60s', 'statement_timeout=15s']);

-- ---------------------------------------------------------------------------------------
-- One dispatcher run at a time (coalesced kicks).
-- Every ingest used to kick a whole run; a burst started dozens of runs competing for the
-- same rows and connections. Now a run holds a lease (one row); a kick that arrives while
-- a run holds it only marks "rerun", which the run honours before it lets go, so the new
-- rows are delivered by that run (or, when its budget is spent, by the next kick or cron
-- tick). The lease lives in a table, not in a session advisory lock, so it holds across
-- several app instances, through transaction poolers, and a run that dies (host killed,
-- instance trapped) loses it when it expires; per-row claims keep their own lock timeout.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS integration.dispatch_lease (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    holder      text,
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    rerun       boolean NOT NULL DEFAULT false,
    kicked_at   timestamptz,
    started_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE integration.dispatch_lease IS
    'One row: which dispatcher run holds the lease and whether a kick arrived during it. '
    'Changed only by start_dispatch_run, request_dispatch, claim_dispatch_batch, '
    'end_dispatch_run. Never grows: no retention needed.';
INSERT INTO integration.dispatch_lease (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- start_dispatch_run: take the lease for p_worker for p_lease.
-- Guarantees:
--  * true: no live lease existed (none, released, or expired: its run died); p_worker now
--    holds it until now() + p_lease, rerun cleared (this run claims everything due).
--  * false: another run holds a live lease; rerun is set so that run claims again before
--    it lets go. Never waits longer than a concurrent lease change.
CREATE OR REPLACE FUNCTION integration.start_dispatch_run(p_worker text, p_lease interval)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    UPDATE integration.dispatch_lease AS l
       SET holder = p_worker, lease_until = now() + p_lease, rerun = false,
           kicked_at = NULL, started_at = now(), updated_at = now()
     WHERE l.singleton AND (l.holder IS NULL OR l.lease_until <= now());
    IF FOUND THEN
        RETURN true;
    END IF;
    UPDATE integration.dispatch_lease AS l
       SET rerun = true, updated_at = now()
     WHERE l.singleton AND NOT l.rerun;
    RETURN false;
END;
$$;

-- request_dispatch: a kick (ingest, after its event is committed). One cheap round trip.
-- Guarantees:
--  * false: a run holds a live lease; it is marked to claim again before it lets go, and
--    that claim sees every row committed before this call. No run needs starting.
--  * false: no run holds the lease, but another caller was told to start one less than
--    p_kick_window ago and that run has not started yet: it will start after this call, so
--    its claims see this caller's row. (A kick lost on the way is covered by the next
--    kick after the window, and by cron.)
--  * true: no run is going or starting: the caller should start one (POST /dispatch).
--    So a burst of posts into an idle bus starts one run, not one per post.
--  * Writes only when the mark changes, so a burst of kicks during one run costs reads.
CREATE OR REPLACE FUNCTION integration.request_dispatch(
    p_kick_window interval DEFAULT interval '5 seconds'
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    UPDATE integration.dispatch_lease AS l
       SET rerun = true, updated_at = now()
     WHERE l.singleton AND l.holder IS NOT NULL AND l.lease_until > now() AND NOT l.rerun;
    IF FOUND THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM integration.dispatch_lease AS l
                WHERE l.singleton AND l.holder IS NOT NULL AND l.lease_until > now()) THEN
        RETURN false;
    END IF;
    UPDATE integration.dispatch_lease AS l
       SET kicked_at = now(), updated_at = now()
     WHERE l.singleton
       AND (l.holder IS NULL OR l.lease_until <= now())
       AND (l.kicked_at IS NULL OR l.kicked_at <= now() - p_kick_window);
    RETURN FOUND;
END;
$$;

-- claim_dispatch_batch: the next batch of the run that holds the lease.
-- Guarantees:
--  * p_worker does not hold the lease (it expired and another run took it, or it was
--    released): returns no rows and changes nothing; the run stops.
--  * Otherwise renews the lease (now() + p_lease) and returns claim_outbox(p_limit,
--    p_worker, p_lock_timeout)'s rows (all its guarantees: SKIP LOCKED, per-aggregate
--    FIFO, lock timeout, attempts).
--  * When nothing is claimable: if a kick marked rerun, clears the mark and claims once
--    more (a new snapshot: it sees every row committed before the kick); if still nothing
--    (or no mark), releases the lease and returns no rows. The lease row stays locked
--    from the renewal to the end, so a concurrent kick either marked rerun before (seen
--    here) or waits and then finds the lease released (and starts a new run). No kick is
--    ever left for cron.
CREATE OR REPLACE FUNCTION integration.claim_dispatch_batch(
    p_worker       text,
    p_limit        integer,
    p_lease        interval,
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
    v_rerun boolean;
BEGIN
    UPDATE integration.dispatch_lease AS l
       SET lease_until = now() + p_lease, updated_at = now()
     WHERE l.singleton AND l.holder = p_worker AND l.lease_until > now();
    IF NOT FOUND THEN
        RETURN;
    END IF;

    FOR pass IN 1..2 LOOP
        RETURN QUERY SELECT * FROM integration.claim_outbox(p_limit, p_worker, p_lock_timeout);
        IF FOUND THEN
            RETURN;
        END IF;
        SELECT l.rerun INTO v_rerun FROM integration.dispatch_lease AS l WHERE l.singleton;
        EXIT WHEN NOT v_rerun;
        UPDATE integration.dispatch_lease AS l
           SET rerun = false, updated_at = now()
         WHERE l.singleton;
    END LOOP;

    UPDATE integration.dispatch_lease AS l
       SET holder = NULL, lease_until = '-infinity', rerun = false, updated_at = now()
     WHERE l.singleton AND l.holder = p_worker;
END;
$$;

-- end_dispatch_run: p_worker lets go of the lease early (its budget is spent, or it
-- failed). Returns true iff p_worker held it. A rerun mark is cleared with it: the rows
-- stay due, and the next kick or cron tick starts a run that claims them.
CREATE OR REPLACE FUNCTION integration.end_dispatch_run(p_worker text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    UPDATE integration.dispatch_lease AS l
       SET holder = NULL, lease_until = '-infinity', rerun = false, updated_at = now()
     WHERE l.singleton AND l.holder = p_worker;
    RETURN FOUND;
END;
$$;

REVOKE ALL ON FUNCTION integration.start_dispatch_run(text, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.request_dispatch(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.claim_dispatch_batch(text, integer, interval, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.end_dispatch_run(text) FROM PUBLIC;
REVOKE ALL ON integration.dispatch_lease FROM PUBLIC;
GRANT ALL ON integration.dispatch_lease TO service_role;
GRANT EXECUTE ON FUNCTION integration.start_dispatch_run(text, interval) TO service_role;
GRANT EXECUTE ON FUNCTION integration.request_dispatch(interval) TO service_role;
GRANT EXECUTE ON FUNCTION integration.claim_dispatch_batch(text, integer, interval, interval) TO service_role;
GRANT EXECUTE ON FUNCTION integration.end_dispatch_run(text) TO service_role;
GRANT SELECT ON integration.dispatch_lease TO integration_reader;

ALTER TABLE integration.dispatch_lease ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON integration.dispatch_lease;
CREATE POLICY service_role_all ON integration.dispatch_lease
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS integration_reader_select ON integration.dispatch_lease;
CREATE POLICY integration_reader_select ON integration.dispatch_lease
    FOR SELECT TO integration_reader USING (true);
