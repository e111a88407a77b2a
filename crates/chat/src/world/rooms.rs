//! Rooms across the instances of a cluster (issue 11): each room request goes to Redis as
//! a script that publishes the room's next event, and the session is answered when its own
//! event comes back through the subscription, so that every member on every instance sees
//! a room's events in one order. A session's later requests wait meanwhile (as behind a
//! login's password check). The crate's README, "Many instances over Redis", has the why.

use super::{broadcast, send, Member, Step, World};
use crate::cluster::event::{RoomEvent, What};
use crate::stats::RequestKind;
use iomodels_engine::Session;
use iomodels_proto::{Response, ResultCode, RoomUser, MAX_MESSAGE_LEN};

/// A room request of a session, out to Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RoomOp {
    Enter(usize),
    Leave(usize),
    Chat(usize),
}

impl World {
    /// The logged-in user of `session`: unique id, user id, room.
    fn member_of(&self, session: &Session) -> Result<(i64, String, Option<usize>), ResultCode> {
        self.clients
            .get(&session.id())
            .and_then(|c| c.user.as_ref())
            .map(|u| (u.unique_id, u.user_id.clone(), u.room))
            .ok_or(ResultCode::NotLoggedIn)
    }

    /// Mark `session`'s room request as out: its later requests wait.
    fn out(&mut self, session: &Session, op: RoomOp) -> Step {
        self.verifying += 1;
        if let Some(client) = self.clients.get_mut(&session.id()) {
            client.verifying = true;
            client.room_op = Some(op);
        }
        Step::Verifying
    }

    pub(super) fn cluster_enter(&mut self, session: &Session, room: i32) -> Step {
        let refused = match self.member_of(session) {
            Err(result) => Err(result),
            Ok((_, _, Some(_))) => Err(ResultCode::AlreadyInRoom),
            Ok((unique_id, user_id, None)) => match usize::try_from(room) {
                Ok(room) if room < self.rooms.len() => Ok((unique_id, user_id, room)),
                _ => Err(ResultCode::InvalidRoomNumber),
            },
        };
        let cluster = self.cluster.clone().expect("cluster mode");
        match refused {
            Ok((unique_id, user_id, room)) => {
                if cluster.enter(session.clone(), room, unique_id, user_id) {
                    self.out(session, RoomOp::Enter(room))
                } else {
                    self.done(session, RequestKind::RoomEnter, ResultCode::ServerFull)
                }
            }
            Err(result) => self.done(session, RequestKind::RoomEnter, result),
        }
    }

    pub(super) fn cluster_leave(&mut self, session: &Session) -> Step {
        let cluster = self.cluster.clone().expect("cluster mode");
        match self.member_of(session) {
            Err(result) => self.done(session, RequestKind::RoomLeave, result),
            Ok((_, _, None)) => self.done(session, RequestKind::RoomLeave, ResultCode::NotInRoom),
            Ok((unique_id, user_id, Some(room))) => {
                if cluster.leave(Some(session.clone()), room, unique_id, user_id) {
                    self.out(session, RoomOp::Leave(room))
                } else {
                    self.done(session, RequestKind::RoomLeave, ResultCode::ServerFull)
                }
            }
        }
    }

    pub(super) fn cluster_chat(&mut self, session: &Session, message: Vec<u8>) -> Step {
        let cluster = self.cluster.clone().expect("cluster mode");
        match self.member_of(session) {
            Err(result) => self.done(session, RequestKind::RoomChat, result),
            Ok((_, _, None)) => self.done(session, RequestKind::RoomChat, ResultCode::NotInRoom),
            Ok(_) if message.len() > MAX_MESSAGE_LEN => {
                self.done(session, RequestKind::RoomChat, ResultCode::InvalidMessage)
            }
            Ok((unique_id, user_id, Some(room))) => {
                if cluster.chat(session.clone(), room, unique_id, user_id, message) {
                    self.out(session, RoomOp::Chat(room))
                } else {
                    self.done(session, RequestKind::RoomChat, ResultCode::ServerFull)
                }
            }
        }
    }

    fn done(&mut self, session: &Session, kind: RequestKind, result: ResultCode) -> Step {
        self.answer(session, kind, result);
        Step::Done
    }

    /// `session`'s room request is answered: let its later requests run.
    fn settled(&mut self, session: &Session) {
        self.verifying -= 1;
        let Some(client) = self.clients.get_mut(&session.id()) else {
            return;
        };
        client.verifying = false;
        client.room_op = None;
        let inflow = client.inflow.clone();
        inflow.handled(session, self.config.max_pending, &self.counters);
        self.run_held(session, &inflow);
    }

    /// The session of this instance named by `event`, with its room request, if any.
    fn own(&self, event: &RoomEvent) -> Option<(Session, Option<RoomOp>)> {
        if event.instance != self.instance_name.as_bytes() {
            return None;
        }
        let token: u64 = std::str::from_utf8(&event.session).ok()?.parse().ok()?;
        let client = self.clients.get(self.tokens.get(&token)?)?;
        Some((client.session.clone(), client.room_op))
    }

