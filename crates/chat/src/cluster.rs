//! Many chat-server instances as one chat world, over one Redis (issue 11; the crate's
//! README, "Many instances over Redis", has the design and every key).
//!
//! Built so far: registration and liveness (a heartbeat with a TTL, and a janitor on every
//! instance that reaps the instances whose heartbeat stopped), logins claimed cluster-wide
//! (one login per user id, unique ids from one counter, an optional cluster-wide cap),
//! the users claimed again when an instance finds it was reaped (Redis lost, or
//! restarted empty), and rooms: each room request a script that publishes the room's next
//! event, read back by every instance on `chat-redis-sub` (`world/rooms.rs` answers and
//! fans them out).
//!
//! Redis is only ever waited on by threads of this module: `chat-redis` runs the
//! instance's claims, releases and room scripts one at a time, in the order the game logic
//! queued them;
//! `chat-redis-beat` refreshes the liveness key and runs the janitor. Their answers go back
//! to the game logic through the [`Notify`] callback, as password checks do.

pub(crate) mod event;
pub(crate) mod keys;
mod scripts;

use crate::error::Error;
use event::{member_key, RoomEvent};
use iomodels_engine::Session;
use iomodels_proto::ResultCode;
use redis::{Client, Connection, RedisResult};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an instance's liveness key lives unless set otherwise. Its heartbeat and the
/// janitor run every third of it, so an instance that dies is reaped within 8 s.
pub const DEFAULT_INSTANCE_TTL: Duration = Duration::from_secs(6);

/// How long connecting to Redis, or one command, may take before Redis counts as lost.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How an instance joins a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Redis's URL, `redis://HOST:PORT`.
    pub url: String,
    /// This instance's name, unique among the running instances.
    pub instance: String,
    /// How long the instance's liveness key lives without a heartbeat; the heartbeat and
    /// the janitor run every third of it. An instance that dies has its users freed within
    /// `instance_ttl * 4 / 3`.
    pub instance_ttl: Duration,
    /// Users logged in across the whole cluster, at most (`None`: only each instance's
    /// `max_users`).
    pub max_users: Option<usize>,
}

impl ClusterConfig {
    /// Join the cluster at `url` as `instance`, with the default TTL and no cluster-wide cap.
    pub fn new(url: impl Into<String>, instance: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            instance: instance.into(),
            instance_ttl: DEFAULT_INSTANCE_TTL,
            max_users: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let what = if self.instance.is_empty()
            || self
                .instance
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            "--instance must be a name without whitespace".to_string()
        } else if self.instance_ttl < Duration::from_millis(300) {
            "--instance-ttl must be at least 0.3 s".into()
        } else if self.max_users == Some(0) {
            "--cluster-max-users must be at least 1".into()
        } else {
            return Ok(());
        };
        Err(Error::Config { what })
    }
}

/// A claim's answer.
pub(crate) struct Claimed {
    pub(crate) session: Session,
    pub(crate) user_id: String,
    /// The user's unique id, or why not: 31 (logged in somewhere in the cluster), 32 (the
    /// cluster is full, or Redis cannot be reached).
    pub(crate) result: Result<i64, ResultCode>,
}

/// What the cluster's threads tell the game logic.
pub(crate) enum Notice {
    /// A login's claim came back.
    Claimed(Claimed),
    /// This instance was reaped (its heartbeat did not reach Redis in time, or Redis lost
    /// its data) and has registered again: its users are to be claimed again
    /// ([`Cluster::reclaim`]).
    Evicted,
    /// A user of this instance, claimed again, is held by another instance now (logged in
    /// there while this one was cut off): that login wins, this session is to be closed.
    Lost(Session),
    /// A room's event, read from its channel.
    Room(RoomEvent),
    /// A room request that will have no event: answer it with this result (refused, or
    /// Redis unreachable; for a leave whose member was gone already, 0).
    RoomAnswer(Session, ResultCode),
    /// The subscription to the rooms' channels broke: events may have been missed.
    RoomsLost,
}

