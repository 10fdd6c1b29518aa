//! The deterministic system the ops, retention and deploy suites share: no cron trigger
//! and no ingest kick, so events move only when a test calls `POST /dispatch`; handlers
//! are a loopback fake over HTTP (service chaining off).

use crate::fake_http::FakeServer;
use crate::{manifest, Fixture};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A minimal event of `event_type` for `aggregate_type`/`aggregate_id`.
pub fn event(event_type: &str, aggregate_type: &str, aggregate_id: &str) -> Value {
    json!({"event_type": event_type, "aggregate_type": aggregate_type,
           "aggregate_id": aggregate_id, "payload": {"status": "x"}})
}

/// A system without cron and without the kick, delivering over HTTP to `fake`.
pub async fn quiet_system(
    fake: &FakeServer,
    edit: impl FnOnce(&mut BTreeMap<String, String>),
) -> Fixture {
    let url = fake.url.clone();
    let m = manifest::variant(manifest::without_cron);
    Fixture::with_manifest(m, move |v| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
        v.insert("dispatch_kick".into(), "off".into());
        edit(v);
    })
    .await
    .expect("system starts")
}

/// `GET path`: the status and the JSON body (`null` when it is not JSON).
pub async fn get_json(f: &Fixture, path: &str) -> (u16, Value) {
    let resp = f.http.get(f.sys.url(path)).send().await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Ingests `event` and makes it dead at once (one attempt allowed, handler failing).
pub async fn make_dead(f: &Fixture, fake: &FakeServer, key: &str, event: &Value) -> String {
    let id = f.ingest(key, event).await;
    f.db.client
        .execute(
            "UPDATE integration.outbox SET max_attempts = 1 WHERE id::text = $1",
            &[&id],
        )
        .await
        .unwrap();
    fake.respond_with(500, "boom: receiver refused <b>\"it\"</b>");
    f.dispatch().await;
    assert_eq!(f.db.status(&id).await, "dead");
    id
}
