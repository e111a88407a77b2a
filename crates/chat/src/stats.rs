//! The chat's own counters, beside the engine's.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, Ordering};

/// The chat's own counters, beside the engine's.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    logins: AtomicU64,
    chats: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) truncated: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn login(&self) {
        self.logins.fetch_add(1, Relaxed);
    }
    pub(crate) fn chat(&self) {
        self.chats.fetch_add(1, Relaxed);
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
}
