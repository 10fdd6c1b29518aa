//! A loopback HTTP server whose answer depends on the request (Odoo's JSON-RPC answers
//! `authenticate` and `execute_kw` differently; Google's token and calendar endpoints
//! differ by path). Like `fake_http::FakeServer` it records every request exactly as
//! received; the script can be swapped at any time (e.g. to fail on demand).

use crate::fake_http::Recorded;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Decides the answer (status, JSON body) to a request.
pub type Script = Arc<dyn Fn(&Recorded) -> (u16, String) + Send + Sync>;

struct State {
    requests: Vec<Recorded>,
    script: Script,
}

/// The running server; stops when dropped.
pub struct ScriptedServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    /// Starts on a free loopback port with `script`.
    pub async fn start(
        script: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            script: Arc::new(script),
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
                            let rec = Recorded {
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
                            };
                            let script = {
                                let mut s = st.lock().expect("scripted state");
                                s.requests.push(rec.clone());
                                s.script.clone()
                            };
                            let (status, body) = script(&rec);
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
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
        Self { url, state, task }
    }

    /// Replaces the script.
    pub fn script(&self, script: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static) {
        self.state.lock().expect("scripted state").script = Arc::new(script);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("scripted state").requests.clone()
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

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
