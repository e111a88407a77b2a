//! The chat server: the engine handler, its two modes, and starting it.

use crate::config::{ChatConfig, Mode};
use crate::error::Error;
use crate::stats::{ChatStats, Counters};
use crate::store::UserStore;
use crate::world::World;
use iomodels_engine::{CloseReason, Config, Handler, Server, ServerHandle, Session, Stats};
use iomodels_proto::decode_requests;
use iomodels_proto::Request;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

/// An event for the logic thread.
enum Event {
    Request(Session, Request),
    Closed(Session),
    /// Shutdown: answer `()` on the channel once every event queued before this one has
    /// been applied, and drop every request queued after it.
    Barrier(mpsc::Sender<()>),
}

enum Logic {
    /// The queue to the logic thread and the thread itself.
    Thread {
        queue: Option<mpsc::Sender<Event>>,
        thread: Option<JoinHandle<()>>,
    },
    /// The world, shared by the I/O threads.
    Shared(Arc<Mutex<World>>),
}

/// What the handler shares with the handles of its server: the counters, and what an
/// orderly shutdown needs.
struct Shared {
    counters: Arc<Counters>,
    /// Shutdown began: requests decoded from now on are dropped unanswered.
    stopping: AtomicBool,
    fence: Fence,
}

/// How a shutdown waits for the requests decoded before it.
enum Fence {
    /// Logic mode: a sender for barriers only (the I/O threads use the handler's own).
    /// Taken when the handler drops, so that it never keeps the logic thread alive.
    Queue(Mutex<Option<mpsc::Sender<Event>>>),
    /// I/O mode: the world, whose lock every request is handled under.
    World(Weak<Mutex<World>>),
}

impl Shared {
    /// Stop taking requests, then wait until every request decoded before has been
    /// handled: its answers are in the sessions' send queues.
    fn drain(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.settle();
    }

    /// Wait until every request and close event queued so far has been handled.
    fn settle(&self) {
        match &self.fence {
            Fence::Queue(queue) => {
                let queue = lock(queue).clone();
                let Some(queue) = queue else {
                    // The handler is gone and its logic thread joined: nothing is pending.
                    return;
                };
                let (ack, acked) = mpsc::channel();
                if queue.send(Event::Barrier(ack)).is_ok() {
                    // An error means the logic thread is gone (it panicked): nothing more
                    // will be handled either way.
                    let _ = acked.recv();
                }
            }
            Fence::World(world) => {
                // Every `data` call takes the lock and reads `stopping` under it: once we
                // have held the lock, no call that read it unset is still running.
                if let Some(world) = world.upgrade() {
                    drop(lock(&world));
                }
            }
        }
    }
}

/// Lock `mutex`, through a poison: a panic in the game logic leaves the world usable for
/// the other sessions (each request is applied whole or not at all).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The chat server's engine handler. Decoding happens on the I/O threads; the game logic
/// runs where [`Mode`] says.
///
/// [`start`] runs it in a [`ChatServer`], which shuts down in the right order. A handler
/// given to the engine's [`Server`] directly must be [drained](ChatHandler::drain) before
/// the engine's shutdown, or the answers to requests still queued are lost.
pub struct ChatHandler {
    logic: Logic,
    shared: Arc<Shared>,
}

/// Per-session framing state.
#[derive(Debug, Default)]
pub struct SessionState {
    /// Bytes of an incomplete packet left in the engine's input buffer.
    pending: usize,
    /// The session broke the protocol and is being closed: ignore whatever else arrives.
    rejected: bool,
}

impl ChatHandler {
    /// A handler serving `config`, checking logins with `store`. In logic-thread mode this
    /// starts the logic thread; it ends when the handler is dropped.
    pub fn new(config: ChatConfig, store: Arc<dyn UserStore>) -> Result<ChatHandler, Error> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let mode = config.mode;
        let world = World::new(config, store, counters.clone());
        let (logic, fence) = match mode {
            Mode::Io => {
                let world = Arc::new(Mutex::new(world));
                let fence = Fence::World(Arc::downgrade(&world));
                (Logic::Shared(world), fence)
            }
            Mode::Logic => {
                let (queue, events) = mpsc::channel();
                let thread = std::thread::Builder::new()
                    .name("chat-logic".into())
                    .spawn(move || run_logic(world, events))
                    .map_err(Error::io("spawning the logic thread"))?;
                let fence = Fence::Queue(Mutex::new(Some(queue.clone())));
                let logic = Logic::Thread {
                    queue: Some(queue),
                    thread: Some(thread),
                };
                (logic, fence)
            }
        };
        let shared = Arc::new(Shared {
            counters,
            stopping: AtomicBool::new(false),
            fence,
        });
        Ok(ChatHandler { logic, shared })
    }

    /// The chat's counters now.
    pub fn stats(&self) -> ChatStats {
        self.shared.counters.snapshot()
    }

    /// Stop taking requests and wait until every request decoded so far has been handled,
    /// its answers queued on their sessions; requests decoded from now on are dropped
    /// unanswered (counted in [`ChatStats::dropped`]). Call it before the engine's
    /// graceful shutdown, which then flushes those answers: [`ChatServer::shutdown`] does.
    pub fn drain(&self) {
        self.shared.drain();
    }

    /// Count `n` requests decoded and dropped because shutdown began.
    fn dropped(&self, n: u64) {
        self.shared
            .counters
            .requests
            .fetch_add(n, Ordering::Release);
        self.shared.counters.dropped.fetch_add(n, Relaxed);
    }
}

