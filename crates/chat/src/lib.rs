//! # iomodels-chat
//!
//! The game-server layer: the chat server of the edu_cpp_IOCP tutorial (login, rooms, room
//! chat) done the way a studio could ship it, on every I/O model of the engine; a bot swarm
//! that stresses it and checks that every notify arrives, in order, exactly once; and a
//! small interactive client.
//!
//! - [`start`] runs a chat server in-process and returns a [`ChatServer`]: its address,
//!   the engine's and the chat's counters, and a shutdown that answers every request read
//!   before it ([`ChatServer::shutdown`]), then final counters from [`ChatServer::join`].
//! - Game logic runs on one logic thread fed by a queue ([`Mode::Logic`], the default: no
//!   lock anywhere in the game code) or directly on the I/O threads under one lock
//!   ([`Mode::Io`]). Both run the same [`world`](crate::ChatConfig) code.
//! - Logins go through a [`UserStore`]: [`AcceptAll`] or a [`PasswordFile`] of argon2
//!   hashes ([`PasswordFile::add_user`] writes one).
//! - With [`ChatConfig::cluster`] set, instances form one chat world over Redis
//!   ([`ClusterConfig`]; issue 11, in progress: logins, liveness and rooms so far).
//! - [`run_swarm`] runs a bot swarm in-process and returns its [`BotsReport`]
//!   ([`run_swarm_with_progress`] reports progress through a callback).
//! - [`run_chaos`] runs a chaos scenario ([`ChaosScenario`]: flood, anonymous, stall,
//!   spray, churn) against any server that speaks the protocol and returns a
//!   [`ChaosReport`]: a verdict, its reasons, and the numbers.
//! - [`interactive`] is the interactive client on standard input and output.
//!
//! The command-line front ends (`chat-server`, `chat-bots`, `chat-client`) and their flags
//! live in the `iomodels` binary, which fills these plain configuration structs.
//!
//! The protocol and every result code are described in the crate's README.
#![deny(clippy::undocumented_unsafe_blocks)]

mod bots;
mod chaos;
mod client;
mod cluster;
mod config;
mod error;
mod guard;
mod membership;
mod server;
mod stats;
mod store;
mod verify;
mod world;

pub use bots::{
    run_swarm, run_swarm_with_progress, BotsReport, Latency, Scenario, SwarmConfig, SwarmProgress,
};
pub use chaos::{
    run_chaos, ChaosConfig, ChaosDetails, ChaosReport, ChaosScenario, ChurnReport, ChurnRound,
    Closure, FloodReport, FlooderFate, MemberReport, RealUserStep, ServerUsage, SilentReport,
    SprayReport, Spread,
};
pub use client::{interactive, ClientError, Connection};
pub use cluster::{ClusterConfig, DEFAULT_INSTANCE_TTL};
pub use config::{
    engine_config, ChatConfig, Mode, RateLimit, DEFAULT_CHAT_LIMIT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LOGIN_TIMEOUT, DEFAULT_MAX_ANONYMOUS, DEFAULT_MAX_PENDING, DEFAULT_REQUEST_LIMIT,
    MAX_ROOMS,
};
pub use error::Error;
pub use server::{start, ChatHandler, ChatServer, ChatServerHandle, FinalStats, SessionState};
pub use stats::{Answers, ChatStats, RequestKind};
pub use store::{AcceptAll, HashParams, PasswordFile, RedisUsers, Refusal, UserChange, UserStore};
