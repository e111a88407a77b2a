//! Blocking sockets, one reader and one writer thread per connection.
//!
//! The first model of the book, and the one its IOCP chapter argues against: every
//! connection gets threads of its own that sleep inside the kernel until their socket is
//! ready, so the code reads like the single-client echo server it grew from.
//!
//! **Syscalls.** One acceptor thread blocks in `accept4` on a blocking listener. Each
//! accepted connection gets a *reader* thread blocked in `recv`, which runs the handler and
//! then writes the reply itself with a blocking `send`, as the book's echo server does, and
//! a *writer* thread that sleeps on a condition variable paired with the session's outbox
//! mutex. The writer serves what the reader cannot: output queued by *other* threads while
//! the reader sleeps in `recv`, and the final flush after the peer's FIN. Whoever writes
//! takes every queued byte out of the outbox and sends it *outside* the lock, so other
//! threads keep queueing meanwhile. The idle timeout is `SO_RCVTIMEO` and `SO_SNDTIMEO`:
//! `recv` fails with `EAGAIN` after that long without data, and `send` after that long
//! without the peer taking a byte (a peer that floods without reading stalls the reply, and
//! with it the reading). Nothing here ever polls: each thread is parked in `accept`, `recv`,
//! `send` or a futex.
//!
//! **One lock.** A session's two threads, and every thread that sends to it, share one
//! mutex: its outbox's. Behind it are the queue, the close request, and what each of the
//! two threads is doing (`session::Threads`: the writer running, waiting, deferred,
//! sending, lingering or done; the reader reading, sending, paused or done). Both threads
//! sleep on condition variables paired with that mutex, so every decision to sleep, to
//! wake the other or to write is taken under the lock that guards what it depends on, and
//! no wake-up is lost. The state is reachable only through the locked outbox, so the
//! compiler checks that rule; `link.rs` lists the transitions. Only one thread is ever
//! inside `send`.
//!
//! **Closing in order.** Once a graceful close is asked for (by the application, or by a
//! shutdown) the reader keeps reading but discards what arrives, and the writer, once
//! everything queued is written, sends the FIN (`shutdown(SHUT_WR)`) and *lingers*: it
//! waits for the reader to see the peer's FIN, or for the peer to acknowledge everything
//! and fall silent (see `timers::Linger`). Closing with unread input would reset the
//! connection and drop output the kernel has not sent yet.
//!
//! **Waking a blocked thread.** A thread blocked in a syscall cannot be told to stop by a
//! flag. `shutdown(SHUT_RD)` makes a blocked `recv` (and, on a listener, `accept`) return;
//! `SO_LINGER 0` + `shutdown(SHUT_RDWR)` also fails a blocked `send`. None of these calls
//! blocks, so they are made on the spot, under the outbox lock. The writer, when it is done
//! (and its linger is over), wakes its reader with `SHUT_RD` (never earlier: data arriving
//! after our FIN on a socket shut for reading makes Linux answer with a reset). Whoever
//! asks for an abort while a thread is inside `send` shuts the socket down at once: the
//! reader, the writer, the shutdown deadline, or any other thread, through
//! [`crate::Session::abort`] or a full send queue (the session's owner is told with the
//! outbox locked). Shutdown stops the listener with `SHUT_RD` and asks every session to
//! close in order; at its deadline it aborts the rest.
//!
//! **Joining.** A thread's stack is freed only once the thread is joined. Each reader
//! joins its writer. A reader that ends leaves its own handle in the registry and joins the
//! one left there by the reader that ended before it; the acceptor joins the last one when
//! the registry is empty at shutdown. At most one finished connection's stack waits to be
//! freed, and [`crate::Server::join`] returns with every thread ended.
//!
//! **Cost.** Two threads, two stacks ([`crate::Config::thread_stack`], 128 KiB by default,
//! of which only the touched pages are resident) and a 16 KiB read buffer per connection;
//! one wake-up per request (the reader's), plus a futex wake of the writer when another
//! thread queues output. Thread creation (two `clone`s and their `mmap`s) is paid
//! per connection.
//!
//! **Limits.** Threads, not descriptors: two per connection against `kernel.threads-max`,
//! `kernel.pid_max` (32768 by default) and `vm.max_map_count` (two mappings per stack). A
//! connection whose threads cannot be created is refused and counted, never half-served.
//! The book puts 10,000 connections at "10-80 GB" of stacks; that is the *reserved* size of
//! 1-8 MB stacks, not what is resident. The driver's tests measure the real figure.
//!
//! **Files.** `acceptor.rs`: accepting, the thread ceiling, shutdown. `link.rs`: what a
//! session's threads share, its state's transitions, its owner. `reader.rs` and
//! `writer.rs`: the two threads.
//!
//! Windows original: blocking sockets (one `CreateThread` per client).

