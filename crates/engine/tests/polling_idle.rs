//! The polling model at rest: an idle sweep is followed by a 1 ms nap, so an idle server
//! does not spin a core, and idle connections cost one `recv` (EAGAIN) each per sweep. Its
//! own test binary, so the sweeping thread is the only one named `polling-0`.
// Linux only: what it measures (or the model it tests) exists only there.
#![cfg(target_os = "linux")]

mod util;

use iomodels_engine::{echo::Echo, Model};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use util::{config, connect, start, wait_until};

/// CPU time (user + system) the thread named `name` has used so far.
fn thread_cpu(name: &str) -> Duration {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        // Fields after the command name, which ends with ')': state is field 3, utime 14,
        // stime 15.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        return Duration::from_millis(ticks * 1000 / per_second);
    }
    panic!("no thread named {name}");
}

/// The share of one core the sweeping thread uses over `window`.
fn sweeper_load(window: Duration) -> f64 {
    let (cpu, wall) = (thread_cpu("polling-0"), Instant::now());
    std::thread::sleep(window);
    (thread_cpu("polling-0") - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

#[test]
fn an_idle_server_naps_instead_of_spinning() {
    let Some(server) = start(config(Model::Polling), Echo) else {
        return;
    };
    let empty = sweeper_load(Duration::from_secs(1));
    let mut clients: Vec<_> = (0..200).map(|_| connect(server.local_addr())).collect();
    assert!(wait_until(Duration::from_secs(10), || server
        .stats()
        .active
        == 200));
    let idle = sweeper_load(Duration::from_secs(1));
    eprintln!(
        "sweeping thread: {:.0}% of a core with no connection, {:.0}% with 200 idle ones",
        empty * 100.0,
        idle * 100.0
    );
    assert!(
        empty < 0.25,
        "an empty server used {:.0}% of a core",
        empty * 100.0
    );
    assert!(
        idle < 0.75,
        "200 idle connections used {:.0}% of a core",
        idle * 100.0
    );
    // And the naps do not stop it from answering.
    let mut echo = [0; 5];
    for client in &mut clients {
        client.write_all(b"hello").unwrap();
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"hello");
    }
    drop(clients);
    server.stop().unwrap();
}