/// Where notices go.
pub(crate) type Notify = Arc<dyn Fn(Notice) + Send + Sync>;

/// Work for the `chat-redis` thread.
enum Op {
    Claim {
        session: Session,
        user_id: String,
    },
    Release {
        user_id: String,
    },
    Reclaim(Vec<Held>),
    Enter {
        session: Session,
        room: usize,
        unique_id: i64,
        user_id: String,
    },
    /// `session` is `None` for a disconnect: nobody to answer.
    Leave {
        session: Option<Session>,
        room: usize,
        unique_id: i64,
        user_id: String,
    },
    Chat {
        session: Session,
        room: usize,
        unique_id: i64,
        user_id: String,
        message: Vec<u8>,
    },
}

/// A user logged in on this instance, as the game logic knows it.
pub(crate) struct Held {
    pub(crate) session: Session,
    pub(crate) user_id: String,
    pub(crate) unique_id: i64,
}

/// This instance's membership of the cluster: its threads and their queues.
pub(crate) struct Cluster {
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Tells the subscriber thread to end (with a message on its control channel, which
    /// wakes it).
    sub_stop: Arc<AtomicBool>,
    client: Client,
    name: String,
}

/// What both threads need to know.
#[derive(Clone)]
struct Instance {
    client: Client,
    name: String,
    ttl: Duration,
    max_users: usize,
    rooms: usize,
    room_capacity: usize,
    /// The subscriber thread is subscribed: a room script run now has its event seen
    /// (or, if the subscription breaks first, a [`Notice::RoomsLost`] follows).
    subscribed: Arc<AtomicBool>,
    /// The highest unique id this instance's claims were handed: what the counter is
    /// raised to when the instance registers again (a Redis that came back empty).
    highest_id: Arc<AtomicI64>,
}

impl Cluster {
    /// Connect, check that the cluster's settings agree with `rooms` and `room_capacity`,
    /// register as the instance `config` names, and start the threads. Fails if Redis
    /// cannot be reached, the settings differ, or the name is taken by a live instance.
    pub(crate) fn start(
        config: &ClusterConfig,
        rooms: usize,
        room_capacity: usize,
        notify: Notify,
    ) -> Result<Cluster, Error> {
        config.validate()?;
        let unreachable = |error| Error::Redis {
            url: config.url.clone(),
            error,
        };
        let client = Client::open(config.url.as_str()).map_err(|e| Error::Config {
            what: format!("--redis {}: {e} (expected redis://HOST:PORT)", config.url),
        })?;
        let mut con = connect(&client).map_err(unreachable)?;
        agree(&mut con, rooms, room_capacity).map_err(|e| match e {
            Agreement::Redis(error) => unreachable(error),
            Agreement::Differs(what) => Error::Cluster { what },
        })?;
        let instance = Instance {
            client,
            name: config.instance.clone(),
            ttl: config.instance_ttl,
            max_users: config.max_users.unwrap_or(0),
            rooms,
            room_capacity,
            subscribed: Arc::new(AtomicBool::new(false)),
            highest_id: Arc::new(AtomicI64::new(0)),
        };
        let incarnation = match register(&mut con, &instance, true).map_err(unreachable)? {
            Some(incarnation) => incarnation,
            None => {
                return Err(Error::Cluster {
                    what: format!(
                        "instance {name:?} is running (its key {key} is alive): give this one \
                         another --instance, or wait {ttl:?} for a dead one's to expire",
                        name = instance.name,
                        key = keys::instance(&instance.name),
                        ttl = instance.ttl,
                    ),
                })
            }
        };
        let link_con = connect(&instance.client).map_err(unreachable)?;
        let (ops, ops_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel();
        let cluster = Cluster {
            ops: Mutex::new(Some(ops)),
            stop: Mutex::new(Some(stop)),
            threads: Mutex::new(Vec::new()),
            sub_stop: Arc::new(AtomicBool::new(false)),
            client: instance.client.clone(),
            name: instance.name.clone(),
        };
        // Subscribed before the instance serves anyone: no event of its own is missed.
        let (ready, subscribed) = mpsc::channel();
        let sub = {
            let (instance, notify, stop) =
                (instance.clone(), notify.clone(), cluster.sub_stop.clone());
            std::thread::Builder::new()
                .name("chat-redis-sub".into())
                .spawn(move || run_sub(instance, notify, stop, ready))
        };
        if let Err(e) = sub {
            return Err(Error::Io {
                context: "spawning the Redis threads",
                source: e,
            });
        }
        match subscribed.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(unreachable(error)),
            Err(_) => {
                return Err(Error::Cluster {
                    what: "the subscriber thread ended at start".into(),
                })
            }
        }
        let spawned = {
            let (instance, notify) = (instance.clone(), notify.clone());
            std::thread::Builder::new()
                .name("chat-redis".into())
                .spawn(move || run_link(instance, link_con, ops_rx, notify))
        }
        .and_then(|link| {
            cluster.lock_threads().push(link);
            std::thread::Builder::new()
                .name("chat-redis-beat".into())
                .spawn(move || run_beat(instance, con, incarnation, stop_rx, notify))
        });
        match spawned {
            Ok(beat) => cluster.lock_threads().push(beat),
            Err(e) => {
                cluster.close();
                return Err(Error::Io {
                    context: "spawning the Redis threads",
                    source: e,
                });
            }
        }
        Ok(cluster)
    }

