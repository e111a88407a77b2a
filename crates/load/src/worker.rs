//! One load thread: its share of the connections on its own readiness queue
//! ([`crate::poller`]: edge-triggered epoll on Linux, WSAPoll on Windows).
//!
//! Per connection the thread keeps a few counters and the socket, nothing else: what was
//! sent is a function of the stream position ([`crate::pattern`]), so one scratch buffer
//! per thread serves all writes and one all reads. Nothing is allocated per message.
//!
//! A message costs a read and a write (pipelined: a read and a write per batch), plus a
//! share of a wait, the same syscalls a lean echo server pays.

use crate::config::BenchConfig;
use crate::error::Error;
use crate::pattern;
use crate::poller::{self, Event, Poller as _};
use crate::report::ErrorCounts;
use hdrhistogram::Histogram;
use iomodels_sys::cpu::thread_cpu_time;
use iomodels_sys::socket::connect_in_progress;
use socket2::{SockAddr, Socket};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Scratch buffer size for reads and for writes.
const BUFFER: usize = 64 * 1024;
/// Connection attempts in flight at once per process.
const CONNECTS_IN_FLIGHT: usize = 1024;
/// Longest wait when nothing is due, so phase deadlines are never missed by much.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Counters a load thread publishes for progress; written with relaxed stores once per
/// loop turn, read by the main thread.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Published {
    pub(crate) open: AtomicU64,
    pub(crate) messages: AtomicU64,
    pub(crate) connect_failed: AtomicU64,
    pub(crate) connect_timeout: AtomicU64,
    pub(crate) disconnected: AtomicU64,
    pub(crate) verify_failed: AtomicU64,
}

impl Published {
    /// The error counts published so far.
    pub(crate) fn errors(&self) -> ErrorCounts {
        ErrorCounts {
            connect_failed: self.connect_failed.load(Ordering::Relaxed),
            connect_timeout: self.connect_timeout.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
            verify_failed: self.verify_failed.load(Ordering::Relaxed),
        }
    }
}

/// When traffic starts, when the window opens and when it closes; or an order to stop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Schedule {
    /// Traffic from `start`; the measured window is `[measure, end)`; after it the
    /// connections stay open, silent, until `release`.
    Run {
        start: Instant,
        measure: Instant,
        end: Instant,
        release: Instant,
    },
    /// Another thread failed: close everything and return.
    Abort,
}

/// The go signal: the main thread fills it once every thread has connected.
#[derive(Debug, Default)]
pub(crate) struct StartGate {
    schedule: Mutex<Option<Schedule>>,
    ready: Condvar,
}

impl StartGate {
    /// Publish the schedule and wake every thread.
    pub(crate) fn open(&self, schedule: Schedule) {
        *self.schedule.lock().unwrap_or_else(|p| p.into_inner()) = Some(schedule);
        self.ready.notify_all();
    }

