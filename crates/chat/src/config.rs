//! How a chat server runs: its settings, the mode its game logic runs in, and the engine
//! configuration it starts from.

use crate::cluster::ClusterConfig;
use crate::error::Error;
use iomodels_engine::{Config, Model};
use std::net::SocketAddr;
use std::time::Duration;

/// The idle timeout of chat sessions unless set otherwise: a silent socket cannot hold a
/// user slot forever.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the game logic runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One logic thread fed by a queue of (session, packet) events, as the tutorial's
    /// packet thread: the game code owns its state and takes no lock.
    #[default]
    Logic,
    /// On the I/O threads, the game state under one mutex.
    Io,
}

impl Mode {
    /// Both modes, the default first.
    pub const ALL: [Mode; 2] = [Mode::Logic, Mode::Io];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Logic => "logic",
            Mode::Io => "io",
        }
    }

    /// One line on where the game logic runs.
    pub fn description(self) -> &'static str {
        match self {
            Mode::Logic => "one logic thread fed by a queue; the game code takes no lock",
            Mode::Io => "on the I/O threads, the game state under one mutex",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The most rooms a server may have (or a swarm may spread over). Each room costs a little
/// memory up front, whether used or not; far more rooms than users only costs memory.
pub const MAX_ROOMS: usize = 100_000;

// Room numbers travel as an i32.
const _: () = assert!(MAX_ROOMS <= i32::MAX as usize);

/// A token bucket: a session may make `burst` requests at once and `per_second` on
/// average; one that asks for more is over its limit.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RateLimit {
    /// Tokens added per second (the sustained rate).
    pub per_second: f64,
    /// The bucket's size (the largest burst); a new session starts with a full bucket.
    pub burst: u32,
}

impl RateLimit {
    /// No limit at all.
    pub const OFF: RateLimit = RateLimit {
        per_second: f64::INFINITY,
        burst: u32::MAX,
    };

    /// Whether this limit lets everything through.
    pub fn is_off(&self) -> bool {
        self.per_second.is_infinite()
    }
}

/// How many chats (216 requests) a session may send unless set otherwise: 20 a second on
/// average, 40 at once. A person typing sends far fewer; a bot of the swarm at its default
/// rate sends 10 a second.
pub const DEFAULT_CHAT_LIMIT: RateLimit = RateLimit {
    per_second: 20.0,
    burst: 40,
};

/// How many other requests (login, room enter and leave) a session may send unless set
/// otherwise: 30 a second on average, 60 at once. A person changes rooms far less often; a
/// bot of the swarm's `room-inout` at its default rate sends 20 (10 enters, 10 leaves).
pub const DEFAULT_REQUEST_LIMIT: RateLimit = RateLimit {
    per_second: 30.0,
    burst: 60,
};

/// How long a connection may stay without logging in unless set otherwise.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions not logged in yet, at most, unless set otherwise.
pub const DEFAULT_MAX_ANONYMOUS: usize = 1000;

/// A session's requests read and not yet handled by the game logic, at most, unless set
/// otherwise: past it the session's socket is not read until the logic catches up.
pub const DEFAULT_MAX_PENDING: usize = 64;

/// What the chat server serves.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Rooms, numbered `0..rooms`; 1 to [`MAX_ROOMS`].
    pub rooms: usize,
    /// Users per room, 1 to 127 (the user list's count is an `i8`).
    pub room_capacity: usize,
    /// Users logged in at once.
    pub max_users: usize,
    /// Where the game logic runs.
    pub mode: Mode,
    /// A session's requests read and not yet handled (queued for the logic thread, or
    /// waiting behind its login's password check), at most: past it the session is not
    /// read until the logic catches up, so a sender is slowed by its own TCP window.
    pub max_pending: usize,
    /// The rate limit of chats (216), per session. A session over it is closed with
    /// [`iomodels_engine::CloseReason::RateLimited`].
    pub chat_limit: RateLimit,
    /// The rate limit of every other request (login, room enter and leave), per session.
    pub request_limit: RateLimit,
    /// A session not logged in this long after it connected is closed with
    /// [`iomodels_engine::CloseReason::LoginTimeout`]. `None`: never.
    pub login_timeout: Option<Duration>,
    /// Sessions not logged in yet, at most: past it the *oldest* of them is closed with
    /// [`iomodels_engine::CloseReason::OverCapacity`] to make room, so that silent
    /// connections cannot lock out players, who log in a round trip after connecting.
    pub max_anonymous: usize,
    /// Sessions from one source address, at most (`None`: no cap). Off by default: players
    /// behind one NAT share an address, and so do loopback tests.
    pub max_per_address: Option<usize>,
    /// Threads that check passwords (a hash check costs milliseconds by design and never
    /// runs on an I/O or logic thread).
    pub verifier_threads: usize,
    /// Join a cluster of instances over Redis (`None`: one instance on its own, as the
    /// tutorial's server).
    pub cluster: Option<ClusterConfig>,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            rooms: 10,
            room_capacity: 20,
            max_users: 1000,
            mode: Mode::Logic,
            max_pending: DEFAULT_MAX_PENDING,
            chat_limit: DEFAULT_CHAT_LIMIT,
            request_limit: DEFAULT_REQUEST_LIMIT,
            login_timeout: Some(DEFAULT_LOGIN_TIMEOUT),
            max_anonymous: DEFAULT_MAX_ANONYMOUS,
            max_per_address: None,
            verifier_threads: 2,
            cluster: None,
        }
    }
}

impl ChatConfig {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let what = if self.rooms == 0 || self.rooms > MAX_ROOMS {
            format!("--rooms must be 1 to {MAX_ROOMS}")
        } else if !(1..=127).contains(&self.room_capacity) {
            "--room-capacity must be 1 to 127 (the user list counts users in an i8)".into()
        } else if self.max_users == 0 {
            "--max-users must be at least 1".into()
        } else if self.max_pending == 0 {
            "--max-pending must be at least 1".into()
        } else if let Some(what) = [("chat", self.chat_limit), ("request", self.request_limit)]
            .iter()
            .find(|(_, l)| {
                !l.is_off() && (l.per_second <= 0.0 || l.burst == 0 || l.per_second.is_nan())
            })
            .map(|(name, _)| {
                format!("the {name} rate limit needs a rate above 0 and a burst of at least 1")
            })
        {
            what
        } else if self.login_timeout == Some(Duration::ZERO) {
            "--login-timeout must be above 0".into()
        } else if self.max_anonymous == 0 {
            "--max-anonymous must be at least 1".into()
        } else if self.max_per_address == Some(0) {
            "--max-per-address must be at least 1".into()
        } else if self.verifier_threads == 0 {
            "--verifier-threads must be at least 1".into()
        } else if let Some(cluster) = &self.cluster {
            return cluster.validate();
        } else {
            return Ok(());
        };
        Err(Error::Config { what })
    }
}

/// The engine configuration a chat server starts from: `model` on `addr` with the chat's
/// idle timeout ([`DEFAULT_IDLE_TIMEOUT`]).
pub fn engine_config(model: Model, addr: SocketAddr) -> Config {
    let mut config = Config::new(model, addr);
    config.idle_timeout = Some(DEFAULT_IDLE_TIMEOUT);
    config
}
