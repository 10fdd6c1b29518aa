-- IPAI integration bus: one message per report transition, and retention for every ledger
-- (issue 21).
--
--  * One message per report decision. Odoo 18 approves, refuses and pays an expense
--    REPORT (hr.expense.sheet), but the bus is told per line: the addon stamps each
--    transition of the report once and sends the stamp on every line (SPEC §4:
--    submitted_at, approved_at, refused_at, paid_at are the report's). The lines of one
--    transition share a message key, and the first of their events to claim it sends the
--    report's one message (the approval request, the refusal DM, the approval's finance
--    post, the payment DM). integration.report_messages generalises approval_requests
--    (20261126000600), whose rows it takes over; claim_report_message generalises
--    claim_approval_request, which stays as a thin alias for components of the previous
--    release while a deploy rolls out. approval_requests becomes a view of the approval
--    requests among the messages, for the same reason.
--  * Retention for every ledger: each table below says how long its rows live and why;
--    purge_* functions delete the rest in bounded batches, and purge_ledgers runs them all
--    from the same retention tick as purge_done_outbox (POST /ops/retention).
--    Tables without purge: event_log (the audit log, forever), dispatch_lease (one row),
--    and the hostile-input tables of 20261130000300 (idempotency_keys, never purged;
--    ingest_signatures, purged by its own purge_expired_signatures; metric_counts, a few
--    dozen counter rows).
-- Idempotent: safe to apply again. Runs on PostgreSQL 15+ and Supabase.

-- ---------------------------------------------------------------------------------------
-- One message per report transition.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS integration.report_messages (
    message_key text        PRIMARY KEY,
    event_id    uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS report_messages_created_at_idx
    ON integration.report_messages (created_at);
COMMENT ON TABLE integration.report_messages IS
    'Which event sends the one message of an expense report transition (key '
    'hr.expense.sheet/<id>@<submitted_at> for the approval request, '
    'hr.expense.sheet/<id>/<approved|refused|paid>@<stamp> for a decision). Guards against '
    'duplicate messages from the report''s other lines, so a row lives as long as any of '
    'them may still be delivered: at least the ledger retention window (ops '
    'ledger_retention_days, default 30 days: longer than the dispatcher''s ~18 h of '
    'retries and Odoo''s queue alerting), and always while an event of the report is '
    'pending, processing, failed or dead in the outbox (a dead line can be requeued at any '
    'time). The newest approval request also tells the approvals component which '
    'submission is current; an older one past the window is no longer needed for that '
    '(its buttons expired: the window is at least approval_expiry_days + 1). Purged by '
    'purge_report_messages.';

-- Take over the approval requests (once: afterwards approval_requests is a view).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'integration' AND c.relname = 'approval_requests'
                  AND c.relkind = 'r') THEN
        INSERT INTO integration.report_messages (message_key, event_id, created_at)
        SELECT r.request_key, r.event_id, r.created_at FROM integration.approval_requests AS r
        ON CONFLICT (message_key) DO NOTHING;
        DROP TABLE integration.approval_requests;
    END IF;
END;
$$;

-- The approval requests among the messages (keys without a /<transition>), under the old
-- name and columns, for readers of the previous release.
CREATE OR REPLACE VIEW integration.approval_requests WITH (security_invoker = true) AS
SELECT m.message_key AS request_key, m.event_id, m.created_at
  FROM integration.report_messages AS m
 WHERE m.message_key ~ '^hr\.expense\.sheet/[^/@]*@';
COMMENT ON VIEW integration.approval_requests IS
    'The approval requests among integration.report_messages (since '
    '20261130000400_report_messages_retention.sql); kept for readers of the previous '
    'release. Its rows live and go with report_messages.';

