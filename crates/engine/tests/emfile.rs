//! Every model when the process runs out of descriptors (EMFILE): pending connections are
//! shed through the reserve descriptor and counted as refused, the server keeps serving the
//! sessions it has, and accepts again once descriptors are free. uring runs it on normal
//! descriptors; on io_uring direct descriptors (its default) it needs no descriptor per
//! connection, and serves every one while the table is full.
//!
//! Its own test binary, and one test that runs the models one after another: it fills the
//! process's descriptor table, which every thread of the process shares. The table is
//! filled rather than RLIMIT_NOFILE lowered, because io_uring takes the limit when an accept
//! is submitted, so a multishot accept posted before the change would not see it.
// Linux only: what it measures (or the model it tests) exists only there.
#![cfg(target_os = "linux")]

mod util;

use iomodels_engine::{echo::Echo, Model};
use std::fs::File;
use std::net::TcpStream;
use std::time::Duration;
use util::{connect, echo_once, settle, start, wait_until};

/// Open descriptors until the table is full, then give the `room` lowest of them back.
fn fill_table(room: usize) -> Vec<File> {
    let mut filler = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => filler.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("filling the descriptor table: {e}"),
        }
    }
    // Free the lowest-numbered ones, so that select can watch what lands there.
    filler.drain(..room.min(filler.len()));
    filler
}

fn sheds_then_recovers(model: Model) {
    let mut config = util::config(model);
    config.workers = Some(1).filter(|_| model.has_workers());
    let Some(server) = start(config, Echo) else {
        return;
    };
    let addr = server.local_addr();
    const CLIENTS: usize = 30;
    // Client sockets first: connecting needs no new descriptor.
    let sockets: Vec<socket2::Socket> = (0..CLIENTS)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    // Room for a handful of accepted sockets, no more.
    let filler = fill_table(3);
    let mut clients: Vec<TcpStream> = sockets
        .into_iter()
        .map(|s| {
            s.connect(&addr.into()).unwrap();
            let stream: TcpStream = s.into();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
        })
        .collect();
    // While the table is full, pending connections are shed through the reserve.
    let shed = wait_until(Duration::from_secs(10), || server.stats().refused > 0);
    assert!(
        shed,
        "{model}: descriptors ran out, so some were shed: {:?}",
        server.stats()
    );
    // The reserve is best-effort: another thread of the process (glibc opens files when a
    // new thread first allocates) may take its slot, and then the rest wait in the backlog
    // until descriptors free up. Either way, once they do, every connection is resolved.
    drop(filler);
    let settled = wait_until(Duration::from_secs(10), || {
        let stats = server.stats();
        stats.accepted + stats.refused == CLIENTS as u64
    });
    let stats = server.stats();
    assert!(
        settled,
        "{model}: every connection is either served or refused: {stats:?}"
    );
    assert!(stats.accepted > 0, "{model}: some were served: {stats:?}");
    // Exactly the sessions that were accepted echo; the shed ones see a close.
    let served = clients
        .iter_mut()
        .map(|c| echo_once(c, b"served?"))
        .filter(|&ok| ok)
        .count();
    assert_eq!(served as u64, stats.accepted, "{model}");
    drop(clients);
    settle(&server);
    let mut late = connect(addr);
    let echoed = echo_once(&mut late, b"recovered");
    assert!(
        echoed,
        "{model}: no echo after recovery: {:?}",
        server.stats()
    );
    assert_eq!(server.stats().accepted, stats.accepted + 1, "{model}");
    drop(late);
    server.stop().unwrap();
}

#[test]
fn out_of_descriptors_sheds_then_recovers() {
    // The blocking model needs no descriptor per thread, but spawning threads under a full
    // table works too; every model goes through the same check.
    util::uring_descriptors(iomodels_engine::UringDescriptors::Normal);
    for &model in Model::ALL {
        sheds_then_recovers(model);
    }
    util::uring_descriptors(iomodels_engine::UringDescriptors::Direct);
    direct_descriptors_need_none();
}

/// uring on direct descriptors with the process's descriptor table full: every connection
/// is accepted and served, none shed.
fn direct_descriptors_need_none() {
    let mut config = util::config(Model::Uring);
    config.workers = Some(1);
    let Some(server) = start(config, Echo) else {
        return;
    };
    let addr = server.local_addr();
    const CLIENTS: usize = 30;
    let sockets: Vec<socket2::Socket> = (0..CLIENTS)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    let filler = fill_table(0);
    let mut clients: Vec<TcpStream> = sockets
        .into_iter()
        .map(|s| {
            s.connect(&addr.into()).unwrap();
            let stream: TcpStream = s.into();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
        })
        .collect();
    let served = clients
        .iter_mut()
        .map(|c| echo_once(c, b"served?"))
        .filter(|&ok| ok)
        .count();
    let stats = server.stats();
    drop(filler);
    assert_eq!(served, CLIENTS, "uring direct: {stats:?}");
    assert_eq!((stats.accepted, stats.refused), (CLIENTS as u64, 0));
    drop(clients);
    server.stop().unwrap();
}
