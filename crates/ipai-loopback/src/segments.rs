//! A raw TCP stand-in that shows how a request crossed the wire: for each HTTP/1.1 request
//! it records whether the head and the whole body were already there at the first read.
//!
//! Why it exists: a client that writes the head and then the body in two writes, with
//! Nagle's algorithm on (Spin's outbound client does not set `TCP_NODELAY`), holds the
//! body until the receiver acknowledges the head — up to 40 ms of delayed ACK per request
//! on Linux. A request that arrives whole at the first read was written in one piece.
//! It answers every request `200 {"ok":true}` and keeps the connection open.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The request line, e.g. `POST /hooks/x HTTP/1.1`.
    pub request_line: String,
    /// The body's length (from `content-length`, or the chunks' total; 0 when neither).
    pub body_len: usize,
    /// The body came with `transfer-encoding: chunked`.
    pub chunked: bool,
    /// Bytes the first read of this request returned.
    pub first_read: usize,
    /// Head and body were complete at the first read.
    pub whole_at_first_read: bool,
}

/// The running probe; stops when dropped.
pub struct SegmentProbe {
    pub url: String,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SegmentProbe {
    /// Starts on a loopback port this process never handed out before (`crate::ports`).
    pub async fn start() -> std::io::Result<Self> {
        let listener = crate::ports::bind_fresh_tokio()?;
        let url = format!("http://{}", listener.local_addr()?);
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = arrivals.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, seen.clone()));
            }
        });
        Ok(Self {
            url,
            arrivals,
            task,
        })
    }

    /// Every request so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl Drop for SegmentProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

/// Reads requests off one connection until the peer closes it.
async fn serve(mut stream: TcpStream, seen: Arc<Mutex<Vec<Arrival>>>) {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let first = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut have = first;
        let (head, body_len) = loop {
            if let Some(whole) = whole_request(&buf[..have]) {
                break whole;
            }
            match stream.read(&mut buf[have..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
        };
        let request_line = String::from_utf8_lossy(&buf[..head.len])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        if let Ok(mut a) = seen.lock() {
            a.push(Arrival {
                request_line,
                body_len,
                chunked: head.framing == Framing::Chunked,
                first_read: first,
                whole_at_first_read: whole_request(&buf[..first]).is_some(),
            });
        }
        if stream.write_all(ANSWER).await.is_err() {
            return;
        }
    }
}

/// Whether `bytes` hold a whole HTTP/1.1 message (request or response): its head and a
/// content-length body, or chunks up to the last.
pub fn is_whole_message(bytes: &[u8]) -> bool {
    whole_request(bytes).is_some()
}

/// The head and the body's length once `bytes` hold a whole request: the head and a
/// content-length body, or chunks up to the last. (Clients here do not pipeline: bytes
/// after a request are not kept for the next one.)
fn whole_request(bytes: &[u8]) -> Option<(Head, usize)> {
    let head = parse_head(bytes)?;
    let body = &bytes[head.len..];
    let body_len = match head.framing {
        Framing::Length(n) => (body.len() >= n).then_some(n)?,
        Framing::Chunked => chunked_end(body)?.1,
    };
    Some((head, body_len))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// Length including the blank line.
    len: usize,
    framing: Framing,
}

/// The head's length and how its body is framed, once the head is complete.
fn parse_head(bytes: &[u8]) -> Option<Head> {
    let len = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&bytes[..len]);
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let framing = if field("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        Framing::Chunked
    } else {
        Framing::Length(
            field("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )
    };
    Some(Head { len, framing })
}

/// `(bytes up to and including the last chunk, data length)` once a chunked body is complete
/// (no trailers).
fn chunked_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let (mut at, mut data) = (0, 0);
    loop {
        let line_end = bytes[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let size_text = String::from_utf8_lossy(&bytes[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let next = line_end + 2 + size + 2;
        if bytes.len() < next {
            return None;
        }
        data += size;
        at = next;
        if size == 0 {
            return Some((at, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_measured_with_its_body_framing() {
        let req = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let head = parse_head(req).unwrap();
        assert_eq!(
            (head.len, head.framing),
            (req.len() - 5, Framing::Length(5))
        );
        assert_eq!(parse_head(b"POST /x HTTP/1.1\r\nHost: a\r\n"), None);
        let req = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(req).unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn a_chunked_body_ends_at_its_last_chunk() {
        assert_eq!(chunked_end(b"5\r\nhello\r\n0\r\n\r\n"), Some((15, 5)));
        assert_eq!(chunked_end(b"5\r\nhello\r\n"), None);
        assert_eq!(chunked_end(b"0\r\n\r\n"), Some((5, 0)));
        let req = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(whole_request(req).map(|(_, n)| n), Some(2));
        assert_eq!(whole_request(&req[..req.len() - 5]), None);
        assert_eq!(whole_request(&req[..20]), None);
    }

    #[tokio::test]
    async fn one_write_arrives_whole_and_a_late_body_does_not() {
        let probe = SegmentProbe::start().await.unwrap();
        let addr = probe.url.trim_start_matches("http://").to_string();
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        let mut answer = vec![0u8; ANSWER.len()];
        c.write_all(b"POST /one HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        c.read_exact(&mut answer).await.unwrap();
        c.write_all(b"POST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        c.write_all(b"hi").await.unwrap();
        c.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, ANSWER);
        let a = probe.arrivals();
        assert_eq!(a.len(), 2, "{a:?}");
        assert!(a[0].whole_at_first_read, "{a:?}");
        assert_eq!(a[0].request_line, "POST /one HTTP/1.1");
        assert!(!a[1].whole_at_first_read, "{a:?}");
        assert_eq!(a[1].body_len, 2);
        c.write_all(b"POST /three HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        c.write_all(b"0\r\n\r\n").await.unwrap();
        c.read_exact(&mut answer).await.unwrap();
        let a = probe.arrivals();
        assert!(
            a[2].chunked && !a[2].whole_at_first_read && a[2].body_len == 2,
            "{a:?}"
        );
    }
}
