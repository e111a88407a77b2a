//! What is specific to the blocking driver (thread per connection): aborts of a stuck writer, a
//! panicking handler, the shutdown deadline and thread joins, sends from other threads. The
//! generic scenarios live in scenarios.rs; this file covers what is specific to blocking.

mod util;

use iomodels_engine::{echo::Echo, CloseReason, Config, Handler, Model, Server, Session};
use std::io::{Read, Write};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use util::connect;

fn config() -> Config {
    util::config(Model::Blocking)
}

/// Hands each session to the test on open; echoes; reports closes.
struct Handed {
    opened: Mutex<mpsc::Sender<Session>>,
    closed: Mutex<mpsc::Sender<CloseReason>>,
}

impl Handler for Handed {
    type State = ();
    fn opened(&self, session: &Session) {
        let _ = self.opened.lock().unwrap().send(session.clone());
    }
    fn data(&self, _: &mut (), session: &Session, data: &[u8]) -> usize {
        if data.starts_with(b"boom") {
            panic!("the handler was told to panic");
        }
        Echo.data(&mut (), session, data)
    }
    fn closed(&self, _: (), _: &Session, reason: CloseReason) {
        let _ = self.closed.lock().unwrap().send(reason);
    }
}

fn handed(
    config: Config,
) -> (
    Server<Handed>,
    mpsc::Receiver<Session>,
    mpsc::Receiver<CloseReason>,
) {
    let (open_tx, open_rx) = mpsc::channel();
    let (close_tx, close_rx) = mpsc::channel();
    let handler = Handed {
        opened: Mutex::new(open_tx),
        closed: Mutex::new(close_tx),
    };
    let server = util::start(config, handler).expect("the blocking model always starts");
    (server, open_rx, close_rx)
}

const WAIT: Duration = Duration::from_secs(10);

/// An abort asked for from another thread while the writer is stuck in `send` (the peer
/// reads nothing) reaches it: the sender shuts the socket down inline (SO_LINGER 0, SHUT_RDWR).
#[test]
fn abort_from_another_thread_reaches_a_writer_stuck_in_send() {
    let (server, opened, closed) = handed(config());
    let mut client = connect(server.local_addr());
    let session = opened.recv_timeout(WAIT).unwrap();
    // Far more than the kernel buffers hold, so the writer blocks in send.
    let chunk = vec![1u8; 64 * 1024];
    for _ in 0..15 {
        session.send(&chunk).unwrap();
    }
    let sender = std::thread::spawn(move || session.abort());
    sender.join().unwrap();
    assert_eq!(closed.recv_timeout(WAIT).unwrap(), CloseReason::Local);
    // The client gets at most what was queued, then a reset or EOF, never a hang.
    let mut got = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got <= 15 * chunk.len());
    server.stop().unwrap();
}

/// A handler that panics loses its own session (counted closed with `Error`), not the
/// server.
#[test]
fn a_panicking_handler_ends_only_its_session() {
    let (server, _opened, closed) = handed(config());
    let mut victim = connect(server.local_addr());
    let mut other = connect(server.local_addr());
    victim.write_all(b"boom").unwrap();
    // The handler's state unwound with the panic, so `closed` is not called; the session
    // is counted closed with `Error` before its socket closes.
    let mut buf = [0; 16];
    assert!(matches!(victim.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(server.stats().closed_for(CloseReason::Error), 1);
    other.write_all(b"still here").unwrap();
    other.read_exact(&mut buf[..10]).unwrap();
    assert_eq!(&buf[..10], b"still here");
    drop(other);
    assert_eq!(closed.recv_timeout(WAIT).unwrap(), CloseReason::PeerClosed);
    let stats = server.stats();
    server.stop().unwrap();
    assert_eq!(stats.closed_for(CloseReason::Error), 1);
}

/// Shutdown with a client that never reads: queued output cannot drain, so after the
/// shutdown timeout the session is aborted (its writer was stuck in send), and `join`
/// still returns, with every thread ended.
#[test]
fn shutdown_deadline_aborts_a_session_that_cannot_drain() {
    let mut config = config();
    config.shutdown_timeout = Duration::from_millis(300);
    config.send_queue_limit = 32 * 1024 * 1024;
    let (server, opened, closed) = handed(config);
    let _client = connect(server.local_addr());
    let session = opened.recv_timeout(WAIT).unwrap();
    session.send(&vec![2u8; 16 * 1024 * 1024]).unwrap();
    let begun = Instant::now();
    server.stop().unwrap();
    let took = begun.elapsed();
    assert!(took >= Duration::from_millis(300), "stopped after {took:?}");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert_eq!(
        closed.recv_timeout(WAIT).unwrap(),
        CloseReason::ServerShutdown
    );
}

/// Sends from another thread while the reader sleeps in `recv` wake the writer; every
/// message arrives, in order, and a graceful `close` from that thread flushes them first.
#[test]
fn cross_thread_sends_then_close_arrive_in_order() {
    let (server, opened, closed) = handed(config());
    let mut client = connect(server.local_addr());
    let session = opened.recv_timeout(WAIT).unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0u32..20_000 {
            session.send(&i.to_be_bytes()).unwrap();
        }
        session.close();
    });
    let mut all = Vec::new();
    client.read_to_end(&mut all).unwrap();
    sender.join().unwrap();
    assert_eq!(all.len(), 20_000 * 4);
    for (i, word) in all.chunks(4).enumerate() {
        assert_eq!(u32::from_be_bytes(word.try_into().unwrap()), i as u32);
    }
    assert_eq!(closed.recv_timeout(WAIT).unwrap(), CloseReason::Local);
    server.stop().unwrap();
}
