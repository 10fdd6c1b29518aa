//! The handlers' side-effect ledger (`claim_delivery`, `finish_delivery`: SPEC §5
//! deliveries), called with the very statements the handlers send
//! (`ipai_effects::deliveries`) as the app's role, against a real PostgreSQL:
//! - a claim is granted once; a second claimant is told `busy` while the lease runs and
//!   `done` with the recorded detail once the effect is finished;
//! - `finish_delivery` records status, response code and a detail cut to 2,000
//!   characters, and says whether anything was claimed under the key;
//! - a failed effect, or a claim whose lease expired (its performer died), is claimed
//!   again with one more attempt;
//! - what `/metrics` reads follows each delivery: pending, settled, claimed again, released;
//! - the claim made before a look-up (`claim_report_message_and_delivery`) claims the
//!   delivery only for the event that owns the report's message, and a claim handed back
//!   (`release_delivery`) leaves the ledger as it was before it: no row for a first claim,
//!   the earlier failure (detail and attempts) for a claim that took one over;
//! - a row a replay reopened (`redo`) is claimed with its redo count, which its retries and a
//!   released claim keep, so every attempt of one redo uses one provider key.
//!
//! Where a lease must expire the test moves `updated_at` back: that simulates the clock and
//! nothing else.

use ipai_effects::deliveries::{
    CLAIM_BEFORE_LOOKUP_SQL, CLAIM_SQL, FINISH_SQL, LEASE_S, RELEASE_SQL,
};
use ipai_tests::TestDb;
use tokio_postgres::Client;

const EVENT: &str = "00000000-0000-4000-8000-000000000017";

async fn app(db: &TestDb) -> Client {
    ipai_tests::db::connect(&db.app_url()).await
}

/// `(decision, detail)` of a claim of `(EVENT, mattermost, target)`.
async fn claim(c: &Client, target: &str) -> (String, String) {
    let row = c
        .query_one(CLAIM_SQL, &[&EVENT, &"mattermost", &target, &LEASE_S])
        .await
        .expect("claim_delivery");
    (row.get(0), row.get(1))
}

async fn finish(c: &Client, target: &str, status: &str, code: i32, detail: &str) -> bool {
    c.query_one(
        FINISH_SQL,
        &[&EVENT, &"mattermost", &target, &status, &code, &detail],
    )
    .await
    .expect("finish_delivery")
    .get(0)
}

