//! Live counters: one cache-line-aligned block per worker thread, summed when read.

use crate::close::CloseReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One worker's counters. Written by its thread (and by senders to its sessions), so
/// workers never share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
}

impl Counters {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Relaxed);
    }
    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
        self.messages_in.fetch_add(1, Relaxed);
    }
    pub(crate) fn sent(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Relaxed);
    }
    pub(crate) fn message_out(&self) {
        self.messages_out.fetch_add(1, Relaxed);
    }
}

/// Every worker's counters, summed on demand.
#[derive(Debug, Default)]
pub(crate) struct CounterSet {
    workers: Mutex<Vec<Arc<Counters>>>,
}

impl CounterSet {
    /// A block for one more worker.
    pub(crate) fn add_worker(&self) -> Arc<Counters> {
        let counters = Arc::new(Counters::default());
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(counters.clone());
        counters
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = Stats::default();
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            stats.accepted += w.accepted.load(Relaxed);
            stats.refused += w.refused.load(Relaxed);
            for (sum, c) in stats.closed.iter_mut().zip(&w.closed) {
                *sum += c.load(Relaxed);
            }
            stats.bytes_in += w.bytes_in.load(Relaxed);
            stats.bytes_out += w.bytes_out.load(Relaxed);
            stats.messages_in += w.messages_in.load(Relaxed);
            stats.messages_out += w.messages_out.load(Relaxed);
        }
        let closed: u64 = stats.closed.iter().sum();
        stats.active = stats.accepted.saturating_sub(closed);
        stats
    }
}

/// A snapshot of a server's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections that became sessions.
    pub accepted: u64,
    /// Sessions open now.
    pub active: u64,
    /// Connections accepted and closed at once, never sessions (limit reached, a
    /// descriptor the model cannot watch, descriptors exhausted).
    pub refused: u64,
    /// Sessions closed, by [`CloseReason::index`].
    pub closed: [u64; CloseReason::ALL.len()],
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// Reads delivered to the handler.
    pub messages_in: u64,
    /// Messages queued with [`crate::Session::send`].
    pub messages_out: u64,
}

impl Stats {
    /// Sessions closed for `reason`.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()]
    }
}
