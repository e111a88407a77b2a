//! Sessions, their send queues (outboxes) and the handle that sends to them from any thread.
//!
//! A [`Session`] is a cheap clone of an `Arc`. Its outbox is a queue of byte chunks
//! ([`Chunks`]) behind a mutex: a whole message is appended under the lock, so messages
//! from different threads never interleave and messages from one thread stay in order.
//! Copied sends coalesce into one owned chunk; a [`SharedMessage`] is queued by reference. The driver that owns the socket
//! drains the outbox; a sender on another thread wakes it through the session's [`Owner`].

use crate::chunks::{Chunks, SharedMessage, MAX_SLICES};
use crate::close::CloseReason;
use crate::stats::Counters;
use std::cell::Cell;
use std::fmt;
use std::io::IoSlice;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Identifies a session for the life of the process.
///
/// Ids come from one 64-bit counter and are never reused, which is stronger than a slot
/// index with a generation: a stale id can never name a newer session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// The next unused id.
    pub(crate) fn next() -> SessionId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a send was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed or closing; nothing more is accepted.
    #[error("session is closed")]
    Closed,
    /// The send queue would pass its byte limit. The session is being closed with
    /// [`CloseReason::SendQueueFull`].
    #[error("send queue is full; the session is being closed")]
    QueueFull,
}

/// How a close was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseRequest {
    /// Send what is queued, then close.
    Graceful(CloseReason),
    /// Close now, dropping what is queued.
    Abort(CloseReason),
}

impl CloseRequest {
    pub(crate) fn reason(self) -> CloseReason {
        match self {
            CloseRequest::Graceful(r) | CloseRequest::Abort(r) => r,
        }
    }
}

/// The driver side of a session: told when the session needs its attention.
pub(crate) trait Owner: Send + Sync {
    /// The session has new output or a close request; the caller holds its `outbox`
    /// locked (an owner that keeps its state there, [`Outbox::threads`], may change it).
    /// Return `true` if the session was queued for the owner (the outbox then marks itself
    /// scheduled until the owner takes it), `false` if the owner will look without being
    /// told.
    fn schedule(&self, session: &Session, outbox: &mut Outbox) -> bool;

    /// The counters of the worker that owns the session (kept here, not in every session).
    fn counters(&self) -> &Counters;
}

/// A session's queued output. Drivers lock it through [`Session::outbox`].
///
/// Sizes are `u32`: the queue is bounded by its limit, which is at most 4 GiB, and every
/// byte of a session's fixed cost is paid once per connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Queued bytes, oldest first.
    queue: Chunks,
    /// Bytes the driver took out (an io_uring send in flight, a blocking write under way).
    in_flight: u32,
    limit: u32,
    /// The session sits in its owner's queue already.
    scheduled: bool,
    close: Option<CloseRequest>,
    closed: bool,
    /// The blocking driver's state of the session; untouched by every other driver. Here
    /// so that the outbox's lock guards it: its two threads wait on condition variables
    /// paired with that lock.
    pub(crate) threads: Threads,
}

/// What the two threads of a thread-per-connection session (the blocking driver) are
/// doing. It lives in the outbox, so reading or changing it takes the outbox's lock (a
/// `&Outbox` or `&mut Outbox`), the same lock the threads wait with; the driver describes
/// the transitions (`model/blocking/link.rs`). Three bytes, which take a session's shared
/// allocation from 112 to 120 bytes: still one 128-byte malloc chunk.
///
/// At most one thread is ever inside `send`: each enters [`WriterPhase::Sending`] or
/// [`ReaderPhase::Sending`] only while the other is not sending.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Threads {
    pub(crate) writer: WriterPhase,
    pub(crate) reader: ReaderPhase,
    /// The reader discarded input (the session is closing) since the lingering writer last
    /// looked: the peer is still sending.
    pub(crate) heard: bool,
}

/// The blocking driver's writer thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum WriterPhase {
    /// Awake, outside `send`: it looks at the outbox before it sleeps again, so nothing
    /// needs to wake it. Also its state before it first runs.
    #[default]
    Running,
    /// Asleep until there is output, a close request, or the reader is done.
    Waiting,
    /// Asleep while the reader writes inline: the reader wakes it when its write ends (and
    /// whatever wakes a `Waiting` writer wakes it too).
    Deferred,
    /// Inside `send`, with the lock released.
    Sending,
    /// Everything is written and the FIN sent; asleep (a bounded while) until the reader
    /// is done, an abort, or the linger rule allows the close.
    Lingering,
    /// Ended, or about to: it does not write again.
    Done,
}

