//! Why a session ended: the reason every driver reports and every counter keeps.

use std::fmt;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its side (FIN) and everything queued for it was sent.
    PeerClosed,
    /// The peer reset the connection (RST).
    Reset,
    /// A socket error other than a reset.
    Error,
    /// Nothing arrived within the configured idle timeout.
    IdleTimeout,
    /// The session's send queue passed its byte limit: the peer does not read fast enough.
    SendQueueFull,
    /// The application kept more unconsumed input than the configured limit.
    InputOverflow,
    /// The application rejected the peer's input as malformed.
    ProtocolError,
    /// The application closed the session (gracefully or not).
    Local,
    /// The application found the peer over its request rate.
    RateLimited,
    /// The peer did not authenticate within the application's deadline.
    LoginTimeout,
    /// The application turned the session away because a cap was reached (sessions not
    /// logged in yet, sessions per address). Unlike [`CloseReason::Refused`], it was a
    /// session: the handler saw it open.
    OverCapacity,
    /// The connection was accepted but could not be served (connection limit, a descriptor
    /// the model cannot watch, no descriptors left). Such a connection never becomes a
    /// session: the handler is never told of it; it is only counted.
    Refused,
    /// The server shut down.
    ServerShutdown,
}

impl CloseReason {
    /// Every reason, in the order of [`CloseReason::index`].
    pub const ALL: [CloseReason; 13] = [
        CloseReason::PeerClosed,
        CloseReason::Reset,
        CloseReason::Error,
        CloseReason::IdleTimeout,
        CloseReason::SendQueueFull,
        CloseReason::InputOverflow,
        CloseReason::ProtocolError,
        CloseReason::Local,
        CloseReason::Refused,
        CloseReason::ServerShutdown,
        CloseReason::RateLimited,
        CloseReason::LoginTimeout,
        CloseReason::OverCapacity,
    ];

    /// A dense index, for counters.
    pub fn index(self) -> usize {
        match self {
            CloseReason::PeerClosed => 0,
            CloseReason::Reset => 1,
            CloseReason::Error => 2,
            CloseReason::IdleTimeout => 3,
            CloseReason::SendQueueFull => 4,
            CloseReason::InputOverflow => 5,
            CloseReason::ProtocolError => 6,
            CloseReason::Local => 7,
            CloseReason::Refused => 8,
            CloseReason::ServerShutdown => 9,
            CloseReason::RateLimited => 10,
            CloseReason::LoginTimeout => 11,
            CloseReason::OverCapacity => 12,
        }
    }

    /// A short stable name, as used in logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer closed",
            CloseReason::Reset => "reset",
            CloseReason::Error => "error",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::SendQueueFull => "send queue full",
            CloseReason::InputOverflow => "input overflow",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::Local => "closed locally",
            CloseReason::Refused => "refused",
            CloseReason::ServerShutdown => "server shutdown",
            CloseReason::RateLimited => "rate limited",
            CloseReason::LoginTimeout => "login timeout",
            CloseReason::OverCapacity => "over capacity",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
