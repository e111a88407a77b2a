//! One worker's io_uring and its op table: every operation the driver submits, declared
//! once, with the memory it lends the kernel.
//!
//! The one unsafe step of io_uring is `SubmissionQueue::push`: the kernel may read or write
//! the memory an entry points to until the operation's last completion. Here that memory
//! always belongs to an [`Op`] (a send buffer, the wake-up counter, an accept's address
//! buffer, a socket option's value), and [`Ring::submit`]
//! moves the op into the [`Ops`] table *before* pushing. The table gives an op back only
//! from [`Ops::complete`], which the worker calls for the op's final completion (one
//! without `IORING_CQE_F_MORE`); so a buffer cannot be freed or reused while the kernel
//! holds it. Ops live in heap boxes or vectors, so growing the table never moves what the
//! kernel points at. On drop, [`Ring`] closes the io_uring before freeing its buffers and
//! ops (field order).

use super::buffers::{BufRing, GROUP};
use crate::chunks::{Chunks, MAX_SLICES};
use crate::config::UringSetup;
use io_uring::types::{CancelBuilder, DestinationSlot, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};
use std::cell::UnsafeCell;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

/// Submission queue entries per ring. A turn that queues more submits early.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries per ring (the kernel keeps overflow, IORING_FEAT_NODROP).
const CQ_ENTRIES: u32 = 4096;
/// Provided buffers per worker, and their size: 1 MiB per worker.
const BUF_COUNT: u16 = 256;
const BUF_SIZE: u32 = 4096;

/// `SOCKET_URING_OP_SIOCOUTQ` of `<linux/io_uring.h>` (the io-uring crate does not export
/// its command numbers).
const SOCKET_URING_OP_SIOCOUTQ: u32 = 1;

/// Identifies a submitted op: its table index and the generation of that index, so that a
/// cancel aimed at a finished op can never hit a newer op in the same place.
pub(super) type UserData = u64;

/// An owned send: the bytes the kernel has yet to take, as the session queued them (its
/// own copied bytes, and broadcasts shared with other sessions, sent from the shared
/// buffer itself). One piece goes out with `IORING_OP_SEND`; several with one
/// `IORING_OP_SENDMSG` gathering up to [`MAX_SLICES`] of them, through the header and
/// vector kept here, next to the bytes they point at, until the completion.
#[derive(Debug)]
pub(super) struct SendBuf {
    /// The bytes to send; sent ones are dropped from the front.
    data: Chunks,
    /// The pieces of `data` for a SENDMSG (the first `msg.msg_iovlen`).
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
}

impl Default for SendBuf {
    fn default() -> SendBuf {
        SendBuf {
            data: Chunks::default(),
            iov: Vec::new(),
            // SAFETY: `msghdr` is plain data for which all zeroes is a valid value (no
            // address, no vector, no control data).
            msg: unsafe { std::mem::zeroed() },
        }
    }
}

impl SendBuf {
    /// Bytes the kernel has yet to take.
    pub(super) fn len(&self) -> usize {
        self.data.len()
    }

    /// Take `data` to send; the pieces are gathered when the op is submitted.
    pub(super) fn fill(&mut self, data: Chunks) {
        self.data = data;
        self.gather();
    }

    /// `n` bytes were sent: drop them, and gather what is left. Returns whether any is.
    pub(super) fn advance(&mut self, n: usize) -> bool {
        self.data.advance(n);
        self.gather();
        !self.data.is_empty()
    }

    /// Give the bytes back to the allocator (or drop this send's references to shared
    /// ones), keeping the vector's room for the next send.
    pub(super) fn clear(&mut self) {
        self.data = Chunks::default();
        self.iov.clear();
        self.msg.msg_iov = std::ptr::null_mut();
        self.msg.msg_iovlen = 0;
    }

    /// Point the vector and the header at the unsent pieces.
    fn gather(&mut self) {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let pieces = self.data.slices(&mut slices);
        self.iov.clear();
        self.iov
            .extend(slices[..pieces].iter().map(|s| libc::iovec {
                iov_base: s.as_ptr().cast_mut().cast(),
                iov_len: s.len(),
            }));
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len() as _;
    }
}

/// A connection's socket as ops name it: a descriptor of the process's table, or an index
/// into the ring's own table of direct descriptors (registered files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sock {
    /// A normal descriptor.
    Fd(RawFd),
    /// A direct descriptor: a slot of this ring's fixed-file table.
    Fixed(u32),
}