/// The blocking driver's reader thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ReaderPhase {
    /// In `recv`, in the handler, or about to be: it looks at the outbox before it reads
    /// again, so nothing needs to wake it.
    #[default]
    Reading,
    /// Writing the handler's output inline, inside `send`, with the lock released.
    Sending,
    /// Asleep until the output drains to the low-water mark, a close request, or the
    /// writer's end (back-pressure).
    Paused,
    /// Reading is over for good (end of stream, an error, an abort, the writer's end).
    Done,
}

impl Outbox {
    fn new(limit: usize) -> Outbox {
        Outbox {
            queue: Chunks::default(),
            in_flight: 0,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            scheduled: false,
            close: None,
            closed: false,
            threads: Threads::default(),
        }
    }

    /// Whether bytes wait to be written.
    pub(crate) fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Fill `out` with the bytes waiting to be written, oldest first, as far as it has
    /// room (at most [`MAX_SLICES`] are worth it); returns how many slices it filled.
    pub(crate) fn pending_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        self.queue.slices(out)
    }

    /// Bytes queued or in flight: what counts against the limit.
    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.in_flight as usize
    }

    /// `n` bytes of the pending ones were written.
    pub(crate) fn consume(&mut self, n: usize) {
        // A drained queue gives its memory back: an idle session then costs no buffer, for
        // one small allocation on the next send (`cargo bench --bench send_queue`).
        self.queue.advance(n);
    }

    /// Move every pending byte out, for a driver that writes outside the lock (an owned
    /// io_uring or overlapped send, a blocking write). The queue is left empty and holding
    /// no memory. The bytes count against the limit until [`Outbox::finish`].
    pub(crate) fn take(&mut self) -> Chunks {
        let out = self.queue.take();
        self.in_flight += out.len() as u32;
        out
    }

    /// `n` bytes taken by [`Outbox::take`] are done with (written, or dropped on close).
    pub(crate) fn finish(&mut self, n: usize) {
        debug_assert!(n <= self.in_flight as usize);
        self.in_flight -= n as u32;
    }

    /// The close asked for, if any.
    pub(crate) fn close_request(&self) -> Option<CloseRequest> {
        self.close
    }

    /// Ask for a close from inside the driver (idle timeout, shutdown). An abort overrides
    /// a graceful request; the first reason of each kind is kept.
    pub(crate) fn request_close(&mut self, request: CloseRequest) {
        match (self.close, request) {
            (None, r) => self.close = Some(r),
            (Some(CloseRequest::Graceful(_)), r @ CloseRequest::Abort(_)) => self.close = Some(r),
            _ => {}
        }
    }

    /// After a driver wrote what it could: whether the session ends now, and why. With
    /// nothing queued or in flight, a graceful close request ends it, and so does a peer
    /// that closed its side (`peer_closed`). That end is recorded here, under the lock, so
    /// a send racing with it fails with [`SendError::Closed`] instead of being accepted and
    /// then dropped with the session. Abort requests are the driver's to check first.
    pub(crate) fn drained_end(&mut self, peer_closed: bool) -> Option<CloseReason> {
        if self.len() > 0 {
            return None;
        }
        match self.close {
            Some(CloseRequest::Graceful(reason)) => Some(reason),
            Some(CloseRequest::Abort(_)) => None,
            None if peer_closed => {
                self.close = Some(CloseRequest::Graceful(CloseReason::PeerClosed));
                Some(CloseReason::PeerClosed)
            }
            None => None,
        }
    }

    /// The owner took the session from its queue.
    pub(crate) fn unschedule(&mut self) {
        self.scheduled = false;
    }

    /// The session is gone: refuse every later send and free the queue.
    pub(crate) fn mark_closed(&mut self) {
        self.closed = true;
        self.queue = Chunks::default();
    }

    /// The session was closed by its driver.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }
}

/// A peer address in 16 bytes instead of `SocketAddr`'s 32: IPv4 inline, the rarer IPv6
/// boxed.
enum Peer {
    V4(SocketAddrV4),
    V6(Box<SocketAddrV6>),
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(v4) => Peer::V4(v4),
            SocketAddr::V6(v6) => Peer::V6(Box::new(v6)),
        }
    }
}

impl Peer {
    fn get(&self) -> SocketAddr {
        match self {
            Peer::V4(v4) => SocketAddr::V4(*v4),
            Peer::V6(v6) => SocketAddr::V6(**v6),
        }
    }
}

