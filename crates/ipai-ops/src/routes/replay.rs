//! `GET`/`POST /ops/replay` (SPEC §12, issue #38): replay by filter from the dashboard.
//! GET shows the filter form and, once a filter is given, the dry run (the counts and the
//! first events' plans) with a confirm button; POST executes that replay; below both, the
//! audit of recent replays. Its own file because it is the dashboard's second write: the
//! same origin and CSRF checks as the requeue button guard it, and the filter is checked
//! before any SQL. The replay itself is `ipai_replay`'s (the CLI shares it); the HTML is
//! `replay_page`.

use super::replay_page::{self, Page};
use crate::{auth, csrf, head_strip, html, ApiError, Config, Database, Request, Response};
use ipai_core::log;
use ipai_replay::{Filter, FilterError, FilterInput, Outcome, ReplayError, Via};
use serde_json::{json, Value};

/// The route.
pub(crate) const PATH: &str = "/ops/replay";
/// Events whose plan the page lists (the counts cover them all).
pub(crate) const LISTED: usize = 200;
/// Replays the audit table shows, newest first.
pub(crate) const AUDIT_ROWS: i64 = 20;
/// Steps (of `ipai_replay::STEP_SIZE` events each) one POST runs at most, so a request
/// stays short; a longer replay stays unfinished in the audit, and confirming the same
/// filter again resumes it where it stopped.
pub(crate) const MAX_STEPS: usize = 40;

/// The form's fields, in the order the page shows them: the filter's, then the effect
/// kinds to perform again.
pub(crate) const FIELDS: [&str; 7] = [
    "type",
    "aggregate",
    "since",
    "until",
    "status",
    "target",
    "redo_effects",
];

/// The form as typed: the query of a GET, the body of a POST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Form {
    pub input: FilterInput,
    pub redo_effects: Option<String>,
    /// Whether any field was sent (a GET then shows the plan).
    pub given: bool,
}

impl Form {
    /// The fields of a form-encoded text (the first of a repeated field counts).
    pub(crate) fn parse(encoded: &[u8]) -> Self {
        let mut f = Form::default();
        for (k, v) in form_urlencoded::parse(encoded) {
            let slot = match k.as_ref() {
                "type" => &mut f.input.event_type,
                "aggregate" => &mut f.input.aggregate,
                "since" => &mut f.input.since,
                "until" => &mut f.input.until,
                "status" => &mut f.input.status,
                "target" => &mut f.input.target,
                "redo_effects" => &mut f.redo_effects,
                _ => continue,
            };
            f.given = true;
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        f
    }

    /// A field's text as typed ("" when absent).
    pub(crate) fn value(&self, name: &str) -> &str {
        let v = match name {
            "type" => &self.input.event_type,
            "aggregate" => &self.input.aggregate,
            "since" => &self.input.since,
            "until" => &self.input.until,
            "status" => &self.input.status,
            "target" => &self.input.target,
            "redo_effects" => &self.redo_effects,
            _ => return "",
        };
        v.as_deref().unwrap_or_default()
    }

    /// The checked filter and effect kinds, or the first wrong field.
    fn check(&self) -> Result<(Filter, Vec<String>), FilterError> {
        let filter = self.input.check()?;
        let redo = ipai_replay::redo_kinds(self.redo_effects.as_deref())?;
        Ok((filter, redo))
    }
}

/// The replay a redirect after a POST names (`?done=<id>`; digits only).
fn done_id(query: &str) -> Option<i64> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "done")
        .and_then(|(_, v)| {
            (!v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse().ok())
                .flatten()
        })
}

/// 503 (retry after 5 s) for a database that failed the page; logged by the caller.
fn unavailable(req: &Request, message: &str) -> Response {
    if req.wants_json() {
        ApiError::database_unavailable(message)
            .retry_after(5)
            .into()
    } else {
        Response::html(503, html::message_page("Database unreachable", message))
            .with("retry-after", "5")
    }
}

/// 400 for a refused filter, JSON when the client wants it.
fn refused_json(e: &FilterError) -> Response {
    ApiError::new(400, "invalid_filter", e.to_string()).into()
}

/// `GET`/`HEAD /ops/replay` (Basic auth already checked): the form, the plan when a
/// filter is given, the audit; a session cookie when the browser has none (the confirm
/// form's token is bound to it, as the dashboard's).
pub(crate) fn page(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    let password = cfg.ops_password.as_deref().unwrap_or_default();
    let existing = csrf::session_from_cookie(req.header("cookie"));
    let session = existing
        .clone()
        .unwrap_or_else(|| csrf::new_session(&req.entropy));
    let token = csrf::token(password, &session, req.now_unix);
    let form = Form::parse(req.query.as_bytes());
    let checked = form.given.then(|| form.check()).transpose();
    let r = match checked {
        // A refused filter: the form again with the sentence, before any SQL.
        Err(e) if req.wants_json() => refused_json(&e),
        Err(e) => Response::html(
            400,
            replay_page::render(&Page {
                form: &form,
                csrf_token: &token,
                refused: Some(&e),
                plan: None,
                audit: None,
                done: None,
            }),
        ),
        Ok(checked) => planned(req, db, &form, checked, &token),
    };
    let r = if existing.is_none() {
        r.with("set-cookie", csrf::session_cookie(&session, req.is_https()))
    } else {
        r
    };
    head_strip(req, r)
}

