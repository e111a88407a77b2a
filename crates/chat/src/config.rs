//! How a chat server runs: its settings, the mode its game logic runs in, and the engine
//! configuration it starts from.

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
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let what = if self.rooms == 0 || self.rooms > MAX_ROOMS {
            format!("--rooms must be 1 to {MAX_ROOMS}")
        } else if !(1..=127).contains(&self.room_capacity) {
            "--room-capacity must be 1 to 127 (the user list counts users in an i8)".into()
        } else if self.max_users == 0 {
            "--max-users must be at least 1".into()
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
