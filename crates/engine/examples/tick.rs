//! # Tick: the shape of a game server
//!
//! Most game servers are a fixed-rate loop: gather the players' inputs, advance the world
//! one step, send everyone the new state, sleep until the next tick. The engine's I/O
//! threads fit around that loop without sharing the world with it:
//!
//! - **The I/O threads only collect.** [`Handler::data`] turns bytes into input events and
//!   puts them on a channel; `opened` and `closed` put "joined" and "left" there too. No
//!   callback touches the world, so the world needs no lock and a callback never waits.
//! - **The tick thread owns the world.** At 20 Hz it drains the channel, moves every player
//!   one step, and sends each session the state with [`Session::send`], which works from
//!   any thread and never blocks.
//! - **Shutdown in the right order.** The tick thread sends a last `bye`, then calls
//!   [`ServerHandle::shutdown`]: the engine delivers what is queued, then closes every
//!   session. (Sends are refused once the shutdown has begun, so the goodbye goes first.)
//!
//! The game: each player is a dot on a line. Send `r` or `l` (any other byte is ignored)
//! to queue a step right or left; the world moves each player at most one step per tick.
//! Every tick, every player receives `tick N #ID=X #ID=X ...` (one entry per player, by
//! session id); a new player first receives `welcome #ID`, and everyone `bye` at the end.
//!
//! ```sh
//! cargo run -p iomodels-engine --example tick -- --model signal --seconds 60 127.0.0.1:7000
//! cargo run -p iomodels-engine --example tick -- --self-test --model blocking
//! ```
//!
//! Options: `--model NAME` (blocking, polling, select, poll, signal, epoll, uring; epoll by
//! default), `--seconds N` (stop gracefully after N seconds), `--self-test` (start on a
//! free port, play with real sockets, stop; exit 0 if it passed, 77 if the kernel cannot
//! run the model), and the address (`127.0.0.1:0` by default: a free port, printed on
//! standard error).

mod common;

use common::{Args, Failure, Outcome};
use iomodels_engine::{CloseReason, Config, Handler, ServerHandle, Session, SessionId};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const EXAMPLE: &str = "tick";

/// 20 ticks a second.
const TICK: Duration = Duration::from_millis(50);

/// Steps a player may have queued; more inputs than that are dropped (a client cannot
/// flood the world with a megabyte of `r`).
const MAX_QUEUED_STEPS: i64 = 8;

/// What the I/O threads tell the tick thread.
enum Event {
    Joined(Session),
    Step(SessionId, i64),
    Left(SessionId),
}

/// The engine handler: turns what happens on the sockets into events, nothing more.
struct Inputs {
    events: mpsc::Sender<Event>,
}

impl Handler for Inputs {
    type State = ();

    fn opened(&self, session: &Session) {
        // A send fails only once the tick thread has ended: the server is stopping.
        let _ = self.events.send(Event::Joined(session.clone()));
    }

    fn data(&self, _: &mut (), session: &Session, data: &[u8]) -> usize {
        // Every byte is a whole input, so all of `data` is consumed. (With longer inputs,
        // decode whole frames and return how many bytes they took: see the `framed` example.)
        for &byte in data {
            let step = match byte {
                b'r' => 1,
                b'l' => -1,
                _ => continue,
            };
            let _ = self.events.send(Event::Step(session.id(), step));
        }
        data.len()
    }

    fn closed(&self, _: (), session: &Session, _: CloseReason) {
        let _ = self.events.send(Event::Left(session.id()));
    }
}

/// A player: where it is, where it asked to go, and how to reach it.
struct Player {
    session: Session,
    x: i64,
    queued: i64,
}

/// The world. Only the tick thread sees it.
#[derive(Default)]
struct World {
    tick: u64,
    players: BTreeMap<SessionId, Player>,
}

