//! Smoke tests for the select, poll, polling and signal drivers: real sockets on loopback,
//! every byte checked. The generic scenarios live in scenarios.rs; this file covers what is
//! specific to these four models: many pipelined half-closing streams at once, the close
//! reasons after resets, select's FD_SETSIZE refusals and signal servers side by side.
//!
//! `cargo test -p iomodels-engine --test selectors_smoke signal` runs one model's tests.
// Linux only: what it measures (or the model it tests) exists only there.
#![cfg(target_os = "linux")]

mod util;

use iomodels_engine::{echo::Echo, CloseReason, Model, Server};
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;
use util::{config, connect, pattern, settle, start, stream_echo, wait_until};

macro_rules! smoke {
    ($($module:ident => $model:ident),* $(,)?) => {
        $(
            mod $module {
                use iomodels_engine::Model;
                #[test]
                fn streams_of_random_sizes() {
                    crate::streams_of_random_sizes(Model::$model);
                }
            }
        )*
    };
}

smoke!(select => Select, poll => Poll, polling => Polling, signal => Signal);

/// The FD_SETSIZE test holds about 2,200 descriptors in this process; while it runs, another
/// select server's waker, listener or connections could land past FD_SETSIZE too. So it
/// takes this lock for writing, and the other select tests take it for reading.
static DESCRIPTORS: RwLock<()> = RwLock::new(());

fn few_descriptors(model: Model) -> Option<RwLockReadGuard<'static, ()>> {
    (model == Model::Select).then(|| DESCRIPTORS.read().unwrap_or_else(|p| p.into_inner()))
}

/// One client of `util::stream_echo`: `messages` writes of random sizes (1 B to 64 KiB),
/// then a half-close, the echo read concurrently and checked. Returns the bytes sent.
fn stream_client(addr: SocketAddr, seed: u64, messages: usize) -> u64 {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sizes = (0..messages)
        .map(|_| rng.gen_range(1..=64 * 1024))
        .collect();
    stream_echo(addr, seed, sizes, None)
}

/// 12 clients stream random-sized writes at once, each reading concurrently; each ends with
/// a half-close and must get its whole echo, then EOF.
fn streams_of_random_sizes(model: Model) {
    let _lock = few_descriptors(model);
    let Some(server) = start(config(model), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let clients: Vec<_> = (0..12u64)
        .map(|seed| std::thread::spawn(move || stream_client(addr, seed, 64)))
        .collect();
    let total: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    settle(&server);
    let stats = server.stats();
    assert_eq!(stats.bytes_in, total);
    assert_eq!(stats.bytes_out, total);
    assert_eq!(stats.accepted, 12);
    assert_eq!(stats.closed_for(CloseReason::PeerClosed), 12);
    server.stop().unwrap();
}

/// select with 1,100 connections open: those whose descriptor would be at or above
/// FD_SETSIZE are closed at once and counted refused; every other one echoes; once they
/// are gone, new connections are served again.
#[test]
fn select_refuses_descriptors_past_fd_setsize() {
    let _lock = DESCRIPTORS.write().unwrap_or_else(|p| p.into_inner());
    let Some(server) = start(config(Model::Select), Echo) else {
        return;
    };
    let addr = server.local_addr();
    let mut clients: Vec<TcpStream> = (0..1100).map(|_| connect(addr)).collect();
    assert!(wait_until(Duration::from_secs(20), || {
        let stats = server.stats();
        stats.accepted + stats.refused == 1100
    }));
    let stats = server.stats();
    assert!(
        stats.refused > 0,
        "no descriptor reached FD_SETSIZE: {stats:?}"
    );
    assert!(stats.accepted > 0);
    let (mut served, mut turned_away) = (0u64, 0u64);
    for (i, client) in clients.iter_mut().enumerate() {
        let message = pattern(i as u64, 0, 100);
        let mut echo = [0; 100];
        let answered = client.write_all(&message).is_ok() && client.read_exact(&mut echo).is_ok();
        if answered {
            assert_eq!(echo[..], message[..], "connection {i}: echo differs");
            served += 1;
        } else {
            turned_away += 1;
        }
    }
    assert_eq!(served, stats.accepted);
    assert_eq!(turned_away, stats.refused);
    // Refused connections were never sessions: no handler call, no close counted.
    assert_eq!(server.stats().closed.iter().sum::<u64>(), 0);
    drop(clients);
    settle(&server);
    stream_client(addr, 7, 8);
    server.stop().unwrap();
}

/// Several signal-driven servers in one process, one with two workers: each worker thread
/// has its own mask and signalfd, and signals go to the thread that owns the descriptor.
#[test]
fn signal_servers_side_by_side() {
    let servers: Vec<Server<Echo>> = (1..=3)
        .map(|workers| {
            let mut config = config(Model::Signal);
            config.workers = Some(workers.min(2));
            start(config, Echo).unwrap()
        })
        .collect();
    let clients: Vec<_> = servers
        .iter()
        .flat_map(|server| {
            let addr = server.local_addr();
            (0..4u64).map(move |seed| std::thread::spawn(move || stream_client(addr, seed, 16)))
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    for server in servers {
        settle(&server);
        assert_eq!(server.stats().closed_for(CloseReason::PeerClosed), 4);
        server.stop().unwrap();
    }
}
