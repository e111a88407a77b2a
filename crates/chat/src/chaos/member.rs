//! The well-behaved members of a room under attack (flood, spray): each chats at a steady
//! rate, reads everything, and checks what it reads.
//!
//! A member's chat says `m SEQ NANOS` (its sequence number from 0 and the time it was sent,
//! in nanoseconds since the scenario's epoch); after the attack it says `f COUNT`, how many
//! it sent, so that nothing lost at the end goes unseen. Every member expects each member's
//! numbers 0, 1, 2, ... once each, and hashes the order of every chat notify it reads: the
//! hashes of the members must agree (the server's one order of the room). A flooder's chats
//! say `x SEQ`; a member counts how many came as the gap-free prefix 0..k. A member is done
//! when every member's `f` has come, its own chats are answered, and (in a flood) the
//! server has said the flooder left: after that 217 no chat of the flooder can follow.

use super::{describe, Closure};
use crate::bots::{histogram, micros, Latency};
use crate::client::{ClientError, Connection};
use hdrhistogram::Histogram;
use iomodels_proto::{Request, Response, RoomUser};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What the members of one room share.
pub(super) struct Room {
    /// Times in reports count from here; chats carry nanoseconds since.
    pub epoch: Instant,
    /// The members' user ids: member `i` is `names[i]`.
    pub names: Vec<Vec<u8>>,
    /// The flooder's user id, in a flood.
    pub flooder: Option<Vec<u8>>,
    /// Chats sent so far, per member (what a member whose `f` never came had sent).
    pub sent: Vec<AtomicU64>,
    /// Chats per second per member.
    pub rate: f64,
    /// When the members start chatting.
    pub start: Instant,
    /// When they stop and say how many they sent.
    pub stop: Instant,
    /// How long they then wait for what is still on its way.
    pub drain_timeout: Duration,
}

/// A member after its setup: in the room, with the user list the server gave it.
pub(super) struct Joined {
    /// Its connection.
    pub connection: Connection,
    /// The 209 it got on entering.
    pub listed: Vec<RoomUser>,
}

/// What one well-behaved member saw.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MemberReport {
    /// Its user id.
    pub user: String,
    /// Chats it sent (its final count not included).
    pub chats_sent: u64,
    /// Its chats answered with a result other than 0.
    pub chats_refused: u64,
    /// Its chats never answered.
    pub chats_unanswered: u64,
    /// Chat notifies received, from anyone.
    pub notifies: u64,
    /// Chats of the members received (its own included).
    pub member_chats: u64,
    /// Chats of the members that should have come and did not.
    pub lost: u64,
    /// Chats of the members that came twice.
    pub duplicated: u64,
    /// The flooder's chats received as the gap-free prefix 0..k: k.
    pub flooder_chats: u64,
    /// The first break in the flooder's sequence: (the number expected, the number that
    /// came).
    pub flooder_break: Option<(u64, u64)>,
    /// Seconds after the attack began that the server said the flooder left the room.
    pub flooder_left_secs: Option<f64>,
    /// Chat notifies from users of no scenario (another client of the server, or a
    /// sprayer that logged in by chance): counted, not judged.
    pub foreign: u64,
    /// Packets out of place: an answer to nothing asked, a chat that does not parse.
    pub unexpected: u64,
    /// The server closed it, or it failed: when and how. A member must stay connected.
    pub closed: Option<Closure>,
    /// It saw every member's final count (and the flooder leave) in time.
    pub drained: bool,
    /// Its chats' round trips (221 to 222).
    pub chat_rtt: Latency,
    /// The members' chats from sending to arriving here.
    pub fanout: Latency,
    /// The hash of the order of every chat notify it saw.
    #[serde(skip)]
    pub(super) order: u64,
}

impl fmt::Display for MemberReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} chats sent, {} notifies ({} of members), {} lost, {} duplicated",
            self.user,
            self.chats_sent,
            self.notifies,
            self.member_chats,
            self.lost,
            self.duplicated
        )?;
        if self.fanout.count > 0 {
            write!(
                f,
                ", fan-out p50 {} us max {} us",
                self.fanout.p50_us, self.fanout.max_us
            )?;
        }
        if let Some(closed) = &self.closed {
            write!(
                f,
                ", CLOSED after {:.2} s ({})",
                closed.after_secs, closed.how
            )?;
        }
        Ok(())
    }
}