/// Build an entry for either kind of [`Sock`]: the io-uring crate takes `Fd` and `Fixed`
/// as different types, so the builder expression is written once and typed twice.
macro_rules! on_sock {
    ($sock:expr, |$target:ident| $build:expr) => {
        match $sock {
            Sock::Fd(fd) => {
                let $target = Fd(fd);
                $build
            }
            Sock::Fixed(index) => {
                let $target = Fixed(index);
                $build
            }
        }
    };
}

/// What a cancel targets.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    /// One op.
    Op(UserData),
    /// Every op of the ring.
    Any,
}

/// Where a single-shot accept writes the peer's address: owned by the op, so the kernel
/// writes into memory nothing else reads until the completion.
pub(super) struct PeerAddr {
    storage: UnsafeCell<libc::sockaddr_storage>,
    len: UnsafeCell<libc::socklen_t>,
}

impl PeerAddr {
    pub(super) fn new() -> Box<PeerAddr> {
        Box::new(PeerAddr {
            // SAFETY: sockaddr_storage is plain integers; all zeroes is a valid value.
            storage: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            len: UnsafeCell::new(std::mem::size_of::<libc::sockaddr_storage>() as _),
        })
    }

    /// The address the kernel wrote. Call only after the accept's completion (the op was
    /// taken back from the table, so the kernel no longer writes here).
    pub(super) fn addr(&self) -> Option<SocketAddr> {
        // SAFETY: the accept completed, so nothing writes these cells any more; the kernel
        // wrote at most `len` bytes of a socket address into the zeroed storage (both are
        // plain integers, valid whatever their bytes).
        let (storage, len) = unsafe { (*self.storage.get(), *self.len.get()) };
        let len = len.min(std::mem::size_of::<libc::sockaddr_storage>() as _);
        // SAFETY: `storage` holds `len` bytes of a socket address (or zeroes, family 0,
        // which `as_socket` turns into `None`).
        unsafe { socket2::SockAddr::new(storage, len) }.as_socket()
    }
}

impl std::fmt::Debug for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerAddr")
    }
}

/// Why a connection's unacknowledged output is asked for (see [`Op::Unsent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Look {
    /// The idle sweep.
    Idle,
    /// A lingering close (begun at that stamp).
    Linger(crate::runtime::timers::Stamp),
}

/// One operation, with everything the kernel may touch while it runs.
#[derive(Debug)]
pub(super) enum Op {
    /// Multishot accept on a listener into normal descriptors: the book's pre-posted
    /// AcceptEx.
    Accept { listener: RawFd },
    /// A single-shot accept into a free slot of the ring's direct-descriptor table
    /// (IORING_FILE_INDEX_ALLOC), writing the peer's address into `peer`.
    AcceptDirect {
        listener: RawFd,
        peer: Box<PeerAddr>,
    },
    /// Multishot receive into the provided-buffer ring. It owns no memory, so the table
    /// keeps nothing of it (see [`Ops::recv_slot`]).
    Recv { slot: u32, sock: Sock },
    /// A send of an owned buffer (at most one per connection).
    Send {
        slot: u32,
        sock: Sock,
        buf: Box<SendBuf>,
    },
    /// `shutdown(SHUT_WR)` of a direct descriptor (normal ones call shutdown(2)).
    Shutdown { slot: u32, sock: Sock },
    /// `setsockopt(SO_LINGER, 0)` on a direct descriptor, so that its close resets
    /// (IORING_OP_URING_CMD, SOCKET_URING_OP_SETSOCKOPT, Linux 6.7).
    Linger {
        slot: u32,
        sock: Sock,
        value: Box<libc::linger>,
    },
    /// The bytes written and not yet acknowledged by the peer (SIOCOUTQ through
    /// IORING_OP_URING_CMD, SOCKET_URING_OP_SIOCOUTQ): what a direct descriptor offers in
    /// place of `getsockopt(TCP_INFO)`, which io_uring does not pass on.
    Unsent { slot: u32, sock: Sock, look: Look },
    /// Close a direct descriptor and free its table slot.
    Close { index: u32 },
    /// Cancel ops; `slot` is the connection the cancel counts against, if any.
    Cancel { slot: Option<u32>, target: Target },
    /// Read the wake-up eventfd into an owned counter.
    Wake {
        fd: RawFd,
        value: Box<UnsafeCell<u64>>,
    },
}

