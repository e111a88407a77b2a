//! The delivery contract under hostile timing: a send that returned `Ok` reaches the peer,
//! a graceful close or shutdown delivers everything queued even while the peer keeps
//! sending, a slow but steady reader is not idle, and nothing is opened after shutdown.
//!
//! Each scenario here reproduced a loss on some model before the engine was fixed; they
//! are stress tests with a bounded number of trials, not timed tests.

use crate::util::{
    config, connect, connect_small_window, pattern, read_to_end, settle, start, wait_until,
    Registry,
};
use iomodels_engine::{echo::Echo, CloseReason, Handler, Model, SendError, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Trials of the half-close race per model. Before the fix, 25-70% of trials lost
/// messages on every model but blocking.
const HALF_CLOSE_TRIALS: u64 = 60;

/// Bug 1: another thread sends numbered messages every few microseconds while the client
/// half-closes and reads to the end. Every message whose `send` returned `Ok` must arrive,
/// in order; once the session decided to close, `send` fails with `Closed`.
pub fn send_during_half_close(model: Model) {
    let Some(server) = start(config(model), Registry::default()) else {
        return;
    };
    let mut failed = Vec::new();
    for trial in 0..HALF_CLOSE_TRIALS {
        let mut client = connect(server.local_addr());
        let me = client.local_addr().unwrap();
        let session = session_of(&server.handler().sessions, me);
        let first_sent = Arc::new(AtomicBool::new(false));
        let sender = {
            let first_sent = first_sent.clone();
            std::thread::spawn(move || -> Option<u64> {
                let mut last_ok = None;
                for seq in 0u64..2_000_000 {
                    match session.send(&seq.to_le_bytes()) {
                        Ok(()) => last_ok = Some(seq),
                        Err(SendError::Closed) => break,
                        Err(e) => panic!("unexpected send error: {e}"),
                    }
                    first_sent.store(true, Ordering::Release);
                    spin(Duration::from_micros(1 + seq % 4));
                }
                last_ok
            })
        };
        assert!(wait_until(Duration::from_secs(10), || first_sent
            .load(Ordering::Acquire)));
        client.shutdown(Shutdown::Write).unwrap();
        let (bytes, reset) = read_to_end(&mut client);
        let last_ok = sender.join().unwrap();
        assert!(!reset, "{model:?} trial {trial}: reset instead of EOF");
        assert_eq!(
            bytes.len() % 8,
            0,
            "{model:?} trial {trial}: a torn message"
        );
        for (i, record) in bytes.chunks_exact(8).enumerate() {
            let seq = u64::from_le_bytes(record.try_into().unwrap());
            assert_eq!(seq, i as u64, "{model:?} trial {trial}: out of order");
        }
        let got = (bytes.len() / 8) as u64;
        let accepted = last_ok.map_or(0, |seq| seq + 1);
        if got != accepted {
            failed.push((trial, accepted - got));
        }
    }
    assert!(
        failed.is_empty(),
        "{model:?}: {} of {HALF_CLOSE_TRIALS} trials lost messages whose send returned Ok (trial, lost): {failed:?}",
        failed.len()
    );
    settle(&server);
    assert_eq!(
        server.stats().closed_for(CloseReason::PeerClosed),
        HALF_CLOSE_TRIALS
    );
    server.stop().unwrap();
}

/// The session of the client whose local address is `client`, once the server opened it.
fn session_of(sessions: &std::sync::Mutex<Vec<Session>>, client: SocketAddr) -> Session {
    let mut found = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            found = sessions
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.peer() == client)
                .cloned();
            found.is_some()
        }),
        "the server never opened a session for {client}"
    );
    found.unwrap()
}

/// Busy-wait for `d` (sleeping would make every gap at least 50 us).
fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Sends `size` bytes when a session opens, then closes it gracefully; discards input.
struct SendThenClose {
    size: usize,
}

