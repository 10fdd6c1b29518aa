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
use tokio::net::{TcpListener, TcpStream};

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The request line, e.g. `POST /hooks/x HTTP/1.1`.
    pub request_line: String,
    /// The body's length (from `content-length`; 0 when absent).
    pub body_len: usize,
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
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
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
        let Ok(first) = stream.read(&mut buf).await else {
            return;
        };
        if first == 0 {
            return;
        }
        let mut have = first;
        let (head_len, body_len) = loop {
            if let Some(parsed) = parse_head(&buf[..have]) {
                break parsed;
            }
            match stream.read(&mut buf[have..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
        };
        let whole = head_len + body_len;
        while have < whole {
            match stream.read(&mut buf[have..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
        }
        let request_line = String::from_utf8_lossy(&buf[..head_len])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        if let Ok(mut a) = seen.lock() {
            a.push(Arrival {
                request_line,
                body_len,
                first_read: first,
                whole_at_first_read: first >= whole,
            });
        }
        if stream.write_all(ANSWER).await.is_err() {
            return;
        }
    }
}

/// `(head length including the blank line, content-length)` once the head is complete.
fn parse_head(bytes: &[u8]) -> Option<(usize, usize)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]);
    let body_len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Some((end, body_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_measured_with_its_content_length() {
        let req = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_head(req), Some((req.len() - 5, 5)));
        assert_eq!(parse_head(b"POST /x HTTP/1.1\r\nHost: a\r\n"), None);
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
    }
}
