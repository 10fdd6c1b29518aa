use super::*;
use crate::DbError;

fn claimed(message: &str) -> Claimed {
    Claimed {
        id: 7,
        condition: "dead_letters".into(),
        kind: "dead_letters".into(),
        message: message.into(),
        targets: vec!["mattermost".into(), "email".into()],
        events: 3,
        since: Some("2026-11-30T10:00:00+00:00".into()),
        detail: "last: expense.submitted e1: HTTP 500".into(),
        first_seen_at: "2026-11-30T10:01:00+00:00".into(),
        last_seen_at: "2026-11-30T10:05:00+00:00".into(),
        resolved_at: None,
        reminders: 0,
    }
}

fn cfg() -> AlertConfig {
    AlertConfig::from_lookup(|k| {
        Some(
            match k {
                "alert_mattermost_webhook_url" => "http://127.0.0.1:9/hooks/x",
                "alert_mattermost_origin" => "http://127.0.0.1:9",
                "ops_alert_emails" => "a@example.com, b@example.com",
                "email_api_url" => "http://127.0.0.1:8/emails",
                "email_api_origin" => "http://127.0.0.1:8",
                "email_api_key" => "re_1",
                "email_from" => "Bus <bus@example.com>",
                "public_base_url" => "https://bus.example.com/",
                _ => return None,
            }
            .to_string(),
        )
    })
    .expect("config parses")
}

#[test]
fn defaults_and_bounds() {
    let c = AlertConfig::from_lookup(|_| None).expect("defaults");
    assert_eq!((c.stalled_after_s, c.reminder_interval_s), (900, 3600));
    assert!(c.targets().is_empty());
    assert!(
        AlertConfig::from_lookup(|k| (k == "alert_reminder_interval_s").then(|| "0".into()))
            .is_err()
    );
    assert_eq!(cfg().targets(), vec!["mattermost", "email"]);
    assert_eq!(cfg().emails, vec!["a@example.com", "b@example.com"]);
}

#[test]
fn messages_say_what_since_how_many_and_the_fix() {
    let a = claimed("opened");
    let body = mattermost_body(&a, "https://bus.example.com");
    assert_eq!(
        body["text"],
        "[IPAI] Alert: Events went dead (all delivery attempts failed)"
    );
    let fields = body["attachments"][0]["fields"].as_array().expect("fields");
    let get = |t: &str| {
        fields
            .iter()
            .find(|f| f["title"] == t)
            .map(|f| f["value"].clone())
    };
    assert_eq!(get("Events"), Some(json!("3")));
    assert_eq!(get("Open since"), Some(json!("2026-11-30T10:01:00+00:00")));
    assert!(get("Fix")
        .and_then(|v| v.as_str().map(|s| s.contains("ipai dlq requeue --all")))
        .unwrap_or(false));
    let e = alert_email(&claimed("resolved"), &["a@example.com".into()], "https://x");
    assert!(e.subject.starts_with("[IPAI] Resolved:"));
    assert!(e.text.contains("Events: 3"));
}

#[test]
fn requests_check_origins_and_name_missing_variables() {
    let a = claimed("opened");
    let m = request_for("mattermost", &a, &cfg()).expect("mattermost");
    assert_eq!(m.url, "http://127.0.0.1:9/hooks/x");
    let e = request_for("email", &a, &cfg()).expect("email");
    assert!(e.headers.contains(&("authorization", "Bearer re_1".into())));
    let body: Value = serde_json::from_slice(&e.body).expect("json");
    assert_eq!(body["to"], json!(["a@example.com", "b@example.com"]));
    let mut bad = cfg();
    bad.mattermost_origin = "http://127.0.0.1:10".into();
    assert!(request_for("mattermost", &a, &bad)
        .unwrap_err()
        .contains("alert_mattermost_origin"));
    bad.email_api_key = None;
    assert!(request_for("email", &a, &bad)
        .unwrap_err()
        .contains("email_api_key"));
}

