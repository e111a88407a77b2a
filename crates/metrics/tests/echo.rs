//! An echo server's counters scraped over a real socket: names, labels and values.

mod util;

use iomodels_engine::{echo::Echo, CloseReason, Config, Model, Server};
use iomodels_metrics::{Exporter, Source};
use std::io::{Read, Write};
use std::net::TcpStream;
use util::{get, parse, scrape, wait_until, WAIT};

fn echo_server() -> Server<Echo> {
    let config = Config::new(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
    Server::start(config, Echo).expect("the first scalable model runs everywhere")
}

fn exporter(server: &Server<Echo>) -> Exporter {
    Exporter::start("127.0.0.1:0".parse().unwrap(), Source::engine(server)).unwrap()
}

/// Connect, send `bytes` bytes and read them back.
fn echo(server: &Server<Echo>, bytes: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let sent: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
    stream.write_all(&sent).unwrap();
    let mut back = vec![0; bytes];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, sent);
    stream
}

#[test]
fn echo_counters_are_read_at_scrape_time() {
    let server = echo_server();
    let exporter = exporter(&server);
    let addr = exporter.local_addr();
    let model = Model::SCALABLE[0].name();
    let labels = [("model", model)];

    let before = scrape(addr);
    assert_eq!(
        before.value("iomodels_sessions_accepted_total", &labels),
        Some(0.0)
    );
    assert_eq!(before.value("iomodels_sessions_open", &labels), Some(0.0));
    assert_eq!(
        before.value("iomodels_received_bytes_total", &labels),
        Some(0.0)
    );

    let clients: Vec<TcpStream> = (0..3).map(|_| echo(&server, 1000)).collect();
    let during = scrape(addr);
    assert_eq!(
        during.value("iomodels_sessions_accepted_total", &labels),
        Some(3.0)
    );
    assert_eq!(during.value("iomodels_sessions_open", &labels), Some(3.0));
    assert_eq!(
        during.value("iomodels_connections_refused_total", &labels),
        Some(0.0)
    );
    // Counted before the handler echoed it: exact by now.
    assert_eq!(
        during.value("iomodels_received_bytes_total", &labels),
        Some(3000.0)
    );
    let received = during
        .value("iomodels_received_messages_total", &labels)
        .unwrap();
    assert!((3.0..=3000.0).contains(&received), "{received}");
    // Counted after the write returned: the client may have read it a moment before.
    let sent = wait_until(
        || scrape(addr).value("iomodels_sent_bytes_total", &labels),
        |v| *v == Some(3000.0),
    );
    assert!(sent.is_ok(), "{sent:?}");

    drop(clients);
    let after = wait_until(
        || scrape(addr),
        |e| e.value("iomodels_sessions_open", &labels) == Some(0.0),
    )
    .unwrap_or_else(|e| panic!("the sessions never closed: {e:?}"));
    let closed = |reason: CloseReason| {
        after.value(
            "iomodels_sessions_closed_total",
            &[("model", model), ("reason", reason.name())],
        )
    };
    assert_eq!(closed(CloseReason::PeerClosed), Some(3.0));
    for reason in CloseReason::ALL {
        if reason != CloseReason::PeerClosed {
            assert_eq!(closed(reason), Some(0.0), "{reason}");
        }
    }
    // One sample per reason, and no other.
    assert_eq!(
        after.named("iomodels_sessions_closed_total").count(),
        CloseReason::ALL.len()
    );
    exporter.stop();
    server.stop().unwrap();
}

#[test]
fn every_sample_has_the_model_label_and_a_type() {
    let server = echo_server();
    let exporter = exporter(&server);
    let exposition = scrape(exporter.local_addr());
    let model = Model::SCALABLE[0].name();
    assert!(!exposition.eof, "the classic format has no # EOF");
    for sample in &exposition.samples {
        assert!(sample.name.starts_with("iomodels_"), "{sample:?}");
        assert_eq!(
            sample.labels.get("model").map(String::as_str),
            Some(model),
            "{sample:?}"
        );
        assert!(!sample.labels.contains_key("mode"), "{sample:?}");
        assert!(exposition.types.contains_key(&sample.name), "{sample:?}");
    }
    let kind = |name: &str| exposition.types.get(name).map(String::as_str);
    assert_eq!(kind("iomodels_sessions_open"), Some("gauge"));
    assert_eq!(kind("iomodels_sessions_accepted_total"), Some("counter"));
    assert_eq!(kind("iomodels_sessions_closed_total"), Some("counter"));
    assert_eq!(
        kind("iomodels_process_resident_memory_bytes"),
        Some("gauge")
    );
    assert_eq!(kind("iomodels_process_cpu_seconds_total"), Some("counter"));
    // No chat metric from an engine server.
    assert!(exposition.types.keys().all(|name| !name.contains("chat")));
    exporter.stop();
    server.stop().unwrap();
}

#[test]
fn process_metrics_are_this_process() {
    let server = echo_server();
    let exporter = exporter(&server);
    let exposition = scrape(exporter.local_addr());
    let labels = [("model", Model::SCALABLE[0].name())];
    let resident = exposition
        .value("iomodels_process_resident_memory_bytes", &labels)
        .unwrap();
    let peak = exposition
        .value("iomodels_process_peak_resident_memory_bytes", &labels)
        .unwrap();
    // Read by the same function a moment apart: within a factor of two.
    let own = iomodels_sys::process::memory(std::process::id()).unwrap();
    let own = own.resident_kib as f64 * 1024.0;
    assert!(resident > 0.0 && peak >= resident, "{resident} {peak}");
    assert!(
        resident > own / 2.0 && resident < own * 2.0,
        "{resident} vs {own}"
    );
    let threads = exposition
        .value("iomodels_process_threads", &labels)
        .unwrap();
    // This thread, the server's and the exporter's at least.
    assert!(threads >= 3.0, "{threads}");
    let cpu = exposition
        .value("iomodels_process_cpu_seconds_total", &labels)
        .unwrap();
    assert!(cpu >= 0.0, "{cpu}");
    exporter.stop();
    server.stop().unwrap();
}

#[test]
fn openmetrics_when_the_scraper_asks_for_it() {
    let server = echo_server();
    let exporter = exporter(&server);
    let _client = echo(&server, 10);
    let answer = get(
        exporter.local_addr(),
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4"),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let exposition = parse(&answer.body);
    assert!(exposition.eof, "OpenMetrics ends with # EOF");
    // The family is named without `_total`, its sample with it.
    assert_eq!(
        exposition
            .types
            .get("iomodels_sessions_accepted")
            .map(String::as_str),
        Some("counter")
    );
    let labels = [("model", Model::SCALABLE[0].name())];
    assert_eq!(
        exposition.value("iomodels_sessions_accepted_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        exposition.value("iomodels_received_bytes_total", &labels),
        Some(10.0)
    );
    exporter.stop();
    server.stop().unwrap();
}
