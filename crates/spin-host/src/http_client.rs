//! Outbound HTTP over pooled keep-alive connections, as Spin 4's outbound HTTP factor sends
//! it by default (`connection_pooling = true`): one client for the whole app, so a request
//! reuses an idle connection to the same origin, whichever component opened it, and opens a
//! new one only when none is idle. wasmtime-wasi-http's `default_send_request` would open
//! and close a TCP (and TLS) connection for every request instead.
//!
//! Timeouts and errors are the guest's as there: `connect_timeout` bounds opening a
//! connection (`ConnectionTimeout`), `first_byte_timeout` the wait for the response head
//! (`ConnectionReadTimeout`), `between_bytes_timeout` travels with the body; a refused
//! connection is `ConnectionRefused`, an unresolvable name a `DnsError`, a failed handshake
//! `TlsProtocolError`. HTTPS trusts the webpki roots, as before.

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::bindings::http::types::{DnsErrorPayload, ErrorCode};
use wasmtime_wasi_http::body::HyperOutgoingBody;
use wasmtime_wasi_http::types::{IncomingResponse, OutgoingRequestConfig};

/// Connect timeout when the connection is opened outside the request's task (the pool may
/// finish a connection in the background after an idle one served the request).
const BACKGROUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

tokio::task_local! {
    /// The request's `connect_timeout`: the pool's connector has no per-request argument.
    static CONNECT_TIMEOUT: Duration;
}

/// The app's outbound HTTP client (cheap to clone: the pool is shared).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, HyperOutgoingBody>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = Connector {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        };
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Sends `request` (absolute URI: scheme and authority) over a pooled connection.
    pub async fn send(
        &self,
        mut request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> Result<IncomingResponse, ErrorCode> {
        if config.use_tls && request.uri().scheme_str() != Some("https") {
            // wasi-http says TLS by the request's scheme; the URI the pool connects by must agree.
            let mut parts = request.uri().clone().into_parts();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            *request.uri_mut() =
                Uri::from_parts(parts).map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        }
        if request.uri().authority().is_none() {
            return Err(ErrorCode::HttpRequestUriInvalid);
        }
        let sent = CONNECT_TIMEOUT.scope(config.connect_timeout, self.client.request(request));
        let resp = tokio::time::timeout(config.first_byte_timeout, sent)
            .await
            .map_err(|_| ErrorCode::ConnectionReadTimeout)?
            .map_err(request_error)?;
        use http_body_util::BodyExt;
        Ok(IncomingResponse {
            resp: resp.map(|body| {
                body.map_err(wasmtime_wasi_http::hyper_response_error)
                    .boxed_unsync()
            }),
            worker: None,
            between_bytes_timeout: config.between_bytes_timeout,
        })
    }
}

/// The wasi-http error behind a pool error: the connector's own `ErrorCode` where there is
/// one, else `HttpProtocolError` (as Spin maps it).
fn request_error(err: hyper_util::client::legacy::Error) -> ErrorCode {
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(code) = cause.downcast_ref::<ErrorCode>() {
            return code.clone();
        }
        source = cause.source();
    }
    ErrorCode::HttpProtocolError
}

fn dns_error(rcode: &str) -> ErrorCode {
    ErrorCode::DnsError(DnsErrorPayload {
        rcode: Some(rcode.to_string()),
        info_code: Some(0),
    })
}

/// Opens the pool's connections: TCP, then TLS for `https`.
#[derive(Clone)]
struct Connector {
    tls: tokio_rustls::TlsConnector,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = ErrorCode;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ErrorCode>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ErrorCode>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let limit = CONNECT_TIMEOUT
            .try_with(|t| *t)
            .unwrap_or(BACKGROUND_CONNECT_TIMEOUT);
        Box::pin(async move {
            tokio::time::timeout(limit, connect(uri, tls))
                .await
                .map_err(|_| ErrorCode::ConnectionTimeout)?
        })
    }
}

async fn connect(uri: Uri, tls: tokio_rustls::TlsConnector) -> Result<Stream, ErrorCode> {
    let use_tls = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrNotAvailable => dns_error("address not available"),
            _ if e
                .to_string()
                .starts_with("failed to lookup address information") =>
            {
                dns_error("address not available")
            }
            _ => ErrorCode::ConnectionRefused,
        })?;
    // Nagle stays on, as in Spin 4.0.2's outbound client: a guest that writes a request's
    // body after the head pays the receiver's delayed ACK here too.
    if !use_tls {
        return Ok(Stream::Plain(TokioIo::new(tcp)));
    }
    let name =
        rustls::pki_types::ServerName::try_from(host).map_err(|_| dns_error("invalid dns name"))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|_| ErrorCode::TlsProtocolError)?;
    Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
}

/// A pooled connection.
enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
