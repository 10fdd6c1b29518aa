//! Finance-task wording and planning (SPEC §7, `finance_task.*`), split out of `plan` so
//! each domain's messages sit apart from the dispatch table: the reviewer's request and the
//! overdue alerts, escalated to the Finance Director past [`DIRECTOR_AFTER_DAYS`].

use super::{need, Effect, Found, Plan, PlanError, Settings, REVIEW_TARGET};
use crate::dashboard;
use crate::fields;
use crate::mattermost;
use crate::odoo::{self, Person};
use ipai_core::dispatch::EventEnvelope;
use serde_json::{json, Value};

fn task_title(event: &EventEnvelope) -> String {
    let p = &event.payload;
    let name = fields::text(p, "name").unwrap_or_else(|| format!("Task {}", event.aggregate_id));
    match fields::text(p, "project") {
        Some(pr) => format!("{name} ({pr})"),
        None => name,
    }
}

fn task_fields(event: &EventEnvelope) -> Vec<Value> {
    let p = &event.payload;
    let mut f = Vec::new();
    if let (Some(form), Some(period)) = (fields::text(p, "bir_form"), fields::text(p, "period")) {
        f.push(mattermost::field(
            "BIR form",
            &format!("{form} · {period}"),
            true,
        ));
    }
    if let Some(d) = fields::date(p, "deadline") {
        f.push(mattermost::field("Deadline", &d, true));
    }
    if let Some(st) = fields::text(p, "stage") {
        f.push(mattermost::field("Stage", &st, true));
    }
    f
}

pub(super) fn finance_submitted(
    event: &EventEnvelope,
    s: &Settings,
    found: &Found,
    plan: &mut Plan,
) {
    plan.statements.extend(dashboard::ppm_task(event));
    let title = task_title(event);
    let task_id =
        fields::text(&event.payload, "task_id").unwrap_or_else(|| event.aggregate_id.clone());
    let mut attachment = json!({
        "fallback": format!("Review requested: {title}"),
        "color": mattermost::COLOR_INFO,
        "title": format!("Review requested: {title}"),
        "fields": task_fields(event),
    });
    match &s.odoo_url {
        Some(url) => {
            let link = odoo::record_url(url, "project.task", &task_id);
            attachment["title_link"] = json!(link);
            attachment["text"] = json!(format!("[Open the task in Odoo]({link})"));
        }
        None => plan
            .notes
            .push("odoo_url is not set: review message without a link".into()),
    }
    let (channel, text) = match found.person.as_ref().and_then(Person::handle) {
        Some(h) => (
            Some(format!("@{h}")),
            format!("@{h}, a finance task is ready for your review."),
        ),
        None => {
            plan.notes
                .push("no reviewer found: posted to the finance channel".into());
            (
                s.finance_channel.clone(),
                "A finance task is ready for review (no reviewer is set).".to_string(),
            )
        }
    };
    plan.effects.push(Effect::Mattermost {
        target: REVIEW_TARGET.into(),
        body: mattermost::message(channel.as_deref(), &text, attachment),
    });
}

/// Over this many days overdue, the Finance Director is alerted too.
pub const DIRECTOR_AFTER_DAYS: i64 = 3;

pub(super) fn finance_overdue(
    event: &EventEnvelope,
    s: &Settings,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let p = &event.payload;
    let days = fields::int(p, "days_overdue").unwrap_or(1).max(1);
    let director = if days > DIRECTOR_AFTER_DAYS {
        Some(need(
            &s.finance_director_email,
            "finance_director_email",
            &format!("finance_task.overdue over {DIRECTOR_AFTER_DAYS} days"),
        )?)
    } else {
        None
    };
    plan.statements.extend(dashboard::ppm_task(event));
    let title = task_title(event);
    let day_s = if days == 1 { "day" } else { "days" };
    let mut attachment = json!({
        "fallback": format!("Overdue {days} {day_s}: {title}"),
        "color": if director.is_some() { mattermost::COLOR_BAD } else { mattermost::COLOR_WARN },
        "title": format!("Overdue {days} {day_s}: {title}"),
        "fields": task_fields(event),
    });
    if let Some(url) = &s.odoo_url {
        let task_id = fields::text(p, "task_id").unwrap_or_else(|| event.aggregate_id.clone());
        attachment["title_link"] = json!(odoo::record_url(url, "project.task", &task_id));
    }
    let responsible: Vec<String> = fields::list(p, "responsible_emails")
        .iter()
        .filter_map(|e| fields::handle_of_email(e))
        .collect();
    if responsible.is_empty() {
        plan.notes
            .push("no responsible_emails: alert posted to the finance channel".into());
        plan.effects.push(Effect::Mattermost {
            target: "finance-channel".into(),
            body: mattermost::message(
                s.finance_channel.as_deref(),
                "A finance task is overdue and has no responsible user.",
                attachment.clone(),
            ),
        });
    }
    for h in &responsible {
        plan.effects.push(Effect::Mattermost {
            target: format!("@{h}"),
            body: mattermost::message(
                Some(&format!("@{h}")),
                &format!("@{h}, a finance task you are responsible for is overdue."),
                attachment.clone(),
            ),
        });
    }
    if let Some(director) = director {
        match fields::handle_of_email(director) {
            Some(h) => {
                let mut esc = attachment.clone();
                esc["text"] = json!(format!(
                    "Escalated: more than {DIRECTOR_AFTER_DAYS} days overdue. Responsible: {}",
                    if responsible.is_empty() {
                        "nobody".to_string()
                    } else {
                        responsible
                            .iter()
                            .map(|r| format!("@{r}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
                plan.effects.push(Effect::Mattermost {
                    target: format!("director:@{h}"),
                    body: mattermost::message(
                        Some(&format!("@{h}")),
                        &format!("@{h}, escalation: a finance task is {days} days overdue."),
                        esc,
                    ),
                });
            }
            None => plan.notes.push(
                "finance_director_email is not an email address: Finance Director not alerted"
                    .into(),
            ),
        }
    }
    Ok(())
}
