//! SPEC §12: replay by filter, with a dry run. After an incident (the email API refused
//! for a window) an operator asks `ipai replay` what a replay would do — which events, and
//! per event the side effects the ledger records (skipped) and those that would run — and
//! only `--execute` changes anything: the events are requeued in bounded steps, the
//! handlers run with the ledger still deciding, each missing effect is performed once, and
//! nothing else is touched. An interrupted replay run again resumes and doubles nothing;
//! a filter over 100,000 events plans and executes without stalling ingest.
//!
//! On the shipped defaults (kick, cron, chaining on) with loopback stand-ins of the email
//! API and Google; the `ipai` command is the built binary, as an operator runs it.

use ipai_tests::ipai_bin::{ipai, text};
use ipai_tests::services::Services;
use ipai_tests::{Fixture, TestDb};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A reservation of booking `n`: an email to its employee (`e<n>@example.com`) and a
/// calendar event (`booking/<n>`).
fn reservation(n: u64) -> Value {
    json!({"event_type": "asset.reserved", "aggregate_type": "asset_booking",
           "aggregate_id": n.to_string(),
           "payload": {"booking_id": n, "asset_id": 12, "asset_name": "Projector Epson EB-X51",
                       "asset_code": "PRJ-0012", "employee_id": n, "employee_name": "Juan dela Cruz",
                       "employee_email": format!("e{n}@example.com"),
                       "start": "2026-11-27T01:00:00Z", "end": "2026-11-27T09:00:00Z",
                       "location": "Makati HQ, 12F", "status": "reserved"}})
}

/// Ingests bookings `range`, 16 at a time; returns their outbox ids.
async fn ingest_bookings(f: &Fixture, range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let mut ids = Vec::new();
    let all: Vec<u64> = range.collect();
    for chunk in all.chunks(16) {
        let events: Vec<(String, Value)> = chunk
            .iter()
            .map(|n| (format!("replay-{n}"), reservation(*n)))
            .collect();
        let posts = events.iter().map(|(key, event)| f.ingest(key, event));
        ids.extend(futures::future::join_all(posts).await);
    }
    ids
}

