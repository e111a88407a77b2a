//! Just enough HTTP/1.1 for a scraper: one request per connection, `GET` or `HEAD` of
//! `/metrics`, the answer, then close.
//!
//! Hostile input costs little: the request head is read up to [`MAX_HEAD`] bytes within
//! [`HEAD_TIMEOUT`] in all (not per read, so a client trickling a byte at a time is cut off
//! too); anything that is not a well-formed request gets a 4xx answer, or none if the
//! client is gone, and the connection is closed. The body of a request is never read.

use prometheus_client::registry::Registry;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest request head read, request line and headers: 8 KiB.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// The time a client has to send its whole request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The time the answer may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, how long to read (and drop) what the client still sends, so that the
/// close is a FIN after the answer, not a reset that could destroy it.
const LINGER: Duration = Duration::from_secs(1);
/// And how much at most.
const LINGER_BYTES: usize = 64 * 1024;
/// The longest a connection's thread waits in one read before looking whether the
/// exporter is stopping.
const SLICE: Duration = Duration::from_millis(100);

/// The `Content-Type` of the OpenMetrics text format prometheus-client writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The path served.
pub(crate) const PATH: &str = "/metrics";

/// The two text formats prometheus-client encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0, for a client whose `Accept` names it (Prometheus does).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for every other client (curl, a browser).
    Text,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    fn encode(self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        match self {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, registry)?,
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?
            }
        }
        Ok(text)
    }
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// `HEAD`: the answer without its body.
    head_only: bool,
    /// The path is [`PATH`].
    metrics: bool,
    /// The method is `GET` or `HEAD`.
    method_allowed: bool,
    format: Format,
}

/// Why a request head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not HTTP/1.x: `400 Bad Request`.
    Malformed,
    /// Longer than [`MAX_HEAD`]: `431 Request Header Fields Too Large`.
    TooLarge,
}

/// Read `head` (the bytes before the blank line) as an HTTP/1.x request.
pub(crate) fn parse(head: &[u8]) -> Result<Request, Refusal> {
    let head = std::str::from_utf8(head).map_err(|_| Refusal::Malformed)?;
    let mut lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().ok_or(Refusal::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(Refusal::Malformed);
    }
    let mut format = Format::Text;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(Refusal::Malformed)?;
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(Refusal::Malformed);
        }
        if name.eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text") {
            format = Format::OpenMetrics;
        }
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(Request {
        head_only: method == "HEAD",
        metrics: path == PATH,
        method_allowed: method == "GET" || method == "HEAD",
        format,
    })
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Response {
    status: &'static str,
    content_type: &'static str,
    /// Extra header lines, each ending in CRLF.
    headers: &'static str,
    body: String,
    head_only: bool,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: "",
            body: format!("{body}\n"),
            head_only: false,
        }
    }

    /// `503`: too many scrapes at once.
    pub(crate) fn busy() -> Response {
        Response::text("503 Service Unavailable", "too many connections")
    }

    /// The status line's code and reason.
    #[cfg(test)]
    fn status(&self) -> &'static str {
        self.status
    }

    /// Write the answer, with `Connection: close`.
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut bytes = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.headers
        )
        .into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// The answer to `request`, the metrics encoded from `registry` now.
pub(crate) fn answer(request: Result<Request, Refusal>, registry: &Registry) -> Response {
    let request = match request {
        Ok(request) => request,
        Err(Refusal::Malformed) => return Response::text("400 Bad Request", "bad request"),
        Err(Refusal::TooLarge) => {
            return Response::text(
                "431 Request Header Fields Too Large",
                "request head too large",
            )
        }
    };
    if !request.metrics {
        return Response::text("404 Not Found", "not found: the metrics are at /metrics");
    }
    if !request.method_allowed {
        let mut response = Response::text("405 Method Not Allowed", "method not allowed");
        response.headers = "Allow: GET, HEAD\r\n";
        return response;
    }
    match request.format.encode(registry) {
        Ok(body) => Response {
            status: "200 OK",
            content_type: request.format.content_type(),
            headers: "",
            body,
            head_only: request.head_only,
        },
        Err(std::fmt::Error) => {
            Response::text("500 Internal Server Error", "cannot encode the metrics")
        }
    }
}

/// What reading a request head came to.
enum Head {
    /// The bytes before the blank line.
    Complete(Vec<u8>),
    /// Longer than [`MAX_HEAD`].
    TooLarge,
    /// The client closed, was too slow, or the socket failed: nothing to answer.
    Gone,
}

