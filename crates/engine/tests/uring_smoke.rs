//! What is specific to the uring driver, against real loopback sockets: the probe, running
//! out of provided buffers, sends from other threads waking the ring, and the close
//! reasons after half-closes and resets. The generic scenarios live in scenarios.rs; this
//! file covers what is specific to uring.
//!
//! On a kernel without what the driver needs, every test prints a SKIP line naming the
//! missing feature and returns (`util::start`).
// Linux only: what it measures (or the model it tests) exists only there.
#![cfg(target_os = "linux")]

mod util;

use iomodels_engine::{echo::Echo, CloseReason, Model, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use util::{connect, pattern, settle, start, stream_echo, wait_until, Registry};

fn config() -> iomodels_engine::Config {
    util::config(Model::Uring)
}

/// `uring_probe` and `Server::start` agree on whether this kernel can run the model.
#[test]
fn probe_agrees_with_start() {
    match iomodels_engine::uring_probe() {
        Ok(()) => Server::start(config(), Echo).unwrap().stop().unwrap(),
        Err(e) => {
            eprintln!("SKIP: {e}");
            let started = Server::start(config(), Echo);
            assert!(matches!(
                started,
                Err(iomodels_engine::Error::Unsupported {
                    model: iomodels_engine::Model::Uring,
                    ..
                })
            ));
        }
    }
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
    settle(&server);
    server.stop().unwrap();
}

/// A half-close behind 3 MiB of echo still in flight: the client gets the full echo,
/// then EOF, and the session closes as PeerClosed.
#[test]
fn half_close_gets_full_echo_then_eof() {
    let Some(server) = start(config(), Echo) else {
        return;
    };
    stream_echo(server.local_addr(), 3, vec![3 * 1024 * 1024 + 17], None);
    settle(&server);
    assert_eq!(server.stats().closed_for(CloseReason::PeerClosed), 1);
    server.stop().unwrap();
}

/// 8 MiB sent by a client that reads slowly: back-pressure stops receiving above the high
/// water mark, partial sends resume, nothing is lost, the queue limit is never hit, and
/// the half-close at the end still counts as PeerClosed.
#[test]
fn slow_reader_of_8_mib() {
    let Some(server) = start(config(), Echo) else {
        return;
    };
    let pace = Some((64, Duration::from_millis(5)));
    stream_echo(server.local_addr(), 8, vec![8 * 1024 * 1024], pace);
    settle(&server);
    let stats = server.stats();
    assert_eq!(stats.closed_for(CloseReason::SendQueueFull), 0);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 1);
    server.stop().unwrap();
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

/// Starting (and probing) the uring model leaves the calling thread alone. A ring created
/// on a thread registers that thread with io_uring; when the ring closes, the kernel's
/// clean-up interrupts the thread with task work, and a blocking socket call with a
/// timeout there fails with EINTR. The application's thread must never see that.
#[test]
fn starting_does_not_interrupt_the_calling_thread() {
    // A fresh thread that has never touched io_uring.
    std::thread::spawn(|| {
        for _ in 0..5 {
            let Some(server) = start(config(), Echo) else {
                return;
            };
            let _ = iomodels_engine::uring_probe();
            // A peer that never sends: the read below can only time out.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut quiet = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            quiet
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let error = quiet.read(&mut [0u8; 16]).unwrap_err();
            assert!(
                matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "a read on the thread that started the server failed with {error}"
            );
            server.stop().unwrap();
        }
    })
    .join()
    .unwrap();
}
