//! How other threads hand a worker the sessions that need it.

use crate::runtime::Wake;
use crate::session::{Outbox, Owner, Session};
use crate::stats::Counters;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

thread_local! {
    /// The mailbox of the worker running on this thread (0 on other threads).
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// A worker's queue of sessions with new output or a close request, and the waker that
/// interrupts its wait. A session is queued at most once until the worker takes it (the
/// outbox's `scheduled` flag), and the worker is woken only when the queue goes from empty
/// to non-empty, so a broadcast to a thousand sessions costs one wake-up.
pub(crate) struct Mailbox {
    id: usize,
    queue: Mutex<Vec<Session>>,
    waker: Arc<dyn Wake>,
    /// The worker's counters, which its sessions reach through their owner.
    counters: Arc<Counters>,
}

impl Mailbox {
    /// A mailbox for the worker on the calling thread.
    pub(crate) fn new(waker: Arc<dyn Wake>, counters: Arc<Counters>) -> Mailbox {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        WORKER.with(|w| w.set(id));
        Mailbox {
            id,
            queue: Mutex::new(Vec::new()),
            waker,
            counters,
        }
    }

    /// Exchange the queue for `spare` (which must be empty): the caller gets everything
    /// queued so far, and the queue keeps the spare's allocation.
    pub(crate) fn swap(&self, spare: &mut Vec<Session>) {
        debug_assert!(spare.is_empty());
        std::mem::swap(
            spare,
            &mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()),
        );
    }

    /// Everything queued so far.
    pub(crate) fn take(&self) -> Vec<Session> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Owner for Mailbox {
    fn schedule(&self, session: &Session, _outbox: &mut Outbox) -> bool {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.push(session.clone());
            queue.len() == 1
        };
        // The worker drains its mailbox every round, so a send from its own thread needs
        // no wake-up.
        if was_empty && WORKER.with(|w| w.get()) != self.id {
            self.waker.wake();
        }
        true
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }
}
