//! The handlers' side-effect ledger (`claim_delivery`, `finish_delivery`: SPEC §5
//! deliveries), called with the very statements the handlers send
//! (`ipai_effects::deliveries`) as the app's role, against a real PostgreSQL:
//! - a claim is granted once; a second claimant is told `busy` while the lease runs and
//!   `done` with the recorded detail once the effect is finished;
//! - `finish_delivery` records status, response code and a detail cut to 2,000
//!   characters, and says whether anything was claimed under the key;
//! - a failed effect, or a claim whose lease expired (its performer died), is claimed
//!   again with one more attempt;
//! - what `/metrics` reads follows each delivery: pending, settled, claimed again.
//!
//! Where a lease must expire the test moves `updated_at` back: that simulates the clock and
//! nothing else.

use ipai_effects::deliveries::{CLAIM_SQL, FINISH_SQL, LEASE_S};
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
