//! Helpers shared by the exporter's tests: a scrape over a real socket, a parser of the
//! text exposition formats, and waiting for a condition.
#![allow(dead_code)] // Each test file uses its own part.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long anything the tests wait for may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `request` (the raw bytes) to `addr` and read the answer to the end.
pub fn request(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connecting");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).expect("sending the request");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("reading the answer");
    parse_answer(&bytes)
}

/// `GET path` with `Accept: accept` if given.
pub fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Answer {
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}User-Agent: test\r\n\r\n")
            .as_bytes(),
    )
}

/// Read a whole HTTP/1.1 answer, checking its framing: the status line, the headers, and a
/// body as long as its `Content-Length` says.
pub fn parse_answer(bytes: &[u8]) -> Answer {
    let text = std::str::from_utf8(bytes).expect("an answer in UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("a blank line after the head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().expect("a status code");
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let answer = Answer {
        status,
        headers,
        body: body.to_owned(),
    };
    assert_eq!(answer.header("connection"), Some("close"));
    let length: usize = answer
        .header("content-length")
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, answer.body.len(), "the body's length");
    answer
}

/// One sample of an exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The name, with its suffix (`_total`).
    pub name: String,
    /// Every label.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed exposition: the samples, and the `# TYPE` of each family.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
    pub eof: bool,
}

impl Exposition {
    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample named `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut found = self.named(name).filter(|s| s.labels == want);
        let sample = found.next()?;
        assert!(found.next().is_none(), "two samples {name}{want:?}");
        Some(sample.value)
    }
}

/// Parse the classic text format (0.0.4) or OpenMetrics text. Panics on anything that is
/// neither: a test of the output wants it well-formed.
pub fn parse(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        assert!(!exposition.eof, "nothing may follow # EOF: {line:?}");
        if line == "# EOF" {
            exposition.eof = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert!(
                ["counter", "gauge", "info", "histogram", "unknown"].contains(&kind),
                "{line}"
            );
            let old = exposition.types.insert(name.to_owned(), kind.to_owned());
            assert!(old.is_none(), "two TYPE lines for {name}");
        } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line:?}");
            exposition.samples.push(parse_sample(line));
        }
    }
    exposition
}

fn parse_sample(line: &str) -> Sample {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let name_end = line.find(|c| !is_name(c)).unwrap_or(line.len());
    let name = &line[..name_end];
    assert!(!name.is_empty(), "no name in {line:?}");
    let mut rest = line[name_end..].chars();
    let mut labels = BTreeMap::new();
    if rest.as_str().starts_with('{') {
        rest.next();
        loop {
            if rest.as_str().starts_with('}') {
                rest.next();
                break;
            }
            let (key, after) = rest.as_str().split_once("=\"").expect("label=\"value\"");
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?} in {line:?}"
            );
            rest = after.chars();
            let mut value = String::new();
            loop {
                match rest.next().expect("a closing quote") {
                    '"' => break,
                    '\\' => match rest.next().expect("an escaped character") {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("bad escape \\{c} in {line:?}"),
                    },
                    c => value.push(c),
                }
            }
            let old = labels.insert(key.to_owned(), value);
            assert!(old.is_none(), "label {key} twice in {line:?}");
            match rest.next() {
                Some(',') => {}
                Some('}') => break,
                other => panic!("{other:?} after a label in {line:?}"),
            }
        }
    }
    let value = rest
        .as_str()
        .strip_prefix(' ')
        .expect("a space before the value");
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Wait up to [`WAIT`] for `condition`, checking every few milliseconds; the last value it
/// saw, if it never held.
pub fn wait_until<T>(mut probe: impl FnMut() -> T, condition: impl Fn(&T) -> bool) -> Result<T, T> {
    let deadline = Instant::now() + WAIT;
    loop {
        let value = probe();
        if condition(&value) {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(value);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Scrape `/metrics` in the classic format and parse it.
pub fn scrape(addr: SocketAddr) -> Exposition {
    let answer = get(addr, "/metrics", None);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&answer.body)
}
