//! The chat's own counters, beside the engine's.

use iomodels_proto::ResultCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The kinds of request, for counting answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// 201, answered by 202.
    Login,
    /// 206, answered by 207.
    RoomEnter,
    /// 215, answered by 216.
    RoomLeave,
    /// 221, answered by 222.
    RoomChat,
}

impl RequestKind {
    /// Every kind, in the order of [`RequestKind::index`].
    pub const ALL: [RequestKind; 4] = [
        RequestKind::Login,
        RequestKind::RoomEnter,
        RequestKind::RoomLeave,
        RequestKind::RoomChat,
    ];

    /// A dense index, for counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The request's packet id.
    pub fn packet_id(self) -> u16 {
        match self {
            RequestKind::Login => 201,
            RequestKind::RoomEnter => 206,
            RequestKind::RoomLeave => 215,
            RequestKind::RoomChat => 221,
        }
    }

    /// A short stable name.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Login => "login",
            RequestKind::RoomEnter => "room-enter",
            RequestKind::RoomLeave => "room-leave",
            RequestKind::RoomChat => "room-chat",
        }
    }
}

/// Answers counted per kind of request and result code.
pub type Answers = [[u64; ResultCode::ALL.len()]; RequestKind::ALL.len()];

/// The chat's own counters, beside the engine's.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    logins: AtomicU64,
    chats: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Sessions not logged in yet (see `guard::Inflow`).
    pub(crate) anonymous: AtomicUsize,
    /// Requests read and not yet handled, over every session.
    pub(crate) pending: AtomicUsize,
    /// Logins waiting for their password check.
    pub(crate) verifying: AtomicUsize,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) login_timeouts: AtomicU64,
    pub(crate) over_capacity: AtomicU64,
    answers: [[AtomicU64; ResultCode::ALL.len()]; RequestKind::ALL.len()],
}

impl Counters {
    pub(crate) fn login(&self) {
        self.logins.fetch_add(1, Relaxed);
    }
    pub(crate) fn chat(&self) {
        self.chats.fetch_add(1, Relaxed);
    }

    /// A request of `kind` was answered with `result`.
    pub(crate) fn answered(&self, kind: RequestKind, result: ResultCode) {
        if let Some(code) = ResultCode::ALL.iter().position(|c| *c == result) {
            self.answers[kind.index()][code].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> ChatStats {
        ChatStats {
            logins: self.logins.load(Relaxed),
            chats: self.chats.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
            // Acquire: pairs with the Release in `ChatHandler::data`, so a reader that sees
            // a request counted sees it queued for the logic thread too.
            requests: self.requests.load(Ordering::Acquire),
            dropped: self.dropped.load(Relaxed),
            anonymous: self.anonymous.load(Relaxed) as u64,
            pending: self.pending.load(Relaxed) as u64,
            verifying: self.verifying.load(Relaxed) as u64,
            rate_limited: self.rate_limited.load(Relaxed),
            login_timeouts: self.login_timeouts.load(Relaxed),
            over_capacity: self.over_capacity.load(Relaxed),
            answers: self
                .answers
                .each_ref()
                .map(|row| row.each_ref().map(|c| c.load(Relaxed))),
        }
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
    /// Requests decoded. In [`crate::Mode::Logic`] a request is counted once it is queued for
    /// the logic thread: a shutdown begun after it was counted answers it; the logic thread
    /// may answer it a moment before it is counted. In [`crate::Mode::Io`] a request is
    /// counted before it is handled, so an answered request is always in the live count.
    /// The counts from [`crate::ChatServer::join`] are exact in both modes.
    pub requests: u64,
    /// Requests decoded after shutdown began, dropped unanswered (see
    /// [`crate::ChatServer::shutdown`]). Every other request of [`ChatStats::requests`] was
    /// answered.
    pub dropped: u64,
    /// Sessions open now that have not logged in (a gauge).
    pub anonymous: u64,
    /// Requests read and not yet handled, over every session (a gauge: the logic queue's
    /// depth, with the requests waiting behind a password check).
    pub pending: u64,
    /// Logins waiting for their password check now (a gauge).
    pub verifying: u64,
    /// Sessions closed for going over a rate limit.
    pub rate_limited: u64,
    /// Sessions closed for not logging in by the deadline.
    pub login_timeouts: u64,
    /// Sessions turned away by a cap (sessions not logged in, sessions per address).
    pub over_capacity: u64,
    /// Answers by kind of request ([`RequestKind::index`]) and result code (the position
    /// in [`ResultCode::ALL`]); see [`ChatStats::answered`].
    pub answers: Answers,
}

impl ChatStats {
    /// Requests of `kind` answered with `result`.
    pub fn answered(&self, kind: RequestKind, result: ResultCode) -> u64 {
        ResultCode::ALL
            .iter()
            .position(|c| *c == result)
            .map_or(0, |code| self.answers[kind.index()][code])
    }
}
