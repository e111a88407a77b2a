//! A protocol error is logged with the peer's address.

mod common;

use common::*;
use iomodels_chat::Mode;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn protocol_error_log_names_the_peer() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    for mode in [Mode::Logic, Mode::Io] {
        let server = small_server(mode);
        let mut bad = connect(&server);
        let peer = bad.stream().local_addr().unwrap();
        bad.send_raw(&[5, 0, 0x39, 0x05, 0]).unwrap(); // id 1337
        bad.wait_closed(WAIT).unwrap();
        server.stop().unwrap();
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains("protocol error") && l.contains(&peer.to_string()))
            .unwrap_or_else(|| panic!("no protocol-error line naming {peer} in:\n{log}"));
        assert!(line.contains("unknown packet id 1337"), "{line}");
    }
}
