//! The game logic: users, rooms, and what each request does. Single-threaded by design:
//! the logic thread owns a `World` outright ([`crate::Mode::Logic`]), or the I/O threads
//! take turns under one lock ([`crate::Mode::Io`]).

mod rooms;

use crate::cluster::{Claimed, Cluster, Held, Notice};
use crate::config::ChatConfig;
use crate::guard::Inflow;
use crate::stats::{Counters, RequestKind};
use crate::store::{Refusal, UserStore};
use crate::verify::{Job, Verified, Verifiers};
use iomodels_engine::{Session, SessionId, SharedMessage};
use iomodels_proto::{Request, Response, ResultCode, RoomUser, MAX_MESSAGE_LEN, MAX_USER_ID_LEN};
use rooms::RoomOp;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A logged-in user.
struct User {
    user_id: String,
    unique_id: i64,
    room: Option<usize>,
}

/// A session the logic has heard from.
struct Client {
    session: Session,
    user: Option<User>,
    inflow: Arc<Inflow>,
    /// A login of this session is out for its password check: its later requests wait in
    /// `deferred` until it is answered, so answers keep the order of requests.
    verifying: bool,
    deferred: VecDeque<Request>,
    /// Its room request out to the cluster, if any (it is then `verifying` too).
    room_op: Option<RoomOp>,
}

/// Someone in a room.
struct Member {
    session: Session,
    unique_id: i64,
    user_id: String,
}

/// What became of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Answered.
    Done,
    /// A login gone for its password check, or its cluster-wide claim: answered when
    /// [`World::verified`] or [`World::claimed`] runs.
    Verifying,
}

/// What [`World::admit`] did with a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admit {
    /// Answered with this result.
    Done(ResultCode),
    /// Gone to the cluster for its claim: answered when [`World::claimed`] runs.
    Claiming,
}

pub(crate) struct World {
    config: ChatConfig,
    store: Arc<dyn UserStore>,
    /// Where costly password checks go (`None`: the store answers at once).
    verifiers: Option<Arc<Verifiers>>,
    /// The cluster this instance belongs to, if any: logins are claimed there.
    cluster: Option<Arc<Cluster>>,
    /// This instance's name in the cluster (empty without one).
    instance_name: String,
    /// Each room's last event number seen (cluster mode).
    room_seq: Vec<u64>,
    /// Session ids by their number, as room events name them (cluster mode).
    tokens: HashMap<u64, SessionId>,
    /// The user ids whose claims are out to the cluster and not yet back: they count
    /// against `max_users`, and a second login of one waits for no claim (31 at once).
    claiming: HashSet<String>,
    counters: Arc<Counters>,
    clients: HashMap<SessionId, Client>,
    /// Logged-in user ids, so a user logs in once and the user limit holds.
    users: HashMap<String, SessionId>,
    rooms: Vec<Vec<Member>>,
    next_unique_id: i64,
    /// Password checks handed to the verifiers and not yet back.
    verifying: usize,
    /// Scratch for encoding bodies.
    body: Vec<u8>,
}

impl World {
    pub(crate) fn new(
        config: ChatConfig,
        store: Arc<dyn UserStore>,
        verifiers: Option<Arc<Verifiers>>,
        cluster: Option<Arc<Cluster>>,
        counters: Arc<Counters>,
    ) -> World {
        World {
            rooms: (0..config.rooms).map(|_| Vec::new()).collect(),
            room_seq: vec![0; config.rooms],
            instance_name: config
                .cluster
                .as_ref()
                .map(|c| c.instance.clone())
                .unwrap_or_default(),
            config,
            store,
            verifiers,
            tokens: HashMap::new(),
            cluster,
            claiming: HashSet::new(),
            counters,
            clients: HashMap::new(),
            users: HashMap::new(),
            next_unique_id: 1,
            verifying: 0,
            body: Vec::new(),
        }
    }

    /// Password checks and cluster claims out and not yet back: a shutdown waits for them,
    /// since the logins they answer (and the requests held behind them) were read before it.
    pub(crate) fn verifying(&self) -> usize {
        self.verifying
    }

    /// Run one request from `session`, or hold it back behind the session's login that is
    /// out for its password check.
    pub(crate) fn request(&mut self, session: &Session, request: Request, inflow: &Arc<Inflow>) {
        if self.cluster.is_some() && !self.clients.contains_key(&session.id()) {
            self.tokens.insert(session.id().get(), session.id());
        }
        let client = self.clients.entry(session.id()).or_insert_with(|| Client {
            session: session.clone(),
            user: None,
            inflow: inflow.clone(),
            verifying: false,
            deferred: VecDeque::new(),
            room_op: None,
        });
        if client.verifying {
            client.deferred.push_back(request);
            return;
        }
        if self.handle(session, request) == Step::Done {
            inflow.handled(session, self.config.max_pending, &self.counters);
        }
    }

    /// A request dropped unhandled (shutdown began before it was read whole).
    pub(crate) fn dropped(&self, session: &Session, inflow: &Inflow) {
        self.counters.dropped.fetch_add(1, Relaxed);
        inflow.handled(session, self.config.max_pending, &self.counters);
    }

