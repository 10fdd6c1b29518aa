//! Which events a replay selects (SPEC §12), checked before any SQL: the same fields come
//! from `ipai replay`'s flags, the `/ops` form and MCP's arguments, and each wrong one is
//! refused with a sentence that names it. The checked filter crosses to SQL as the jsonb
//! `integration.replay_matches` reads.

use chrono::{DateTime, FixedOffset};
use ipai_core::taxonomy::{self, ROUTES};
use serde_json::{json, Map, Value};

/// The outbox statuses a replay may select; without `--status`, `dead` and `failed`
/// (a `done` event is replayed only when asked for by name).
pub const STATUSES: &[&str] = &["dead", "failed", "done"];
pub const DEFAULT_STATUSES: &[&str] = &["dead", "failed"];

/// The filter as typed: every field optional, text as the user gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterInput {
    /// Event type pattern: an exact type or `*` wildcards (`expense.*`).
    pub event_type: Option<String>,
    /// An aggregate id (`4011`), or `type/id` (`expense/4011`).
    pub aggregate: Option<String>,
    /// RFC 3339; events stored at or after.
    pub since: Option<String>,
    /// RFC 3339; events stored before.
    pub until: Option<String>,
    /// `dead`, `failed` or `done`, or a comma list of them.
    pub status: Option<String>,
    /// A handler: its domain (`expense`) or component (`expense-handler`).
    pub target: Option<String>,
}

/// A filter that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    json: Value,
}

/// Why a filter was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for FilterError {}

fn refuse(field: &'static str, problem: impl Into<String>) -> FilterError {
    FilterError {
        field,
        problem: problem.into(),
    }
}

/// A field's trimmed text, `None` when absent or blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn time(field: &'static str, v: &str) -> Result<DateTime<FixedOffset>, FilterError> {
    DateTime::parse_from_rfc3339(v).map_err(|e| {
        refuse(
            field,
            format!("{v:?} is not an RFC 3339 time ({e}); e.g. 2026-12-07T08:00:00Z"),
        )
    })
}

/// `expense.*` → `expense.%` (LIKE), with LIKE's own `%`, `_` and `\` taken literally.
fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

