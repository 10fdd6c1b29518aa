//! A loopback HTTP server standing in for an external service (a domain handler,
//! Mattermost, an email API, Google, Odoo): it records every request exactly as received
//! and answers as the test tells it — a status and body, after an optional delay.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub mod segments;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        ipai_core::headers::header(&self.headers, name)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Decides the answer (status, body) to a request; `respond_with` installs a constant one.
pub type Script = Arc<dyn Fn(&Recorded) -> (u16, String) + Send + Sync>;

struct State {
    requests: Vec<Recorded>,
    script: Script,
    delay: Duration,
}

/// The running fake; stops when dropped.
pub struct FakeServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Starts on a free loopback port, answering 200 `{"ok":true}`.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0")
            .await
            .expect("bind a loopback port")
    }

    /// Starts on `addr` (e.g. `127.0.0.1:4100`).
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            script: Arc::new(|_: &Recorded| (200, r#"{"ok":true}"#.to_string())),
            delay: Duration::ZERO,
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (script, delay, recorded) = {
                                let mut s = st.lock().expect("fake state");
                                s.requests.push(Recorded {
                                    method: parts.method.to_string(),
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.to_string(),
                                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                            )
                                        })
                                        .collect(),
                                    body: body.to_vec(),
                                    at: Instant::now(),
                                });
                                let recorded = s.requests.last().cloned();
                                (s.script.clone(), s.delay, recorded)
                            };
                            let (status, reply) =
                                recorded.map(|r| script(&r)).unwrap_or((500, String::new()));
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(reply)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status)
                                .unwrap_or(hyper::StatusCode::OK);
                            resp.headers_mut().insert(
                                "content-type",
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Self { url, state, task })
    }

    /// Starts on a free loopback port answering each request as `script` decides.
    pub async fn start_scripted(
        script: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let server = Self::start().await;
        server.script(script);
        server
    }

    /// From now on, answer `status` with `body`.
    pub fn respond_with(&self, status: u16, body: &str) {
        let body = body.to_string();
        self.script(move |_| (status, body.clone()));
    }

    /// From now on, answer each request as `script` decides.
    pub fn script(&self, script: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) {
        self.state.lock().expect("fake state").script = Arc::new(script);
    }

    /// From now on, wait `delay` before answering.
    pub fn delay(&self, delay: Duration) {
        self.state.lock().expect("fake state").delay = delay;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("fake state").requests.clone()
    }

    /// Waits until at least `n` requests arrived (or `timeout`), returning them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
