//! What the ops routes read from PostgreSQL: the SQL (each statement returns exactly one
//! row with one column, as Spin 4.0.2 requires — a query with no rows never returns there)
//! and the shapes it decodes into. Parameters are passed as text and cast in SQL;
//! timestamps leave the database as text or as ages in seconds (Spin 4.0.2 cannot read
//! `timestamptz`).

use serde::Deserialize;
use std::collections::BTreeMap;

/// Outbox statuses in lifecycle order.
pub const STATUSES: [&str; 5] = ["pending", "processing", "failed", "dead", "done"];
/// The statuses that make up the queue (work not finished, or needing an operator).
pub const QUEUE_STATUSES: [&str; 4] = ["pending", "processing", "failed", "dead"];

/// Seconds since the oldest `pending` event became due (queued, or requeued), or NULL.
/// A requeued event counts from its requeue (`requeue_outbox` sets `next_attempt_at`).
/// (`HAVING` makes it NULL, not 0, when nothing is pending.)
const OLDEST_PENDING: &str =
    "(SELECT greatest(extract(epoch FROM now() - min(o.next_attempt_at)), 0)::float8 \
       FROM integration.outbox AS o WHERE o.status = 'pending' HAVING count(*) > 0)";

/// `processing` rows locked longer than `$1` seconds (their dispatcher died; the next
/// claim after the lock timeout takes them back).
const STUCK_COUNT: &str = "(SELECT count(*) FROM integration.outbox AS o \
      WHERE o.status = 'processing' AND o.locked_at < now() - make_interval(secs => $1::text::float8))";

/// /health: queue depth of the open statuses (partial indexes only; the done rows are
/// never scanned), oldest pending age, stuck rows. `$1` = lock timeout in seconds.
/// `integration.health_snapshot` (migration 20261207000100_least_privilege.sql) runs the
/// same reads as the dashboard's, as its owner: the probe role `ipai_probe` holds EXECUTE
/// on it and no privilege on any table.
pub fn health_sql() -> String {
    "SELECT integration.health_snapshot($1::text::float8)".to_string()
}

/// /metrics at a cost that does not grow with the log: the open statuses and `dead` are
/// counted through their partial indexes (the queue, not the history); `done` rows,
/// ingested events per type and deliveries per channel and status come from
/// `integration.metric_counts`, kept exact by triggers (migration
/// 20261130000300_hostile_input.sql), a few dozen rows. The oldest `done` age is that of
/// the first row retention would purge (`outbox_done_at_idx`). Runs as
/// `integration.metrics_snapshot` (SECURITY DEFINER, like [`health_sql`]).
/// `$1` = lock timeout in seconds.
pub fn metrics_sql() -> String {
    "SELECT integration.metrics_snapshot($1::text::float8)".to_string()
}

/// Outbox rows per status with the age of the oldest (as `metrics_snapshot` counts them).
const OUTBOX_BY_STATUS: &str = "\
    SELECT o.status, count(*) AS count, \
           extract(epoch FROM now() - min(o.created_at))::float8 AS oldest_age_seconds \
      FROM integration.outbox AS o WHERE o.status IN ('pending', 'processing', 'failed') \
     GROUP BY o.status \
    UNION ALL \
    SELECT 'dead', count(*), extract(epoch FROM now() - min(o.created_at))::float8 \
      FROM integration.outbox AS o WHERE o.status = 'dead' \
    UNION ALL \
    SELECT 'done', \
           (SELECT coalesce(sum(m.n), 0)::int8 FROM integration.metric_counts AS m \
             WHERE m.family = 'outbox_done' AND m.key = ''), \
           (SELECT extract(epoch FROM now() - o.created_at)::float8 FROM integration.outbox AS o \
             WHERE o.status = 'done' ORDER BY o.done_at LIMIT 1)";

/// Rows shown in each dashboard table at most.
pub const LIST_LIMIT: i64 = 100;

const ROW_FIELDS: &str =
    "'id', r.id, 'event_type', r.event_type, 'aggregate_type', r.aggregate_type, \
     'aggregate_id', r.aggregate_id, 'attempts', r.attempts, 'max_attempts', r.max_attempts, \
     'last_error', r.last_error, 'locked_by', r.locked_by, \
     'created_at', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', \
     'updated_at', to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', \
     'locked_age_s', extract(epoch FROM now() - r.locked_at)::float8, \
     'next_attempt_in_s', extract(epoch FROM r.next_attempt_at - now())::float8";

