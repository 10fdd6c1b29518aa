//! SPEC §12 end to end on `/ops` (issue #38): the replay page of the ops component with
//! the built components under the runtime `IPAI_RUNTIME` selects, on a fresh database.
//! An operator filters dead events, sees them in the plan, confirms with the page's CSRF
//! token, and the events are pending again, audited as `ops@…`; a confirm without the
//! token changes nothing. (`ipai replay`, the CLI, is `replay.rs`.)
//!
//! Deterministic queue as in `ops.rs`: no cron and no ingest kick, so events move only
//! when the test calls `POST /dispatch`; dead letters are made by SQL.

use ipai_tests::fake_http::FakeServer;
use ipai_tests::quiet::*;
use ipai_tests::runtime::TEST_OPS_PASSWORD;
use ipai_tests::Fixture;

/// Ingests `event` and marks it dead, as a dispatcher that gave up would have.
async fn dead(f: &Fixture, key: &str, event: &serde_json::Value) -> String {
    let id = f.ingest(key, event).await;
    f.db.client
        .execute(
            "UPDATE integration.outbox SET status = 'dead', attempts = 10, \
             last_error = 'receiver down' WHERE id::text = $1",
            &[&id],
        )
        .await
        .expect("make the event dead");
    id
}

/// The CSRF token of the confirm form on a replay page.
fn confirm_token(html: &str) -> String {
    let form = &html[html.find("id=\"confirm\"").expect("a confirm form")..];
    let at = form.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    form[at..].split('"').next().unwrap().to_string()
}

async fn replays(f: &Fixture) -> i64 {
    f.db.count("replays").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_dead_events_by_filter_from_the_ops_page() {
    let fake = FakeServer::start().await;
    let f = quiet_system(&fake, |_| {}).await;
    let expense = [
        dead(&f, "r-1", &event("expense.submitted", "expense", "4011")).await,
        dead(&f, "r-2", &event("expense.approved", "expense", "4012")).await,
        dead(&f, "r-3", &event("expense.paid", "expense", "4013")).await,
    ];
    let asset = dead(&f, "r-4", &event("asset.reserved", "asset_booking", "7")).await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = f.sys.url("/ops/replay");

    // The plan: the three dead expense events, not the asset one; nothing changed.
    let resp = client
        .get(format!(
            "{page}?type=expense.*&aggregate=&since=&until=&status=dead&target=&redo_effects="
        ))
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let html = resp.text().await.unwrap();
    assert!(html.contains("data-testid=\"matched\">3<"), "{html}");
    assert!(html.contains("data-testid=\"status-dead\">3<"), "{html}");
    for id in &expense {
        assert!(
            html.contains(&format!("class=\"plan-row\" data-event-id=\"{id}\"")),
            "{id} listed: {html}"
        );
    }
    assert!(!html.contains(&asset), "the asset event does not match");
    assert!(html.contains("No replay yet."), "{html}");
    let token = confirm_token(&html);
    let fields = [
        ("type", "expense.*"),
        ("aggregate", ""),
        ("since", ""),
        ("until", ""),
        ("status", "dead"),
        ("target", ""),
        ("redo_effects", ""),
    ];

    // Refused: no token, another site's origin. Nothing changes, nothing is audited.
    let no_token = client
        .post(&page)
        .header("cookie", &cookie)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 403);
    let mut with_token = fields.to_vec();
    with_token.push(("csrf", token.as_str()));
    let cross_site = client
        .post(&page)
        .header("cookie", &cookie)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    for id in expense.iter().chain([&asset]) {
        assert_eq!(f.db.status(id).await, "dead");
    }
    assert_eq!(replays(&f).await, 0);

    // Accepted: the page's token, same origin → 303 to the page naming the replay.
    let resp = client
        .post(&page)
        .header("cookie", &cookie)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .header("origin", f.sys.base_url.clone())
        .header("sec-fetch-site", "same-origin")
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let replay_id: i64 = f.db.value("SELECT id FROM integration.replays").await;
    assert_eq!(location, format!("/ops/replay?done={replay_id}"));
    for id in &expense {
        assert_eq!(f.db.status(id).await, "pending", "{id} requeued");
    }
    assert_eq!(f.db.status(&asset).await, "dead", "outside the filter");

    // Audited once: via ops, by the ops user at the client's address.
    let row =
        f.db.client
            .query_one(
                "SELECT via, requested_by, matched, requeued, finished_at IS NOT NULL \
                 FROM integration.replays",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(replays(&f).await, 1);
    assert_eq!(row.get::<_, String>(0), "ops");
    let by: String = row.get(1);
    assert!(by.starts_with("ops@"), "{by}");
    assert_eq!(
        by, "ops@127.0.0.1",
        "the client's address, without its port"
    );
    assert_eq!((row.get::<_, i32>(2), row.get::<_, i32>(3)), (3, 3));
    assert!(row.get::<_, bool>(4), "finished");

    // The page it redirects to says so and lists the replay.
    let html = client
        .get(f.sys.url(&location))
        .header("cookie", &cookie)
        .basic_auth("ops", Some(TEST_OPS_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "id=\"notice\">Replay #{replay_id}: 3 event(s) requeued"
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!("data-replay-id=\"{replay_id}\"")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<td>{by}</td><td>ops</td>")),
        "{html}"
    );

    // The next dispatch run delivers them.
    fake.respond_with(200, "{}");
    f.dispatch().await;
    for id in &expense {
        assert_eq!(f.db.status(id).await, "done", "{id} delivered");
    }
    assert_eq!(f.db.status(&asset).await, "dead");
}