    /// Queue a claim of `user_id` for `session`; its answer comes as a
    /// [`Notice::Claimed`]. `false` if the cluster is closed (the server is going away).
    pub(crate) fn claim(&self, session: Session, user_id: String) -> bool {
        self.send(Op::Claim { session, user_id })
    }

    /// Queue the release of `user_id`'s login, behind every claim queued before.
    pub(crate) fn release(&self, user_id: String) {
        self.send(Op::Release { user_id });
    }

    /// Queue `session`'s entry into `room`: its answer is its own event, or a
    /// [`Notice::RoomAnswer`]. `false` if the cluster is closed.
    pub(crate) fn enter(
        &self,
        session: Session,
        room: usize,
        unique_id: i64,
        user_id: String,
    ) -> bool {
        self.send(Op::Enter {
            session,
            room,
            unique_id,
            user_id,
        })
    }

    /// Queue a leave of `room` (`session`: `None` for a disconnect). Kept through an
    /// outage, like a release.
    pub(crate) fn leave(
        &self,
        session: Option<Session>,
        room: usize,
        unique_id: i64,
        user_id: String,
    ) -> bool {
        self.send(Op::Leave {
            session,
            room,
            unique_id,
            user_id,
        })
    }

    /// Queue a chat in `room`: its answer is its own event, or a [`Notice::RoomAnswer`].
    pub(crate) fn chat(
        &self,
        session: Session,
        room: usize,
        unique_id: i64,
        user_id: String,
        message: Vec<u8>,
    ) -> bool {
        self.send(Op::Chat {
            session,
            room,
            unique_id,
            user_id,
            message,
        })
    }

    /// Queue claiming `users` again after an eviction, behind every claim and release
    /// queued before; each one held by another instance now comes back as a
    /// [`Notice::Lost`].
    pub(crate) fn reclaim(&self, users: Vec<Held>) {
        self.send(Op::Reclaim(users));
    }

    fn send(&self, op: Op) -> bool {
        match &*lock(&self.ops) {
            Some(ops) => ops.send(op).is_ok(),
            None => false,
        }
    }