/// Bits of a session's input state. None set: input flows, the driver reads the socket
/// and calls the handler.
///
/// [`Session::pause_input`]: the driver neither reads nor calls the handler.
const INPUT_PAUSED: u8 = 1;
/// [`Session::resume_input`] after a pause: the driver has yet to hand the handler what it
/// left unconsumed ([`Session::take_resumed`]).
const INPUT_RESUMED: u8 = 2;
/// A pause happened since the driver last asked ([`Session::take_pause_noted`]): it tells
/// a pause and a resume that both came during one handler call from no pause at all.
const INPUT_NOTED: u8 = 4;

/// What every handle of one session shares: 120 bytes with the `Arc`'s counts, allocated
/// once per connection.
struct Shared {
    id: SessionId,
    peer: Peer,
    /// Driver-private: where the owner keeps the connection (a slab index, a ring slot).
    slot: u32,
    /// Whether the application paused its input: the `INPUT_*` bits. In the padding after
    /// `slot`: it costs the session no byte.
    input: AtomicU8,
    owner: Arc<dyn Owner>,
    outbox: Mutex<Outbox>,
}

/// A connection, as the application sees it: an id, a peer address, and a send queue that
/// any thread may write to. Cloning is one atomic increment.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .field("peer", &self.peer())
            .finish()
    }
}

thread_local! {
    /// The session whose callback runs on this thread right now, if any. Its driver
    /// services it when the callback returns, so sends to it need no wake-up.
    static IN_CALLBACK: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Marks the session whose callback is running; unmarks on drop.
pub(crate) struct CallbackScope {
    previous: *const (),
}

impl CallbackScope {
    pub(crate) fn enter(session: &Session) -> CallbackScope {
        let ptr = Arc::as_ptr(&session.shared) as *const ();
        CallbackScope {
            previous: IN_CALLBACK.with(|c| c.replace(ptr)),
        }
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.previous));
    }
}

impl Session {
    /// A new session in `owner`'s `slot` (a slab key: slabs never hold 2^32 sessions).
    pub(crate) fn new(
        peer: SocketAddr,
        slot: usize,
        owner: Arc<dyn Owner>,
        send_queue_limit: usize,
    ) -> Session {
        Session {
            shared: Arc::new(Shared {
                id: SessionId::next(),
                peer: peer.into(),
                slot: u32::try_from(slot).expect("a slot fits in u32"),
                input: AtomicU8::new(0),
                owner,
                outbox: Mutex::new(Outbox::new(send_queue_limit)),
            }),
        }
    }

    /// This session's id.
    pub fn id(&self) -> SessionId {
        self.shared.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.shared.peer.get()
    }

    /// Queue `message` for sending. Bytes of one call are sent contiguously, after
    /// everything this thread queued before.
    ///
    /// # Delivery
    ///
    /// `Ok` means the bytes will reach the peer, unless the peer resets the connection
    /// or the session is aborted: by [`Session::abort`] or [`Session::reject`], by a full
    /// send queue, by the idle timeout, by a socket error, or by a shutdown whose deadline
    /// passes with the bytes still queued. A graceful end never drops them: once the
    /// session has decided to end in order ([`Session::close`], a graceful shutdown, or
    /// the peer's FIN with nothing left to send), `send` returns [`SendError::Closed`]
    /// instead of `Ok`.
    pub fn send(&self, message: &[u8]) -> Result<(), SendError> {
        self.send_vectored(&[message])
    }

