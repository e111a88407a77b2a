//! Direct descriptors: whether the kernel can run the driver on them (probed once), and
//! how many rings, with how many table slots each, a configuration needs.
//!
//! The kernel caps each ring's table at the soft `RLIMIT_NOFILE` when it is registered
//! (`io_sqe_files_register`), but does not add the tables of a process's rings together:
//! eight rings of 20,000 slots hold 160,000 connections under a limit of 20,000. A thread
//! can wait on one ring only (`io_uring_enter`), so more rings means more worker threads;
//! a worker without work sleeps in the kernel and costs nothing.

use super::ring::{Op, Ring, Sock};
use super::MODEL;
use crate::config::{Config, UringSetup};
use crate::error::Error;
use crate::runtime::Wake;
use io_uring::opcode;
use io_uring::Probe;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The most rings the driver starts on its own to pass the descriptor limit.
pub(super) const MAX_RINGS: usize = 64;
/// Slots each ring has beyond its share of `max_connections`: for connections accepted
/// only to be refused at the limit, and for closed ones still lingering or closing.
const HEADROOM: usize = 64;

/// One ring's part in a direct-descriptor server.
#[derive(Debug)]
pub(super) struct DirectRing {
    /// Slots of its table.
    pub(super) slots: u32,
    /// Whether it always accepts ([`Spill`]).
    pub(super) primary: bool,
    /// What the rings share to decide who accepts.
    pub(super) spill: Arc<Spill>,
}

/// Who accepts, when the rings outnumber the workers the machine would run by itself.
///
/// Rings beyond the default worker count (one per core) exist only to pass the descriptor
/// limit. Accepting on every ring from the start would spread a few hundred connections
/// over, say, five threads on two cores: smaller batches per `io_uring_enter` and more
/// context switches, for nothing (measured: 1,000 ping-pong connections on five rings did
/// 12-20% fewer echoes per server CPU-second than on two). So the first rings, the
/// primaries, accept as long as their tables have room; the spill rings arm their accepts
/// only once every primary's table is full, woken by the primary that filled last. A
/// spill ring keeps accepting until its own table is full, so at worst a handful of
/// connections land on it after a primary freed a slot.
#[derive(Default)]
pub(super) struct Spill {
    /// Rings that always accept (the first ones).
    primaries: usize,
    /// Primaries whose table is full.
    full: AtomicUsize,
    /// The spill rings' wakers.
    wakers: Mutex<Vec<Arc<dyn Wake>>>,
}

impl Spill {
    /// The first `primaries` rings always accept; the others spill.
    pub(super) fn new(primaries: usize) -> Spill {
        Spill {
            primaries,
            ..Spill::default()
        }
    }

    /// Whether ring `index` is a primary.
    pub(super) fn is_primary(&self, index: usize) -> bool {
        index < self.primaries
    }

    /// Wake this spill ring when the primaries fill.
    pub(super) fn add_spill_waker(&self, waker: Arc<dyn Wake>) {
        self.wakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(waker);
    }

    /// Whether spill rings accept now: every primary's table is full.
    pub(super) fn spilling(&self) -> bool {
        self.full.load(Ordering::Acquire) >= self.primaries
    }

    /// A primary's table filled; the last to fill wakes the spill rings.
    pub(super) fn primary_filled(&self) {
        if self.full.fetch_add(1, Ordering::AcqRel) + 1 == self.primaries {
            for waker in self.wakers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                waker.wake();
            }
        }
    }

    /// A full primary's table has a free slot again.
    pub(super) fn primary_freed(&self) {
        self.full.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("primaries", &self.primaries)
            .field("full", &self.full)
            .finish()
    }
}

/// The rings to start and the table slots of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) rings: usize,
    pub(super) slots: u32,
}

/// The rings and slots `config` needs when each table may hold at most `soft_limit`
/// slots: a ring per worker ([`Config::worker_count`]: those are the primaries, see
/// [`Spill`]), and more rings if `max_connections` needs them, at most [`MAX_RINGS`] (or
/// the worker count, if that is more).
pub(super) fn plan(config: &Config, soft_limit: u64) -> Plan {
    let per_ring = soft_limit.clamp(1, u32::MAX as u64) as usize;
    let max = config.max_connections.max(1);
    let workers = config.worker_count();
    let rings = workers.max(max.div_ceil(per_ring).min(MAX_RINGS));
    let share = max.div_ceil(rings).saturating_add(HEADROOM);
    Plan {
        rings,
        slots: share.min(per_ring) as u32,
    }
}

/// The soft open-file limit of this process: the cap of each ring's table.
pub(super) fn soft_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `struct rlimit` for the kernel to write.
    match crate::sys::syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit)) {
        Ok(_) => limit.rlim_cur,
        Err(_) => 1024,
    }
}

