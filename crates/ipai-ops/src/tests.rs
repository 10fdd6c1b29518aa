//! Route-level tests of `handle` with a scripted database (the replay page's in
//! `tests/replay.rs`).

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

/// A fake database: answers by the first words of the SQL, records every call.
#[derive(Default)]
struct FakeDb {
    health: Option<Value>,
    metrics: Option<Value>,
    dashboard: Option<Value>,
    requeue: Option<Value>,
    /// Rows each purge call deletes, in order (then 0).
    purges: Vec<i64>,
    /// What each `purge_ledgers` call answers, in order (then nothing deleted).
    ledger_purges: Vec<Value>,
    down: bool,
    /// Every statement refused as PostgreSQL refuses a role past its connection limit.
    budget_spent: bool,
    /// What `ops_auth_attempt` answers: 0 (go on) unless set.
    throttled_for: i64,
    /// The parameters of each `ops_auth_attempt` (the login throttle, kept apart from
    /// `calls`: the routes' statements).
    auth_attempts: Vec<Vec<String>>,
    calls: Vec<(String, Vec<String>)>,
    /// What the `ipai_replay` statements answer (see `tests/replay.rs`).
    replay: replay::FakeReplay,
}

/// A parameter as the text it binds (every ops statement binds text).
pub(crate) fn text(p: &Param) -> String {
    match p {
        Param::Text(s) => s.clone(),
        other => panic!("ops binds text parameters only, got {other:?}"),
    }
}

impl Database for FakeDb {
    fn query_value(&mut self, sql: &str, params: &[Param]) -> Result<Option<Value>, DbError> {
        if sql == auth::AUTH_ATTEMPT_SQL {
            self.auth_attempts.push(params.iter().map(text).collect());
        } else if replay::FakeReplay::serves(sql) {
            // ipai_replay binds numbers and JSON too.
            self.calls
                .push((sql.to_string(), params.iter().map(replay::shown).collect()));
        } else {
            self.calls
                .push((sql.to_string(), params.iter().map(text).collect()));
        }
        if self.down {
            return Err(DbError::Unavailable("connection refused".into()));
        }
        if self.budget_spent {
            return Err(DbError::Unavailable(
                "FATAL: too many connections for role \"ipai_probe\"".into(),
            ));
        }
        let pick = if sql == data::health_sql() {
            self.health.clone()
        } else if sql == data::metrics_sql() {
            self.metrics.clone()
        } else if sql == data::dashboard_sql() {
            self.dashboard.clone()
        } else if sql == auth::AUTH_ATTEMPT_SQL {
            Some(json!(self.throttled_for))
        } else if sql == data::REQUEUE_SQL {
            self.requeue.clone()
        } else if replay::FakeReplay::serves(sql) {
            self.replay.answer(sql)
        } else if sql == data::PURGE_LEDGERS_SQL {
            Some(if self.ledger_purges.is_empty() {
                json!({"deliveries": 0, "report_messages": 0, "id_map": 0, "oauth_tokens": 0})
            } else {
                self.ledger_purges.remove(0)
            })
        } else if sql == data::PURGE_SQL {
            Some(json!(if self.purges.is_empty() {
                0
            } else {
                self.purges.remove(0)
            }))
        } else {
            None
        };
        pick.map(Some)
            .ok_or_else(|| DbError::Failed(format!("unexpected SQL {sql}")))
    }
}

const ID: &str = "4d0c2a6e-1b2c-4d5e-8f90-a1b2c3d4e5f6";
const SESSION: &str = "00112233445566778899aabbccddeeff";
const NOW: i64 = 1_795_600_900;

fn cfg() -> Config {
    Config {
        ops_password: Some("pw".into()),
        ops_token: Some("tok".into()),
        ..Config::default()
    }
}

fn req(method: &str, path: &str) -> Request {
    Request {
        method: method.into(),
        now_unix: NOW,
        entropy: [7; 16],
        headers: vec![("host".into(), "127.0.0.1:3000".into())],
        ..Default::default()
    }
    .with_path_and_query(path)
}

fn basic(r: Request, pass: &str) -> Request {
    let mut r = r;
    r.headers.push((
        "authorization".into(),
        format!("Basic {}", STANDARD.encode(format!("ops:{pass}"))),
    ));
    r
}

