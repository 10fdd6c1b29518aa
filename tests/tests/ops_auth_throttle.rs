//! Issue #34 item 7, the dashboard's Basic auth is throttled: after 10 failed logins in a
//! minute from one address, every request from it is 429 with `Retry-After` until the
//! minute is over, the right password included; then the right password opens again.
//! 100 failures a minute from all addresses together throttle everyone. The count lives in
//! PostgreSQL (`integration.ops_auth_attempt`, migration 20261207000400); the tests move
//! time by shifting the stored window back, the 60 s default untouched.

use ipai_tests::runtime::TEST_OPS_PASSWORD;
use ipai_tests::Fixture;

async fn login(f: &Fixture, password: &str) -> (u16, Option<String>) {
    let resp = f
        .http
        .get(f.sys.url("/ops"))
        .basic_auth("ops", Some(password))
        .send()
        .await
        .expect("GET /ops");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (resp.status().as_u16(), retry_after)
}

/// The minute of every counted key ends now: as if a minute had passed.
async fn let_a_minute_pass(f: &Fixture) {
    f.db.client
        .execute(
            "UPDATE integration.ops_auth_failures SET window_start = window_start - interval '61 seconds'",
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failed_logins_a_minute_throttle_the_address_even_for_the_right_password() {
    let f = Fixture::new().await.unwrap();
    for attempt in 1..=10 {
        let (status, retry) = login(&f, "wrong-password").await;
        assert_eq!((status, retry), (401, None), "attempt {attempt}");
    }
    // The 11th request, with the right password: refused, with the wait.
    let (status, retry) = login(&f, TEST_OPS_PASSWORD).await;
    assert_eq!(status, 429);
    let wait: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let (status, _) = login(&f, "wrong-password").await;
    assert_eq!(status, 429);
    // Counted by the client's address (Spin's spin-client-addr without its port), and a
    // throttled request is not counted.
    let rows: Vec<(String, i32)> =
        f.db.client
            .query(
                "SELECT client, failures FROM integration.ops_auth_failures ORDER BY client",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(rows, vec![("*".into(), 10), ("127.0.0.1".into(), 10)]);

    // A minute later the right password opens; a success resets nothing by itself.
    let_a_minute_pass(&f).await;
    assert_eq!(login(&f, TEST_OPS_PASSWORD).await.0, 200);
    assert_eq!(login(&f, "wrong-password").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_counts_per_address_with_a_backstop_for_all_addresses() {
    let f = Fixture::new().await.unwrap();
    let attempt = |client: &'static str, failed: bool| {
        let db = &f.db.client;
        async move {
            db.query_one(
                "SELECT integration.ops_auth_attempt($1, $2)",
                &[&client, &failed],
            )
            .await
            .unwrap()
            .get::<_, i32>(0)
        }
    };
    for _ in 0..10 {
        assert_eq!(attempt("198.51.100.1", true).await, 0);
    }
    assert!(attempt("198.51.100.1", false).await > 0, "throttled");
    assert_eq!(attempt("198.51.100.2", false).await, 0, "others are not");
    // Ninety more failures from many addresses: the 100th of the minute throttles all.
    for i in 0..90 {
        let client: &'static str = Box::leak(format!("203.0.113.{i}").into_boxed_str());
        assert_eq!(attempt(client, true).await, 0, "failure {}", 11 + i);
    }
    assert!(attempt("192.0.2.99", false).await > 0, "everyone throttled");
    let_a_minute_pass(&f).await;
    assert_eq!(attempt("192.0.2.99", false).await, 0);
    assert_eq!(attempt("198.51.100.1", false).await, 0);
}
