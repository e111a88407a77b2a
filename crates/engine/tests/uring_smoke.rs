//! The uring driver against real loopback sockets: echo under load, half-close, resets,
//! back-pressure, running out of provided buffers, cross-thread sends and shutdown.
//!
//! Every test first asks `uring_probe`; on a kernel without what the driver needs it
//! prints a SKIP line naming the missing feature and returns.

use iomodels_engine::{echo::Echo, CloseReason, Config, Handler, Model, Server, Session};
use rand::{Rng, SeedableRng};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn config() -> Config {
    let mut config = Config::new(Model::Uring, "127.0.0.1:0".parse().unwrap());
    config.workers = Some(2);
    config
}

/// Start a uring server, or print why the kernel cannot run one.
fn start<H: Handler>(config: Config, handler: H) -> Option<Server<H>> {
    if let Err(e) = iomodels_engine::uring_probe() {
        eprintln!("SKIP: {e}");
        return None;
    }
    Some(Server::start(config, handler).expect("the probe passed, so the server must start"))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(offset + i);
            (x ^ (x >> 7) ^ (x >> 13)) as u8
        })
        .collect()
}

fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Read until EOF; returns the bytes and whether the stream ended with a reset.
fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, true),
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn probe_agrees_with_start() {
    match iomodels_engine::uring_probe() {
        Ok(()) => Server::start(config(), Echo).unwrap().stop().unwrap(),
        Err(e) => {
            eprintln!("SKIP: {e}");
            let started = Server::start(config(), Echo);
            assert!(matches!(
                started,
                Err(iomodels_engine::Error::Unsupported { model: "uring", .. })
            ));
        }
    }
}

#[test]
fn many_clients_random_sizes() {
    let Some(server) = start(config(), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let clients: Vec<_> = (0..32u64)
        .map(|id| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(id);
                let mut stream = connect(addr);
                let mut reader = stream.try_clone().unwrap();
                let mut offset = 0;
                let mut echo = vec![0; 64 * 1024];
                for _ in 0..200 {
                    let len = rng.gen_range(1..=64 * 1024);
                    let message = pattern(id, offset, len);
                    offset += len as u64;
                    stream.write_all(&message).unwrap();
                    reader.read_exact(&mut echo[..len]).unwrap();
                    assert!(echo[..len] == message[..], "client {id}: echo differs");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 0));
    let stats = server.stats();
    assert_eq!(stats.accepted, 32);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 32);
    assert_eq!(stats.bytes_in, stats.bytes_out);
    server.stop().unwrap();
}

/// More data arrives at once than the provided-buffer ring holds (256 x 4 KiB per
/// worker): receives end with ENOBUFS and must be re-armed without losing a byte.
#[test]
fn buffer_exhaustion_loses_nothing() {
    let mut config = config();
    config.workers = Some(1);
    let Some(server) = start(config, Echo) else {
        return;
    };
    let addr = server.local_addr();
    const CLIENTS: usize = 200;
    const SIZE: usize = 48 * 1024;
    let mut streams: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(addr)).collect();
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .accepted
        == CLIENTS as u64));
    // 200 x 48 KiB = 9.4 MiB in flight at once, against 1 MiB of receive buffers.
    for round in 0..3u64 {
        for (id, stream) in streams.iter_mut().enumerate() {
            stream
                .write_all(&pattern(id as u64, round * SIZE as u64, SIZE))
                .unwrap();
        }
        for (id, stream) in streams.iter_mut().enumerate() {
            let mut echo = vec![0; SIZE];
            stream.read_exact(&mut echo).unwrap();
            assert!(
                echo == pattern(id as u64, round * SIZE as u64, SIZE),
                "stream {id} round {round}"
            );
        }
    }
    drop(streams);
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 0));
    server.stop().unwrap();
}

#[test]
fn half_close_gets_full_echo_then_eof() {
    let Some(server) = start(config(), Echo) else {
        return;
    };
    let mut stream = connect(server.local_addr());
    let data = pattern(3, 0, 3 * 1024 * 1024 + 17);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            stream.write_all(&data).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        })
    };
    let (echo, reset) = read_to_end(&mut stream);
    writer.join().unwrap();
    assert!(!reset, "reset instead of FIN");
    assert_eq!(echo.len(), data.len());
    assert!(echo == data);
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 0));
    assert_eq!(server.stats().closed_for(CloseReason::PeerClosed), 1);
    server.stop().unwrap();
}

#[test]
fn reset_mid_traffic_keeps_serving() {
    let Some(server) = start(config(), Echo) else {
        return;
    };
    let addr = server.local_addr();
    for round in 0..10u64 {
        let mut stream = connect(addr);
        stream.write_all(&pattern(round, 0, 100_000)).unwrap();
        let mut some = [0u8; 1000];
        stream.read_exact(&mut some).unwrap();
        // Unread echo in our buffer plus queued output at the server: then RST.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
    }
    let mut stream = connect(addr);
    stream.write_all(b"still there?").unwrap();
    let mut echo = [0u8; 12];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"still there?");
    drop(stream);
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 0));
    let stats = server.stats();
    assert_eq!(stats.accepted, 11);
    assert_eq!(
        stats.closed_for(CloseReason::Reset) + stats.closed_for(CloseReason::Error),
        10
    );
    server.stop().unwrap();
}

