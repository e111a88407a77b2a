//! `tokio-chat`: the chat server of `iomodels-chat`, written the way a tokio developer would
//! write a straightforward chat server, to measure ours against (issue 12, "Broadcast
//! under load").
//!
//! It speaks the same protocol (`iomodels-proto` encodes and decodes every packet) with the
//! same answers as `iomodels chat-server` without `--users`: every password is accepted;
//! login 0, 31 (user id in use), 32 (server full), 34 (bad user id), 35 (session already
//! logged in); enter 207 with 41, 55, 61, 54, then 209 (the others, oldest first) to the
//! newcomer and 208 to the others; leave 216 with 41, 81, and 217 to the others; chat 222
//! with 41, 81, 82, then 223 to every member, the sender included (after its 222); a
//! disconnect leaves the room (217) and frees the user id. A packet that breaks the
//! protocol ends its connection once what was queued for it is written.
//!
//! The design, the common one:
//!
//! - An accept loop and **a task per connection**; every accepted socket gets
//!   `TCP_NODELAY`.
//! - **One world** (users and rooms) behind one `std::sync::Mutex`: it is never held across
//!   an `.await`, only while a read's requests are handled, so a blocking mutex is the
//!   right one (tokio's own advice). Each connection's task keeps its own login state.
//! - **A bounded channel per session** ([`QUEUE_LIMIT`] packets) drained by **a writer
//!   task** that takes the first packet, then whatever else is queued (up to
//!   [`WRITE_BATCH`]), copies them into one buffer and `write_all`s it: one write per
//!   batch. Handlers `try_send` under the lock, never wait; a session whose queue is full
//!   is cut off (its reader is woken through a `Notify`), as ours cuts off a send queue
//!   past its limit.
//! - **A broadcast encodes once**: the packet is a `Bytes` whose clones, one per member,
//!   share the buffer.
//! - A current_thread runtime by default; `--workers N` (N above 1) runs a multi_thread
//!   runtime with N workers.
//!
//! What it leaves out, as such a server would: rate limits, login and idle timeouts, caps
//! on anonymous connections, metrics, and a graceful shutdown (SIGTERM ends the process).

use bytes::Bytes;
use iomodels_proto::{
    decode_requests, Request, Response, ResultCode, RoomUser, MAX_MESSAGE_LEN, MAX_USER_ID_LEN,
};
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

/// The most rooms a server may have, as `iomodels chat-server`'s `--rooms`.
pub const MAX_ROOMS: usize = 100_000;

/// The largest room: the 209 user list counts its users in an `i8`.
pub const MAX_ROOM_CAPACITY: usize = 127;

/// Packets a session's queue holds before the session is cut off: about 1.2 MB of chat
/// notifies (295 bytes each), near the 1 MiB send queue of ours.
pub const QUEUE_LIMIT: usize = 4096;

/// The most packets one write takes from a session's queue.
pub const WRITE_BATCH: usize = 256;

/// Bytes reserved for each read.
const READ_SIZE: usize = 4096;

/// The world's limits: `--rooms`, `--room-capacity`, `--max-users`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Rooms, numbered from 0; 1 to [`MAX_ROOMS`].
    pub rooms: usize,
    /// Members a room holds; 1 to [`MAX_ROOM_CAPACITY`].
    pub room_capacity: usize,
    /// Users logged in at once; at least 1.
    pub max_users: usize,
}

impl Default for Settings {
    /// The defaults of `iomodels chat-server`: 10 rooms of 20, 1,000 users.
    fn default() -> Settings {
        Settings {
            rooms: 10,
            room_capacity: 20,
            max_users: 1000,
        }
    }
}

impl Settings {
    /// `Err` naming the flag whose value is out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let what = if !(1..=MAX_ROOMS).contains(&self.rooms) {
            "--rooms must be 1 to 100000"
        } else if !(1..=MAX_ROOM_CAPACITY).contains(&self.room_capacity) {
            "--room-capacity must be 1 to 127"
        } else if self.max_users == 0 {
            "--max-users must be at least 1"
        } else {
            return Ok(());
        };
        Err(Error::Settings(what))
    }
}

/// Why the chat peer could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range (bad usage).
    #[error("{0}")]
    Settings(&'static str),
    /// The tokio runtime could not be built.
    #[error("building the tokio runtime")]
    Runtime(#[source] io::Error),
    /// The listener could not be bound. (The message leaves the address to the caller,
    /// which names it once.)
    #[error("listening")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Accepting failed in a way that leaves the listener unusable.
    #[error("accepting a connection")]
    Accept(#[source] io::Error),
}

/// Serve the chat on `addr` until the process is ended: on a current_thread runtime when
/// `workers` is 1, on a multi_thread runtime of `workers` workers otherwise.
pub fn run(addr: SocketAddr, workers: usize, settings: Settings) -> Result<(), Error> {
    settings.validate()?;
    let runtime = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .map_err(Error::Runtime)?;
    runtime.block_on(serve(addr, workers.max(1), settings))
}

/// The accept loop: a task per connection, all sharing one world.
async fn serve(addr: SocketAddr, workers: usize, settings: Settings) -> Result<(), Error> {
    let listen = |source| Error::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen)?;
    let local = listener.local_addr().map_err(listen)?;
    let world = Arc::new(Mutex::new(World::new(settings)));
    crate::announce("tokio-chat", "chat", local, workers);
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            // Out of descriptors or a connection gone before accept: keep serving.
            Err(error) if crate::is_transient(&error) => {
                tokio::task::yield_now().await;
                continue;
            }
            Err(error) => return Err(Error::Accept(error)),
        };
        tokio::spawn(connection(socket, Arc::clone(&world)));
    }
}

