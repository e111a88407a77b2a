//! The signal model under a real-time signal queue of almost nothing: nearly every event
//! overflows into SIGIO and a rescan, and still every byte arrives. Its own test binary,
//! since the queue limit (RLIMIT_SIGPENDING) and the signals sent here are per process.
// Linux only: what it measures (or the model it tests) exists only there.
#![cfg(target_os = "linux")]

mod util;

use iomodels_engine::{echo::Echo, CloseReason, Model};
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use util::{config, connect, pattern, settle, start};

/// The driver's I/O signal (`SIGRTMIN + 5`, see `model/signal.rs`).
fn io_signal() -> libc::c_int {
    libc::SIGRTMIN() + 5
}

/// Let at most two signals wait for this process's user at a time: the kernel falls back to
/// SIGIO for the rest.
fn shrink_signal_queue() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid rlimit to fill in and then pass back.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_SIGPENDING, &mut limit), 0);
            limit.rlim_cur = 2;
            assert_eq!(libc::setrlimit(libc::RLIMIT_SIGPENDING, &limit), 0);
        }
    });
}

/// 16 clients, each 200 messages of random size with their echoes, through a queue that
/// overflows all the time.
fn echo_through_overflows(clients: u64, messages: usize) {
    let Some(server) = start(config(Model::Signal), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let threads: Vec<_> = (0..clients)
        .map(|seed| {
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut stream = connect(addr);
                let mut echo = vec![0; 32 * 1024];
                let mut offset = 0;
                for _ in 0..messages {
                    let len = rng.gen_range(1..=32 * 1024);
                    let message = pattern(seed, offset, len);
                    offset += len as u64;
                    stream.write_all(&message).unwrap();
                    stream.read_exact(&mut echo[..len]).unwrap();
                    assert!(echo[..len] == message[..], "client {seed}: echo differs");
                }
                offset
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    settle(&server);
    let stats = server.stats();
    assert_eq!(stats.bytes_out, total);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), clients);
    server.stop().unwrap();
}

#[test]
fn every_byte_arrives_when_the_queue_overflows() {
    shrink_signal_queue();
    echo_through_overflows(16, 200);
}

/// Someone sends the driver's signal and SIGIO to the whole process while it serves: the
/// process lives (the driver installed a do-nothing handler), and nothing stalls.
#[test]
fn process_directed_signals_are_harmless() {
    shrink_signal_queue();
    // The first server installs the handlers; start one before sending anything.
    let Some(server) = start(config(Model::Signal), Echo) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) || sent < 200 {
                for signo in [libc::SIGIO, io_signal()] {
                    // SAFETY: kill with a valid signal number and our own pid.
                    assert_eq!(unsafe { libc::kill(libc::getpid(), signo) }, 0);
                }
                sent += 1;
                std::thread::yield_now();
            }
        })
    };
    echo_through_overflows(4, 100);
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    server.stop().unwrap();
}