    fn wait(&self) -> Schedule {
        let mut guard = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(schedule) = *guard {
                return schedule;
            }
            guard = self.ready.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// What a load thread measured over the window.
pub(crate) struct ThreadResult {
    pub(crate) histogram: Histogram<u64>,
    pub(crate) messages: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) errors: ErrorCounts,
    pub(crate) cpu: Duration,
    pub(crate) held: usize,
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not yet attempted.
    Idle,
    /// connect(2) in progress.
    Connecting,
    /// Established.
    Open,
    /// Failed or closed; its socket is gone.
    Closed,
}

/// One connection. Stream positions are in bytes since the connection opened.
struct Conn {
    socket: Option<Socket>,
    state: State,
    /// The last write stopped at a full socket buffer; wait for writability.
    blocked: bool,
    /// On the thread's list of connections to flush.
    dirty: bool,
    /// Bytes written.
    sent: u64,
    /// Bytes read back and verified.
    received: u64,
    /// Messages that should have been written by now.
    target: u64,
    /// When a connect attempt times out (nanoseconds since the thread's base).
    deadline: u64,
}

/// The load thread.
pub(crate) struct Worker {
    config: Arc<BenchConfig>,
    /// This thread's index; it owns global connections `index, index + threads, ...`.
    index: usize,
    threads: usize,
    poller: poller::Platform,
    conns: Vec<Conn>,
    /// Closed loop: send time of message `m` of connection `j` at `j * pipeline + m % pipeline`.
    stamps: Vec<u64>,
    dirty: Vec<u32>,
    read_buffer: Vec<u8>,
    write_buffer: Vec<u8>,
    base: Instant,
    histogram: Histogram<u64>,
    published: Arc<Published>,
    errors: ErrorCounts,
    open: usize,
    /// Messages echoed since traffic began.
    total_messages: u64,
    measuring: bool,
    messages: u64,
    bytes_out: u64,
    bytes_in: u64,
    /// Open loop: per-thread spacing of sends in nanoseconds, and the next slot. Slot
    /// `g` is message `g / n` of local connection `g % n`, due at `start + g * interval`.
    interval: f64,
    next_slot: u64,
    start: u64,
}

impl Worker {
    /// Set up thread `index` of `threads`; allocates everything the run will use.
    pub(crate) fn new(
        config: Arc<BenchConfig>,
        index: usize,
        threads: usize,
        published: Arc<Published>,
    ) -> Result<Worker, Error> {
        let share = (config.connections - index).div_ceil(threads);
        let conns = (0..share)
            .map(|_| Conn {
                socket: None,
                state: State::Idle,
                blocked: false,
                dirty: false,
                sent: 0,
                received: 0,
                target: 0,
                deadline: 0,
            })
            .collect();
        let stamps = if config.rate.is_none() {
            vec![0; share * config.pipeline]
        } else {
            Vec::new()
        };
        let interval = match config.rate {
            Some(rate) => config.connections as f64 * 1e9 / (rate as f64 * share as f64),
            None => 0.0,
        };
        let histogram = crate::report::latency_histogram();
        Ok(Worker {
            index,
            threads,
            poller: poller::Platform::new()
                .map_err(|e| Error::io("creating the readiness queue", e))?,
            conns,
            stamps,
            dirty: Vec::with_capacity(share),
            read_buffer: vec![0; BUFFER],
            write_buffer: vec![0; BUFFER],
            base: Instant::now(),
            histogram,
            published,
            errors: ErrorCounts::default(),
            open: 0,
            total_messages: 0,
            measuring: false,
            messages: 0,
            bytes_out: 0,
            bytes_in: 0,
            interval,
            next_slot: 0,
            start: 0,
            config,
        })
    }

    /// Connect, report to `connected`, wait at `gate`, run the schedule, close all.
    /// None if the run was aborted before traffic began.
    pub(crate) fn run(
        mut self,
        connected: &mpsc::Sender<Result<(), Error>>,
        gate: &StartGate,
    ) -> Option<ThreadResult> {
        self.connect_all();
        let _ = connected.send(Ok(()));
        match gate.wait() {
            Schedule::Run {
                start,
                measure,
                end,
                release,
            } => {
                let cpu = self.traffic(self.ns(start), self.ns(measure), self.ns(end));
                let held = self.held();
                // The idle hold: nothing sent, nothing read, every socket kept open.
                std::thread::sleep(release.saturating_duration_since(Instant::now()));
                Some(self.finish(cpu, held))
            }
            Schedule::Abort => None,
        }
    }

    /// Nanoseconds since this thread's base (0 for instants before it).
    fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn now(&self) -> u64 {
        self.ns(Instant::now())
    }

    /// The process-wide number of local connection `local`.
    fn number(&self, local: usize) -> u64 {
        (self.index + local * self.threads) as u64
    }

    /// The run-wide number of local connection `local`, which picks its byte pattern.
    fn global(&self, local: usize) -> u64 {
        self.config.first_connection + self.number(local)
    }

    /// Publish counters for the progress display.
    fn publish(&self) {
        let p = &self.published;
        p.open.store(self.open as u64, Ordering::Relaxed);
        p.messages.store(self.total_messages, Ordering::Relaxed);
        p.connect_failed
            .store(self.errors.connect_failed, Ordering::Relaxed);
        p.connect_timeout
            .store(self.errors.connect_timeout, Ordering::Relaxed);
        p.disconnected
            .store(self.errors.disconnected, Ordering::Relaxed);
        p.verify_failed
            .store(self.errors.verify_failed, Ordering::Relaxed);
    }

