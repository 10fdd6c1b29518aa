//! The two behaviours of Spin 4.0.2 that Spin's conformance suite found missing in the local
//! host (`request-shape`, `outbound-wasi-http-v0.2.0-no-perms`), reproduced without the suite:
//! the suite itself needs a copy of its repository (`make conformance`, and `make test` when
//! `../shared/spin-conformance` holds one), which a machine may lack.
//! Also how Spin 4.0.2 sends outbound HTTP (its outbound HTTP factor, `connection_pooling`
//! on by default): over keep-alive connections shared by the app's instances, with the
//! guest's timeouts giving wasi-http's error codes.
//! The components are the workspace's fixtures echo-headers and outbound-probe
//! (`make components` builds them).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use ipai_spin_host::app::{App, TriggerKind};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime_wasi_http::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::WasiHttpView;

fn fixture_wasm(file: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let wasm = target.join("wasm32-wasip2/release").join(file);
    assert!(
        wasm.exists(),
        "{} is missing: build the components first (make components)",
        wasm.display()
    );
    wasm
}

/// Writes a manifest with one component, the echo-headers fixture, behind `route`.
fn load_app(name: &str, route: &str, allowed: &str) -> Arc<App> {
    load_fixture_app(name, "echo_headers.wasm", route, allowed)
}

/// Writes a manifest with one component `echo`, the fixture `wasm`, behind `route`.
fn load_fixture_app(name: &str, wasm: &str, route: &str, allowed: &str) -> Arc<App> {
    let dir = std::env::temp_dir().join(format!("ipai-spin-host-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let manifest = format!(
        "spin_manifest_version = 2\n\
         [application]\nname = \"{name}\"\n\
         [[trigger.http]]\nroute = \"{route}\"\ncomponent = \"echo\"\n\
         [component.echo]\nsource = {source:?}\nallowed_outbound_hosts = [{allowed}]\n",
        source = fixture_wasm(wasm).display().to_string(),
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).expect("write manifest");
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/spin-host-cache");
    Arc::new(App::load(&path, |_| None, Some(cache)).expect("load app"))
}

/// Serves `app` on a free port, sends one GET with `Host: example.com`, stops serving.
async fn get(app: Arc<App>, path: &str) -> hyper::Response<Bytes> {
    get_with(app, path, &[]).await
}

/// As `get`, with extra request headers.
async fn get_with(app: Arc<App>, path: &str, headers: &[(&str, &str)]) -> hyper::Response<Bytes> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(ipai_spin_host::http_trigger::serve(app, listener));
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", "example.com");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    server.abort();
    hyper::Response::from_parts(parts, body)
}

#[tokio::test]
async fn well_known_info_names_the_application() {
    let app = load_app("info", "/", "");
    let resp = get(app, "/.well-known/spin/info").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let info: serde_json::Value = serde_json::from_slice(resp.body()).expect("JSON");
    assert_eq!(info, serde_json::json!({ "name": "info" }));
}

#[tokio::test]
async fn named_segments_and_a_wildcard_give_exactly_spins_headers() {
    let app = load_app("request-shape", "/base/:path_segment/:path_end/...", "");
    let resp = get(app, "/base/path/end/rest?key=value").await;
    assert_eq!(resp.status(), 418, "the fixture answers 418");
    let seen: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(resp.body()).expect("fixture JSON");

    let client = seen
        .get("spin-client-addr")
        .and_then(|v| v.as_str())
        .expect("spin-client-addr");
    assert!(client.parse::<std::net::SocketAddr>().is_ok(), "{client}");
    let mut got: Vec<(&str, &str)> = seen
        .iter()
        .filter(|(k, _)| *k != "spin-client-addr")
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("<not a string>")))
        .collect();
    got.sort();
    // What conformance-tests' request-shape component requires (and nothing else spin-*).
    let mut want = vec![
        ("spin-base-path", "/"),
        ("spin-component-route", "/base/:path_segment/:path_end"),
        (
            "spin-full-url",
            "http://example.com/base/path/end/rest?key=value",
        ),
        ("spin-matched-route", "/base/:path_segment/:path_end/..."),
        ("spin-path-info", "/rest"),
        ("spin-path-match-path-end", "end"),
        ("spin-path-match-path-segment", "path"),
        (
            "spin-raw-component-route",
            "/base/:path_segment/:path_end/...",
        ),
    ];
    want.sort();
    assert_eq!(got, want);
}

fn outgoing(url: &str) -> hyper::Request<wasmtime_wasi_http::body::HyperOutgoingBody> {
    let body = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    hyper::Request::post(url).body(body).expect("request")
}

fn config() -> OutgoingRequestConfig {
    let t = std::time::Duration::from_secs(5);
    OutgoingRequestConfig {
        use_tls: false,
        connect_timeout: t,
        first_byte_timeout: t,
        between_bytes_timeout: t,
    }
}

/// What the guest's `future-incoming-response#get` would give.
async fn resolve(
    fut: HostFutureIncomingResponse,
) -> Result<wasmtime_wasi_http::types::IncomingResponse, ErrorCode> {
    match fut {
        HostFutureIncomingResponse::Ready(r) => r.expect("no trap"),
        HostFutureIncomingResponse::Pending(handle) => handle.await.expect("no trap"),
        HostFutureIncomingResponse::Consumed => panic!("already consumed"),
    }
}