fn dashboard_json() -> Value {
    json!({"now": "2026-11-26 12:00:00 UTC", "counts": {"pending": 1, "dead": 1},
           "oldest_pending_age_s": 2.0, "hour_now": 1_795_600_800i64, "volume": [],
           "dead_total": 1, "dead": [{"id": ID, "event_type": "expense.submitted",
             "aggregate_type": "expense", "aggregate_id": "1", "attempts": 3, "max_attempts": 3,
             "last_error": "500 boom", "locked_by": null, "created_at": "x", "updated_at": "y",
             "locked_age_s": null, "next_attempt_in_s": -5.0}],
           "stuck_total": 0, "stuck": [], "failed": []})
}

#[test]
fn health_is_200_with_queue_depth_and_503_past_the_pending_age_limit() {
    let mut db = FakeDb {
        health: Some(
            json!({"counts": {"pending": 2, "dead": 3}, "oldest_pending_age_s": 12.0,
                            "stuck_processing": 0}),
        ),
        ..Default::default()
    };
    let r = handle(&req("GET", "/health"), &cfg(), &mut db);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["db"], "ok");
    assert_eq!(
        v["queue"],
        json!({"pending": 2, "processing": 0, "failed": 0, "dead": 3})
    );
    assert_eq!(v["dead"], 3);
    assert_eq!(v["oldest_pending_age_s"], 12.0);
    assert_eq!(db.calls[0].1, vec!["600".to_string()]);

    db.health = Some(json!({"counts": {"pending": 1}, "oldest_pending_age_s": 301.0}));
    let r = handle(&req("GET", "/health"), &cfg(), &mut db);
    assert_eq!(r.status, 503);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["status"], "unhealthy");
    assert!(v["problems"][0].as_str().unwrap().contains("301 s"));
}

#[test]
fn health_is_503_when_the_database_is_unreachable() {
    let mut db = FakeDb {
        down: true,
        ..Default::default()
    };
    let r = handle(&req("GET", "/health"), &cfg(), &mut db);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["db"], "unreachable");
    let r = handle(&req("HEAD", "/health"), &cfg(), &mut db);
    assert_eq!((r.status, r.body.len()), (503, 0));
    let r = handle(&req("POST", "/health"), &cfg(), &mut db);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn a_probe_refused_for_lack_of_connections_is_held_and_tries_once() {
    let mut db = FakeDb {
        budget_spent: true,
        ..Default::default()
    };
    let r = handle(&req("GET", "/health"), &cfg(), &mut db);
    assert_eq!((r.status, r.hold), (503, Some(crate::PROBE_HOLD)));
    let r = handle(&req("GET", "/metrics"), &cfg(), &mut db);
    assert_eq!((r.status, r.hold), (200, Some(crate::PROBE_HOLD)));
    assert!(r.text().contains("ipai_database_up 0"));
    assert_eq!(db.calls.len(), 2, "one statement each: {:?}", db.calls);
    // A database that is down is answered at once (nothing to protect).
    let mut down = FakeDb {
        down: true,
        ..Default::default()
    };
    assert_eq!(handle(&req("GET", "/health"), &cfg(), &mut down).hold, None);
    assert_eq!(
        handle(&req("GET", "/metrics"), &cfg(), &mut down).hold,
        None
    );
}

#[test]
fn metrics_are_prometheus_text_and_optionally_need_a_token() {
    let mut db = FakeDb {
        metrics: Some(
            json!({"outbox": [{"status": "done", "count": 4, "oldest_age_s": 1.0}],
                             "oldest_pending_age_s": null, "stuck_processing": 0,
                             "ingested": {"asset.reserved": 4}, "deliveries": []}),
        ),
        ..Default::default()
    };
    let r = handle(&req("GET", "/metrics"), &cfg(), &mut db);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(metrics::CONTENT_TYPE));
    assert!(r.text().contains("ipai_outbox_events{status=\"done\"} 4\n"));

    let mut c = cfg();
    c.metrics_token = Some("m".into());
    assert_eq!(handle(&req("GET", "/metrics"), &c, &mut db).status, 401);
    let mut authed = req("GET", "/metrics");
    authed
        .headers
        .push(("authorization".into(), "Bearer m".into()));
    assert_eq!(handle(&authed, &c, &mut db).status, 200);

    db.down = true;
    let r = handle(&req("GET", "/metrics"), &cfg(), &mut db);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("ipai_database_up 0"));
}

