-- IPAI integration bus: reconciliation, the bus's side (SPEC §11, issue #37).
--
-- Why. Every part of the bus is durable, but nothing proved that what Odoo believes it
-- sent is what the bus holds: a proxy answering 2xx without forwarding, a database restored
-- from an older backup, a row cancelled in Odoo after the bus refused it. The addon sends,
-- like any event, a digest per window of its queue (`bus.digest`): the idempotency keys of
-- the rows it marked sent. The bus checks each key against every key it ever accepted
-- (`idempotency_keys`, never purged) and keeps, per window, what was expected and what is
-- missing. A missing key counts until an event with that key is stored.
--
-- The contract, in two functions (the Rust side calls them and re-implements neither):
--   record_digest(event, source, payload)   checks the digest (count and keys_sha256 agree
--                                           with the keys, at most 10,000, a valid window)
--                                           and records the window's expected and missing
--                                           keys; a window digested again is replaced
--   reconcile_status(window_start)          read-only: every window with a key still
--                                           missing and those received in the last 7 days
--                                           (or the windows starting at window_start), the
--                                           missing keys counted now, not when recorded
-- Idempotent: safe to apply again.

CREATE TABLE IF NOT EXISTS integration.reconcile_windows (
    source       text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    expected     integer     NOT NULL,
    keys_sha256  text        NOT NULL,
    missing      text[]      NOT NULL,
    digest_event uuid        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, window_start)
);
COMMENT ON TABLE integration.reconcile_windows IS
    'One row per digested window of a source''s queue (SPEC §11): the keys Odoo marked sent '
    '(their count and SHA-256) and those the bus had not stored when the digest arrived. '
    'Written only by record_digest; a window digested again replaces its row.';
CREATE INDEX IF NOT EXISTS reconcile_windows_open_idx
    ON integration.reconcile_windows (received_at) WHERE cardinality(missing) > 0;

-- record_digest: the digest of one window, checked and recorded. p_source is the Odoo
-- database (the aggregate_id's part before ':'). Refuses (SQLSTATE 22023, the message names
-- the field) a digest whose window, count, keys or keys_sha256 do not agree: the sender has
-- a bug, and a digest that cannot be trusted must not close a window. Returns
-- {"source", "window_start", "expected", "found", "missing": [keys]}.
CREATE OR REPLACE FUNCTION integration.record_digest(p_event_id uuid, p_source text,
                                                     p_payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_start   timestamptz;
    v_end     timestamptz;
    v_keys    text[];
    v_sha     text;
    v_missing text[];
BEGIN
    IF p_source IS NULL OR p_source = '' THEN
        RAISE EXCEPTION 'digest: aggregate_id must be "<database>:<window_start>"'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- RFC 3339 only: PostgreSQL alone would also take 'yesterday' or 'now'.
    IF coalesce(p_payload->>'window_start', '') !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$'
       OR coalesce(p_payload->>'window_end', '') !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$' THEN
        RAISE EXCEPTION 'digest: window_start and window_end must be RFC 3339 times'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        v_start := (p_payload->>'window_start')::timestamptz;
        v_end := (p_payload->>'window_end')::timestamptz;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'digest: window_start and window_end must be RFC 3339 times'
            USING ERRCODE = 'invalid_parameter_value';
    END;
    IF v_start IS NULL OR v_end IS NULL OR v_end <= v_start THEN
        RAISE EXCEPTION 'digest: window_end must be after window_start'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_payload->'keys') IS DISTINCT FROM 'array'
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_payload->'keys') AS k
                   WHERE jsonb_typeof(k) <> 'string') THEN
        RAISE EXCEPTION 'digest: keys must be an array of strings'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_keys := ARRAY(SELECT jsonb_array_elements_text(p_payload->'keys'));
    IF cardinality(v_keys) > 10000 THEN
        RAISE EXCEPTION 'digest: % keys, at most 10000 per window (split the window)',
            cardinality(v_keys) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(p_payload->'count') IS DISTINCT FROM 'number'
       OR (p_payload->>'count')::numeric <> cardinality(v_keys) THEN
        RAISE EXCEPTION 'digest: count % does not match the % keys',
            coalesce(p_payload->>'count', 'missing'), cardinality(v_keys)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Hex SHA-256 of the keys sorted by their bytes, joined by "\n".
    v_sha := encode(sha256(convert_to(coalesce(
                 (SELECT string_agg(k, E'\n' ORDER BY k COLLATE "C") FROM unnest(v_keys) AS k),
                 ''), 'UTF8')), 'hex');
    IF lower(coalesce(p_payload->>'keys_sha256', '')) <> v_sha THEN
        RAISE EXCEPTION 'digest: keys_sha256 does not match the keys'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_missing := ARRAY(SELECT k FROM unnest(v_keys) AS k
                        WHERE NOT EXISTS (SELECT 1 FROM integration.idempotency_keys AS i
                                           WHERE i.idempotency_key = k)
                        ORDER BY k COLLATE "C");
    INSERT INTO integration.reconcile_windows AS w
        (source, window_start, window_end, expected, keys_sha256, missing, digest_event)
    VALUES (p_source, v_start, v_end, cardinality(v_keys), v_sha, v_missing, p_event_id)
    ON CONFLICT (source, window_start) DO UPDATE
        SET window_end = EXCLUDED.window_end, expected = EXCLUDED.expected,
            keys_sha256 = EXCLUDED.keys_sha256, missing = EXCLUDED.missing,
            digest_event = EXCLUDED.digest_event, received_at = now();
    RETURN jsonb_build_object('source', p_source, 'window_start', v_start,
        'expected', cardinality(v_keys), 'found', cardinality(v_keys) - cardinality(v_missing),
        'missing', to_jsonb(v_missing));
