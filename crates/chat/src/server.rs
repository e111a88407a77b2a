//! The chat server: the engine handler, its two modes, and starting it.

use crate::error::Error;
use crate::store::UserStore;
use crate::world::World;
use iomodels_engine::{CloseReason, Config, Handler, Model, Server, Session};
use iomodels_proto::decode_requests;
use iomodels_proto::Request;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The idle timeout of chat sessions unless set otherwise: a silent socket cannot hold a
/// user slot forever.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the game logic runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One logic thread fed by a queue of (session, packet) events, as the tutorial's
    /// packet thread: the game code owns its state and takes no lock.
    #[default]
    Logic,
    /// On the I/O threads, the game state under one mutex.
    Io,
}

/// What the chat server serves.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Rooms, numbered `0..rooms`.
    pub rooms: usize,
    /// Users per room, 1 to 127 (the user list's count is an `i8`).
    pub room_capacity: usize,
    /// Users logged in at once.
    pub max_users: usize,
    /// Where the game logic runs.
    pub mode: Mode,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            rooms: 10,
            room_capacity: 20,
            max_users: 1000,
            mode: Mode::Logic,
        }
    }
}

impl ChatConfig {
    fn validate(&self) -> Result<(), Error> {
        let what = if self.rooms == 0 || self.rooms > i32::MAX as usize {
            "--rooms must be 1 to 2^31-1"
        } else if !(1..=127).contains(&self.room_capacity) {
            "--room-capacity must be 1 to 127 (the user list counts users in an i8)"
        } else if self.max_users == 0 {
            "--max-users must be at least 1"
        } else {
            return Ok(());
        };
        Err(Error::Config { what: what.into() })
    }
}

/// The engine configuration a chat server starts from: `model` on `addr` with the chat's
/// idle timeout ([`DEFAULT_IDLE_TIMEOUT`]).
pub fn engine_config(model: Model, addr: SocketAddr) -> Config {
    let mut config = Config::new(model, addr);
    config.idle_timeout = Some(DEFAULT_IDLE_TIMEOUT);
    config
}

/// The chat's own counters, beside the engine's.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    logins: AtomicU64,
    chats: AtomicU64,
    protocol_errors: AtomicU64,
    truncated: AtomicU64,
}

impl Counters {
    pub(crate) fn login(&self) {
        self.logins.fetch_add(1, Relaxed);
    }
    pub(crate) fn chat(&self) {
        self.chats.fetch_add(1, Relaxed);
    }
}

/// A snapshot of the chat's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChatStats {
    /// Successful logins.
    pub logins: u64,
    /// Chats accepted and broadcast.
    pub chats: u64,
    /// Sessions closed for malformed input.
    pub protocol_errors: u64,
    /// Sessions whose peer closed in the middle of a packet (the partial packet is dropped).
    pub truncated: u64,
}

/// An event for the logic thread.
enum Event {
    Request(Session, Request),
    Closed(Session),
}

enum Logic {
    /// The queue to the logic thread and the thread itself.
    Thread {
        queue: Option<mpsc::Sender<Event>>,
        thread: Option<JoinHandle<()>>,
    },
    /// The world, shared by the I/O threads.
    Shared(Mutex<World>),
}

/// The chat server's engine handler. Decoding happens on the I/O threads; the game logic
/// runs where [`Mode`] says.
pub struct ChatHandler {
    logic: Logic,
    counters: Arc<Counters>,
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
        let logic = match mode {
            Mode::Io => Logic::Shared(Mutex::new(world)),
            Mode::Logic => {
                let (queue, events) = mpsc::channel();
                let thread = std::thread::Builder::new()
                    .name("chat-logic".into())
                    .spawn(move || run_logic(world, events))
                    .map_err(Error::io("spawning the logic thread"))?;
                Logic::Thread {
                    queue: Some(queue),
                    thread: Some(thread),
                }
            }
        };
        Ok(ChatHandler { logic, counters })
    }

    /// The chat's counters now.
    pub fn stats(&self) -> ChatStats {
        ChatStats {
            logins: self.counters.logins.load(Relaxed),
            chats: self.counters.chats.load(Relaxed),
            protocol_errors: self.counters.protocol_errors.load(Relaxed),
            truncated: self.counters.truncated.load(Relaxed),
        }
    }

    fn lock(world: &Mutex<World>) -> std::sync::MutexGuard<'_, World> {
        // A panic in the game logic poisons the lock; the world is still usable for the
        // other sessions (each request is applied whole or not at all).
        world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The logic thread: apply events in the order they were queued until every sender is gone.
fn run_logic(mut world: World, events: mpsc::Receiver<Event>) {
    while let Ok(event) = events.recv() {
        match event {
            Event::Request(session, request) => world.request(&session, request),
            Event::Closed(session) => world.closed(&session),
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
        let decoded = match &self.logic {
            Logic::Thread { queue, .. } => {
                let queue = queue
                    .as_ref()
                    .expect("the queue lives as long as the handler");
                decode_requests(data, |request| {
                    let _ = queue.send(Event::Request(session.clone(), request));
                })
            }
            Logic::Shared(world) => {
                let mut world = Self::lock(world);
                decode_requests(data, |request| world.request(session, request))
            }
        };
        if let Some(error) = decoded.error {
            state.rejected = true;
            self.counters.protocol_errors.fetch_add(1, Relaxed);
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
            self.counters.truncated.fetch_add(1, Relaxed);
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
            Logic::Shared(world) => Self::lock(world).closed(session),
        }
    }
}

impl Drop for ChatHandler {
    fn drop(&mut self) {
        if let Logic::Thread { queue, thread } = &mut self.logic {
            // Closing the queue ends the logic thread once it has applied every event.
            queue.take();
            if let Some(thread) = thread.take() {
                if thread.thread().id() != std::thread::current().id() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Start a chat server: `chat` on the engine configured by `engine` (see [`engine_config`]
/// for the chat's defaults), logins checked by `store`.
///
/// ```no_run
/// use iomodels_chat::{engine_config, start, AcceptAll, ChatConfig};
/// use iomodels_engine::Model;
/// use std::sync::Arc;
///
/// let config = engine_config(Model::Epoll, "127.0.0.1:0".parse().unwrap());
/// let server = start(config, ChatConfig::default(), Arc::new(AcceptAll)).unwrap();
/// println!("chat on {}", server.local_addr());
/// server.stop().unwrap();
/// ```
pub fn start(
    engine: Config,
    chat: ChatConfig,
    store: Arc<dyn UserStore>,
) -> Result<Server<ChatHandler>, Error> {
    let handler = ChatHandler::new(chat, store)?;
    Ok(Server::start(engine, handler)?)
}
