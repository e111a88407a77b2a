//! The game logic: users, rooms, and what each request does. Single-threaded by design:
//! the logic thread owns a `World` outright ([`crate::Mode::Logic`]), or the I/O threads
//! take turns under one lock ([`crate::Mode::Io`]).

use crate::config::ChatConfig;
use crate::stats::Counters;
use crate::store::{Refusal, UserStore};
use iomodels_engine::{Session, SessionId};
use iomodels_proto::{Request, Response, ResultCode, RoomUser, MAX_MESSAGE_LEN, MAX_USER_ID_LEN};
use std::collections::HashMap;
use std::sync::Arc;

/// A logged-in user.
struct User {
    user_id: String,
    unique_id: i64,
    room: Option<usize>,
}

/// A session the logic has heard from.
struct Client {
    user: Option<User>,
}

/// Someone in a room.
struct Member {
    session: Session,
    unique_id: i64,
    user_id: String,
}

pub(crate) struct World {
    config: ChatConfig,
    store: Arc<dyn UserStore>,
    counters: Arc<Counters>,
    clients: HashMap<SessionId, Client>,
    /// Logged-in user ids, so a user logs in once and the user limit holds.
    users: HashMap<String, SessionId>,
    rooms: Vec<Vec<Member>>,
    next_unique_id: i64,
    /// Scratch for encoding bodies.
    body: Vec<u8>,
}

impl World {
    pub(crate) fn new(
        config: ChatConfig,
        store: Arc<dyn UserStore>,
        counters: Arc<Counters>,
    ) -> World {
        World {
            rooms: (0..config.rooms).map(|_| Vec::new()).collect(),
            config,
            store,
            counters,
            clients: HashMap::new(),
            users: HashMap::new(),
            next_unique_id: 1,
            body: Vec::new(),
        }
    }

    /// The counters the game logic keeps.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Run one request from `session`.
    pub(crate) fn request(&mut self, session: &Session, request: Request) {
        self.clients
            .entry(session.id())
            .or_insert_with(|| Client { user: None });
        match request {
            Request::Login { user_id, password } => {
                let result = self.login(session, user_id, &password);
                self.send(
                    session,
                    &Response::Login {
                        result: result.code(),
                    },
                );
            }
            Request::RoomEnter { room } => self.enter(session, room),
            Request::RoomLeave => {
                let result = self.leave(session);
                self.send(
                    session,
                    &Response::RoomLeave {
                        result: result.code_i16(),
                    },
                );
            }
            Request::RoomChat { message } => self.chat(session, message),
        }
    }

    fn login(&mut self, session: &Session, user_id: Vec<u8>, password: &[u8]) -> ResultCode {
        let id = session.id();
        if self.clients[&id].user.is_some() {
            return ResultCode::SessionAlreadyLoggedIn;
        }
        let user_id = match String::from_utf8(user_id) {
            Ok(u) if !u.is_empty() && u.len() <= MAX_USER_ID_LEN => u,
            _ => return ResultCode::InvalidUserId,
        };
        if let Err(Refusal::InvalidPassword) = self.store.check(&user_id, password) {
            return ResultCode::InvalidPassword;
        }
        if self.users.contains_key(&user_id) {
            return ResultCode::UserAlreadyLoggedIn;
        }
        if self.users.len() >= self.config.max_users {
            return ResultCode::ServerFull;
        }
        let unique_id = self.next_unique_id;
        self.next_unique_id += 1;
        self.users.insert(user_id.clone(), id);
        if let Some(client) = self.clients.get_mut(&id) {
            client.user = Some(User {
                user_id,
                unique_id,
                room: None,
            });
        }
        self.counters.login();
        ResultCode::None
    }