/// Waits until `n` rows of the outbox have `status` (or 120 s).
async fn wait_count(f: &Fixture, status: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let have: i64 =
            f.db.client
                .query_one(
                    "SELECT count(*) FROM integration.outbox WHERE status = $1",
                    &[&status],
                )
                .await
                .unwrap()
                .get(0);
        if have == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{have} rows {status}, expected {n}:\n{}",
            f.sys.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The recipients of the emails the stand-in accepted after its first `skip` requests.
fn recipients_after(svc: &Services, skip: usize) -> Vec<String> {
    svc.emails()
        .into_iter()
        .skip(skip)
        .map(|(b, _)| b["to"][0].as_str().unwrap_or_default().to_string())
        .collect()
}

fn calendar_inserts(svc: &Services) -> usize {
    svc.google_requests("/events").len()
}

async fn replay(f: &Fixture, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["replay", "--database-url", &f.db.url];
    all.extend_from_slice(args);
    let out = ipai(&all, &[]).await;
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_refusals_is_planned_exactly_and_replayed_once_touching_nothing_else() {
    let svc = Services::start().await;
    let f = Fixture::with(|v| svc.configure(v)).await.unwrap();

    // 700 reservations delivered: an email and a calendar event each.
    ingest_bookings(&f, 1..=700).await;
    wait_count(&f, "done", 700).await;

    // The email API refuses for a window: 300 reservations get their calendar event but
    // not their email, fail, and (their attempts spent) become dead letters.
    svc.email
        .respond_with(503, r#"{"message":"Service Unavailable"}"#);
    let window = ingest_bookings(&f, 701..=1000).await;
    wait_count(&f, "done", 700).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while f
        .db
        .value::<i64>("SELECT count(*) FROM integration.outbox WHERE status IN ('failed', 'dead')")
        .await
        < 300
    {
        assert!(
            Instant::now() < deadline,
            "the window's events did not fail:\n{}",
            f.sys.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    f.db.client
        .execute(
            "UPDATE integration.outbox SET max_attempts = greatest(attempts, 1), \
                 next_attempt_at = now() WHERE status IN ('failed', 'processing', 'pending')",
            &[],
        )
        .await
        .unwrap();
    wait_count(&f, "dead", 300).await;
    svc.email
        .respond_with(200, r#"{"id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}"#);
    let emails_before = svc.email.requests().len();
    let calendar_before = calendar_inserts(&svc);
    let untouched_before: Vec<String> =
        f.db.column(
            "SELECT id::text || ' ' || updated_at::text || ' ' || done_at::text \
               FROM integration.outbox WHERE status = 'done' ORDER BY seq",
            &[],
        )
        .await;

    // The dry run: exactly the 300, each lacking its email, its calendar event recorded.
    let (ok, out, err) = replay(&f, &["--status", "dead", "--json"]).await;
    assert!(ok, "{err}");
    let plan: Value = serde_json::from_str(&out).expect("the plan is JSON");
    assert_eq!(plan["matched"], 300, "{err}");
    assert_eq!(plan["followers"], 0);
    assert_eq!(plan["executed"], false);
    let events = plan["events"].as_array().expect("events");
    assert_eq!(events.len(), 300);
    let planned: BTreeSet<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(planned, window.iter().cloned().collect::<BTreeSet<_>>());
    for e in events {
        let n: u64 =
            f.db.value::<String>(&format!(
                "SELECT aggregate_id FROM integration.outbox WHERE id = '{}'",
                e["id"].as_str().unwrap_or_default()
            ))
            .await
            .parse()
            .expect("a booking number");
        assert_eq!(e["status"], "dead");
        assert_eq!(e["run"], json!([format!("email:e{n}@example.com")]), "{e}");
        assert_eq!(
            e["skip"],
            json!([format!("google_calendar:booking/{n}")]),
            "{e}"
        );
    }
    // The text plan says the same, and a dry run changes nothing.
    let (ok, out, _) = replay(&f, &["--status", "dead", "--list", "3"]).await;
    assert!(ok);
    assert!(out.starts_with("300 event(s) match (300 dead)"), "{out}");
    assert!(
        out.contains("Effects: 300 would run, 300 recorded as performed would be skipped"),
        "{out}"
    );
    assert!(out.contains("… 297 more not listed"), "{out}");
    assert!(out.contains("Dry run: nothing changed"), "{out}");
    assert_eq!(
        f.db.value::<i64>("SELECT count(*) FROM integration.outbox WHERE status = 'dead'")
            .await,
        300
    );
    assert_eq!(f.db.count("replays").await, 0, "a dry run is not a replay");

    // Execute: each missing email sent once, no calendar event again, the 700 untouched.
    let (ok, out, err) = replay(&f, &["--status", "dead", "--execute", "--by", "alice"]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("300 event(s) requeued"), "{out}");
    wait_count(&f, "done", 1000).await;
    let sent = recipients_after(&svc, emails_before);
    let expected: Vec<String> = (701..=1000).map(|n| format!("e{n}@example.com")).collect();
    let mut got = sent.clone();
    got.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(got, want, "each missing email exactly once, no other");
    assert_eq!(
        calendar_inserts(&svc),
        calendar_before,
        "no calendar event again"
    );
    let untouched_after: Vec<String> =
        f.db.column(
            "SELECT id::text || ' ' || updated_at::text || ' ' || done_at::text \
               FROM integration.outbox WHERE NOT (id::text = ANY($1)) ORDER BY seq",
            &[&window],
        )
        .await;
    assert_eq!(untouched_after, untouched_before, "the other 700 untouched");

    // The audit: who, how, what.
    let audit: Value =
        f.db.value("SELECT to_jsonb(r) FROM integration.replays AS r")
            .await;
    assert!(
        audit["requested_by"]
            .as_str()
            .unwrap_or_default()
            .starts_with("alice"),
        "{audit}"
    );
    assert_eq!(audit["via"], "cli");
    assert_eq!(audit["filter"], json!({"statuses": ["dead"]}));
    assert_eq!(audit["matched"], 300);
    assert_eq!(audit["requeued"], 300);
    assert_eq!(audit["redone"], 0);
    assert!(!audit["finished_at"].is_null(), "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_replay_run_again_resumes_and_performs_each_redone_effect_once() {
    let svc = Services::start().await;
    let f = Fixture::with(|v| svc.configure(v)).await.unwrap();
    ingest_bookings(&f, 1..=20).await;
    wait_count(&f, "done", 20).await;
    let emails_before = svc.email.requests().len();
    let calendar_before = calendar_inserts(&svc);

    // An operator asked to send every reservation's email again; the command died after
    // its first step (5 events), as `ipai replay` leaves it: begun and stepped once.
    let filter = ipai_replay::FilterInput {
        event_type: Some("asset.*".into()),
        status: Some("done".into()),
        ..Default::default()
    }
    .check()
    .expect("a valid filter");
    let begun: Value =
        f.db.client
            .query_one(
                "SELECT integration.replay_begin('bob', 'cli', $1::text::jsonb, ARRAY['email'])",
                &[&filter.to_json().to_string()],
            )
            .await
            .unwrap()
            .get(0);
    let id = begun["replay"].as_i64().expect("a replay id");
    f.db.client
        .query_one("SELECT integration.replay_step($1, 5)", &[&id])
        .await
        .unwrap();
    wait_count(&f, "done", 20).await;
    assert_eq!(recipients_after(&svc, emails_before).len(), 5);

    // Run again: the same replay resumes with the 15 it had not reached.
    let (ok, out, err) = replay(
        &f,
        &[
            "--type",
            "asset.*",
            "--status",
            "done",
            "--redo-effects",
            "email",
            "--execute",
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "Replay #{id} (resumed): 15 event(s) requeued, 15 recorded effect(s) reopened"
        )),
        "{out}"
    );
    wait_count(&f, "done", 20).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while recipients_after(&svc, emails_before).len() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut sent = recipients_after(&svc, emails_before);
    sent.sort();
    let mut want: Vec<String> = (1..=20).map(|n| format!("e{n}@example.com")).collect();
    want.sort();
    assert_eq!(sent, want, "every email once more, none twice");
    // Each redo went to Resend under a key of its own: under the first one Resend would
    // answer from its record (24 h) and send nothing.
    let emails = svc.emails();
    let first_keys: Vec<&String> = emails[..emails_before].iter().map(|(_, k)| k).collect();
    for (_, key) in &emails[emails_before..] {
        assert!(key.ends_with("#redo1"), "{key}");
        assert!(
            first_keys.contains(&&key.trim_end_matches("#redo1").to_string()),
            "{key} is the redo of a first key"
        );
    }
    assert_eq!(
        calendar_inserts(&svc),
        calendar_before,
        "calendar not redone"
    );
    // The ledger records the redo as such, and the effect as sent again.
    let redone: Vec<String> =
        f.db.column(
            "SELECT status || ' ' || detail FROM integration.deliveries WHERE channel = 'email'",
            &[],
        )
        .await;
    assert_eq!(redone.len(), 20);
    assert!(redone.iter().all(|r| r.starts_with("sent")), "{redone:?}");
    let audit: Value =
        f.db.value("SELECT to_jsonb(r) FROM integration.replays AS r")
            .await;
    assert_eq!(audit["redone"], 20);
    assert_eq!(audit["requeued"], 20);
    assert_eq!(audit["redo_effects"], json!(["email"]));
    assert!(!audit["finished_at"].is_null());

    // One booking's calendar event booked again: a new event id, so Google creates it
    // instead of answering 409 for the first.
    let (ok, out, err) = replay(
        &f,
        &[
            "--aggregate",
            "asset_booking/3",
            "--status",
            "done",
            "--redo-effects",
            "google_calendar",
            "--execute",
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while calendar_inserts(&svc) == calendar_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inserts = svc.google_requests("/events");
    assert_eq!(inserts.len(), calendar_before + 1, "booking 3 once more");
    let redone_id = inserts[calendar_before].json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first_ids: Vec<String> = inserts[..calendar_before]
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        redone_id.ends_with("r1")
            && first_ids.contains(&redone_id[..redone_id.len() - 2].to_string()),
        "{redone_id} is booking 3's first id with r1"
    );
    wait_count(&f, "done", 20).await;
    let ledger: String =
        f.db.value(
            "SELECT d.status || ' ' || d.redo FROM integration.deliveries d \
               JOIN integration.outbox o ON o.id = d.event_id \
              WHERE o.aggregate_id = '3' AND d.channel = 'google_calendar'",
        )
        .await;
    assert_eq!(ledger, "sent 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_filter_names_its_field_and_changes_nothing() {
    let db = TestDb::new().await.unwrap();
    for (args, field) in [
        (vec!["--status", "pending"], "status"),
        (vec!["--since", "yesterday"], "since"),
        (vec!["--target", "payroll"], "target"),
        (vec!["--redo-effects", "odoo"], "redo-effects"),
        (vec!["--type", "expense.'; drop table"], "type"),
    ] {
        let mut all = vec!["replay", "--database-url", &db.url, "--execute"];
        all.extend_from_slice(&args);
        let out = ipai(&all, &[]).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("ipai replay: {field}:")),
            "{stderr}"
        );
    }
    assert_eq!(db.count("replays").await, 0);
    // An unreachable database is an error of its own (exit 1), not a refused filter.
    let out = ipai(
        &[
            "replay",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot connect"), "{}", text(&out).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_events_plan_and_replay_without_stalling_ingest() {
    const N: i64 = 100_000;
    let db = TestDb::new().await.unwrap();
    db.client
        .batch_execute(&format!(
            "INSERT INTO integration.outbox (event_type, aggregate_type, aggregate_id, payload, \
                 idempotency_key, body_sha256, status, done_at) \
             SELECT 'asset.reserved', 'asset_booking', g::text, \
                    jsonb_build_object('booking_id', g, 'asset_name', 'Projector', \
                        'employee_email', 'e' || g || '@example.com', \
                        'start', '2026-11-27T01:00:00Z', 'end', '2026-11-27T09:00:00Z'), \
                    'bulk-' || g, 'sha', 'done', now() \
               FROM generate_series(1, {N}) AS g; \
             INSERT INTO integration.deliveries (event_id, channel, target, status) \
             SELECT id, 'email', 'e' || aggregate_id || '@example.com', 'sent' \
               FROM integration.outbox; \
             ANALYZE integration.outbox; ANALYZE integration.deliveries;"
        ))
        .await
        .unwrap();

    // The plan of every one of them.
    let started = Instant::now();
    let out = ipai(
        &[
            "replay",
            "--database-url",
            &db.url,
            "--status",
            "done",
            "--json",
        ],
        &[],
    )
    .await;
    let planned_in = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(plan["matched"], N);
    let events = plan["events"].as_array().expect("events");
    assert_eq!(events.len() as i64, N);
    assert_eq!(plan["effects"], json!({"run": N, "skip": N}));
    assert_eq!(events[41]["skip"], json!(["email:e42@example.com"]));
    assert_eq!(events[41]["run"], json!(["google_calendar:booking/42"]));
    eprintln!("planned {N} events in {planned_in:?}");

    // Execute while ingest keeps storing events: ingest is never stalled.
    let ingest = ipai_tests::db::connect(&db.ingest_url()).await;
    let replaying = tokio::spawn({
        let url = db.url.clone();
        async move {
            let out = ipai(
                &[
                    "replay",
                    "--database-url",
                    &url,
                    "--status",
                    "done",
                    "--execute",
                ],
                &[],
            )
            .await;
            (out.status.success(), text(&out))
        }
    });
    let mut slowest = Duration::ZERO;
    let mut stored = 0;
    while !replaying.is_finished() {
        let t = Instant::now();
        ingest
            .query_one(
                "SELECT integration.ingest_event('asset.reserved', 'asset_booking', $1, \
                     '{\"booking_id\": 1}', $1, 'sha', NULL, 'odoo')",
                &[&format!("during-{stored}")],
            )
            .await
            .expect("ingest stores while the replay runs");
        slowest = slowest.max(t.elapsed());
        stored += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (ok, (out, err)) = replaying.await.unwrap();
    assert!(ok, "{out}\n{err}");
    eprintln!("replayed {N} events; {stored} events ingested meanwhile, slowest {slowest:?}");
    assert!(
        stored > 0,
        "the replay ended before ingest could be measured"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "ingest stalled {slowest:?} behind the replay"
    );
    let pending: i64 = db
        .value("SELECT count(*) FROM integration.outbox WHERE status = 'pending' AND idempotency_key LIKE 'bulk-%'")
        .await;
    assert_eq!(pending, N);
    let audit: Value = db
        .value("SELECT to_jsonb(r) FROM integration.replays AS r")
        .await;
    assert_eq!(audit["requeued"], N);
    assert!(!audit["finished_at"].is_null());
}