    /// A room's event from the subscription: answer its own session if it is ours, and
    /// tell this instance's members of the room.
    pub(crate) fn room_event(&mut self, event: RoomEvent) {
        let room = event.room;
        if room >= self.rooms.len() {
            return;
        }
        let last = self.room_seq[room];
        self.room_seq[room] = event.seq;
        if last != 0 && event.seq != last + 1 {
            tracing::warn!(
                room,
                last,
                next = event.seq,
                "missed events of room {room}; closing its members here"
            );
            self.close_room_members(Some(room));
            return;
        }
        let own = self.own(&event);
        let user = || RoomUser {
            unique_id: event.member.unique_id,
            user_id: event.member.user_id.clone(),
        };
        match &event.what {
            What::Enter(list) => {
                broadcast(
                    &mut self.body,
                    &self.rooms[room],
                    &Response::RoomNewUser(user()),
                );
                if let Some((session, Some(RoomOp::Enter(r)))) = own {
                    if r == room {
                        self.answer(&session, RequestKind::RoomEnter, ResultCode::None);
                        let list = Response::RoomUserList(
                            list.iter()
                                .map(|m| RoomUser {
                                    unique_id: m.unique_id,
                                    user_id: m.user_id.clone(),
                                })
                                .collect(),
                        );
                        send(&mut self.body, &session, &list);
                        self.joined(&session, room);
                        self.settled(&session);
                    }
                }
            }
            What::Leave => {
                let gone = event.member.unique_id;
                let mut answered = None;
                if let Some((session, Some(RoomOp::Leave(r)))) = own {
                    if r == room {
                        answered = Some(session);
                    }
                }
                // A member of ours removed without its own leave: this instance was
                // reaped while cut off. It was not told; it is closed (and logs in again).
                if answered.is_none() {
                    for member in self.rooms[room].iter().filter(|m| m.unique_id == gone) {
                        member.session.close();
                    }
                }
                let here: Vec<_> = self.rooms[room]
                    .iter()
                    .filter(|m| m.unique_id == gone)
                    .map(|m| m.session.id())
                    .collect();
                self.rooms[room].retain(|m| m.unique_id != gone);
                for id in here {
                    if let Some(user) = self.clients.get_mut(&id).and_then(|c| c.user.as_mut()) {
                        user.room = None;
                    }
                }
                if let Some(session) = answered {
                    self.answer(&session, RequestKind::RoomLeave, ResultCode::None);
                    self.settled(&session);
                }
                broadcast(
                    &mut self.body,
                    &self.rooms[room],
                    &Response::RoomLeaveUser { unique_id: gone },
                );
            }
            What::Chat(message) => {
                let mut sender = None;
                if let Some((session, Some(RoomOp::Chat(r)))) = own {
                    if r == room {
                        // Counted before anyone hears of it; its 222 before its own 223.
                        self.counters.chat();
                        self.answer(&session, RequestKind::RoomChat, ResultCode::None);
                        sender = Some(session);
                    }
                }
                let notify = Response::RoomChatNotify {
                    user_id: event.member.user_id.clone(),
                    message: message.clone(),
                };
                broadcast(&mut self.body, &self.rooms[room], &notify);
                if let Some(session) = sender {
                    self.settled(&session);
                }
            }
        }
    }

    /// `session`'s user is in `room` now, here and in Redis.
    fn joined(&mut self, session: &Session, room: usize) {
        let Some(user) = self
            .clients
            .get_mut(&session.id())
            .and_then(|c| c.user.as_mut())
        else {
            return;
        };
        user.room = Some(room);
        self.rooms[room].push(Member {
            session: session.clone(),
            unique_id: user.unique_id,
            user_id: user.user_id.clone(),
        });
    }

    /// A room request that will have no event: answer it with `result`.
    pub(crate) fn room_answer(&mut self, session: Session, result: ResultCode) {
        let Some(op) = self.clients.get(&session.id()).and_then(|c| c.room_op) else {
            return;
        };
        match op {
            RoomOp::Enter(_) => self.answer(&session, RequestKind::RoomEnter, result),
            RoomOp::Chat(_) => self.answer(&session, RequestKind::RoomChat, result),
            RoomOp::Leave(room) => {
                // Gone from the room already (reaped), or Redis away (the leave is kept
                // for its return): out of it here at once.
                self.rooms[room].retain(|m| !m.session.same(&session));
                if let Some(user) = self
                    .clients
                    .get_mut(&session.id())
                    .and_then(|c| c.user.as_mut())
                {
                    user.room = None;
                }
                self.answer(&session, RequestKind::RoomLeave, result);
            }
        }
        self.settled(&session);
    }

    /// Close the sessions in `room` here (all rooms: `None`), and those with a room request
    /// out: they may have missed events, which pub/sub does not keep.
    pub(crate) fn close_room_members(&mut self, room: Option<usize>) {
        for client in self.clients.values() {
            let in_room = client
                .user
                .as_ref()
                .and_then(|u| u.room)
                .is_some_and(|r| room.is_none_or(|room| room == r));
            let waiting = client.room_op.is_some_and(|op| {
                let (RoomOp::Enter(r) | RoomOp::Leave(r) | RoomOp::Chat(r)) = op;
                room.is_none_or(|room| room == r)
            });
            if in_room || waiting {
                client.session.close();
            }
        }
    }

    /// `session` ended: out of its room here at once, and its leave queued (behind an
    /// enter still out, which it then undoes).
    pub(super) fn cluster_closed(&mut self, session: &Session) {
        let Some(client) = self.clients.get_mut(&session.id()) else {
            return;
        };
        let op = client.room_op.take();
        if op.is_some() {
            // Its answer will find no session: the request is settled here.
            self.verifying -= 1;
        }
        let Some(user) = client.user.as_mut() else {
            return;
        };
        let room = match (user.room.take(), op) {
            (Some(room), _) | (None, Some(RoomOp::Enter(room))) => room,
            _ => return,
        };
        let (unique_id, user_id) = (user.unique_id, user.user_id.clone());
        self.rooms[room].retain(|m| !m.session.same(session));
        if let Some(cluster) = &self.cluster {
            cluster.leave(None, room, unique_id, user_id);
        }
    }
}