/// The logic thread: apply events in the order they were queued until every sender is gone.
/// Requests queued after a barrier came after the shutdown began: they are dropped, so
/// that every answer the logic thread sends is sent before the sessions are closed.
fn run_logic(mut world: World, events: mpsc::Receiver<Event>) {
    let mut stopped = false;
    while let Ok(event) = events.recv() {
        match event {
            Event::Request(session, request) => {
                if stopped {
                    world.counters().dropped.fetch_add(1, Relaxed);
                } else {
                    world.request(&session, request);
                }
            }
            Event::Closed(session) => world.closed(&session),
            Event::Barrier(ack) => {
                stopped = true;
                let _ = ack.send(());
            }
        }
    }
}

impl Handler for ChatHandler {
    type State = SessionState;

    fn opened(&self, _: &Session) -> SessionState {
        SessionState::default()
    }

    fn data(&self, state: &mut SessionState, session: &Session, data: &[u8]) -> usize {
        if state.rejected {
            return data.len();
        }
        let mut count = 0u64;
        let decoded = match &self.logic {
            Logic::Thread { queue, .. } => {
                if self.shared.stopping.load(Ordering::Acquire) {
                    let decoded = decode_requests(data, |_| count += 1);
                    self.dropped(count);
                    decoded
                } else {
                    let queue = queue
                        .as_ref()
                        .expect("the queue lives as long as the handler");
                    let decoded = decode_requests(data, |request| {
                        count += 1;
                        let _ = queue.send(Event::Request(session.clone(), request));
                    });
                    // Release: whoever sees these requests counted sees them queued, so a
                    // shutdown begun after it answers them. The logic thread may answer
                    // them before they are counted.
                    self.shared
                        .counters
                        .requests
                        .fetch_add(count, Ordering::Release);
                    decoded
                }
            }
            Logic::Shared(world) => {
                let mut world = lock(world);
                if self.shared.stopping.load(Ordering::Acquire) {
                    drop(world);
                    let decoded = decode_requests(data, |_| count += 1);
                    self.dropped(count);
                    decoded
                } else {
                    // Counted under the world's lock before it is handled: a client that
                    // got its answer finds it counted.
                    decode_requests(data, |request| {
                        self.shared
                            .counters
                            .requests
                            .fetch_add(1, Ordering::Release);
                        world.request(session, request);
                    })
                }
            }
        };
        if let Some(error) = decoded.error {
            state.rejected = true;
            self.shared.counters.protocol_errors.fetch_add(1, Relaxed);
            tracing::warn!(
                peer = %session.peer(),
                session = %session.id(),
                %error,
                "protocol error from {}; closing the session",
                session.peer()
            );
            session.reject();
            return data.len();
        }
        state.pending = data.len() - decoded.consumed;
        decoded.consumed
    }

    fn closed(&self, state: SessionState, session: &Session, reason: CloseReason) {
        if state.pending > 0 && !state.rejected {
            self.shared.counters.truncated.fetch_add(1, Relaxed);
            tracing::info!(
                peer = %session.peer(),
                session = %session.id(),
                %reason,
                bytes = state.pending,
                "session from {} ended inside a packet; the partial packet is dropped",
                session.peer()
            );
        }
        match &self.logic {
            Logic::Thread { queue, .. } => {
                if let Some(queue) = queue {
                    let _ = queue.send(Event::Closed(session.clone()));
                }
            }
            Logic::Shared(world) => lock(world).closed(session),
        }
    }
}

