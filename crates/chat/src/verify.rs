//! The password checks: a small pool of threads, so that a check that costs milliseconds
//! by design (argon2) never runs on an I/O thread or stalls the game logic.
//!
//! The game logic hands a [`Job`] over and goes on with other sessions; the session whose
//! login is being checked has its later requests held back by the logic, so the login's
//! answer still comes first. The result comes back through the `done` callback given at
//! start (into the logic thread's queue, or under the world's lock).
//!
//! The job queue is closed with [`Verifiers::close`]: each thread finishes its job and
//! ends, and [`Verifiers::join`] waits for them.

use crate::store::{Refusal, UserStore};
use iomodels_engine::Session;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A login whose password is to be checked.
pub(crate) struct Job {
    pub(crate) session: Session,
    pub(crate) user_id: String,
    pub(crate) password: Vec<u8>,
}

/// A checked login.
pub(crate) struct Verified {
    pub(crate) session: Session,
    pub(crate) user_id: String,
    pub(crate) result: Result<(), Refusal>,
}

/// Where results go.
pub(crate) type Done = Arc<dyn Fn(Verified) + Send + Sync>;

/// The pool.
pub(crate) struct Verifiers {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Verifiers {
    /// Start `threads` threads checking with `store`, each result handed to `done`.
    pub(crate) fn start(
        threads: usize,
        store: Arc<dyn UserStore>,
        done: Done,
    ) -> std::io::Result<Verifiers> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let verifiers = Verifiers {
            queue: Mutex::new(Some(queue)),
            threads: Mutex::new(Vec::new()),
        };
        for index in 0..threads {
            let (jobs, store, done) = (jobs.clone(), store.clone(), done.clone());
            let thread = std::thread::Builder::new()
                .name(format!("chat-verify-{index}"))
                .spawn(move || loop {
                    // One thread waits on the queue at a time; the others on the lock.
                    let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = job else { return };
                    let result = store.check(&job.user_id, &job.password);
                    done(Verified {
                        session: job.session,
                        user_id: job.user_id,
                        result,
                    });
                });
            match thread {
                Ok(thread) => verifiers.lock_threads().push(thread),
                Err(e) => {
                    verifiers.close();
                    verifiers.join();
                    return Err(e);
                }
            }
        }
        Ok(verifiers)
    }

    /// Queue a check. `false` if the pool is closed (the server is going away).
    pub(crate) fn submit(&self, job: Job) -> bool {
        match &*self.queue.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(queue) => queue.send(job).is_ok(),
            None => false,
        }
    }

    /// Take no more jobs; each thread ends after the jobs already queued.
    pub(crate) fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Wait for the threads to end (after [`Verifiers::close`]).
    pub(crate) fn join(&self) {
        for thread in std::mem::take(&mut *self.lock_threads()) {
            let _ = thread.join();
        }
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(|p| p.into_inner())
    }
}
