//! Event-driven `room-chat` bots (Linux): a few threads, each running many bots over
//! non-blocking sockets and one edge-triggered epoll instance (`iomodels_sys::Epoll`).
//!
//! Each bot is a small state machine: connecting, logging in, entering its room (its 207,
//! then its 209), joined (waiting for every thread's bots: the swarm's barrier has one
//! party per thread), chatting at its pace, draining (its fin sent, waiting for every
//! member's), done. What a bot checks is the thread-per-bot path's own [`ChatCheck`].
//!
//! Cost per notify: no syscall of its own. A readiness event is answered by reading until
//! `EWOULDBLOCK` into the thread's one 64 KiB buffer (a partial packet at its end is kept by
//! the bot until the next read), and every packet of a read is handled straight from that
//! buffer; a 223 is checked without being decoded into an owned [`Response`]. The fan-out
//! latency takes its time right after the read that returned the notify, so the time a
//! notify waited in the socket (for a busy thread) is counted, but there is one clock read
//! per read, not per notify. The bots of a thread share one [`Outcome`], so one pair of
//! histograms, not one per bot.
//!
//! Pacing: a binary heap of the bots' next wake-ups (a chat due, the chatting's end, a
//! response's or the drain's deadline); `epoll_wait` sleeps until the earliest, rounded up
//! to the millisecond (a chat goes out at most a millisecond late; it carries the time it
//! actually left). A bot has one wake-up at a time; an entry of the heap that is no longer
//! its wake-up is skipped.

use super::room_chat::{ChatCheck, ChatMessage};
use super::{Outcome, Swarm};
use crate::client::ClientError;
use crate::error::Error;
use iomodels_proto::{
    id, split_frame, Direction, Frame, Request, Response, ResultCode, MAX_USER_ID_LEN,
};
use iomodels_sys::cpu::thread_cpu_time;
use iomodels_sys::socket::connect_in_progress;
use iomodels_sys::{Epoll, HANGUP, READABLE, WRITABLE};
use socket2::{Domain, Protocol, Socket, Type};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes a thread reads per `read` call (a packet is at most 8 KiB).
const READ_SIZE: usize = 64 * 1024;
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// The longest `epoll_wait` when no wake-up is due (a bot waiting for the barrier has
/// none).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Size of the user id field of a 223 (32 bytes of text and a NUL); the message follows.
const USER_ID_FIELD: usize = MAX_USER_ID_LEN + 1;

/// Start `threads` threads running the swarm's bots, an even share each (`threads` is at
/// least 1 and at most the number of bots). Each returns the [`Outcome`] of all its bots.
pub(super) fn spawn(swarm: &Arc<Swarm>, threads: usize) -> Result<Vec<JoinHandle<Outcome>>, Error> {
    let bots = swarm.config.bots;
    (0..threads)
        .map(|t| {
            let share = t * bots / threads..(t + 1) * bots / threads;
            let swarm = swarm.clone();
            std::thread::Builder::new()
                .name(format!("bots-{t}"))
                .spawn(move || {
                    let mut outcome = Shard::new(&swarm, share).run();
                    // A new thread starts at zero: this is all its bots used.
                    outcome.cpu = thread_cpu_time();
                    outcome
                })
                .map_err(|source| Error::Io {
                    context: "spawning a bot thread",
                    source,
                })
        })
        .collect()
}

/// Where a bot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Its connect is on its way.
    Connecting,
    /// Its 201 is sent; waiting for the 202.
    LoggingIn,
    /// Its 206 is sent; waiting for the 207.
    Entering,
    /// Its 207 came; waiting for the 209.
    Listing,
    /// In its room; waiting for every bot of the swarm to be.
    Joined,
    /// Chatting until the swarm's duration is over.
    Chatting,
    /// Its fin is sent; waiting for every member's, and every answer.
    Draining,
    /// Ran to its end; its connection is closed.
    Done,
    /// Stopped by an error (counted); its connection is closed.
    Failed,
}