    fn handle(&mut self, session: &Session, request: Request) -> Step {
        match request {
            Request::Login { user_id, password } => {
                return self.login(session, user_id, password);
            }
            Request::RoomEnter { room } if self.cluster.is_some() => {
                return self.cluster_enter(session, room);
            }
            Request::RoomLeave if self.cluster.is_some() => return self.cluster_leave(session),
            Request::RoomChat { message } if self.cluster.is_some() => {
                return self.cluster_chat(session, message);
            }
            Request::RoomEnter { room } => self.enter(session, room),
            Request::RoomLeave => {
                let result = self.leave(session);
                self.answer(session, RequestKind::RoomLeave, result);
            }
            Request::RoomChat { message } => self.chat(session, message),
        }
        Step::Done
    }

    /// A login: answered now, or handed to the verifiers.
    fn login(&mut self, session: &Session, user_id: Vec<u8>, password: Vec<u8>) -> Step {
        let id = session.id();
        if self.clients[&id].user.is_some() {
            self.answer(
                session,
                RequestKind::Login,
                ResultCode::SessionAlreadyLoggedIn,
            );
            return Step::Done;
        }
        let user_id = match String::from_utf8(user_id) {
            Ok(u) if !u.is_empty() && u.len() <= MAX_USER_ID_LEN => u,
            _ => {
                self.answer(session, RequestKind::Login, ResultCode::InvalidUserId);
                return Step::Done;
            }
        };
        if let Some(verifiers) = &self.verifiers {
            let job = Job {
                session: session.clone(),
                user_id,
                password,
            };
            if verifiers.submit(job) {
                self.verifying += 1;
                self.counters.verifying.fetch_add(1, Relaxed);
                if let Some(client) = self.clients.get_mut(&id) {
                    client.verifying = true;
                }
                return Step::Verifying;
            }
            // The pool is closed: the server is going away.
            self.answer(session, RequestKind::Login, ResultCode::ServerFull);
            return Step::Done;
        }
        let checked = self.store.check(&user_id, &password);
        match self.admit(session, user_id, checked) {
            Admit::Done(result) => {
                self.answer(session, RequestKind::Login, result);
                Step::Done
            }
            Admit::Claiming => Step::Verifying,
        }
    }

    /// A password check came back: answer the login, then run the requests the session
    /// sent after it, until one is another login out for its check.
    pub(crate) fn verified(&mut self, verified: Verified) {
        self.verifying -= 1;
        self.counters.verifying.fetch_sub(1, Relaxed);
        let Verified {
            session,
            user_id,
            result,
        } = verified;
        let Some(client) = self.clients.get_mut(&session.id()) else {
            // The session ended meanwhile; `closed` let go of its requests.
            return;
        };
        client.verifying = false;
        let inflow = client.inflow.clone();
        match self.admit(&session, user_id, result) {
            Admit::Done(result) => self.answer(&session, RequestKind::Login, result),
            // Still held: answered (and the held requests run) when the claim is back.
            Admit::Claiming => return,
        }
        inflow.handled(&session, self.config.max_pending, &self.counters);
        self.run_held(&session, &inflow);
    }

    /// A cluster claim came back: log the session in with its unique id, or answer why
    /// not; then run the requests it held back.
    pub(crate) fn claimed(&mut self, claimed: Claimed) {
        self.verifying -= 1;
        self.claiming.remove(&claimed.user_id);
        self.counters.verifying.fetch_sub(1, Relaxed);
        let Claimed {
            session,
            user_id,
            result,
        } = claimed;
        let Some(client) = self.clients.get_mut(&session.id()) else {
            // The session ended meanwhile: give back what it won.
            if let (Ok(_), Some(cluster)) = (result, &self.cluster) {
                cluster.release(user_id);
            }
            return;
        };
        client.verifying = false;
        let inflow = client.inflow.clone();
        let result = match result {
            Ok(unique_id) => {
                self.log_in(&session, user_id, unique_id);
                ResultCode::None
            }
            Err(result) => result,
        };
        self.answer(&session, RequestKind::Login, result);
        inflow.handled(&session, self.config.max_pending, &self.counters);
        self.run_held(&session, &inflow);
    }

