//! The exporter's HTTP as a hostile or careless client sees it: wrong paths and methods,
//! garbage, oversized and silent requests, too many connections, and stopping.

mod util;

use iomodels_engine::{echo::Echo, Config, Model, Server};
use iomodels_metrics::{Error, Exporter, Source, MAX_CONNECTIONS};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use util::{get, parse, parse_answer, request, scrape, wait_until, WAIT};

fn started() -> (Server<Echo>, Exporter) {
    let config = Config::new(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
    let server = Server::start(config, Echo).unwrap();
    let exporter =
        Exporter::start("127.0.0.1:0".parse().unwrap(), Source::engine(&server)).unwrap();
    (server, exporter)
}

/// Read what the exporter sends until it closes: the answer, or nothing. A reset counts
/// as a close.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return bytes,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return bytes,
            Err(e) => panic!("reading: {e} after {bytes:?}"),
        }
    }
}

#[test]
fn other_paths_are_404_other_methods_405() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    let answer = get(addr, "/other", None);
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(get(addr, "/", None).status, 404);
    assert_eq!(get(addr, "/metrics/", None).status, 404);
    assert_eq!(get(addr, "/metrics?name[]=x", None).status, 200);
    let answer = request(
        addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(answer.status, 405, "{answer:?}");
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    assert_eq!(request(addr, b"PUT /other HTTP/1.1\r\n\r\n").status, 404);
    // HEAD: the headers of a GET, no body (its length is that of the GET's body).
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap();
    let bytes = read_to_close(&mut stream);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    let length: usize = text
        .split("\r\n")
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(length > 1000, "{length}");
    drop(exporter);
    server.stop().unwrap();
}

#[test]
fn garbage_is_answered_400_or_dropped_and_the_exporter_goes_on() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    for garbage in [
        &b"\r\n\r\n"[..],
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", // a TLS hello, cut
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let answer = request(addr, garbage);
        assert_eq!(answer.status, 400, "{garbage:?}: {answer:?}");
    }
    // Half a request, then the client leaves: nothing to answer.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"GET /metr").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut stream), b"");
    // Random bytes of every value, without a blank line, then a close.
    let mut stream = TcpStream::connect(addr).unwrap();
    let noise: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    stream.write_all(&noise).unwrap();
    drop(stream);
    // The exporter still serves.
    let exposition = scrape(addr);
    assert!(!exposition.samples.is_empty());
    drop(exporter);
    server.stop().unwrap();
}

#[test]
fn an_oversized_head_is_refused() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    // 9 KiB of headers with the blank line at the end: refused, not served.
    let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while head.len() < 9 * 1024 {
        head.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    head.extend_from_slice(b"\r\n");
    let answer = request(addr, &head);
    assert_eq!(answer.status, 431, "{answer:?}");
    // A head that never ends: refused once past the limit, while the client still sends.
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut sent = 0;
    let endless = [b'a'; 1024];
    stream.set_write_timeout(Some(WAIT)).unwrap();
    while sent < 64 * 1024 {
        match stream.write(&endless) {
            Ok(n) => sent += n,
            // The exporter stopped reading and closed: fine.
            Err(_) => break,
        }
    }
    let bytes = read_to_close(&mut stream);
    if !bytes.is_empty() {
        assert_eq!(parse_answer(&bytes).status, 431);
    }
    // Just under the limit is fine.
    let mut head = b"GET /metrics HTTP/1.1\r\nX-Padding: ".to_vec();
    head.resize(8 * 1024 - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(request(addr, &head).status, 200);
    drop(exporter);
    server.stop().unwrap();
}

#[test]
fn a_silent_client_does_not_block_others_and_is_cut_off() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut trickle = TcpStream::connect(addr).unwrap();
    trickle.write_all(b"G").unwrap();
    // Others are served at once meanwhile.
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(get(addr, "/metrics", None).status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The silent one is closed without an answer after the head timeout (5 s).
    let bytes = read_to_close(&mut silent);
    assert_eq!(bytes, b"");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(9),
        "{waited:?}"
    );
    // A trickle counts against the same deadline, not a fresh one per byte.
    let _ = trickle.write_all(b"E");
    assert_eq!(read_to_close(&mut trickle), b"");
    drop(exporter);
    server.stop().unwrap();
}

#[test]
fn connections_past_the_limit_are_answered_503() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // The exporter counts a connection when it accepts it: wait until all are.
    let busy = wait_until(
        || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
            read_to_close(&mut stream)
        },
        |bytes| bytes.starts_with(b"HTTP/1.1 503 "),
    );
    assert!(busy.is_ok(), "{:?}", busy.map_err(String::from_utf8));
    // The idle ones leave: their threads end and the exporter serves again.
    drop(idle);
    let served = wait_until(
        || get(addr, "/metrics", None).status,
        |status| *status == 200,
    );
    assert!(served.is_ok(), "{served:?}");
    drop(exporter);
    server.stop().unwrap();
}

#[test]
fn stop_ends_every_connection_and_frees_the_port() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    let mut idle = TcpStream::connect(addr).unwrap();
    // Make sure the idle connection has been accepted: a scrape after it was served.
    assert_eq!(get(addr, "/metrics", None).status, 200);
    let started = Instant::now();
    exporter.stop();
    // Not after the head timeout: the idle connection was cut short.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(read_to_close(&mut idle), b"");
    // The port is free: another exporter can take it.
    let again = Exporter::start(addr, Source::engine(&server)).unwrap();
    assert_eq!(again.local_addr(), addr);
    drop(again);
    server.stop().unwrap();
}

#[test]
fn a_busy_address_is_one_clear_error() {
    let (server, exporter) = started();
    let addr = exporter.local_addr();
    let err = Exporter::start(addr, Source::engine(&server)).unwrap_err();
    assert!(
        matches!(err, Error::AddrInUse { addr: a } if a == addr),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("metrics address {addr} is already in use")
    );
    // An address that is not this machine's: the OS error is the source, not repeated.
    let foreign: SocketAddr = "192.0.2.1:9100".parse().unwrap();
    let err = Exporter::start(foreign, Source::engine(&server)).unwrap_err();
    assert!(
        matches!(err, Error::Listen { addr, .. } if addr == foreign),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "cannot serve metrics on 192.0.2.1:9100");
    assert!(std::error::Error::source(&err).is_some());
    drop(exporter);
    server.stop().unwrap();
}

#[test]
fn listening_on_every_address_stops_too() {
    let config = Config::new(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
    let server = Server::start(config, Echo).unwrap();
    // A port that is free now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exporter = Exporter::start(
        SocketAddr::from(([0, 0, 0, 0], port)),
        Source::engine(&server),
    )
    .unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], exporter.local_addr().port()));
    assert_eq!(get(loopback, "/metrics", None).status, 200);
    let started = Instant::now();
    drop(exporter);
    assert!(started.elapsed() < Duration::from_secs(3));
    server.stop().unwrap();
}
#[test]
fn the_parser_reads_labels_and_escapes() {
    let e = parse(
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n,}\"} 3\nb 1.5\nc{} 2\n",
    );
    assert_eq!(
        e.value("a_total", &[("x", "1"), ("y", "q\"\\\n,}")]),
        Some(3.0)
    );
    assert_eq!(e.value("b", &[]), Some(1.5));
    assert_eq!(e.value("c", &[]), Some(2.0));
    assert_eq!(e.value("a_total", &[("x", "1")]), None);
    assert_eq!(e.types["a_total"], "counter");
}

#[test]
#[should_panic(expected = "bad value")]
fn the_parser_refuses_a_bad_value() {
    parse("a{x=\"1\"} one\n");
}
