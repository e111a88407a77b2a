//! Every scenario of the engine, run against every model by one macro.
//!
//! `cargo test -p iomodels-engine --test scenarios epoll` runs one model's scenarios;
//! `... -- half_close` one scenario on every model.

#[path = "scenarios/delivery.rs"]
mod delivery;
#[path = "scenarios/input.rs"]
mod input;
mod util;

use delivery::{
    close_while_peer_sends, connect_storm_during_shutdown, graceful_shutdown_while_peer_sends,
    idle_timeout_spares_a_slow_reader, send_during_half_close,
};
use input::pause_and_resume_input;
use iomodels_engine::{echo::Echo, CloseReason, Model, SendError, SharedMessage};
use rand::{Rng, SeedableRng};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use util::{
    config, connect, connect_small_window, pattern, read_to_end, settle, start, wait_until,
    Registry,
};

macro_rules! model_tests {
    ($module:ident, $model:ident: $($scenario:ident),*) => {
        model_tests!($module, $model, [()]: $($scenario),*);
    };
    // With a setup run on the test's thread before each scenario.
    ($module:ident, $model:ident, [$setup:expr]: $($scenario:ident),*) => {
        mod $module {
            fn setup() {
                $setup;
            }
            $(
                #[test]
                fn $scenario() {
                    let _table = crate::util::descriptors(crate::HEAVY.contains(&stringify!($scenario)));
                    setup();
                    crate::$scenario(iomodels_engine::Model::$model);
                }
            )*
        }
    };
}

/// Every model of this platform: Linux's seven; uring twice, on io_uring direct
/// descriptors (its default where the kernel has them) and on normal descriptors (its
/// fallback), so that neither path goes untested.
#[cfg(target_os = "linux")]
macro_rules! scenarios {
    ($($scenario:ident),* $(,)?) => {
        model_tests!(blocking, Blocking: $($scenario),*);
        model_tests!(polling, Polling: $($scenario),*);
        model_tests!(select, Select: $($scenario),*);
        model_tests!(poll, Poll: $($scenario),*);
        model_tests!(signal, Signal: $($scenario),*);
        model_tests!(epoll, Epoll: $($scenario),*);
        model_tests!(uring, Uring, [crate::util::uring_descriptors(iomodels_engine::UringDescriptors::Direct)]: $($scenario),*);
        model_tests!(uring_normal_fds, Uring, [crate::util::uring_descriptors(iomodels_engine::UringDescriptors::Normal)]: $($scenario),*);
    };
}

/// Every model of this platform: Windows' nine.
#[cfg(windows)]
macro_rules! scenarios {
    ($($scenario:ident),* $(,)?) => {
        model_tests!(blocking, Blocking: $($scenario),*);
        model_tests!(polling, Polling: $($scenario),*);
        model_tests!(select, Select: $($scenario),*);
        model_tests!(wsapoll, WsaPoll: $($scenario),*);
        model_tests!(asyncselect, AsyncSelect: $($scenario),*);
        model_tests!(eventselect, EventSelect: $($scenario),*);
        model_tests!(overlapped_event, OverlappedEvent: $($scenario),*);
        model_tests!(overlapped_routine, OverlappedRoutine: $($scenario),*);
        model_tests!(iocp, Iocp: $($scenario),*);
    };
}

scenarios!(
    many_clients,
    slow_reader,
    half_close,
    reset_mid_traffic,
    max_connections,
    many_connections,
    cross_thread_broadcast,
    shared_broadcast,
    graceful_shutdown,
    slow_consumer,
    idle_timeout,
    idle_timeout_while_paused,
    send_during_half_close,
    close_while_peer_sends,
    graceful_shutdown_while_peer_sends,
    idle_timeout_spares_a_slow_reader,
    connect_storm_during_shutdown,
    pause_and_resume_input,
    dropped_server_stops,
);

/// Scenarios that open hundreds of descriptors: they run alone (see `util::descriptors`).
const HEAVY: [&str; 2] = ["many_connections", "connect_storm_during_shutdown"];

