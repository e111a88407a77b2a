//! What a thread per connection really costs: 1,000 idle connections on the blocking
//! driver, measured from /proc/self. One test in this file, so no other test's threads
//! share the process while it counts.
//!
//! The book puts 1,000 threads at "1-8 GB" (1-8 MB of stack each). That is address space
//! reserved, not memory used: only touched stack pages are resident. The test prints what
//! is resident and fails if it passes 256 MiB, 4x under the book's lowest figure.
// Linux only: what it measures (or the model it tests) exists only there.
#![cfg(target_os = "linux")]

mod util;

use iomodels_engine::{echo::Echo, Model};
use std::io::{Read, Write};
use util::{config, connect, start};

const CONNECTIONS: usize = 1000;

/// A field of /proc/self/status, in its own unit (kB for memory).
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Open [`CONNECTIONS`] connections to a blocking server with `stack`-byte thread stacks,
/// print what they cost, check the threads, and stop it.
fn measure(stack: usize) {
    let mut config = config(Model::Blocking);
    config.thread_stack = stack;
    let server = start(config, Echo).expect("the blocking model always starts");
    let (rss_before, threads_before) = (status("VmRSS"), status("Threads"));
    let vm_before = status("VmSize");
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        clients.push(connect(server.local_addr()));
    }
    // One round trip each: every connection has its threads and has served a request.
    let mut byte = [0u8; 1];
    for client in &mut clients {
        client.write_all(b"x").unwrap();
        client.read_exact(&mut byte).unwrap();
    }
    let (rss, threads) = (status("VmRSS"), status("Threads"));
    let (vm_size, connection_threads) = (status("VmSize"), threads_named("blocking-"));
    let per_connection = (rss - rss_before) as f64 / CONNECTIONS as f64;
    eprintln!(
        "blocking, {CONNECTIONS} idle connections, {} KiB stacks: threads {threads_before} -> {threads} \
         ({connection_threads} named blocking-*), VmRSS {rss_before} kB -> {rss} kB \
         (+{per_connection:.1} kB per connection), VmSize {vm_before} kB -> {vm_size} kB",
        stack / 1024
    );
    // A reader and a writer per connection, plus the acceptor.
    assert_eq!(connection_threads, 2 * CONNECTIONS + 1);
    assert!(
        rss - rss_before < 256 * 1024,
        "RSS grew by {} kB",
        rss - rss_before
    );

    drop(clients);
    server.stop().unwrap();
    // `stop` joined every thread the driver started.
    assert_eq!(threads_named("blocking-"), 0);
}

#[test]
fn a_thousand_idle_connections() {
    // The driver's default, then the 8 MiB that glibc gives a thread by default (the
    // book's upper figure): the reserve grows 64x, what is resident does not.
    measure(128 * 1024);
    measure(8 * 1024 * 1024);
}
