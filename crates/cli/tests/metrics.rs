//! `--metrics-addr` as a user runs it: the binary's banner names the metrics address, a
//! scrape over a real socket sees what a client did, a busy address is one clear error.

mod util;

use iomodels_chat::Connection;
use iomodels_proto::{Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitStatus};
use std::time::Duration;
use util::{iomodels, model, output, spawn_server, spawn_with_banner, stop};

const WAIT: Duration = Duration::from_secs(20);

/// A server that is killed if a failed assertion leaves it running (it would hold the
/// test's output pipe open).
struct Running(Option<Child>);

impl Running {
    /// Stop it as a user would, and wait.
    fn stop(mut self) -> ExitStatus {
        stop(self.0.take().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The address after `words` in `line`, up to the next space, `/` or `)`.
fn addr_after(line: &str, words: &str) -> SocketAddr {
    let (_, rest) = line
        .split_once(words)
        .unwrap_or_else(|| panic!("no {words:?} in {line:?}"));
    let end = rest.find([' ', '/', ')']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("no address after {words:?} in {line:?}"))
}

/// `GET /metrics` on `addr`: the body of a `200` in the classic text format.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    body.to_owned()
}

/// The value of the sample whose series (name and labels, as written) is `series`.
fn value(body: &str, series: &str) -> Option<f64> {
    let mut found = body.lines().filter_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse::<f64>().expect("a number"))
    });
    let value = found.next();
    assert!(found.next().is_none(), "{series} twice in {body}");
    value
}

#[test]
fn chat_server_serves_its_metrics() {
    let (child, line) = spawn_with_banner(iomodels().args([
        "chat-server",
        "--model",
        model(),
        "--addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]));
    let child = Running(Some(child));
    let chat = addr_after(&line, " chat server on ");
    let metrics = addr_after(&line, "; metrics on http://");
    assert!(
        line.contains(&format!("metrics on http://{metrics}/metrics;")),
        "{line}"
    );

    let mut alice = Connection::connect(chat).unwrap();
    alice
        .send(&Request::Login {
            user_id: b"alice".to_vec(),
            password: b"pw".to_vec(),
        })
        .unwrap();
    assert_eq!(alice.recv(WAIT).unwrap(), Response::Login { result: 0 });
    let body = scrape(metrics);
    let labels = format!("model=\"{}\",mode=\"logic\"", model());
    assert_eq!(
        value(&body, &format!("iomodels_chat_logins_total{{{labels}}}")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, &format!("iomodels_chat_requests_total{{{labels}}}")),
        Some(1.0),
        "{body}"
    );
    let engine = format!("model=\"{}\"", model());
    assert_eq!(
        value(&body, &format!("iomodels_sessions_open{{{engine}}}")),
        Some(1.0),
        "{body}"
    );
    let resident = value(
        &body,
        &format!("iomodels_process_resident_memory_bytes{{{engine}}}"),
    )
    .expect("the process's memory");
    assert!(resident > 0.0, "{body}");
    drop(alice);
    assert!(child.stop().success());
}

#[test]
fn serve_without_the_flag_says_nothing_of_metrics() {
    let (child, line, _) =
        spawn_server(iomodels().args(["serve", "--model", model(), "--addr", "127.0.0.1:0"]));
    let child = Running(Some(child));
    assert!(child.stop().success());
    assert!(!line.contains("metrics"), "{line}");
}

#[test]
fn serve_announces_and_serves_metrics() {
    let (child, line, addr) = spawn_server(iomodels().args([
        "serve",
        "--model",
        model(),
        "--addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]));
    let child = Running(Some(child));
    let metrics = addr_after(&line, "; metrics on http://");
    let mut client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client.write_all(b"hello").unwrap();
    let mut echo = [0; 5];
    client.read_exact(&mut echo).unwrap();
    let body = scrape(metrics);
    let engine = format!("model=\"{}\"", model());
    assert_eq!(
        value(
            &body,
            &format!("iomodels_sessions_accepted_total{{{engine}}}")
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        value(&body, &format!("iomodels_received_bytes_total{{{engine}}}")),
        Some(5.0),
        "{body}"
    );
    assert!(!body.contains("iomodels_chat_"), "{body}");
    assert!(child.stop().success());
}

#[test]
fn a_busy_metrics_address_is_one_clear_error() {
    let (child, line, addr) = spawn_server(iomodels().args([
        "serve",
        "--model",
        model(),
        "--addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
    ]));
    let child = Running(Some(child));
    let metrics = addr_after(&line, "; metrics on http://").to_string();
    // The echo server's own address is busy too: either is refused as the metrics address.
    for busy in [metrics.as_str(), addr.as_str()] {
        for command in ["serve", "chat-server"] {
            let output = output(&[
                command,
                "--model",
                model(),
                "--addr",
                "127.0.0.1:0",
                "--metrics-addr",
                busy,
            ]);
            assert_eq!(output.status.code(), Some(1), "{command}: {output:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                stderr.trim(),
                format!("iomodels: metrics address {busy} is already in use"),
                "{command}"
            );
        }
    }
    assert!(child.stop().success());
}
