//! The HTTP trigger: accepts connections, routes each request with Spin's rules, adds the
//! headers Spin gives a component (`spin-full-url`, `spin-path-info`, …) and runs one fresh
//! component instance per request. A trap before the response is a 500 with an empty
//! body; no route is a 404 with an empty body — both as in Spin.

use crate::app::App;
use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use wasmtime::Store;
use wasmtime_wasi_http::bindings::http::types::Scheme;
use wasmtime_wasi_http::bindings::Proxy;
use wasmtime_wasi_http::body::HyperOutgoingBody;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::WasiHttpView;

type Resp = hyper::Response<HyperOutgoingBody>;

fn empty(status: u16) -> Resp {
    let body = http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut r = hyper::Response::new(body);
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn text(body: &'static str) -> Resp {
    let body = http_body_util::Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    hyper::Response::new(body)
}

/// `/.well-known/spin/info`: the application's name and version as Spin's `AppInfo`
/// (pretty JSON, `version` left out when the manifest has none).
fn app_info(application: &crate::manifest::Application) -> Resp {
    let mut info = serde_json::Map::new();
    info.insert("name".into(), application.name.clone().into());
    if let Some(version) = &application.version {
        info.insert("version".into(), version.clone().into());
    }
    let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
    let mut resp = hyper::Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Serves the app on `listener` until the process ends.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> Result<()> {
    // Self requests (`http://self.alt/…`) come back here.
    let _ = app.self_origin.set(listener.local_addr()?);
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        // No TCP_NODELAY: Spin 4.0.2's HTTP trigger leaves Nagle on, so does this host.
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { handle(app, req, client).await }
            });
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                if !e.is_incomplete_message() {
                    eprintln!("connection from {client}: {e}");
                }
            }
        });
    }
}

async fn handle(
    app: Arc<App>,
    req: hyper::Request<hyper::body::Incoming>,
    client: SocketAddr,
) -> Result<Resp, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    if let Some(well_known) = path.strip_prefix("/.well-known/spin/") {
        return Ok(match well_known {
            "health" => text("OK"),
            "info" => app_info(&app.manifest.application),
            _ => empty(404),
        });
    }
    let Some(route) = app.router.route(&path) else {
        return Ok(empty(404));
    };
    match run_component(&app, req, &route, client).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            eprintln!("Component error while handling request: {e:?}");
            Ok(empty(500))
        }
    }
}

/// Service chaining: runs component `target` in-process for a request another
/// component sent to `http://<target>.spin.internal/...`, as Spin does (the callee sees
/// `spin-matched-route: /...`, the whole path as `spin-path-info`, client `0.0.0.0:0`).
pub async fn chain(
    app: Arc<App>,
    target: &str,
    request: hyper::Request<HyperOutgoingBody>,
    between_bytes_timeout: std::time::Duration,
) -> Result<
    wasmtime_wasi_http::types::IncomingResponse,
    wasmtime_wasi_http::bindings::http::types::ErrorCode,
> {
    use wasmtime_wasi_http::bindings::http::types::ErrorCode;
    if !app.components.contains_key(target) {
        return Err(ErrorCode::DestinationNotFound);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let body = http_body_util::Full::new(bytes)
        .map_err(|never: std::convert::Infallible| -> hyper::Error { match never {} });
    parts.headers.remove(hyper::header::HOST);
    let path = parts.uri.path().to_string();
    let route = crate::router::RouteMatch {
        component: target.to_string(),
        raw_route: "/...".into(),
        path_info: path,
        named: vec![],
    };
    let req = hyper::Request::from_parts(parts, body);
    match run_component(&app, req, &route, SocketAddr::from(([0, 0, 0, 0], 0))).await {
        Ok(resp) => Ok(wasmtime_wasi_http::types::IncomingResponse {
            resp,
            worker: None,
            between_bytes_timeout,
        }),
        Err(e) => {
            eprintln!("Component error while handling chained request to {target}: {e:?}");
            Err(ErrorCode::InternalError(Some(format!("{target}: {e}"))))
        }
    }
}

/// The headers Spin 4 adds to a request for the component (trigger-http `headers.rs`), in
/// its order: `spin-path-info`, `spin-full-url`, `spin-matched-route`, `spin-base-path`,
/// `spin-raw-component-route`, `spin-component-route`, `spin-client-addr`, then one
/// `spin-path-match-<name>` per named segment.
pub fn spin_request_headers(
    route: &crate::router::RouteMatch,
    full_url: &str,
    client: SocketAddr,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("spin-path-info".to_string(), route.path_info.clone()),
        ("spin-full-url".to_string(), full_url.to_string()),
        ("spin-matched-route".to_string(), route.raw_route.clone()),
        ("spin-base-path".to_string(), "/".to_string()),
        (
            "spin-raw-component-route".to_string(),
            route.raw_route.clone(),
        ),
        (
            "spin-component-route".to_string(),
            route.route_or_prefix().to_string(),
        ),
        ("spin-client-addr".to_string(), client.to_string()),
    ];
    headers.extend(
        route
            .named
            .iter()
            .map(|(name, value)| (crate::router::path_match_header(name), value.clone())),
    );
    headers
}