    /// Stop: the releases queued so far are run, then the instance leaves the cluster
    /// (what it still holds is freed and its key removed) and the threads end.
    pub(crate) fn close(&self) {
        // The subscriber ends on its own (a blocking read cannot be interrupted; it is not
        // joined): told by a message, or by its connection's end.
        if !self.sub_stop.swap(true, Ordering::SeqCst) {
            let _ = connect(&self.client).and_then(|mut c| {
                redis::cmd("PUBLISH")
                    .arg(keys::control(&self.name))
                    .arg("stop")
                    .query::<i64>(&mut c)
            });
        }
        lock(&self.ops).take();
        let mut threads = std::mem::take(&mut *self.lock_threads());
        // The link first: its releases come before the beat thread's unregistering.
        if !threads.is_empty() {
            let _ = threads.remove(0).join();
        }
        lock(&self.stop).take();
        for thread in threads {
            let _ = thread.join();
        }
    }

    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        lock(&self.threads)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection whose every command gives up after [`REDIS_TIMEOUT`].
pub(crate) fn connect(client: &Client) -> RedisResult<Connection> {
    let con = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    con.set_read_timeout(Some(REDIS_TIMEOUT))?;
    con.set_write_timeout(Some(REDIS_TIMEOUT))?;
    let mut con = con;
    redis::cmd("PING").query::<String>(&mut con)?;
    Ok(con)
}

/// Why the cluster's settings could not be agreed on.
enum Agreement {
    Redis(redis::RedisError),
    Differs(String),
}

/// Write the settings every instance must share, if no instance has yet, and check ours
/// against them.
fn agree(con: &mut Connection, rooms: usize, room_capacity: usize) -> Result<(), Agreement> {
    let key = keys::config();
    let ours = [
        (
            "version",
            keys::LAYOUT_VERSION.to_string(),
            "key layout version",
        ),
        ("rooms", rooms.to_string(), "--rooms"),
        (
            "room_capacity",
            room_capacity.to_string(),
            "--room-capacity",
        ),
    ];
    for (field, value, flag) in &ours {
        redis::cmd("HSETNX")
            .arg(&key)
            .arg(field)
            .arg(value)
            .query::<i32>(con)
            .map_err(Agreement::Redis)?;
        let theirs: String = redis::cmd("HGET")
            .arg(&key)
            .arg(field)
            .query(con)
            .map_err(Agreement::Redis)?;
        if &theirs != value {
            return Err(Agreement::Differs(format!(
                "the cluster has {flag} {theirs} ({key} {field}), this instance {value}: \
                 every instance must agree"
            )));
        }
    }
    Ok(())
}

/// Register `instance` (reaping what a dead process of its name left, if `reap`): its new
/// incarnation, or `None` if a live process has the name.
fn register(con: &mut Connection, instance: &Instance, reap: bool) -> RedisResult<Option<i64>> {
    let incarnation: i64 = scripts::REGISTER
        .key(keys::instance(&instance.name))
        .key(keys::instances())
        .key(keys::next_incarnation())
        .arg(&instance.name)
        .arg(ttl_ms(instance.ttl))
        .arg(keys::PREFIX)
        .arg(i32::from(reap))
        .invoke(con)?;
    Ok((incarnation >= 0).then_some(incarnation))
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// Reconnecting with back-off: 100 ms, doubling up to [`MAX_BACKOFF`]; the first failure
/// of an outage is logged, and the return.
struct Reconnect {
    what: &'static str,
    wait: Duration,
    next: Instant,
    down: bool,
}

impl Reconnect {
    fn new(what: &'static str) -> Reconnect {
        Reconnect {
            what,
            wait: Duration::from_millis(100),
            next: Instant::now(),
            down: false,
        }
    }

    /// The connection was lost (or never made) because of `error`.
    fn lost(&mut self, error: &redis::RedisError) {
        if !self.down {
            tracing::error!(%error, "{}: lost Redis; reconnecting", self.what);
            self.down = true;
        }
        self.next = Instant::now() + self.wait;
        self.wait = (self.wait * 2).min(MAX_BACKOFF);
    }

    /// A connection, if one is due and can be made.
    fn attempt(&mut self, client: &Client) -> Option<Connection> {
        if Instant::now() < self.next {
            return None;
        }
        match connect(client) {
            Ok(con) => {
                if self.down {
                    tracing::info!("{}: Redis is back", self.what);
                }
                self.down = false;
                self.wait = Duration::from_millis(100);
                Some(con)
            }
            Err(e) => {
                self.lost(&e);
                None
            }
        }
    }

    /// How long until the next attempt.
    fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }
}

/// The `chat-redis` thread: claims and releases, one at a time, in queue order. A claim
/// while Redis cannot be reached is answered 32 at once; a release is kept and retried
/// when Redis is back.
fn run_link(instance: Instance, con: Connection, ops: mpsc::Receiver<Op>, notify: Notify) {
    let mut link = Link {
        con: Some(con),
        reconnect: Reconnect::new("chat-redis"),
        instance,
    };
    // Releases and leaves that Redis could not take yet, in order.
    let mut kept: VecDeque<Kept> = VecDeque::new();
    loop {
        let op = if kept.is_empty() {
            match ops.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            }
        } else {
            match ops.recv_timeout(link.reconnect.due_in().max(Duration::from_millis(10))) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        // What was kept from an outage goes first: it was queued before this op.
        while let Some(first) = kept.front() {
            if link.run(|c, i| first.run(c, i)).is_none() {
                break;
            }
            kept.pop_front();
        }
        match op {
            None => {}
            Some(Op::Release { user_id }) => {
                let release = Kept::Release(user_id);
                // Behind kept ones, or failing now: kept, in order.
                if !kept.is_empty() || link.run(|c, i| release.run(c, i)).is_none() {
                    kept.push_back(release);
                }
            }
            Some(Op::Leave {
                session,
                room,
                unique_id,
                user_id,
            }) => {
                let token = session.as_ref().map(token).unwrap_or_default();
                let leave = Kept::Leave {
                    room,
                    member: member_key(unique_id, &user_id),
                    unique_id,
                    token,
                };
                let subscribed = link.instance.subscribed.load(Ordering::SeqCst);
                let ran = if kept.is_empty() && (subscribed || session.is_none()) {
                    link.run(|c, i| leave.run_leave(c, i))
                } else {
                    None
                };
                match ran {
                    // Its event is on its way, and answers the session.
                    Some(true) => {}
                    // Not in the room (reaped): nothing to publish; answer here.
                    Some(false) => {
                        if let Some(session) = session {
                            notify(Notice::RoomAnswer(session, ResultCode::None));
                        }
                    }
                    // Redis unreachable: answered now, published when Redis is back.
                    None => {
                        kept.push_back(leave);
                        if let Some(session) = session {
                            notify(Notice::RoomAnswer(session, ResultCode::None));
                        }
                    }
                }
            }
            Some(Op::Enter {
                session,
                room,
                unique_id,
                user_id,
            }) => {
                let subscribed = link.instance.subscribed.load(Ordering::SeqCst);
                let answer = subscribed
                    .then(|| {
                        link.run(|c, i| {
                            scripts::ROOM_ENTER
                                .key(keys::room_members(room))
                                .key(keys::room_seq(room))
                                .key(keys::instance_members(&i.name))
                                .arg(member_key(unique_id, &user_id))
                                .arg(i.room_capacity)
                                .arg(&i.name)
                                .arg(token(&session))
                                .arg(unique_id)
                                .arg(room)
                                .arg(keys::room_channel(room))
                                .invoke::<i64>(c)
                        })
                    })
                    .flatten();
                match answer {
                    Some(seq) if seq >= 0 => {}
                    Some(_) => notify(Notice::RoomAnswer(session, ResultCode::RoomFull)),
                    None => notify(Notice::RoomAnswer(session, ResultCode::ServerFull)),
                }
            }
            Some(Op::Chat {
                session,
                room,
                unique_id,
                user_id,
                message,
            }) => {
                // Once only: a second run would be a second chat.
                let subscribed = link.instance.subscribed.load(Ordering::SeqCst);
                let answer = subscribed
                    .then(|| {
                        link.run_once(|c, i| {
                            scripts::ROOM_CHAT
                                .key(keys::room_members(room))
                                .key(keys::room_seq(room))
                                .arg(member_key(unique_id, &user_id))
                                .arg(&i.name)
                                .arg(token(&session))
                                .arg(&message[..])
                                .arg(keys::room_channel(room))
                                .invoke::<i64>(c)
                        })
                    })
                    .flatten();
                match answer {
                    Some(seq) if seq > 0 => {}
                    Some(_) => notify(Notice::RoomAnswer(session, ResultCode::NotInRoom)),
                    None => notify(Notice::RoomAnswer(session, ResultCode::ServerFull)),
                }
            }
            Some(Op::Reclaim(users)) => {
                for held in users {
                    match link.run(|c, i| reclaim(c, i, &held)) {
                        Some(true) => {}
                        Some(false) => {
                            tracing::warn!(
                                user = %held.user_id,
                                "{} logged in on another instance while this one was cut off; \
                                 closing this session",
                                held.user_id
                            );
                            notify(Notice::Lost(held.session));
                        }
                        // Redis lost again: the next eviction claims them again.
                        None => break,
                    }
                }
            }
            Some(Op::Claim { session, user_id }) => {
                let result = link
                    .run(|c, i| claim(c, i, &user_id))
                    .unwrap_or(Err(ResultCode::ServerFull));
                if let Ok(id) = result {
                    link.instance.highest_id.fetch_max(id, Ordering::SeqCst);
                }
                notify(Notice::Claimed(Claimed {
                    session,
                    user_id,
                    result,
                }));
            }
        }
    }
    // What is still kept is freed when the beat thread unregisters (the reap).
    for first in kept {
        if link.run(|c, i| first.run(c, i)).is_none() {
            break;
        }
    }
}

/// How a session is named in its room events: its id.
fn token(session: &Session) -> String {
    session.id().get().to_string()
}

/// A release or a leave kept through an outage.
enum Kept {
    Release(String),
    Leave {
        room: usize,
        member: String,
        unique_id: i64,
        token: String,
    },
}

impl Kept {
    fn run(&self, con: &mut Connection, instance: &Instance) -> RedisResult<()> {
        match self {
            Kept::Release(user_id) => release(con, instance, user_id),
            Kept::Leave { .. } => self.run_leave(con, instance).map(drop),
        }
    }

