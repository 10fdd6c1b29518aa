-- IPAI integration bus: a redone effect is a new request to its provider (SPEC §12, #38).
--
-- Why. `ipai replay --redo-effects email,google_calendar` reopens ledger rows so their
-- effects are performed again. The handlers send every email with an Idempotency-Key and
-- insert every calendar event under an id, both derived from (event, target): Resend
-- answers a repeated key from its record for 24 hours, and Google answers 409 for an id it
-- has seen, forever. A redo under the same key would be recorded "sent" and send nothing.
-- So each reopening is counted on the row, claim_delivery hands the count to the handler
-- with its 'send', and the handler derives a key of its own for that redo (`…#redo1`,
-- calendar id `…r1`). Retries of the same redo share its key, so a redo is still performed
-- at most once; a second replay with redo counts again and performs it once more.
--
-- The contract changes:
--   deliveries.redo                  how many times replays reopened the row (0: never)
--   claim_delivery(...) → detail     on 'send', the row's redo count as text when above 0
--                                    (NULL otherwise: the first performance)
--   replay_step(...)                 counts each row it reopens (redo = redo + 1)
-- Idempotent: safe to apply again.

ALTER TABLE integration.deliveries ADD COLUMN IF NOT EXISTS redo integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN integration.deliveries.redo IS
    'How many times a replay reopened this effect to perform it again (--redo-effects). '
    'Above 0, the handler sends it under a key of its own for that redo.';

-- claim_delivery: as 20261207000600's; a 'send' of a reopened row carries its redo count.
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
    v_redo   integer;
    v_status text;
    v_detail text;
BEGIN
    INSERT INTO integration.deliveries AS d (event_id, channel, target, status, attempts)
    VALUES (p_event_id, p_channel, p_target, 'pending', 1)
    ON CONFLICT (event_id, channel, target) DO UPDATE
        SET status = 'pending', attempts = d.attempts + 1, updated_at = now(),
            response_code = NULL
        WHERE d.status IN ('failed', 'redo')
           OR (d.status = 'pending'
               AND d.updated_at < now() - make_interval(secs => greatest(p_lease_s, 1)))
    RETURNING d.id, d.redo INTO v_id, v_redo;

    IF v_id IS NOT NULL THEN
        RETURN QUERY SELECT 'send'::text, CASE WHEN v_redo > 0 THEN v_redo::text END;
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

-- replay_step: as 20261207000600's; each ledger row it reopens counts one more redo.
CREATE OR REPLACE FUNCTION integration.replay_step(p_replay bigint, p_batch integer)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = integration, pg_temp
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    v_redo      text[];
    v_seqs      bigint[];
    v_ids       uuid[];
    v_matched   uuid[];
    v_requeued  integer;
    v_redone    integer;
    v_remaining bigint;
    v_finished  boolean;
BEGIN
    SELECT r.redo_effects INTO v_redo FROM integration.replays AS r WHERE r.id = p_replay;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'replay % does not exist', p_replay USING ERRCODE = 'no_data_found';
    END IF;

    SELECT coalesce(array_agg(b.seq), '{}'), coalesce(array_agg(b.event_id), '{}'),
           coalesce(array_agg(b.event_id) FILTER (WHERE NOT b.follower), '{}')
      INTO v_seqs, v_ids, v_matched
      FROM (SELECT i.seq, i.event_id, i.follower FROM integration.replay_items AS i
             WHERE i.replay_id = p_replay AND i.done_at IS NULL
             ORDER BY i.seq
             LIMIT greatest(p_batch, 1)
               FOR UPDATE SKIP LOCKED) AS b;

    UPDATE integration.deliveries AS d
       SET status = 'redo', redo = d.redo + 1, updated_at = now(),
           detail = left(format('replay #%s: performed again (was %s: %s)', p_replay,
                                d.status, coalesce(d.detail, '')), 2000)
     WHERE d.event_id = ANY (v_matched)
       AND d.status IN ('sent', 'skipped') AND d.channel = ANY (v_redo);
    GET DIAGNOSTICS v_redone = ROW_COUNT;

    UPDATE integration.outbox AS o
       SET status = 'pending', attempts = 0, next_attempt_at = now(),
           locked_at = NULL, locked_by = NULL, done_at = NULL, updated_at = now()
     WHERE o.id = ANY (v_ids) AND o.status IN ('dead', 'failed', 'done');
    GET DIAGNOSTICS v_requeued = ROW_COUNT;

    UPDATE integration.replay_items AS i SET done_at = now()
     WHERE i.replay_id = p_replay AND i.seq = ANY (v_seqs);

    SELECT count(*) INTO v_remaining FROM integration.replay_items AS i
     WHERE i.replay_id = p_replay AND i.done_at IS NULL;
    UPDATE integration.replays AS r
       SET requeued = r.requeued + v_requeued, redone = r.redone + v_redone,
           finished_at = CASE WHEN v_remaining = 0 THEN coalesce(r.finished_at, now()) END
     WHERE r.id = p_replay
    RETURNING r.finished_at IS NOT NULL INTO v_finished;

    RETURN jsonb_build_object('replay', p_replay, 'processed', cardinality(v_seqs),
        'requeued', v_requeued, 'redone', v_redone, 'remaining', v_remaining,
        'finished', v_finished);
END;
$$;
