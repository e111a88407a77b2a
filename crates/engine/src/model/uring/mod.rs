//! io_uring completions: the Linux counterpart of overlapped I/O and IOCP.
//!
//! Instead of asking "which socket is ready?" and then calling recv/send (the readiness
//! models), the driver posts operations and the kernel reports them done, with the bytes
//! already in the driver's buffers. Each worker thread owns one ring, one SO_REUSEPORT
//! listener and its connections; nothing is shared between workers but the counters.
//!
//! **Syscalls.** `io_uring_setup` and `io_uring_register` (buffer ring, file table) once
//! per worker; then one `io_uring_enter` per loop turn, which submits everything queued
//! that turn and waits for completions (with a timeout through IORING_FEAT_EXT_ARG when a
//! timer is due). Ops: `IORING_OP_ACCEPT`, multishot `IORING_OP_RECV` with buffer select,
//! `IORING_OP_SEND` (`IORING_OP_SENDMSG` to gather several queued pieces, say shared
//! broadcasts), `IORING_OP_ASYNC_CANCEL` (by op or by socket), `IORING_OP_READ` on an
//! eventfd; on direct descriptors also `IORING_OP_SHUTDOWN`, `IORING_OP_CLOSE` and
//! `IORING_OP_URING_CMD` (below). On normal descriptors, per connection: `getpeername` and
//! `setsockopt(TCP_NODELAY)` at accept, `shutdown` or `setsockopt(SO_LINGER)` and `close`
//! at the end.
//!
//! **Direct descriptors: more connections than the descriptor limit.** By default (when
//! the kernel has everything, Linux 6.7; [`crate::UringDescriptors`]) a connection is never
//! given a descriptor number: the accept puts its socket straight into a slot of the ring's
//! own file table (`IORING_FILE_INDEX_ALLOC`) and every later op names that slot. This is
//! the only way a Linux process holds more sockets than `RLIMIT_NOFILE`: the kernel caps
//! each ring's table at the soft limit, but not the sum over rings, so the driver starts
//! as many rings (workers) as `max_connections` needs, all accepting from one shared
//! listener (`direct.rs`). The price: a direct descriptor exists only for the ring. It
//! gets TCP_NODELAY by inheriting it from the listener; its peer address comes from a
//! single-shot accept that owns an address buffer; its half-close, abortive close and
//! close are ring ops (`IORING_OP_SHUTDOWN`, `SO_LINGER` through `IORING_OP_URING_CMD`'s
//! `SOCKET_URING_OP_SETSOCKOPT`, `IORING_OP_CLOSE`); and `getsockopt(TCP_INFO)` is out of
//! reach (io_uring passes on only `SOL_SOCKET` options), so the idle timeout and lingering
//! closes ask the ring for the bytes not yet acknowledged (`SOCKET_URING_OP_SIOCOUTQ`) and
//! decide when the answer completes. One rule keeps every connection safe: a full table
//! makes the kernel accept a connection and then drop it (ENFILE, a reset for the peer),
//! so a ring never has more accepts in flight than free slots (at most 8), and accepts
//! nothing while its table is full: the connection waits in the listen backlog until a
//! slot frees. When the kernel lacks any of it, normal descriptors are used (logged at
//! debug), one SO_REUSEPORT listener and one multishot accept per worker.
//!
//! **Cost per event.** A received message is one completion read from shared memory, no
//! syscall of its own; its echo is one submission entry, submitted with the others of the
//! turn. With DEFER_TASKRUN the kernel runs completion work only inside our
//! `io_uring_enter`, so a busy turn costs one syscall for many messages. No allocation per
//! message: receive buffers come from the ring, send buffers are recycled.
//!
//! **What maps to the book's IOCP.**
//! - Accepts posted ahead = AcceptEx pre-posted on the listener: on direct descriptors a
//!   few single-shot accepts per ring, each with its own address buffer, as the book
//!   posts several AcceptEx; on normal descriptors one multishot accept that runs until
//!   it ends (re-armed when a completion lacks IORING_CQE_F_MORE).
//! - The provided-buffer ring (`buffers.rs`) = the book's memory pool: the kernel picks a
//!   buffer only when data arrives, so 10,000 idle connections cost no receive buffer
//!   (IOCP needs one posted WSARecv buffer, or a zero-byte receive, per connection).
//! - An owned send buffer per in-flight send = the OVERLAPPED + WSABUF the book keeps alive
//!   until its completion; here the op table (`ring.rs`) owns it and gives it back only with
//!   its final completion. One send in flight per session keeps the byte order.
//! - A read on an eventfd = PostQueuedCompletionStatus: other threads wake a worker (a send
//!   to one of its sessions, a shutdown) by writing the eventfd; the pending read completes.
//!   An eventfd is used rather than `IORING_OP_MSG_RING` because senders are arbitrary
//!   application threads without a ring of their own. The session owner is the shared
//!   [`Mailbox`](crate::runtime::mailbox::Mailbox), so a broadcast to many sessions of one
//!   worker costs one wake-up.
//!
//! **Workers.** The default is one per core ([`crate::Model::default_workers`]). The book's
//! "2x cores" is for IOCP threads that may block inside handlers; ours never block, so a
//! second ring per core would only add context switches and split batches. The exception
//! is the descriptor limit: on direct descriptors with `workers` unset, rings are added
//! until their tables hold `max_connections` (100,000 at a limit of 20,000: five). A
//! thread waits on one ring only, so an extra ring is an extra thread; the extra rings
//! accept only once the first ones' tables are full (`direct::Spill`), so below the
//! descriptor limit the connections are spread over one ring per core, as without them.
//!
//! **Limits and fallbacks.** Needs Linux 6.0 (multishot receive) with provided-buffer rings
//! (5.19) and IORING_FEAT_EXT_ARG (5.11); [`probe`] names what is missing. Rings are set up
//! with SINGLE_ISSUER + DEFER_TASKRUN (6.1); if the kernel refuses, COOP_TASKRUN (5.19),
//! then a plain ring (documented fallback, logged at debug). Receive buffers: 256 x 4 KiB
//! per worker; when they run out (ENOBUFS) the receive ends, the data waits in the socket,
//! and the receive is re-armed after the turn recycled buffers. Not used (yet): receive
//! bundles; incremental buffer consumption. Sessions, back-pressure, idle timeout
//! and shutdown follow the engine's contracts (see `worker.rs`).