#[test]
fn the_dashboard_needs_basic_auth_and_sets_a_session_with_tokens() {
    let mut db = FakeDb {
        dashboard: Some(dashboard_json()),
        ..Default::default()
    };
    let r = handle(&req("GET", "/ops"), &cfg(), &mut db);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some(auth::CHALLENGE));
    assert!(db.calls.is_empty(), "no query before authentication");
    assert_eq!(
        handle(&basic(req("GET", "/ops"), "nope"), &cfg(), &mut db).status,
        401
    );
    // Other /ops paths are behind the same auth.
    assert_eq!(
        handle(&req("GET", "/ops/anything"), &cfg(), &mut db).status,
        401
    );

    let r = handle(&basic(req("GET", "/ops"), "pw"), &cfg(), &mut db);
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap();
    let session = csrf::new_session(&[7; 16]);
    assert!(cookie.starts_with(&format!("{}={session};", csrf::SESSION_COOKIE)));
    assert!(r
        .text()
        .contains(&format!("value=\"{}\"", csrf::token("pw", &session, NOW))));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));

    // An existing session is kept.
    let mut again = basic(req("GET", "/ops"), "pw");
    again.headers.push((
        "cookie".into(),
        format!("{}={SESSION}", csrf::SESSION_COOKIE),
    ));
    let r = handle(&again, &cfg(), &mut db);
    assert_eq!(r.header("set-cookie"), None);
    assert!(r
        .text()
        .contains(&csrf::token("pw", SESSION, NOW).to_string()));
}

#[test]
fn the_dashboard_refuses_to_work_without_a_configured_password() {
    let mut db = FakeDb::default();
    let c = Config {
        ops_password: None,
        ..cfg()
    };
    let r = handle(&basic(req("GET", "/ops"), ""), &c, &mut db);
    assert_eq!(r.status, 500);
    assert!(r.text().contains("ops_password"));
}

fn requeue_req(token: &str, extra: &[(&str, &str)]) -> Request {
    let mut r = basic(req("POST", &format!("/ops/outbox/{ID}/requeue")), "pw");
    r.headers.push((
        "cookie".into(),
        format!("{}={SESSION}", csrf::SESSION_COOKIE),
    ));
    for (k, v) in extra {
        r.headers.push((k.to_string(), v.to_string()));
    }
    r.body = format!("csrf={}", token).into_bytes();
    r
}

#[test]
fn requeue_with_a_valid_token_calls_requeue_outbox_and_redirects() {
    let mut db = FakeDb {
        requeue: Some(json!(true)),
        ..Default::default()
    };
    let token = csrf::token("pw", SESSION, NOW - 60);
    let r = handle(
        &requeue_req(
            &token,
            &[
                ("origin", "http://127.0.0.1:3000"),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
        &cfg(),
        &mut db,
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("/ops?requeued={ID}").as_str())
    );
    assert_eq!(
        db.calls,
        vec![(data::REQUEUE_SQL.to_string(), vec![ID.to_string()])]
    );

    db.requeue = Some(json!(false));
    let r = handle(&requeue_req(&token, &[]), &cfg(), &mut db);
    assert_eq!(
        r.header("location"),
        Some(format!("/ops?unchanged={ID}").as_str())
    );

    let r = handle(
        &requeue_req(&token, &[("accept", "application/json")]),
        &cfg(),
        &mut db,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"id": ID, "requeued": false})
    );
}