/// Read into `buf` by `deadline`, in slices of at most [`SLICE`] so that `stopping` is seen
/// soon even where shutting the socket down does not wake a blocked read (Wine). `None`
/// when the deadline passed or the exporter is stopping.
fn read_by(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    stopping: &AtomicBool,
) -> io::Result<Option<usize>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stopping.load(Ordering::SeqCst) {
            return Ok(None);
        }
        stream.set_read_timeout(Some(left.min(SLICE)))?;
        match stream.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Read a request head by `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant, stopping: &AtomicBool) -> io::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0; 1024];
    loop {
        let n = match read_by(stream, &mut chunk, deadline, stopping)? {
            None | Some(0) => return Ok(Head::Gone),
            Some(n) => n,
        };
        // Look for the blank line from just before the new bytes, in case it straddles.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = blank_line(&head[from..]) {
            if from + end > MAX_HEAD {
                return Ok(Head::TooLarge);
            }
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the head ends in `bytes`: the offset of its blank line (CRLF CRLF, or a bare LF
/// LF as lenient servers accept).
fn blank_line(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len())
        .find(|&i| bytes[i..].starts_with(b"\r\n\r\n") || bytes[i..].starts_with(b"\n\n"))
}

/// Serve one connection: read its request, answer it, close; give up at once when
/// `stopping`. Errors are the client's (gone, reset, too slow) and only logged.
pub(crate) fn serve(mut stream: TcpStream, registry: &Registry, stopping: &AtomicBool) {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let request = match read_head(&mut stream, deadline, stopping) {
        Ok(Head::Complete(head)) => parse(&head),
        Ok(Head::TooLarge) => Err(Refusal::TooLarge),
        Ok(Head::Gone) => return,
        Err(e) => {
            tracing::debug!(error = %e, "metrics: reading a request");
            return;
        }
    };
    let response = answer(request, registry);
    if let Err(e) = stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .and_then(|()| response.write_to(&mut stream))
    {
        tracing::debug!(error = %e, "metrics: writing an answer");
        return;
    }
    linger(stream, stopping);
}

/// Close after an answer: send FIN, then read what the client still sends for a moment,
/// so that closing with unread input does not reset the connection (a reset can destroy
/// the answer before the client has read it).
fn linger(mut stream: TcpStream, stopping: &AtomicBool) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0; 4096];
    let mut read = 0;
    while read < LINGER_BYTES {
        match read_by(&mut stream, &mut scratch, deadline, stopping) {
            Ok(Some(0) | None) | Err(_) => return,
            Ok(Some(n)) => read += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &str) -> &'static str {
        answer(parse(head.as_bytes()), &Registry::default()).status()
    }

    #[test]
    fn routes() {
        assert_eq!(status("GET /metrics HTTP/1.1\r\nHost: x"), "200 OK");
        assert_eq!(status("GET /metrics?x=1 HTTP/1.0"), "200 OK");
        assert_eq!(status("HEAD /metrics HTTP/1.1"), "200 OK");
        assert_eq!(status("GET /other HTTP/1.1"), "404 Not Found");
        assert_eq!(status("GET / HTTP/1.1"), "404 Not Found");
        assert_eq!(status("POST /metrics HTTP/1.1"), "405 Method Not Allowed");
        assert_eq!(status("DELETE /metrics HTTP/1.1"), "405 Method Not Allowed");
    }

    #[test]
    fn refuses_what_is_not_http_1() {
        for head in [
            "",
            "GET",
            "GET /metrics",
            "GET /metrics HTTP/2.0",
            "GET  /metrics HTTP/1.1",
            "GET /metrics HTTP/1.1 extra",
            "GET metrics HTTP/1.1",
            "G\u{e9}T /metrics HTTP/1.1",
            "GET /metrics HTTP/1.1\r\nno colon",
            "GET /metrics HTTP/1.1\r\nBad Name: x",
            "\u{0}\u{1}\u{2}",
        ] {
            assert_eq!(status(head), "400 Bad Request", "{head:?}");
        }
        assert_eq!(
            answer(parse(&[0xff, 0xfe]), &Registry::default()).status(),
            "400 Bad Request"
        );
        assert_eq!(
            answer(Err(Refusal::TooLarge), &Registry::default()).status(),
            "431 Request Header Fields Too Large"
        );
    }

    #[test]
    fn negotiates_the_format() {
        let format = |head: &str| parse(head.as_bytes()).unwrap().format;
        assert_eq!(format("GET /metrics HTTP/1.1"), Format::Text);
        assert_eq!(
            format("GET /metrics HTTP/1.1\r\naccept: text/plain;version=0.0.4"),
            Format::Text
        );
        assert_eq!(
            format(
                "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.4"
            ),
            Format::OpenMetrics
        );
    }

    #[test]
    fn writes_an_answer() {
        let mut out = Vec::new();
        let request = parse(b"GET /metrics HTTP/1.1");
        answer(request, &Registry::default())
            .write_to(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n\r\n"), "{text}");

        let mut out = Vec::new();
        let request = parse(b"HEAD /metrics HTTP/1.1\r\nAccept: application/openmetrics-text");
        answer(request, &Registry::default())
            .write_to(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        // The body an OpenMetrics GET would get is "# EOF\n"; HEAD sends only its length.
        assert!(text.contains("Content-Length: 6\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn finds_the_blank_line() {
        assert_eq!(blank_line(b"GET / HTTP/1.1\r\n\r\nbody"), Some(14));
        assert_eq!(blank_line(b"GET / HTTP/1.1\n\nbody"), Some(14));
        assert_eq!(blank_line(b"GET / HTTP/1.1\r\n"), None);
    }
}