-- claim_report_message: which event sends the message of report transition p_message_key?
-- Returns that event's id as text: p_event_id when it is the first to claim the key (or
-- claimed it before: a redelivery gets the same answer), otherwise the earlier claimant's.
-- Guarantees:
--  * Exactly one owner per key, whatever the concurrency: racing claims serialise on the
--    primary key (INSERT ... ON CONFLICT DO NOTHING), and every claimant, the losers
--    included, reads the same committed owner. Always exactly one row.
--  * Claiming never sends anything: the owner sends the message through the deliveries
--    ledger (claim_delivery), so it is retried until sent, dead-lettered and replayable
--    like any side effect; the other claimants record nothing.
--  * An owner is forgotten only by purge_report_messages, never while an event of the
--    report can still be delivered (see the table's comment).
CREATE OR REPLACE FUNCTION integration.claim_report_message(
    p_message_key text,
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
    INSERT INTO integration.report_messages (message_key, event_id)
    VALUES (p_message_key, p_event_id)
    ON CONFLICT (message_key) DO NOTHING;

    -- A new statement: under READ COMMITTED it sees a racing claimant's committed row.
    SELECT m.event_id INTO v_owner
      FROM integration.report_messages AS m
     WHERE m.message_key = p_message_key;

    RETURN v_owner::text;
END;
$$;

-- claim_approval_request: the previous release's name of claim_report_message (same
-- guarantees, same table).
CREATE OR REPLACE FUNCTION integration.claim_approval_request(
    p_request_key text,
    p_event_id    uuid
)
RETURNS text
LANGUAGE sql
VOLATILE
SET search_path = integration, pg_temp
AS $$
    SELECT integration.claim_report_message(p_request_key, p_event_id);
$$;

-- ---------------------------------------------------------------------------------------
-- How long each existing ledger's rows live.
-- ---------------------------------------------------------------------------------------
COMMENT ON TABLE integration.deliveries IS
    'One row per side effect (event, channel, target), claimed before it is performed and '
    'marked after (claim_delivery / finish_delivery). Guards against a redelivered event '
    'notifying twice, so a row lives while its event can still be delivered - its outbox '
    'row pending, processing, failed or dead (requeueable at any time): never purged then - '
    'and at least the ledger retention window after its last change (ops '
    'ledger_retention_days, default 30 days; at least approval_expiry_days + 1, since an '
    'approval click is judged by its channel-odoo row until the buttons expire). Done '
    'events are never delivered again (requeue takes only dead and failed rows; a resent '
    'idempotency key is a duplicate forever). Purged by purge_deliveries.';
COMMENT ON TABLE integration.id_map IS
    'Odoo record <-> external object (Google Calendar event of a booking, Mattermost post '
    'of a report), shown by MCP get_event. Informational: no decision reads it (calendar '
    'duplicates are refused by the client-chosen event id, posts are guarded by '
    'deliveries). Lives the ledger retention window after it was written (ops '
    'ledger_retention_days, default 30 days). Purged by purge_id_map.';
COMMENT ON TABLE integration.oauth_tokens IS
    'Cached OAuth access tokens, one row per name (e.g. google_calendar). Useful until '
    'expires_at; an expired token is a secret that opens nothing and is fetched anew when '
    'needed. Purged by purge_expired_oauth_tokens.';
COMMENT ON TABLE integration.outbox IS
    'The durable queue. Open, failed and dead rows live until delivered or requeued; done '
    'rows live outbox_retention_days (ops, default 7) after done_at, then '
    'purge_done_outbox deletes them (event_log keeps every event forever).';
COMMENT ON TABLE integration.event_log IS
    'Append-only audit record of every accepted event. Lives forever: never purged.';

-- Finds purgeable rows by age.
CREATE INDEX IF NOT EXISTS deliveries_updated_at_idx
    ON integration.deliveries (updated_at);
CREATE INDEX IF NOT EXISTS id_map_created_at_idx
    ON integration.id_map (created_at);
-- Open and dead expense events by report, for purge_report_messages' check.
CREATE INDEX IF NOT EXISTS outbox_unfinished_expense_sheet_idx
    ON integration.outbox ((payload ->> 'sheet_id'))
    WHERE status IN ('pending', 'processing', 'failed', 'dead') AND aggregate_type = 'expense';

-- ---------------------------------------------------------------------------------------
-- purge_* : the same contract as purge_done_outbox.
-- Each deletes at most p_batch rows older than p_older_than (oldest first) that its
-- table's rule allows, and returns how many. Guarantees, for each:
--  * Bounded: p_batch is clamped to 1..10000 (NULL or <= 0 deletes nothing), so one call
--    holds its row locks briefly; call it again while it returns p_batch.
--  * Concurrency-safe: rows are picked FOR UPDATE SKIP LOCKED and re-checked by the
--    DELETE, so a purge never waits for, nor deletes a row being claimed or changed by, a
--    handler or another purge.
--  * p_older_than NULL or negative deletes nothing; rows younger than it are never
--    deleted. Idempotent: once caught up a call deletes nothing.
-- ---------------------------------------------------------------------------------------

-- purge_deliveries: rows unchanged for longer than p_older_than whose event is done or
-- gone from the outbox (never one whose outbox row is pending, processing, failed or
-- dead: it may still be delivered).
CREATE OR REPLACE FUNCTION integration.purge_deliveries(p_older_than interval, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_batch   integer := least(coalesce(p_batch, 0), 10000);
    v_deleted integer;
BEGIN
    IF v_batch <= 0 OR p_older_than IS NULL OR p_older_than < interval '0' THEN
        RETURN 0;
    END IF;
    WITH picked AS MATERIALIZED (
        SELECT d.id
          FROM integration.deliveries AS d
         WHERE d.updated_at < now() - p_older_than
           AND NOT EXISTS (SELECT 1 FROM integration.outbox AS o
                            WHERE o.id = d.event_id AND o.status <> 'done')
         ORDER BY d.updated_at
         LIMIT v_batch
           FOR UPDATE OF d SKIP LOCKED
    )
    DELETE FROM integration.deliveries AS d
     USING picked
     WHERE d.id = picked.id
       AND d.updated_at < now() - p_older_than;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

-- purge_report_messages: claims older than p_older_than, except while an expense event of
-- the same report is pending, processing, failed or dead in the outbox (one of its lines
-- may still be delivered and must find its report's owner).
CREATE OR REPLACE FUNCTION integration.purge_report_messages(p_older_than interval, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_batch   integer := least(coalesce(p_batch, 0), 10000);
    v_deleted integer;
BEGIN
    IF v_batch <= 0 OR p_older_than IS NULL OR p_older_than < interval '0' THEN
        RETURN 0;
    END IF;
    WITH picked AS MATERIALIZED (
        SELECT m.message_key
          FROM integration.report_messages AS m
         WHERE m.created_at < now() - p_older_than
           AND NOT EXISTS (
               SELECT 1 FROM integration.outbox AS o
                WHERE o.status IN ('pending', 'processing', 'failed', 'dead')
                  AND o.aggregate_type = 'expense'
                  AND o.payload ->> 'sheet_id'
                      = substring(m.message_key FROM '^hr\.expense\.sheet/([^/@]*)'))
         ORDER BY m.created_at
         LIMIT v_batch
           FOR UPDATE OF m SKIP LOCKED
    )
    DELETE FROM integration.report_messages AS m
     USING picked
     WHERE m.message_key = picked.message_key
       AND m.created_at < now() - p_older_than;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

-- purge_id_map: links written longer than p_older_than ago.
CREATE OR REPLACE FUNCTION integration.purge_id_map(p_older_than interval, p_batch integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_batch   integer := least(coalesce(p_batch, 0), 10000);
    v_deleted integer;
BEGIN
    IF v_batch <= 0 OR p_older_than IS NULL OR p_older_than < interval '0' THEN
        RETURN 0;
    END IF;
    WITH picked AS MATERIALIZED (
        SELECT m.odoo_model, m.odoo_id, m.system
          FROM integration.id_map AS m
         WHERE m.created_at < now() - p_older_than
         ORDER BY m.created_at
         LIMIT v_batch
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM integration.id_map AS m
     USING picked
     WHERE (m.odoo_model, m.odoo_id, m.system) = (picked.odoo_model, picked.odoo_id, picked.system)
       AND m.created_at < now() - p_older_than;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

-- purge_expired_oauth_tokens: tokens past expires_at (no window: an expired token is of
-- no use). Bounded and SKIP LOCKED like the others.
CREATE OR REPLACE FUNCTION integration.purge_expired_oauth_tokens(p_batch integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_batch   integer := least(coalesce(p_batch, 0), 10000);
    v_deleted integer;
BEGIN
    IF v_batch <= 0 THEN
        RETURN 0;
    END IF;
    WITH picked AS MATERIALIZED (
        SELECT t.name
          FROM integration.oauth_tokens AS t
         WHERE t.expires_at < now()
         ORDER BY t.expires_at
         LIMIT v_batch
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM integration.oauth_tokens AS t
     USING picked
     WHERE t.name = picked.name
       AND t.expires_at < now();
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

-- purge_ledgers: one batch of each ledger purge above, in one round trip (the retention
-- tick calls it again while any count equals p_batch). Returns
-- {"deliveries": n, "report_messages": n, "id_map": n, "oauth_tokens": n}.
-- Guarantees: those of each function (at most p_batch rows per table; nothing for a NULL,
-- zero or negative p_batch or a NULL or negative p_older_than, except expired tokens,
-- which need no window); never touches outbox, event_log, the dashboards or the
-- hostile-input tables.
CREATE OR REPLACE FUNCTION integration.purge_ledgers(p_older_than interval, p_batch integer)
RETURNS jsonb
LANGUAGE sql
VOLATILE
SET search_path = integration, pg_temp
AS $$
    SELECT jsonb_build_object(
        'deliveries', integration.purge_deliveries(p_older_than, p_batch),
        'report_messages', integration.purge_report_messages(p_older_than, p_batch),
        'id_map', integration.purge_id_map(p_older_than, p_batch),
        'oauth_tokens', integration.purge_expired_oauth_tokens(p_batch));
$$;

-- ---------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the app's roles (service_role) claim and purge; the
-- read-only role reads the messages, as it read approval_requests.
-- ---------------------------------------------------------------------------------------
REVOKE ALL ON integration.report_messages, integration.approval_requests FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.claim_report_message(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.claim_approval_request(text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_deliveries(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_report_messages(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_id_map(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_expired_oauth_tokens(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_ledgers(interval, integer) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT ALL ON integration.report_messages TO service_role;
        GRANT SELECT ON integration.approval_requests TO service_role;
        GRANT EXECUTE ON FUNCTION integration.claim_report_message(text, uuid) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.claim_approval_request(text, uuid) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.purge_deliveries(interval, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.purge_report_messages(interval, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.purge_id_map(interval, integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.purge_expired_oauth_tokens(integer) TO service_role;
        GRANT EXECUTE ON FUNCTION integration.purge_ledgers(interval, integer) TO service_role;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'integration_reader') THEN
        GRANT SELECT ON integration.report_messages, integration.approval_requests
            TO integration_reader;
    END IF;
END;
$$;

-- Row-level security as on every other table (see the roles migration).
ALTER TABLE integration.report_messages ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS service_role_all ON integration.report_messages;
CREATE POLICY service_role_all ON integration.report_messages
    FOR ALL TO service_role USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS integration_reader_select ON integration.report_messages;
CREATE POLICY integration_reader_select ON integration.report_messages
    FOR SELECT TO integration_reader USING (true);