#[test]
fn requeue_without_a_valid_token_or_from_another_site_is_refused() {
    let mut db = FakeDb {
        requeue: Some(json!(true)),
        ..Default::default()
    };
    let good = csrf::token("pw", SESSION, NOW);
    let cases = [
        requeue_req("", &[]),
        requeue_req("123.deadbeef", &[]),
        requeue_req(&csrf::token("other", SESSION, NOW), &[]),
        requeue_req(&good, &[("sec-fetch-site", "cross-site")]),
        requeue_req(&good, &[("origin", "https://evil.example")]),
        {
            let mut r = requeue_req(&good, &[]);
            r.headers.retain(|(k, _)| k != "cookie");
            r
        },
    ];
    for r in cases {
        let resp = handle(&r, &cfg(), &mut db);
        assert_eq!(resp.status, 403, "{:?} → {}", r.headers, resp.text());
    }
    assert!(db.calls.is_empty(), "nothing was requeued");
    // Without Basic auth: 401 before any CSRF check; GET: 405.
    let mut r = requeue_req(&good, &[]);
    r.headers.retain(|(k, _)| k != "authorization");
    assert_eq!(handle(&r, &cfg(), &mut db).status, 401);
    let r = basic(req("GET", &format!("/ops/outbox/{ID}/requeue")), "pw");
    assert_eq!(handle(&r, &cfg(), &mut db).status, 405);
    // A malformed id never reaches SQL.
    let mut r = requeue_req(&good, &[]);
    r.path = "/ops/outbox/not-a-uuid/requeue".into();
    assert_eq!(handle(&r, &cfg(), &mut db).status, 404);
    assert!(db.calls.is_empty());
}

#[test]
fn the_own_authority_comes_from_host_then_the_runtime_then_spin_full_url() {
    let mut r = req("GET", "/ops");
    assert_eq!(r.own_authority().as_deref(), Some("127.0.0.1:3000"));
    r.headers.clear();
    assert_eq!(r.own_authority(), None);
    r.headers.push((
        "spin-full-url".into(),
        "http://10.0.0.1:3001/ops/x?y".into(),
    ));
    assert_eq!(r.own_authority().as_deref(), Some("10.0.0.1:3001"));
    r.authority = Some("example.test:8080".into());
    assert_eq!(r.own_authority().as_deref(), Some("example.test:8080"));
}

#[test]
fn retention_needs_the_ops_token_and_purges_in_bounded_batches() {
    let mut db = FakeDb {
        purges: vec![1000, 1000, 250],
        ..Default::default()
    };
    let r = handle(&req("POST", "/ops/retention"), &cfg(), &mut db);
    assert_eq!(r.status, 401);
    assert!(r.text().contains("ops_token"), "{}", r.text());
    assert!(db.calls.is_empty(), "refused before any SQL");
    let mut authed = req("POST", "/ops/retention");
    authed
        .headers
        .push(("authorization".into(), "Bearer tok".into()));
    let r = handle(&authed, &cfg(), &mut db);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["deleted"], 2250);
    assert_eq!(v["batches"], 3);
    assert_eq!(v["more"], false);
    assert_eq!(db.calls[0].1, vec!["7".to_string(), "1000".to_string()]);

    // The batch count is capped per request.
    db.purges = vec![1000; 60];
    let v: Value = serde_json::from_slice(&handle(&authed, &cfg(), &mut db).body).unwrap();
    assert_eq!(v["batches"], RETENTION_MAX_BATCHES);
    assert_eq!(v["more"], true);
    assert_eq!(
        handle(&req("GET", "/ops/retention"), &cfg(), &mut db).status,
        405
    );
}

#[test]
fn retention_purges_the_ledgers_in_batches_past_their_window() {
    let full = json!({"deliveries": 1000, "report_messages": 3, "id_map": 0, "oauth_tokens": 1});
    let rest = json!({"deliveries": 20, "report_messages": 0, "id_map": 0, "oauth_tokens": 0});
    let mut db = FakeDb {
        ledger_purges: vec![full, rest],
        ..Default::default()
    };
    let mut authed = req("POST", "/ops/retention");
    authed
        .headers
        .push(("authorization".into(), "Bearer tok".into()));
    let r = handle(&authed, &cfg(), &mut db);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["ledgers"],
        json!({"deleted": {"deliveries": 1020, "report_messages": 3, "id_map": 0, "oauth_tokens": 1},
               "more": false, "older_than_days": 30})
    );
    let ledger_calls: Vec<_> = db
        .calls
        .iter()
        .filter(|(sql, _)| sql == data::PURGE_LEDGERS_SQL)
        .collect();
    assert_eq!(
        ledger_calls.len(),
        2,
        "again while a ledger had a full batch"
    );
    assert_eq!(
        ledger_calls[0].1,
        vec!["30".to_string(), "1000".to_string()]
    );

    // The window never ends before an approval message's buttons expire.
    let long_buttons = Config {
        approval_expiry_days: 60,
        ..cfg()
    };
    assert_eq!(long_buttons.ledger_window_days(), 61);
    let mut db = FakeDb::default();
    handle(&authed, &long_buttons, &mut db);
    let last = db.calls.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1[0].as_str()),
        (data::PURGE_LEDGERS_SQL, "61")
    );

    // A failing database: 503, retried by the next tick.
    let mut down = FakeDb {
        down: true,
        ..Default::default()
    };
    assert_eq!(handle(&authed, &cfg(), &mut down).status, 503);
}