impl FilterInput {
    /// Checks every field; the first wrong one is refused.
    pub fn check(&self) -> Result<Filter, FilterError> {
        let mut f = Map::new();
        let statuses: Vec<String> = match given(&self.status) {
            None => DEFAULT_STATUSES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !STATUSES.contains(&s) {
                        return Err(refuse(
                            "status",
                            format!(
                                "{s:?} cannot be replayed: one of {} (pending and processing events are on their way already)",
                                STATUSES.join(", ")
                            ),
                        ));
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_string());
                    }
                }
                out.sort();
                out
            }
        };
        f.insert("statuses".into(), json!(statuses));
        if let Some(t) = given(&self.event_type) {
            if t.len() > 200
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-*".contains(c))
            {
                return Err(refuse(
                    "type",
                    format!("{t:?} is not an event type pattern (letters, digits, '.', '_', '-' and '*' wildcards, e.g. expense.*)"),
                ));
            }
            f.insert("type_like".into(), json!(like_pattern(t)));
        }
        if let Some(a) = given(&self.aggregate) {
            if a.len() > 200 {
                return Err(refuse("aggregate", "longer than 200 characters"));
            }
            match a.split_once('/') {
                Some((ty, id)) if !ty.is_empty() && !id.is_empty() => {
                    f.insert("aggregate_type".into(), json!(ty));
                    f.insert("aggregate_id".into(), json!(id));
                }
                Some(_) => {
                    return Err(refuse(
                        "aggregate",
                        format!("{a:?}: give an id (4011) or type/id (expense/4011)"),
                    ))
                }
                None => {
                    f.insert("aggregate_id".into(), json!(a));
                }
            }
        }
        let since = given(&self.since).map(|s| time("since", s)).transpose()?;
        let until = given(&self.until).map(|s| time("until", s)).transpose()?;
        if let (Some(s), Some(u)) = (since, until) {
            if s >= u {
                return Err(refuse("until", "must be later than since"));
            }
        }
        if let Some(s) = since {
            f.insert("since".into(), json!(s.to_rfc3339()));
        }
        if let Some(u) = until {
            f.insert("until".into(), json!(u.to_rfc3339()));
        }
        if let Some(t) = given(&self.target) {
            let domain = ROUTES
                .iter()
                .find(|d| d.name == t || d.handler == t)
                .ok_or_else(|| {
                    refuse(
                        "target",
                        format!(
                            "{t:?} is no handler: one of {}",
                            ROUTES.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?;
            f.insert("event_types".into(), json!(domain.event_types));
        }
        Ok(Filter {
            json: Value::Object(f),
        })
    }
}

impl Filter {
    /// The jsonb `integration.replay_*` functions take (and the audit records).
    pub fn to_json(&self) -> &Value {
        &self.json
    }
}

/// The effect kinds `--redo-effects` may name: the ledger's channels a handler performs
/// (approval write-backs to Odoo are the approvals component's, decided by a click).
pub const REDO_KINDS: &[&str] = &[
    ipai_effects::plan::MATTERMOST,
    ipai_effects::plan::EMAIL,
    ipai_effects::plan::CALENDAR,
];

/// `mattermost,email` → the kinds, sorted and once each; an unknown one is refused.
pub fn redo_kinds(list: Option<&str>) -> Result<Vec<String>, FilterError> {
    let mut out: Vec<String> = Vec::new();
    for k in list
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        if !REDO_KINDS.contains(&k) {
            return Err(refuse(
                "redo-effects",
                format!("{k:?} is no effect kind: one of {}", REDO_KINDS.join(", ")),
            ));
        }
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// The known event types, for a help text.
pub fn known_event_types() -> Vec<&'static str> {
    taxonomy::all_event_types().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> FilterInput {
        FilterInput::default()
    }

    #[test]
    fn without_fields_dead_and_failed_events_of_every_handler_are_selected() {
        assert_eq!(
            input().check().unwrap().to_json(),
            &json!({"statuses": ["dead", "failed"]})
        );
    }

    #[test]
    fn each_field_becomes_the_sql_filter() {
        let f = FilterInput {
            event_type: Some("expense.*".into()),
            aggregate: Some("expense/4011".into()),
            since: Some("2026-12-07T08:00:00Z".into()),
            until: Some("2026-12-07T18:00:00+08:00".into()),
            status: Some("done, dead,done".into()),
            target: Some("expense-handler".into()),
        }
        .check()
        .unwrap();
        assert_eq!(
            f.to_json(),
            &json!({"statuses": ["dead", "done"], "type_like": "expense.%",
                    "aggregate_type": "expense", "aggregate_id": "4011",
                    "since": "2026-12-07T08:00:00+00:00", "until": "2026-12-07T18:00:00+08:00",
                    "event_types": ["expense.submitted", "expense.approved", "expense.rejected", "expense.paid"]})
        );
        let bare = FilterInput {
            aggregate: Some("4011".into()),
            target: Some("asset".into()),
            ..input()
        }
        .check()
        .unwrap();
        assert_eq!(bare.to_json()["aggregate_id"], "4011");
        assert!(bare.to_json().get("aggregate_type").is_none());
        assert_eq!(bare.to_json()["event_types"][0], "asset.reserved");
    }

    #[test]
    fn like_wildcards_typed_by_the_user_are_taken_literally() {
        assert_eq!(like_pattern("a_b*"), "a\\_b%");
    }

    #[test]
    fn each_wrong_field_is_refused_by_name() {
        let refused = |i: FilterInput| i.check().unwrap_err();
        let e = refused(FilterInput {
            status: Some("pending".into()),
            ..input()
        });
        assert_eq!(e.field, "status");
        assert!(e.problem.contains("on their way"), "{e}");
        assert_eq!(
            refused(FilterInput {
                event_type: Some("expense.'; drop".into()),
                ..input()
            })
            .field,
            "type"
        );
        assert_eq!(
            refused(FilterInput {
                since: Some("yesterday".into()),
                ..input()
            })
            .field,
            "since"
        );
        assert_eq!(
            refused(FilterInput {
                since: Some("2026-12-07T10:00:00Z".into()),
                until: Some("2026-12-07T09:00:00Z".into()),
                ..input()
            })
            .field,
            "until"
        );
        assert_eq!(
            refused(FilterInput {
                target: Some("payroll".into()),
                ..input()
            })
            .field,
            "target"
        );
        assert_eq!(
            refused(FilterInput {
                aggregate: Some("expense/".into()),
                ..input()
            })
            .field,
            "aggregate"
        );
    }

    #[test]
    fn redo_kinds_are_the_handlers_channels() {
        assert_eq!(
            redo_kinds(Some("email, mattermost,email")).unwrap(),
            vec!["email", "mattermost"]
        );
        assert_eq!(redo_kinds(None).unwrap(), Vec::<String>::new());
        assert_eq!(redo_kinds(Some("odoo")).unwrap_err().field, "redo-effects");
    }
}
