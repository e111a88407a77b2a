//! What a `room-chat` bot checks of what it receives, for both ways of running the bots
//! (a thread per bot, or many bots per thread over epoll): one [`ChatCheck`] per bot.
//!
//! A chat's message is `c BOT SEQ SENT_NANOS`, a bot's last one `f BOT COUNT`. A notify is
//! checked without allocating: the message is parsed in place ([`ChatMessage::parse`]), the
//! sender's user id compared with the prefix and the number written on the stack
//! ([`is_user_id`]), and the sender found by arithmetic (bot `b` is in room `b mod R`, so
//! the members of a room are `k, k + R, k + 2R, ...`), not in a map.

use super::{Outcome, Swarm};
use iomodels_proto::Response;
use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::time::Instant;

/// What a room-chat receiver tracks per member of its room.
#[derive(Clone, Copy, Default)]
struct Expect {
    /// The next sequence number due.
    next: u64,
    /// The member's fin arrived (or it left): nothing more is due from it.
    done: bool,
}

/// A chat message of the swarm, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChatMessage {
    /// `c BOT SEQ SENT_NANOS`: bot `sender`'s chat number `seq`, sent at `sent_at`
    /// nanoseconds after the swarm's epoch.
    Chat {
        /// The bot that sent it.
        sender: usize,
        /// Its sequence number: 0, 1, 2, ...
        seq: u64,
        /// When it was sent.
        sent_at: u64,
    },
    /// `f BOT COUNT`: bot `sender` sent `count` chats, and no more come.
    Fin {
        /// The bot that sent it.
        sender: usize,
        /// How many chats it sent.
        count: u64,
    },
}

impl ChatMessage {
    /// The text of a chat.
    pub(super) fn chat(bot: usize, seq: u64, sent_at: u64) -> Vec<u8> {
        format!("c {bot} {seq} {sent_at}").into_bytes()
    }

    /// The text of a fin.
    pub(super) fn fin(bot: usize, count: u64) -> Vec<u8> {
        format!("f {bot} {count}").into_bytes()
    }

    /// Parse a message in place; `None` if it is not one of the swarm's.
    pub(super) fn parse(message: &[u8]) -> Option<ChatMessage> {
        let mut words = message.split(|&b| b == b' ');
        let kind = words.next()?;
        let mut number = || words.next().and_then(decimal);
        let parsed = match kind {
            b"c" => ChatMessage::Chat {
                sender: usize::try_from(number()?).ok()?,
                seq: number()?,
                sent_at: number()?,
            },
            b"f" => ChatMessage::Fin {
                sender: usize::try_from(number()?).ok()?,
                count: number()?,
            },
            _ => return None,
        };
        // Nothing may follow.
        match words.next() {
            None => Some(parsed),
            Some(_) => None,
        }
    }

    fn sender(self) -> usize {
        match self {
            ChatMessage::Chat { sender, .. } | ChatMessage::Fin { sender, .. } => sender,
        }
    }
}

/// A non-empty run of ASCII digits as a number, if it fits a `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Whether `user_id` is `prefix` followed by `bot` in decimal (what
/// `format!("{prefix}{bot}")` gives), compared without allocating.
pub(super) fn is_user_id(user_id: &[u8], prefix: &[u8], bot: usize) -> bool {
    let Some(digits) = user_id.strip_prefix(prefix) else {
        return false;
    };
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = bot as u64;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits == &buf[at..]
}

/// What one `room-chat` bot expects to receive, and what it saw: the sequence numbers due
/// from each member of its room, the hash of the order its room's chats came in, and the
/// send times of its own requests not answered yet.
pub(super) struct ChatCheck {
    /// The bot's room number.
    room: usize,
    /// The bot's place among the rooms (`bot mod R`): its room's members are the bots
    /// with the same.
    slot: usize,
    /// Per member of the room, by `member / R`.
    expect: Vec<Expect>,
    /// The order the room's chats came in.
    order: DefaultHasher,
    /// Send times of chats not answered yet.
    pending: VecDeque<Instant>,
}

impl ChatCheck {
    /// The check of bot `bot`: every member of its room (itself included) owes it chats.
    pub(super) fn new(swarm: &Swarm, bot: usize) -> ChatCheck {
        let rooms = swarm.config.rooms;
        let slot = bot % rooms;
        let members = (swarm.config.bots - slot).div_ceil(rooms);
        ChatCheck {
            room: swarm.room_of(bot),
            slot,
            expect: vec![Expect::default(); members],
            order: DefaultHasher::new(),
            pending: VecDeque::new(),
        }
    }

    /// A chat (or the fin) went out at `at`: its answer is due.
    pub(super) fn sent(&mut self, at: Instant) {
        self.pending.push_back(at);
    }

    /// Handle a packet that arrived at `now` (decoded: the thread-per-bot path, and the
    /// rare packets of the event-driven one).
    pub(super) fn response(
        &mut self,
        swarm: &Swarm,
        outcome: &mut Outcome,
        response: Response,
        now: Instant,
    ) {
        match response {
            Response::RoomChat { result } => self.answered(swarm, outcome, result, now),
            Response::RoomChatNotify { user_id, message } => {
                self.notify(swarm, outcome, &user_id, &message, swarm.nanos_at(now))
            }
            // Late arrivals of the joining phase.
            Response::RoomNewUser(_) => {}
            // A member left (its connection failed): nothing more is due from it.
            Response::RoomLeaveUser { .. } => {}
            _ => outcome.protocol_errors += 1,
        }
    }

