//! Replay by filter, with a dry run (SPEC §12). An operator selects events (type pattern,
//! aggregate, time window, status, handler), sees what a replay would do to each — the
//! side effects the deliveries ledger records (skipped) and those that would run — and
//! only then executes it, in bounded batches that can be interrupted and resumed.
//!
//! The queue's side lives in `migrations/20261207000600_replay.sql` (`replay_page`,
//! `replay_summary`, `replay_begin`, `replay_step`, `recent_replays`); this crate checks
//! the filter, makes each event's plan and drives the steps. It knows nothing of Spin:
//! `ipai replay`, the `/ops` replay page and MCP's `replay_preview` share it through
//! [`ipai_core::db::Database`].

pub mod dry_run;
pub mod filter;
mod render;

pub use dry_run::EventPlan;
pub use filter::{redo_kinds, Filter, FilterError, FilterInput, REDO_KINDS};
pub use render::{render_text, status_counts};

use ipai_core::db::{Database, DbError, Param};
pub use ipai_effects::plan::Settings;
use serde::Serialize;
use serde_json::{json, Value};

/// A page of the matching events (or, with `followers` true, of their followers), with
/// their ledger entries: `(filter, after_seq, limit, followers)`.
pub const PAGE_SQL: &str = "SELECT integration.replay_page($1::text::jsonb, $2::int8, \
    $3::int8::int4, $4::text::boolean)";
/// `{"matched", "followers", "by_status"}`: `(filter)`.
pub const SUMMARY_SQL: &str = "SELECT integration.replay_summary($1::text::jsonb)";
/// Starts or resumes a replay: `(by, via, filter, redo kinds as a JSON array)`.
pub const BEGIN_SQL: &str = "SELECT integration.replay_begin($1::text, $2::text, \
    $3::text::jsonb, ARRAY(SELECT jsonb_array_elements_text($4::text::jsonb)))";
/// Requeues the next batch of a replay: `(replay, batch)`.
pub const STEP_SQL: &str = "SELECT integration.replay_step($1::int8, $2::int8::int4)";
/// The audit, newest first: `(limit)`.
pub const RECENT_SQL: &str = "SELECT integration.recent_replays($1::int8::int4)";

/// Events fetched per page of the dry run.
pub const PAGE_SIZE: i64 = 10_000;
/// Events requeued per step (one short transaction each).
pub const STEP_SIZE: i64 = 500;

/// What a replay would do (or did, with `executed`).
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub matched: i64,
    pub followers: i64,
    pub by_status: Value,
    /// The planned events in seq order (at most the `detail` asked for).
    pub events: Vec<EventPlan>,
    /// Effects that would run / be skipped, summed over the listed events.
    pub runs: usize,
    pub skips: usize,
}

impl Preview {
    /// The counts of [`SUMMARY_SQL`]'s answer, before any event is planned.
    pub fn from_summary(summary: &Value) -> Preview {
        Preview {
            matched: summary["matched"].as_i64().unwrap_or_default(),
            followers: summary["followers"].as_i64().unwrap_or_default(),
            by_status: summary["by_status"].clone(),
            events: Vec::new(),
            runs: 0,
            skips: 0,
        }
    }

    /// Plans one page of [`PAGE_SQL`]'s rows (in seq order) and appends them.
    pub fn plan_page(&mut self, rows: Vec<Value>, redo: &[String], settings: &Settings) {
        self.events.reserve(rows.len());
        for r in rows {
            let e = dry_run::plan_event(r, redo, settings);
            self.runs += e.run.len();
            self.skips += e.skip.len();
            self.events.push(e);
        }
    }

    /// Whether every matched and following event is listed.
    pub fn complete(&self) -> bool {
        self.events.len() as i64 >= self.matched + self.followers
    }

    /// SPEC §12's JSON: `{"matched", "executed", "events": [{"id", "event_type",
    /// "status", "skip", "run"}]}`, with the followers, the counts per status and, when
    /// executed, what the execution did. Serializable as it is (`ipai replay --json`
    /// streams it), or as a [`Value`] with [`Preview::to_json`].
    pub fn json_view<'a>(&'a self, executed: Option<&Outcome>) -> PreviewJson<'a> {
        PreviewJson {
            matched: self.matched,
            followers: self.followers,
            by_status: &self.by_status,
            executed: executed.is_some(),
            listed: self.events.len(),
            effects: EffectCounts {
                run: self.runs,
                skip: self.skips,
            },
            replay: executed.map(Outcome::to_json),
            events: &self.events,
        }
    }

    /// [`Preview::json_view`] as a [`Value`].
    pub fn to_json(&self, executed: Option<&Outcome>) -> Value {
        serde_json::to_value(self.json_view(executed)).unwrap_or_default()
    }
}

/// The plan's JSON (see [`Preview::json_view`]); the events last, so a reader of the
/// stream has the counts first.
#[derive(Debug, Serialize)]
pub struct PreviewJson<'a> {
    pub matched: i64,
    pub followers: i64,
    pub by_status: &'a Value,
    pub executed: bool,
    pub listed: usize,
    pub effects: EffectCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Value>,
    pub events: &'a [EventPlan],
}

