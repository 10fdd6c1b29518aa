-- IPAI integration bus: a throttle on the /ops dashboard's Basic auth (issue #34 item 7).
--
-- Why. `/ops` asks for user `ops` and `ops_password` on every request, and nothing
-- counted wrong guesses: a client could try passwords as fast as the runtime answers.
-- The ops component is stateless per request (a fresh Wasm instance each time), so the
-- count lives here: one row per client address that failed recently, and one row '*'
-- for all clients together.
--
-- The rule (integration.ops_auth_attempt):
--  * A client address with 10 failed logins in its current minute is refused (429 with
--    Retry-After) until that minute is over, for every request, the right password
--    included: a guess that happens to be right must not tell the guesser so.
--  * Backstop: 100 failed logins in a minute from all addresses together refuse every
--    client until that minute is over (a guesser spreading over many addresses, IPv6's
--    especially). The price: such an attack also keeps the operator out of the dashboard,
--    for at most a minute after it stops; delivery, /health, /metrics and the CLI are not
--    touched.
--  * A successful login resets nothing, neither its own address's count nor anyone
--    else's: windows simply run out. (A reset on success would let whoever knows the
--    password, or shares a NAT address with the operator, clear a guesser's count.)
--  * Fixed windows: a key's minute starts at its first failure after the previous minute
--    ran out.
-- Idempotent: safe to apply again.

CREATE TABLE IF NOT EXISTS integration.ops_auth_failures (
    client       text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures     integer     NOT NULL
);
COMMENT ON TABLE integration.ops_auth_failures IS
    'Failed /ops Basic-auth logins per client address (''*'': all addresses) in the '
    'window that started at window_start (60 s). Written only by ops_auth_attempt, which '
    'also deletes rows whose window is long over; a few rows at any time.';
ALTER TABLE integration.ops_auth_failures ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON integration.ops_auth_failures FROM PUBLIC;
-- Written only through ops_auth_attempt (SECURITY DEFINER); the read-only role reads it
-- like every table but the token cache (addresses and counts, no secret).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'integration_reader') THEN
        GRANT SELECT ON integration.ops_auth_failures TO integration_reader;
        DROP POLICY IF EXISTS integration_reader_select ON integration.ops_auth_failures;
        CREATE POLICY integration_reader_select ON integration.ops_auth_failures
            FOR SELECT TO integration_reader USING (true);
    END IF;
END;
$$;

-- ops_auth_attempt: one /ops request's login, counted. Called once per /ops request after
-- the password was compared (p_failed: it did not match), before anything is served.
-- Returns 0 when the request may go on (served if its password matched, else 401), or the
-- seconds until the window that throttles it is over (the 429's Retry-After, >= 1).
-- Guarantees:
--  * A client address (p_client; NULL or empty counts as 'unknown', cut to 100
--    characters) that has failed 10 times in its current 60 s window gets > 0 for every
--    request until the window ends, whatever p_failed says; so does every client once
--    100 failures from all addresses fall into the current window of '*'.
--  * A throttled request is not counted (the window is not extended by a guesser who
--    keeps trying); a request that goes on with p_failed counts one failure for its
--    address and one for '*'. A success changes no count.
--  * Concurrency-safe (one upsert per key); under concurrent failures an address may
--    reach its limit plus the number of requests in flight, never more.
--  * Bounded housekeeping: deletes at most 2 rows whose window ended over a minute ago.
--  * SECURITY DEFINER: the caller needs EXECUTE only, never the table.
CREATE OR REPLACE FUNCTION integration.ops_auth_attempt(p_client text, p_failed boolean)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
DECLARE
    c_window       CONSTANT interval := interval '60 seconds';
    c_client_limit CONSTANT integer := 10;
    c_global_limit CONSTANT integer := 100;
    v_client text := left(coalesce(nullif(btrim(p_client), ''), 'unknown'), 100);
    v_until  timestamptz;
BEGIN
    IF v_client = '*' THEN
        v_client := 'unknown';
    END IF;

    DELETE FROM integration.ops_auth_failures AS f
     WHERE f.client IN (
           SELECT x.client FROM integration.ops_auth_failures AS x
            WHERE x.window_start + 2 * c_window < now() AND x.client <> '*'
            LIMIT 2
              FOR UPDATE SKIP LOCKED);

    SELECT max(f.window_start + c_window) INTO v_until
      FROM integration.ops_auth_failures AS f
     WHERE f.window_start + c_window > now()
       AND ((f.client = v_client AND f.failures >= c_client_limit)
         OR (f.client = '*' AND f.failures >= c_global_limit));
    IF v_until IS NOT NULL THEN
        RETURN greatest(1, ceil(extract(epoch FROM v_until - now())))::integer;
    END IF;

    IF p_failed THEN
        INSERT INTO integration.ops_auth_failures AS f (client, window_start, failures)
        VALUES (v_client, now(), 1), ('*', now(), 1)
        ON CONFLICT (client) DO UPDATE
           SET window_start = CASE WHEN f.window_start + c_window <= now()
                                   THEN now() ELSE f.window_start END,
               failures     = CASE WHEN f.window_start + c_window <= now()
                                   THEN 1 ELSE f.failures + 1 END;
    END IF;
    RETURN 0;
END;
$$;

REVOKE ALL ON FUNCTION integration.ops_auth_attempt(text, boolean) FROM PUBLIC;
DO $$
BEGIN
    -- The ops component's group (20261207000100_least_privilege); Supabase's service_role
    -- where it exists, as for every function of the schema.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'integration_app') THEN
        GRANT EXECUTE ON FUNCTION integration.ops_auth_attempt(text, boolean) TO integration_app;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION integration.ops_auth_attempt(text, boolean) TO service_role;
    END IF;
END;
$$;