/// Scenario 1: 50 concurrent clients x 1,000 messages of random sizes from 1 B to 64 KiB: every byte
/// echoed exactly, per connection in order.
fn many_clients(model: Model) {
    let Some(server) = start(config(model), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let clients: Vec<_> = (0..50u64)
        .map(|client| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(client);
                let mut stream = connect(addr);
                let mut offset = 0u64;
                let mut echo = vec![0; 64 * 1024];
                for _ in 0..1000 {
                    // Half small, half up to 64 KiB: both paths, in a test of bounded cost.
                    let len = if rng.gen_bool(0.5) {
                        rng.gen_range(1..=1024)
                    } else {
                        rng.gen_range(1..=64 * 1024)
                    };
                    let message = pattern(client, offset, len);
                    offset += len as u64;
                    stream.write_all(&message).unwrap();
                    stream.read_exact(&mut echo[..len]).unwrap();
                    assert!(echo[..len] == message[..], "client {client}: echo differs");
                }
                offset
            })
        })
        .collect();
    let total: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    settle(&server);
    let stats = server.stats();
    assert_eq!(stats.bytes_in, total);
    assert_eq!(stats.bytes_out, total);
    assert_eq!(stats.accepted, 50);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 50);
    server.stop().unwrap();
}

/// Scenario 2: One client sends 8 MiB while reading slowly: partial writes and the send queue are
/// exercised, nothing is lost, and back-pressure keeps the session open.
fn slow_reader(model: Model) {
    let Some(server) = start(config(model), Echo) else {
        return;
    };
    let mut stream = connect(server.local_addr());
    let total = 8 * 1024 * 1024;
    let data = pattern(7, 0, total);
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut received = Vec::with_capacity(total);
    let mut buf = vec![0; 16 * 1024];
    let mut reads = 0u64;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads % 8 == 0 {
            // Read slowly: the server's queue fills and its writes come back short.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    writer.join().unwrap();
    assert_eq!(received.len(), total);
    assert!(received == data, "the echo of 8 MiB differs");
    settle(&server);
    assert_eq!(server.stats().closed_for(CloseReason::SendQueueFull), 0);
    server.stop().unwrap();
}

/// Scenario 3: Half-close: a client writes, then shuts down its write side: it receives the full echo,
/// then EOF.
fn half_close(model: Model) {
    let Some(server) = start(config(model), Echo) else {
        return;
    };
    let mut stream = connect(server.local_addr());
    let data = pattern(3, 0, 300 * 1024);
    stream.write_all(&data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let (echo, reset) = read_to_end(&mut stream);
    assert!(!reset, "the server reset instead of closing in order");
    assert_eq!(echo.len(), data.len());
    assert!(echo == data);
    settle(&server);
    assert_eq!(server.stats().closed_for(CloseReason::PeerClosed), 1);
    server.stop().unwrap();
}

/// Scenario 4: Abrupt reset (SO_LINGER 0) in the middle of traffic: the server keeps serving the
/// others; active sessions return to 0.
fn reset_mid_traffic(model: Model) {
    let Some(server) = start(config(model), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let others: Vec<_> = (0..4u64)
        .map(|id| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                let mut offset = 0;
                let mut echo = vec![0; 4096];
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) || rounds < 100 {
                    let message = pattern(100 + id, offset, 4096);
                    offset += 4096;
                    stream.write_all(&message).unwrap();
                    stream.read_exact(&mut echo).unwrap();
                    assert!(echo == message);
                    rounds += 1;
                }
            })
        })
        .collect();
    // Each reset hits a session, not a connection still waiting to be accepted: Windows
    // fails the `accept` of a connection reset in the backlog (WSAECONNRESET; Wine:
    // WSAENOTCONN) and it is never counted, where Linux accepts it.
    let accepted = |n| wait_until(Duration::from_secs(10), || server.stats().accepted == n);
    assert!(accepted(4));
    for round in 0..5u64 {
        let stream = connect(addr);
        assert!(accepted(5 + round));
        // Fill both directions, read nothing, then reset.
        let mut writer = stream.try_clone().unwrap();
        writer.set_nonblocking(true).unwrap();
        let chunk = pattern(round, 0, 64 * 1024);
        for _ in 0..16 {
            match writer.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(writer);
        drop(stream);
    }
    stop.store(true, Ordering::Relaxed);
    for other in others {
        other.join().unwrap();
    }
    settle(&server);
    let stats = server.stats();
    assert_eq!(stats.accepted, 9);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 4);
    assert_eq!(
        stats.closed_for(CloseReason::Reset) + stats.closed_for(CloseReason::Error),
        5,
        "every reset connection ends as a reset: {stats:?}"
    );
    server.stop().unwrap();
}