impl Drop for ChatHandler {
    fn drop(&mut self) {
        if let Logic::Thread { queue, thread } = &mut self.logic {
            // Closing the queue ends the logic thread once it has applied every event.
            queue.take();
            if let Fence::Queue(barriers) = &self.shared.fence {
                lock(barriers).take();
            }
            if let Some(thread) = thread.take() {
                if thread.thread().id() != std::thread::current().id() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// The counters of a chat server that has stopped: final, read after every thread of the
/// server has ended and the logic thread has handled every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalStats {
    /// The chat's counters.
    pub chat: ChatStats,
    /// The engine's counters.
    pub engine: Stats,
}

/// A running chat server: the engine's [`Server`] with a [`ChatHandler`], stopped in the
/// order that answers every request read before the stop (see [`ChatServer::shutdown`]).
pub struct ChatServer {
    server: Server<ChatHandler>,
    shared: Arc<Shared>,
}

impl ChatServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The engine's counters now.
    pub fn stats(&self) -> Stats {
        self.server.stats()
    }

    /// The chat's counters now.
    pub fn chat_stats(&self) -> ChatStats {
        self.shared.counters.snapshot()
    }

    /// The handler.
    pub fn handler(&self) -> &ChatHandler {
        self.server.handler()
    }

    /// The engine configuration in force.
    pub fn config(&self) -> &Config {
        self.server.config()
    }

    /// A handle for stopping the server or reading its counters from another thread.
    pub fn handle(&self) -> ChatServerHandle {
        ChatServerHandle {
            engine: self.server.handle(),
            shared: self.shared.clone(),
        }
    }

    /// Begin a graceful shutdown; see [`ChatServerHandle::shutdown`].
    pub fn shutdown(&self) {
        self.handle().shutdown();
    }

    /// Wait until the server has stopped and return its final counters; the first error
    /// of the engine's threads wins.
    pub fn join(self) -> Result<FinalStats, Error> {
        let ChatServer { server, shared } = self;
        let handle = server.handle();
        server.join()?;
        // The I/O threads are gone, every close event is queued: once the logic thread
        // has reached this barrier, nothing can change the counters.
        shared.settle();
        Ok(FinalStats {
            chat: shared.counters.snapshot(),
            engine: handle.stats(),
        })
    }

    /// Shut down, wait, and return the final counters.
    pub fn stop(self) -> Result<FinalStats, Error> {
        self.shutdown();
        self.join()
    }
}

/// A cheap, cloneable way to stop a chat server or read its counters from any thread.
#[derive(Clone)]
pub struct ChatServerHandle {
    engine: ServerHandle,
    shared: Arc<Shared>,
}

impl ChatServerHandle {
    /// Begin a graceful shutdown, in an order that answers every request read before it:
    ///
    /// 1. stop taking requests: the ones decoded from now on are dropped unanswered
    ///    (counted in [`ChatStats::dropped`]), their sessions about to close;
    /// 2. wait until every request decoded before has been handled (in [`Mode::Logic`], a
    ///    barrier through the logic thread's queue: when the logic thread reaches it, every
    ///    earlier request has been answered into its session's send queue);
    /// 3. begin the engine's graceful shutdown, which flushes those answers and then
    ///    closes every session (sends after that are refused, so the order matters).
    ///
    /// Returns once the engine's shutdown has begun; [`ChatServer::join`] waits for the end.
    pub fn shutdown(&self) {
        self.shared.drain();
        self.engine.shutdown();
    }

    /// The engine's counters now.
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// The chat's counters now.
    pub fn chat_stats(&self) -> ChatStats {
        self.shared.counters.snapshot()
    }
}

/// Start a chat server: `chat` on the engine configured by `engine` (see [`engine_config`](crate::engine_config)
/// for the chat's defaults), logins checked by `store`.
///
/// ```no_run
/// use iomodels_chat::{engine_config, start, AcceptAll, ChatConfig};
/// use iomodels_engine::Model;
/// use std::sync::Arc;
///
/// let config = engine_config(Model::SCALABLE[0], "127.0.0.1:0".parse().unwrap());
/// let server = start(config, ChatConfig::default(), Arc::new(AcceptAll)).unwrap();
/// println!("chat on {}", server.local_addr());
/// let stopped = server.stop().unwrap();
/// println!("{} chats", stopped.chat.chats);
/// ```
pub fn start(
    engine: Config,
    chat: ChatConfig,
    store: Arc<dyn UserStore>,
) -> Result<ChatServer, Error> {
    let handler = ChatHandler::new(chat, store)?;
    let shared = handler.shared.clone();
    let server = Server::start(engine, handler)?;
    Ok(ChatServer { server, shared })
}