/// One bot.
struct Bot {
    /// Its number in the swarm.
    id: usize,
    /// `None` once it is done or failed.
    stream: Option<TcpStream>,
    state: State,
    /// When the request it waits for (connect, login, enter) was sent.
    asked: Instant,
    /// Its one wake-up: a response's deadline, its next chat or the chatting's end, the
    /// drain's deadline. Entries of the heap that are not this are stale.
    wake: Option<Instant>,
    /// A partial packet left at the end of the last read.
    input: Vec<u8>,
    /// Bytes not yet taken by the socket.
    output: Vec<u8>,
    check: ChatCheck,
    /// Chats sent.
    seq: u64,
    /// When its next chat is due.
    next: Instant,
}

/// The bots of one thread.
struct Shard<'a> {
    swarm: &'a Swarm,
    /// `None` if it could not be made (every bot then failed at once).
    epoll: Option<Epoll>,
    bots: Vec<Bot>,
    /// (when, bot index): the bots' wake-ups, earliest first.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    outcome: Outcome,
    /// The thread's read buffer.
    buf: Box<[u8]>,
    /// Bots before [`State::Joined`] that have not failed.
    joining: usize,
    /// Bots neither done nor failed.
    live: usize,
    /// When chatting ends (set once every bot of the swarm joined).
    chat_end: Instant,
}