mod buffers;
mod conn;
mod direct;
mod lifecycle;
mod ring;
mod worker;

use crate::config::{Model, UringDescriptors};
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::Core;
use io_uring::{opcode, Probe};
use ring::Ring;
use std::sync::Arc;
use worker::Worker;

/// This driver's model, for errors and logs.
pub(super) const MODEL: Model = Model::Uring;

/// Start the workers, each with its ring: with normal descriptors one per configured
/// thread, each with its own SO_REUSEPORT listener; with direct descriptors as many as the
/// connection limit needs (see [`direct::plan`]), sharing one listener.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<crate::runtime::Started, Error> {
    probe()?;
    let config = &core.config;
    let direct = match config.uring_descriptors {
        UringDescriptors::Normal => false,
        UringDescriptors::Direct => direct::probe().map(|()| true)?,
        UringDescriptors::Auto => match direct::probe() {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(model = %MODEL, "normal descriptors: {e}");
                false
            }
        },
    };
    let (workers, local_addr) = if direct {
        let plan = direct::plan(config, direct::soft_limit());
        tracing::debug!(model = %MODEL, rings = plan.rings, slots = plan.slots, "direct descriptors");
        let (mut listeners, local_addr) =
            crate::sys::listeners(config.addr, 1, config.backlog, true)?;
        let listener = Arc::new(listeners.remove(0));
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux: a direct
        // descriptor gets it without a setsockopt of its own.
        let _ = socket2::SockRef::from(&*listener).set_nodelay(true);
        let spill = Arc::new(direct::Spill::new(config.worker_count().min(plan.rings)));
        let _ = core.direct_rings.set(crate::config::DirectRings {
            rings: plan.rings,
            workers: config.worker_count().min(plan.rings),
            slots: plan.slots,
        });
        let workers = (0..plan.rings)
            .map(|index| {
                let ring = direct::DirectRing {
                    slots: plan.slots,
                    primary: spill.is_primary(index),
                    spill: spill.clone(),
                };
                (listener.clone(), Some(ring))
            })
            .collect();
        (workers, local_addr)
    } else {
        let (listeners, local_addr) =
            crate::sys::listeners(config.addr, config.worker_count(), config.backlog, true)?;
        let workers = listeners.into_iter().map(|l| (Arc::new(l), None)).collect();
        (workers, local_addr)
    };
    // Each ring is created on its worker's thread: SINGLE_ISSUER ties it to that thread.
    let threads =
        crate::runtime::spawn_workers(core, MODEL, workers, |core, (listener, direct)| {
            let worker = Worker::new(core, listener, direct)?;
            Ok(Box::new(move || worker.run()))
        })?;
    Ok((threads, local_addr))
}