impl World {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Joined(session) => {
                let _ = session.send(format!("welcome {}\n", session.id()).as_bytes());
                let player = Player {
                    session,
                    x: 0,
                    queued: 0,
                };
                self.players.insert(player.session.id(), player);
            }
            Event::Step(id, step) => {
                if let Some(player) = self.players.get_mut(&id) {
                    player.queued =
                        (player.queued + step).clamp(-MAX_QUEUED_STEPS, MAX_QUEUED_STEPS);
                }
            }
            Event::Left(id) => {
                self.players.remove(&id);
            }
        }
    }

    /// One tick of simulation: every player moves at most one step.
    fn advance(&mut self) {
        self.tick += 1;
        for player in self.players.values_mut() {
            let step = player.queued.signum();
            player.x += step;
            player.queued -= step;
        }
    }

    /// `tick N #ID=X ...`, players in session order.
    fn state(&self) -> String {
        let mut line = format!("tick {}", self.tick);
        for (id, player) in &self.players {
            line += &format!(" {id}={}", player.x);
        }
        line + "\n"
    }

    fn send_all(&self, message: &[u8]) {
        for player in self.players.values() {
            // An error means this session is ending (its peer left, or it fell so far
            // behind that its send queue overflowed and the engine is dropping it): its
            // `Left` event is on the way. Never wait for a slow player.
            let _ = player.session.send(message);
        }
    }
}

/// The game loop: runs until `stop`, then says goodbye and shuts the server down.
fn run(events: mpsc::Receiver<Event>, stop: &AtomicBool, server: &ServerHandle) {
    let mut world = World::default();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // A fixed rate: sleep until the next tick is due. After a slow tick, start again
        // from now instead of running a burst of ticks to catch up.
        next += TICK;
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            None => next = now,
        }
        // Whatever the I/O threads collected since the last tick, in arrival order.
        while let Ok(event) = events.try_recv() {
            world.apply(event);
        }
        world.advance();
        world.send_all(world.state().as_bytes());
    }
    world.send_all(b"bye\n");
    server.shutdown();
}

fn main() {
    let args = Args::parse(EXAMPLE);
    let (events, inbox) = mpsc::channel();
    let config = Config::new(args.model, args.addr);
    let server = common::start(EXAMPLE, config, Inputs { events });

    let stop = Arc::new(AtomicBool::new(false));
    let game = std::thread::spawn({
        let (stop, handle) = (stop.clone(), server.handle());
        move || run(inbox, &stop, &handle)
    });

    let outcome = if args.self_test {
        self_test(server.local_addr(), &stop)
    } else {
        args.wait(EXAMPLE);
        Ok(())
    };

    // Stop the game (it shuts the server down after its goodbye), then wait for both.
    stop.store(true, Ordering::Relaxed);
    if game.join().is_err() {
        eprintln!("{EXAMPLE}: the game thread panicked");
        std::process::exit(1);
    }
    let outcome = outcome.and(server.join().map_err(Into::into));
    if args.self_test {
        common::exit_with(EXAMPLE, outcome);
    }
    if let Err(error) = outcome {
        eprintln!("{EXAMPLE}: {}", common::describe(&*error));
        std::process::exit(1);
    }
}

/// A player's client: a line reader over the socket.
struct Client {
    lines: BufReader<TcpStream>,
    id: u64,
    /// Every `tick` line received, by tick.
    seen: HashMap<u64, String>,
    last: Option<(u64, BTreeMap<u64, i64>)>,
}

