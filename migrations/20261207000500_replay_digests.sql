-- IPAI integration bus: replay digests that outlive the timestamp tolerance, and are kept
-- for a store that failed (issue #34 item 7).
--
-- Why. ingest_event (20261130000300) remembered each accepted IPAI signature for 10
-- minutes, exactly twice the ±300 s timestamp tolerance: a clock step between the
-- component (which checks the timestamp) and PostgreSQL (which expires the digest) of a
-- few minutes was enough to open the window again. And a request whose signature was valid
-- but whose store failed (the transaction rolled back: a database error, a lock timeout;
-- or refused after the check: 400/422 for its body, 409 for a conflicting key) kept no
-- digest, so the captured request could be sent again later under another key and stored.
--
-- Now:
--  * Digests live 24 hours (288 times the tolerance). The table grows with a day of
--    traffic (one ~150-byte row per signed request) and no more: expired rows are deleted
--    by purge_expired_signatures (POST /ops/retention, every cron tick) and two per ingest.
--  * A signature is spent once its check passed, whatever became of the request:
--    ingest_signatures.stored says whether its event was stored (or found: a duplicate).
--    The ingest component records a request that was not stored with
--    spend_signature() after the failure, in a transaction of its own (the failed one
--    rolled back). A spent signature opens nothing again, under any key, the same key
--    included: the sender must sign again. A legitimate sender does (the Odoo addon and
--    `ipai send` sign each attempt with a fresh timestamp), so its retry after a 5xx or a
--    fixed 4xx succeeds. When the database itself is unreachable nothing can be recorded;
--    the ±300 s tolerance still bounds such a request's replays.
--  * A conflict (same key, another body) keeps its digest, spent, instead of deleting it.
-- Idempotent: safe to apply again.

ALTER TABLE integration.ingest_signatures
    ADD COLUMN IF NOT EXISTS stored boolean NOT NULL DEFAULT true;
COMMENT ON TABLE integration.ingest_signatures IS
    'SHA-256 of each x-ipai-signature whose check passed, and the idempotency key it came '
    'with, for 24 hours (until expires_at). stored: its request stored (or found) its '
    'event; false: it failed after the check (spent: refused if sent again). Written by '
    'ingest_event and spend_signature; purged by purge_expired_signatures.';

-- ingest_event (with replay protection): store one accepted event.
-- Guarantees: those of 20261130000300's version, with these changes:
--  * p_signature_sha256 not NULL: the signature is remembered for 24 hours with
--    p_idempotency_key. Seen before with another key, or spent (stored = false) with any
--    key -> (NULL, false, false, true): replayed, nothing stored. Seen with the same key
--    and stored (a sender's resend of the very request) -> the key rules apply.
--  * A conflict (same key, other body) keeps the new signature, spent.
CREATE OR REPLACE FUNCTION integration.ingest_event(
    p_event_type       text,
    p_aggregate_type   text,
    p_aggregate_id     text,
    p_payload          jsonb,
    p_idempotency_key  text,
    p_body_sha256      text,
    p_occurred_at      timestamptz,
    p_source           text,
    p_signature_sha256 text
)
RETURNS TABLE (id uuid, duplicate boolean, conflict boolean, replayed boolean)
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
SET lock_timeout = '5s'
AS $$
#variable_conflict use_column
DECLARE
    v_id            uuid;
    v_seq           bigint;
    v_sha           text;
    v_key           text;
    v_new_signature boolean := false;
    v_stored        boolean;
    v_source        text := coalesce(p_source, 'odoo');
BEGIN
    PERFORM pg_advisory_xact_lock(
        1769236481, hashtext(p_aggregate_type || '/' || p_aggregate_id));

    IF p_signature_sha256 IS NOT NULL THEN
        DELETE FROM integration.ingest_signatures AS s
         WHERE s.signature_sha256 IN (
               SELECT x.signature_sha256 FROM integration.ingest_signatures AS x
                WHERE x.expires_at < now()
                ORDER BY x.expires_at LIMIT 2
                  FOR UPDATE SKIP LOCKED);
        FOR attempt IN 1..3 LOOP
            INSERT INTO integration.ingest_signatures AS s
                (signature_sha256, idempotency_key, expires_at)
            VALUES (p_signature_sha256, p_idempotency_key, now() + interval '24 hours')
            ON CONFLICT (signature_sha256) DO NOTHING
            RETURNING true INTO v_new_signature;
            v_new_signature := coalesce(v_new_signature, false);
            EXIT WHEN v_new_signature;
            SELECT s.idempotency_key, s.stored INTO v_key, v_stored
              FROM integration.ingest_signatures AS s
             WHERE s.signature_sha256 = p_signature_sha256;
            IF FOUND THEN
                IF v_key IS DISTINCT FROM p_idempotency_key OR NOT v_stored THEN
                    RETURN QUERY SELECT NULL::uuid, false, false, true;
                    RETURN;
                END IF;
                EXIT;
            END IF;
            -- The conflicting row was purged in between: insert again.
        END LOOP;
    END IF;

    FOR attempt IN 1..3 LOOP
        INSERT INTO integration.idempotency_keys AS k (idempotency_key, event_id, body_sha256)
        VALUES (p_idempotency_key, gen_random_uuid(), p_body_sha256)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING k.event_id INTO v_id;

        IF v_id IS NOT NULL THEN
            INSERT INTO integration.outbox AS o
                (id, event_type, aggregate_type, aggregate_id, payload,
                 idempotency_key, body_sha256, source, occurred_at)
            VALUES
                (v_id, p_event_type, p_aggregate_type, p_aggregate_id, p_payload,
                 p_idempotency_key, p_body_sha256, v_source, p_occurred_at)
            RETURNING o.seq INTO v_seq;
            INSERT INTO integration.event_log
                (id, seq, event_type, aggregate_type, aggregate_id, payload,
                 idempotency_key, body_sha256, source, occurred_at)
            VALUES
                (v_id, v_seq, p_event_type, p_aggregate_type, p_aggregate_id, p_payload,
                 p_idempotency_key, p_body_sha256, v_source, p_occurred_at);
            RETURN QUERY SELECT v_id, false, false, false;
            RETURN;
        END IF;

        -- A new statement has a new snapshot: it sees the committed conflicting key.
        SELECT k.event_id, k.body_sha256 INTO v_id, v_sha
          FROM integration.idempotency_keys AS k
         WHERE k.idempotency_key = p_idempotency_key;

        IF v_id IS NOT NULL THEN
            IF v_new_signature AND v_sha IS DISTINCT FROM p_body_sha256 THEN
                UPDATE integration.ingest_signatures AS s SET stored = false
                 WHERE s.signature_sha256 = p_signature_sha256;
            END IF;
            RETURN QUERY SELECT v_id, true, (v_sha IS DISTINCT FROM p_body_sha256), false;
            RETURN;
        END IF;
    END LOOP;

    RAISE EXCEPTION 'ingest_event: idempotency key % neither insertable nor visible',
        p_idempotency_key USING ERRCODE = 'serialization_failure';
END;
$$;


-- spend_signature: remember a signature whose check passed but whose request stored
-- nothing (its transaction failed, or it was refused after the check). Guarantees:
--  * Afterwards the signature is known for 24 hours: ingest_event answers replayed for it
--    under any key (stored = false).
--  * A signature already known keeps its row (a stored one stays stored: its event exists
--    and a resend is a duplicate). Returns true when this call recorded it.
--  * NULL or empty arguments record nothing (false). Waits at most 5 s for a lock.
CREATE OR REPLACE FUNCTION integration.spend_signature(
    p_signature_sha256 text,
    p_idempotency_key  text
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
SET lock_timeout = '5s'
AS $$
DECLARE
    v_spent boolean;
BEGIN
    IF coalesce(p_signature_sha256, '') = '' OR p_idempotency_key IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO integration.ingest_signatures AS s
        (signature_sha256, idempotency_key, expires_at, stored)
    VALUES (p_signature_sha256, p_idempotency_key, now() + interval '24 hours', false)
    ON CONFLICT (signature_sha256) DO NOTHING
    RETURNING true INTO v_spent;
    RETURN coalesce(v_spent, false);
END;
$$;

REVOKE ALL ON FUNCTION integration.spend_signature(text, text) FROM PUBLIC;
DO $$
BEGIN
    -- The ingest component's group (20261207000100_least_privilege) holds the table's
    -- rows; Supabase's service_role where it exists.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'integration_ingest') THEN
        GRANT EXECUTE ON FUNCTION integration.spend_signature(text, text) TO integration_ingest;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION integration.spend_signature(text, text) TO service_role;
    END IF;
END;
$$;