impl Handler for SendThenClose {
    type State = ();
    fn opened(&self, session: &Session) {
        let data = pattern(session.peer().port() as u64, 0, self.size);
        for chunk in data.chunks(64 * 1024) {
            session.send(chunk).unwrap();
        }
        session.close();
    }
    fn data(&self, _: &mut (), _: &Session, data: &[u8]) -> usize {
        data.len()
    }
}

/// A client writer that sends `chunk` bytes every `every` until `stop`, a write error, or
/// `limit`; then half-closes.
fn keep_sending(
    stream: &TcpStream,
    chunk: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let bytes = vec![0x5a; chunk];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            if writer.write_all(&bytes).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
        let _ = writer.shutdown(Shutdown::Write);
    })
}

/// Bug 2, `close()`: the handler queues 2 MiB and closes while the client keeps sending
/// 512 B every 200 us. The client receives all 2 MiB and then EOF, not a reset. (Before
/// the fix: about 127 KB, then a reset, on most models.)
pub fn close_while_peer_sends(model: Model) {
    const SIZE: usize = 2 * 1024 * 1024;
    let mut config = config(model);
    config.send_queue_limit = 4 * SIZE;
    let Some(server) = start(config, SendThenClose { size: SIZE }) else {
        return;
    };
    for trial in 0..3 {
        let mut client = connect(server.local_addr());
        let port = client.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = keep_sending(&client, 512, Duration::from_micros(200), stop.clone());
        let (received, reset) = read_to_end(&mut client);
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        assert!(
            !reset,
            "{model:?} trial {trial}: reset after {} of {SIZE} bytes",
            received.len()
        );
        assert_eq!(received.len(), SIZE, "{model:?} trial {trial}");
        assert!(
            received == pattern(port as u64, 0, SIZE),
            "{model:?}: differs"
        );
    }
    settle(&server);
    assert_eq!(server.stats().closed_for(CloseReason::Local), 3);
    server.stop().unwrap();
}

/// Bug 2, graceful shutdown: 6 MiB queued for a client with a small receive window that
/// also sends 64 B every millisecond; a shutdown must still deliver all of it, then EOF.
/// (Before the fix: 3.6-3.8 MB of 6.3 MB, while the server reported a clean shutdown.)
pub fn graceful_shutdown_while_peer_sends(model: Model) {
    let mut config = config(model);
    config.send_queue_limit = 16 * 1024 * 1024;
    let Some(server) = start(config, Registry::default()) else {
        return;
    };
    // A small receive window keeps most of the output queued in the server.
    let mut client = connect_small_window(server.local_addr());
    let session = session_of(&server.handler().sessions, client.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_sending(&client, 64, Duration::from_millis(1), stop.clone());
    let data = pattern(8, 0, 6 * 1024 * 1024);
    for chunk in data.chunks(30 * 1024) {
        session.send(chunk).unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || session.queued() > 0));
    let handle = server.handle();
    handle.shutdown();
    let (received, reset) = read_to_end(&mut client);
    stop.store(true, Ordering::Release);
    writer.join().unwrap();
    assert!(
        !reset,
        "{model:?}: reset after {} of {} bytes",
        received.len(),
        data.len()
    );
    assert_eq!(received.len(), data.len());
    assert!(received == data);
    server.join().unwrap();
    let stats = handle.stats();
    assert_eq!(stats.active, 0);
    assert_eq!(stats.closed_for(CloseReason::ServerShutdown), 1);
}