    /// A leave: whether it published (the member was there).
    fn run_leave(&self, con: &mut Connection, instance: &Instance) -> RedisResult<bool> {
        let Kept::Leave {
            room,
            member,
            unique_id,
            token,
        } = self
        else {
            return Ok(false);
        };
        let seq: i64 = scripts::ROOM_LEAVE
            .key(keys::room_members(*room))
            .key(keys::room_seq(*room))
            .key(keys::instance_members(&instance.name))
            .arg(member)
            .arg(&instance.name)
            .arg(token)
            .arg(unique_id)
            .arg(keys::room_channel(*room))
            .invoke(con)?;
        Ok(seq > 0)
    }
}

/// The `chat-redis` thread's connection.
struct Link {
    con: Option<Connection>,
    reconnect: Reconnect,
    instance: Instance,
}

impl Link {
    /// Run `step` once: `None` if it failed (then it may or may not have run) or Redis
    /// cannot be reached.
    fn run_once<T>(
        &mut self,
        step: impl FnOnce(&mut Connection, &Instance) -> RedisResult<T>,
    ) -> Option<T> {
        if self.con.is_none() {
            self.con = self.reconnect.attempt(&self.instance.client);
        }
        let answer = step(self.con.as_mut()?, &self.instance);
        match answer {
            Ok(answer) => Some(answer),
            Err(e) => {
                self.reconnect.lost(&e);
                self.con = None;
                None
            }
        }
    }