impl<'a> Shard<'a> {
    /// The bots `share`, each with its connect started.
    fn new(swarm: &'a Swarm, share: Range<usize>) -> Shard<'a> {
        let now = Instant::now();
        let epoll = Epoll::new();
        let mut shard = Shard {
            swarm,
            epoll: None,
            bots: Vec::with_capacity(share.len()),
            timers: BinaryHeap::with_capacity(share.len()),
            outcome: Outcome::new(),
            buf: vec![0; READ_SIZE].into_boxed_slice(),
            joining: share.len(),
            live: share.len(),
            chat_end: now,
        };
        for bot in share {
            shard.bots.push(Bot {
                id: bot,
                stream: None,
                state: State::Connecting,
                asked: now,
                wake: None,
                input: Vec::new(),
                output: Vec::with_capacity(512),
                check: ChatCheck::new(swarm, bot),
                seq: 0,
                next: now,
            });
        }
        match epoll {
            Ok(epoll) => shard.epoll = Some(epoll),
            Err(source) => {
                for i in 0..shard.bots.len() {
                    shard.fail(
                        i,
                        ClientError::Io {
                            context: "creating an epoll instance",
                            source: io::Error::new(source.kind(), source.to_string()),
                        },
                    );
                }
                return shard;
            }
        }
        for i in 0..shard.bots.len() {
            shard.connect(i);
        }
        shard
    }

    /// Run the bots to their end: join, wait for the swarm, chat, drain.
    fn run(mut self) -> Outcome {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        while self.joining > 0 {
            self.turn(&mut events);
        }
        self.swarm.ready.wait();
        let start = Instant::now();
        self.chat_end = start + self.swarm.config.duration;
        for i in 0..self.bots.len() {
            if self.bots[i].state == State::Joined {
                let bot = &mut self.bots[i];
                bot.state = State::Chatting;
                bot.next = self.swarm.first_op(start, bot.id);
                let at = bot.next.min(self.chat_end);
                self.set_timer(i, at);
            }
        }
        while self.live > 0 {
            self.turn(&mut events);
        }
        self.outcome
    }

    /// Wait for readiness or the next wake-up, and handle what came.
    fn turn(&mut self, events: &mut [libc::epoll_event]) {
        let Some(epoll) = &self.epoll else {
            // Every bot failed when the instance could not be made.
            return;
        };
        let now = Instant::now();
        let wait = match self.timers.peek() {
            Some(Reverse((at, _))) => at.saturating_duration_since(now).min(IDLE_WAIT),
            None => IDLE_WAIT,
        };
        let ready = match epoll.wait(events, wait) {
            Ok(n) => n,
            Err(source) => {
                // Not seen in practice (only a bad descriptor or buffer makes it fail): stop
                // every bot rather than spin.
                for i in 0..self.bots.len() {
                    self.fail(
                        i,
                        ClientError::Io {
                            context: "waiting on epoll",
                            source: io::Error::new(source.kind(), source.to_string()),
                        },
                    );
                }
                return;
            }
        };
        for event in &events[..ready] {
            let (bits, token) = (event.events, event.u64);
            self.readiness(token as usize, bits);
        }
        self.fire_timers(Instant::now());
    }

    /// Start bot `i`'s connect to its instance.
    fn connect(&mut self, i: usize) {
        let addr = self.swarm.addr_of(self.bots[i].id);
        let stream = match start_connect(addr) {
            Ok(stream) => stream,
            Err(source) => {
                return self.fail(
                    i,
                    ClientError::Io {
                        context: "connecting",
                        source,
                    },
                )
            }
        };
        let epoll = self
            .epoll
            .as_ref()
            .expect("connects start once epoll is made");
        if let Err(source) = epoll.add(stream.as_raw_fd(), i as u64) {
            return self.fail(
                i,
                ClientError::Io {
                    context: "watching a socket with epoll",
                    source,
                },
            );
        }
        let bot = &mut self.bots[i];
        bot.stream = Some(stream);
        bot.asked = Instant::now();
        let at = bot.asked + self.swarm.config.response_timeout;
        self.set_timer(i, at);
    }

    /// Bot `i`'s socket is ready for what `bits` say.
    fn readiness(&mut self, i: usize, bits: u32) {
        match self.bots[i].state {
            State::Done | State::Failed => return,
            State::Connecting => {
                if bits & (WRITABLE | HANGUP) != 0 {
                    self.connected(i);
                }
                return;
            }
            _ => {}
        }
        if bits & (READABLE | HANGUP) != 0 {
            self.read(i);
        }
        if bits & WRITABLE != 0 && !self.bots[i].output.is_empty() {
            self.flush(i);
        }
    }

    /// Bot `i`'s connect finished, one way or the other: on success it logs in.
    fn connected(&mut self, i: usize) {
        let Some(stream) = &self.bots[i].stream else {
            return;
        };
        let result = match stream.take_error() {
            Ok(Some(error)) | Err(error) => Err(error),
            Ok(None) => stream.peer_addr().map(drop),
        };
        match result {
            Ok(()) => {}
            // Not connected yet, and no error: a spurious wake-up.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(source) => {
                return self.fail(
                    i,
                    ClientError::Io {
                        context: "connecting",
                        source,
                    },
                )
            }
        }
        let now = Instant::now();
        self.outcome.connected += 1;
        self.outcome
            .request_done(self.swarm, self.bots[i].asked, now);
        let request = Request::Login {
            user_id: self.swarm.user_id(self.bots[i].id),
            password: b"bot".to_vec(),
        };
        self.ask(i, State::LoggingIn, &request, now);
    }

    /// Send bot `i`'s next request of the joining phase and wait for its answer in `state`.
    fn ask(&mut self, i: usize, state: State, request: &Request, now: Instant) {
        self.bots[i].state = state;
        self.bots[i].asked = now;
        self.set_timer(i, now + self.swarm.config.response_timeout);
        self.send(i, request);
    }

    /// Queue `request` on bot `i`'s connection and write what the socket takes.
    fn send(&mut self, i: usize, request: &Request) {
        request.encode(&mut self.bots[i].output);
        self.flush(i);
    }

