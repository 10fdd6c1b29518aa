-- IPAI integration bus: one approval request per expense report submission (SPEC §7).
-- Odoo emits expense.submitted for every line of a report, but the approver decides on the
-- report: its lines' events share one request key (the report and the moment it was
-- submitted), and only the first of them to claim the key posts the approval message.
-- A report that is refused, reset and submitted again has a new key, so it gets a new
-- message. The owning event posts through the deliveries ledger as any side effect
-- (retried until sent, dead-lettered and replayable like any event).
-- Idempotent: safe to apply again. Runs on PostgreSQL 15+ and Supabase.

CREATE TABLE IF NOT EXISTS integration.approval_requests (
    request_key text PRIMARY KEY,
    event_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- claim_approval_request: which event posts the approval request for p_request_key?
-- Returns that event's id as text: p_event_id when it is the first to claim the key (or
-- claimed it before: a redelivery), otherwise the earlier claimant's.
-- Concurrency-safe: racing claims serialise on the primary key; all see one owner.
CREATE OR REPLACE FUNCTION integration.claim_approval_request(
    p_request_key text,
    p_event_id    uuid
)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_owner uuid;
BEGIN
    INSERT INTO integration.approval_requests (request_key, event_id)
    VALUES (p_request_key, p_event_id)
    ON CONFLICT (request_key) DO NOTHING;

    -- A new statement: under READ COMMITTED it sees a racing claimant's committed row.
    SELECT r.event_id INTO v_owner
    FROM integration.approval_requests r
    WHERE r.request_key = p_request_key;

    RETURN v_owner::text;
END;
$$;

REVOKE ALL ON FUNCTION integration.claim_approval_request(text, uuid) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON integration.approval_requests TO service_role;
        GRANT EXECUTE ON FUNCTION integration.claim_approval_request(text, uuid) TO service_role;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'integration_reader') THEN
        GRANT SELECT ON integration.approval_requests TO integration_reader;
    END IF;
END;
$$;
REVOKE ALL ON integration.approval_requests FROM PUBLIC;

-- Row-level security as on every other table (see the roles migration).
ALTER TABLE integration.approval_requests ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON integration.approval_requests;
CREATE POLICY service_role_all ON integration.approval_requests
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS integration_reader_select ON integration.approval_requests;
CREATE POLICY integration_reader_select ON integration.approval_requests
    FOR SELECT TO integration_reader USING (true);
