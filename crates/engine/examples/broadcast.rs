//! # Broadcast: push to a group of sessions from a thread of your own
//!
//! A game server talks to players from places that are not the I/O thread reading them: a
//! timer, a match thread, an admin console. This example keeps a group of every open
//! session and has a separate thread send to all of them. It shows:
//!
//! - **Membership follows the session's life.** A session joins the group in
//!   [`Handler::opened`] and leaves in [`Handler::closed`]. The group holds [`Session`]
//!   handles: clones of an `Arc`, cheap to copy and `Send + Sync`.
//! - **[`Session::send`] works from any thread.** It appends the whole message to the
//!   session's send queue under a short lock and wakes the I/O thread that owns the socket;
//!   it never blocks on the network. [`Session::send_shared`] does the same with bytes
//!   encoded once for the whole group ([`SharedMessage`]): each queue holds a reference.
//! - **What a failed send means**, and that the answer is never to wait or retry:
//!   - [`SendError::Closed`]: the session is ending (its peer left, or someone closed it).
//!     Its `closed` callback is coming and will take it out of the group.
//!   - [`SendError::QueueFull`]: the peer reads slower than we send, and the bytes queued
//!     for it passed [`Config::send_queue_limit`]. The engine is already dropping the
//!     connection ([`CloseReason::SendQueueFull`]); take it out of the group now, so that
//!     one stalled client never slows the others down or holds memory.
//!
//! ```sh
//! cargo run -p iomodels-engine --example broadcast -- --model poll 127.0.0.1:7000
//! nc 127.0.0.1 7000   # in other terminals: each prints the news once a second
//! cargo run -p iomodels-engine --example broadcast -- --self-test --model uring
//! ```
//!
//! Options: `--model NAME` (blocking, polling, select, poll, signal, epoll, uring; epoll by
//! default), `--seconds N` (stop gracefully after N seconds), `--self-test` (start on a
//! free port, check the behaviour with real sockets, stop; exit 0 if it passed, 77 if the
//! kernel cannot run the model), and the address (`127.0.0.1:0` by default: a free port,
//! printed on standard error).

mod common;

use common::{Args, Outcome};
use iomodels_engine::{CloseReason, Config, Handler, SendError, Server, Session, SharedMessage};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const EXAMPLE: &str = "broadcast";

/// Every open session. Shared by the handler (which adds and removes members) and the
/// broadcasting thread (which sends to them).
#[derive(Default)]
struct Group {
    members: Mutex<Vec<Session>>,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, Vec<Session>> {
        // A panic elsewhere while holding the lock leaves a usable list.
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(&self, session: &Session) {
        self.lock().push(session.clone());
    }

    fn leave(&self, session: &Session) {
        self.lock().retain(|member| !member.same(session));
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The members now. Sending happens on this copy, outside the lock, so that the I/O
    /// threads adding and removing members never wait for a broadcast.
    fn snapshot(&self) -> Vec<Session> {
        self.lock().clone()
    }
}

/// What one broadcast did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Delivery {
    /// Members that will receive the message.
    queued: usize,
    /// Members that were ending already: their `closed` callback removes them.
    closed: usize,
    /// Members cut off because they fell too far behind: removed from the group here.
    too_slow: usize,
}

/// Send `message` to every member of `group`. Callable from any thread.
///
/// The bytes go into one [`SharedMessage`] first, and every member's queue holds a
/// reference to it: a broadcast of a 4 KiB world update to 1,000 players is one copy, not
/// 1,000. (Below 128 bytes the engine copies after all: cheaper than the reference.)
fn broadcast(group: &Group, message: &[u8]) -> Delivery {
    let mut delivery = Delivery::default();
    let message = SharedMessage::from(message);
    for member in group.snapshot() {
        match member.send_shared(&message) {
            Ok(()) => delivery.queued += 1,
            // Ending already; nothing to do, `closed` will run for it.
            Err(SendError::Closed) => delivery.closed += 1,
            // The engine is dropping it: forget it now rather than copy more into it.
            Err(SendError::QueueFull) => {
                group.leave(&member);
                delivery.too_slow += 1;
            }
            // `SendError` may grow new reasons; each means "this member gets nothing".
            Err(_) => delivery.closed += 1,
        }
    }
    delivery
}

/// The handler only keeps the group up to date; what clients send is read and ignored.
struct Members {
    group: Arc<Group>,
}

impl Handler for Members {
    type State = ();

    fn opened(&self, session: &Session) {
        self.group.join(session);
    }

    fn data(&self, _: &mut (), _: &Session, data: &[u8]) -> usize {
        data.len()
    }

