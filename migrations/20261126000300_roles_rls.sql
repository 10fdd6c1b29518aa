-- IPAI integration bus: roles, privileges and row-level security (SPEC §5, seed's RLS).
--   service_role       full access to integration tables and functions (Supabase role)
--   authenticated      SELECT on event_log only (Supabase role)
--   anon               nothing (Supabase role)
--   integration_reader read-only login for the MCP component: SELECT on every table
--                      except oauth_tokens (a secret), EXECUTE on outbox_stats() only,
--                      and every transaction read-only.
-- Roles are created only when missing (on Supabase the first three already exist).
-- integration_reader gets no password here; set one with
--   ALTER ROLE integration_reader PASSWORD '...';
-- Idempotent: safe to apply again.

-- Roles are cluster-wide: another database on the same server may be migrating at the
-- same moment, so a concurrent creation or setting counts as done.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('anon', 'NOLOGIN NOINHERIT'),
        ('authenticated', 'NOLOGIN NOINHERIT'),
        ('service_role', 'NOLOGIN NOINHERIT'),
        ('integration_reader', 'LOGIN NOINHERIT')) AS t(name, options)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s', r.name, r.options);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    IF NOT EXISTS (
        SELECT 1 FROM pg_db_role_setting s JOIN pg_roles ro ON ro.oid = s.setrole
        WHERE ro.rolname = 'integration_reader' AND s.setdatabase = 0
          AND 'default_transaction_read_only=on' = ANY (s.setconfig))
    THEN
        BEGIN
            ALTER ROLE integration_reader SET default_transaction_read_only = on;
        EXCEPTION WHEN OTHERS THEN
            -- "tuple concurrently updated": a parallel migration set it.
            NULL;
        END;
    END IF;
END;
$$;

-- Schema
REVOKE ALL ON SCHEMA integration FROM PUBLIC, anon;
GRANT USAGE ON SCHEMA integration TO service_role, authenticated, integration_reader;

-- Start from nothing for the API roles, then grant.
REVOKE ALL ON ALL TABLES    IN SCHEMA integration FROM PUBLIC, anon, authenticated, integration_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA integration FROM PUBLIC, anon, authenticated, integration_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA integration FROM PUBLIC, anon, authenticated, integration_reader;

-- service_role: everything, except that the audit log cannot be truncated
-- (UPDATE/DELETE on it are rejected by its trigger).
GRANT ALL ON ALL TABLES    IN SCHEMA integration TO service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA integration TO service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration TO service_role;
REVOKE TRUNCATE ON integration.event_log FROM service_role;

-- authenticated: the audit log only.
GRANT SELECT ON integration.event_log TO authenticated;

-- integration_reader: read everything but the cached OAuth token.
GRANT SELECT ON ALL TABLES IN SCHEMA integration TO integration_reader;
REVOKE SELECT ON integration.oauth_tokens FROM integration_reader;
GRANT EXECUTE ON FUNCTION integration.outbox_stats() TO integration_reader;

-- Objects created later in this schema by the migrating role: service_role gets them,
-- PUBLIC gets no EXECUTE. (Later migrations still add their own RLS policies.)
ALTER DEFAULT PRIVILEGES IN SCHEMA integration GRANT ALL ON TABLES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA integration GRANT ALL ON SEQUENCES TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA integration GRANT EXECUTE ON FUNCTIONS TO service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA integration REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- Row-level security on every table. The table owner (the migrating role, e.g.
-- postgres) bypasses RLS; so does Supabase's service_role (BYPASSRLS), the policy
-- below covers a plain-PostgreSQL service_role.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['outbox', 'event_log', 'id_map', 'deliveries',
                             'payment_queue', 'asset_availability', 'ppm_tasks',
                             'bir_compliance', 'oauth_tokens']
    LOOP
        EXECUTE format('ALTER TABLE integration.%I ENABLE ROW LEVEL SECURITY', t);

        EXECUTE format('DROP POLICY IF EXISTS service_role_all ON integration.%I', t);
        EXECUTE format('CREATE POLICY service_role_all ON integration.%I '
                       'FOR ALL TO service_role USING (true) WITH CHECK (true)', t);

        EXECUTE format('DROP POLICY IF EXISTS integration_reader_select ON integration.%I', t);
        IF t <> 'oauth_tokens' THEN
            EXECUTE format('CREATE POLICY integration_reader_select ON integration.%I '
                           'FOR SELECT TO integration_reader USING (true)', t);
        END IF;
    END LOOP;
END;
$$;

-- The seed's policy, by its name.
DROP POLICY IF EXISTS authenticated_read_event_log ON integration.event_log;
CREATE POLICY authenticated_read_event_log ON integration.event_log
    FOR SELECT TO authenticated USING (true);