/// 8 MiB sent by a client that reads slowly: back-pressure stops receiving above the high
/// water mark, partial sends resume, nothing is lost and the queue limit is never hit.
#[test]
fn slow_reader_of_8_mib() {
    let Some(server) = start(config(), Echo) else {
        return;
    };
    let mut stream = connect(server.local_addr());
    let data = pattern(8, 0, 8 * 1024 * 1024);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            stream.write_all(&data).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echo = Vec::with_capacity(data.len());
    let mut buf = vec![0; 16 * 1024];
    let mut reads = 0;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        echo.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads % 64 == 0 {
            // Slow: give the server time to fill its queue and pause.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    writer.join().unwrap();
    assert_eq!(echo.len(), data.len());
    assert!(echo == data);
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 0));
    let stats = server.stats();
    assert_eq!(stats.closed_for(CloseReason::SendQueueFull), 0);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 1);
    server.stop().unwrap();
}

/// Keeps every session, so tests can send to them from other threads.
#[derive(Default)]
struct Registry {
    sessions: Mutex<Vec<Session>>,
}

impl Handler for Registry {
    type State = ();
    fn opened(&self, session: &Session) {
        self.sessions.lock().unwrap().push(session.clone());
    }
    fn data(&self, _: &mut (), _: &Session, data: &[u8]) -> usize {
        data.len()
    }
}

/// Sends from threads that are not the worker wake its ring (eventfd read) and arrive in
/// order, whole.
#[test]
fn cross_thread_sends_wake_the_ring() {
    let Some(server) = start(config(), Registry::default()) else {
        return;
    };
    let addr = server.local_addr();
    let mut clients: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    assert!(wait_until(Duration::from_secs(10), || server
        .handler()
        .sessions
        .lock()
        .unwrap()
        .len()
        == 4));
    let sessions = server.handler().sessions.lock().unwrap().clone();
    const COUNT: u32 = 2000;
    let senders: Vec<_> = (0..2u8)
        .map(|tag| {
            let sessions = sessions.clone();
            std::thread::spawn(move || {
                for seq in 0..COUNT {
                    let mut record = [tag; 64];
                    record[1..5].copy_from_slice(&seq.to_le_bytes());
                    for session in &sessions {
                        session.send(&record).unwrap();
                    }
                    if seq % 100 == 0 {
                        // Let the worker go idle, so that later sends must wake it.
                        std::thread::sleep(Duration::from_millis(1));
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
        let mut record = [0u8; 64];
        for _ in 0..2 * COUNT {
            client.read_exact(&mut record).unwrap();
            let tag = record[0] as usize;
            assert!(
                tag < 2 && record[5..].iter().all(|&b| b == record[0]),
                "torn record"
            );
            assert_eq!(
                u32::from_le_bytes(record[1..5].try_into().unwrap()),
                next[tag]
            );
            next[tag] += 1;
        }
    }
    server.stop().unwrap();
}

/// Shutdown with output still queued: the client gets every byte, then EOF; the worker
/// threads end; the session closes as ServerShutdown.
#[test]
fn shutdown_flushes_queued_output() {
    let mut config = config();
    config.send_queue_limit = 8 * 1024 * 1024;
    let Some(server) = start(config, Registry::default()) else {
        return;
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.local_addr().into()).unwrap();
    let mut client: TcpStream = socket.into();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || server
        .handler()
        .sessions
        .lock()
        .unwrap()
        .len()
        == 1));
    let session = server.handler().sessions.lock().unwrap()[0].clone();
    // More than the loopback send buffer takes at once (it autotunes to about 1.3 MiB),
    // within the queue limit set above.
    let data = pattern(9, 0, 900 * 1024);
    for _ in 0..3 {
        for chunk in data.chunks(30 * 1024) {
            session.send(chunk).unwrap();
        }
    }
    let handle = server.handle();
    handle.shutdown();
    let (received, reset) = read_to_end(&mut client);
    assert!(!reset, "reset instead of a flush");
    assert_eq!(received.len(), 3 * data.len());
    assert!(received.chunks(data.len()).all(|c| c == data));
    server.join().unwrap();
    let stats = handle.stats();
    assert_eq!(stats.active, 0);
    assert_eq!(stats.closed_for(CloseReason::ServerShutdown), 1);
}

/// Idle sessions are closed; a session that keeps talking is not.
#[test]
fn idle_timeout_closes_only_idle_sessions() {
    let mut config = config();
    config.idle_timeout = Some(Duration::from_millis(300));
    let Some(server) = start(config, Echo) else {
        return;
    };
    let addr = server.local_addr();
    let mut idle = connect(addr);
    let mut busy = connect(addr);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(900) {
        busy.write_all(b"ping").unwrap();
        let mut echo = [0u8; 4];
        busy.read_exact(&mut echo).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, _) = read_to_end(&mut idle);
    assert!(wait_until(Duration::from_secs(5), || server
        .stats()
        .closed_for(CloseReason::IdleTimeout)
        == 1));
    busy.write_all(b"pong").unwrap();
    let mut echo = [0u8; 4];
    busy.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"pong");
    server.stop().unwrap();
}
