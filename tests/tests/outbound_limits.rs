//! Issue #34 item 7, outbound answers: every answer a component reads from another
//! service is read up to 1 MiB (`ipai_spin::http::MAX_RESPONSE_BYTES`). A longer one (a
//! 2 MiB body, an endless chunked stream) fails the call with an error naming the service
//! and the cap, the event is retried like after any failed call, and nothing is lost: it
//! is delivered once the service answers normally. Run under `IPAI_RUNTIME`.

use ipai_tests::services::{self, Services};
use ipai_tests::{manifest, Fixture};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The cap, as the error states it.
const CAP: &str = "exceeds 1048576 bytes (1 MiB)";

/// How the stand-in handler answers.
const ENDLESS: u8 = 0;
const TWO_MIB: u8 = 1;
const NORMAL: u8 = 2;

/// A stand-in for a domain handler on a loopback port: 200 with an endless chunked body,
/// 200 with a 2 MiB body, or a normal 200 summary, as `mode` says. Counts the bytes of
/// its endless answers it managed to write before the reader hung up.
struct StandIn {
    url: String,
    mode: Arc<AtomicU8>,
    endless_bytes_written: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl StandIn {
    async fn start() -> Self {
        let listener = ipai_loopback::ports::bind_fresh_tokio().expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(ENDLESS));
        let written = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (m, w, r) = (mode.clone(), written.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (m, w, r) = (m.clone(), w.clone(), r.clone());
                tokio::spawn(async move {
                    if read_request(&mut stream).await.is_none() {
                        return;
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    match m.load(Ordering::SeqCst) {
                        ENDLESS => {
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                        transfer-encoding: chunked\r\n\r\n";
                            if stream.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                            // Until the reader hangs up (or a safety stop far past the cap).
                            for _ in 0..4096 {
                                if stream.write_all(chunk.as_bytes()).await.is_err() {
                                    return;
                                }
                                w.fetch_add(0x10000, Ordering::SeqCst);
                            }
                        }
                        TWO_MIB => respond(&mut stream, &"x".repeat(2 << 20)).await,
                        _ => respond(&mut stream, r#"{"status":"done","done":["stand-in"]}"#).await,
                    }
                });
            }
        });
        StandIn {
            url,
            mode,
            endless_bytes_written: written,
            requests,
        }
    }

    fn answer(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// Reads one request's head and its `content-length` body; `None` if the peer left.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut byte).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    Some(())
}

async fn respond(stream: &mut tokio::net::TcpStream, body: &str) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn last_error(f: &Fixture, id: &str) -> String {
    f.db.value(&format!(
        "SELECT coalesce(last_error, '') FROM integration.outbox WHERE id::text = '{id}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_answer_over_one_mib_fails_the_delivery_and_the_retry_delivers_it() {
    let stand_in = StandIn::start().await;
    let url = stand_in.url.clone();
    let f = Fixture::with(move |v| {
        v.insert("service_chaining".into(), "off".into());
        v.insert("handler_base_url".into(), url);
        v.insert("dispatch_kick".into(), "off".into());
    })
    .await
    .unwrap();
    let event = json!({"event_type": "expense.approved", "aggregate_type": "expense",
                       "aggregate_id": "4201", "payload": {"status": "approve"}});
    let id = f.ingest("exp-4201-approved", &event).await;

    // An endless chunked answer: the dispatcher stops reading past the cap and hangs up.
    stand_in.answer(ENDLESS);
    let run = f.dispatch().await;
    assert_eq!(run["failed"], 1, "{run}");
    let err = last_error(&f, &id).await;
    assert!(
        err.contains("expense-handler") && err.contains(&stand_in.url) && err.contains(CAP),
        "{err}"
    );
    assert_eq!(f.db.status(&id).await, "failed");
    // Memory bounded: the reader hung up after about the cap (plus what the sockets'
    // buffers took), far from the 256 MiB the stand-in would have sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = stand_in.endless_bytes_written.load(Ordering::SeqCst);
    assert!(
        written < 64 << 20,
        "the reader kept reading: {written} bytes"
    );

    // A 2 MiB answer fails the same way.
    stand_in.answer(TWO_MIB);
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["failed"], 1);
    assert!(last_error(&f, &id).await.contains(CAP));

    // The handler answers normally: the retry delivers the event.
    stand_in.answer(NORMAL);
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["done"], 1);
    assert_eq!(f.db.status(&id).await, "done");
    assert_eq!(stand_in.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mattermost_answer_over_one_mib_fails_the_post_and_the_retry_sends_it() {
    let svc = Services::start().await;
    let m = manifest::variant(manifest::without_cron);
    let f = Fixture::with_manifest(m, |v| {
        v.insert("dispatch_kick".into(), "off".into());
        svc.configure(v);
    })
    .await
    .unwrap();
    let event: Value = json!({"event_type": "expense.rejected", "aggregate_type": "expense",
        "aggregate_id": "1043", "payload": {"expense_id": 1043, "employee_id": 7,
        "employee_name": "Juan dela Cruz", "employee_code": "E-0042",
        "employee_email": "juan.delacruz@example.com", "amount": 1250.5, "currency": "PHP",
        "description": "Client lunch - Makati", "date": "2026-11-20", "category": "Meals",
        "submitted_at": "2026-11-24T01:15:00Z", "sheet_id": 310, "status": "submit",
        "reason": "x"}});

    // The incoming webhook answers 2 MiB (its user directory answers as usual).
    svc.mattermost.script(|r| {
        if r.path.starts_with("/api/") {
            services::mattermost_answer(r)
        } else {
            (200, "x".repeat(2 << 20))
        }
    });
    let id = f.ingest("exp-1043-rej", &event).await;
    assert_eq!(f.dispatch().await["failed"], 1);
    let err = last_error(&f, &id).await;
    assert!(
        err.contains("mattermost @juan.delacruz")
            && err.contains(&svc.mattermost.url)
            && err.contains(CAP),
        "{err}"
    );
    // The error names the service by its origin, never the webhook's secret path.
    assert!(!err.contains("/hooks/"), "{err}");

    svc.mattermost.script(services::mattermost_answer);
    f.db.make_due(&id).await;
    assert_eq!(f.dispatch().await["done"], 1);
    assert_eq!(f.db.status(&id).await, "done");
}
