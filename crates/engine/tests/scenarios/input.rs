//! Input held by the application ([`Session::pause_input`], [`Session::resume_input`]): a
//! paused session is not read, so its peer is stopped by its own TCP window; a resumed one
//! gets what it left unconsumed at once, even if its peer sends nothing more.

use crate::util::{config, connect, pattern, start, wait_until};
use iomodels_engine::{Handler, Model, Session};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Echoes, except while its gate is shut: then it pauses the session's input and
/// consumes nothing, so what arrived stays buffered in the engine.
#[derive(Default)]
struct Gate {
    shut: AtomicBool,
    paused: Mutex<Vec<Session>>,
}

impl Handler for Gate {
    type State = ();

    fn opened(&self, _: &Session) {}

    fn data(&self, _: &mut (), session: &Session, data: &[u8]) -> usize {
        if self.shut.load(Ordering::Acquire) {
            session.pause_input();
            self.paused.lock().unwrap().push(session.clone());
            return 0;
        }
        let _ = session.send(data);
        data.len()
    }
}

/// The most a client may write into a paused session before its writes block: loopback's
/// socket buffers take a few MiB; a server that kept reading would take all of it.
const FLOOD: usize = 64 * 1024 * 1024;

/// The gate shuts: the client writes until its socket blocks, which it must long before
/// [`FLOOD`] (the server stopped reading) and the server must not have read it all. The
/// gate opens and another thread resumes the session: every byte the client wrote comes
/// back, in order, though the client writes nothing more (what the handler left unconsumed
/// is delivered again without new input).
pub fn pause_and_resume_input(model: Model) {
    let mut config = config(model);
    config.idle_timeout = None;
    config.input_limit = 2 * FLOOD;
    config.send_queue_limit = 2 * FLOOD;
    let gate = Gate::default();
    gate.shut.store(true, Ordering::Release);
    let Some(server) = start(config, gate) else {
        return;
    };

    // A short request, read whole and left unconsumed: only a redelivery answers it.
    let mut first = connect(server.local_addr());
    let request = pattern(3, 0, 100);
    first.write_all(&request).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server.stats().bytes_in == 100),
        "{model}: the request did not arrive"
    );
    let resumed = take_paused(server.handler());
    server.handler().shut.store(false, Ordering::Release);
    resumed.iter().for_each(Session::resume_input);
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut echo = [0u8; 100];
    first
        .read_exact(&mut echo)
        .unwrap_or_else(|e| panic!("{model}: a resumed session's input was not redelivered: {e}"));
    assert_eq!(echo[..], request[..]);
    drop(first);
    let before = server.stats().bytes_in as usize;

    // A flood into a paused session.
    server.handler().shut.store(true, Ordering::Release);
    let mut client = connect(server.local_addr());
    client.set_nonblocking(true).unwrap();
    let chunk = pattern(7, 0, 64 * 1024);
    let mut written = 0usize;
    let mut blocked_since = None;
    while written < FLOOD {
        let at = written % chunk.len();
        match client.write(&chunk[at..]) {
            Ok(n) => {
                written += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Blocked for a while: the server is not reading.
                let since = *blocked_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{model}: writing: {e}"),
        }
    }
    assert!(
        written < FLOOD,
        "{model}: the client wrote {written} bytes into a paused session without blocking"
    );
    let read = server.stats().bytes_in as usize - before;
    assert!(
        read < written,
        "{model}: the server read all {written} bytes of a paused session"
    );
    assert_eq!(
        server.stats().bytes_out,
        100,
        "{model}: a paused session was handed input"
    );
    let paused = take_paused(server.handler());
    server.handler().shut.store(false, Ordering::Release);
    // Resumed from this thread, not the session's own.
    std::thread::spawn(move || paused.iter().for_each(Session::resume_input))
        .join()
        .unwrap();

    client.set_nonblocking(false).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut echoed = vec![0u8; written];
    client
        .read_exact(&mut echoed)
        .unwrap_or_else(|e| panic!("{model}: reading the echo of {written} bytes: {e}"));
    for (i, block) in echoed.chunks(chunk.len()).enumerate() {
        assert!(
            block == &chunk[..block.len()],
            "{model}: echo differs in block {i}"
        );
    }
    assert!(wait_until(
        Duration::from_secs(10),
        || server.stats().bytes_in as usize == before + written
    ));
    drop(client);
    server.stop().unwrap();
}

/// The sessions the gate paused, each checked to be paused.
fn take_paused(gate: &Gate) -> Vec<Session> {
    let paused = std::mem::take(&mut *gate.paused.lock().unwrap());
    assert!(!paused.is_empty(), "the handler never ran");
    assert!(paused.iter().all(Session::input_paused));
    paused
}