#[test]
fn metrics_list_fixed_conditions_and_open_ones() {
    let open = vec![OpenAlert {
        id: 1,
        condition: "handler_misconfigured:expense".into(),
        kind: "handler_misconfigured".into(),
        first_seen_at: "t".into(),
        last_seen_at: "t".into(),
        open_for_s: 5,
        events: 2,
        since: None,
        detail: "<b>".into(),
        notified_at: None,
        reminders: 0,
        pending_message: None,
        last_send_error: None,
    }];
    let m = render_metrics(&open);
    assert!(m.contains("ipai_alerts_open{condition=\"dead_letters\"} 0\n"));
    assert!(m.contains("ipai_alerts_open{condition=\"handler_misconfigured:expense\"} 1\n"));
    let b = render_banner(&open, "http://x");
    assert!(b.contains("data-condition=\"handler_misconfigured:expense\""));
    assert!(b.contains("&lt;b&gt;"));
    assert_eq!(render_banner(&[], "http://x"), "");
}

/// Answers the evaluation with one claimed message and records every statement.
struct Fake(Vec<(String, Vec<String>)>);

impl Database for Fake {
    fn query_value(
        &mut self,
        sql: &str,
        params: &[crate::Param],
    ) -> Result<Option<Value>, DbError> {
        let texts = params.iter().map(crate::tests::text).collect();
        self.0.push((sql.to_string(), texts));
        if sql == EVALUATE_SQL {
            let a = json!({"id": 7, "condition": "dead_letters", "kind": "dead_letters",
                           "message": "opened", "targets": ["mattermost", "email"],
                           "events": 3, "since": null, "detail": "", "first_seen_at": "t1",
                           "last_seen_at": "t2", "resolved_at": null, "reminders": 0});
            Ok(Some(
                json!({"open": 1, "opened": ["dead_letters"], "resolved": [], "sends": [a]}),
            ))
        } else {
            Ok(Some(json!(true)))
        }
    }
}

fn request(auth: Option<&str>) -> Request {
    let mut r = Request {
        method: "POST".into(),
        ..Default::default()
    }
    .with_path_and_query(EVALUATE_PATH);
    if let Some(a) = auth {
        r.headers.push(("authorization".into(), a.into()));
    }
    r
}

#[test]
fn evaluate_needs_the_token_then_settles_each_destination() {
    let config = crate::Config {
        ops_token: Some("tok".into()),
        ..Default::default()
    };
    let acfg = cfg();
    let mut db = Fake(Vec::new());
    let refused = begin(&request(None), &config, Ok(&acfg), &mut db).unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(db.0.is_empty(), "nothing evaluated without the token");
    let mut get = request(Some("Bearer tok"));
    get.method = "GET".into();
    assert_eq!(
        begin(&get, &config, Ok(&acfg), &mut db).unwrap_err().status,
        405
    );

    let plan = begin(&request(Some("Bearer tok")), &config, Ok(&acfg), &mut db).expect("plan");
    assert_eq!(
        db.0[0].1,
        ["900", "300", "3600", "{mattermost,email}", "60"].map(String::from)
    );
    assert_eq!(plan.deliveries.len(), 1);
    let targets: Vec<&str> = plan.deliveries[0]
        .requests
        .iter()
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(targets, ["mattermost", "email"]);
    let r = finish(
        &plan,
        &[vec![Err("HTTP 500: down".into()), Ok(())]],
        &mut db,
    );
    assert_eq!(r.status, 200);
    let (sql, params) = &db.0[1];
    assert_eq!(sql, SENT_SQL);
    assert_eq!(
        params,
        &["7", "opened", "{email}", "mattermost: HTTP 500: down"].map(String::from)
    );
    let body: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(body["sent"], 1);
    assert_eq!(body["failed"][0]["condition"], "dead_letters");
    let message = "variable x is wrong".to_string();
    let bad: Result<&AlertConfig, &String> = Err(&message);
    assert_eq!(
        begin(&request(Some("Bearer tok")), &config, bad, &mut db)
            .unwrap_err()
            .status,
        500
    );
}

#[test]
fn reminders_get_their_own_idempotency_key() {
    let mut a = claimed("reminder");
    let k1 = idempotency_key(&a);
    a.reminders = 1;
    assert_ne!(k1, idempotency_key(&a));
    assert_ne!(
        idempotency_key(&claimed("opened")),
        idempotency_key(&claimed("resolved"))
    );
}