#[test]
fn variables_are_parsed_with_defaults_and_named_errors() {
    let c = Config::from_lookup(|_| None).unwrap();
    assert_eq!(c, Config::default());
    let c = Config::from_lookup(|n| match n {
        "outbox_retention_days" => Some("30".into()),
        "ops_password" => Some("  ".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!((c.retention_days, c.ops_password), (30, None));
    let e = Config::from_lookup(|n| (n == "retention_batch_size").then(|| "0".into())).unwrap_err();
    assert!(e.contains("retention_batch_size"), "{e}");
    let e =
        Config::from_lookup(|n| (n == "ledger_retention_days").then(|| "0".into())).unwrap_err();
    assert!(e.contains("ledger_retention_days"), "{e}");
    let e =
        Config::from_lookup(|n| (n == "health_max_pending_age_s").then(|| "x".into())).unwrap_err();
    assert!(e.contains("health_max_pending_age_s"), "{e}");
}

#[test]
fn unknown_routes_are_404() {
    let mut db = FakeDb::default();
    assert_eq!(handle(&req("GET", "/nope"), &cfg(), &mut db).status, 404);
    assert_eq!(
        handle(&basic(req("GET", "/ops/nope"), "pw"), &cfg(), &mut db).status,
        404
    );
    // Trailing slashes and queries are tolerated.
    let mut db = FakeDb {
        dashboard: Some(dashboard_json()),
        ..Default::default()
    };
    assert_eq!(
        handle(
            &basic(req("GET", "/ops/?requeued=x"), "pw"),
            &cfg(),
            &mut db
        )
        .status,
        200
    );
}

#[test]
fn error_answers_are_one_json_shape_with_their_headers_after_the_security_headers() {
    let mut db = FakeDb::default();
    let r = handle(&req("POST", "/health"), &cfg(), &mut db);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"error": "method_not_allowed", "message": "use GET, HEAD"})
    );
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("allow", "GET, HEAD"),
        ]
    );

    // A failed purge also says how far it got.
    let mut down = FakeDb {
        down: true,
        ..Default::default()
    };
    let mut authed = req("POST", "/ops/retention");
    authed
        .headers
        .push(("authorization".into(), "Bearer tok".into()));
    let r = handle(&authed, &cfg(), &mut down);
    assert_eq!((r.status, r.header("retry-after")), (503, Some("5")));
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"error": "database_unavailable", "message": "purge failed",
               "deleted": 0, "batches": 0})
    );
    let r = payload_too_large();
    assert_eq!(r.status, 413);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap()["error"],
        "payload_too_large"
    );
}

/// `req` with `Authorization: Bearer <token>`.
fn bearer(mut r: Request, token: &str) -> Request {
    r.headers
        .push(("authorization".into(), format!("Bearer {token}")));
    r
}