    fn closed(&self, _: (), session: &Session, reason: CloseReason) {
        self.group.leave(session);
        eprintln!("{EXAMPLE}: {} left ({reason})", session.peer());
    }
}

fn main() {
    let args = Args::parse(EXAMPLE);
    let mut config = Config::new(args.model, args.addr);
    // How far behind a member may fall before it is cut off (1 MiB by default).
    config.send_queue_limit = 256 * 1024;
    let group = Arc::new(Group::default());
    let server = common::start(
        EXAMPLE,
        config,
        Members {
            group: group.clone(),
        },
    );
    if args.self_test {
        common::exit_with(EXAMPLE, self_test(server, &group));
    }

    // The news thread: once a second, tell everyone the time. It needs only the group.
    let stop = Arc::new(AtomicBool::new(false));
    let news = std::thread::spawn({
        let (group, stop) = (group.clone(), stop.clone());
        move || {
            let mut second = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                second += 1;
                let line = format!("news: {second} s up, {} listening\n", group.len());
                let delivery = broadcast(&group, line.as_bytes());
                if delivery.too_slow > 0 {
                    eprintln!("{EXAMPLE}: cut off {} slow members", delivery.too_slow);
                }
            }
        }
    });
    // Stop the news before the server: once the server's shutdown begins every send is
    // refused, so a last message sent after it would be lost.
    args.wait(EXAMPLE);
    stop.store(true, Ordering::Relaxed);
    let _ = news.join();
    broadcast(&group, b"news: the server is shutting down\n");
    if let Err(error) = server.stop() {
        eprintln!("{EXAMPLE}: {}", common::describe(&error));
        std::process::exit(1);
    }
}

/// Start to finish with real sockets: three readers get every message in order; a member
/// that leaves is removed and its stale handle refuses sends; a member that never reads is
/// cut off with `QueueFull`.
fn self_test(server: Server<Members>, group: &Arc<Group>) -> Outcome {
    let addr = server.local_addr();
    let handle = server.handle();

    // 1. Three members, and a hundred numbered messages sent from a thread of our own.
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(common::connect(addr)?);
    }
    if !common::wait_until(|| group.len() == 3) {
        return Err(format!("3 clients connected, {} members", group.len()).into());
    }
    let messages: Vec<String> = (0..100).map(|i| format!("news {i}\n")).collect();
    let sender = std::thread::spawn({
        let (group, messages) = (group.clone(), messages.clone());
        move || {
            messages
                .iter()
                .map(|message| broadcast(&group, message.as_bytes()))
                .collect::<Vec<_>>()
        }
    });
    let deliveries = sender.join().map_err(|_| "the sending thread panicked")?;
    let all_queued = Delivery {
        queued: 3,
        ..Delivery::default()
    };
    if let Some(bad) = deliveries.iter().find(|d| **d != all_queued) {
        return Err(format!("a broadcast to 3 members did {bad:?}").into());
    }
    let expected = messages.concat().into_bytes();
    for reader in &mut readers {
        let mut got = vec![0; expected.len()];
        reader.read_exact(&mut got)?;
        if got != expected {
            return Err("a member received the news changed or out of order".into());
        }
    }

    // 2. A member leaves: `closed` removes it, and a handle kept from before refuses sends.
    let leaving = readers.remove(0);
    let leaving_addr = leaving.local_addr()?;
    let stale = group
        .snapshot()
        .into_iter()
        .find(|member| member.peer() == leaving_addr)
        .ok_or("the first client is not a member")?;
    drop(leaving);
    if !common::wait_until(|| group.len() == 2) {
        return Err("a member that disconnected is still in the group".into());
    }
    if stale.send(b"anyone there?\n") != Err(SendError::Closed) {
        return Err("a send to a closed session was not refused with Closed".into());
    }
    drop(readers);
    if !common::wait_until(|| group.len() == 0) {
        return Err("members that disconnected are still in the group".into());
    }

    // 3. A member that never reads: once the kernel's buffers are full its queue grows
    //    to the limit, and the broadcast that would pass it gets QueueFull.
    let _never_reads = common::connect(addr)?;
    if !common::wait_until(|| group.len() == 1) {
        return Err("the slow client did not join".into());
    }
    let chunk = vec![b'x'; 64 * 1024];
    let mut cut_off = false;
    // At most 100 MiB: far more than loopback socket buffers hold.
    for _ in 0..1600 {
        let delivery = broadcast(group, &chunk);
        if delivery.too_slow == 1 {
            cut_off = true;
            break;
        }
        if delivery.queued != 1 {
            return Err(format!("a broadcast to the slow member did {delivery:?}").into());
        }
    }
    if !cut_off {
        return Err("100 MiB to a client that never reads, and no QueueFull".into());
    }
    if group.len() != 0 {
        return Err("the member cut off is still in the group".into());
    }
    if !common::wait_until(|| handle.stats().closed_for(CloseReason::SendQueueFull) == 1) {
        return Err(format!("no session closed for a full queue: {:?}", handle.stats()).into());
    }

    server.stop()?;
    Ok(())
}