#[tokio::test]
async fn a_disallowed_host_is_refused_when_the_response_is_read_not_by_handle() {
    let app = load_app("no-perms", "/", "");
    let component = app.components["echo"].clone();
    let mut state = app.instance_state(&component, TriggerKind::Http);

    // `outgoing-handler/handle` goes through `send_request`: it must hand back the future.
    let fut = state
        .send_request(outgoing("http://localhost:1234/"), config())
        .expect("handle returns the future, as in Spin");
    match resolve(fut).await {
        Err(ErrorCode::HttpRequestDenied) => {}
        other => panic!("expected HttpRequestDenied from the future, got {other:?}"),
    }
}

/// The guest's view (conformance `outbound-wasi-http-v0.2.0-no-perms`): `handle` succeeds
/// and `future-incoming-response#get` gives `HttpRequestDenied`.
#[tokio::test]
async fn the_guest_sees_the_refusal_from_get_not_from_handle() {
    let app = load_fixture_app("probe", "outbound_probe.wasm", "/", "");
    let resp = get_with(app, "/", &[("probe-url", "http://localhost:1234/")]).await;
    assert_eq!(
        String::from_utf8_lossy(resp.body()),
        "get: ErrorCode::HttpRequestDenied"
    );
    assert_eq!(resp.status(), 502);
}

#[tokio::test]
async fn an_allowed_host_is_attempted() {
    // A closed port on an allowed host: the request is made, and fails as a connection error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let app = load_app("perms", "/", &format!("\"http://127.0.0.1:{port}\""));
    let component = app.components["echo"].clone();
    let mut state = app.instance_state(&component, TriggerKind::Http);
    let fut = state
        .send_request(outgoing(&format!("http://127.0.0.1:{port}/")), config())
        .expect("future");
    match resolve(fut).await {
        Err(ErrorCode::HttpRequestDenied) => panic!("an allowed host was denied"),
        Err(_) => {}
        Ok(resp) => panic!("nothing listens there, got {}", resp.resp.status()),
    }
}

#[tokio::test]
async fn self_requests_reach_the_app_when_self_is_allowed() {
    let app = load_app("self", "/...", "\"http://self\"");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = tokio::spawn(ipai_spin_host::http_trigger::serve(app.clone(), listener));
    while app.self_origin.get().is_none() {
        tokio::task::yield_now().await;
    }
    let component = app.components["echo"].clone();

    let mut state = app.instance_state(&component, TriggerKind::Http);
    let fut = state
        .send_request(outgoing("http://self.alt/hello?x=1"), config())
        .expect("future");
    let resp = resolve(fut).await.expect("the app answers");
    assert_eq!(resp.resp.status(), 418, "the echo fixture answered");
    let body = resp
        .resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(seen["spin-path-info"], "/hello");

    // Spin's cron trigger sets no origin for self requests.
    let mut cron = app.instance_state(&component, TriggerKind::Cron);
    let fut = cron
        .send_request(outgoing("http://self.alt/hello"), config())
        .expect("future");
    assert!(matches!(
        resolve(fut).await,
        Err(ErrorCode::HttpRequestUriInvalid)
    ));
    server.abort();
}

#[tokio::test]
async fn self_requests_are_denied_without_self() {
    let app = load_app("no-self", "/...", "\"http://127.0.0.1:1\"");
    let component = app.components["echo"].clone();
    let mut state = app.instance_state(&component, TriggerKind::Http);
    let fut = state
        .send_request(outgoing("http://self.alt/hello"), config())
        .expect("future");
    assert!(matches!(
        resolve(fut).await,
        Err(ErrorCode::HttpRequestDenied)
    ));
}

/// A loopback HTTP/1.1 server answering 200 `ok` after `delay`; counts its connections.
async fn counting_server(delay: std::time::Duration) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, connections)
}

#[tokio::test]
async fn outbound_requests_of_every_instance_share_keep_alive_connections() {
    let (port, connections) = counting_server(std::time::Duration::ZERO).await;
    let app = load_app("pooled", "/", &format!("\"http://127.0.0.1:{port}\""));
    let component = app.components["echo"].clone();
    for _ in 0..3 {
        // A fresh instance per request, as each component invocation has.
        let mut state = app.instance_state(&component, TriggerKind::Http);
        let fut = state
            .send_request(outgoing(&format!("http://127.0.0.1:{port}/")), config())
            .expect("future");
        let resp = resolve(fut).await.expect("answered");
        assert_eq!(resp.resp.status(), 200);
        let body = resp.resp.into_body().collect().await.expect("body");
        assert_eq!(body.to_bytes(), "ok");
    }
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "three requests in a row reuse one connection"
    );
}

#[tokio::test]
async fn a_refused_connection_and_a_late_answer_give_wasi_http_error_codes() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (slow, _) = counting_server(std::time::Duration::from_secs(5)).await;
    let app = load_app(
        "errors",
        "/",
        &format!("\"http://127.0.0.1:{closed}\", \"http://127.0.0.1:{slow}\""),
    );
    let component = app.components["echo"].clone();
    let mut state = app.instance_state(&component, TriggerKind::Http);

    let fut = state
        .send_request(outgoing(&format!("http://127.0.0.1:{closed}/")), config())
        .expect("future");
    assert!(matches!(
        resolve(fut).await,
        Err(ErrorCode::ConnectionRefused)
    ));

    let mut impatient = config();
    impatient.first_byte_timeout = std::time::Duration::from_millis(200);
    let fut = state
        .send_request(outgoing(&format!("http://127.0.0.1:{slow}/")), impatient)
        .expect("future");
    assert!(matches!(
        resolve(fut).await,
        Err(ErrorCode::ConnectionReadTimeout)
    ));
}
