//! The read-only tools: their definitions (input and output JSON Schemas), the SQL each
//! call runs (as a [`Query`]), and how a database result becomes a tool result.
//!
//! Every statement returns exactly one row (aggregates and scalar subqueries only): under
//! Spin 4.0.0–4.0.2 a `query` that returns no rows never completes (spinframework/spin#3671).
//!
//! This file holds the limits, the tool type and its argument checks, and the dispatch
//! from a tool to its query; the rest is split by concern: `catalog` (the tool list,
//! descriptions and JSON Schemas), `sql` (the statement each tool builds) and `render`
//! (turning the row into the tool result).

mod catalog;
mod render;
mod sql;

pub use catalog::tools;
// The unit tests (`crate::tests`) reach these through their path before the split.
#[cfg(test)]
pub(crate) use sql::{containment_candidates, containment_is_exact};

use crate::args::{self, ArgSpec, Args};
use crate::sql::Query;
use crate::{Database, DbError};
use catalog::output_schema;
use ipai_core::taxonomy::{Domain, ROUTES};
use serde_json::{Map, Value};
use sql::{events_query, get_event_query, outbox_health_query};

/// Default and maximum number of events a query tool returns.
pub const DEFAULT_EVENT_LIMIT: i64 = 50;
pub const MAX_EVENT_LIMIT: i64 = 500;
/// Default and maximum number of dead letters `outbox_health` lists.
pub const DEFAULT_DEAD_LETTER_LIMIT: i64 = 20;
pub const MAX_DEAD_LETTER_LIMIT: i64 = 100;
/// Payloads larger than this (as JSON text) are replaced by a marker in event lists;
/// `get_event` always returns the whole payload.
pub const MAX_LISTED_PAYLOAD_BYTES: i64 = 65_536;
/// At most this many deliveries, external ids and history entries per `get_event`.
pub const MAX_EVENT_DETAIL_ROWS: i64 = 100;
pub const MAX_AGGREGATE_HISTORY: i64 = 50;
/// The query tools' `total_matches` and `summary` cover at most the newest this many
/// matching events: the limit is in the SQL (`LIMIT` on the index order), so a broad
/// query over a long log reads a bounded number of rows. `matches_capped` says when
/// more events match.
pub const MAX_SUMMARY_EVENTS: i64 = 10_000;

/// Which tool, with what it needs to build its query.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Events,
    Domain(DomainTool),
    GetEvent,
    OutboxHealth,
    /// `list_alerts` (issue #19, `crate::alerts_tool`).
    ListAlerts,
    /// `reconcile_status` (issue #37, `crate::reconcile_tool`).
    ReconcileStatus,
    /// `replay_preview` (issue #38, `crate::replay_tool`): more than one statement.
    ReplayPreview,
}

/// A per-domain query tool (`query_expense_events`, …).
#[derive(Debug, Clone, Copy)]
struct DomainTool {
    domain: &'static str,
    /// Payload fields the summary needs, extracted once per matching event.
    extract: &'static str,
    /// The `summary` object, over the CTEs `matched` and `latest`; `{overdue}` is the
    /// placeholder of the domain's overdue event type.
    summary: &'static str,
}

/// A tool as listed by `tools/list`.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: String,
    args: Vec<ArgSpec>,
    plan: Plan,
}

impl ToolDef {
    pub fn input_schema(&self) -> Value {
        args::input_schema(&self.args)
    }

    pub fn output_schema(&self) -> Value {
        output_schema(self.plan)
    }

    pub(crate) fn validate(&self, arguments: &Map<String, Value>) -> Result<Args, Vec<String>> {
        let args = args::validate(&self.args, arguments)?;
        let mut problems = Vec::new();
        if let (Some(from), Some(to)) = (args.date("date_from"), args.date("date_to")) {
            if from.date_only && to.date_only && from.text > to.text {
                problems.push("'date_from' is after 'date_to'".to_string());
            }
        }
        match self.plan {
            Plan::Events => {
                let field = args.text("payload_field").is_some();
                let value = args.json("payload_value").is_some();
                if field != value {
                    problems.push(
                        "'payload_field' and 'payload_value' must be given together".to_string(),
                    );
                }
            }
            Plan::GetEvent => {
                let n = usize::from(args.text("id").is_some())
                    + usize::from(args.text("idempotency_key").is_some());
                if n != 1 {
                    problems.push("give exactly one of 'id' and 'idempotency_key'".to_string());
                }
            }
            Plan::ReplayPreview => {
                if let Err(p) = crate::replay_tool::check(&args) {
                    problems.push(p);
                }
            }
            _ => {}
        }
        if problems.is_empty() {
            Ok(args)
        } else {
            Err(problems)
        }
    }

    /// The query for a validated call (`replay_preview`: the first of its statements).
    pub(crate) fn query(&self, args: &Args) -> Query {
        match self.plan {
            Plan::Events => events_query(args, None),
            Plan::Domain(d) => events_query(args, Some(d)),
            Plan::GetEvent => get_event_query(args),
            Plan::OutboxHealth => outbox_health_query(args),
            Plan::ListAlerts => crate::alerts_tool::query(args),
            Plan::ReconcileStatus => crate::reconcile_tool::query(args),
            Plan::ReplayPreview => crate::replay_tool::query(args),
        }
    }

    /// Runs a validated call on the database: the row [`ToolDef::shape`] turns into the
    /// result. One statement for every tool but `replay_preview`, whose dry run reads the
    /// counts and then pages of events.
    pub(crate) fn fetch(
        &self,
        args: &Args,
        db: &mut dyn Database,
    ) -> Result<Option<Value>, DbError> {
        match self.plan {
            Plan::ReplayPreview => crate::replay_tool::fetch(db, args),
            _ => crate::run_query(db, &self.query(args)),
        }
    }
}

/// Looks a tool up by name.
pub fn find(name: &str) -> Option<ToolDef> {
    tools().into_iter().find(|t| t.name == name)
}

/// The statement a `tools/call` of `name` with `arguments` runs (after the same argument
/// checks), for EXPLAIN in tests and benchmarks. `None` for an unknown tool or arguments
/// the call would refuse.
pub fn query_for(name: &str, arguments: &Value) -> Option<Query> {
    let tool = find(name)?;
    let args = tool.validate(arguments.as_object()?).ok()?;
    Some(tool.query(&args))
}

fn domain(name: &str) -> &'static Domain {
    ROUTES.iter().find(|d| d.name == name).unwrap_or(&ROUTES[0])
}