    /// Write bot `i`'s queued bytes until they are all out or the socket is full (its
    /// next writable edge brings the rest).
    fn flush(&mut self, i: usize) {
        let bot = &mut self.bots[i];
        let Some(mut stream) = bot.stream.as_ref() else {
            return;
        };
        let mut written = 0;
        let mut error = None;
        while written < bot.output.len() {
            match stream.write(&bot.output[written..]) {
                Ok(0) => {
                    error = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        bot.output.drain(..written);
        if let Some(source) = error {
            self.fail(
                i,
                ClientError::Io {
                    context: "sending",
                    source,
                },
            );
        }
    }

    /// Read everything bot `i`'s socket has, handling every whole packet as it comes.
    fn read(&mut self, i: usize) {
        let mut buf = std::mem::take(&mut self.buf);
        let bot = &mut self.bots[i];
        let mut filled = bot.input.len();
        buf[..filled].copy_from_slice(&bot.input);
        bot.input.clear();
        let mut ended = None;
        // Until the socket is empty, or the bot ended while handling a packet.
        while let Some(mut stream) = self.bots[i].stream.as_ref() {
            match stream.read(&mut buf[filled..]) {
                Ok(0) => {
                    ended = Some(ClientError::Closed);
                    break;
                }
                Ok(n) => {
                    // One clock read per read: every packet of it arrived by now.
                    let now = Instant::now();
                    filled += n;
                    let consumed = self.packets(i, &buf[..filled], now);
                    buf.copy_within(consumed..filled, 0);
                    filled -= consumed;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(match e.kind() {
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                            ClientError::Closed
                        }
                        _ => ClientError::Io {
                            context: "receiving",
                            source: e,
                        },
                    });
                    break;
                }
            }
        }
        let bot = &mut self.bots[i];
        if bot.stream.is_some() {
            bot.input.extend_from_slice(&buf[..filled]);
        }
        self.buf = buf;
        if let Some(error) = ended {
            self.fail(i, error);
        }
    }

    /// Handle the whole packets at the front of `bytes`, which arrived by `now`; how many
    /// bytes they took. Stops early if the bot ends.
    fn packets(&mut self, i: usize, bytes: &[u8], now: Instant) -> usize {
        let mut at = 0;
        while self.bots[i].stream.is_some() {
            match split_frame(&bytes[at..], &Direction::ToClient) {
                Ok(Some(frame)) => {
                    at += frame.len();
                    self.packet(i, frame, now);
                }
                Ok(None) => break,
                Err(error) => {
                    self.fail(i, ClientError::Protocol(error));
                    break;
                }
            }
        }
        at
    }

    /// Handle one packet for bot `i`.
    fn packet(&mut self, i: usize, frame: Frame<'_>, now: Instant) {
        let swarm = self.swarm;
        let bot = &mut self.bots[i];
        let chatting = matches!(bot.state, State::Joined | State::Chatting | State::Draining);
        if chatting && frame.header.id == id::ROOM_CHAT_NOTIFY {
            // The judge let only a 223 of its exact size through.
            let (user_id, message) = frame.body.split_at(USER_ID_FIELD);
            let now = swarm.nanos_at(now);
            bot.check
                .notify(swarm, &mut self.outcome, text(user_id), text(message), now);
            return self.drained(i);
        }
        let response = match Response::decode(frame) {
            Ok(response) => response,
            Err(error) => return self.fail(i, ClientError::Protocol(error)),
        };
        match (bot.state, response) {
            (State::Joined | State::Chatting | State::Draining, response) => {
                bot.check.response(swarm, &mut self.outcome, response, now);
                self.drained(i);
            }
            (State::LoggingIn, Response::Login { result: 0 }) => {
                self.outcome.request_done(swarm, bot.asked, now);
                let room = swarm.room_of(bot.id) as i32;
                self.ask(i, State::Entering, &Request::RoomEnter { room }, now);
            }
            (State::LoggingIn, Response::Login { .. }) => {
                self.outcome.failed += 1;
                self.stop(i, State::Failed);
            }
            (State::Entering, Response::RoomEnter { result: 0 }) => {
                self.outcome.request_done(swarm, bot.asked, now);
                bot.state = State::Listing;
            }
            (State::Entering, Response::RoomEnter { result }) => {
                tracing::warn!(bot = bot.id, result = ?ResultCode::from_code_i16(result), "room enter refused");
                self.outcome.failed += 1;
                self.stop(i, State::Failed);
            }
            (State::Listing, Response::RoomUserList(_)) => {
                bot.state = State::Joined;
                bot.wake = None;
                self.joining -= 1;
            }
            _ => {
                self.outcome.protocol_errors += 1;
                self.stop(i, State::Failed);
            }
        }
    }

    /// A draining bot `i` with nothing more due is done.
    fn drained(&mut self, i: usize) {
        let bot = &self.bots[i];
        if bot.state == State::Draining && bot.check.is_done() {
            self.stop(i, State::Done);
        }
    }

    /// Wake every bot whose time has come.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.bots[i].wake != Some(at) {
                continue;
            }
            self.bots[i].wake = None;
            match self.bots[i].state {
                State::Connecting | State::LoggingIn | State::Entering | State::Listing => {
                    let timeout = self.swarm.config.response_timeout;
                    self.fail(i, ClientError::Timeout(timeout));
                }
                State::Chatting => self.chat(i, now),
                State::Draining => {
                    // Whatever did not come in time is lost.
                    let bot = &mut self.bots[i];
                    bot.check.give_up(self.swarm, &mut self.outcome);
                    self.stop(i, State::Done);
                }
                State::Joined | State::Done | State::Failed => {}
            }
        }
    }

    /// Bot `i`'s chats due by `now` go out; after the chatting's end, its fin.
    fn chat(&mut self, i: usize, now: Instant) {
        let swarm = self.swarm;
        let bot = &mut self.bots[i];
        if now >= self.chat_end {
            // Say how many were sent, then wait for everyone's fin: after it, nothing is
            // due.
            let message = ChatMessage::fin(bot.id, bot.seq);
            bot.check.sent(now);
            bot.state = State::Draining;
            self.set_timer(i, now + swarm.config.drain_timeout);
            return self.send(i, &Request::RoomChat { message });
        }
        while now >= bot.next {
            let message = ChatMessage::chat(bot.id, bot.seq, swarm.nanos_at(now));
            bot.check.sent(now);
            bot.seq += 1;
            swarm.sent[bot.id].store(bot.seq, Relaxed);
            bot.next += swarm.period();
            Request::RoomChat { message }.encode(&mut bot.output);
        }
        let at = bot.next.min(self.chat_end);
        self.set_timer(i, at);
        self.flush(i);
    }

    /// Bot `i` wakes at `at`.
    fn set_timer(&mut self, i: usize, at: Instant) {
        self.bots[i].wake = Some(at);
        self.timers.push(Reverse((at, i)));
    }

    /// Bot `i` stops on `error`.
    fn fail(&mut self, i: usize, error: ClientError) {
        self.outcome.error(error);
        self.stop(i, State::Failed);
    }

    /// Bot `i` ends in `end` (done or failed): its connection closes (which takes it out of
    /// the epoll set); a bot that ran to its end adds its room's order.
    fn stop(&mut self, i: usize, end: State) {
        let bot = &mut self.bots[i];
        match bot.state {
            State::Done | State::Failed => return,
            State::Connecting | State::LoggingIn | State::Entering | State::Listing => {
                self.joining -= 1
            }
            State::Joined | State::Chatting | State::Draining => {}
        }
        if end == State::Done {
            bot.check.finish(&mut self.outcome);
        }
        bot.state = end;
        bot.stream = None;
        bot.wake = None;
        bot.input = Vec::new();
        bot.output = Vec::new();
        self.live -= 1;
        self.swarm.finished.fetch_add(1, Relaxed);
    }
}

/// The text of a NUL-padded field: its bytes before the first NUL.
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A non-blocking TCP socket (close-on-exec, `TCP_NODELAY`) with its connect to `addr`
/// started.
fn start_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if connect_in_progress(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}