/// Scenario 5: `max_connections` 10 with 20 clients: 10 served, 10 refused, the server still answers.
fn max_connections(model: Model) {
    let mut config = config(model);
    config.max_connections = 10;
    let Some(server) = start(config, Echo) else {
        return;
    };
    let addr = server.local_addr();
    let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    assert!(wait_until(Duration::from_secs(10), || {
        let s = server.stats();
        s.accepted + s.refused == 20
    }));
    let mut served = 0;
    for client in &mut clients {
        let ok = client.write_all(b"ping").is_ok() && {
            let mut echo = [0; 4];
            client.read_exact(&mut echo).is_ok() && &echo == b"ping"
        };
        served += ok as usize;
    }
    assert_eq!(served, 10);
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.refused), (10, 10));
    drop(clients);
    settle(&server);
    // Slots come back: a new client is served.
    let mut client = connect(addr);
    client.write_all(b"again").unwrap();
    let mut echo = [0; 5];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"again");
    server.stop().unwrap();
}

/// Scenario 6: 1,100 connections open at once. Every model but select serves them all; select refuses
/// those whose descriptor is at or above FD_SETSIZE, cleanly, and the rest still echo.
fn many_connections(model: Model) {
    let Some(server) = start(config(model), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let mut clients: Vec<TcpStream> = (0..1100).map(|_| connect(addr)).collect();
    assert!(wait_until(Duration::from_secs(20), || {
        let s = server.stats();
        s.accepted + s.refused == 1100
    }));
    let stats = server.stats();
    if model == Model::Select {
        assert!(
            stats.refused > 0,
            "select accepted descriptors past FD_SETSIZE"
        );
    } else {
        assert_eq!(stats.refused, 0);
    }
    let mut served = 0u64;
    for (i, client) in clients.iter_mut().enumerate() {
        let message = pattern(i as u64, 0, 32);
        let mut echo = [0; 32];
        let ok = client.write_all(&message).is_ok() && client.read_exact(&mut echo).is_ok();
        if ok {
            assert_eq!(echo[..], message[..]);
            served += 1;
        }
    }
    assert_eq!(served, stats.accepted);
    assert_eq!(served + stats.refused, 1100);
    drop(clients);
    settle(&server);
    server.stop().unwrap();
}

/// Scenario 7: Two threads broadcast numbered records to every session at once: every record
/// arrives, whole, and each sender's records in order.
fn cross_thread_broadcast(model: Model) {
    let Some(server) = start(config(model), Registry::default()) else {
        return;
    };
    const CLIENTS: usize = 8;
    const RECORDS: u32 = 2000;
    const RECORD: usize = 100;
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.local_addr())).collect();
    assert!(wait_until(Duration::from_secs(10), || {
        server.handler().sessions.lock().unwrap().len() == CLIENTS
    }));
    let sessions = server.handler().sessions.lock().unwrap().clone();
    let senders: Vec<_> = (0..2u8)
        .map(|tag| {
            let sessions = sessions.clone();
            std::thread::spawn(move || {
                for seq in 0..RECORDS {
                    let mut record = [tag; RECORD];
                    record[1..5].copy_from_slice(&seq.to_le_bytes());
                    for session in &sessions {
                        session.send(&record).unwrap();
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    for client in &mut clients {
        let mut next = [0u32; 2];
        let mut record = [0u8; RECORD];
        for _ in 0..2 * RECORDS {
            client.read_exact(&mut record).unwrap();
            let tag = record[0];
            assert!(tag < 2, "a record was torn or interleaved");
            assert!(record[5..].iter().all(|&b| b == tag), "a record was torn");
            let seq = u32::from_le_bytes(record[1..5].try_into().unwrap());
            assert_eq!(
                seq, next[tag as usize],
                "records of one sender out of order"
            );
            next[tag as usize] += 1;
        }
    }
    server.stop().unwrap();
}

/// A record of `shared_broadcast`: tag, sequence number, payload length, then a payload
/// that both numbers determine.
fn shared_record(tag: u8, seq: u32, len: usize) -> Vec<u8> {
    let mut record = Vec::with_capacity(9 + len);
    record.push(tag);
    record.extend_from_slice(&seq.to_le_bytes());
    record.extend_from_slice(&(len as u32).to_le_bytes());
    record.extend((0..len).map(|i| (i as u32 ^ seq).wrapping_mul(31) as u8 ^ tag));
    record
}

/// Broadcasts queued by reference (`Session::send_shared`), mixed with copied sends from
/// the same thread and from another one, some larger than one write takes and one client
/// reading through a small window: every client receives every record whole, each
/// sender's in order, the shared and the copied ones of one thread in the order queued.
fn shared_broadcast(model: Model) {
    let mut config = config(model);
    config.send_queue_limit = 64 * 1024 * 1024;
    let Some(server) = start(config, Registry::default()) else {
        return;
    };
    const CLIENTS: usize = 6;
    const RECORDS: u32 = 300;
    let mut clients: Vec<TcpStream> = (0..CLIENTS - 1)
        .map(|_| connect(server.local_addr()))
        .collect();
    clients.push(connect_small_window(server.local_addr()));
    assert!(wait_until(Duration::from_secs(10), || {
        server.handler().sessions.lock().unwrap().len() == CLIENTS
    }));
    let sessions = server.handler().sessions.lock().unwrap().clone();
    let size = |tag: u8, seq: u32| match seq % 25 {
        // Past one write's 64 KiB (Windows' chunk); 14 MB of these in all, past what the
        // socket buffers hold, so writes end part-way through a record.
        7 => 600_000 + tag as usize,
        n => 1 + (n as usize * 37 + tag as usize) % 300,
    };
    let senders: Vec<_> = (0..2u8)
        .map(|tag| {
            let sessions = sessions.clone();
            std::thread::spawn(move || {
                for seq in 0..RECORDS {
                    let record = shared_record(tag, seq, size(tag, seq));
                    if tag == 0 && seq % 3 != 0 {
                        // Encoded once, queued to every session by reference.
                        let shared = SharedMessage::from(record);
                        for session in &sessions {
                            session.send_shared(&shared).unwrap();
                        }
                    } else {
                        for session in &sessions {
                            session.send(&record).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            std::thread::spawn(move || {
                let mut next = [0u32; 2];
                for _ in 0..2 * RECORDS {
                    let mut head = [0u8; 9];
                    client.read_exact(&mut head).unwrap();
                    let tag = head[0];
                    assert!(tag < 2, "a record was torn or interleaved");
                    let seq = u32::from_le_bytes(head[1..5].try_into().unwrap());
                    let len = u32::from_le_bytes(head[5..9].try_into().unwrap()) as usize;
                    assert_eq!(
                        seq, next[tag as usize],
                        "records of one sender out of order"
                    );
                    assert_eq!(len, size(tag, seq), "a record's length is wrong");
                    let mut body = vec![0u8; len];
                    client.read_exact(&mut body).unwrap();
                    assert!(
                        body == shared_record(tag, seq, len)[9..],
                        "record {tag}/{seq} arrived with other bytes"
                    );
                    next[tag as usize] += 1;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    for reader in readers {
        reader.join().unwrap();
    }
    server.stop().unwrap();
}

/// Scenario 8: Graceful shutdown with output still queued: the client receives everything queued
/// before EOF, and the server stops cleanly.
fn graceful_shutdown(model: Model) {
    let mut config = config(model);
    config.send_queue_limit = 16 * 1024 * 1024;
    let Some(server) = start(config, Registry::default()) else {
        return;
    };
    // A small receive window keeps most of the output queued in the server.
    let mut client = connect_small_window(server.local_addr());
    assert!(wait_until(Duration::from_secs(10), || {
        server.handler().sessions.lock().unwrap().len() == 1
    }));
    let session = server.handler().sessions.lock().unwrap()[0].clone();
    // More than loopback's send buffer grows to (about 1.3 MiB seen), so some stays queued.
    let data = pattern(8, 0, 6 * 1024 * 1024);
    for chunk in data.chunks(30 * 1024) {
        session.send(chunk).unwrap();
    }
    // The precondition of the scenario: output really is queued in the engine.
    assert!(wait_until(Duration::from_secs(10), || session.queued() > 0));
    let handle = server.handle();
    handle.shutdown();
    let (received, reset) = read_to_end(&mut client);
    assert!(!reset, "the server reset instead of flushing");
    assert_eq!(received.len(), data.len());
    assert!(received == data);
    server.join().unwrap();
    let stats = handle.stats();
    assert_eq!(stats.active, 0);
    assert_eq!(stats.closed_for(CloseReason::ServerShutdown), 1);
}

/// Scenario 8b: A server dropped without `join` stops as by `stop`: the drop returns once
/// its threads have ended, having flushed what was queued, and nothing listens any more.
fn dropped_server_stops(model: Model) {
    let Some(server) = start(config(model), Registry::default()) else {
        return;
    };
    let addr = server.local_addr();
    let mut client = connect(addr);
    assert!(wait_until(Duration::from_secs(10), || {
        server.handler().sessions.lock().unwrap().len() == 1
    }));
    let session = server.handler().sessions.lock().unwrap()[0].clone();
    session.send(b"last words").unwrap();
    let handle = server.handle();
    drop(server);
    // The drop has returned, so the session is closed: no wait is needed for what follows.
    let stats = handle.stats();
    assert_eq!(stats.active, 0);
    assert_eq!(stats.closed_for(CloseReason::ServerShutdown), 1);
    let (received, reset) = read_to_end(&mut client);
    assert!(!reset, "the dropped server reset instead of flushing");
    assert_eq!(received, b"last words");
    let connected = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(
        connected.is_err(),
        "a dropped server still accepts on {addr}"
    );
}

/// Scenario 9: A consumer that never reads while another thread keeps sending: it is closed with
/// "send queue full", and the queue never holds more than its limit.
fn slow_consumer(model: Model) {
    let mut config = config(model);
    config.send_queue_limit = 256 * 1024;
    let Some(server) = start(config, Registry::default()) else {
        return;
    };
    let client = connect(server.local_addr());
    assert!(wait_until(Duration::from_secs(10), || {
        server.handler().sessions.lock().unwrap().len() == 1
    }));
    let session = server.handler().sessions.lock().unwrap()[0].clone();
    let sent = Arc::new(AtomicU64::new(0));
    let pump = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let chunk = vec![7u8; 16 * 1024];
            loop {
                assert!(session.queued() <= 256 * 1024, "the queue passed its limit");
                match session.send(&chunk) {
                    Ok(()) => sent.fetch_add(chunk.len() as u64, Ordering::Relaxed),
                    Err(SendError::QueueFull) | Err(SendError::Closed) => return,
                    Err(e) => panic!("unexpected send error {e}"),
                };
            }
        })
    };
    pump.join().unwrap();
    settle(&server);
    assert_eq!(
        *server.handler().closed.lock().unwrap(),
        vec![CloseReason::SendQueueFull]
    );
    // What was accepted is bounded by the queue plus what the kernel buffers took.
    assert!(sent.load(Ordering::Relaxed) < 64 * 1024 * 1024);
    drop(client);
    server.stop().unwrap();
}

/// A session that sends nothing is closed after the idle timeout; an active one is not.
fn idle_timeout(model: Model) {
    let mut config = config(model);
    config.idle_timeout = Some(Duration::from_millis(300));
    let Some(server) = start(config, Echo) else {
        return;
    };
    let mut silent = connect(server.local_addr());
    let mut chatty = connect(server.local_addr());
    let mut echo = [0; 1];
    // Keep one session busy for a second while the other stays silent.
    for _ in 0..20 {
        chatty.write_all(b"x").unwrap();
        chatty.read_exact(&mut echo).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rest, _) = read_to_end(&mut silent);
    assert!(rest.is_empty());
    assert_eq!(server.stats().closed_for(CloseReason::IdleTimeout), 1);
    chatty.write_all(b"y").unwrap();
    chatty.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"y");
    server.stop().unwrap();
}

/// Scenario 11: a peer that floods the server without reading the echo, then falls silent.
/// Its session is paused by back-pressure (reading stops above the high-water mark), and it
/// must still end with the idle timeout rather than hold its slot forever.
fn idle_timeout_while_paused(model: Model) {
    let mut config = config(model);
    config.idle_timeout = Some(Duration::from_millis(300));
    let Some(server) = start(config, Echo) else {
        return;
    };
    let flood = connect(server.local_addr());
    let mut writer = flood.try_clone().unwrap();
    // More than the socket buffers of both sides plus the high-water mark: the server
    // pauses, the kernel's buffers fill, and this write blocks until the session ends.
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..(64 * 1024 * 1024 / chunk.len()) {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    assert!(
        wait_until(Duration::from_secs(20), || server
            .stats()
            .closed_for(CloseReason::IdleTimeout)
            == 1),
        "{model:?}: the paused session was not closed as idle: {:?}",
        server.stats()
    );
    let _ = flood.shutdown(Shutdown::Both);
    writer.join().unwrap();
    server.stop().unwrap();
}