    // ----- connect phase -----

    /// Open this thread's share at its share of the connect rate, each attempt bounded by
    /// the connect timeout.
    fn connect_all(&mut self) {
        let n = self.conns.len();
        let rate = self.config.connect_rate as f64 / self.threads as f64;
        let in_flight = (CONNECTS_IN_FLIGHT / self.threads).max(1);
        let timeout = self.config.connect_timeout.as_nanos() as u64;
        let began = self.now();
        let mut issued = 0;
        let mut pending = 0usize;
        // Attempts in the order issued; their deadlines are therefore ascending.
        let mut oldest = 0;
        loop {
            let now = self.now();
            let allowed = ((now - began) as f64 * rate / 1e9) as usize + 1;
            while issued < n.min(allowed) && pending < in_flight {
                if self.start_connect(issued, now + timeout) {
                    pending += 1;
                }
                issued += 1;
            }
            self.publish();
            if issued == n && pending == 0 {
                return;
            }
            let mut wait = IDLE_WAIT;
            if issued < n && pending < in_flight {
                let next = began + ((issued as f64) * 1e9 / rate) as u64;
                wait = wait.min(Duration::from_nanos(next.saturating_sub(now)));
            }
            while oldest < issued && self.conns[oldest].state != State::Connecting {
                oldest += 1;
            }
            if oldest < issued {
                let deadline = self.conns[oldest].deadline;
                wait = wait.min(Duration::from_nanos(deadline.saturating_sub(now)));
            }
            let ready = self.wait(wait);
            let now = self.now();
            for e in 0..ready {
                let event = self.poller.event(e);
                let j = event.token;
                match self.conns[j].state {
                    State::Connecting => {
                        pending -= 1;
                        self.finish_connect(j);
                    }
                    State::Open => self.on_event(event, now),
                    State::Idle | State::Closed => {}
                }
            }
            while oldest < issued {
                let conn = &self.conns[oldest];
                if conn.state == State::Connecting {
                    if conn.deadline > now {
                        break;
                    }
                    self.errors.connect_timeout += 1;
                    pending -= 1;
                    self.close(oldest);
                }
                oldest += 1;
            }
        }
    }

    /// Begin connecting local connection `j`; true if the attempt is in progress.
    fn start_connect(&mut self, j: usize, deadline: u64) -> bool {
        match self.open_socket(j) {
            Ok(in_progress) => {
                self.conns[j].deadline = deadline;
                if in_progress {
                    self.conns[j].state = State::Connecting;
                } else {
                    self.opened(j);
                }
                in_progress
            }
            Err(_) => {
                self.errors.connect_failed += 1;
                self.conns[j].socket = None;
                self.conns[j].state = State::Closed;
                false
            }
        }
    }