    /// Run `step` on the connection: `None` if Redis cannot be reached. A step that fails
    /// on a connection that was up is tried once more on a fresh one at once (it may be
    /// stale, from before a Redis restart), so every step must be safe to run twice.
    /// Without a connection, one is made only when the back-off allows.
    fn run<T>(
        &mut self,
        mut step: impl FnMut(&mut Connection, &Instance) -> RedisResult<T>,
    ) -> Option<T> {
        let error = match self.con.as_mut() {
            Some(c) => match step(c, &self.instance) {
                Ok(answer) => return Some(answer),
                Err(e) => {
                    self.con = connect(&self.instance.client).ok();
                    e
                }
            },
            None => {
                self.con = self.reconnect.attempt(&self.instance.client);
                self.con.as_ref()?;
                return self.run(step);
            }
        };
        match self.con.as_mut().map(|c| step(c, &self.instance)) {
            Some(Ok(answer)) => Some(answer),
            Some(Err(e)) => {
                self.reconnect.lost(&e);
                self.con = None;
                None
            }
            None => {
                self.reconnect.lost(&error);
                None
            }
        }
    }
}

fn claim(
    con: &mut Connection,
    instance: &Instance,
    user_id: &str,
) -> RedisResult<Result<i64, ResultCode>> {
    let answer: i64 = scripts::CLAIM
        .key(keys::user(user_id))
        .key(keys::users())
        .key(keys::next_unique_id())
        .key(keys::instance_users(&instance.name))
        .arg(&instance.name)
        .arg(user_id)
        .arg(instance.max_users)
        .invoke(con)?;
    Ok(match answer {
        -31 => Err(ResultCode::UserAlreadyLoggedIn),
        id if id > 0 => Ok(id),
        _ => Err(ResultCode::ServerFull),
    })
}

fn reclaim(con: &mut Connection, instance: &Instance, held: &Held) -> RedisResult<bool> {
    let ours: i32 = scripts::RECLAIM
        .key(keys::user(&held.user_id))
        .key(keys::users())
        .key(keys::next_unique_id())
        .key(keys::instance_users(&instance.name))
        .arg(&instance.name)
        .arg(&held.user_id)
        .arg(held.unique_id)
        .invoke(con)?;
    Ok(ours == 1)
}

fn release(con: &mut Connection, instance: &Instance, user_id: &str) -> RedisResult<()> {
    scripts::RELEASE
        .key(keys::user(user_id))
        .key(keys::users())
        .key(keys::instance_users(&instance.name))
        .arg(&instance.name)
        .arg(user_id)
        .invoke::<i32>(con)?;
    Ok(())
}

/// The `chat-redis-sub` thread: the rooms' channels (one pattern for all, so nothing has
/// to be subscribed before an enter) and this instance's control channel. Each room
/// message becomes a [`Notice::Room`]; a lost connection a [`Notice::RoomsLost`], then
/// a new subscription after the back-off. `ready` gets the first subscription's outcome.
fn run_sub(
    instance: Instance,
    notify: Notify,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<RedisResult<()>>,
) {
    let mut ready = Some(ready);
    let mut reconnect = Reconnect::new("chat-redis-sub");
    let prefix = keys::room_channel(0);
    let prefix = &prefix[..prefix.len() - 1];
    while !stop.load(Ordering::SeqCst) {
        let subscribed = connect(&instance.client).and_then(|con| {
            // No read timeout: one inside a message would lose its first bytes.
            con.set_read_timeout(None)?;
            Ok(con)
        });
        let mut con = match subscribed {
            Ok(con) => con,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e));
                    return;
                }
                reconnect.lost(&e);
                std::thread::sleep(reconnect.due_in());
                continue;
            }
        };
        let mut pubsub = con.as_pubsub();
        let subscribed = pubsub
            .psubscribe(keys::room_pattern())
            .and_then(|()| pubsub.subscribe(keys::control(&instance.name)));
        if let Err(e) = subscribed {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Err(e));
                return;
            }
            reconnect.lost(&e);
            std::thread::sleep(reconnect.due_in());
            continue;
        }
        instance.subscribed.store(true, Ordering::SeqCst);
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
        loop {
            match pubsub.get_message() {
                Ok(message) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(room) = message
                        .get_channel_name()
                        .strip_prefix(prefix)
                        .and_then(|room| room.parse().ok())
                    else {
                        continue;
                    };
                    match event::parse(room, message.get_payload_bytes()) {
                        Some(event) => notify(Notice::Room(event)),
                        None => {
                            tracing::warn!(room, "an unreadable event on room {room}'s channel")
                        }
                    }
                }
                Err(e) => {
                    instance.subscribed.store(false, Ordering::SeqCst);
                    reconnect.lost(&e);
                    break;
                }
            }
        }
        drop(pubsub);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        notify(Notice::RoomsLost);
        std::thread::sleep(reconnect.due_in());
    }
}

