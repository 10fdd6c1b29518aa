//! Responses and request bodies for components written against `IncomingRequest` +
//! `ResponseOutparam` (which lets a component keep working after it has answered), and the
//! outbound POST. Every body this module sends is written before its head leaves (see
//! `write_and_finish`).

use futures::StreamExt;
use spin_executor::CancelOnDropToken;
use spin_sdk::http::conversions::TryIntoOutgoingRequest;
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingResponse, Request,
    ResponseOutparam,
};
use std::task::Poll;
use std::time::Duration;

/// Writes a complete response.
pub async fn respond(
    out: ResponseOutparam,
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&str, String)],
) {
    let mut headers = vec![("content-type".to_string(), content_type.to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    respond_with_headers(out, status, headers, body).await
}

/// Writes a complete response with exactly these headers.
pub async fn respond_with_headers(
    out: ResponseOutparam,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) {
    let headers: Vec<(String, Vec<u8>)> = headers
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let response =
        OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        out.set(response);
        return;
    };
    // As for requests (`write_and_finish`): the body first, so the head does not leave on
    // its own; `join` sets the response at once should the body not fit the host's buffer.
    let (written, ()) = futures::future::join(write_and_finish(outgoing, body), async move {
        out.set(response)
    })
    .await;
    if let Err(e) = written {
        ipai_core::log::warn(
            "http",
            None,
            format!("could not write the response body: {e}"),
        );
    }
}

/// Writes a JSON response.
pub async fn respond_json(
    out: ResponseOutparam,
    status: u16,
    body: Vec<u8>,
    extra: &[(&str, String)],
) {
    respond(out, status, "application/json", body, extra).await
}

/// Writes an error answer: its status, headers and `{"error","message"}` body. (The
/// caller logs a server error first, with the detail the client is not shown.)
pub async fn respond_error(out: ResponseOutparam, error: &ipai_core::ApiError) {
    let extra: Vec<(&str, String)> = error.headers.iter().map(|(k, v)| (*k, v.clone())).collect();
    respond_json(out, error.status, error.body(), &extra).await
}

/// A request's method as text.
pub fn method(req: &IncomingRequest) -> String {
    req.method().to_string()
}

/// A request header's first value, if it is UTF-8.
pub fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    req.headers()
        .get(&name.to_ascii_lowercase())
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit arrived; carries the bytes read so far.
    TooLarge(usize),
    /// The stream failed.
    Read(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(n) => write!(f, "body exceeds the limit ({n} bytes read)"),
            BodyError::Read(e) => write!(f, "could not read the body: {e}"),
        }
    }
}

/// Reads the body, stopping as soon as it exceeds `limit` bytes.
pub async fn read_body(req: IncomingRequest, limit: usize) -> Result<Vec<u8>, BodyError> {
    read_capped(req.into_body_stream(), limit).await
}

/// Request headers as (name, UTF-8-lossy value) pairs.
pub fn headers(req: &IncomingRequest) -> Vec<(String, String)> {
    req.headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

/// The most of an outbound answer's body any component reads: 1 MiB. A service that
/// answers more (a misbehaving proxy, an endless chunked stream) fails the call with
/// [`too_large`]'s error (the event is retried like any failed call) instead of growing
/// the component's memory. Every answer the bus expects (a handler's summary, an Odoo
/// JSON-RPC result, a Google token, a Mattermost user) is a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The error of an answer whose body exceeds [`MAX_RESPONSE_BYTES`]: names the service by
/// its origin (never the path, which may carry a secret such as a webhook's key) and the cap.
pub fn too_large(url: &str) -> String {
    format!(
        "the answer of {} exceeds {MAX_RESPONSE_BYTES} bytes (1 MiB), the most the bus reads \
         of an answer; the rest was not read",
        origin(url)
    )
}

/// `scheme://host[:port]` of a URL, without any user information.
fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the service".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// An outbound POST with a deadline: `Ok((status, body))`, or `Err` for a transport
/// failure, a timeout or a body over [`MAX_RESPONSE_BYTES`] (the text says which). The
/// deadline covers reading the answer's body too.
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    deadline: Duration,
) -> Result<(u16, Vec<u8>), String> {
    exchange(Method::Post, url, headers, Some(body), deadline).await
}