/// Whether this kernel runs everything the driver does on direct descriptors; probed
/// once per process, on a thread of its own (see [`super::probe`]). The error names what
/// is missing.
pub(super) fn probe() -> Result<(), Error> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = PROBED.get_or_init(|| {
        std::thread::Builder::new()
            .name("uring-probe".into())
            .spawn(probe_here)
            .map_err(|e| format!("spawning the probe thread: {e}"))
            .and_then(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
    });
    result
        .clone()
        .map_err(|what| Error::Unsupported { model: MODEL, what })
}

fn probe_here() -> Result<(), String> {
    let mut ring = Ring::with_sizes(UringSetup::Best, 8, 16, 1, 64)
        .map_err(|e| format!("setting up a ring: {e}"))?;
    ring.register_table(1)
        .map_err(|e| format!("registering a sparse file table (Linux 5.19): {e}"))?;
    let mut probe = Probe::new();
    ring.uring()
        .submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("IORING_REGISTER_PROBE failed: {e}"))?;
    let opcodes = [
        (opcode::Close::CODE, "IORING_OP_CLOSE"),
        (opcode::Shutdown::CODE, "IORING_OP_SHUTDOWN"),
        (opcode::UringCmd16::CODE, "IORING_OP_URING_CMD"),
    ];
    if let Some((_, name)) = opcodes.iter().find(|(code, _)| !probe.is_supported(*code)) {
        return Err(format!("missing {name}"));
    }
    // The socket commands (Linux 6.7) cannot be probed by opcode: run them on a socket put
    // in the table. The table holds its own reference, so the descriptor can go at once.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("creating a socket: {e}"))?;
    ring.uring()
        .submitter()
        .register_files_update(0, &[socket.as_raw_fd()])
        .map_err(|e| format!("installing a direct descriptor: {e}"))?;
    drop(socket);
    let sock = Sock::Fixed(0);
    let linger = Box::new(libc::linger {
        l_onoff: 1,
        l_linger: 0,
    });
    let ops = [
        (
            Op::Linger {
                slot: 0,
                sock,
                value: linger,
            },
            "setsockopt through IORING_OP_URING_CMD (SOCKET_URING_OP_SETSOCKOPT, Linux 6.7)",
        ),
        (
            Op::Unsent {
                slot: 0,
                sock,
                look: super::ring::Look::Idle,
            },
            "SIOCOUTQ through IORING_OP_URING_CMD (SOCKET_URING_OP_SIOCOUTQ, Linux 6.7)",
        ),
        (
            Op::Close { index: 0 },
            "IORING_OP_CLOSE of a direct descriptor",
        ),
    ];
    for (op, name) in ops {
        let user_data = ring.submit(op).map_err(|e| format!("{name}: {e}"))?;
        let result = wait_for(&mut ring, user_data).ok_or_else(|| format!("{name}: no answer"))?;
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            return Err(format!("{name} failed: {err}"));
        }
    }
    Ok(())
}

/// Wait (a second at most) for the completion of `user_data`; its result.
fn wait_for(ring: &mut Ring, user_data: u64) -> Option<i32> {
    let mut batch = Vec::with_capacity(4);
    for _ in 0..10 {
        ring.wait(Some(Duration::from_millis(100))).ok()?;
        ring.completions(&mut batch);
        for cqe in &batch {
            ring.ops.complete(cqe.user_data());
            if cqe.user_data() == user_data {
                return Some(cqe.result());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Model;

    fn config(max: usize, workers: Option<usize>) -> Config {
        let mut config = Config::new(Model::Uring, "127.0.0.1:0".parse().unwrap());
        config.max_connections = max;
        config.workers = workers;
        config
    }

    #[test]
    fn rings_grow_with_max_connections_past_the_workers() {
        let cores = Model::Uring.default_workers();
        let plan = plan(&config(150_000, None), 20_000);
        assert_eq!(plan.rings, 8.max(cores));
        assert!(plan.slots as usize * plan.rings >= 150_000);
        assert!(plan.slots <= 20_000);
        // Few connections: a ring per core, slots for the share and the headroom.
        let plan = plan_of(10, None, 20_000);
        assert_eq!(plan.rings, cores);
        assert_eq!(plan.slots as usize, 10usize.div_ceil(cores) + HEADROOM);
        // One worker: one ring while its table holds the connections...
        assert_eq!(
            plan_of(256, Some(1), 256),
            Plan {
                rings: 1,
                slots: 256
            }
        );
        // ... and as many more as the connections need past it (they spill).
        let plan = plan_of(150_000, Some(1), 20_000);
        assert_eq!(plan.rings, 8);
        assert!(plan.slots as usize * plan.rings >= 150_000);
        // More workers than the connections need: a ring each.
        assert_eq!(plan_of(10, Some(3), 20_000).rings, 3);
        // Never more than MAX_RINGS on its own.
        assert_eq!(plan_of(usize::MAX, None, 256).rings, MAX_RINGS);
    }

    fn plan_of(max: usize, workers: Option<usize>, soft: u64) -> Plan {
        plan(&config(max, workers), soft)
    }
}
