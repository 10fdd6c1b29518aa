use super::*;
use crate::approval::Approvers;
use crate::mattermost::{ActionContext, Decision, MattermostUser};
use serde_json::json;

fn ev(event_type: &str, payload: Value) -> EventEnvelope {
    EventEnvelope {
        id: "0b6c3f3e-1111-4a4a-9c9c-000000000001".into(),
        seq: 1,
        event_type: event_type.into(),
        aggregate_type: "x".into(),
        aggregate_id: "1042".into(),
        payload,
        idempotency_key: "k".into(),
        source: "odoo".into(),
        occurred_at: None,
        created_at: "2026-11-24 03:30:01+00".into(),
        attempt: 1,
    }
}

fn settings() -> Settings {
    Settings {
        public_base_url: Some("https://bus.example.com".into()),
        odoo_url: Some("https://odoo.example.com".into()),
        finance_channel: Some("finance".into()),
        it_admin_email: Some("it@example.com".into()),
        finance_director_email: Some("director@example.com".into()),
        action_secret: Some("s3cret".into()),
        approval_expiry_days: None,
        bot_configured: true,
    }
}

const MARIA_ID: &str = "mariasantos000000000000001";

fn account(id: &str, username: &str) -> MattermostUser {
    MattermostUser {
        id: id.into(),
        username: username.into(),
        email: format!("{username}@example.com"),
        active: true,
    }
}

/// Maria Santos, the report's approver, resolved in Mattermost.
fn maria_decides() -> Approvers {
    Approvers {
        users: vec![account(MARIA_ID, "maria.santos")],
        stand_in_reason: None,
    }
}

fn expense_payload() -> Value {
    json!({"expense_id": 1042, "employee_name": "Juan dela Cruz", "employee_code": "E-0042",
           "employee_email": "juan.delacruz@example.com", "amount": 1250.5, "currency": "PHP",
           "description": "Client lunch", "date": "2026-11-20", "category": "Meals",
           "sheet_id": 310, "status": "submit"})
}

fn booking(extra: Value) -> Value {
    let mut p = json!({"booking_id": 501, "asset_id": 12, "asset_name": "Projector", "asset_code": "PRJ-12",
        "employee_name": "Juan", "employee_email": "juan@example.com", "manager_email": "maria@example.com",
        "start": "2026-11-27T01:00:00Z", "end": "2026-11-27T09:00:00Z", "location": "Makati", "status": "reserved"});
    if let (Some(a), Value::Object(b)) = (p.as_object_mut(), extra) {
        a.extend(b);
    }
    p
}

fn task(extra: Value) -> Value {
    let mut p = json!({"task_id": 7001, "name": "BIR 1601-C October", "project": "Close",
        "bir_form": "1601-C", "period": "2026-10", "deadline": "2026-11-10",
        "responsible_emails": ["ana.reyes@example.com", "jose.garcia@example.com"], "reviewer_id": 3,
        "stage": "For Review", "status": "01_in_progress"});
    if let (Some(a), Value::Object(b)) = (p.as_object_mut(), extra) {
        a.extend(b);
    }
    p
}

fn mm(plan: &Plan) -> Vec<(&str, &Value)> {
    plan.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Mattermost { target, body } => Some((target.as_str(), body)),
            _ => None,
        })
        .collect()
}

/// The approval request's direct messages (recipient username, message) and its notice.
fn dms(plan: &Plan) -> (Vec<(&str, &Value)>, Option<&Value>) {
    let direct = plan.effects.iter().find_map(|e| match e {
        Effect::MattermostDirect {
            target,
            messages,
            notice,
        } => {
            assert_eq!(target, APPROVAL_TARGET);
            Some((messages, notice.as_ref()))
        }
        _ => None,
    });
    let Some((messages, notice)) = direct else {
        panic!("no direct messages in {:?}", plan.effects)
    };
    let messages = messages
        .iter()
        .map(|m| (m.username.as_str(), &m.message))
        .collect();
    (messages, notice)
}

