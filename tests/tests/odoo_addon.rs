//! The Odoo addon's sender end to end (issue 6): `odoo/ipai_enterprise_bridge/utils`
//! (`send_ipai_event`, the payload builders, the stable keys and the retry queue) run by
//! `tests/python/addon_send.py` — the addon's code without an Odoo server — against ingest
//! in the runtime `IPAI_RUNTIME` selects. Every event must land in `integration.outbox`.

mod python_support;

use ipai_tests::runtime::TEST_SECRET;
use ipai_tests::Fixture;
use serde_json::Value;

async fn outbox_row(f: &Fixture, key: &str) -> (String, String, String, Value, String) {
    let r =
        f.db.client
            .query_one(
                "SELECT event_type, aggregate_type, aggregate_id, payload, source
               FROM integration.outbox WHERE idempotency_key = $1",
                &[&key],
            )
            .await
            .unwrap_or_else(|e| panic!("no outbox row for {key}: {e}"));
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_the_addon_builds_and_signs_lands_in_the_outbox() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    // The addon gets the bus's rotation list as its secret and signs with the first entry.
    let out = python_support::run("addon_send.py", &[&url, TEST_SECRET, "all"], "").await;
    let sent = out.as_array().expect("a list");
    assert_eq!(sent.len(), 14, "{out}");
    for s in sent {
        let t = s["event_type"].as_str().unwrap();
        assert_eq!(s["status"], 202, "{t}: {s}");
        assert_eq!(s["body"]["status"], "queued", "{t}");
        let key = s["key"].as_str().unwrap();
        let (event_type, aggregate_type, aggregate_id, payload, source) = outbox_row(&f, key).await;
        assert_eq!(event_type, t);
        assert_eq!(
            aggregate_type,
            s["event"]["aggregate_type"].as_str().unwrap()
        );
        assert_eq!(aggregate_id, s["event"]["aggregate_id"].as_str().unwrap());
        assert_eq!(
            payload, s["event"]["payload"],
            "{t}: stored payload = sent payload"
        );
        assert_eq!(source, "odoo");
        assert!(
            payload["status"].is_string(),
            "{t}: every payload has a status"
        );
    }
    assert_eq!(f.db.count("outbox").await, 14);
    assert_eq!(f.db.count("event_log").await, 14);
    // Spot checks of the contract (SPEC §4) as stored.
    let key = |t: &str| {
        sent.iter()
            .find(|s| s["event_type"] == t)
            .and_then(|s| s["key"].as_str())
            .unwrap()
            .to_string()
    };
    let (_, _, id, p, _) = outbox_row(&f, &key("expense.submitted")).await;
    assert_eq!(id, "42");
    assert_eq!(p["amount"], 1250.5);
    assert_eq!(p["date"], "2026-11-20");
    assert_eq!(p["submitted_at"], "2026-11-24T01:15:00Z");
    assert_eq!(p["employee_code"], "E-0042");
    let (_, _, _, p, _) = outbox_row(&f, &key("asset.overdue")).await;
    assert_eq!(
        (p["escalation_level"].as_i64(), p["days_overdue"].as_i64()),
        (Some(2), Some(4))
    );
    let (_, _, _, p, _) = outbox_row(&f, &key("finance_task.filed")).await;
    assert_eq!(p["reference_no"], "eFPS-123");
    assert_eq!(p["deadline"], "2026-11-10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_stable_key_is_a_duplicate_not_a_second_event() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let out = python_support::run("addon_send.py", &[&url, TEST_SECRET, "retry"], "").await;
    assert_eq!(out["key"], "expense:42:expense.submitted:20261126T050000");
    assert_eq!(
        (
            out["first"]["status"].as_u64(),
            out["first"]["body"]["status"].as_str()
        ),
        (Some(202), Some("queued")),
        "{out}"
    );
    assert_eq!(
        (
            out["again"]["status"].as_u64(),
            out["again"]["body"]["status"].as_str()
        ),
        (Some(200), Some("duplicate")),
        "{out}"
    );
    assert_eq!(out["first"]["body"]["id"], out["again"]["body"]["id"]);
    assert_eq!(f.db.count("outbox").await, 1);
    let (event_type, _, id, payload, _) = outbox_row(&f, out["key"].as_str().unwrap()).await;
    assert_eq!(
        (event_type.as_str(), id.as_str()),
        ("expense.submitted", "42")
    );
    assert_eq!(payload, out["event"]["payload"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_bus_loses_nothing_and_delivers_each_event_once_in_order() {
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    // A port nothing listens on: the bus is "down" for the first batch.
    let dead = format!(
        "http://127.0.0.1:{}/odoo-webhook",
        ipai_tests::runtime::free_port().expect("a free port")
    );
    let out = python_support::run("addon_send.py", &[&url, TEST_SECRET, "outage", &dead], "").await;
    for row in out["after_outage"].as_array().unwrap() {
        assert_eq!(row["state"], "pending", "{out}");
    }
    assert_eq!(out["after_outage"][0]["attempts"], 1, "{out}");
    assert!(
        out["after_outage"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{out}"
    );
    let finals = out["final"].as_array().unwrap();
    assert!(finals.iter().all(|r| r["state"] == "sent"), "{out}");
    assert_eq!(f.db.count("outbox").await, 3);
    // Same keys as queued, in the order the addon queued them within the aggregate.
    let rows =
        f.db.client
            .query(
                "SELECT idempotency_key, event_type, id::text FROM integration.outbox
              WHERE aggregate_type = 'expense' AND aggregate_id = '77' ORDER BY seq",
                &[],
            )
            .await
            .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want: Vec<(String, String)> = finals[..2]
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().into(),
                r["event_type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(want[0].1, "expense.submitted");
    // The bus's id is what the queue recorded.
    assert_eq!(
        rows[0].get::<_, String>(2),
        finals[0]["bus_event_id"].as_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_addons_sender_loop_delivers_a_reports_decisions_with_the_reports_stamps() {
    // Issue 21, item 1: every line of one report carries the report's transition stamp,
    // identical across lines, so the bus can tell one report decision from the next.
    let f = Fixture::new().await.unwrap();
    let url = f.sys.url("/odoo-webhook");
    let out = python_support::run("addon_send.py", &[&url, TEST_SECRET, "report"], "").await;
    assert_eq!(out["summary"]["sent"], 3, "{out}");
    assert!(out["summary"]["error"].is_null(), "{out}");
    let rows = out["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["state"] == "sent"), "{out}");
    let payload = |i: usize| {
        let key = rows[i]["key"].as_str().unwrap().to_string();
        let f = &f;
        async move { outbox_row(f, &key).await.3 }
    };
    let (a, b, refused) = (payload(0).await, payload(1).await, payload(2).await);
    assert_eq!(a["sheet_id"], 900);
    assert_eq!(a["sheet_id"], b["sheet_id"]);
    assert_eq!(a["approved_at"], "2026-11-24T03:30:00Z");
    assert_eq!(
        a["approved_at"], b["approved_at"],
        "one stamp per report decision"
    );
    assert_eq!(refused["refused_at"], "2026-11-25T08:15:00Z");
    assert_eq!(refused["reason"], "No receipt");
    assert_eq!(f.db.count("outbox").await, 3);
}