impl Client {
    /// Connect and read the welcome.
    fn join(addr: SocketAddr) -> Result<Client, Failure> {
        let mut client = Client {
            lines: BufReader::new(common::connect(addr)?),
            id: 0,
            seen: HashMap::new(),
            last: None,
        };
        let welcome = client.line()?;
        client.id = welcome
            .strip_prefix("welcome #")
            .and_then(|rest| rest.strip_suffix('\n'))
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| format!("expected a welcome, got {welcome:?}"))?;
        Ok(client)
    }

    fn send(&mut self, input: &[u8]) -> Outcome {
        Ok(self.lines.get_mut().write_all(input)?)
    }

    fn line(&mut self) -> Result<String, Failure> {
        let mut line = String::new();
        if self.lines.read_line(&mut line)? == 0 {
            return Err("the server ended the connection early".into());
        }
        Ok(line)
    }

    /// Read the next state and check it: exactly the expected format, the tick after the
    /// last one, nobody moving more than one step.
    fn state(&mut self) -> Result<BTreeMap<u64, i64>, Failure> {
        let line = self.line()?;
        let bad = || format!("not a state line: {line:?}");
        let mut words = line.split_whitespace();
        if words.next() != Some("tick") {
            return Err(bad().into());
        }
        let tick: u64 = words.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let mut players = BTreeMap::new();
        for word in words {
            let (id, x) = word
                .strip_prefix('#')
                .and_then(|entry| entry.split_once('='))
                .and_then(|(id, x)| Some((id.parse().ok()?, x.parse().ok()?)))
                .ok_or_else(bad)?;
            players.insert(id, x);
        }
        let canonical: String = players
            .iter()
            .map(|(id, x)| format!(" #{id}={x}"))
            .collect();
        if line != format!("tick {tick}{canonical}\n") {
            return Err(bad().into());
        }
        if let Some((last_tick, last)) = &self.last {
            if tick != last_tick + 1 {
                return Err(format!("tick {tick} came after tick {last_tick}").into());
            }
            for (id, x) in &players {
                if last.get(id).is_some_and(|before| (x - before).abs() > 1) {
                    return Err(format!("player #{id} moved more than one step: {line:?}").into());
                }
            }
        }
        self.seen.insert(tick, line);
        self.last = Some((tick, players.clone()));
        Ok(players)
    }

    /// Read states until `done` says so; give up after 200 ticks (10 s).
    fn until(&mut self, mut done: impl FnMut(&BTreeMap<u64, i64>) -> bool) -> Result<u64, Failure> {
        for _ in 0..200 {
            let players = self.state()?;
            if done(&players) {
                return Ok(self.last.as_ref().map_or(0, |(tick, _)| *tick));
            }
        }
        Err("200 ticks and the world never got there".into())
    }

    /// After the stop: what is left of the states, then `bye`, then the end of stream.
    fn goodbye(&mut self) -> Outcome {
        loop {
            let mut line = String::new();
            if self.lines.read_line(&mut line)? == 0 {
                return Err("the connection ended without a bye".into());
            }
            if line == "bye\n" {
                break;
            }
            if !line.starts_with("tick ") {
                return Err(format!("expected a state or bye, got {line:?}").into());
            }
        }
        let mut rest = String::new();
        match self.lines.read_line(&mut rest)? {
            0 => Ok(()),
            _ => Err(format!("{rest:?} after bye").into()),
        }
    }
}

/// Two players walk, the states are checked tick by tick, then the server stops.
fn self_test(addr: SocketAddr, stop: &AtomicBool) -> Outcome {
    let mut alice = Client::join(addr)?;
    let mut bob = Client::join(addr)?;
    let (a, b) = (alice.id, bob.id);
    let started = Instant::now();
    let first = alice.state()?;
    let first_tick = alice.last.as_ref().map_or(0, |(tick, _)| *tick);
    if first.get(&a) != Some(&0) {
        return Err(format!("alice does not start at 0: {first:?}").into());
    }

    // Alice queues three steps right, Bob two steps left (and a newline, ignored).
    alice.send(b"rrr")?;
    bob.send(b"ll\n")?;
    let arrived = alice.until(|p| p.get(&a) == Some(&3) && p.get(&b) == Some(&-2))?;
    // They stay there: no input is left.
    for _ in 0..3 {
        let players = alice.state()?;
        if players.get(&a) != Some(&3) || players.get(&b) != Some(&-2) {
            return Err(format!("the players kept moving: {players:?}").into());
        }
    }
    // Bob received exactly the same state for the same tick.
    bob.until(|p| p.get(&b) == Some(&-2) && p.get(&a) == Some(&3))?;
    while bob.last.as_ref().is_some_and(|(tick, _)| *tick < arrived) {
        bob.state()?;
    }
    if bob.seen.get(&arrived) != alice.seen.get(&arrived) {
        return Err(format!("alice and bob saw different states at tick {arrived}").into());
    }
    // A fixed rate: the ticks did not come flat out. (Only a loose lower bound: the first
    // state may have waited in the socket, and a tick after a stall comes early.)
    let ticks = alice.last.as_ref().map_or(0, |(tick, _)| *tick) - first_tick;
    if started.elapsed() < TICK * (ticks / 2) as u32 {
        return Err(format!(
            "{ticks} ticks in {:?}: faster than 20 Hz",
            started.elapsed()
        )
        .into());
    }

    // Stop: both players get what was queued, then bye, then the end of the stream.
    stop.store(true, Ordering::Relaxed);
    alice.goodbye()?;
    bob.goodbye()?;
    Ok(())
}