    /// Create, configure, register and start connecting the socket of connection `j`.
    /// Ok(true) while the connect is in progress, Ok(false) if it completed at once.
    fn open_socket(&mut self, j: usize) -> io::Result<bool> {
        let addr = self.config.addr;
        let socket = poller::Platform::socket(addr)?;
        socket.set_nodelay(true)?;
        if let IpAddr::V4(ip) = addr.ip() {
            if ip.is_loopback() {
                // Spread over 127.0.0.x so the 28k ephemeral ports of one source
                // address never run out, even with old connections in TIME_WAIT.
                let sources = self.config.source_count() as u64;
                let host = self.config.first_source + (self.number(j) % sources) as u8;
                // Windows has no such option: there bind picks the port at once.
                #[cfg(target_os = "linux")]
                iomodels_sys::socket::set_bind_address_no_port(std::os::fd::AsRawFd::as_raw_fd(
                    &socket,
                ))?;
                let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 0);
                socket.bind(&SockAddr::from(source))?;
            }
        }
        self.poller.add(&socket, j)?;
        let in_progress = match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => false,
            Err(e) if connect_in_progress(&e) => true,
            Err(e) => {
                self.poller.remove(j);
                return Err(e);
            }
        };
        self.conns[j].socket = Some(socket);
        Ok(in_progress)
    }

    /// An event on a connecting socket: did it connect?
    fn finish_connect(&mut self, j: usize) {
        let result = match &self.conns[j].socket {
            Some(socket) => socket.take_error(),
            None => return,
        };
        match result {
            Ok(None) => self.opened(j),
            Ok(Some(_)) | Err(_) => {
                self.errors.connect_failed += 1;
                self.close(j);
            }
        }
    }

    /// Connection `j` is established: count it, and stop watching it for writability
    /// until a write finds its buffer full.
    fn opened(&mut self, j: usize) {
        self.conns[j].state = State::Open;
        self.open += 1;
        self.poller.want_write(j, false);
    }

    fn wait(&mut self, timeout: Duration) -> usize {
        self.poller.wait(timeout)
    }

    /// Close connection `j`; counts it as no longer open if it was.
    fn close(&mut self, j: usize) {
        let conn = &mut self.conns[j];
        if conn.state == State::Open {
            self.open -= 1;
        }
        conn.state = State::Closed;
        if conn.socket.take().is_some() {
            self.poller.remove(j);
        }
    }

    // ----- traffic -----

    /// Send and verify until `end`; measure over `[measure, end)`. Returns the thread's
    /// CPU time over the window.
    fn traffic(&mut self, start: u64, measure: u64, end: u64) -> Duration {
        self.start = start;
        let mut cpu_start = None;
        let open_loop = self.config.rate.is_some();
        if !open_loop {
            let pipeline = self.config.pipeline as u64;
            let now = self.now();
            for j in 0..self.conns.len() {
                if self.conns[j].state == State::Open {
                    self.conns[j].target = pipeline;
                    self.flush(j, now);
                }
            }
        }
        let mut now = self.now();
        loop {
            if !self.measuring && now >= measure {
                self.measuring = true;
                cpu_start = Some(thread_cpu_time());
            }
            if now >= end {
                break;
            }
            let mut next = if self.measuring { end } else { measure };
            if open_loop {
                next = next.min(self.send_due(now));
            }
            self.publish();
            let ready = self.wait(Duration::from_nanos(next.saturating_sub(now)));
            now = self.now();
            if !self.measuring && now >= measure {
                self.measuring = true;
                cpu_start = Some(thread_cpu_time());
            }
            if now >= end {
                // Whatever arrived after the window closed is not counted.
                break;
            }
            for e in 0..ready {
                let event = self.poller.event(e);
                self.on_event(event, now);
            }
        }
        let cpu = match cpu_start {
            Some(before) => thread_cpu_time().saturating_sub(before),
            None => Duration::ZERO,
        };
        self.publish();
        cpu
    }

    /// Open loop: mark every slot due by `now` and write. Returns when the next is due.
    fn send_due(&mut self, now: u64) -> u64 {
        let n = self.conns.len() as u64;
        loop {
            let due = self.start + (self.next_slot as f64 * self.interval) as u64;
            if due > now {
                break;
            }
            let j = (self.next_slot % n) as usize;
            let conn = &mut self.conns[j];
            if conn.state == State::Open {
                conn.target = self.next_slot / n + 1;
                if !conn.dirty {
                    conn.dirty = true;
                    self.dirty.push(j as u32);
                }
            }
            self.next_slot += 1;
        }
        for d in 0..self.dirty.len() {
            let j = self.dirty[d] as usize;
            self.conns[j].dirty = false;
            self.flush(j, now);
        }
        self.dirty.clear();
        self.start + (self.next_slot as f64 * self.interval) as u64
    }

    /// Scheduled send time of message `m` on local connection `j` (open loop).
    fn intended(&self, j: usize, m: u64) -> u64 {
        let slot = m * self.conns.len() as u64 + j as u64;
        self.start + (slot as f64 * self.interval) as u64
    }

    fn on_event(&mut self, event: Event, now: u64) {
        let j = event.token;
        if self.conns[j].state != State::Open {
            return;
        }
        if event.readable || event.hangup {
            self.receive(j, now, event.hangup);
        }
        if event.writable && self.conns[j].state == State::Open {
            if self.conns[j].blocked {
                self.conns[j].blocked = false;
                self.poller.want_write(j, false);
            }
            self.flush(j, now);
        }
    }

    /// Count a lost connection and close it.
    fn disconnected(&mut self, j: usize) {
        self.errors.disconnected += 1;
        self.close(j);
    }

    /// Count a wrong echo and close the connection: its stream can no longer be trusted.
    fn verify_failed(&mut self, j: usize) {
        self.errors.verify_failed += 1;
        self.close(j);
    }

    /// Read everything available on connection `j`, verify it, record the completed
    /// messages, and (closed loop) send the next ones.
    fn receive(&mut self, j: usize, now: u64, hangup: bool) {
        let payload = self.config.payload as u64;
        let pipeline = self.config.pipeline as u64;
        let open_loop = self.config.rate.is_some();
        let global = self.global(j);
        loop {
            let Some(socket) = &self.conns[j].socket else {
                return;
            };
            let n = match (&*socket).read(&mut self.read_buffer) {
                Ok(0) => return self.disconnected(j),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.disconnected(j),
            };
            let conn = &mut self.conns[j];
            let at = conn.received;
            if at + n as u64 > conn.sent
                || !pattern::verify(global, self.config.payload, at, &self.read_buffer[..n])
            {
                return self.verify_failed(j);
            }
            conn.received += n as u64;
            let (first, done) = (at / payload, conn.received / payload);
            if !open_loop {
                conn.target = done + pipeline;
            }
            self.total_messages += done - first;
            if self.measuring {
                self.messages += done - first;
                self.bytes_in += n as u64;
                for m in first..done {
                    let sent = if open_loop {
                        self.intended(j, m)
                    } else {
                        self.stamps[j * pipeline as usize + (m % pipeline) as usize]
                    };
                    let _ = self.histogram.record(now.saturating_sub(sent).max(1));
                }
            }
            // A short read emptied the socket; the poller reports new data.
            // After a hang-up, read on until end of stream.
            if n < self.read_buffer.len() && !hangup {
                break;
            }
        }
        if !open_loop {
            self.flush(j, now);
        }
    }

    /// Write what connection `j` owes (up to its target) until done or the socket is full.
    fn flush(&mut self, j: usize, now: u64) {
        let payload = self.config.payload as u64;
        let pipeline = self.config.pipeline;
        let stamp = self.config.rate.is_none();
        let global = self.global(j);
        loop {
            let conn = &self.conns[j];
            let goal = conn.target * payload;
            if conn.blocked || conn.sent >= goal {
                return;
            }
            let Some(socket) = &conn.socket else {
                return;
            };
            let at = conn.sent;
            let len = ((goal - at) as usize).min(self.write_buffer.len());
            let buffer = &mut self.write_buffer[..len];
            pattern::fill(global, self.config.payload, at, buffer);
            let n = match (&*socket).write(buffer) {
                Ok(n) => n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.conns[j].blocked = true;
                    self.poller.want_write(j, true);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.disconnected(j),
            };
            if stamp {
                // Messages whose first byte went out in this write were sent now.
                for m in at.div_ceil(payload)..(at + n).div_ceil(payload) {
                    self.stamps[j * pipeline + (m % pipeline as u64) as usize] = now;
                }
            }
            self.conns[j].sent = at + n;
            if self.measuring {
                self.bytes_out += n;
            }
        }
    }

    /// The connections held when the window closed: open, and, in a closed loop (where
    /// every connection sends from the start), answered at least once. A server at its
    /// descriptor limit may leave connections in its listen backlog, never accepted: the
    /// kernel completed their handshake, so they look open, but they are not served.
    fn held(&self) -> usize {
        let closed_loop = self.config.rate.is_none();
        self.conns
            .iter()
            .filter(|c| c.socket.is_some() && (!closed_loop || c.received > 0))
            .count()
    }

    /// Close everything and hand over the measurements, with `held`, what was still open
    /// when the window closed.
    fn finish(mut self, cpu: Duration, held: usize) -> ThreadResult {
        for j in 0..self.conns.len() {
            self.conns[j].socket = None;
        }
        self.publish();
        ThreadResult {
            histogram: self.histogram,
            messages: self.messages,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            errors: self.errors,
            cpu,
            held,
        }
    }
}
