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
    send_queue_peak: AtomicU64,
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
    /// A session's send queue holds `bytes` now: keep the largest seen. A plain load
    /// first, so that the common case (not a new peak) writes nothing shared.
    pub(crate) fn queue_depth(&self, bytes: usize) {
        let bytes = bytes as u64;
        if bytes > self.send_queue_peak.load(Relaxed) {
            self.send_queue_peak.fetch_max(bytes, Relaxed);
        }
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
            stats.send_queue_peak = stats.send_queue_peak.max(w.send_queue_peak.load(Relaxed));
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
    /// The most bytes any one session's send queue has held (a high-water mark since the
    /// server started): how close a slow reader came to [`crate::Config::send_queue_limit`].
    pub send_queue_peak: u64,
}

impl Stats {
    /// Sessions closed for `reason`.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()]
    }
}
