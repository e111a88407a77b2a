//! The chat server: the engine handler, its two modes, and starting it.

use crate::cluster::{Cluster, Notice, Notify};
use crate::config::{ChatConfig, Mode, RateLimit};
use crate::error::Error;
use crate::guard::{Admission, Inflow, Lobby, TokenBucket};
use crate::stats::{ChatStats, Counters};
use crate::store::UserStore;
use crate::verify::{Done, Verified, Verifiers};
use crate::world::World;
use iomodels_engine::{CloseReason, Config, Handler, Server, ServerHandle, Session, Stats};
use iomodels_proto::{decode_requests, decode_requests_until, Request};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

/// An event for the logic thread.
enum Event {
    Request(Session, Request, Arc<Inflow>),
    Closed(Session),
    /// A password check came back.
    Verified(Verified),
    /// The cluster's threads have news: a claim came back, or the instance was reaped.
    Cluster(Notice),
    /// Shutdown: answer `()` on the channel once every event queued before this one has
    /// been applied (and every password check it waits for is back), and drop every
    /// request queued after it.
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

/// A sender into the logic thread's queue that the handler can take away when it drops,
/// so that nothing else keeps the logic thread alive.
type QueueSlot = Arc<Mutex<Option<mpsc::Sender<Event>>>>;

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
    /// Logic mode: a sender for barriers (and the verifiers' results; the I/O threads use
    /// the handler's own).
    Queue(QueueSlot),
    /// I/O mode: the world, whose lock every request is handled under, and the condition
    /// variable the verifiers signal when a check comes back.
    World(Weak<Mutex<World>>, Arc<Condvar>),
}

impl Shared {
    /// Stop taking requests, then wait until every request decoded before has been
    /// handled: its answers are in the sessions' send queues.
    fn drain(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.settle();
    }

