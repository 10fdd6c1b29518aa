//! A loopback HTTP server standing in for an external service (a domain handler,
//! Mattermost, an email API, Google, Odoo): it records every request exactly as received
//! and answers as the test tells it — a status and body, after an optional delay.
//!
//! It listens on a port of its own from [`ports`], never one this process handed out before
//! (to a runtime or another stand-in), and its failure messages list what it received
//! ([`FakeServer::received`], [`FakeServer::assert_received`]).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub mod ports;
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

/// How much of a body a failure message shows.
const SHOWN_BODY_BYTES: usize = 200;

/// `METHOD path body`: the body's first 200 bytes (lossy UTF-8, line breaks escaped), and
/// its length when it was cut.
impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if self.body.is_empty() {
            return Ok(());
        }
        let shown = &self.body[..self.body.len().min(SHOWN_BODY_BYTES)];
        let text = String::from_utf8_lossy(shown)
            .replace('\r', "\\r")
            .replace('\n', "\\n");
        write!(f, " {text}")?;
        if self.body.len() > SHOWN_BODY_BYTES {
            write!(f, "… ({} bytes)", self.body.len())?;
        }
        Ok(())
    }
}

/// `requests` one a line (see `Display for Recorded`), for a failure message.
pub fn listing(requests: &[Recorded]) -> String {
    match requests.len() {
        0 => "no request".to_string(),
        n => {
            let mut out = format!("{n} request{}:", if n == 1 { "" } else { "s" });
            for r in requests {
                out.push_str("\n  ");
                out.push_str(&r.to_string());
            }
            out
        }
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
    /// Starts on a loopback port this process never handed out before ([`ports`]),
    /// answering 200 `{"ok":true}`.
    pub async fn start() -> Self {
        Self::serve(ports::bind_fresh_tokio().expect("bind a loopback port"))
            .expect("the bound port")
    }

    /// Starts on `addr` (e.g. `127.0.0.1:4100`).
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        Self::serve(TcpListener::bind(addr).await?)
    }

    fn serve(listener: TcpListener) -> std::io::Result<Self> {
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

    /// Like `start`, answering each request as `script` decides.
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

    /// What this stand-in received so far, one request a line (method, path, the first
    /// 200 bytes of the body), for a failure message.
    pub fn received(&self) -> String {
        format!("{} received {}", self.url, listing(&self.requests()))
    }

    /// Panics, listing what arrived, unless nothing did. `what` says why nothing should have.
    #[track_caller]
    pub fn assert_received_nothing(&self, what: &str) {
        let got = self.requests();
        assert!(
            got.is_empty(),
            "{what}: {} received {}",
            self.url,
            listing(&got)
        );
    }

    /// Panics, listing what arrived, unless exactly `n` requests did; returns them.
    #[track_caller]
    pub fn assert_received(&self, n: usize, what: &str) -> Vec<Recorded> {
        let got = self.requests();
        assert!(
            got.len() == n,
            "{what}: expected {n} request{}, {} received {}",
            if n == 1 { "" } else { "s" },
            self.url,
            listing(&got)
        );
        got
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn send_raw(url: &str, request: &[u8]) {
        let addr = url.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut answer = [0u8; 64];
        let _ = s.read(&mut answer).await;
    }

    fn panic_message(f: impl FnOnce()) -> String {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[tokio::test]
    async fn stand_ins_listen_only_on_ports_from_the_allocator() {
        // A stand-in binding port 0 by itself could take a port just handed to a runtime
        // (before the runtime binds it) and record requests meant for that runtime.
        let port = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        let fake = FakeServer::start().await;
        assert!(ports::was_handed_out(port(&fake.url)), "{}", fake.url);
        let probe = segments::SegmentProbe::start().await.unwrap();
        assert!(ports::was_handed_out(port(&probe.url)), "{}", probe.url);
    }

    #[tokio::test]
    async fn a_failed_assertion_lists_method_path_and_the_first_200_bytes_of_each_body() {
        let fake = FakeServer::start().await;
        fake.assert_received_nothing("quiet so far");
        let body = format!("{{\"k\":\"{}\"}}", "x".repeat(300));
        let post = format!(
            "POST /emails?a=1 HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        send_raw(&fake.url, post.as_bytes()).await;
        send_raw(
            &fake.url,
            b"GET /.well-known/spin/info HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .await;
        assert_eq!(fake.wait_for(2, Duration::from_secs(5)).await.len(), 2);

        let msg = panic_message(|| fake.assert_received_nothing("an expense sends no email"));
        let shown = &body[..200];
        assert_eq!(
            msg,
            format!(
                "an expense sends no email: {} received 2 requests:\n  \
                 POST /emails?a=1 {shown}… ({} bytes)\n  GET /.well-known/spin/info",
                fake.url,
                body.len()
            )
        );
        let msg = panic_message(|| {
            fake.assert_received(1, "one post");
        });
        assert!(
            msg.starts_with(&format!(
                "one post: expected 1 request, {} received 2 requests:\n  POST /emails?a=1 {{",
                fake.url
            )),
            "{msg}"
        );
        assert_eq!(fake.assert_received(2, "both").len(), 2);
        assert!(fake.received().ends_with("\n  GET /.well-known/spin/info"));
    }
}