    /// Queue the concatenation of `parts` as one message (a header and a body, say).
    pub fn send_vectored(&self, parts: &[&[u8]]) -> Result<(), SendError> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        self.enqueue(size, |queue| queue.push_copy(parts, size))
    }

    /// Queue `message` without copying it: the queue keeps a reference to the same bytes,
    /// which the driver writes from there. For a broadcast: encode the packet once, then
    /// queue it to every member ([`SharedMessage`]). Delivery, order and the limit are as
    /// for [`Session::send`]. A message under 128 bytes is copied after all: for so few
    /// bytes a copy costs less than the reference (measured in the `send_queue` bench).
    pub fn send_shared(&self, message: &SharedMessage) -> Result<(), SendError> {
        self.enqueue(message.len(), |queue| queue.push_shared(message))
    }

    /// Queue `size` bytes with `push`, unless the session is closing or the queue would
    /// pass its limit.
    fn enqueue(&self, size: usize, push: impl FnOnce(&mut Chunks)) -> Result<(), SendError> {
        let mut outbox = self.outbox();
        if outbox.closed || outbox.close.is_some() {
            return Err(SendError::Closed);
        }
        if outbox.len() + size > outbox.limit as usize {
            outbox.close = Some(CloseRequest::Abort(CloseReason::SendQueueFull));
            self.schedule(&mut outbox);
            return Err(SendError::QueueFull);
        }
        push(&mut outbox.queue);
        let counters = self.shared.owner.counters();
        counters.message_out();
        counters.queue_depth(outbox.len());
        self.schedule(&mut outbox);
        Ok(())
    }

    /// Close after everything queued so far is sent. Later sends fail.
    ///
    /// The peer receives every byte queued before, then end of stream, even while it keeps
    /// sending: from now on what arrives is read and discarded (no more
    /// [`crate::Handler::data`] calls), and after the FIN the socket keeps reading until
    /// the peer's own FIN, for at most [`crate::Config::linger_timeout`] (closing with
    /// unread input would make the kernel reset the connection and drop unsent output).
    /// [`crate::Handler::closed`] runs once the output is out and the FIN sent (with the
    /// blocking model, once the linger is over too).
    pub fn close(&self) {
        self.request(CloseRequest::Graceful(CloseReason::Local));
    }

    /// Close now, dropping whatever is queued.
    pub fn abort(&self) {
        self.request(CloseRequest::Abort(CloseReason::Local));
    }

    /// Close now because the peer sent something malformed ([`CloseReason::ProtocolError`]).
    pub fn reject(&self) {
        self.request(CloseRequest::Abort(CloseReason::ProtocolError));
    }

    /// Close after everything queued so far is sent, as [`Session::close`], counted and
    /// reported with the application's own `reason` (say [`CloseReason::LoginTimeout`]).
    pub fn close_for(&self, reason: CloseReason) {
        self.request(CloseRequest::Graceful(reason));
    }

    /// Close now, dropping whatever is queued, as [`Session::abort`], counted and reported
    /// with the application's own `reason` (say [`CloseReason::RateLimited`]).
    pub fn abort_for(&self, reason: CloseReason) {
        self.request(CloseRequest::Abort(reason));
    }

    /// Stop taking input from the peer until [`Session::resume_input`]: the driver stops
    /// reading the socket and calls [`crate::Handler::data`] no more, so a peer that keeps
    /// sending is slowed by its own TCP window, not buffered in the server's memory. What
    /// the handler left unconsumed stays buffered, and so does what was already on its
    /// way (an io_uring or overlapped receive in flight).
    ///
    /// For an application that hands input to other threads: pause a session whose
    /// requests pile up, resume it once they are handled. Called inside `data` of this
    /// session, it takes effect when `data` returns; from any other thread, as soon as
    /// the session's driver looks (it is woken to). Output, closing and the idle timeout
    /// are unaffected: a paused session still receives what is sent to it.
    pub fn pause_input(&self) {
        let before = self
            .shared
            .input
            .fetch_or(INPUT_PAUSED | INPUT_NOTED, Ordering::AcqRel);
        if before & INPUT_PAUSED != 0 {
            return;
        }
        let mut outbox = self.outbox();
        if !outbox.closed {
            self.schedule(&mut outbox);
        }
    }

    /// Take input again after [`Session::pause_input`]: the driver reads again, and first
    /// calls [`crate::Handler::data`] with whatever the handler left unconsumed, even if
    /// nothing new arrives. Any thread may call it; it does nothing on a session whose
    /// input is not paused.
    pub fn resume_input(&self) {
        let resumed =
            self.shared
                .input
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                    (state & INPUT_PAUSED != 0).then_some((state & !INPUT_PAUSED) | INPUT_RESUMED)
                });
        if resumed.is_err() {
            return;
        }
        let mut outbox = self.outbox();
        if !outbox.closed {
            self.schedule(&mut outbox);
        }
    }

    /// Whether the application paused this session's input ([`Session::pause_input`]).
    pub fn input_paused(&self) -> bool {
        self.shared.input.load(Ordering::Acquire) & INPUT_PAUSED != 0
    }

    /// For the driver, when it decides whether to read: if the input was resumed since it
    /// last asked, clear the mark and return `true` (the driver then hands the handler
    /// what it left unconsumed: [`crate::runtime::conn::Conn::redeliver`]).
    pub(crate) fn take_resumed(&self) -> bool {
        self.take_bit(INPUT_RESUMED)
    }

    /// For [`crate::runtime::conn::Conn`], around a handler call: whether a pause came
    /// since it last asked (clearing the mark), even one resumed since.
    pub(crate) fn take_pause_noted(&self) -> bool {
        self.take_bit(INPUT_NOTED)
    }

    /// Clear `bit` of the input state and say whether it was set. A plain load first: these
    /// run on every delivery and every service, where the bit is almost never set, and a
    /// load costs no locked read-modify-write.
    fn take_bit(&self, bit: u8) -> bool {
        self.shared.input.load(Ordering::Acquire) & bit != 0
            && self.shared.input.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Whether the session was closed or is closing.
    pub fn is_closed(&self) -> bool {
        let outbox = self.outbox();
        outbox.closed || outbox.close.is_some()
    }

    /// Bytes queued and not yet handed to the kernel.
    pub fn queued(&self) -> usize {
        self.outbox().len()
    }

    fn request(&self, request: CloseRequest) {
        let mut outbox = self.outbox();
        if outbox.closed {
            return;
        }
        outbox.request_close(request);
        self.schedule(&mut outbox);
    }

    fn schedule(&self, outbox: &mut Outbox) {
        if outbox.scheduled {
            return;
        }
        let current = IN_CALLBACK.with(|c| c.get());
        if current == Arc::as_ptr(&self.shared) as *const () {
            return;
        }
        if self.shared.owner.schedule(self, outbox) {
            outbox.scheduled = true;
        }
    }

    /// Lock the send queue (drivers only).
    pub(crate) fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding this lock cannot leave the outbox half-written (every
        // mutation is a single call), so a poisoned lock is still consistent.
        self.shared
            .outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The counters of the worker that owns this session.
    pub(crate) fn counters(&self) -> &Counters {
        self.shared.owner.counters()
    }

    /// The driver's slot for this session.
    pub(crate) fn slot(&self) -> usize {
        self.shared.slot as usize
    }

    /// Whether `self` and `other` are the same session.
    pub fn same(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

/// Owner of a [`DetachedSession`]: nobody to wake.
struct Detached(Counters);

impl Owner for Detached {
    fn schedule(&self, _session: &Session, _outbox: &mut Outbox) -> bool {
        false
    }

    fn counters(&self) -> &Counters {
        &self.0
    }
}

/// A session attached to no server and no socket: for unit tests of a [`crate::Handler`]
/// (call its methods with [`DetachedSession::session`], then look at what it sent) and for
/// benchmarks of the send queue. Sends, limits and close requests behave as on a server.
///
/// ```
/// use iomodels_engine::{echo::Echo, CloseReason, DetachedSession, Handler, SendError};
///
/// let detached = DetachedSession::new("127.0.0.1:9".parse().unwrap(), 8);
/// let mut state = Echo.opened(detached.session());
/// assert_eq!(Echo.data(&mut state, detached.session(), b"ping"), 4);
/// let mut wire = Vec::new();
/// assert_eq!(detached.drain_into(&mut wire), 4);
/// assert_eq!(wire, b"ping");
/// // Past the limit the send fails and the session is marked for closing.
/// assert_eq!(detached.session().send(b"too long!"), Err(SendError::QueueFull));
/// assert_eq!(detached.close_requested(), Some(CloseReason::SendQueueFull));
/// ```
#[derive(Debug)]
pub struct DetachedSession {
    session: Session,
}

impl DetachedSession {
    /// A session "from" `peer` whose send queue holds at most `send_queue_limit` bytes.
    pub fn new(peer: SocketAddr, send_queue_limit: usize) -> DetachedSession {
        DetachedSession {
            session: Session::new(
                peer,
                0,
                Arc::new(Detached(Counters::default())),
                send_queue_limit,
            ),
        }
    }

    /// The session, to hand to a handler or to clone into other threads.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Move everything queued so far to the end of `out`, as a driver would write it.
    /// Returns the number of bytes moved.
    pub fn drain_into(&self, out: &mut Vec<u8>) -> usize {
        let mut outbox = self.session.outbox();
        let mut moved = 0;
        while outbox.has_pending() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = outbox.pending_slices(&mut slices);
            let mut written = 0;
            for slice in &slices[..n] {
                out.extend_from_slice(slice);
                written += slice.len();
            }
            outbox.consume(written);
            moved += written;
        }
        moved
    }

    /// The close asked for (by the application, or by an overflowing queue), if any.
    pub fn close_requested(&self) -> Option<CloseReason> {
        self.session
            .outbox()
            .close_request()
            .map(CloseRequest::reason)
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn a_session_allocation_stays_small() {
        // The Arc's two counts plus the shared part: 120 bytes, still one 128-byte malloc chunk.
        assert!(
            std::mem::size_of::<Shared>() + 16 <= 120,
            "{}",
            std::mem::size_of::<Shared>()
        );
    }

    #[test]
    fn peers_of_both_families_come_back_unchanged() {
        for addr in ["127.0.0.1:9", "[::1]:7000", "[fe80::1%3]:443"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(DetachedSession::new(addr, 8).session().peer(), addr);
        }
    }
}
