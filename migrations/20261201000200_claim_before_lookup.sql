-- IPAI integration bus: a handler claims the delivery it looks up for before the look-up
-- (issue 17).
--
-- A handler whose event needs a look-up in Odoo (an expense submission: the approver;
-- a refusal: the employee) used to ask three things in three round trips: which event
-- sends the report's message (claim_report_message) with whether the delivery was done,
-- then, after the look-up, claim_delivery, then finish_delivery. Under Spin every
-- statement is a prepare and an execute, so each round trip saved is two PostgreSQL
-- transactions per event. claim_report_message_and_delivery asks the first two in one:
-- the delivery is claimed before the look-up, and a claim the handler does not go on to
-- perform (the look-up failed, the plan skips the event or sends elsewhere, a variable is
-- missing) is handed back with release_delivery.
--
-- Nothing is lost when a handler dies or cannot release: its claim is an ordinary
-- 'pending' row, claimed again by the next attempt once its lease has expired (the
-- claim_delivery contract, 20261126000400). Idempotent: safe to apply again.

-- claim_report_message_and_delivery: claim_report_message, then claim_delivery, in one
-- statement. Returns exactly one row (owner, decision, detail):
--  * p_message_key NULL (the event owns no report message): owner NULL, and
--    claim_delivery's (decision, detail) for (p_event_id, p_channel, p_target).
--  * p_message_key given: owner is claim_report_message's answer (the event that sends
--    the report's one message). When that is p_event_id, (decision, detail) is
--    claim_delivery's; when it is another event, nothing is claimed and decision and
--    detail are NULL (this event sends nothing for the report).
-- Guarantees: those of the two functions it calls (one owner per key, one 'send' per
-- delivery whatever the concurrency), in one transaction.
CREATE OR REPLACE FUNCTION integration.claim_report_message_and_delivery(
    p_message_key text,
    p_event_id    uuid,
    p_channel     text,
    p_target      text,
    p_lease_s     integer
)
RETURNS TABLE (owner text, decision text, detail text)
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_owner text;
BEGIN
    IF p_message_key IS NOT NULL THEN
        v_owner := integration.claim_report_message(p_message_key, p_event_id);
        IF v_owner IS DISTINCT FROM p_event_id::text THEN
            RETURN QUERY SELECT v_owner, NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
        SELECT v_owner, c.decision, c.detail
          FROM integration.claim_delivery(p_event_id, p_channel, p_target, p_lease_s) AS c;
END;
$$;

-- release_delivery: hands back a claim ('send' from claim_delivery) that the caller will
-- not perform. A delivery this claim created is removed, as if never claimed; one it took
-- over (an earlier attempt failed, or its performer's lease expired) is 'failed' again
-- with the attempt it counted undone and the earlier detail kept, so the next attempt
-- claims it at once. Returns whether a pending row was released (false: nothing was
-- pending under that key - never claimed, already finished or released).
-- Only the claimant calls it, within its lease: no other attempt can hold the row then.
CREATE OR REPLACE FUNCTION integration.release_delivery(
    p_event_id uuid,
    p_channel  text,
    p_target   text
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
BEGIN
    DELETE FROM integration.deliveries AS d
     WHERE d.event_id = p_event_id AND d.channel = p_channel AND d.target = p_target
       AND d.status = 'pending' AND d.attempts <= 1;
    IF FOUND THEN
        RETURN true;
    END IF;
    UPDATE integration.deliveries AS d
       SET status = 'failed', attempts = d.attempts - 1, updated_at = now()
     WHERE d.event_id = p_event_id AND d.channel = p_channel AND d.target = p_target
       AND d.status = 'pending';
    RETURN FOUND;
END;
$$;

REVOKE ALL ON FUNCTION integration.claim_report_message_and_delivery(text, uuid, text, text, integer)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.release_delivery(uuid, text, text) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION
            integration.claim_report_message_and_delivery(text, uuid, text, text, integer)
            TO service_role;
        GRANT EXECUTE ON FUNCTION integration.release_delivery(uuid, text, text)
            TO service_role;
    END IF;
END;
$$;