    fn enter(&mut self, session: &Session, room: i32) {
        let result = self.try_enter(session, room);
        self.send(
            session,
            &Response::RoomEnter {
                result: result.code_i16(),
            },
        );
        if result != ResultCode::None {
            return;
        }
        let room = room as usize;
        let members = &self.rooms[room];
        let (newcomer, others) = members.split_last().expect("the newcomer was added");
        let list = Response::RoomUserList(
            others
                .iter()
                .map(|m| RoomUser {
                    unique_id: m.unique_id,
                    user_id: m.user_id.as_bytes().to_vec(),
                })
                .collect(),
        );
        let notify = Response::RoomNewUser(RoomUser {
            unique_id: newcomer.unique_id,
            user_id: newcomer.user_id.as_bytes().to_vec(),
        });
        send(&mut self.body, session, &list);
        broadcast(&mut self.body, others, &notify);
    }

    fn try_enter(&mut self, session: &Session, room: i32) -> ResultCode {
        let Some(user) = self
            .clients
            .get_mut(&session.id())
            .and_then(|c| c.user.as_mut())
        else {
            return ResultCode::NotLoggedIn;
        };
        if user.room.is_some() {
            return ResultCode::AlreadyInRoom;
        }
        let Some(members) = usize::try_from(room)
            .ok()
            .and_then(|r| self.rooms.get_mut(r))
        else {
            return ResultCode::InvalidRoomNumber;
        };
        if members.len() >= self.config.room_capacity {
            return ResultCode::RoomFull;
        }
        members.push(Member {
            session: session.clone(),
            unique_id: user.unique_id,
            user_id: user.user_id.clone(),
        });
        user.room = Some(room as usize);
        ResultCode::None
    }

    /// Take the session's user out of its room and tell the others.
    fn leave(&mut self, session: &Session) -> ResultCode {
        let Some(user) = self
            .clients
            .get_mut(&session.id())
            .and_then(|c| c.user.as_mut())
        else {
            return ResultCode::NotLoggedIn;
        };
        let Some(room) = user.room.take() else {
            return ResultCode::NotInRoom;
        };
        let members = &mut self.rooms[room];
        if let Some(at) = members.iter().position(|m| m.session.same(session)) {
            // Keep the join order: the user list shows members oldest first.
            members.remove(at);
        }
        let notify = Response::RoomLeaveUser {
            unique_id: user.unique_id,
        };
        broadcast(&mut self.body, members, &notify);
        ResultCode::None
    }

    fn chat(&mut self, session: &Session, message: Vec<u8>) {
        let room = match self
            .clients
            .get(&session.id())
            .and_then(|c| c.user.as_ref())
        {
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
            Err(result) => self.send(
                session,
                &Response::RoomChat {
                    result: result.code_i16(),
                },
            ),
            Ok((room, user_id)) => {
                // Counted before anyone hears of it.
                self.counters.chat();
                self.send(session, &Response::RoomChat { result: 0 });
                let notify = Response::RoomChatNotify { user_id, message };
                broadcast(&mut self.body, &self.rooms[room], &notify);
            }
        }
    }

    /// The session ended: leave its room (telling the others) and free its user id.
    pub(crate) fn closed(&mut self, session: &Session) {
        if !self.clients.contains_key(&session.id()) {
            return;
        }
        let _ = self.leave(session);
        if let Some(client) = self.clients.remove(&session.id()) {
            if let Some(user) = client.user {
                self.users.remove(&user.user_id);
            }
        }
    }

    fn send(&mut self, session: &Session, response: &Response) {
        send(&mut self.body, session, response);
    }
}

/// Send one packet as header + body in one vectored, never-interleaved send. A failure
/// needs no handling here: a closed session's close event is on its way, and a full queue
/// closes the session with `SendQueueFull`.
fn send(body: &mut Vec<u8>, session: &Session, response: &Response) {
    body.clear();
    let header = response.encode_body(body).encode();
    let _ = session.send_vectored(&[&header, body]);
}

/// Encode once, send to every member.
fn broadcast(body: &mut Vec<u8>, members: &[Member], response: &Response) {
    body.clear();
    let header = response.encode_body(body).encode();
    for member in members {
        let _ = member.session.send_vectored(&[&header, body]);
    }
}
