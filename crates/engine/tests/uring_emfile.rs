//! The uring driver when the process runs out of descriptors (EMFILE): pending connections
//! are shed through the reserve descriptor and counted as refused, the server keeps
//! serving the sessions it has, and accepts again once descriptors are free.
//!
//! Its own test binary: it lowers RLIMIT_NOFILE, which is per process.

mod util;

use iomodels_engine::{echo::Echo, Model};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;
use util::{connect, echo_once, start, wait_until};

/// The soft descriptor limit of this process.
fn soft_limit() -> u64 {
    nofile_limit().rlim_cur
}

/// Set the soft descriptor limit, keeping the hard one.
fn set_soft_limit(soft: u64) {
    let mut limit = nofile_limit();
    limit.rlim_cur = soft;
    // SAFETY: `limit` is a valid rlimit; lowering or restoring the soft limit is allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write into.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

#[test]
fn out_of_descriptors_sheds_then_recovers() {
    let mut config = util::config(Model::Uring);
    config.workers = Some(1);
    let Some(server) = start(config, Echo) else {
        return;
    };
    let addr = server.local_addr();
    const CLIENTS: usize = 30;
    // Make the client sockets while descriptors are plentiful; connecting needs none.
    let sockets: Vec<socket2::Socket> = (0..CLIENTS)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    let highest = sockets.iter().map(|s| s.as_raw_fd()).max().unwrap() as u64;
    let original = soft_limit();
    // Room for a handful of accepted sockets (plus any holes below `highest`).
    set_soft_limit(highest + 1 + 3);
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
    let settled = wait_until(Duration::from_secs(10), || {
        let stats = server.stats();
        stats.accepted + stats.refused == CLIENTS as u64
    });
    let stats = server.stats();
    set_soft_limit(original);
    assert!(
        settled,
        "every connection is either served or refused: {stats:?}"
    );
    assert!(
        stats.refused > 0,
        "descriptors ran out, so some were shed: {stats:?}"
    );
    assert!(stats.accepted > 0, "the first few were served: {stats:?}");
    // The sessions that were accepted still echo.
    let served = clients
        .iter_mut()
        .map(|c| echo_once(c, b"served?"))
        .filter(|&ok| ok)
        .count();
    assert_eq!(served as u64, stats.accepted);
    // Descriptors free up: the server accepts again.
    drop(clients);
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 0));
    let mut late = connect(addr);
    assert!(echo_once(&mut late, b"recovered"));
    assert_eq!(server.stats().accepted, stats.accepted + 1);
    drop(late);
    server.stop().unwrap();
}
