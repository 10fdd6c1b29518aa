-- IPAI integration bus: hostile and poison input (issue 15).
--
--  * Replay protection that keeps SPEC §3's wire format. The IPAI signature covers
--    "{timestamp}.{body}" but not x-idempotency-key, so a captured request could be resent
--    within the ±300 s window under fresh keys. ingest_event now remembers the digest of
--    each accepted signature (ingest_signatures, for 10 minutes: longer than any timestamp
--    the ±300 s check lets through) and refuses the same signature under another key
--    (replayed = true, nothing stored). Standard Webhooks signatures cover webhook-id,
--    which is the key: no digest is needed for them.
--  * Duplicates whatever their age. Keys used to be checked against the outbox only, and
--    retention deletes delivered outbox rows. Every key now lives in idempotency_keys,
--    which retention never purges (one small row per event, like event_log), filled here
--    from event_log for every event accepted so far.
--  * Bounded cost. An index for idempotency-key look-ups in event_log (MCP get_event),
--    one for event_log's newest-first order (MCP query tools), and counters kept by
--    triggers so /metrics reads a few dozen rows whatever the size of event_log,
--    deliveries and the done part of the outbox.
--  * ingest_event waits at most 5 s for a lock (lock_timeout): a session holding the
--    aggregate's advisory lock (any role can call pg_advisory_lock; PostgreSQL grants it
--    to PUBLIC, and revoking that would break other users of a shared database such as
--    Supabase's services) delays one ingest by 5 s at most, which then answers 500 +
--    Retry-After and is retried by its sender.
-- Idempotent: safe to apply again.

-- Writers wait while existing keys and counts are copied, so none is missed (when the
-- file runs in one transaction, as `ipai migrate` and the Supabase CLI run it).
DO $$
BEGIN
    LOCK TABLE integration.outbox, integration.event_log, integration.deliveries
        IN SHARE ROW EXCLUSIVE MODE;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Every idempotency key ever accepted. Never purged: retention deletes delivered outbox