/// Runs `route.component` for one request and returns its response.
async fn run_component<B>(
    app: &Arc<App>,
    mut req: hyper::Request<B>,
    route: &crate::router::RouteMatch,
    client: SocketAddr,
) -> Result<Resp>
where
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static,
{
    let component = app
        .components
        .get(&route.component)
        .ok_or_else(|| anyhow::anyhow!("unknown component {}", route.component))?
        .clone();

    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let full_url = format!("http://{host}{path_and_query}");
    // Spin keeps every header the client sent and appends its own after them (a client's
    // `spin-path-info` stays next to Spin's); wasmtime drops hop-by-hop headers later.
    let headers = req.headers_mut();
    for (k, v) in spin_request_headers(route, &full_url, client) {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    *req.uri_mut() = full_url.parse()?;

    let mut store = Store::new(
        &app.engine,
        app.instance_state(&component, crate::app::TriggerKind::Http),
    );
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let wasi_req = store.data_mut().new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().new_response_outparam(sender)?;
    let pre = component.pre.clone();

    // The instance runs in its own task so it may go on working after it has responded
    // (spin-sdk's "send a response then continue processing").
    let task = tokio::spawn(async move {
        let instance = pre.instantiate_async(&mut store).await?;
        let proxy = Proxy::new(&mut store, &instance)?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, wasi_req, out)
            .await
    });

    match receiver.await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(code)) => anyhow::bail!("guest reported error {code:?}"),
        Err(_) => match task.await {
            Ok(Ok(())) => anyhow::bail!("guest never invoked `response-outparam::set`"),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request-shape conformance test's route and request: exactly Spin's header set.
    #[test]
    fn a_route_with_named_segments_and_a_wildcard_gets_exactly_spins_headers() {
        let route = crate::router::Router::new([("/base/:path_segment/:path_end/...", "c")])
            .route("/base/path/end/rest")
            .expect("route");
        let client: SocketAddr = "127.0.0.1:4242".parse().expect("addr");
        let headers = spin_request_headers(
            &route,
            "http://example.com/base/path/end/rest?key=value",
            client,
        );
        let expected = [
            ("spin-path-info", "/rest"),
            (
                "spin-full-url",
                "http://example.com/base/path/end/rest?key=value",
            ),
            ("spin-matched-route", "/base/:path_segment/:path_end/..."),
            ("spin-base-path", "/"),
            (
                "spin-raw-component-route",
                "/base/:path_segment/:path_end/...",
            ),
            ("spin-component-route", "/base/:path_segment/:path_end"),
            ("spin-client-addr", "127.0.0.1:4242"),
            ("spin-path-match-path-segment", "path"),
            ("spin-path-match-path-end", "end"),
        ];
        let got: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn an_exact_route_gets_no_path_match_headers() {
        let route = crate::router::Router::new([("/hello", "c")])
            .route("/hello")
            .expect("route");
        let headers =
            spin_request_headers(&route, "http://h/hello", "0.0.0.0:0".parse().expect("addr"));
        assert_eq!(headers.len(), 7);
        assert!(headers
            .iter()
            .all(|(k, _)| !k.starts_with("spin-path-match-")));
        assert_eq!(headers[0], ("spin-path-info".to_string(), String::new()));
        assert_eq!(
            headers[5],
            ("spin-component-route".to_string(), "/hello".to_string())
        );
    }
}