/// The `chat-redis-beat` thread: every third of the TTL, refresh the liveness key, then
/// reap the instances whose key is gone. On a stop, leave the cluster.
fn run_beat(
    instance: Instance,
    con: Connection,
    mut incarnation: i64,
    stop: mpsc::Receiver<()>,
    notify: Notify,
) {
    let period = instance.ttl / 3;
    let mut con = Some(con);
    let mut reconnect = Reconnect::new("chat-redis-beat");
    // Until a stop, or the cluster dropped.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(period) {
        if con.is_none() {
            con = reconnect.attempt(&instance.client);
        }
        let Some(c) = con.as_mut() else { continue };
        if let Err(e) = beat(c, &instance, &mut incarnation, &notify) {
            reconnect.lost(&e);
            con = None;
            continue;
        }
        if let Err(e) = janitor(c, &instance) {
            reconnect.lost(&e);
            con = None;
        }
    }
    if let Some(c) = con.as_mut() {
        let left = scripts::UNREGISTER
            .key(keys::instance(&instance.name))
            .arg(&instance.name)
            .arg(incarnation)
            .arg(keys::PREFIX)
            .invoke::<i32>(c);
        if let Err(error) = left {
            tracing::warn!(%error, "could not leave the cluster; the janitor will reap this instance");
        }
    }
}

