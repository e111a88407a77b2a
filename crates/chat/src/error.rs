//! The chat layer's errors.

use std::path::PathBuf;

/// Something the chat server, the swarm or the client could not do. Messages leave the
/// cause to [`std::error::Error::source`], so a chain is printed with each cause once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine could not start or failed while running.
    #[error(transparent)]
    Engine(#[from] iomodels_engine::Error),
    /// A setting is out of range.
    #[error("invalid setting: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// The users file could not be read.
    #[error("cannot read users file {path}")]
    UsersFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the users file is not `user:hash`, or its user id is not valid.
    #[error(
        "{path}:{line}: expected `user:hash` with a user id of 1 to 32 bytes and no `:`, \
         whitespace or control characters"
    )]
    UsersFileLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// A line of the users file holds something that is not an argon2 hash in a PHC string:
    /// most likely a plaintext password. The message names the user, never what follows it.
    #[error(
        "{path}:{line}: the password of `{user}` is not an argon2 hash (plaintext?); write it \
         with `iomodels chat-users add {user} --users {path}`"
    )]
    UsersFileNotHashed {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The user of that line.
        user: String,
    },
    /// A user appears twice in the users file.
    #[error(
        "{path}:{line}: `{user}` is already on line {first}; keep one entry \
         (`iomodels chat-users add` replaces an entry)"
    )]
    UsersFileDuplicate {
        /// The file.
        path: PathBuf,
        /// The line number of the second entry, from 1.
        line: usize,
        /// The user.
        user: String,
        /// The line number of the first entry.
        first: usize,
    },
    /// The users file could not be written.
    #[error("cannot write users file {path}")]
    UsersFileWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A user id that the users file and the login packet cannot hold.
    #[error("invalid user id {user:?}: {why}")]
    InvalidUserId {
        /// The user id (printed quoted and escaped).
        user: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A password that cannot be stored: empty, or longer than a login packet carries.
    #[error("unusable password: {why}")]
    UnusablePassword {
        /// What is wrong with it (never the password itself).
        why: &'static str,
    },
    /// Hashing a password failed (the system's random source, or memory).
    #[error("cannot hash the password")]
    PasswordHash {
        /// What argon2 said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A socket operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A connection to the chat server failed.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// A chaos scenario could not run: the server could not be reached, or refused what
    /// the scenario needs before its attack begins (a login, a room). A scenario that runs
    /// and finds the server wanting is not an error but a failed verdict.
    #[error("{scenario}: {what}")]
    Chaos {
        /// The scenario.
        scenario: crate::chaos::ChaosScenario,
        /// What could not be done.
        what: String,
        /// The error behind it, if any (a connection's, or reading the server's process).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Redis could not be reached (at start), or refused a command.
    // Not a `#[source]`: the client's message already ends with its own cause, which the
    // binary's one-line error chain would print twice.
    #[error("cannot reach Redis at {url}: {error}")]
    Redis {
        /// The URL given (`--redis`).
        url: String,
        /// What the client said.
        error: redis::RedisError,
    },
    /// This instance cannot join the cluster: its name is taken by a live instance, or
    /// its settings differ from the cluster's.
    #[error("cannot join the cluster: {what}")]
    Cluster {
        /// Why, and what to do.
        what: String,
    },
    /// Printing the JSON summary failed.
    #[error("cannot write the JSON summary")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}