    /// The server answered a chat with `result` at `now`.
    pub(super) fn answered(
        &mut self,
        swarm: &Swarm,
        outcome: &mut Outcome,
        result: i16,
        now: Instant,
    ) {
        match self.pending.pop_front() {
            Some(sent) => {
                outcome.request_done(swarm, sent, now);
                if result != 0 {
                    outcome.failed += 1;
                }
            }
            None => outcome.protocol_errors += 1,
        }
    }

    /// A chat notify from `user_id` saying `message` arrived at `now_nanos` (nanoseconds
    /// since the swarm's epoch; taken right after the read that returned it).
    pub(super) fn notify(
        &mut self,
        swarm: &Swarm,
        outcome: &mut Outcome,
        user_id: &[u8],
        message: &[u8],
        now_nanos: u64,
    ) {
        outcome.notifies += 1;
        let Some(parsed) = ChatMessage::parse(message) else {
            outcome.protocol_errors += 1;
            return;
        };
        let sender = parsed.sender();
        if !is_user_id(user_id, swarm.config.user_prefix.as_bytes(), sender) {
            outcome.protocol_errors += 1;
            return;
        }
        let rooms = swarm.config.rooms;
        let expect = match sender % rooms == self.slot {
            true => self.expect.get_mut(sender / rooms),
            false => None,
        };
        let Some(expect) = expect else {
            // A chat from another room, or from no bot of the swarm.
            outcome.protocol_errors += 1;
            return;
        };
        parsed.hash(&mut self.order);
        match parsed {
            ChatMessage::Chat { seq, sent_at, .. } => {
                outcome
                    .fanout
                    .saturating_record((now_nanos.saturating_sub(sent_at) / 1000).max(1));
                if expect.done || seq < expect.next {
                    outcome.duplicated += 1;
                } else {
                    outcome.lost += seq - expect.next;
                    expect.next = seq + 1;
                }
            }
            ChatMessage::Fin { count, .. } => {
                if expect.done {
                    outcome.duplicated += 1;
                } else {
                    outcome.lost += count.saturating_sub(expect.next);
                    expect.next = count;
                    expect.done = true;
                }
            }
        }
    }

    /// Nothing more is due: every member's fin came, every chat was answered.
    pub(super) fn is_done(&self) -> bool {
        self.pending.is_empty() && self.expect.iter().all(|e| e.done)
    }

    /// The drain ran out of time: whatever did not come is lost, every chat not answered
    /// failed.
    pub(super) fn give_up(&mut self, swarm: &Swarm, outcome: &mut Outcome) {
        let rooms = swarm.config.rooms;
        for (i, e) in self.expect.iter_mut().enumerate().filter(|(_, e)| !e.done) {
            let member = self.slot + i * rooms;
            let sent = swarm.sent[member].load(std::sync::atomic::Ordering::Relaxed);
            outcome.lost += sent.saturating_sub(e.next) + 1;
            e.done = true;
        }
        outcome.failed += self.pending.len() as u64;
        self.pending.clear();
    }

    /// The bot ran to its end: its room's order joins the comparison.
    pub(super) fn finish(&self, outcome: &mut Outcome) {
        outcome.orders.push((self.room, self.order.finish()));
    }
}

impl Hash for ChatMessage {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match *self {
            ChatMessage::Chat {
                sender,
                seq,
                sent_at,
            } => (b'c', sender as u64, seq, sent_at).hash(state),
            ChatMessage::Fin { sender, count } => (b'f', sender as u64, count).hash(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_in_place() {
        let chat = ChatMessage::chat(12, 3, 4_000_000_123);
        assert_eq!(
            ChatMessage::parse(&chat),
            Some(ChatMessage::Chat {
                sender: 12,
                seq: 3,
                sent_at: 4_000_000_123
            })
        );
        assert_eq!(
            ChatMessage::parse(&ChatMessage::fin(0, 77)),
            Some(ChatMessage::Fin {
                sender: 0,
                count: 77
            })
        );
        for bad in [
            &b""[..],
            b"c",
            b"c 1 2",
            b"c 1 2 3 4",
            b"c 1  2 3",
            b"c 1 2 x",
            b"c -1 2 3",
            b"f 1",
            b"f 1 2 3",
            b"x 1 2",
            b"c 1 2 99999999999999999999",
            b"hello there",
        ] {
            assert_eq!(
                ChatMessage::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn user_ids_compare_without_allocating() {
        for bot in [0, 1, 9, 10, 99, 100, 12345, usize::MAX] {
            let id = format!("bot{bot}");
            assert!(is_user_id(id.as_bytes(), b"bot", bot), "{id}");
            assert!(!is_user_id(id.as_bytes(), b"bot", bot.wrapping_add(1)));
            assert!(!is_user_id(id.as_bytes(), b"bat", bot));
        }
        assert!(!is_user_id(b"bot01", b"bot", 1));
        assert!(!is_user_id(b"bot", b"bot", 0));
        assert!(!is_user_id(b"bo", b"bot", 0));
        assert!(is_user_id(b"7", b"", 7));
    }
}