/// Refresh the liveness key; if this instance was reaped, say so and register again.
fn beat(
    con: &mut Connection,
    instance: &Instance,
    incarnation: &mut i64,
    notify: &Notify,
) -> RedisResult<()> {
    let alive: i32 = scripts::BEAT
        .key(keys::instance(&instance.name))
        .arg(*incarnation)
        .arg(ttl_ms(instance.ttl))
        .invoke(con)?;
    if alive == 1 {
        return Ok(());
    }
    tracing::error!(
        instance = %instance.name,
        "this instance was reaped (its heartbeat did not reach Redis in time, or Redis lost \
         its data); registering again and claiming its users again"
    );
    // A Redis that came back empty has lost the settings too.
    if let Err(Agreement::Differs(what)) = agree(con, instance.rooms, instance.room_capacity) {
        tracing::error!("{what}");
    }
    // Not reaping: the janitor that reaped us did; what claims made since is valid.
    match register(con, instance, false)? {
        Some(new) => *incarnation = new,
        None => {
            tracing::error!(
                instance = %instance.name,
                "another process registered as this instance meanwhile; retrying"
            );
            return Ok(());
        }
    }
    // No id this instance saw handed out comes back, even one of a user gone since; the
    // users it still holds raise the counter again as they are claimed back.
    scripts::FLOOR
        .key(keys::next_unique_id())
        .arg(instance.highest_id.load(Ordering::SeqCst))
        .invoke::<i32>(con)?;
    // Registered: the game logic hands its users to the `chat-redis` thread.
    notify(Notice::Evicted);
    Ok(())
}

/// Reap every other instance whose liveness key is gone.
fn janitor(con: &mut Connection, instance: &Instance) -> RedisResult<()> {
    let names: Vec<String> = redis::cmd("SMEMBERS").arg(keys::instances()).query(con)?;
    for name in names.iter().filter(|n| **n != instance.name) {
        let reaped: i32 = scripts::REAP
            .key(keys::instance(name))
            .arg(name)
            .arg(keys::PREFIX)
            .invoke(con)?;
        if reaped == 1 {
            tracing::warn!(instance = %name, "reaped instance {name}: its heartbeat stopped");
        }
    }
    Ok(())
}
