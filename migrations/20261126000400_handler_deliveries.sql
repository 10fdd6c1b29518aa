-- IPAI integration bus: the handlers' side-effect ledger (SPEC §5 deliveries, §7 handlers).
-- Every side effect (a Mattermost post, an email, a calendar event, an Odoo write-back) is
-- claimed in integration.deliveries before it is performed and marked after, so a
-- redelivered event never performs it twice. The one window left: a crash after the
-- external call succeeded and before it was marked 'sent' leaves a 'pending' row; once its
-- lease has expired the effect is performed again (at-least-once). Email (Idempotency-Key)
-- and Google Calendar (client-chosen event id) close even that window on their side.
-- Idempotent: safe to apply again. Runs on PostgreSQL 15+ and Supabase.

-- 'pending' = claimed, being performed now (or the performer died: see the lease).
ALTER TABLE integration.deliveries DROP CONSTRAINT IF EXISTS deliveries_status_check;
ALTER TABLE integration.deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'skipped'));

ALTER TABLE integration.deliveries ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;

CREATE INDEX IF NOT EXISTS deliveries_event_idx ON integration.deliveries (event_id);
CREATE INDEX IF NOT EXISTS deliveries_pending_idx
    ON integration.deliveries (updated_at) WHERE status IN ('pending', 'failed');

-- claim_delivery: may the caller perform side effect (event, channel, target) now?
-- Returns exactly one row (decision, detail):
--  * 'send' - the caller owns it: no row existed (one is inserted 'pending'), or the row
--    had 'failed', or it was 'pending' for longer than p_lease_s seconds (its performer
--    died between claiming and marking). The row is now 'pending', attempts + 1.
--  * 'done' - it was already performed ('sent') or deliberately not ('skipped'); detail
--    is what the performer recorded.
--  * 'busy' - another performer claimed it less than p_lease_s seconds ago.
-- Concurrency-safe: the unique key serialises racing claims; exactly one gets 'send'.
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
        WHERE d.status = 'failed'
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

-- finish_delivery: records the outcome of a claimed side effect ('sent', 'failed' or
-- 'skipped') with the external response code and a short detail. Returns whether a
-- row was updated (false: nothing was claimed under that key).
CREATE OR REPLACE FUNCTION integration.finish_delivery(
    p_event_id      uuid,
    p_channel       text,
    p_target        text,
    p_status        text,
    p_response_code integer,
    p_detail        text
)
RETURNS boolean
LANGUAGE sql
VOLATILE
SET search_path = integration, pg_temp
AS $$
    WITH u AS (
        UPDATE integration.deliveries d
        SET status = p_status, response_code = p_response_code,
            detail = left(p_detail, 2000), updated_at = now()
        WHERE d.event_id = p_event_id AND d.channel = p_channel AND d.target = p_target
        RETURNING 1
    )
    SELECT count(*) > 0 FROM u;
$$;

-- Cached OAuth tokens: one round trip, always one row ('' when none is valid for at
-- least p_margin_s more seconds).
CREATE OR REPLACE FUNCTION integration.cached_oauth_token(p_name text, p_margin_s integer)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = integration, pg_temp
AS $$
    SELECT coalesce(
        (SELECT t.access_token FROM integration.oauth_tokens t
         WHERE t.name = p_name
           AND t.expires_at > now() + make_interval(secs => greatest(p_margin_s, 0))),
        '');
$$;

REVOKE ALL ON FUNCTION integration.claim_delivery(uuid, text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.finish_delivery(uuid, text, text, text, integer, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.cached_oauth_token(text, integer) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION integration.claim_delivery(uuid, text, text, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.finish_delivery(uuid, text, text, text, integer, text) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.cached_oauth_token(text, integer) TO service_role;
    END IF;
END;
$$;