/// What kind of op a completion belongs to, without taking it from the table (for the
/// completions of a multishot op that keeps running).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Accept,
    Other,
}

impl Op {
    /// The connection slot this op counts against, if any.
    fn conn(&self) -> Option<u32> {
        match *self {
            Op::Recv { slot, .. }
            | Op::Send { slot, .. }
            | Op::Shutdown { slot, .. }
            | Op::Linger { slot, .. }
            | Op::Unsent { slot, .. } => Some(slot),
            Op::Cancel { slot, .. } => slot,
            Op::Accept { .. } | Op::AcceptDirect { .. } | Op::Close { .. } | Op::Wake { .. } => {
                None
            }
        }
    }

    fn kind(&self) -> Kind {
        match *self {
            Op::Accept { .. } => Kind::Accept,
            _ => Kind::Other,
        }
    }

    /// The submission entry, pointing into memory this op owns.
    fn entry(&self) -> squeue::Entry {
        match self {
            Op::Accept { listener } => opcode::AcceptMulti::new(Fd(*listener))
                .flags(libc::SOCK_CLOEXEC)
                .build(),
            Op::AcceptDirect { listener, peer } => {
                // No SOCK_CLOEXEC: a direct descriptor is never in the descriptor table that
                // exec would close, and the kernel refuses the flag here (EINVAL).
                opcode::Accept::new(Fd(*listener), peer.storage.get().cast(), peer.len.get())
                    .file_index(Some(DestinationSlot::auto_target()))
                    .build()
            }
            Op::Recv { sock, .. } => on_sock!(*sock, |s| opcode::RecvMulti::new(s, GROUP).build()),
            Op::Send { sock, buf, .. } if buf.iov.len() > 1 => {
                on_sock!(*sock, |s| opcode::SendMsg::new(s, &buf.msg)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build())
            }
            Op::Send { sock, buf, .. } => {
                let rest = buf.data.first();
                let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
                on_sock!(*sock, |s| opcode::Send::new(s, rest.as_ptr(), len)
                    .flags(libc::MSG_NOSIGNAL)
                    .build())
            }
            Op::Shutdown { sock, .. } => {
                on_sock!(*sock, |s| opcode::Shutdown::new(s, libc::SHUT_WR).build())
            }
            Op::Linger { sock, value, .. } => on_sock!(*sock, |s| opcode::SetSockOpt::new(
                s,
                libc::SOL_SOCKET as u32,
                libc::SO_LINGER as u32,
                (&**value as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32
            )
            .build()),
            Op::Unsent { sock, .. } => on_sock!(*sock, |s| opcode::UringCmd16::new(
                s,
                SOCKET_URING_OP_SIOCOUTQ
            )
            .build()),
            Op::Close { index } => opcode::Close::new(Fixed(*index)).build(),
            Op::Cancel { target, .. } => match *target {
                Target::Op(user_data) => opcode::AsyncCancel::new(user_data).build(),
                Target::Any => opcode::AsyncCancel2::new(CancelBuilder::any()).build(),
            },
            Op::Wake { fd, value } => opcode::Read::new(Fd(*fd), value.get().cast(), 8).build(),
        }
    }
}

/// The op table: a slab keyed by [`UserData`], which also counts the ops in flight per
/// connection slot: an op counts from its submission to its final completion (or the
/// failure of its submission), whatever its kind, so a connection's socket is closed
/// only when its count is zero.
#[derive(Debug, Default)]
pub(super) struct Ops {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// Ops in flight per connection slot.
    per_conn: Vec<u16>,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    op: Option<Op>,
}

/// The user data of a receive: its connection's slot with this bit set.
const RECV: UserData = 1 << 63;

impl Ops {
    fn insert(&mut self, op: Op) -> UserData {
        self.live += 1;
        if let Some(conn) = op.conn() {
            let conn = conn as usize;
            if self.per_conn.len() <= conn {
                self.per_conn.resize(conn + 1, 0);
            }
            self.per_conn[conn] += 1;
        }
        if let Op::Recv { slot, .. } = op {
            // Nothing to keep: counted, and named by its slot.
            return Ops::recv_data(slot);
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    op: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        slot.op = Some(op);
        (slot.generation as u64) << 32 | index as u64
    }

    /// The connection slot of a receive's completion; `None` for every other op.
    ///
    /// A receive owns no memory (the kernel picks a provided buffer), and a connection's
    /// slot is freed only once no op on it is in flight, so the slot alone names the one
    /// receive it may have: the table keeps no entry for it (40 bytes a connection).
    pub(super) fn recv_slot(user_data: UserData) -> Option<u32> {
        (user_data & RECV != 0).then_some(user_data as u32)
    }

    /// The user data of the receive on connection slot `conn`.
    pub(super) fn recv_data(conn: u32) -> UserData {
        RECV | conn as UserData
    }

    fn slot(&self, user_data: UserData) -> Option<&Slot> {
        let slot = self.slots.get((user_data & u32::MAX as u64) as usize)?;
        (slot.generation == (user_data >> 32) as u32).then_some(slot)
    }

    /// The kind of a running op.
    pub(super) fn kind(&self, user_data: UserData) -> Option<Kind> {
        self.slot(user_data)?.op.as_ref().map(Op::kind)
    }

    /// The op's final completion arrived: the kernel is done with it; take it back (a
    /// receive is only uncounted: the table holds nothing of it, and this returns `None`).
    pub(super) fn complete(&mut self, user_data: UserData) -> Option<Op> {
        if let Some(conn) = Ops::recv_slot(user_data) {
            self.live -= 1;
            self.per_conn[conn as usize] -= 1;
            return None;
        }
        self.slot(user_data)?;
        let index = (user_data & u32::MAX as u64) as u32;
        let op = self.slots[index as usize].op.take()?;
        self.free.push(index);
        self.live -= 1;
        if let Some(conn) = op.conn() {
            self.per_conn[conn as usize] -= 1;
        }
        Some(op)
    }

    /// Ops in flight that count against connection slot `conn`.
    pub(super) fn on_conn(&self, conn: u32) -> usize {
        self.per_conn.get(conn as usize).map_or(0, |&n| n as usize)
    }

    /// Ops submitted and not completed.
    pub(super) fn live(&self) -> usize {
        self.live
    }
}

/// How the ring was set up, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (Linux 6.1): completions
    /// are run only when this thread waits, with no inter-processor interrupts.
    DeferTaskrun,
    /// IORING_SETUP_COOP_TASKRUN (Linux 5.19): no forced interruption for task work.
    CoopTaskrun,
    /// Plain setup.
    Plain,
}

/// One worker's io_uring, provided buffers and op table. Create it on the thread that
/// uses it (SINGLE_ISSUER binds the ring to its creator).
pub(super) struct Ring {
    // Field order matters: the io_uring is dropped first, ending the kernel's use of the
    // buffer ring and of every op's memory, which are freed after it.
    uring: IoUring,
    pub(super) bufs: BufRing,
    pub(super) ops: Ops,
    mode: Mode,
}

impl Ring {
    /// Set up a ring as `setup` asks (the best flags the kernel accepts, by default).
    pub(super) fn new(setup: UringSetup) -> io::Result<Ring> {
        Ring::with_sizes(setup, SQ_ENTRIES, CQ_ENTRIES, BUF_COUNT, BUF_SIZE)
    }