-- rows, not their keys, so a key resent after its row is gone is still a duplicate.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS integration.idempotency_keys (
    idempotency_key text        PRIMARY KEY,
    event_id        uuid        NOT NULL,
    body_sha256     text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE integration.idempotency_keys IS
    'Every accepted idempotency key and its event (first one wins). Written only by '
    'ingest_event; never purged by retention.';

-- The first event of each key (an older bus version could store a key again after
-- retention: the first one stays the key's event).
INSERT INTO integration.idempotency_keys (idempotency_key, event_id, body_sha256, created_at)
SELECT DISTINCT ON (l.idempotency_key) l.idempotency_key, l.id, l.body_sha256, l.received_at
  FROM integration.event_log AS l
 ORDER BY l.idempotency_key, l.seq
ON CONFLICT (idempotency_key) DO NOTHING;
INSERT INTO integration.idempotency_keys (idempotency_key, event_id, body_sha256, created_at)
SELECT o.idempotency_key, o.id, o.body_sha256, o.created_at
  FROM integration.outbox AS o
ON CONFLICT (idempotency_key) DO NOTHING;

-- ---------------------------------------------------------------------------------------
-- Accepted IPAI signatures, for replay protection. Rows expire after 10 minutes; each
-- ingest deletes a couple of expired rows, and purge_expired_signatures (POST
-- /ops/retention) deletes the rest in batches, so the table holds about 10 minutes of
-- traffic.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS integration.ingest_signatures (
    signature_sha256 text        PRIMARY KEY,
    idempotency_key  text        NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ingest_signatures_expires_idx
    ON integration.ingest_signatures (expires_at);
COMMENT ON TABLE integration.ingest_signatures IS
    'SHA-256 of each accepted x-ipai-signature and the key it was accepted for, until '
    'expires_at. Written only by ingest_event; purged by purge_expired_signatures.';

-- ingest_event (with replay protection): store one accepted event.
-- Guarantees:
--  * All of the 8-argument ingest_event's (20261126000200): new key -> outbox + event_log
--    rows (same id, same seq), (id, false, false, false); known key -> nothing written,
--    the ORIGINAL id, duplicate = true, conflict = body hash differs; concurrency-safe;
--    ingests of one aggregate serialised.
--  * Keys are checked against idempotency_keys, never purged: a key whose outbox row
--    retention deleted is still a duplicate (or a conflict), however old.
--  * p_signature_sha256 not NULL: the signature is remembered for 10 minutes with
--    p_idempotency_key. Seen before with another key -> (NULL, false, false, true):
--    replayed, nothing stored. Seen with the same key (a sender's retry) -> the key rules
--    apply. A conflict (same key, other body) does not keep the new signature.
--  * NULL p_signature_sha256 (Standard Webhooks, tools): no replay check.
--  * seq increases; a duplicate no longer consumes a seq value (the key is found before
--    the outbox insert), a rolled-back insert still may.
--  * Waits at most 5 s for any lock (lock_timeout), then raises lock_not_available.
--  * Deletes up to 2 expired signature rows per call (bounded housekeeping).
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
            VALUES (p_signature_sha256, p_idempotency_key, now() + interval '10 minutes')
            ON CONFLICT (signature_sha256) DO NOTHING
            RETURNING true INTO v_new_signature;
            v_new_signature := coalesce(v_new_signature, false);
            EXIT WHEN v_new_signature;
            SELECT s.idempotency_key INTO v_key
              FROM integration.ingest_signatures AS s
             WHERE s.signature_sha256 = p_signature_sha256;
            IF FOUND THEN
                IF v_key IS DISTINCT FROM p_idempotency_key THEN
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
                DELETE FROM integration.ingest_signatures AS s
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

-- ingest_event (8 arguments, as before): the same without a signature digest (no replay
-- check), for callers of the original contract. Same guarantees, same result columns.
CREATE OR REPLACE FUNCTION integration.ingest_event(
    p_event_type      text,
    p_aggregate_type  text,
    p_aggregate_id    text,
    p_payload         jsonb,
    p_idempotency_key text,
    p_body_sha256     text,
    p_occurred_at     timestamptz,
    p_source          text
)
RETURNS TABLE (id uuid, duplicate boolean, conflict boolean)
LANGUAGE sql
VOLATILE
SET search_path = integration, pg_temp
AS $$
    SELECT i.id, i.duplicate, i.conflict
      FROM integration.ingest_event(p_event_type, p_aggregate_type, p_aggregate_id,
                                    p_payload, p_idempotency_key, p_body_sha256,
                                    p_occurred_at, p_source, NULL::text) AS i;
$$;

-- purge_expired_signatures: delete at most p_batch expired ingest_signatures rows
-- (oldest first); returns how many. NULL or <= 0 deletes nothing; clamped to 10000;
-- SKIP LOCKED, so it never waits for an ingest. Call again while it returns p_batch.
CREATE OR REPLACE FUNCTION integration.purge_expired_signatures(p_batch integer)
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
        SELECT s.signature_sha256 FROM integration.ingest_signatures AS s
         WHERE s.expires_at < now()
         ORDER BY s.expires_at
         LIMIT v_batch
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM integration.ingest_signatures AS s
     USING picked
     WHERE s.signature_sha256 = picked.signature_sha256;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Indexes for the readers (MCP).
-- ---------------------------------------------------------------------------------------
-- get_event by idempotency key when reading the log directly.
CREATE INDEX IF NOT EXISTS event_log_idempotency_key_idx
    ON integration.event_log (idempotency_key);
-- The query tools' order (newest first, seq breaking ties): a LIMIT reads only its rows.
CREATE INDEX IF NOT EXISTS event_log_received_seq_idx
    ON integration.event_log (received_at DESC, seq DESC);

-- ---------------------------------------------------------------------------------------
-- Counters for /metrics. Kept by statement triggers (transition tables) in the writing
-- transaction, so they are exact and consistent with the rows: one upsert per key per
-- statement, never one per row, so a bulk insert stays cheap. Each statement adds to one
-- of 16 shards per key, so concurrent writers rarely wait for each other; /metrics sums
-- at most 16 rows per key.
-- ---------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS integration.metric_counts (
    family text     NOT NULL,   -- 'ingested' (key: event type), 'deliveries' (key:
                                -- channel/status), 'outbox_done' (key: '')
    key    text     NOT NULL,
    shard  smallint NOT NULL,
    n      bigint   NOT NULL DEFAULT 0,
    CONSTRAINT metric_counts_pkey PRIMARY KEY (family, key, shard)
);
COMMENT ON TABLE integration.metric_counts IS
    'Counters behind /metrics, kept by triggers on event_log, deliveries and outbox. '
    'Sum n over shards.';

-- Trigger: ingested events per type (event_log is append-only: inserts only).
CREATE OR REPLACE FUNCTION integration.count_event_log()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM integration.metric_counts WHERE family = 'ingested';
        RETURN NULL;
    END IF;
    INSERT INTO integration.metric_counts AS c (family, key, shard, n)
    SELECT 'ingested', r.event_type, floor(random() * 16)::smallint, count(*)
      FROM new_rows AS r GROUP BY r.event_type
    ON CONFLICT (family, key, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END;
$$;

-- Trigger: deliveries per channel and status (net change of the statement).
CREATE OR REPLACE FUNCTION integration.count_deliveries()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM integration.metric_counts WHERE family = 'deliveries';
        RETURN NULL;
    END IF;
    -- A transition table exists only for its event: each branch names its own.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO integration.metric_counts AS c (family, key, shard, n)
        SELECT 'deliveries', r.channel || '/' || r.status, floor(random() * 16)::smallint,
               count(*)
          FROM new_rows AS r GROUP BY r.channel, r.status
        ON CONFLICT (family, key, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO integration.metric_counts AS c (family, key, shard, n)
        SELECT 'deliveries', r.channel || '/' || r.status, floor(random() * 16)::smallint,
               -count(*)
          FROM old_rows AS r GROUP BY r.channel, r.status
        ON CONFLICT (family, key, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO integration.metric_counts AS c (family, key, shard, n)
        SELECT 'deliveries', d.key, floor(random() * 16)::smallint, sum(d.delta)
          FROM (SELECT r.channel || '/' || r.status AS key, 1 AS delta FROM new_rows AS r
                UNION ALL
                SELECT r.channel || '/' || r.status, -1 FROM old_rows AS r) AS d
         GROUP BY d.key
        HAVING sum(d.delta) <> 0
        ON CONFLICT (family, key, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

-- Trigger: outbox rows in status 'done' (the part of the outbox that grows with the log;
-- the open statuses are counted through their partial indexes).
CREATE OR REPLACE FUNCTION integration.count_outbox_done()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = integration, pg_temp
AS $$
DECLARE
    v_delta bigint := 0;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM integration.metric_counts WHERE family = 'outbox_done';
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_delta := v_delta + (SELECT count(*) FROM new_rows AS r WHERE r.status = 'done');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_delta := v_delta - (SELECT count(*) FROM old_rows AS r WHERE r.status = 'done');
    END IF;
    IF v_delta <> 0 THEN
        INSERT INTO integration.metric_counts AS c (family, key, shard, n)
        VALUES ('outbox_done', '', floor(random() * 16)::smallint, v_delta)
        ON CONFLICT (family, key, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

-- One trigger per event (a trigger with transition tables serves a single event).
DROP TRIGGER IF EXISTS event_log_count ON integration.event_log;
CREATE TRIGGER event_log_count AFTER INSERT ON integration.event_log
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_event_log();
DROP TRIGGER IF EXISTS event_log_count_truncate ON integration.event_log;
CREATE TRIGGER event_log_count_truncate AFTER TRUNCATE ON integration.event_log
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_event_log();

DROP TRIGGER IF EXISTS deliveries_count_insert ON integration.deliveries;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON integration.deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_deliveries();
DROP TRIGGER IF EXISTS deliveries_count_update ON integration.deliveries;
CREATE TRIGGER deliveries_count_update AFTER UPDATE ON integration.deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_deliveries();
DROP TRIGGER IF EXISTS deliveries_count_delete ON integration.deliveries;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON integration.deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_deliveries();
DROP TRIGGER IF EXISTS deliveries_count_truncate ON integration.deliveries;
CREATE TRIGGER deliveries_count_truncate AFTER TRUNCATE ON integration.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_deliveries();

DROP TRIGGER IF EXISTS outbox_count_done_insert ON integration.outbox;
CREATE TRIGGER outbox_count_done_insert AFTER INSERT ON integration.outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_outbox_done();
DROP TRIGGER IF EXISTS outbox_count_done_update ON integration.outbox;
CREATE TRIGGER outbox_count_done_update AFTER UPDATE ON integration.outbox
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_outbox_done();
DROP TRIGGER IF EXISTS outbox_count_done_delete ON integration.outbox;
CREATE TRIGGER outbox_count_done_delete AFTER DELETE ON integration.outbox
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_outbox_done();
DROP TRIGGER IF EXISTS outbox_count_done_truncate ON integration.outbox;
CREATE TRIGGER outbox_count_done_truncate AFTER TRUNCATE ON integration.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION integration.count_outbox_done();

-- The counts so far (the tables are locked: nothing changes meanwhile). Recomputed on
-- every run, so applying this file again leaves them exact.
DELETE FROM integration.metric_counts;
INSERT INTO integration.metric_counts (family, key, shard, n)
SELECT 'ingested', e.event_type, 0, count(*) FROM integration.event_log AS e
 GROUP BY e.event_type;
INSERT INTO integration.metric_counts (family, key, shard, n)
SELECT 'deliveries', d.channel || '/' || d.status, 0, count(*) FROM integration.deliveries AS d
 GROUP BY d.channel, d.status;
INSERT INTO integration.metric_counts (family, key, shard, n)
SELECT 'outbox_done', '', 0, count(*) FROM integration.outbox AS o WHERE o.status = 'done';

-- ---------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; the app's roles (service_role) use the functions; the
-- read-only role reads the new tables.
-- ---------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION integration.ingest_event(text, text, text, jsonb, text, text, timestamptz, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.purge_expired_signatures(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.count_event_log() FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.count_deliveries() FROM PUBLIC;
REVOKE ALL ON FUNCTION integration.count_outbox_done() FROM PUBLIC;
REVOKE ALL ON integration.idempotency_keys, integration.ingest_signatures,
              integration.metric_counts FROM PUBLIC;
GRANT EXECUTE ON FUNCTION integration.ingest_event(text, text, text, jsonb, text, text, timestamptz, text, text) TO service_role;
GRANT EXECUTE ON FUNCTION integration.purge_expired_signatures(integer) TO service_role;
GRANT ALL ON integration.idempotency_keys, integration.ingest_signatures,
             integration.metric_counts TO service_role;
-- The reader reads every table but the token cache (a digest of a signature does not
-- help forge one).
GRANT SELECT ON integration.idempotency_keys, integration.ingest_signatures,
                integration.metric_counts TO integration_reader;

ALTER TABLE integration.idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration.ingest_signatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration.metric_counts ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['idempotency_keys', 'ingest_signatures', 'metric_counts'] LOOP
        EXECUTE format('DROP POLICY IF EXISTS service_role_all ON integration.%I', t);
        EXECUTE format('CREATE POLICY service_role_all ON integration.%I '
                       'FOR ALL TO service_role USING (true) WITH CHECK (true)', t);
        EXECUTE format('DROP POLICY IF EXISTS integration_reader_select ON integration.%I', t);
        EXECUTE format('CREATE POLICY integration_reader_select ON integration.%I '
                       'FOR SELECT TO integration_reader USING (true)', t);
    END LOOP;
END;
$$;