impl MemberReport {
    /// What went wrong for this member, one phrase each; `who` names it, `flood` says
    /// whether it waited for a flooder to leave.
    pub(super) fn problems(&self, who: &str, drain: Duration, flood: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(closed) = &self.closed {
            problems.push(format!(
                "{who} was cut off after {:.2} s ({})",
                closed.after_secs, closed.how
            ));
        }
        let counts = [
            (self.lost, "members' chats lost"),
            (self.duplicated, "members' chats duplicated"),
            (self.chats_refused, "of its chats refused"),
            (self.chats_unanswered, "of its chats unanswered"),
            (self.unexpected, "packets out of place"),
        ];
        problems.extend(
            counts
                .into_iter()
                .filter(|&(count, _)| count > 0)
                .map(|(count, what)| format!("{who}: {count} {what}")),
        );
        if let Some((expected, got)) = self.flooder_break {
            problems.push(format!(
                "{who} saw the flooder's chats out of sequence (#{got} where #{expected} was due)"
            ));
        }
        if self.closed.is_none() && !self.drained {
            problems.push(format!(
                "{who} did not see every member's final count{} within {:.0} s of the end",
                if flood { " and the flooder leave" } else { "" },
                drain.as_secs_f64()
            ));
        }
        problems
    }
}

/// What a member expects of another member.
#[derive(Default)]
struct Expect {
    /// The next sequence number due.
    next: u64,
    /// Its final count came, or it left: nothing more is due.
    done: bool,
}

/// A member's bookkeeping.
struct State<'a> {
    room: &'a Room,
    report: MemberReport,
    expect: Vec<Expect>,
    order: DefaultHasher,
    /// Send times of its chats not answered yet.
    pending: VecDeque<Instant>,
    /// Every user the server named, by unique id.
    users: HashMap<i64, Vec<u8>>,
    /// The server said the flooder left.
    flooder_left: bool,
    rtt: Histogram<u64>,
    fanout: Histogram<u64>,
}

/// Member `me` of `room`: chat until the room's stop, say how many, then read until
/// everything due has come or the drain timeout passed.
pub(super) fn run(room: &Room, me: usize, joined: Joined) -> MemberReport {
    let Joined {
        mut connection,
        listed,
    } = joined;
    let mut state = State {
        room,
        report: MemberReport {
            user: String::from_utf8_lossy(&room.names[me]).into_owned(),
            chats_sent: 0,
            chats_refused: 0,
            chats_unanswered: 0,
            notifies: 0,
            member_chats: 0,
            lost: 0,
            duplicated: 0,
            flooder_chats: 0,
            flooder_break: None,
            flooder_left_secs: None,
            foreign: 0,
            unexpected: 0,
            closed: None,
            drained: false,
            chat_rtt: Latency::default(),
            fanout: Latency::default(),
            order: 0,
        },
        expect: room.names.iter().map(|_| Expect::default()).collect(),
        order: DefaultHasher::new(),
        pending: VecDeque::new(),
        users: listed
            .into_iter()
            .map(|u| (u.unique_id, u.user_id))
            .collect(),
        flooder_left: false,
        rtt: histogram(),
        fanout: histogram(),
    };
    if let Err(error) = state.chat(me, &mut connection) {
        state.report.closed = Some(state.closure(&error));
    } else {
        state.drain(&mut connection);
    }
    state.finish()
}