/// Effects that would run / be skipped.
#[derive(Debug, Serialize)]
pub struct EffectCounts {
    pub run: usize,
    pub skip: usize,
}

/// [`PAGE_SQL`]'s parameters: the page of `filter`'s matches (or, with `followers`, of
/// their followers) after seq `after`, at most `limit` rows.
pub fn page_params(filter: &Filter, after: i64, limit: i64, followers: bool) -> Vec<Param> {
    vec![
        Param::Json(filter.to_json().clone()),
        Param::Int(after),
        Param::Int(limit),
        Param::Text(followers.to_string()),
    ]
}

/// The seq after which the next page starts: the last row's.
pub fn last_seq(rows: &[Value]) -> Option<i64> {
    rows.last().and_then(|r| r["seq"].as_i64())
}

/// Why a replay could not be planned or executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayError {
    /// The filter or the redo kinds were refused (a 400 / exit 2).
    Invalid(FilterError),
    /// The database failed (a 503 / exit 1).
    Database(DbError),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Invalid(e) => write!(f, "{e}"),
            ReplayError::Database(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<DbError> for ReplayError {
    fn from(e: DbError) -> Self {
        ReplayError::Database(e)
    }
}

impl From<FilterError> for ReplayError {
    fn from(e: FilterError) -> Self {
        ReplayError::Invalid(e)
    }
}

fn query(db: &mut dyn Database, sql: &str, params: &[Param]) -> Result<Value, DbError> {
    db.query_value(sql, params)?
        .ok_or_else(|| DbError::Failed(format!("no answer from {sql}")))
}

/// The dry run: the counts, and the plan of the first `detail` events (all of them with
/// `None`) in seq order. Reads only.
pub fn preview(
    db: &mut dyn Database,
    filter: &Filter,
    redo: &[String],
    settings: &Settings,
    detail: Option<usize>,
) -> Result<Preview, ReplayError> {
    let summary = query(db, SUMMARY_SQL, &[Param::Json(filter.to_json().clone())])?;
    let mut p = Preview::from_summary(&summary);
    let wanted = detail.unwrap_or(usize::MAX);
    // The matched events in seq order, then their followers in seq order.
    for followers in [false, true] {
        if followers && p.followers == 0 {
            break;
        }
        let mut after = 0i64;
        while p.events.len() < wanted {
            let limit = PAGE_SIZE.min((wanted - p.events.len()).min(i64::MAX as usize) as i64);
            let page = query(db, PAGE_SQL, &page_params(filter, after, limit, followers))?;
            let rows = match page {
                Value::Array(rows) => rows,
                _ => Vec::new(),
            };
            let got = rows.len() as i64;
            after = last_seq(&rows).unwrap_or(after);
            p.plan_page(rows, redo, settings);
            if got < limit {
                break;
            }
        }
    }
    Ok(p)
}

/// What an execution did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub replay: i64,
    pub resumed: bool,
    pub matched: i64,
    pub followers: i64,
    pub requeued: i64,
    pub redone: i64,
    pub remaining: i64,
    pub finished: bool,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        json!({"id": self.replay, "resumed": self.resumed, "matched": self.matched,
               "followers": self.followers, "requeued": self.requeued,
               "redone": self.redone, "remaining": self.remaining,
               "finished": self.finished})
    }
}

/// Who asked for a replay, for the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cli,
    Ops,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::Ops => "ops",
        }
    }
}

/// Begins (or resumes: an unfinished replay with the same filter and redo kinds) and
/// steps a replay until it is finished, `STEP_SIZE` events a step; `after_step` sees each
/// step's progress and may stop early by returning false (the replay stays resumable).
pub fn execute(
    db: &mut dyn Database,
    by: &str,
    via: Via,
    filter: &Filter,
    redo: &[String],
    after_step: &mut dyn FnMut(&Outcome) -> bool,
) -> Result<Outcome, ReplayError> {
    let begun = query(
        db,
        BEGIN_SQL,
        &[
            Param::Text(by.to_string()),
            Param::Text(via.as_str().to_string()),
            Param::Json(filter.to_json().clone()),
            Param::Json(json!(redo)),
        ],
    )?;
    let int = |v: &Value, k: &str| v[k].as_i64().unwrap_or_default();
    let mut o = Outcome {
        replay: int(&begun, "replay"),
        resumed: begun["resumed"].as_bool().unwrap_or(false),
        matched: int(&begun, "matched"),
        followers: int(&begun, "followers"),
        remaining: int(&begun, "remaining"),
        ..Outcome::default()
    };
    loop {
        let step = query(db, STEP_SQL, &[Param::Int(o.replay), Param::Int(STEP_SIZE)])?;
        o.requeued += int(&step, "requeued");
        o.redone += int(&step, "redone");
        o.remaining = int(&step, "remaining");
        o.finished = step["finished"].as_bool().unwrap_or(false);
        if o.finished || int(&step, "processed") == 0 || !after_step(&o) {
            return Ok(o);
        }
    }
}

/// The audit, newest first.
pub fn recent(db: &mut dyn Database, limit: i64) -> Result<Value, DbError> {
    query(db, RECENT_SQL, &[Param::Int(limit)])
}
