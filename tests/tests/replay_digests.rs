//! Issue #34 item 7, replay digests (migration 20261207000500): ingest remembers the
//! digest of every IPAI signature whose check passed for 24 hours, far past the ±300 s
//! timestamp tolerance, and also when the request stored nothing (its store failed, or it
//! was refused after the check): such a signature is spent, and the captured request
//! cannot be sent again later to succeed, under any key. The sender's retry, signed
//! anew, succeeds. End to end under `IPAI_RUNTIME`, and the SQL contract directly.

use ipai_tests::signing::expense_submitted as expense;
use ipai_tests::signing::status_and_body as answer;
use ipai_tests::{signed_request, Fixture, TestDb};
use serde_json::json;

const SECRET: &str = "test-secret";

async fn events(f: &Fixture) -> i64 {
    f.db.count("event_log").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_whose_store_failed_is_spent_and_the_resigned_retry_succeeds() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    // The database refuses the store (a rule the bus does not know about): 5xx.
    f.db.client
        .batch_execute(
            "ALTER TABLE integration.outbox ADD CONSTRAINT not_now \
             CHECK (aggregate_id <> '4300')",
        )
        .await
        .unwrap();
    let captured = signed_request(SECRET, "exp-4300-submit", &expense("4300"));
    let (status, body) = answer(captured.post(&f.http, &url).await.unwrap()).await;
    assert!(status >= 500, "{status} {body}");

    // The database is fine again. The captured request, sent again, under its own key or
    // another: refused as a replay, nothing stored.
    f.db.client
        .batch_execute("ALTER TABLE integration.outbox DROP CONSTRAINT not_now")
        .await
        .unwrap();
    for key in ["exp-4300-submit", "exp-4300-other"] {
        let replay = captured.clone().set("x-idempotency-key", key);
        let (status, body) = answer(replay.post(&f.http, &url).await.unwrap()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("replayed_signature")),
            "{key}: {body}"
        );
    }
    assert_eq!(events(&f).await, 0);

    // The sender's retry signs anew (a fresh timestamp): stored.
    let retry = signed_request(SECRET, "exp-4300-submit", &expense("4300"));
    let (status, body) = answer(retry.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(events(&f).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_request_spends_its_signature_and_a_refused_one_keeps_its_digest() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let first = signed_request(SECRET, "exp-4400", &expense("4400"));
    assert_eq!(
        answer(first.post(&f.http, &url).await.unwrap()).await.0,
        202
    );
    // Same key, another body: 409 conflict. Sent again under a fresh key, it used to be
    // stored; its signature is spent now.
    let conflicting = signed_request(SECRET, "exp-4400", &expense("4401"));
    let (status, body) = answer(conflicting.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let replay = conflicting
        .clone()
        .set("x-idempotency-key", "exp-4401-fresh");
    let (status, body) = answer(replay.post(&f.http, &url).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("replayed_signature")),
        "{body}"
    );
    assert_eq!(events(&f).await, 1);

    // Refused after its signature check (a value PostgreSQL cannot store): its digest is
    // kept, spent.
    let mut poison = expense("4402");
    poison["payload"]["note"] = json!("a\u{0}b");
    let refused = signed_request(SECRET, "exp-4402", &poison);
    assert_eq!(
        answer(refused.post(&f.http, &url).await.unwrap()).await.0,
        422
    );
    let spent: Vec<(String, bool)> = f
        .db
        .client
        .query(
            "SELECT idempotency_key, stored FROM integration.ingest_signatures ORDER BY idempotency_key, stored",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        spent,
        vec![
            ("exp-4400".into(), false),
            ("exp-4400".into(), true),
            ("exp-4402".into(), false)
        ]
    );
    // A request whose signature does not pass spends nothing.
    let forged = refused.clone().set("x-ipai-signature", &"0".repeat(64));
    assert_eq!(
        answer(forged.post(&f.http, &url).await.unwrap()).await.0,
        401
    );
    assert_eq!(f.db.count("ingest_signatures").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_are_kept_a_day_and_retention_purges_them_afterwards() {
    let db = TestDb::new().await.unwrap();
    let c = &db.client;
    let ingest = |key: &'static str, digest: &'static str| async move {
        c.query_one(
            "SELECT coalesce(id::text, ''), duplicate, replayed FROM integration.ingest_event(
                 'expense.submitted', 'expense', $1, '{}'::jsonb, $1, 'sha', now(), 'odoo', $2)",
            &[&key, &digest],
        )
        .await
        .unwrap()
    };
    let row = ingest("k-1", "d-1").await;
    assert!(!row.get::<_, bool>(2));
    // Kept 24 hours: far past the ±300 s tolerance (it used to be 10 minutes).
    let kept_h: f64 = c
        .query_one(
            "SELECT extract(epoch FROM expires_at - now())::float8 / 3600 \
               FROM integration.ingest_signatures WHERE signature_sha256 = 'd-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((23.9..=24.0).contains(&kept_h), "{kept_h} h");
    // An hour later the same signature under another key is still a replay.
    c.execute(
        "UPDATE integration.ingest_signatures SET expires_at = expires_at - interval '1 hour'",
        &[],
    )
    .await
    .unwrap();
    assert!(ingest("k-2", "d-1").await.get::<_, bool>(2), "replayed");
    // Same key, same signature, stored: the sender's resend is a duplicate.
    assert!(ingest("k-1", "d-1").await.get::<_, bool>(1), "duplicate");

    // spend_signature: a signature that stored nothing is refused under its own key too.
    let spent: bool = c
        .query_one("SELECT integration.spend_signature('d-3', 'k-3')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(spent);
    assert!(ingest("k-3", "d-3").await.get::<_, bool>(2), "spent");
    // Spending a signature that stored its event changes nothing.
    let again: bool = c
        .query_one("SELECT integration.spend_signature('d-1', 'k-1')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!again);
    assert!(
        ingest("k-1", "d-1").await.get::<_, bool>(1),
        "still a duplicate"
    );

    // A day later retention purges them (POST /ops/retention's batch).
    c.execute(
        "UPDATE integration.ingest_signatures SET expires_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    let purged: i32 = c
        .query_one("SELECT integration.purge_expired_signatures(1000)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(purged, 2);
    assert_eq!(db.count("ingest_signatures").await, 0);
}