mod acceptor;
mod link;
mod reader;
mod writer;

use crate::config::Model;
use crate::error::Error;
use crate::handler::Handler;
use crate::runtime::Core;
use crate::session::{Session, SessionId};
use crate::sys;
use crate::sys::{AsRaw, RawSock};
use acceptor::{Acceptor, ShutdownWaker};
use link::Link;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

/// The model's name, for errors and logs.
const NAME: Model = Model::Blocking;

/// Lock a mutex, ignoring poison: every structure here stays consistent between calls.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start the acceptor; return once the listener is bound.
pub(crate) fn start<H: Handler>(core: &Arc<Core<H>>) -> Result<crate::runtime::Started, Error> {
    let (listeners, local_addr) = sys::listeners(core.config.addr, 1, core.config.backlog, false)?;
    let Some(listener) = listeners.into_iter().next() else {
        return Err(Error::Worker {
            model: NAME,
            message: "no listener was bound".into(),
        });
    };
    let shared = Arc::new(Shared {
        registry: Mutex::new(Registry {
            listener: Some((listener.raw(), local_addr)),
            conns: HashMap::new(),
            finished: None,
        }),
        changed: Condvar::new(),
    });
    let acceptor = Acceptor::new(core, shared.clone(), listener);
    let thread = thread::Builder::new()
        .name(format!("{NAME}-accept"))
        .spawn(move || acceptor.run())
        .map_err(Error::setup(NAME, "spawning the acceptor thread"))?;
    // Registered last, so that a shutdown always finds the acceptor running (or about to
    // run: it looks at the flag before its first accept).
    core.add_waker(Arc::new(ShutdownWaker(shared)));
    Ok((vec![thread], local_addr))
}

/// What the acceptor, the connection threads and the shutdown waker share.
struct Shared {
    registry: Mutex<Registry>,
    /// Paired with `registry`: signalled when a connection leaves it and when shutdown
    /// begins (the acceptor waits on it while backing off and while draining).
    changed: Condvar,
}

struct Registry {
    /// The listening socket and its address, while the acceptor has it open.
    listener: Option<(RawSock, std::net::SocketAddr)>,
    /// Every live connection. A connection's descriptor stays open for as long as it is
    /// listed here, so the descriptors below may be used under the lock.
    conns: HashMap<SessionId, Entry>,
    /// The reader thread of the connection that left last, for the next one that leaves
    /// (or, at shutdown, the acceptor) to join.
    finished: Option<JoinHandle<()>>,
}

struct Entry {
    session: Session,
    link: Arc<Link>,
    /// The reader thread; the reader joins its writer itself.
    thread: JoinHandle<()>,
}

impl Shared {
    /// The connection `id` ended: take it out of the registry and leave its reader's
    /// handle in its place. Returns the handle left by the reader that left before, for
    /// the caller to join (that reader is past this point: it only closes its socket and
    /// joins its own predecessor).
    fn leave(&self, id: SessionId) -> Option<JoinHandle<()>> {
        let mut registry = lock(&self.registry);
        let previous = match registry.conns.remove(&id) {
            Some(entry) => registry.finished.replace(entry.thread),
            None => None,
        };
        self.changed.notify_all();
        previous
    }
}