/// The page for a checked filter (or none): the dry run, then the audit.
fn planned(
    req: &Request,
    db: &mut dyn Database,
    form: &Form,
    checked: Option<(Filter, Vec<String>)>,
    token: &str,
) -> Response {
    let settings = ipai_replay::dry_run::settings(&|_| None);
    let plan = match &checked {
        None => None,
        Some((filter, redo)) => {
            match ipai_replay::preview(db, filter, redo, &settings, Some(LISTED)) {
                Ok(p) => Some(p),
                Err(ReplayError::Invalid(e)) if req.wants_json() => return refused_json(&e),
                Err(e) => {
                    log::error("ops", None, format_args!("/ops/replay: plan: {e}"));
                    return unavailable(
                        req,
                        "the replay plan cannot be read from the database; try again shortly",
                    );
                }
            }
        }
    };
    let audit = match ipai_replay::recent(db, AUDIT_ROWS) {
        Ok(v) => v.as_array().cloned().unwrap_or_default(),
        Err(e) => {
            log::error("ops", None, format_args!("/ops/replay: audit: {e}"));
            return unavailable(
                req,
                "the replay audit cannot be read from the database; try again shortly",
            );
        }
    };
    if req.wants_json() {
        return Response::json(
            200,
            &json!({"plan": plan.as_ref().map(|p| p.to_json(None)), "replays": audit}),
        );
    }
    Response::html(
        200,
        replay_page::render(&Page {
            form,
            csrf_token: token,
            refused: None,
            plan: plan.as_ref(),
            audit: Some(&audit),
            done: done_id(&req.query),
        }),
    )
}

/// `POST /ops/replay` (Basic auth already checked): origin and CSRF token as the requeue
/// button's, the filter, then the replay in at most [`MAX_STEPS`] steps, audited as
/// `ops@<client address>`; a 303 to the page naming the replay, or its outcome as JSON.
pub(crate) fn execute(req: &Request, cfg: &Config, db: &mut dyn Database) -> Response {
    if let Some(refusal) = super::refuse_forged_form(req, cfg) {
        return refusal;
    }
    let form = Form::parse(&req.body);
    let (filter, redo) = match form.check() {
        Ok(c) => c,
        Err(e) => return refused_post(req, &e),
    };
    let by = format!(
        "ops@{}",
        auth::client_address(req.header("spin-client-addr"))
    );
    let mut steps = 0usize;
    let mut within_budget = |_: &Outcome| {
        steps += 1;
        steps < MAX_STEPS
    };
    match ipai_replay::execute(db, &by, Via::Ops, &filter, &redo, &mut within_budget) {
        Ok(o) => {
            log::info(
                "ops",
                None,
                format_args!(
                    "replay #{}{} by {by}: filter {}, redo [{}]: {} requeued, {} effects reopened, {} left",
                    o.replay,
                    if o.resumed { " (resumed)" } else { "" },
                    filter.to_json(),
                    redo.join(","),
                    o.requeued,
                    o.redone,
                    o.remaining
                ),
            );
            if req.wants_json() {
                Response::json(200, &o.to_json())
            } else {
                Response::new(303, "text/plain; charset=utf-8", "See Other")
                    .with("location", format!("{PATH}?done={}", o.replay))
            }
        }
        Err(ReplayError::Invalid(e)) => refused_post(req, &e),
        Err(ReplayError::Database(e)) => {
            log::error("ops", None, format_args!("replay by {by}: {e}"));
            ApiError::database_unavailable(
                "could not replay: database error; what was requeued stays requeued, \
                 confirm the same filter again to resume",
            )
            .retry_after(5)
            .into()
        }
    }
}

/// 400 for a confirm whose fields were refused (a hand-made POST: the page's own form
/// carries fields that passed).
fn refused_post(req: &Request, e: &FilterError) -> Response {
    if req.wants_json() {
        refused_json(e)
    } else {
        Response::html(400, html::message_page("Filter refused", &e.to_string()))
    }
}

/// The audit row of `id` among `rows`, if listed.
pub(crate) fn audit_row(rows: &[Value], id: i64) -> Option<&Value> {
    rows.iter().find(|r| r["id"].as_i64() == Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_its_fields_and_ignores_others() {
        let f = Form::parse(b"type=expense.*&status=dead&redo_effects=email&csrf=x&type=other");
        assert!(f.given);
        assert_eq!(f.value("type"), "expense.*");
        assert_eq!(f.value("status"), "dead");
        assert_eq!(f.value("redo_effects"), "email");
        assert_eq!(f.value("aggregate"), "");
        assert!(!Form::parse(b"done=3&csrf=x").given);
        assert!(Form::parse(b"type=").given, "an empty form is a filter too");
    }

    #[test]
    fn done_ids_are_digits_only() {
        assert_eq!(done_id("done=12"), Some(12));
        assert_eq!(done_id("done=%3Cb%3E"), None);
        assert_eq!(done_id("done=-1"), None);
        assert_eq!(done_id("x=1"), None);
    }
}