    pub(super) fn with_sizes(
        setup: UringSetup,
        sq: u32,
        cq: u32,
        buf_count: u16,
        buf_size: u32,
    ) -> io::Result<Ring> {
        let (uring, mode) = build(setup, sq, cq)?;
        let bufs = BufRing::new(&uring.submitter(), buf_count, buf_size)?;
        // A registered ring fd (IORING_REGISTER_RING_FDS) would save a descriptor lookup
        // per enter, but io-uring 0.7 keeps it in a `Submitter` value that `submitter()`
        // recreates on every call, so it is not used.
        Ok(Ring {
            uring,
            bufs,
            ops: Ops::default(),
            mode,
        })
    }

    /// Give up on the ops still in flight: their memory (send buffers, the provided
    /// buffers) is never freed, since the kernel cancels a closed ring's work only after
    /// `close` returned and may still write into it. Called when the exit drain timed out.
    pub(super) fn abandon_in_flight(&mut self) {
        std::mem::forget(std::mem::take(&mut self.ops));
        self.bufs.leak();
    }

    /// How the ring was set up.
    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// The underlying io_uring (for probing).
    pub(super) fn uring(&self) -> &IoUring {
        &self.uring
    }

    /// Give the ring a table of `slots` direct descriptors, all free (sparse registration).
    /// The kernel refuses more than the soft RLIMIT_NOFILE (EMFILE).
    pub(super) fn register_table(&self, slots: u32) -> io::Result<()> {
        self.uring.submitter().register_files_sparse(slots)
    }