/// Bug 3: another thread streams 6 MiB to a client (a map download, say) and keeps the
/// session's queue above the high-water mark, so back-pressure stops the server from
/// reading the client. The client sends a heartbeat and reads 16 KiB every 10 ms: never
/// silent for anywhere near the 250 ms idle timeout, and taking the output steadily. It
/// must not be closed as idle. (Before the fix, every model closed it.)
pub fn idle_timeout_spares_a_slow_reader(model: Model) {
    let mut config = config(model);
    config.idle_timeout = Some(Duration::from_millis(250));
    let limit = config.send_queue_limit;
    let Some(server) = start(config, Registry::default()) else {
        return;
    };
    // More than the kernel's socket buffers absorb, so the engine's queue stays full.
    let total = 6 * 1024 * 1024;
    let mut client = connect(server.local_addr());
    let session = session_of(&server.handler().sessions, client.local_addr().unwrap());
    let pusher = std::thread::spawn(move || {
        let data = pattern(11, 0, total);
        for chunk in data.chunks(64 * 1024) {
            // Stay below the limit, far above the high-water mark.
            while session.queued() + chunk.len() > limit * 3 / 4 && !session.is_closed() {
                std::thread::sleep(Duration::from_millis(1));
            }
            if session.send(chunk).is_err() {
                return;
            }
        }
    });
    let mut received = Vec::with_capacity(total);
    let mut buf = vec![0; 16 * 1024];
    let mut reset = false;
    while received.len() < total {
        if client.write_all(b"heartbeat").is_err() {
            break;
        }
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                reset = true;
                break;
            }
            Err(e) => panic!("read failed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pusher.join().unwrap();
    let _ = client.shutdown(Shutdown::Write);
    let (rest, _) = read_to_end(&mut client);
    settle(&server);
    let stats = server.stats();
    assert_eq!(
        stats.closed_for(CloseReason::IdleTimeout),
        0,
        "{model:?}: a steady reader was closed as idle after {} of {total} bytes (reset: {reset})",
        received.len()
    );
    assert!(!reset);
    assert!(rest.is_empty());
    assert_eq!(received.len(), total);
    assert!(received == pattern(11, 0, total));
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 1);
    server.stop().unwrap();
}

/// Bug 4: three threads keep connecting while the server shuts down. Every session opened
/// is asked to close, so the shutdown ends long before its (deliberately huge) deadline;
/// connections accepted after shutdown began are refused at once. (Before the fix, the
/// io_uring fallback rings opened hundreds of sessions after shutdown began, and the
/// shutdown waited out its whole deadline.)
pub fn connect_storm_during_shutdown(model: Model) {
    let modes: &[Option<iomodels_engine::UringSetup>] = if model.name() == "uring" {
        &[
            None,
            Some(iomodels_engine::UringSetup::CoopTaskrun),
            Some(iomodels_engine::UringSetup::Plain),
        ]
    } else {
        &[None]
    };
    for &mode in modes {
        let mut config = config(model);
        config.shutdown_timeout = Duration::from_secs(600);
        if let Some(mode) = mode {
            config.uring_setup = mode;
        }
        let Some(server) = start(config, Echo) else {
            return;
        };
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicU64::new(0));
        let connectors: Vec<_> = (0..3)
            .map(|_| {
                let (stop, connected) = (stop.clone(), connected.clone());
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    while !stop.load(Ordering::Acquire) && held.len() < 200 {
                        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                            Ok(stream) => {
                                held.push(stream);
                                connected.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(1)),
                        }
                    }
                    held
                })
            })
            .collect();
        assert!(wait_until(Duration::from_secs(10), || server
            .stats()
            .accepted
            >= 50));
        let handle = server.handle();
        let joined = Arc::new(AtomicBool::new(false));
        let joiner = {
            let joined = joined.clone();
            std::thread::spawn(move || {
                let result = server.stop();
                joined.store(true, Ordering::Release);
                result
            })
        };
        let ended = wait_until(Duration::from_secs(30), || joined.load(Ordering::Acquire));
        stop.store(true, Ordering::Release);
        let held: Vec<TcpStream> = connectors
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        let stats = handle.stats();
        assert!(
            ended,
            "{model:?} {mode:?}: shutdown still waiting after 30 s with {} sessions open ({stats:?})",
            stats.active
        );
        joiner.join().unwrap().unwrap();
        assert_eq!(stats.active, 0);
        assert_eq!(
            stats.accepted,
            stats.closed_for(CloseReason::ServerShutdown)
                + stats.closed_for(CloseReason::PeerClosed),
            "{model:?} {mode:?}: {stats:?}"
        );
        drop(held);
    }
}