/// An outbound GET with a deadline; answers as [`post`].
pub async fn get(
    url: &str,
    headers: &[(&str, String)],
    deadline: Duration,
) -> Result<(u16, Vec<u8>), String> {
    exchange(Method::Get, url, headers, None, deadline).await
}

async fn exchange(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
    deadline: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let mut builder = Request::builder();
    builder.method(method).uri(url);
    for (k, v) in headers {
        builder.header(*k, v.as_str());
    }
    if let Some(body) = &body {
        builder.header("content-length", body.len().to_string());
    }
    let (request, body) = builder
        .body(body.unwrap_or_default())
        .build()
        .try_into_outgoing_request()
        .map_err(|e| format!("request failed: {e}"))?;
    let outgoing = request
        .body()
        .map_err(|()| "request failed: the request body was already taken".to_string())?;
    let answered = async {
        // `join` polls the write first: a body that fits the host's buffer is complete
        // before `send` hands the request to the host (see `write_and_finish`).
        let (written, sent) = futures::future::join(
            write_and_finish(outgoing, body.unwrap_or_default()),
            spin_sdk::http::send::<_, IncomingResponse>(request),
        )
        .await;
        written.map_err(|e| format!("request failed: {e}"))?;
        let resp = sent.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let body = read_capped(resp.take_body_stream(), MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(_) => too_large(url),
                BodyError::Read(e) => format!("could not read the answer: {e}"),
            })?;
        Ok((status, body))
    };
    match crate::timer::timeout(deadline, answered).await {
        None => Err(format!("timed out after {} ms", deadline.as_millis())),
        Some(result) => result,
    }
}

/// Collects a body stream, stopping as soon as it exceeds `limit` bytes (the rest is
/// never read: dropping the stream closes it).
async fn read_capped<E: std::fmt::Debug>(
    stream: impl futures::Stream<Item = Result<Vec<u8>, E>>,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut stream = std::pin::pin!(stream);
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(format!("{e:?}")))?;
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(BodyError::TooLarge(body.len()));
        }
    }
    Ok(body)
}

/// Writes `body` into an outgoing body (a request's or a response's) and finishes it,
/// waiting for the host only when its buffer is full.
///
/// Why not `spin_sdk::http::send` with a buffered body: it hands the request to the host
/// first and writes the body after, so the host may send the head on its own and the body
/// in a second segment. Spin's outbound client leaves Nagle's algorithm on (no
/// `TCP_NODELAY`), so that second segment waits for the receiver's delayed ACK — up to
/// 40 ms on Linux, per request. The host buffers one chunk (1 MiB in wasmtime) before anyone
/// reads, so a body written and finished first leaves in the same write as the head. The
/// same holds for a response set after its body (`respond_with_headers`).
async fn write_and_finish(outgoing: OutgoingBody, body: Vec<u8>) -> Result<(), String> {
    let stream = outgoing
        .write()
        .map_err(|()| "the body stream was already taken".to_string())?;
    let mut rest = &body[..];
    let mut registration: Option<CancelOnDropToken> = None;
    futures::future::poll_fn(|cx| loop {
        if rest.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let room = match stream.check_write() {
            Ok(room) => room.min(rest.len() as u64) as usize,
            Err(e) => return Poll::Ready(Err(format!("could not write the body: {e:?}"))),
        };
        if room == 0 {
            let token =
                spin_executor::push_waker_and_get_token(stream.subscribe(), cx.waker().clone());
            registration = Some(token.into());
            return Poll::Pending;
        }
        if let Err(e) = stream.write(&rest[..room]) {
            return Poll::Ready(Err(format!("could not write the body: {e:?}")));
        }
        rest = &rest[room..];
    })
    .await?;
    drop(registration);
    drop(stream);
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("could not finish the body: {e:?}"))
}