/// Hour buckets aligned to UTC hours, whatever the session's time zone.
const HOUR: &str = "date_bin('1 hour', {}, timestamptz '2000-01-01 00:00:00+00')";

fn hour_of(expr: &str) -> String {
    HOUR.replace("{}", expr)
}

/// /ops: everything the page shows, in one round trip, at a cost that does not grow with
/// the log: the counts per status as `/metrics` reads them (partial indexes for the queue
/// and `dead`, the trigger-kept counter for `done`), the chart from the hourly counters
/// (`integration.event_volume_hourly`, at most 24 hours × event types × 16 shards rows,
/// migration 20261130000600), and each list through its partial index with a LIMIT.
/// `$1` = lock timeout in seconds.
pub fn dashboard_sql() -> String {
    let now_hour = hour_of("now()");
    format!(
        "SELECT jsonb_build_object(\
           'now', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC', \
           'counts', (SELECT coalesce(jsonb_object_agg(s.status, s.count), '{{}}'::jsonb) \
                      FROM ({OUTBOX_BY_STATUS}) AS s), \
           'oldest_pending_age_s', {OLDEST_PENDING}, \
           'hour_now', extract(epoch FROM {now_hour})::int8, \
           'volume', (SELECT coalesce(jsonb_agg(jsonb_build_object('hour', v.h, \
                        'event_type', v.event_type, 'count', v.n)), '[]'::jsonb) \
                      FROM (SELECT extract(epoch FROM c.hour)::int8 AS h, c.event_type, sum(c.n)::int8 AS n \
                              FROM integration.event_volume_hourly AS c \
                             WHERE c.hour >= {now_hour} - interval '23 hours' \
                             GROUP BY 1, 2 HAVING sum(c.n) > 0) AS v), \
           'dead_total', (SELECT count(*) FROM integration.outbox AS o WHERE o.status = 'dead'), \
           'dead', (SELECT coalesce(jsonb_agg(jsonb_build_object({ROW_FIELDS}) \
                      ORDER BY r.updated_at DESC, r.seq DESC), '[]'::jsonb) \
                    FROM (SELECT * FROM integration.outbox AS o WHERE o.status = 'dead' \
                          ORDER BY o.updated_at DESC, o.seq DESC LIMIT {LIST_LIMIT}) AS r), \
           'stuck_total', {STUCK_COUNT}, \
           'stuck', (SELECT coalesce(jsonb_agg(jsonb_build_object({ROW_FIELDS}) ORDER BY r.locked_at), '[]'::jsonb) \
                     FROM (SELECT * FROM integration.outbox AS o WHERE o.status = 'processing' \
                             AND o.locked_at < now() - make_interval(secs => $1::text::float8) \
                           ORDER BY o.locked_at LIMIT {LIST_LIMIT}) AS r), \
           'failed', (SELECT coalesce(jsonb_agg(jsonb_build_object({ROW_FIELDS}) ORDER BY r.next_attempt_at), '[]'::jsonb) \
                      FROM (SELECT * FROM integration.outbox AS o WHERE o.status = 'failed' \
                            ORDER BY o.next_attempt_at LIMIT {LIST_LIMIT}) AS r))"
    )
}

/// Requeue one dead/failed event: `$1` = the event id. Returns a boolean.
pub use ipai_core::outbox::REQUEUE_SQL;

/// Delete up to `$1` expired replay-protection rows (`ingest_signatures`). Returns an
/// integer. (Each ingest also deletes a couple, so the table stays small without it.)
pub const PURGE_SIGNATURES_SQL: &str = "SELECT integration.purge_expired_signatures($1::text::int)";

/// Delete up to `$2` done rows older than `$1` days. Returns an integer.
pub const PURGE_SQL: &str =
    "SELECT integration.purge_done_outbox(make_interval(days => $1::text::int), $2::text::int)";