    /// News from the cluster's threads.
    pub(crate) fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Claimed(claimed) => self.claimed(claimed),
            Notice::Evicted => self.evicted(),
            Notice::Lost(session) => session.close(),
            Notice::Room(event) => self.room_event(event),
            Notice::RoomAnswer(session, result) => self.room_answer(session, result),
            Notice::RoomsLost => {
                // What comes next is a new subscription's, perhaps of a new Redis whose
                // rooms count from 1 again.
                self.room_seq.iter_mut().for_each(|seq| *seq = 0);
                self.close_room_members(None);
            }
        }
    }

    /// This instance was reaped from the cluster and registered again: hand every user
    /// logged in here to be claimed again (behind the releases and claims queued so far).
    /// One that logged in on another instance meanwhile is closed here ([`Notice::Lost`]).
    pub(crate) fn evicted(&mut self) {
        let Some(cluster) = &self.cluster else { return };
        let users = self
            .users
            .values()
            .filter_map(|id| self.clients.get(id))
            .filter_map(|client| {
                client.user.as_ref().map(|user| Held {
                    session: client.session.clone(),
                    user_id: user.user_id.clone(),
                    unique_id: user.unique_id,
                })
            })
            .collect();
        cluster.reclaim(users);
    }

    /// Run the requests `session` held back behind a login, until one is another login
    /// out for its check.
    fn run_held(&mut self, session: &Session, inflow: &Arc<Inflow>) {
        loop {
            let Some(client) = self.clients.get_mut(&session.id()) else {
                return;
            };
            if client.verifying {
                return;
            }
            let Some(request) = client.deferred.pop_front() else {
                return;
            };
            if self.handle(session, request) == Step::Done {
                inflow.handled(session, self.config.max_pending, &self.counters);
            }
        }
    }

    /// Log `session` in as `user_id` if its password `checked` out and the user may.
    fn admit(&mut self, session: &Session, user_id: String, checked: Result<(), Refusal>) -> Admit {
        match checked {
            Ok(()) => {}
            Err(Refusal::InvalidPassword) => return Admit::Done(ResultCode::InvalidPassword),
            Err(Refusal::Unavailable) => return Admit::Done(ResultCode::ServerFull),
        }
        if self.users.contains_key(&user_id) || self.claiming.contains(&user_id) {
            return Admit::Done(ResultCode::UserAlreadyLoggedIn);
        }
        if self.users.len() + self.claiming.len() >= self.config.max_users {
            return Admit::Done(ResultCode::ServerFull);
        }
        if let Some(cluster) = &self.cluster {
            // One login per user id cluster-wide, and the unique id, come from Redis.
            if !cluster.claim(session.clone(), user_id.clone()) {
                // The cluster is closed: the server is going away.
                return Admit::Done(ResultCode::ServerFull);
            }
            self.claiming.insert(user_id);
            self.verifying += 1;
            self.counters.verifying.fetch_add(1, Relaxed);
            if let Some(client) = self.clients.get_mut(&session.id()) {
                client.verifying = true;
            }
            return Admit::Claiming;
        }
        let unique_id = self.next_unique_id;
        self.next_unique_id += 1;
        self.log_in(session, user_id, unique_id);
        Admit::Done(ResultCode::None)
    }

    /// Log `session` in as `user_id`, known by `unique_id`.
    fn log_in(&mut self, session: &Session, user_id: String, unique_id: i64) {
        let id = session.id();
        self.users.insert(user_id.clone(), id);
        if let Some(client) = self.clients.get_mut(&id) {
            client.inflow.not_anonymous(&self.counters);
            client.user = Some(User {
                user_id,
                unique_id,
                room: None,
            });
        }
        self.counters.login();
    }

    fn enter(&mut self, session: &Session, room: i32) {
        let result = self.try_enter(session, room);
        self.answer(session, RequestKind::RoomEnter, result);
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
            Err(result) => self.answer(session, RequestKind::RoomChat, result),
            Ok((room, user_id)) => {
                // Counted before anyone hears of it.
                self.counters.chat();
                self.answer(session, RequestKind::RoomChat, ResultCode::None);
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
        if self.cluster.is_some() {
            self.cluster_closed(session);
            self.tokens.remove(&session.id().get());
        } else {
            let _ = self.leave(session);
        }
        if let Some(client) = self.clients.remove(&session.id()) {
            if let Some(user) = client.user {
                self.users.remove(&user.user_id);
                if let Some(cluster) = &self.cluster {
                    cluster.release(user.user_id);
                }
            }
            // Its login out for a check, and what waited behind it, will not be answered.
            let held = client.deferred.len() + usize::from(client.verifying);
            self.counters.pending.fetch_sub(held, Relaxed);
        }
    }

    /// Answer a request of `kind` with `result`, and count it.
    fn answer(&mut self, session: &Session, kind: RequestKind, result: ResultCode) {
        self.counters.answered(kind, result);
        let response = match kind {
            RequestKind::Login => Response::Login {
                result: result.code(),
            },
            RequestKind::RoomEnter => Response::RoomEnter {
                result: result.code_i16(),
            },
            RequestKind::RoomLeave => Response::RoomLeave {
                result: result.code_i16(),
            },
            RequestKind::RoomChat => Response::RoomChat {
                result: result.code_i16(),
            },
        };
        send(&mut self.body, session, &response);
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

/// Encode once, queue the same bytes to every member (no copy per member).
fn broadcast(body: &mut Vec<u8>, members: &[Member], response: &Response) {
    if members.is_empty() {
        return;
    }
    body.clear();
    let header = response.encode_body(body).encode();
    let mut packet = Vec::with_capacity(header.len() + body.len());
    packet.extend_from_slice(&header);
    packet.extend_from_slice(body);
    let packet = SharedMessage::from(packet);
    for member in members {
        let _ = member.session.send_shared(&packet);
    }
}