/// Check that the kernel can run the uring model: io_uring_setup works (it may be
/// disabled by the `kernel.io_uring_disabled` sysctl or a seccomp filter), a provided-buffer
/// ring registers, and every opcode and feature the driver uses is present.
pub fn probe() -> Result<(), Error> {
    // Creating a ring registers the creating thread with io_uring, and when the ring is
    // closed the kernel's clean-up interrupts that thread with task work (TWA_SIGNAL): a
    // blocking socket call with a timeout running there then fails with EINTR. The caller
    // is the application's thread, so the probe's ring lives and dies on a thread of its
    // own, which ends with it.
    std::thread::Builder::new()
        .name("uring-probe".into())
        .spawn(probe_here)
        .map_err(Error::setup(MODEL, "spawning the probe thread"))?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn probe_here() -> Result<(), Error> {
    let missing = |what: String| Error::Unsupported { model: MODEL, what };
    let ring = Ring::with_sizes(crate::config::UringSetup::Best, 8, 16, 1, 64).map_err(|e| {
        missing(format!(
            "io_uring_setup or provided-buffer ring registration (IORING_REGISTER_PBUF_RING, Linux 5.19) failed: {e}"
        ))
    })?;
    let uring = ring.uring();
    let params = uring.params();
    let features = [
        (
            params.is_feature_ext_arg(),
            "IORING_FEAT_EXT_ARG (timed waits, Linux 5.11)",
        ),
        (
            params.is_feature_nodrop(),
            "IORING_FEAT_NODROP (no lost completions, Linux 5.5)",
        ),
        (
            params.is_feature_fast_poll(),
            "IORING_FEAT_FAST_POLL (Linux 5.7)",
        ),
    ];
    if let Some((_, name)) = features.iter().find(|(present, _)| !present) {
        return Err(missing(format!("missing {name}")));
    }
    let mut probe = Probe::new();
    uring
        .submitter()
        .register_probe(&mut probe)
        .map_err(|e| missing(format!("IORING_REGISTER_PROBE failed: {e}")))?;
    let opcodes = [
        (opcode::AcceptMulti::CODE, "IORING_OP_ACCEPT"),
        (opcode::RecvMulti::CODE, "IORING_OP_RECV"),
        (opcode::Send::CODE, "IORING_OP_SEND"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL"),
        (opcode::Read::CODE, "IORING_OP_READ"),
        // Multishot receive arrived in Linux 6.0 together with zero-copy send, and cannot be
        // probed by itself: IORING_OP_SEND_ZC stands for it.
        (
            opcode::SendZc::CODE,
            "multishot receive (Linux 6.0; probed through IORING_OP_SEND_ZC, added with it)",
        ),
    ];
    if let Some((_, name)) = opcodes.iter().find(|(code, _)| !probe.is_supported(*code)) {
        return Err(missing(format!("missing {name}")));
    }
    Ok(())
}