    /// Store `op` in the table and queue its entry; it reaches the kernel with the next
    /// [`Ring::wait`] (or earlier, when the submission queue is full).
    pub(super) fn submit(&mut self, op: Op) -> io::Result<UserData> {
        // The entry points into heap memory the op owns (behind its boxes and vectors),
        // which stays where it is when the op moves into the table.
        let entry = op.entry();
        let user_data = self.ops.insert(op);
        let entry = entry.user_data(user_data);
        for _ in 0..2 {
            // SAFETY: the memory `entry` points to (a send's bytes, or its message header and
            // the vector it names; the wake-up counter, an accept's address buffer, a socket
            // option's value; a receive points to none) is heap memory owned by the op now
            // stored in `self.ops`, which
            // keeps it until the op's final completion is processed (`Ops::complete`) or the
            // ring is dropped after the io_uring (field order). The sockets it names stay open
            // until the last op on them completed: the worker closes a connection's socket
            // (or direct descriptor) only when its op count is zero, a listener only after
            // its accept ops ended, and the eventfd outlives the ring.
            let pushed = unsafe { self.uring.submission().push(&entry) };
            if pushed.is_ok() {
                return Ok(user_data);
            }
            // The queue is full: hand what is queued to the kernel, then retry (with the
            // buffers recycled so far published, for the receives among the entries).
            self.bufs.publish();
            if let Err(e) = self.uring.submit() {
                if !is_transient(&e) {
                    self.ops.complete(user_data);
                    return Err(e);
                }
            }
        }
        self.ops.complete(user_data);
        Err(io::Error::other("submission queue stays full"))
    }

    /// Submit everything queued, then wait for at least one completion, or until
    /// `timeout`. EINTR, ETIME and EBUSY (completion overflow) just return.
    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.bufs.publish();
        let submitter = self.uring.submitter();
        let result = match timeout {
            Some(timeout) => {
                let ts = Timespec::from(timeout);
                let args = SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(1, &args)
            }
            None => submitter.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Move up to `batch.capacity()` completions into `batch`.
    pub(super) fn completions(&mut self, batch: &mut Vec<cqueue::Entry>) {
        batch.clear();
        let room = batch.capacity().max(1);
        batch.extend(self.uring.completion().take(room));
    }
}

/// Errors of io_uring_enter that only mean "look at the completion queue and go round".
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR) | Some(libc::ETIME) | Some(libc::EBUSY) | Some(libc::EAGAIN)
    )
}

/// Build a ring, falling back from DEFER_TASKRUN to COOP_TASKRUN to a plain ring when the
/// kernel refuses the flags (EINVAL); `setup` may start lower down that list.
fn build(setup: UringSetup, sq: u32, cq: u32) -> io::Result<(IoUring, Mode)> {
    let refused = |e: &io::Error| e.raw_os_error() == Some(libc::EINVAL);
    if setup == UringSetup::Plain {
        return Ok((IoUring::builder().setup_cqsize(cq).build(sq)?, Mode::Plain));
    }
    if setup == UringSetup::CoopTaskrun {
        return Ok((
            IoUring::builder()
                .setup_coop_taskrun()
                .setup_submit_all()
                .setup_cqsize(cq)
                .build(sq)?,
            Mode::CoopTaskrun,
        ));
    }
    match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_submit_all()
        .setup_cqsize(cq)
        .build(sq)
    {
        Ok(ring) => return Ok((ring, Mode::DeferTaskrun)),
        Err(e) if refused(&e) => {}
        Err(e) => return Err(e),
    }
    match IoUring::builder()
        .setup_coop_taskrun()
        .setup_submit_all()
        .setup_cqsize(cq)
        .build(sq)
    {
        Ok(ring) => return Ok((ring, Mode::CoopTaskrun)),
        Err(e) if refused(&e) => {}
        Err(e) => return Err(e),
    }
    Ok((IoUring::builder().setup_cqsize(cq).build(sq)?, Mode::Plain))
}
