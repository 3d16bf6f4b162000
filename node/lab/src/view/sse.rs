//! A minimal server-sent-events client for a node's `GET /events`: one HTTP/1.1 request
//! over a loopback TCP connection with the cookie's Basic auth, the body de-chunked and cut
//! into events (the WHATWG `text/event-stream` rules for `event:`, `data:` and comments).
//! Small on purpose: the lab needs no HTTP client crate for one streaming GET.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Longest header block or line accepted.
const MAX_LINE: usize = 64 * 1024;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` name (`message` when none).
    pub event: String,
    /// Its `data:` lines joined by `\n`.
    pub data: String,
}

/// Why a subscription ended.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The connection failed or dropped.
    #[error("event stream: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered with another status (404: a node without `/events`).
    #[error("event stream: HTTP {0}")]
    Status(u16),
    /// The answer is not an event stream.
    #[error("event stream: {0}")]
    Protocol(String),
}

/// Cuts a `text/event-stream` body into events, line by line.
#[derive(Debug, Default)]
pub struct SseParser {
    event: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds one line (without its line ending); returns an event when the line ends one.
    pub fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return None;
            }
            let event = SseEvent {
                event: if self.event.is_empty() {
                    "message".to_owned()
                } else {
                    std::mem::take(&mut self.event)
                },
                data: std::mem::take(&mut self.data).join("\n"),
            };
            self.event.clear();
            return Some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// Reads one CRLF- or LF-terminated line; `None` at the end of the stream.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Option<String>, SseError> {
    let mut buf = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n >= MAX_LINE {
        return Err(SseError::Protocol("line too long".into()));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| SseError::Protocol("not UTF-8".into()))
}

/// Reads the body's lines, de-chunking when `chunked`, and sends each event to `out`;
/// returns when the stream ends or `out` is closed.
pub async fn read_events<R: AsyncBufRead + Unpin>(
    mut reader: R,
    chunked: bool,
    out: &mpsc::Sender<SseEvent>,
) -> Result<(), SseError> {
    let mut parser = SseParser::default();
    let mut pending = Vec::new();
    loop {
        let bytes = if chunked {
            let Some(size_line) = read_line(&mut reader).await? else {
                return Ok(());
            };
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| SseError::Protocol(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                return Ok(());
            }
            if size > MAX_LINE * 16 {
                return Err(SseError::Protocol(format!("chunk of {size} bytes")));
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).await?;
            read_line(&mut reader).await?;
            chunk
        } else {
            let buf = reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok(());
            }
            let chunk = buf.to_vec();
            reader.consume(chunk.len());
            chunk
        };
        pending.extend_from_slice(&bytes);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = parser.line(&line)
                && out.send(event).await.is_err()
            {
                return Ok(());
            }
        }
        if pending.len() > MAX_LINE {
            return Err(SseError::Protocol("line too long".into()));
        }
    }
}

/// Connects to `address` (`HOST:PORT`), asks for `path` with `authorization`, and sends
/// every event to `out` until the stream ends (`Ok`) or fails; `opened` runs once the
/// server has accepted the subscription.
pub async fn subscribe(
    address: &str,
    path: &str,
    authorization: &str,
    out: &mpsc::Sender<SseEvent>,
    opened: impl FnOnce(),
) -> Result<(), SseError> {
    let mut stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: {authorization}\r\n\
         Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let status_line = read_line(&mut reader)
        .await?
        .ok_or_else(|| SseError::Protocol("connection closed before the status line".into()))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| SseError::Protocol(format!("bad status line {status_line:?}")))?;
    let mut chunked = false;
    let mut event_stream = false;
    loop {
        let line = read_line(&mut reader)
            .await?
            .ok_or_else(|| SseError::Protocol("connection closed in the headers".into()))?;
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("transfer-encoding:") {
            chunked = v.contains("chunked");
        }
        if let Some(v) = lower.strip_prefix("content-type:") {
            event_stream = v.contains("text/event-stream");
        }
    }
    if status != 200 {
        return Err(SseError::Status(status));
    }
    if !event_stream {
        return Err(SseError::Protocol(
            "the answer is not text/event-stream".into(),
        ));
    }
    opened();
    read_events(reader, chunked, out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &[u8], chunked: bool) -> Vec<SseEvent> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, mut rx) = mpsc::channel(64);
            read_events(body, chunked, &tx).await.unwrap();
            drop(tx);
            let mut got = Vec::new();
            while let Some(e) = rx.recv().await {
                got.push(e);
            }
            got
        })
    }

    #[test]
    fn events_are_cut_at_blank_lines_and_comments_ignored() {
        let body = b": keep-alive\n\nevent: tip\ndata: {\"height\":3}\n\nevent: block\r\ndata:a\r\ndata: b\r\n\r\ndata: plain\n\n";
        let got = events(body, false);
        assert_eq!(
            got,
            [
                SseEvent {
                    event: "tip".into(),
                    data: "{\"height\":3}".into()
                },
                SseEvent {
                    event: "block".into(),
                    data: "a\nb".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "plain".into()
                },
            ]
        );
    }

    #[test]
    fn chunked_bodies_are_joined_even_when_a_chunk_splits_a_line() {
        let body = b"7\r\nevent: \r\n11\r\ntip\ndata: {\"a\":1}\r\n2\r\n\n\n\r\n0\r\n\r\n";
        let got = events(body, true);
        assert_eq!(
            got,
            [SseEvent {
                event: "tip".into(),
                data: "{\"a\":1}".into()
            }]
        );
    }

    #[test]
    fn a_bad_chunk_size_is_a_protocol_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, _rx) = mpsc::channel(4);
        let err = runtime
            .block_on(read_events(&b"zz\r\n"[..], true, &tx))
            .unwrap_err();
        assert!(matches!(err, SseError::Protocol(_)), "{err}");
    }
}