/// Lock the world. A poisoned lock means a task panicked half-way through a change: the
/// world can no longer be trusted, so this task panics too.
fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world
        .lock()
        .expect("the chat world's lock is poisoned: a task panicked holding it")
}

/// One connection: read, decode, handle every request of a read under one lock; at the
/// end, leave the room and free the user id. Its writer task writes what is queued, then
/// closes the sending side once the last sender is gone.
async fn connection(socket: TcpStream, world: Arc<Mutex<World>>) {
    let _ = socket.set_nodelay(true);
    let (mut reader, writer) = socket.into_split();
    let (sender, queue) = mpsc::channel(QUEUE_LIMIT);
    let writer = tokio::spawn(write_loop(queue, writer));
    let mut session = Session {
        outbox: Outbox {
            sender,
            cut_off: Arc::new(Notify::new()),
        },
        user: None,
    };
    let cut_off = Arc::clone(&session.outbox.cut_off);
    let mut input = Vec::with_capacity(READ_SIZE);
    let was_cut_off = loop {
        input.reserve(READ_SIZE);
        tokio::select! {
            read = reader.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => break false,
                Ok(_) => {}
            },
            () = cut_off.notified() => break true,
        }
        let decoded = {
            let mut world = lock(&world);
            decode_requests(&input, |request| world.handle(&mut session, request))
        };
        if decoded.error.is_some() {
            break false;
        }
        input.drain(..decoded.consumed);
    };
    lock(&world).closed(&mut session);
    if was_cut_off {
        // Its queue is full: what is in it will not be read in time. Drop it.
        writer.abort();
    }
}