impl State<'_> {
    /// Chat at the room's rate until its stop, reading everything, then send the count.
    fn chat(&mut self, me: usize, connection: &mut Connection) -> Result<(), ClientError> {
        let room = self.room;
        let period = Duration::from_secs_f64(1.0 / room.rate);
        // Spread the members' chats over one period.
        let mut next = room.start + period.mul_f64(me as f64 / room.names.len() as f64);
        let mut seq = 0u64;
        loop {
            let now = Instant::now();
            if now >= room.stop {
                break;
            }
            if now >= next {
                let nanos = room.epoch.elapsed().as_nanos();
                let message = format!("m {seq} {nanos}").into_bytes();
                connection.send(&Request::RoomChat { message })?;
                self.pending.push_back(now);
                seq += 1;
                room.sent[me].store(seq, Relaxed);
                next += period;
                continue;
            }
            if let Some(response) = connection.poll(Some(next.min(room.stop) - now))? {
                self.handle(response);
            }
        }
        self.report.chats_sent = seq;
        let message = format!("f {seq}").into_bytes();
        connection.send(&Request::RoomChat { message })?;
        self.pending.push_back(Instant::now());
        Ok(())
    }

    /// Read until everything due has come, or the drain timeout passed.
    fn drain(&mut self, connection: &mut Connection) {
        let deadline = Instant::now() + self.room.drain_timeout;
        while !self.done() {
            let left = deadline.saturating_duration_since(Instant::now());
            match connection.poll(Some(left)) {
                Ok(Some(response)) => self.handle(response),
                Ok(None) => return,
                Err(error) => {
                    self.report.closed = Some(self.closure(&error));
                    return;
                }
            }
        }
        self.report.drained = true;
    }

    fn done(&self) -> bool {
        self.expect.iter().all(|e| e.done)
            && self.pending.is_empty()
            && (self.room.flooder.is_none() || self.flooder_left)
    }

    fn closure(&self, error: &ClientError) -> Closure {
        Closure {
            after_secs: Instant::now()
                .saturating_duration_since(self.room.start)
                .as_secs_f64(),
            how: describe(error),
        }
    }

    fn handle(&mut self, response: Response) {
        match response {
            Response::RoomChat { result } => match self.pending.pop_front() {
                Some(sent) => {
                    self.rtt.saturating_record(micros(sent.elapsed()));
                    if result != 0 {
                        self.report.chats_refused += 1;
                    }
                }
                None => self.report.unexpected += 1,
            },
            Response::RoomChatNotify { user_id, message } => {
                self.report.notifies += 1;
                (&user_id, &message).hash(&mut self.order);
                self.notify(&user_id, &message);
            }
            Response::RoomNewUser(user) => {
                self.users.insert(user.unique_id, user.user_id);
            }
            Response::RoomLeaveUser { unique_id } => {
                let Some(user) = self.users.get(&unique_id) else {
                    return;
                };
                if self.room.flooder.as_ref() == Some(user) {
                    self.flooder_left = true;
                    self.report.flooder_left_secs.get_or_insert(
                        Instant::now()
                            .saturating_duration_since(self.room.start)
                            .as_secs_f64(),
                    );
                } else if let Some(member) = self.room.names.iter().position(|n| n == user) {
                    // A member that left (its own report says why) owes nothing more.
                    self.expect[member].done = true;
                }
            }
            _ => self.report.unexpected += 1,
        }
    }

    fn notify(&mut self, user_id: &[u8], message: &[u8]) {
        let text = String::from_utf8_lossy(message);
        let words: Vec<&str> = text.split(' ').collect();
        let numbers: Vec<u64> = words
            .iter()
            .skip(1)
            .filter_map(|w| w.parse().ok())
            .collect();
        if let Some(member) = self.room.names.iter().position(|n| n == user_id) {
            let expect = &mut self.expect[member];
            match (words[0], numbers.as_slice()) {
                ("m", &[seq, sent_at]) if words.len() == 3 => {
                    self.report.member_chats += 1;
                    let now = self.room.epoch.elapsed().as_nanos() as u64;
                    self.fanout
                        .saturating_record((now.saturating_sub(sent_at) / 1000).max(1));
                    if expect.done || seq < expect.next {
                        self.report.duplicated += 1;
                    } else {
                        self.report.lost += seq - expect.next;
                        expect.next = seq + 1;
                    }
                }
                ("f", &[count]) if words.len() == 2 => {
                    if expect.done {
                        self.report.duplicated += 1;
                    } else {
                        self.report.lost += count.saturating_sub(expect.next);
                        expect.next = count;
                        expect.done = true;
                    }
                }
                _ => self.report.unexpected += 1,
            }
        } else if self.room.flooder.as_deref() == Some(user_id) {
            match (words[0], numbers.as_slice()) {
                ("x", &[seq]) if words.len() == 2 => {
                    if self.report.flooder_break.is_some() {
                        return;
                    }
                    if seq == self.report.flooder_chats {
                        self.report.flooder_chats += 1;
                    } else {
                        self.report.flooder_break = Some((self.report.flooder_chats, seq));
                    }
                }
                _ => self.report.unexpected += 1,
            }
        } else {
            self.report.foreign += 1;
        }
    }

    fn finish(mut self) -> MemberReport {
        if !self.report.drained && self.report.closed.is_none() {
            // Whatever did not come in time is lost.
            for (member, expect) in self.expect.iter().enumerate() {
                if !expect.done {
                    let sent = self.room.sent[member].load(Relaxed);
                    self.report.lost += sent.saturating_sub(expect.next);
                }
            }
        }
        self.report.chats_unanswered = self.pending.len() as u64;
        if self.report.closed.is_some() {
            // Its own chats after the cut were never going to be answered.
            self.report.chats_unanswered = 0;
        }
        self.report.chat_rtt = Latency::of(&self.rtt);
        self.report.fanout = Latency::of(&self.fanout);
        self.report.order = self.order.finish();
        self.report
    }
}

/// Whether the members that stayed connected agree on the order of their room's chats.
pub(super) fn orders_agree(members: &[MemberReport]) -> bool {
    let mut orders = members
        .iter()
        .filter(|m| m.closed.is_none() && m.drained)
        .map(|m| m.order);
    match orders.next() {
        Some(first) => orders.all(|o| o == first),
        None => true,
    }
}