fn emails(plan: &Plan) -> Vec<(&str, &Email)> {
    plan.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Email { target, email } => Some((target.as_str(), email)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_event_type_of_the_taxonomy_has_a_plan() {
    for t in ipai_core::taxonomy::all_event_types() {
        let payload = if t.starts_with("expense") {
            expense_payload()
        } else if t.starts_with("asset") {
            booking(json!({"escalation_level": 1, "days_overdue": 1}))
        } else {
            task(json!({"days_overdue": 1}))
        };
        let p = plan(&ev(t, payload), &settings(), &Found::default()).unwrap();
        assert!(p.skip_reason().is_none(), "{t} does nothing: {:?}", p.notes);
    }
}

#[test]
fn expense_submitted_dms_the_approver_with_signed_approve_and_reject_buttons() {
    let e = ev("expense.submitted", expense_payload());
    assert_eq!(
        lookup_for(&e),
        Some((
            Lookup::ExpenseApprover { expense_id: 1042 },
            MATTERMOST,
            APPROVAL_TARGET.to_string()
        ))
    );
    let found = Found {
        report: Some(Report {
            id: 310,
            ..Report::default()
        }),
        report_message_by: None,
        person: Some(Person {
            id: Some(5),
            name: Some("Maria Santos".into()),
            login: Some("maria".into()),
            email: Some("maria.santos@example.com".into()),
        }),
        approvers: maria_decides(),
        employee: Some(account("juandelacruz00000000000002", "juan.delacruz")),
        planned_at: 1_764_000_000,
    };
    let p = plan(&e, &settings(), &found).unwrap();
    // The buttons travel only in the bot's direct message; nothing goes through the webhook.
    assert!(mm(&p).is_empty(), "{:?}", p.effects);
    let (messages, notice) = dms(&p);
    assert_eq!(messages.len(), 1);
    assert!(notice.is_none());
    let Effect::MattermostDirect { messages: m, .. } = &p.effects[0] else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(m[0].user_id, MARIA_ID);
    let (username, body) = messages[0];
    assert_eq!(username, "maria.santos");
    assert!(body.get("channel").is_none(), "{body}");
    assert_eq!(
        body["text"],
        "@maria.santos, an expense is waiting for your approval."
    );
    let att = &body["attachments"][0];
    assert_eq!(
        att["title_link"],
        "https://odoo.example.com/web#id=310&model=hr.expense.sheet&view_type=form"
    );
    let actions = att["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(
        actions[0]["integration"]["url"],
        "https://bus.example.com/mattermost/actions"
    );
    let approve = ActionContext::verify(&actions[0]["integration"]["context"], "s3cret").unwrap();
    assert_eq!(approve.decision, Decision::Approve);
    assert_eq!(
        (approve.sheet_id.as_str(), approve.expense_id.as_str()),
        ("310", "1042")
    );
    assert_eq!(approve.event_id, e.id);
    // Bound to the approver, the employee, the submission and an expiry 7 days on.
    assert_eq!(approve.deciders.user_ids, vec![MARIA_ID.to_string()]);
    assert_eq!(approve.deciders.usernames, vec!["maria.santos".to_string()]);
    assert_eq!(approve.employee_user_id, "juandelacruz00000000000002");
    assert_eq!(approve.employee_email, "juan.delacruz@example.com");
    assert_eq!(approve.expires_at, 1_764_000_000 + 7 * 86_400);
    assert_eq!(approve.submitted_at, "");
    let refuse = ActionContext::verify(&actions[1]["integration"]["context"], "s3cret").unwrap();
    assert_eq!(refuse.decision, Decision::Refuse);
    assert!(att["fields"].to_string().contains("PHP 1,250.50"));
}

fn maria() -> Option<Person> {
    Some(Person {
        id: Some(5),
        name: Some("Maria Santos".into()),
        login: Some("maria".into()),
        email: Some("maria.santos@example.com".into()),
    })
}

#[test]
fn a_report_with_several_lines_gets_one_approval_request_showing_its_total() {
    let mut payload = expense_payload();
    payload["submitted_at"] = json!("2026-11-24T01:15:00Z");
    let found = Found {
        report: Some(Report {
            id: 310,
            name: Some("November expenses".into()),
            total: Some("3750.5".into()),
            currency: Some("PHP".into()),
            lines: Some(3),
        }),
        person: maria(),
        report_message_by: None,
        approvers: maria_decides(),
        ..Found::default()
    };
    let p = plan(
        &ev("expense.submitted", payload.clone()),
        &settings(),
        &found,
    )
    .unwrap();
    // Every line of that submission carries the same key: the first to claim it posts.
    assert_eq!(
        p.report_message.as_deref(),
        Some("hr.expense.sheet/310@2026-11-24T01:15:00Z")
    );
    let att = &dms(&p).0[0].1["attachments"][0];
    assert_eq!(att["title"], "Expense report November expenses");
    let fields = att["fields"].to_string();
    assert!(
        fields.contains("PHP 3,750.50") && fields.contains("3 expenses"),
        "{fields}"
    );
    assert!(
        !fields.contains("1,250.50"),
        "not one line's amount: {fields}"
    );
    assert!(att["text"].as_str().unwrap().contains("total PHP 3,750.50"));
    let ctx =
        ActionContext::verify(&att["actions"][0]["integration"]["context"], "s3cret").unwrap();
    assert_eq!(ctx.sheet_id, "310");
    assert_eq!(ctx.submitted_at, "2026-11-24T01:15:00Z");
    assert!(ctx.summary.contains("PHP 3,750.50"));

    // Another line's event leaves the request to the owner and then has nothing to do.
    let claimed = Found {
        report_message_by: Some("0b6c3f3e-1111-4a4a-9c9c-000000000009".into()),
        ..Found::default()
    };
    let other = plan(
        &ev("expense.submitted", payload.clone()),
        &settings(),
        &claimed,
    )
    .unwrap();
    assert!(other.effects.is_empty());
    let reason = other.skip_reason().unwrap();
    assert!(
        reason.contains("hr.expense.sheet/310@2026-11-24T01:15:00Z")
            && reason.contains("0b6c3f3e-1111-4a4a-9c9c-000000000009"),
        "{reason}"
    );

    // A resubmission is a new key; without a submission time each line keeps its own.
    payload["submitted_at"] = json!("2026-11-26T08:00:00Z");
    let again = plan(
        &ev("expense.submitted", payload.clone()),
        &settings(),
        &found,
    )
    .unwrap();
    assert_eq!(
        again.report_message.as_deref(),
        Some("hr.expense.sheet/310@2026-11-26T08:00:00Z")
    );
    payload.as_object_mut().unwrap().remove("submitted_at");
    let unkeyed = plan(&ev("expense.submitted", payload), &settings(), &found).unwrap();
    assert_eq!(unkeyed.report_message, None);
}

#[test]
fn leaving_the_approval_to_another_event_keeps_every_other_effect() {
    let before = plan(
        &ev("expense.approved", expense_payload()),
        &settings(),
        &Found::default(),
    )
    .unwrap();
    let claimed = Found {
        report_message_by: Some("someone-else".into()),
        ..Found::default()
    };
    let p = plan(
        &ev("expense.approved", expense_payload()),
        &settings(),
        &claimed,
    )
    .unwrap();
    assert_eq!(
        p, before,
        "no approval request in the plan: nothing changes"
    );
}

#[test]
fn finance_approvers_stand_in_and_nobody_resolved_means_no_buttons_never_anyone() {
    let e = ev("expense.submitted", expense_payload());
    let stand_in = Found {
        approvers: Approvers {
            users: vec![
                account("anareyes000000000000000003", "ana.reyes"),
                account("josegarcia0000000000000004", "jose.garcia"),
            ],
            stand_in_reason: Some("no approver is set on the report in Odoo".into()),
        },
        ..Found::default()
    };
    let p = plan(&e, &settings(), &stand_in).unwrap();
    // Each stand-in gets a direct message whose buttons name them alone; the finance
    // channel gets a notice without buttons.
    let (messages, notice) = dms(&p);
    let names: Vec<&str> = messages.iter().map(|(u, _)| *u).collect();
    assert_eq!(names, ["ana.reyes", "jose.garcia"]);
    for ((username, body), id) in messages
        .iter()
        .zip(["anareyes000000000000000003", "josegarcia0000000000000004"])
    {
        assert!(body["text"].as_str().unwrap().starts_with(&format!(
            "@{username}, an expense is waiting for your approval as a finance approver"
        )));
        for button in body["attachments"][0]["actions"].as_array().unwrap() {
            let ctx = ActionContext::verify(&button["integration"]["context"], "s3cret").unwrap();
            assert_eq!(ctx.deciders.user_ids, vec![id]);
        }
    }
    let notice = notice.expect("a channel notice");
    assert_eq!(notice["channel"], "finance");
    assert!(
        notice["attachments"][0].get("actions").is_none(),
        "{notice}"
    );
    assert!(notice["text"]
        .as_str()
        .unwrap()
        .starts_with("@ana.reyes, @jose.garcia: an expense is waiting"));
    // Nobody resolved: the finance channel is told to decide in Odoo, and has no buttons.
    let nobody = plan(&e, &settings(), &Found::default()).unwrap();
    let body = mm(&nobody)[0].1;
    assert_eq!(body["channel"], "finance");
    assert!(body["attachments"][0].get("actions").is_none(), "{body}");
    assert!(body["text"].as_str().unwrap().contains("in Odoo"));
    // The expiry is configurable, and a nonsense value is named.
    let mut s = settings();
    s.approval_expiry_days = Some("3".into());
    let p = plan(&e, &s, &stand_in).unwrap();
    let ctx = ActionContext::verify(
        &dms(&p).0[0].1["attachments"][0]["actions"][0]["integration"]["context"],
        "s3cret",
    )
    .unwrap();
    assert_eq!(ctx.expires_at, 3 * 86_400);
    s.approval_expiry_days = Some("forever".into());
    let err = plan(&e, &s, &stand_in).unwrap_err().to_string();
    assert!(
        err.contains("approval_expiry_days") && err.contains("SPIN_VARIABLE_APPROVAL_EXPIRY_DAYS")
    );
}

#[test]
fn without_a_secret_the_approval_request_fails_naming_it() {
    let e = ev("expense.submitted", expense_payload());
    let found = Found {
        approvers: maria_decides(),
        ..Found::default()
    };
    let mut s = settings();
    s.action_secret = None;
    let err = plan(&e, &s, &found).unwrap_err();
    assert!(err.to_string().contains("mattermost_action_secret"));
    assert!(err
        .to_string()
        .contains("SPIN_VARIABLE_MATTERMOST_ACTION_SECRET"));
    // No report at all: no buttons, no secret needed.
    let mut payload = expense_payload();
    payload.as_object_mut().unwrap().remove("sheet_id");
    let p = plan(&ev("expense.submitted", payload), &s, &Found::default()).unwrap();
    assert!(mm(&p)[0].1["attachments"][0].get("actions").is_none());
}

#[test]
fn without_the_bot_the_approver_is_told_through_the_webhook_without_buttons() {
    let e = ev("expense.submitted", expense_payload());
    let found = Found {
        approvers: maria_decides(),
        ..Found::default()
    };
    let mut s = settings();
    s.bot_configured = false;
    let p = plan(&e, &s, &found).unwrap();
    let posts = mm(&p);
    assert_eq!(posts.len(), 1, "{:?}", p.effects);
    let (target, body) = posts[0];
    assert_eq!(target, APPROVAL_TARGET);
    assert_eq!(body["channel"], "@maria.santos");
    assert!(body["attachments"][0].get("actions").is_none(), "{body}");
    assert!(body["text"]
        .as_str()
        .unwrap()
        .ends_with("approve or refuse it in Odoo."));
    assert!(
        p.notes.iter().any(|n| n.contains("mattermost_bot_token")),
        "{:?}",
        p.notes
    );
}

#[test]
fn approved_queues_and_tells_finance_rejected_and_paid_dm_the_employee() {
    let p = plan(
        &ev("expense.approved", expense_payload()),
        &settings(),
        &Found::default(),
    )
    .unwrap();
    assert_eq!(p.statements.len(), 1);
    assert!(p.statements[0].sql.contains("payment_queue"));
    assert_eq!(mm(&p)[0].1["channel"], "finance");
    let mut r = expense_payload();
    r["reason"] = json!("No receipt");
    let p = plan(&ev("expense.rejected", r), &settings(), &Found::default()).unwrap();
    let (target, body) = mm(&p)[0];
    assert_eq!(target, "@juan.delacruz");
    assert_eq!(body["channel"], "@juan.delacruz");
    assert!(body["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .contains("No receipt"));
    assert!(p.statements[0].sql.starts_with("DELETE"));
    let p = plan(
        &ev("expense.paid", expense_payload()),
        &settings(),
        &Found::default(),
    )
    .unwrap();
    assert!(p.statements[0].sql.contains("'paid'"));
    assert_eq!(mm(&p)[0].0, "@juan.delacruz");
    let mut no_mail = expense_payload();
    no_mail["employee_email"] = json!(false);
    let p = plan(&ev("expense.paid", no_mail), &settings(), &Found::default()).unwrap();
    assert!(mm(&p).is_empty() && p.notes[0].contains("employee_email"));
    assert!(p.skip_reason().is_none(), "the dashboard still changes");
}

#[test]
fn asset_reserved_emails_the_employee_and_books_the_calendar() {
    let p = plan(
        &ev("asset.reserved", booking(json!({}))),
        &settings(),
        &Found::default(),
    )
    .unwrap();
    assert_eq!(p.statements.len(), 1);
    let mails = emails(&p);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1.to, vec!["juan@example.com"]);
    assert!(mails[0].1.cc.is_empty());
    assert!(mails[0].1.subject.contains("Projector (PRJ-12)"));
    assert!(mails[0].1.html.contains("2026-11-27 01:00 UTC"));
    let cal: Vec<_> = p
        .effects
        .iter()
        .filter(|e| e.channel() == CALENDAR)
        .collect();
    assert_eq!(cal.len(), 1);
    assert_eq!(cal[0].target(), "booking/501");
    for t in ["asset.checked_out", "asset.checked_in"] {
        let p = plan(&ev(t, booking(json!({}))), &settings(), &Found::default()).unwrap();
        assert_eq!((p.statements.len(), p.effects.len()), (1, 0));
    }
    let p = plan(
        &ev("asset.checked_in", json!({"booking_id": 1})),
        &settings(),
        &Found::default(),
    )
    .unwrap();
    assert!(p.skip_reason().unwrap().contains("asset_id"));
}

#[test]
fn asset_overdue_escalates_by_level() {
    let cc = |level: i64| {
        let p = plan(
            &ev(
                "asset.overdue",
                booking(json!({"escalation_level": level, "days_overdue": 4})),
            ),
            &settings(),
            &Found::default(),
        )
        .unwrap();
        let m = emails(&p);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1.to, vec!["juan@example.com"]);
        assert!(m[0].1.subject.contains(&format!("level {level}")));
        m[0].1.cc.clone()
    };
    assert!(cc(1).is_empty());
    assert_eq!(cc(2), vec!["maria@example.com"]);
    assert_eq!(cc(3), vec!["maria@example.com", "it@example.com"]);
    let mut s = settings();
    s.it_admin_email = None;
    let lvl3 = ev("asset.overdue", booking(json!({"escalation_level": 3})));
    assert!(plan(&lvl3, &s, &Found::default())
        .unwrap_err()
        .to_string()
        .contains("it_admin_email"));
    let lvl2 = ev("asset.overdue", booking(json!({"escalation_level": 2})));
    assert!(
        plan(&lvl2, &s, &Found::default()).is_ok(),
        "level 2 needs no IT admin"
    );
}

#[test]
fn finance_events_update_ppm_and_bir_dashboards() {
    for t in ["finance_task.created", "finance_task.in_progress"] {
        let p = plan(&ev(t, task(json!({}))), &settings(), &Found::default()).unwrap();
        assert_eq!((p.statements.len(), p.effects.len()), (1, 0));
        assert!(p.statements[0].sql.contains("ppm_tasks"));
    }
    for t in ["finance_task.approved", "finance_task.filed"] {
        let p = plan(&ev(t, task(json!({}))), &settings(), &Found::default()).unwrap();
        assert_eq!(p.statements.len(), 2);
        assert!(p.statements[1].sql.contains("bir_compliance"));
    }
    let p = plan(
        &ev("finance_task.approved", task(json!({"bir_form": false}))),
        &settings(),
        &Found::default(),
    )
    .unwrap();
    assert_eq!(p.statements.len(), 1);
}

#[test]
fn finance_submitted_dms_the_reviewer_with_a_link() {
    let e = ev("finance_task.submitted", task(json!({})));
    assert_eq!(
        lookup_for(&e),
        Some((
            Lookup::User { user_id: 3 },
            MATTERMOST,
            REVIEW_TARGET.to_string()
        ))
    );
    let found = Found {
        report: None,
        report_message_by: None,
        person: Some(Person {
            id: Some(3),
            name: Some("Rosa".into()),
            login: Some("rosa@example.com".into()),
            email: None,
        }),
        ..Found::default()
    };
    let p = plan(&e, &settings(), &found).unwrap();
    let (target, body) = mm(&p)[0];
    assert_eq!(target, REVIEW_TARGET);
    assert_eq!(body["channel"], "@rosa");
    assert_eq!(
        body["attachments"][0]["title_link"],
        "https://odoo.example.com/web#id=7001&model=project.task&view_type=form"
    );
    let no_reviewer = ev(
        "finance_task.submitted",
        task(json!({"reviewer_id": false})),
    );
    assert_eq!(lookup_for(&no_reviewer), None);
}

#[test]
fn finance_overdue_alerts_responsibles_and_after_three_days_the_director() {
    let targets = |days: i64| {
        let p = plan(
            &ev("finance_task.overdue", task(json!({"days_overdue": days}))),
            &settings(),
            &Found::default(),
        )
        .unwrap();
        mm(&p)
            .iter()
            .map(|(t, _)| t.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(targets(3), vec!["@ana.reyes", "@jose.garcia"]);
    assert_eq!(
        targets(4),
        vec!["@ana.reyes", "@jose.garcia", "director:@director"]
    );
    let mut s = settings();
    s.finance_director_email = None;
    let e4 = ev("finance_task.overdue", task(json!({"days_overdue": 4})));
    assert!(plan(&e4, &s, &Found::default())
        .unwrap_err()
        .to_string()
        .contains("finance_director_email"));
    let e3 = ev("finance_task.overdue", task(json!({"days_overdue": 3})));
    assert!(plan(&e3, &s, &Found::default()).is_ok());
}

fn with(mut p: Value, extra: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (p.as_object_mut(), extra) {
        a.extend(b);
    }
    p
}

fn five_line_report() -> Report {
    Report {
        id: 340,
        name: Some("Sales trip Cebu".into()),
        total: Some("6250".into()),
        currency: Some("PHP".into()),
        lines: Some(5),
    }
}

#[test]
fn report_decisions_are_keyed_by_the_report_and_its_transition_stamp() {
    let at = |t: &str, field: &str| {
        ev(
            t,
            with(expense_payload(), json!({ field: "2026-11-26T08:00:00Z" })),
        )
    };
    let cases = [
        (
            "expense.submitted",
            "submitted_at",
            "hr.expense.sheet/310@2026-11-26T08:00:00Z",
        ),
        (
            "expense.approved",
            "approved_at",
            "hr.expense.sheet/310/approved@2026-11-26T08:00:00Z",
        ),
        (
            "expense.rejected",
            "refused_at",
            "hr.expense.sheet/310/refused@2026-11-26T08:00:00Z",
        ),
        (
            "expense.paid",
            "paid_at",
            "hr.expense.sheet/310/paid@2026-11-26T08:00:00Z",
        ),
    ];
    for (t, field, key) in cases {
        assert_eq!(
            report_message_key(&at(t, field)).as_deref(),
            Some(key),
            "{t}"
        );
        // Without the stamp (an older addon), or with Odoo's `false`: no key.
        assert_eq!(report_message_key(&ev(t, expense_payload())), None, "{t}");
        assert_eq!(report_message_key(&at(t, "other_at")), None, "{t}");
        let unset = ev(t, with(expense_payload(), json!({ field: false })));
        assert_eq!(report_message_key(&unset), None, "{t}");
    }
    assert_eq!(
        approval_request_key(&at("expense.approved", "approved_at")),
        None
    );
    // The owner looks the report up (not the approver); an unstamped line does not.
    assert_eq!(
        lookup_for(&at("expense.rejected", "refused_at")),
        Some((
            Lookup::ExpenseReport { expense_id: 1042 },
            MATTERMOST,
            "@juan.delacruz".to_string()
        ))
    );
    assert_eq!(
        lookup_for(&at("expense.approved", "approved_at")),
        Some((
            Lookup::ExpenseReport { expense_id: 1042 },
            MATTERMOST,
            FINANCE_TARGET.to_string()
        ))
    );
    assert_eq!(lookup_for(&ev("expense.rejected", expense_payload())), None);
}

#[test]
fn a_refused_report_gets_one_dm_with_the_reason_its_total_and_lines() {
    let payload = with(
        expense_payload(),
        json!({"reason": "No receipts", "refused_by": "Maria Santos",
               "refused_at": "2026-11-26T08:00:00Z", "sheet_id": 340}),
    );
    let e = ev("expense.rejected", payload);
    let found = Found {
        report: Some(five_line_report()),
        ..Found::default()
    };
    let p = plan(&e, &settings(), &found).unwrap();
    assert_eq!(
        p.report_message.as_deref(),
        Some("hr.expense.sheet/340/refused@2026-11-26T08:00:00Z")
    );
    assert_eq!(p.statements.len(), 1, "the line leaves the payment queue");
    assert_eq!(p.effects.len(), 1);
    let Effect::Mattermost { target, body } = &p.effects[0] else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(target, "@juan.delacruz");
    assert_eq!(
        body["text"],
        "@juan.delacruz, your expense report was refused."
    );
    let att = &body["attachments"][0];
    assert_eq!(att["title"], "Expense report refused: Sales trip Cebu");
    assert_eq!(att["text"], "Reason: No receipts\nRefused by Maria Santos.");
    let fields = att["fields"].to_string();
    assert!(
        fields.contains("PHP 6,250.00") && fields.contains("5 expenses"),
        "{fields}"
    );

    // Another line of the same refusal: the queue row goes, no message.
    let other = Found {
        report_message_by: Some("0b6c3f3e-1111-4a4a-9c9c-000000000009".into()),
        ..Found::default()
    };
    let p = plan(&e, &settings(), &other).unwrap();
    assert_eq!((p.statements.len(), p.effects.len()), (1, 0));
    assert!(p.notes[0].contains("is sent by event 0b6c3f3e-1111-4a4a-9c9c-000000000009"));
    assert_eq!(p.skip_reason(), None);
}

#[test]
fn an_approved_report_gets_one_finance_post_and_each_line_its_queue_row() {
    let payload = with(
        expense_payload(),
        json!({"approved_by": "Maria Santos", "approved_at": "2026-11-26T08:00:00Z"}),
    );
    let e = ev("expense.approved", payload);
    let found = Found {
        report: Some(five_line_report()),
        ..Found::default()
    };
    let p = plan(&e, &settings(), &found).unwrap();
    assert_eq!(p.statements.len(), 1);
    let Effect::Mattermost { target, body } = &p.effects[0] else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(target, FINANCE_TARGET);
    assert_eq!(body["channel"], "finance");
    let att = &body["attachments"][0];
    assert_eq!(
        att["title"],
        "Approved for payment: expense report Sales trip Cebu"
    );
    assert_eq!(
        att["text"],
        "Approved by Maria Santos. 5 expenses added to the payment queue."
    );
    let other = Found {
        report_message_by: Some("someone-else".into()),
        ..Found::default()
    };
    let p = plan(&e, &settings(), &other).unwrap();
    assert_eq!((p.statements.len(), p.effects.len()), (1, 0));
}

#[test]
fn a_paid_report_gets_one_dm_and_unstamped_lines_keep_one_each() {
    let payload = with(
        expense_payload(),
        json!({"paid_at": "2026-11-28T02:00:00Z", "payment_ref": "BNK1/2026/00042"}),
    );
    let e = ev("expense.paid", payload);
    // Odoo gave no total (the look-up found no report): the report's id, no total.
    let p = plan(&e, &settings(), &Found::default()).unwrap();
    let Effect::Mattermost { body, .. } = &p.effects[0] else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(
        body["text"],
        "@juan.delacruz, your expense report was paid."
    );
    assert_eq!(body["attachments"][0]["title"], "Expense report paid: 310");
    assert!(body["attachments"][0]["fields"]
        .to_string()
        .contains("BNK1/2026/00042"));
    // An older addon's line (no paid_at): today's per-line DM.
    let old = ev(
        "expense.paid",
        with(expense_payload(), json!({"payment_ref": "BNK1/2026/00042"})),
    );
    let p = plan(&old, &settings(), &Found::default()).unwrap();
    assert_eq!(p.report_message, None);
    let Effect::Mattermost { body, .. } = &p.effects[0] else {
        panic!("{:?}", p.effects)
    };
    assert_eq!(body["text"], "@juan.delacruz, your expense was paid.");
}