#[test]
fn each_token_door_opens_with_any_token_of_its_comma_list_and_no_other() {
    // SPEC §15: ops_token opens the cron's ops calls, metrics_token /metrics; a comma list
    // is a rotation. Another door's token opens neither.
    let c = Config {
        ops_token: Some("ops-new, ops-old".into()),
        metrics_token: Some("metrics-new,metrics-old".into()),
        ..cfg()
    };
    // /ops/alerts/evaluate is served by the component through alerts::begin: past the
    // token, the alert configuration given here fails (500), so 500 means "opened".
    let unconfigured = Err(&"no alert configuration".to_string());
    for wrong in ["metrics-new", "ops-new, ops-old", "tok", ""] {
        let mut db = FakeDb::default();
        let r = handle(&bearer(req("POST", "/ops/retention"), wrong), &c, &mut db);
        assert_eq!(r.status, 401, "/ops/retention with {wrong:?}: {}", r.text());
        assert!(r.text().contains("ops_token"), "{}", r.text());
        assert!(db.calls.is_empty(), "refused before any SQL");
        let evaluate = bearer(req("POST", "/ops/alerts/evaluate"), wrong);
        let r = alerts::begin(&evaluate, &c, unconfigured, &mut db).expect_err("refused");
        assert_eq!(r.status, 401, "/ops/alerts/evaluate with {wrong:?}");
        assert!(r.text().contains("ops_token"), "{}", r.text());
        assert!(db.calls.is_empty(), "refused before any SQL");
    }
    for good in ["ops-new", "ops-old"] {
        let mut db = FakeDb::default();
        let r = handle(&bearer(req("POST", "/ops/retention"), good), &c, &mut db);
        assert_eq!(r.status, 200, "{good}: {}", r.text());
        let evaluate = bearer(req("POST", "/ops/alerts/evaluate"), good);
        let r = alerts::begin(&evaluate, &c, unconfigured, &mut db)
            .expect_err("fails on the alert configuration");
        assert_eq!(r.status, 500, "{good} opens /ops/alerts/evaluate");
    }
    let mut db = FakeDb::default();
    for wrong in ["ops-new", "metrics-new,metrics-old"] {
        let r = handle(&bearer(req("GET", "/metrics"), wrong), &c, &mut db);
        assert_eq!(r.status, 401, "/metrics with {wrong:?}");
        assert!(r.text().contains("metrics_token"), "{}", r.text());
    }
    for good in ["metrics-new", "metrics-old"] {
        let r = handle(&bearer(req("GET", "/metrics"), good), &c, &mut db);
        assert_eq!(r.status, 200, "/metrics with {good}");
    }
    // Without ops_token the ops calls are misconfigured, never open.
    let r = handle(
        &bearer(req("POST", "/ops/retention"), "ops-new"),
        &cfg_without_ops_token(),
        &mut FakeDb::default(),
    );
    assert_eq!(r.status, 500);
    assert!(r.text().contains("ops_token"), "{}", r.text());
}

fn cfg_without_ops_token() -> Config {
    Config {
        ops_token: None,
        ..cfg()
    }
}

#[test]
fn a_throttled_client_gets_429_with_retry_after_even_with_the_right_password() {
    let mut db = FakeDb {
        dashboard: Some(dashboard_json()),
        throttled_for: 42,
        ..Default::default()
    };
    for password in ["pw", "wrong"] {
        let mut r = req("GET", "/ops");
        r.headers.push((
            "authorization".into(),
            format!("Basic {}", STANDARD.encode(format!("ops:{password}"))),
        ));
        r.headers
            .push(("spin-client-addr".into(), "203.0.113.7:50123".into()));
        let answer = handle(&r, &cfg(), &mut db);
        assert_eq!(answer.status, 429, "{password}: {}", answer.text());
        assert_eq!(answer.header("retry-after"), Some("42"));
        assert!(!answer.text().contains("Dashboard"), "nothing served");
    }
    // Each attempt was counted by the client's address, the wrong one as a failure, and
    // nothing else was asked.
    assert_eq!(
        db.auth_attempts,
        vec![
            vec!["203.0.113.7".to_string(), "false".to_string()],
            vec!["203.0.113.7".to_string(), "true".to_string()]
        ]
    );
    assert!(db.calls.is_empty(), "{:?}", db.calls);
    // A throttle that cannot be asked lets nobody in.
    db.down = true;
    let mut r = req("GET", "/ops");
    r.headers.push((
        "authorization".into(),
        format!("Basic {}", STANDARD.encode("ops:pw")),
    ));
    let answer = handle(&r, &cfg(), &mut db);
    assert_eq!(
        (answer.status, answer.header("retry-after")),
        (503, Some("5"))
    );
}

mod replay;