/// `(status, response_code, detail length, attempts)` of the delivery to `target`.
async fn row(db: &TestDb, target: &str) -> (String, Option<i32>, Option<i32>, i32) {
    let r = db
        .client
        .query_one(
            "SELECT status, response_code, length(detail), attempts FROM integration.deliveries \
             WHERE event_id = $1::text::uuid AND channel = 'mattermost' AND target = $2",
            &[&EVENT, &target],
        )
        .await
        .expect("the delivery row");
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_granted_once_and_a_finished_effect_is_done_with_its_detail() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    assert_eq!(claim(&c, "town-square").await.0, "send");
    assert_eq!(
        claim(&c, "town-square").await.0,
        "busy",
        "a second claimant while the first performs"
    );
    let long = "x".repeat(3_000);
    assert!(finish(&c, "town-square", "sent", 200, &long).await);
    assert_eq!(
        row(&db, "town-square").await,
        ("sent".into(), Some(200), Some(2_000), 1),
        "status, response code, detail cut to 2,000 characters, one attempt"
    );
    assert_eq!(
        claim(&c, "town-square").await,
        ("done".into(), "x".repeat(2_000))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_what_was_never_claimed_changes_nothing_and_says_so() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    assert!(!finish(&c, "nobody-claimed-this", "sent", 200, "ok").await);
    assert_eq!(db.count("deliveries").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_effect_or_an_expired_claim_is_claimed_again_with_one_more_attempt() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    assert_eq!(claim(&c, "failed").await.0, "send");
    assert!(finish(&c, "failed", "failed", 502, "bad gateway").await);
    assert_eq!(claim(&c, "failed").await.0, "send");
    assert_eq!(
        row(&db, "failed").await,
        ("pending".into(), None, Some(11), 2)
    );

    assert_eq!(claim(&c, "died").await.0, "send");
    db.client
        .execute(
            "UPDATE integration.deliveries SET updated_at = now() - make_interval(secs => $1 + 1) \
             WHERE target = 'died'",
            &[&LEASE_S],
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&c, "died").await.0,
        "send",
        "the performer died: its lease expired"
    );
    assert_eq!(row(&db, "died").await.3, 2);
}

/// The `deliveries` part of what `/metrics` reads (`ipai_ops::data::metrics_sql`):
/// `(channel, status, count)` rows.
async fn metrics_deliveries(c: &Client) -> Vec<(String, String, i64)> {
    let row = c
        .query_one(&ipai_ops::data::metrics_sql(), &[&"600"])
        .await
        .expect("the /metrics statement");
    let metrics: serde_json::Value = row.get(0);
    metrics["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| {
            (
                d["channel"].as_str().unwrap_or_default().to_string(),
                d["status"].as_str().unwrap_or_default().to_string(),
                d["count"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_each_delivery_from_claimed_to_settled_and_claimed_again() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    let row = |ch: &str, st: &str, n: i64| (ch.to_string(), st.to_string(), n);
    for target in ["a", "b"] {
        assert_eq!(claim(&c, target).await.0, "send");
    }
    assert_eq!(
        metrics_deliveries(&c).await,
        [row("mattermost", "pending", 2)]
    );
    assert!(finish(&c, "a", "sent", 200, "ok").await);
    assert!(finish(&c, "b", "failed", 500, "down").await);
    assert_eq!(
        metrics_deliveries(&c).await,
        [row("mattermost", "failed", 1), row("mattermost", "sent", 1)]
    );
    // The failed one claimed again: pending once more, no longer failed.
    assert_eq!(claim(&c, "b").await.0, "send");
    assert_eq!(
        metrics_deliveries(&c).await,
        [
            row("mattermost", "pending", 1),
            row("mattermost", "sent", 1)
        ]
    );
}

/// `(owner, decision, detail)` of the claim before a look-up of `(event, mattermost,
/// target)`, with report message `key` when given.
async fn claim_before_look_up(
    c: &Client,
    key: Option<&str>,
    event: &str,
    target: &str,
) -> (String, String, String) {
    let row = c
        .query_one(
            CLAIM_BEFORE_LOOKUP_SQL,
            &[&key, &event, &"mattermost", &target, &LEASE_S],
        )
        .await
        .expect("claim_report_message_and_delivery");
    (row.get(0), row.get(1), row.get(2))
}

async fn release(c: &Client, target: &str) -> bool {
    c.query_one(RELEASE_SQL, &[&EVENT, &"mattermost", &target])
        .await
        .expect("release_delivery")
        .get(0)
}

const OTHER_LINE: &str = "00000000-0000-4000-8000-000000000018";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_before_a_look_up_claims_only_for_the_event_that_owns_the_report_message() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    let key = Some("hr.expense.sheet/310@2026-11-24T01:15:00Z");
    assert_eq!(
        claim_before_look_up(&c, key, EVENT, "approval-request").await,
        (EVENT.into(), "send".into(), String::new()),
        "the first line owns the message and claims its delivery"
    );
    assert_eq!(
        claim_before_look_up(&c, key, OTHER_LINE, "approval-request").await,
        (EVENT.into(), String::new(), String::new()),
        "another line of the report: told the owner, nothing claimed"
    );
    assert_eq!(
        claim_before_look_up(&c, key, EVENT, "approval-request")
            .await
            .1,
        "busy",
        "the owner's redelivery while the first attempt performs"
    );
    assert!(finish(&c, "approval-request", "sent", 200, "ok").await);
    assert_eq!(
        claim_before_look_up(&c, key, EVENT, "approval-request").await,
        (EVENT.into(), "done".into(), "ok".into())
    );
    assert_eq!(
        claim_before_look_up(&c, None, EVENT, "@juan.delacruz").await,
        (String::new(), "send".into(), String::new()),
        "without a report message: the delivery's claim alone"
    );
    let deliveries_of_other_line: i64 = db
        .client
        .query_one(
            "SELECT count(*) FROM integration.deliveries WHERE event_id = $1::text::uuid",
            &[&OTHER_LINE],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(deliveries_of_other_line, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_claim_leaves_the_ledger_as_it_was_and_is_claimed_again_at_once() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    // A first claim handed back: as if never claimed.
    assert_eq!(claim(&c, "fresh").await.0, "send");
    assert!(release(&c, "fresh").await);
    assert_eq!(db.count("deliveries").await, 0);
    assert!(!release(&c, "fresh").await, "nothing pending any more");
    assert_eq!(claim(&c, "fresh").await.0, "send", "claimed again at once");

    // A claim that took over a failure, handed back: the failure as it was.
    assert_eq!(claim(&c, "failed").await.0, "send");
    assert!(finish(&c, "failed", "failed", 502, "bad gateway").await);
    assert_eq!(claim(&c, "failed").await.0, "send");
    assert!(release(&c, "failed").await);
    let (status, _, detail_len, attempts) = row(&db, "failed").await;
    assert_eq!(
        (status.as_str(), detail_len, attempts),
        ("failed", Some(11), 1)
    );
    assert_eq!(claim(&c, "failed").await.0, "send", "claimed again at once");

    // A finished delivery is not pending: release changes nothing.
    assert!(finish(&c, "fresh", "sent", 200, "ok").await);
    assert!(!release(&c, "fresh").await);
    assert_eq!(row(&db, "fresh").await.0, "sent");

    let metrics = metrics_deliveries(&c).await;
    assert_eq!(
        metrics,
        [
            ("mattermost".to_string(), "pending".to_string(), 1),
            ("mattermost".to_string(), "sent".to_string(), 1)
        ],
        "the counters follow releases too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_effect_is_claimed_with_its_redo_count_and_keeps_it_through_retries() {
    let db = TestDb::new().await.unwrap();
    let c = app(&db).await;
    assert_eq!(claim(&c, "town-square").await, ("send".into(), "".into()));
    assert!(finish(&c, "town-square", "sent", 200, "ok").await);
    // What replay_step does to the rows of the effect kinds named by --redo-effects.
    let reopen = "UPDATE integration.deliveries SET status = 'redo', redo = redo + 1 \
                  WHERE event_id = $1::text::uuid";
    db.client.execute(reopen, &[&EVENT]).await.unwrap();
    assert_eq!(
        claim(&c, "town-square").await,
        ("send".into(), "1".into()),
        "the first redo"
    );
    assert!(finish(&c, "town-square", "failed", 503, "down").await);
    assert_eq!(
        claim(&c, "town-square").await,
        ("send".into(), "1".into()),
        "its retry: the same redo, the same key"
    );
    let released: bool = c
        .query_one(RELEASE_SQL, &[&EVENT, &"mattermost", &"town-square"])
        .await
        .unwrap()
        .get(0);
    assert!(released);
    assert_eq!(claim(&c, "town-square").await.1, "1", "after a release too");
    assert!(finish(&c, "town-square", "sent", 200, "ok").await);
    assert_eq!(claim(&c, "town-square").await.0, "done");
    db.client.execute(reopen, &[&EVENT]).await.unwrap();
    assert_eq!(
        claim(&c, "town-square").await,
        ("send".into(), "2".into()),
        "a second replay with redo: a second redo"
    );
}
