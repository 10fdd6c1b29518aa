//! Responses and request bodies for components written against `IncomingRequest` +
//! `ResponseOutparam` (which lets a component keep working after it has answered).

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingResponse, Request, Response, ResponseOutparam,
};
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
    let mut sink = response.take_body();
    out.set(response);
    if !body.is_empty() {
        if let Err(e) = sink.send(body).await {
            ipai_core::log::warn(
                "http",
                None,
                format!("could not write the response body: {e:?}"),
            );
        }
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
    let mut body = Vec::new();
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(format!("{e:?}")))?;
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Err(BodyError::TooLarge(body.len()));
        }
    }
    Ok(body)
}

/// Request headers as (name, UTF-8-lossy value) pairs.
pub fn headers(req: &IncomingRequest) -> Vec<(String, String)> {
    req.headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect()
}

/// An outbound POST with a deadline: `Ok((status, body))`, or `Err` for a transport
/// failure or timeout (the text says which).
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    deadline: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let mut builder = Request::builder();
    builder.method(Method::Post).uri(url);
    for (k, v) in headers {
        builder.header(*k, v.as_str());
    }
    let request = builder.body(body).build();
    match crate::timer::timeout(deadline, spin_sdk::http::send::<_, Response>(request)).await {
        None => Err(format!("timed out after {} ms", deadline.as_millis())),
        Some(Err(e)) => Err(format!("request failed: {e}")),
        Some(Ok(resp)) => Ok((*resp.status(), resp.into_body())),
    }
}