END;
$$;

-- reconcile_status: what `ipai reconcile --json`, MCP's reconcile_status and /ops show:
-- {"missing_total": N, "last_digest_at": T or null, "windows": [{"source", "window_start",
-- "window_end", "expected", "found", "missing": [keys], "received_at"}]}, newest window
-- first. A key recorded missing no longer counts once an event with it is stored.
CREATE OR REPLACE FUNCTION integration.reconcile_status(p_window_start timestamptz)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
    WITH w AS (
        SELECT r.source, r.window_start, r.window_end, r.expected, r.received_at,
               ARRAY(SELECT k FROM unnest(r.missing) AS k
                      WHERE NOT EXISTS (SELECT 1 FROM integration.idempotency_keys AS i
                                         WHERE i.idempotency_key = k)
                      ORDER BY k COLLATE "C") AS missing
          FROM integration.reconcile_windows AS r
         WHERE CASE WHEN p_window_start IS NULL
                    THEN r.received_at > now() - interval '7 days' OR cardinality(r.missing) > 0
                    ELSE r.window_start = p_window_start END
    )
    SELECT jsonb_build_object(
        'missing_total', coalesce(sum(cardinality(w.missing)), 0),
        'last_digest_at', (SELECT max(received_at) FROM integration.reconcile_windows),
        'windows', coalesce(jsonb_agg(jsonb_build_object(
            'source', w.source, 'window_start', w.window_start, 'window_end', w.window_end,
            'expected', w.expected, 'found', w.expected - cardinality(w.missing),
            'missing', to_jsonb(w.missing), 'received_at', w.received_at)
            ORDER BY w.window_start DESC, w.source), '[]'::jsonb))
      FROM w;
$$;

REVOKE ALL ON TABLE integration.reconcile_windows FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.record_digest(uuid, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.reconcile_status(timestamptz) FROM PUBLIC;

-- integration_app: the digest's handler records, /ops reads. SECURITY DEFINER (like the
-- probe's functions): they read idempotency_keys, which the app's role does not, and the
-- app never touches the table itself.
GRANT EXECUTE ON FUNCTION integration.record_digest(uuid, text, jsonb),
                          integration.reconcile_status(timestamptz) TO integration_app;
-- integration_reader: MCP's reconcile_status.
GRANT EXECUTE ON FUNCTION integration.reconcile_status(timestamptz) TO integration_reader;
GRANT SELECT ON integration.reconcile_windows TO integration_reader;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON integration.reconcile_windows TO service_role;
    END IF;
END;
$$;

-- Row-level security like every table of the schema: the groups see every row.
ALTER TABLE integration.reconcile_windows ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('integration_app'), ('integration_reader'), ('service_role')) AS t(role)
              WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = t.role) LOOP
        EXECUTE format('DROP POLICY IF EXISTS %I ON integration.reconcile_windows', r.role || '_all');
        EXECUTE format('CREATE POLICY %I ON integration.reconcile_windows TO %I USING (true) WITH CHECK (true)',
                       r.role || '_all', r.role);
    END LOOP;
END;
$$;