    /// Wait until every request and close event queued so far has been handled, the
    /// logins among them answered after their password checks.
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
            Fence::World(world, checked) => {
                // Every `data` call takes the lock and reads `stopping` under it: once we
                // have held the lock, no call that read it unset is still running. Logins
                // out for a check are answered (with what waited behind them) under it too.
                if let Some(world) = world.upgrade() {
                    let mut world = lock(&world);
                    while world.verifying() > 0 {
                        world = checked.wait(world).unwrap_or_else(|p| p.into_inner());
                    }
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

/// The chat server's engine handler. Decoding, rate limits and the caps on sessions run
/// on the I/O threads; the game logic runs where [`Mode`] says; password checks on their
/// own threads.
///
/// [`start`] runs it in a [`ChatServer`], which shuts down in the right order. A handler
/// given to the engine's [`Server`] directly must be [drained](ChatHandler::drain) before
/// the engine's shutdown, or the answers to requests still queued are lost.
pub struct ChatHandler {
    logic: Logic,
    shared: Arc<Shared>,
    limits: Limits,
    admission: Admission,
    lobby: Lobby,
    verifiers: Option<Arc<Verifiers>>,
    cluster: Option<Arc<Cluster>>,
}

/// The per-session limits the I/O threads apply.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_pending: usize,
    chat: RateLimit,
    other: RateLimit,
}

/// Per-session state, kept by the session's I/O thread.
#[derive(Debug)]
pub struct SessionState {
    /// Bytes of an incomplete packet left in the engine's input buffer.
    pending: usize,
    /// The session broke the protocol or a limit and is being closed: ignore whatever
    /// else arrives.
    rejected: bool,
    /// It counts against its address's cap.
    admitted: bool,
    inflow: Arc<Inflow>,
    chats: TokenBucket,
    others: TokenBucket,
}

/// What the I/O thread did with a session's input.
enum Stop {
    /// Every complete request was taken.
    None,
    /// The session reached its bound of pending requests: pause its input.
    Bound,
    /// The session went over a rate limit.
    Limited,
}

impl ChatHandler {
    /// A handler serving `config`, checking logins with `store`. In logic-thread mode this
    /// starts the logic thread; it ends when the handler is dropped. A costly store
    /// ([`UserStore::is_costly`]) gets `config.verifier_threads` threads of its own.
    pub fn new(config: ChatConfig, store: Arc<dyn UserStore>) -> Result<ChatHandler, Error> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let mode = config.mode;
        let limits = Limits {
            max_pending: config.max_pending,
            chat: config.chat_limit,
            other: config.request_limit,
        };
        let admission = Admission::new(config.max_per_address);
        let lobby = Lobby::start(config.max_anonymous, config.login_timeout, counters.clone())
            .map_err(Error::io("starting the login deadline thread"))?;
        // The verifiers hand results to the logic (its queue, or the shared world), which
        // is built after them: they find it through this.
        let deliver: Arc<OnceLock<Deliver>> = Arc::new(OnceLock::new());
        let verifiers = if store.is_costly() {
            let deliver = deliver.clone();
            let done: Done = Arc::new(move |verified| match deliver.get() {
                Some(Deliver::Queue(queue)) => {
                    if let Some(queue) = lock(queue).as_ref() {
                        let _ = queue.send(Event::Verified(verified));
                    }
                }
                Some(Deliver::World(world, checked)) => {
                    if let Some(world) = world.upgrade() {
                        lock(&world).verified(verified);
                        checked.notify_all();
                    }
                }
                None => {}
            });
            let verifiers = Verifiers::start(config.verifier_threads, store.clone(), done)
                .map_err(Error::io("starting the password-check threads"))?;
            Some(Arc::new(verifiers))
        } else {
            None
        };
        let cluster = match &config.cluster {
            Some(cluster) => {
                let deliver = deliver.clone();
                let notify: Notify = Arc::new(move |notice| match deliver.get() {
                    Some(Deliver::Queue(queue)) => {
                        if let Some(queue) = lock(queue).as_ref() {
                            let _ = queue.send(Event::Cluster(notice));
                        }
                    }
                    Some(Deliver::World(world, checked)) => {
                        if let Some(world) = world.upgrade() {
                            lock(&world).notice(notice);
                            checked.notify_all();
                        }
                    }
                    None => {}
                });
                let started = Cluster::start(cluster, config.rooms, config.room_capacity, notify);
                Some(Arc::new(started?))
            }
            None => None,
        };
        let world = World::new(
            config,
            store,
            verifiers.clone(),
            cluster.clone(),
            counters.clone(),
        );
        let (logic, fence) = match mode {
            Mode::Io => {
                let world = Arc::new(Mutex::new(world));
                let checked = Arc::new(Condvar::new());
                let _ = deliver.set(Deliver::World(Arc::downgrade(&world), checked.clone()));
                let fence = Fence::World(Arc::downgrade(&world), checked);
                (Logic::Shared(world), fence)
            }
            Mode::Logic => {
                let (queue, events) = mpsc::channel();
                let thread = std::thread::Builder::new()
                    .name("chat-logic".into())
                    .spawn(move || run_logic(world, events))
                    .map_err(Error::io("spawning the logic thread"))?;
                let slot: QueueSlot = Arc::new(Mutex::new(Some(queue.clone())));
                let _ = deliver.set(Deliver::Queue(slot.clone()));
                let logic = Logic::Thread {
                    queue: Some(queue),
                    thread: Some(thread),
                };
                (logic, Fence::Queue(slot))
            }
        };
        let shared = Arc::new(Shared {
            counters,
            stopping: AtomicBool::new(false),
            fence,
        });
        Ok(ChatHandler {
            logic,
            shared,
            limits,
            admission,
            lobby,
            verifiers,
            cluster,
        })
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

    /// Decode what `data` holds, handing each request to `take`, as far as the session's
    /// limits allow: a request over a rate limit stops it (and is not handed on), and so
    /// does the session's bound of pending requests, after the request that reached it.
    fn decode(
        &self,
        state: &mut SessionState,
        data: &[u8],
        mut take: impl FnMut(Request),
    ) -> (iomodels_proto::Decoded, Stop) {
        let now = Instant::now();
        let mut stop = Stop::None;
        let decoded = decode_requests_until(data, |request| {
            let bucket = match request {
                Request::RoomChat { .. } => &mut state.chats,
                _ => &mut state.others,
            };
            if !bucket.take(now) {
                stop = Stop::Limited;
                return ControlFlow::Break(());
            }
            state.inflow.queued(&self.shared.counters);
            take(request);
            if state.inflow.at_bound(self.limits.max_pending) {
                stop = Stop::Bound;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        (decoded, stop)
    }

    /// Close `session` for going over a rate limit.
    fn rate_limited(&self, state: &mut SessionState, session: &Session) {
        state.rejected = true;
        self.shared.counters.rate_limited.fetch_add(1, Relaxed);
        tracing::warn!(
            peer = %session.peer(),
            session = %session.id(),
            "{} went over its rate limit; closing the session",
            session.peer()
        );
        session.abort_for(CloseReason::RateLimited);
    }
}

/// Where the verifiers hand their results.
enum Deliver {
    Queue(QueueSlot),
    World(Weak<Mutex<World>>, Arc<Condvar>),
}

/// The logic thread: apply events in the order they were queued until every sender is gone.
/// Requests queued after a barrier came after the shutdown began: they are dropped, so
/// that every answer the logic thread sends is sent before the sessions are closed. A
/// barrier is acknowledged once the password checks it waits for are back.
fn run_logic(mut world: World, events: mpsc::Receiver<Event>) {
    let mut stopped = false;
    let mut barriers = Vec::new();
    while let Ok(event) = events.recv() {
        match event {
            Event::Request(session, request, inflow) => {
                if stopped {
                    world.dropped(&session, &inflow);
                } else {
                    world.request(&session, request, &inflow);
                }
            }
            Event::Closed(session) => world.closed(&session),
            Event::Verified(verified) => world.verified(verified),
            Event::Cluster(notice) => world.notice(notice),
            Event::Barrier(ack) => {
                stopped = true;
                barriers.push(ack);
            }
        }
        if world.verifying() == 0 {
            for ack in barriers.drain(..) {
                let _ = ack.send(());
            }
        }
    }
}

impl Handler for ChatHandler {
    type State = SessionState;

    fn opened(&self, session: &Session) -> SessionState {
        let counters = &self.shared.counters;
        let inflow = Arc::new(Inflow::new(counters));
        let now = Instant::now();
        let admitted = self.admission.admit(session.peer().ip());
        if admitted {
            if let Some(oldest) = self.lobby.enter(session, &inflow, counters) {
                counters.over_capacity.fetch_add(1, Relaxed);
                tracing::info!(
                    peer = %oldest.peer(),
                    session = %oldest.id(),
                    "closed {}, the oldest of too many sessions not logged in",
                    oldest.peer()
                );
            }
        } else {
            counters.over_capacity.fetch_add(1, Relaxed);
            tracing::info!(
                peer = %session.peer(),
                session = %session.id(),
                "turned away {}: too many sessions from its address",
                session.peer()
            );
            session.close_for(CloseReason::OverCapacity);
        }
        SessionState {
            pending: 0,
            rejected: !admitted,
            admitted,
            inflow,
            chats: TokenBucket::new(self.limits.chat, now),
            others: TokenBucket::new(self.limits.other, now),
        }
    }

    fn data(&self, state: &mut SessionState, session: &Session, data: &[u8]) -> usize {
        if state.rejected {
            return data.len();
        }
        let (decoded, stop) = match &self.logic {
            Logic::Thread { queue, .. } => {
                if self.shared.stopping.load(Ordering::Acquire) {
                    let mut count = 0;
                    let decoded = decode_requests(data, |_| count += 1);
                    self.dropped(count);
                    (decoded, Stop::None)
                } else {
                    let queue = queue
                        .as_ref()
                        .expect("the queue lives as long as the handler");
                    let inflow = state.inflow.clone();
                    let mut count = 0u64;
                    let result = self.decode(state, data, |request| {
                        count += 1;
                        let _ =
                            queue.send(Event::Request(session.clone(), request, inflow.clone()));
                    });
                    // Release: whoever sees these requests counted sees them queued, so a
                    // shutdown begun after it answers them. The logic thread may answer
                    // them before they are counted.
                    self.shared
                        .counters
                        .requests
                        .fetch_add(count, Ordering::Release);
                    result
                }
            }
            Logic::Shared(world) => {
                let mut world = lock(world);
                if self.shared.stopping.load(Ordering::Acquire) {
                    drop(world);
                    let mut count = 0;
                    let decoded = decode_requests(data, |_| count += 1);
                    self.dropped(count);
                    (decoded, Stop::None)
                } else {
                    // Counted under the world's lock before it is handled: a client that
                    // got its answer finds it counted.
                    let inflow = state.inflow.clone();
                    self.decode(state, data, |request| {
                        self.shared
                            .counters
                            .requests
                            .fetch_add(1, Ordering::Release);
                        world.request(session, request, &inflow);
                    })
                }
            }
        };
        match stop {
            Stop::None => {}
            Stop::Bound => state.inflow.hold(session, self.limits.max_pending),
            Stop::Limited => {
                self.rate_limited(state, session);
                return data.len();
            }
        }
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
        state.inflow.not_anonymous(&self.shared.counters);
        if state.admitted {
            self.admission.left(session.peer().ip());
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
        // No more password checks: each verifier ends after its job, and no result is
        // handed on once the queue's slot below is emptied.
        if let Some(verifiers) = &self.verifiers {
            verifiers.close();
        }
        if let Logic::Thread { queue, thread } = &mut self.logic {
            // Closing the queue ends the logic thread once it has applied every event.
            queue.take();
            if let Fence::Queue(slot) = &self.shared.fence {
                lock(slot).take();
            }
            if let Some(thread) = thread.take() {
                if thread.thread().id() != std::thread::current().id() {
                    let _ = thread.join();
                }
            }
        }
        if let Some(verifiers) = &self.verifiers {
            verifiers.join();
        }
        // Every close event is handled and its release queued: the cluster runs them,
        // then leaves.
        if let Some(cluster) = &self.cluster {
            cluster.close();
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
    /// Taken only by [`ChatServer::join`]; a server dropped with it still here is stopped.
    server: Option<Server<ChatHandler>>,
    shared: Arc<Shared>,
}

impl ChatServer {
    fn engine(&self) -> &Server<ChatHandler> {
        self.server
            .as_ref()
            .expect("the engine is taken only by join")
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.engine().local_addr()
    }

    /// The engine's counters now.
    pub fn stats(&self) -> Stats {
        self.engine().stats()
    }

    /// The chat's counters now.
    pub fn chat_stats(&self) -> ChatStats {
        self.shared.counters.snapshot()
    }

    /// The handler.
    pub fn handler(&self) -> &ChatHandler {
        self.engine().handler()
    }

    /// The engine configuration in force.
    pub fn config(&self) -> &Config {
        self.engine().config()
    }

    /// The engine's uring rings on direct descriptors, if it runs on them (see
    /// [`Server::direct_rings`]).
    pub fn direct_rings(&self) -> Option<iomodels_engine::DirectRings> {
        self.engine().direct_rings()
    }

    /// A handle for stopping the server or reading its counters from another thread.
    pub fn handle(&self) -> ChatServerHandle {
        ChatServerHandle {
            engine: self.engine().handle(),
            shared: self.shared.clone(),
        }
    }

    /// Begin a graceful shutdown; see [`ChatServerHandle::shutdown`].
    pub fn shutdown(&self) {
        self.handle().shutdown();
    }

    /// Wait until the server has stopped and return its final counters; the first error
    /// of the engine's threads wins.
    pub fn join(mut self) -> Result<FinalStats, Error> {
        let server = self
            .server
            .take()
            .expect("the engine is taken only by join");
        let handle = server.handle();
        server.join()?;
        // The I/O threads are gone, every close event is queued: once the logic thread
        // has reached this barrier, nothing can change the counters.
        self.shared.settle();
        Ok(FinalStats {
            chat: self.shared.counters.snapshot(),
            engine: handle.stats(),
        })
    }

    /// Shut down, wait, and return the final counters.
    pub fn stop(self) -> Result<FinalStats, Error> {
        self.shutdown();
        self.join()
    }
}

/// A chat server dropped without [`ChatServer::join`] is stopped as by
/// [`ChatServer::stop`], in the same order (every request read is answered first); it does
/// not go on serving behind its owner's back.
impl Drop for ChatServer {
    fn drop(&mut self) {
        if self.server.is_some() {
            self.shutdown();
            // The engine's own drop joins its threads; the handler's joins the logic thread.
            self.server = None;
        }
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
    Ok(ChatServer {
        server: Some(server),
        shared,
    })
}
