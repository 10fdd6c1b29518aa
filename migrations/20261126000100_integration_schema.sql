-- IPAI integration bus: schema, tables, indexes (SPEC §5).
-- Idempotent: safe to apply again. Runs on PostgreSQL 15+ and Supabase.
-- Status columns are text + CHECK (no enum types: spin:postgres cannot carry enums).

CREATE SCHEMA IF NOT EXISTS integration;

-- Durable queue. One row per accepted event; seq gives strict order.
CREATE TABLE IF NOT EXISTS integration.outbox (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    seq             bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_type      text        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    payload         jsonb       NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    body_sha256     text        NOT NULL,
    source          text        NOT NULL DEFAULT 'odoo',
    occurred_at     timestamptz,
    status          text        NOT NULL DEFAULT 'pending'
                    CONSTRAINT outbox_status_check
                    CHECK (status IN ('pending', 'processing', 'done', 'failed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL DEFAULT 10,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_at       timestamptz,
    locked_by       text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);

-- Claim scan. Partial indexes hold only open rows, so claiming stays fast however many
-- done/dead rows accumulate. Open rows in seq order:
CREATE INDEX IF NOT EXISTS outbox_open_seq_idx
    ON integration.outbox (seq)
    WHERE status IN ('pending', 'processing', 'failed');
-- Due pending/failed rows:
CREATE INDEX IF NOT EXISTS outbox_due_idx
    ON integration.outbox (next_attempt_at, seq)
    WHERE status IN ('pending', 'failed');
-- Stale-lock reclaim.
CREATE INDEX IF NOT EXISTS outbox_processing_locked_idx
    ON integration.outbox (locked_at)
    WHERE status = 'processing';
-- Per-aggregate FIFO check ("is an older event of this aggregate still open?").
CREATE INDEX IF NOT EXISTS outbox_open_aggregate_idx
    ON integration.outbox (aggregate_type, aggregate_id, seq)
    WHERE status IN ('pending', 'processing', 'failed');
-- Dead-letter listing.
CREATE INDEX IF NOT EXISTS outbox_dead_idx
    ON integration.outbox (updated_at DESC)
    WHERE status = 'dead';

-- Append-only audit record of every accepted event (same id and seq as the outbox row).
CREATE TABLE IF NOT EXISTS integration.event_log (
    id              uuid        PRIMARY KEY,
    seq             bigint      NOT NULL,
    event_type      text        NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    payload         jsonb       NOT NULL,
    idempotency_key text        NOT NULL,
    body_sha256     text        NOT NULL,
    source          text        NOT NULL DEFAULT 'odoo',
    occurred_at     timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    -- Alias of received_at for the seed's queries (`event_log WHERE created_at > ...`).
    created_at      timestamptz GENERATED ALWAYS AS (received_at) STORED
);

CREATE INDEX IF NOT EXISTS event_log_type_received_idx
    ON integration.event_log (event_type, received_at DESC);
CREATE INDEX IF NOT EXISTS event_log_aggregate_idx
    ON integration.event_log (aggregate_type, aggregate_id, seq);
CREATE INDEX IF NOT EXISTS event_log_received_idx
    ON integration.event_log (received_at DESC);

-- Rejects UPDATE and DELETE on event_log. TRUNCATE fires no row trigger, so the
-- owner can still empty the table (tests, retention).
CREATE OR REPLACE FUNCTION integration.event_log_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = integration, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'integration.event_log is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DROP TRIGGER IF EXISTS event_log_append_only ON integration.event_log;
CREATE TRIGGER event_log_append_only
    BEFORE UPDATE OR DELETE ON integration.event_log
    FOR EACH ROW EXECUTE FUNCTION integration.event_log_append_only();

-- Odoo record <-> external object (Mattermost post, Google Calendar event, ...).
CREATE TABLE IF NOT EXISTS integration.id_map (
    odoo_model  text        NOT NULL,
    odoo_id     text        NOT NULL,
    system      text        NOT NULL,  -- 'mattermost', 'google_calendar', ...
    external_id text        NOT NULL,
    event_id    uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT id_map_pkey PRIMARY KEY (odoo_model, odoo_id, system)
);

-- One row per side effect; the unique key makes re-deliveries notify once.
CREATE TABLE IF NOT EXISTS integration.deliveries (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL,
    channel       text        NOT NULL,
    target        text        NOT NULL,
    status        text        NOT NULL
                  CONSTRAINT deliveries_status_check
                  CHECK (status IN ('sent', 'failed', 'skipped')),
    response_code integer,
    detail        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_event_channel_target_key UNIQUE (event_id, channel, target)
);

-- Dashboard: approved expenses awaiting / after payment.
CREATE TABLE IF NOT EXISTS integration.payment_queue (
    expense_id    text        PRIMARY KEY,
    sheet_id      text,
    employee_id   text,
    employee_name text,
    employee_code text,
    amount        numeric,
    currency      text,
    description   text,
    status        text        NOT NULL DEFAULT 'queued'
                  CONSTRAINT payment_queue_status_check CHECK (status IN ('queued', 'paid')),
    approved_by   text,
    approved_at   timestamptz,
    paid_at       timestamptz,
    payment_ref   text,
    event_id      uuid,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payment_queue_status_idx
    ON integration.payment_queue (status, approved_at);

-- Dashboard: current state of each bookable asset.
CREATE TABLE IF NOT EXISTS integration.asset_availability (
    asset_id      text        PRIMARY KEY,
    asset_name    text,
    asset_code    text,
    status        text        NOT NULL
                  CONSTRAINT asset_availability_status_check
                  CHECK (status IN ('reserved', 'checked_out', 'available', 'overdue')),
    booking_id    text,
    employee_id   text,
    employee_name text,
    start_at      timestamptz,
    end_at        timestamptz,
    location      text,
    event_id      uuid,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Dashboard: finance PPM tasks (status is the Odoo-side state, free text).
CREATE TABLE IF NOT EXISTS integration.ppm_tasks (
    task_id            text        PRIMARY KEY,
    name               text,
    project            text,
    stage              text,
    status             text,
    bir_form           text,
    period             text,
    deadline           date,
    reviewer_id        text,
    responsible_emails text[],
    event_id           uuid,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ppm_tasks_deadline_idx
    ON integration.ppm_tasks (deadline);

-- Dashboard: BIR filings per form and period.
CREATE TABLE IF NOT EXISTS integration.bir_compliance (
    bir_form     text        NOT NULL,
    period       text        NOT NULL,
    task_id      text,
    status       text        NOT NULL
                 CONSTRAINT bir_compliance_status_check CHECK (status IN ('approved', 'filed')),
    approved_at  timestamptz,
    filed_at     timestamptz,
    reference_no text,
    event_id     uuid,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bir_compliance_pkey PRIMARY KEY (bir_form, period)
);

-- Cached OAuth access tokens (e.g. name = 'google_calendar'). Secret: not readable
-- by integration_reader (see 20261126000300_roles_rls.sql).
CREATE TABLE IF NOT EXISTS integration.oauth_tokens (
    name         text        PRIMARY KEY,
    access_token text        NOT NULL,
    expires_at   timestamptz NOT NULL
);