/// Write what a session's queue holds, a batch per write, until every sender is gone;
/// then send FIN. A write error ends it (the reader sees the connection end too).
async fn write_loop(mut queue: mpsc::Receiver<Bytes>, mut writer: OwnedWriteHalf) {
    let mut out = Vec::with_capacity(16 * 1024);
    while let Some(first) = queue.recv().await {
        out.clear();
        out.extend_from_slice(&first);
        for _ in 1..WRITE_BATCH {
            match queue.try_recv() {
                Ok(packet) => out.extend_from_slice(&packet),
                Err(_) => break,
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Where a session's packets go.
#[derive(Clone, Debug)]
struct Outbox {
    /// The session's queue, drained by its writer task.
    sender: mpsc::Sender<Bytes>,
    /// Notified when the queue is full: the session's reader ends the connection.
    cut_off: Arc<Notify>,
}

impl Outbox {
    /// Queue `packet` without waiting. A full queue cuts the session off; a closed one
    /// (the writer is gone) needs nothing: the reader sees the connection end.
    fn push(&self, packet: Bytes) {
        if let Err(TrySendError::Full(_)) = self.sender.try_send(packet) {
            self.cut_off.notify_one();
        }
    }
}

/// A connection's own state, kept by its task.
struct Session {
    outbox: Outbox,
    user: Option<User>,
}

impl Session {
    /// Queue one packet for this session.
    fn send(&self, response: &Response) {
        self.outbox.push(encode(response));
    }
}

/// Who a session logged in as.
struct User {
    user_id: String,
    unique_id: i64,
    room: Option<usize>,
}

/// Someone in a room.
struct Member {
    unique_id: i64,
    user_id: String,
    outbox: Outbox,
}

/// Users and rooms: everything the connections share.
struct World {
    settings: Settings,
    /// User ids logged in, so each logs in once and the user limit holds.
    users: HashSet<String>,
    /// Each room's members, oldest first (the 209 list's order).
    rooms: Vec<Vec<Member>>,
    /// The next login's unique id.
    next_unique_id: i64,
}

impl World {
    fn new(settings: Settings) -> World {
        World {
            settings,
            users: HashSet::new(),
            rooms: (0..settings.rooms).map(|_| Vec::new()).collect(),
            next_unique_id: 1,
        }
    }

    /// Answer one request of `session`.
    fn handle(&mut self, session: &mut Session, request: Request) {
        match request {
            Request::Login { user_id, .. } => {
                let result = self.login(session, user_id);
                session.send(&Response::Login {
                    result: result.code(),
                });
            }
            Request::RoomEnter { room } => self.enter(session, room),
            Request::RoomLeave => {
                let result = self.leave(session);
                session.send(&Response::RoomLeave {
                    result: result.code_i16(),
                });
            }
            Request::RoomChat { message } => self.chat(session, message),
        }
    }

    /// Log `session` in as `user_id`; every password is accepted.
    fn login(&mut self, session: &mut Session, user_id: Vec<u8>) -> ResultCode {
        if session.user.is_some() {
            return ResultCode::SessionAlreadyLoggedIn;
        }
        let user_id = match String::from_utf8(user_id) {
            Ok(id) if !id.is_empty() && id.len() <= MAX_USER_ID_LEN => id,
            _ => return ResultCode::InvalidUserId,
        };
        if self.users.contains(&user_id) {
            return ResultCode::UserAlreadyLoggedIn;
        }
        if self.users.len() >= self.settings.max_users {
            return ResultCode::ServerFull;
        }
        self.users.insert(user_id.clone());
        session.user = Some(User {
            user_id,
            unique_id: self.next_unique_id,
            room: None,
        });
        self.next_unique_id += 1;
        ResultCode::None
    }

    /// Enter a room: 207, then the user list to the newcomer and 208 to the others.
    fn enter(&mut self, session: &mut Session, room: i32) {
        let result = self.try_enter(session, room);
        session.send(&Response::RoomEnter {
            result: result.code_i16(),
        });
        if result != ResultCode::None {
            return;
        }
        let members = &self.rooms[room as usize];
        let (newcomer, others) = members.split_last().expect("the newcomer was just added");
        let list = Response::RoomUserList(others.iter().map(Member::room_user).collect());
        session.send(&list);
        broadcast(others, &Response::RoomNewUser(newcomer.room_user()));
    }

    fn try_enter(&mut self, session: &mut Session, room: i32) -> ResultCode {
        let Some(user) = session.user.as_mut() else {
            return ResultCode::NotLoggedIn;
        };
        if user.room.is_some() {
            return ResultCode::AlreadyInRoom;
        }
        let Some((index, members)) = usize::try_from(room)
            .ok()
            .and_then(|index| Some((index, self.rooms.get_mut(index)?)))
        else {
            return ResultCode::InvalidRoomNumber;
        };
        if members.len() >= self.settings.room_capacity {
            return ResultCode::RoomFull;
        }
        members.push(Member {
            unique_id: user.unique_id,
            user_id: user.user_id.clone(),
            outbox: session.outbox.clone(),
        });
        user.room = Some(index);
        ResultCode::None
    }

    /// Take the session's user out of its room and tell the others (217).
    fn leave(&mut self, session: &mut Session) -> ResultCode {
        let Some(user) = session.user.as_mut() else {
            return ResultCode::NotLoggedIn;
        };
        let Some(room) = user.room.take() else {
            return ResultCode::NotInRoom;
        };
        let members = &mut self.rooms[room];
        if let Some(at) = members.iter().position(|m| m.unique_id == user.unique_id) {
            // `remove`, not `swap_remove`: the user list shows members oldest first.
            members.remove(at);
        }
        broadcast(
            members,
            &Response::RoomLeaveUser {
                unique_id: user.unique_id,
            },
        );
        ResultCode::None
    }

    /// Say `message` to the room: 222 to the sender, then 223 to every member.
    fn chat(&mut self, session: &mut Session, message: Vec<u8>) {
        let room = match &session.user {
            None => Err(ResultCode::NotLoggedIn),
            Some(User { room: None, .. }) => Err(ResultCode::NotInRoom),
            Some(_) if message.len() > MAX_MESSAGE_LEN => Err(ResultCode::InvalidMessage),
            Some(User {
                room: Some(room),
                user_id,
                ..
            }) => Ok((*room, user_id.as_bytes().to_vec())),
        };
        match room {
            Err(result) => session.send(&Response::RoomChat {
                result: result.code_i16(),
            }),
            Ok((room, user_id)) => {
                session.send(&Response::RoomChat {
                    result: ResultCode::None.code_i16(),
                });
                broadcast(
                    &self.rooms[room],
                    &Response::RoomChatNotify { user_id, message },
                );
            }
        }
    }

    /// The connection ended: leave the room (217 to the others), free the user id.
    fn closed(&mut self, session: &mut Session) {
        let _ = self.leave(session);
        if let Some(user) = session.user.take() {
            self.users.remove(&user.user_id);
        }
    }
}

impl Member {
    fn room_user(&self) -> RoomUser {
        RoomUser {
            unique_id: self.unique_id,
            user_id: self.user_id.as_bytes().to_vec(),
        }
    }
}

/// One packet, header and body, in a buffer of its own.
fn encode(response: &Response) -> Bytes {
    Bytes::from(response.to_bytes())
}

/// Encode once; every member's queue gets a clone sharing the buffer.
fn broadcast(members: &[Member], response: &Response) {
    let packet = encode(response);
    for member in members {
        member.outbox.push(packet.clone());
    }
}