/// One batch of every ledger purge (`integration.purge_ledgers`): rows older than `$1`
/// days, at most `$2` per ledger. Returns `{"deliveries": n, "report_messages": n,
/// "id_map": n, "oauth_tokens": n}`.
pub const PURGE_LEDGERS_SQL: &str =
    "SELECT integration.purge_ledgers(make_interval(days => $1::text::int), $2::text::int)";

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HealthData {
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    pub oldest_pending_age_s: Option<f64>,
    #[serde(default)]
    pub stuck_processing: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StatusRow {
    pub status: String,
    pub count: i64,
    pub oldest_age_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct DeliveryRow {
    pub channel: String,
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MetricsData {
    #[serde(default)]
    pub outbox: Vec<StatusRow>,
    pub oldest_pending_age_s: Option<f64>,
    #[serde(default)]
    pub stuck_processing: i64,
    #[serde(default)]
    pub ingested: BTreeMap<String, i64>,
    #[serde(default)]
    pub deliveries: Vec<DeliveryRow>,
    /// Reconciliation (SPEC §11): keys Odoo marked sent that the bus still lacks, and the
    /// age of the newest digest (`None`: no digest ever came).
    #[serde(default)]
    pub reconcile: ReconcileData,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ReconcileData {
    #[serde(default)]
    pub missing: i64,
    pub last_digest_age_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct VolumeRow {
    /// Start of the UTC hour, Unix seconds.
    pub hour: i64,
    pub event_type: String,
    pub count: i64,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct OutboxRow {
    pub id: String,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub last_error: Option<String>,
    pub locked_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub locked_age_s: Option<f64>,
    pub next_attempt_in_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct DashboardData {
    pub now: String,
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
    pub oldest_pending_age_s: Option<f64>,
    /// Start of the current UTC hour, Unix seconds.
    pub hour_now: i64,
    #[serde(default)]
    pub volume: Vec<VolumeRow>,
    #[serde(default)]
    pub dead_total: i64,
    #[serde(default)]
    pub dead: Vec<OutboxRow>,
    #[serde(default)]
    pub stuck_total: i64,
    #[serde(default)]
    pub stuck: Vec<OutboxRow>,
    #[serde(default)]
    pub failed: Vec<OutboxRow>,
}

/// Whether `s` is a UUID in its canonical text form (what the outbox ids are).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_has_no_unformatted_placeholders_and_one_parameter() {
        for sql in [health_sql(), metrics_sql(), dashboard_sql()] {
            assert!(sql.contains("$1::text") && !sql.contains("$2"), "{sql}");
        }
        let sql = dashboard_sql();
        assert!(!sql.contains("{}") || sql.contains("'{}'::jsonb"), "{sql}");
        assert!(!sql.contains("{OLDEST") && !sql.contains("{STUCK"), "{sql}");
        assert!(sql.starts_with("SELECT jsonb_build_object("));
        assert!(dashboard_sql().contains("integration.event_volume_hourly"));
        assert!(!dashboard_sql().contains("outbox_stats()"));
        assert!(!dashboard_sql().contains("integration.event_log"));
    }

    #[test]
    fn snapshots_decode_from_the_sql_shapes() {
        let h: HealthData = serde_json::from_str(
            r#"{"counts":{"pending":2,"dead":1},"oldest_pending_age_s":null,"stuck_processing":0}"#,
        )
        .unwrap();
        assert_eq!(h.counts["pending"], 2);
        assert_eq!(h.oldest_pending_age_s, None);
        let d: DashboardData = serde_json::from_str(
            r#"{"now":"2026-11-26 10:00:00 UTC","counts":{},"oldest_pending_age_s":1.5,
                "hour_now":1795600800,"volume":[],"dead_total":0,"dead":[],"stuck_total":0,
                "stuck":[],"failed":[]}"#,
        )
        .unwrap();
        assert_eq!(d.hour_now, 1_795_600_800);
    }

    #[test]
    fn uuids_are_recognised_strictly() {
        assert!(is_uuid("4d0c2a6e-1b2c-4d5e-8f90-a1b2c3d4e5f6"));
        assert!(!is_uuid("4d0c2a6e-1b2c-4d5e-8f90-a1b2c3d4e5f"));
        assert!(!is_uuid("4d0c2a6e11b2c-4d5e-8f90-a1b2c3d4e5f6"));
        assert!(!is_uuid("'; DROP TABLE x; --"));
    }
}
