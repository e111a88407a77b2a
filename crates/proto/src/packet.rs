//! The chat packets: ids, sizes, layouts, and the codec.
//!
//! | id | packet | body | total size |
//! |---|---|---|---|
//! | 201 | LOGIN_REQUEST | user_id \[33\], password \[33\] | 71 |
//! | 202 | LOGIN_RESPONSE | result u16 | 7 |
//! | 206 | ROOM_ENTER_REQUEST | room_number i32 | 9 |
//! | 207 | ROOM_ENTER_RESPONSE | result i16 | 7 |
//! | 208 | ROOM_NEW_USER_NOTIFY | user_unique_id i64, id_len i8, user_id \[id_len\] | 14 + id_len |
//! | 209 | ROOM_USER_LIST_NOTIFY | count i8, then per user: i64, i8 id_len, user_id \[id_len\] | 6 + Σ(9 + id_len) |
//! | 215 | ROOM_LEAVE_REQUEST | (empty) | 5 |
//! | 216 | ROOM_LEAVE_RESPONSE | result i16 | 7 |
//! | 217 | ROOM_LEAVE_USER_NOTIFY | user_unique_id i64 | 13 |
//! | 221 | ROOM_CHAT_REQUEST | message \[257\] | 262 |
//! | 222 | ROOM_CHAT_RESPONSE | result i16 | 7 |
//! | 223 | ROOM_CHAT_NOTIFY | user_id \[33\], message \[257\] | 295 |
//!
//! Everything is little-endian without padding. Fixed-size text fields are NUL-padded: the
//! text is the bytes before the first NUL (all of the field if it has none). The codec
//! keeps text as bytes; the server decides what it accepts (see [`crate::ResultCode`]).

use crate::frame::{split_frame, Frame, Header, Judge, HEADER_SIZE, MAX_PACKET_SIZE};
use crate::ProtocolError;
use std::fmt;
use std::ops::ControlFlow;

/// Packet ids.
pub mod id {
    /// LOGIN_REQUEST.
    pub const LOGIN_REQUEST: u16 = 201;
    /// LOGIN_RESPONSE.
    pub const LOGIN_RESPONSE: u16 = 202;
    /// ROOM_ENTER_REQUEST.
    pub const ROOM_ENTER_REQUEST: u16 = 206;
    /// ROOM_ENTER_RESPONSE.
    pub const ROOM_ENTER_RESPONSE: u16 = 207;
    /// ROOM_NEW_USER_NOTIFY.
    pub const ROOM_NEW_USER_NOTIFY: u16 = 208;
    /// ROOM_USER_LIST_NOTIFY.
    pub const ROOM_USER_LIST_NOTIFY: u16 = 209;
    /// ROOM_LEAVE_REQUEST.
    pub const ROOM_LEAVE_REQUEST: u16 = 215;
    /// ROOM_LEAVE_RESPONSE.
    pub const ROOM_LEAVE_RESPONSE: u16 = 216;
    /// ROOM_LEAVE_USER_NOTIFY.
    pub const ROOM_LEAVE_USER_NOTIFY: u16 = 217;
    /// ROOM_CHAT_REQUEST.
    pub const ROOM_CHAT_REQUEST: u16 = 221;
    /// ROOM_CHAT_RESPONSE.
    pub const ROOM_CHAT_RESPONSE: u16 = 222;
    /// ROOM_CHAT_NOTIFY.
    pub const ROOM_CHAT_NOTIFY: u16 = 223;
    /// The tutorial's internal "a client connected" packet (SYS_USER_CONNECT): the server
    /// makes it up itself; a client sending it is a protocol error.
    pub const SYS_USER_CONNECT: u16 = 11;
    /// The tutorial's internal "a client disconnected" packet (SYS_USER_DISCONNECT).
    pub const SYS_USER_DISCONNECT: u16 = 12;
    /// The tutorial's internal end marker (SYS_END).
    pub const SYS_END: u16 = 30;
}

/// Size of a user id field (32 bytes of text and a NUL).
const USER_ID_FIELD: usize = 33;
/// Size of a password field.
const PASSWORD_FIELD: usize = 33;
/// Size of a chat message field (256 bytes of text and a NUL).
const MESSAGE_FIELD: usize = 257;

/// The longest user id, in bytes.
pub const MAX_USER_ID_LEN: usize = USER_ID_FIELD - 1;
/// The longest password, in bytes.
pub const MAX_PASSWORD_LEN: usize = PASSWORD_FIELD - 1;
/// The longest chat message, in bytes.
pub const MAX_MESSAGE_LEN: usize = MESSAGE_FIELD - 1;

/// The lengths an id allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Exactly this many bytes.
    Exactly(u16),
    /// At least this many.
    AtLeast(u16),
    /// Within this inclusive range.
    Between(u16, u16),
}

impl Expected {
    fn allows(self, length: u16) -> bool {
        match self {
            Expected::Exactly(n) => length == n,
            Expected::AtLeast(n) => length >= n,
            Expected::Between(lo, hi) => (lo..=hi).contains(&length),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Exactly(n) => write!(f, "{n} bytes"),
            Expected::AtLeast(n) => write!(f, "at least {n} bytes"),
            Expected::Between(lo, hi) => write!(f, "{lo} to {hi} bytes"),
        }
    }
}

/// Which side sends a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server: requests.
    ToServer,
    /// Server to client: responses and notifies.
    ToClient,
}

/// What the protocol knows about an id: its name, who sends it, what lengths it may have.
fn spec(id: u16) -> Option<(&'static str, Option<Direction>, Expected)> {
    use Direction::{ToClient, ToServer};
    use Expected::{AtLeast, Between, Exactly};
    let h = HEADER_SIZE as u16;
    Some(match id {
        id::LOGIN_REQUEST => ("LOGIN_REQUEST", Some(ToServer), Exactly(h + 66)),
        id::LOGIN_RESPONSE => ("LOGIN_RESPONSE", Some(ToClient), Exactly(h + 2)),
        id::ROOM_ENTER_REQUEST => ("ROOM_ENTER_REQUEST", Some(ToServer), Exactly(h + 4)),
        id::ROOM_ENTER_RESPONSE => ("ROOM_ENTER_RESPONSE", Some(ToClient), Exactly(h + 2)),
        id::ROOM_NEW_USER_NOTIFY => (
            "ROOM_NEW_USER_NOTIFY",
            Some(ToClient),
            Between(h + 9, h + 9 + 127),
        ),
        id::ROOM_USER_LIST_NOTIFY => ("ROOM_USER_LIST_NOTIFY", Some(ToClient), AtLeast(h + 1)),
        id::ROOM_LEAVE_REQUEST => ("ROOM_LEAVE_REQUEST", Some(ToServer), Exactly(h)),
        id::ROOM_LEAVE_RESPONSE => ("ROOM_LEAVE_RESPONSE", Some(ToClient), Exactly(h + 2)),
        id::ROOM_LEAVE_USER_NOTIFY => ("ROOM_LEAVE_USER_NOTIFY", Some(ToClient), Exactly(h + 8)),
        id::ROOM_CHAT_REQUEST => ("ROOM_CHAT_REQUEST", Some(ToServer), Exactly(h + 257)),
        id::ROOM_CHAT_RESPONSE => ("ROOM_CHAT_RESPONSE", Some(ToClient), Exactly(h + 2)),
        id::ROOM_CHAT_NOTIFY => ("ROOM_CHAT_NOTIFY", Some(ToClient), Exactly(h + 33 + 257)),
        id::SYS_USER_CONNECT => ("SYS_USER_CONNECT", None, Exactly(h)),
        id::SYS_USER_DISCONNECT => ("SYS_USER_DISCONNECT", None, Exactly(h)),
        id::SYS_END => ("SYS_END", None, Exactly(h)),
        _ => return None,
    })
}

/// The name of packet `id`, if it is one.
pub fn name(id: u16) -> Option<&'static str> {
    spec(id).map(|(name, _, _)| name)
}

impl Judge for Direction {
    fn judge(&self, header: Header) -> Result<(), ProtocolError> {
        let Some((name, sender, expected)) = spec(header.id) else {
            return Err(ProtocolError::UnknownId { id: header.id });
        };
        if sender != Some(*self) {
            return Err(ProtocolError::WrongDirection {
                id: header.id,
                name,
            });
        }
        if !expected.allows(header.length) {
            return Err(ProtocolError::BadLength {
                id: header.id,
                name,
                length: header.length,
                expected,
            });
        }
        Ok(())
    }
}

/// A packet from a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// 201: log in as `user_id`.
    Login {
        /// The user id's bytes (at most 33; the server wants 1 to 32 of UTF-8).
        user_id: Vec<u8>,
        /// The password's bytes.
        password: Vec<u8>,
    },
    /// 206: enter room `room`.
    RoomEnter {
        /// The room number.
        room: i32,
    },
    /// 215: leave the current room.
    RoomLeave,
    /// 221: say `message` to the current room.
    RoomChat {
        /// The message's bytes (at most 257; the server wants at most 256).
        message: Vec<u8>,
    },
}

/// One user of a room, as the user list carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomUser {
    /// The id the server gave this login.
    pub unique_id: i64,
    /// The user id.
    pub user_id: Vec<u8>,
}

/// A packet from the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Response {
    /// 202: the login's result.
    Login {
        /// A [`crate::ResultCode`] number.
        result: u16,
    },
    /// 207: the room enter's result.
    RoomEnter {
        /// A [`crate::ResultCode`] number.
        result: i16,
    },
    /// 208: someone entered your room.
    RoomNewUser(RoomUser),
    /// 209: who was in the room you entered (you are not in the list).
    RoomUserList(Vec<RoomUser>),
    /// 216: the leave's result.
    RoomLeave {
        /// A [`crate::ResultCode`] number.
        result: i16,
    },
    /// 217: someone left your room.
    RoomLeaveUser {
        /// Their unique id.
        unique_id: i64,
    },
    /// 222: the chat's result.
    RoomChat {
        /// A [`crate::ResultCode`] number.
        result: i16,
    },
    /// 223: someone (maybe you) said something in your room.
    RoomChatNotify {
        /// Who.
        user_id: Vec<u8>,
        /// What.
        message: Vec<u8>,
    },
}

/// Append `text` to `out` as a NUL-padded field of `size` bytes. Text that does not fit
/// before the terminating NUL is cut, as the tutorial's `strncpy` does.
fn put_field(out: &mut Vec<u8>, text: &[u8], size: usize) {
    let n = text.len().min(size - 1);
    out.extend_from_slice(&text[..n]);
    out.resize(out.len() + size - n, 0);
}

/// The text of a NUL-padded field: its bytes before the first NUL.
fn field_text(field: &[u8]) -> Vec<u8> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[..end].to_vec()
}

/// Append a short string (i8 length, then the bytes). Longer than 127 bytes is cut.
fn put_short(out: &mut Vec<u8>, text: &[u8]) {
    let n = text.len().min(127);
    out.push(n as u8);
    out.extend_from_slice(&text[..n]);
}

/// Write a packet: reserve the header, let `body` write the body, then fill the header in.
fn encode_with(out: &mut Vec<u8>, id: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_SIZE]);
    body(out);
    let header = Header::for_body(id, out.len() - start - HEADER_SIZE);
    out[start..start + HEADER_SIZE].copy_from_slice(&header.encode());
}

impl Request {
    /// The packet id.
    pub fn id(&self) -> u16 {
        match self {
            Request::Login { .. } => id::LOGIN_REQUEST,
            Request::RoomEnter { .. } => id::ROOM_ENTER_REQUEST,
            Request::RoomLeave => id::ROOM_LEAVE_REQUEST,
            Request::RoomChat { .. } => id::ROOM_CHAT_REQUEST,
        }
    }

    /// Append the whole packet, header first, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_with(out, self.id(), |out| match self {
            Request::Login { user_id, password } => {
                put_field(out, user_id, USER_ID_FIELD);
                put_field(out, password, PASSWORD_FIELD);
            }
            Request::RoomEnter { room } => out.extend_from_slice(&room.to_le_bytes()),
            Request::RoomLeave => {}
            Request::RoomChat { message } => put_field(out, message, MESSAGE_FIELD),
        });
    }

    /// The whole packet as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decode a frame that [`Direction::ToServer`] accepted.
    pub fn decode(frame: Frame<'_>) -> Result<Request, ProtocolError> {
        Direction::ToServer.judge(frame.header)?;
        let body = frame.body;
        Ok(match frame.header.id {
            id::LOGIN_REQUEST => Request::Login {
                user_id: field_text(&body[..USER_ID_FIELD]),
                password: field_text(&body[USER_ID_FIELD..]),
            },
            id::ROOM_ENTER_REQUEST => Request::RoomEnter {
                room: i32::from_le_bytes([body[0], body[1], body[2], body[3]]),
            },
            id::ROOM_LEAVE_REQUEST => Request::RoomLeave,
            id::ROOM_CHAT_REQUEST => Request::RoomChat {
                message: field_text(body),
            },
            other => unreachable!("the judge accepted request id {other}"),
        })
    }
}

impl Response {
    /// The packet id.
    pub fn id(&self) -> u16 {
        match self {
            Response::Login { .. } => id::LOGIN_RESPONSE,
            Response::RoomEnter { .. } => id::ROOM_ENTER_RESPONSE,
            Response::RoomNewUser(_) => id::ROOM_NEW_USER_NOTIFY,
            Response::RoomUserList(_) => id::ROOM_USER_LIST_NOTIFY,
            Response::RoomLeave { .. } => id::ROOM_LEAVE_RESPONSE,
            Response::RoomLeaveUser { .. } => id::ROOM_LEAVE_USER_NOTIFY,
            Response::RoomChat { .. } => id::ROOM_CHAT_RESPONSE,
            Response::RoomChatNotify { .. } => id::ROOM_CHAT_NOTIFY,
        }
    }

    /// Append the body (no header) to `out` and return the header that goes with it, for
    /// a vectored send of header and body.
    ///
    /// # Panics
    /// If a user list has more than 127 users: the `i8` count cannot say more.
    pub fn encode_body(&self, out: &mut Vec<u8>) -> Header {
        let start = out.len();
        match self {
            Response::Login { result } => out.extend_from_slice(&result.to_le_bytes()),
            Response::RoomEnter { result }
            | Response::RoomLeave { result }
            | Response::RoomChat { result } => out.extend_from_slice(&result.to_le_bytes()),
            Response::RoomNewUser(user) => {
                out.extend_from_slice(&user.unique_id.to_le_bytes());
                put_short(out, &user.user_id);
            }
            Response::RoomUserList(users) => {
                let count = i8::try_from(users.len()).expect("a user list holds at most 127 users");
                out.push(count as u8);
                for user in users {
                    out.extend_from_slice(&user.unique_id.to_le_bytes());
                    put_short(out, &user.user_id);
                }
            }
            Response::RoomLeaveUser { unique_id } => {
                out.extend_from_slice(&unique_id.to_le_bytes())
            }
            Response::RoomChatNotify { user_id, message } => {
                put_field(out, user_id, USER_ID_FIELD);
                put_field(out, message, MESSAGE_FIELD);
            }
        }
        Header::for_body(self.id(), out.len() - start)
    }

    /// Append the whole packet, header first, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_SIZE]);
        let header = self.encode_body(out);
        out[start..start + HEADER_SIZE].copy_from_slice(&header.encode());
    }

    /// The whole packet as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decode a frame that [`Direction::ToClient`] accepted.
    pub fn decode(frame: Frame<'_>) -> Result<Response, ProtocolError> {
        Direction::ToClient.judge(frame.header)?;
        let body = frame.body;
        let i16_at = |b: &[u8]| i16::from_le_bytes([b[0], b[1]]);
        let i64_at = |b: &[u8]| {
            let mut a = [0; 8];
            a.copy_from_slice(&b[..8]);
            i64::from_le_bytes(a)
        };
        Ok(match frame.header.id {
            id::LOGIN_RESPONSE => Response::Login {
                result: u16::from_le_bytes([body[0], body[1]]),
            },
            id::ROOM_ENTER_RESPONSE => Response::RoomEnter {
                result: i16_at(body),
            },
            id::ROOM_LEAVE_RESPONSE => Response::RoomLeave {
                result: i16_at(body),
            },
            id::ROOM_CHAT_RESPONSE => Response::RoomChat {
                result: i16_at(body),
            },
            id::ROOM_LEAVE_USER_NOTIFY => Response::RoomLeaveUser {
                unique_id: i64_at(body),
            },
            id::ROOM_NEW_USER_NOTIFY => {
                let bad = |what| ProtocolError::BadBody {
                    name: "ROOM_NEW_USER_NOTIFY",
                    what,
                };
                let len = body[8] as i8;
                if len < 0 || len as usize != body.len() - 9 {
                    return Err(bad("the id length does not match the packet length"));
                }
                Response::RoomNewUser(RoomUser {
                    unique_id: i64_at(body),
                    user_id: body[9..].to_vec(),
                })
            }
            id::ROOM_USER_LIST_NOTIFY => {
                let bad = |what| ProtocolError::BadBody {
                    name: "ROOM_USER_LIST_NOTIFY",
                    what,
                };
                let count = body[0] as i8;
                if count < 0 {
                    return Err(bad("negative user count"));
                }
                let mut users = Vec::with_capacity(count as usize);
                let mut rest = &body[1..];
                for _ in 0..count {
                    if rest.len() < 9 {
                        return Err(bad("the list ends inside an entry"));
                    }
                    let len = rest[8] as i8;
                    if len < 0 || rest.len() < 9 + len as usize {
                        return Err(bad("an id length runs past the packet"));
                    }
                    users.push(RoomUser {
                        unique_id: i64_at(rest),
                        user_id: rest[9..9 + len as usize].to_vec(),
                    });
                    rest = &rest[9 + len as usize..];
                }
                if !rest.is_empty() {
                    return Err(bad("bytes left after the last entry"));
                }
                Response::RoomUserList(users)
            }
            id::ROOM_CHAT_NOTIFY => Response::RoomChatNotify {
                user_id: field_text(&body[..USER_ID_FIELD]),
                message: field_text(&body[USER_ID_FIELD..]),
            },
            other => unreachable!("the judge accepted response id {other}"),
        })
    }
}

/// What decoding the front of a buffer gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes taken by the complete packets handed out. The rest (a partial packet, or the
    /// bad packet and whatever follows it) was not consumed.
    pub consumed: usize,
    /// The protocol error that stopped decoding, if any. Packets before it were handed out.
    pub error: Option<ProtocolError>,
}

fn decode_all<T>(
    buf: &[u8],
    direction: Direction,
    decode: fn(Frame<'_>) -> Result<T, ProtocolError>,
    mut dispatch: impl FnMut(T) -> ControlFlow<()>,
) -> Decoded {
    let mut consumed = 0;
    loop {
        match split_frame(&buf[consumed..], &direction) {
            Ok(Some(frame)) => match decode(frame) {
                Ok(packet) => {
                    consumed += frame.len();
                    if dispatch(packet).is_break() {
                        return Decoded {
                            consumed,
                            error: None,
                        };
                    }
                }
                Err(error) => {
                    return Decoded {
                        consumed,
                        error: Some(error),
                    }
                }
            },
            Ok(None) => {
                return Decoded {
                    consumed,
                    error: None,
                }
            }
            Err(error) => {
                return Decoded {
                    consumed,
                    error: Some(error),
                }
            }
        }
    }
}

/// Decode every complete request at the front of `buf`, in order, handing each to
/// `dispatch`; stop at a partial packet or at the first protocol error.
pub fn decode_requests(buf: &[u8], mut dispatch: impl FnMut(Request)) -> Decoded {
    decode_all(buf, Direction::ToServer, Request::decode, |request| {
        dispatch(request);
        ControlFlow::Continue(())
    })
}

/// Decode complete requests at the front of `buf`, in order, handing each to `dispatch`,
/// until `dispatch` says [`ControlFlow::Break`] (that request counts as consumed, the rest
/// is left where it is), a partial packet, or the first protocol error. For a server that
/// takes only as many requests as it is ready for.
pub fn decode_requests_until(
    buf: &[u8],
    dispatch: impl FnMut(Request) -> ControlFlow<()>,
) -> Decoded {
    decode_all(buf, Direction::ToServer, Request::decode, dispatch)
}

/// Decode every complete response or notify at the front of `buf`, like
/// [`decode_requests`].
pub fn decode_responses(buf: &[u8], mut dispatch: impl FnMut(Response)) -> Decoded {
    decode_all(buf, Direction::ToClient, Response::decode, |response| {
        dispatch(response);
        ControlFlow::Continue(())
    })
}

// The largest packet must fit the framing layer's maximum.
const _: () = assert!(HEADER_SIZE + 1 + 127 * (9 + 32) <= MAX_PACKET_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_table() {
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (
                Request::Login {
                    user_id: b"a".to_vec(),
                    password: b"b".to_vec(),
                }
                .to_bytes(),
                71,
            ),
            (Request::RoomEnter { room: 1 }.to_bytes(), 9),
            (Request::RoomLeave.to_bytes(), 5),
            (
                Request::RoomChat {
                    message: b"hi".to_vec(),
                }
                .to_bytes(),
                262,
            ),
            (Response::Login { result: 0 }.to_bytes(), 7),
            (Response::RoomEnter { result: 0 }.to_bytes(), 7),
            (
                Response::RoomNewUser(RoomUser {
                    unique_id: 1,
                    user_id: b"abc".to_vec(),
                })
                .to_bytes(),
                17,
            ),
            (
                Response::RoomUserList(vec![
                    RoomUser {
                        unique_id: 1,
                        user_id: b"ab".to_vec(),
                    },
                    RoomUser {
                        unique_id: 2,
                        user_id: b"c".to_vec(),
                    },
                ])
                .to_bytes(),
                6 + 11 + 10,
            ),
            (Response::RoomLeave { result: 0 }.to_bytes(), 7),
            (Response::RoomLeaveUser { unique_id: 9 }.to_bytes(), 13),
            (Response::RoomChat { result: 0 }.to_bytes(), 7),
            (
                Response::RoomChatNotify {
                    user_id: b"u".to_vec(),
                    message: b"m".to_vec(),
                }
                .to_bytes(),
                295,
            ),
        ];
        for (bytes, size) in cases {
            assert_eq!(bytes.len(), size, "packet {:?}", Header::parse(&bytes));
            assert_eq!(Header::parse(&bytes).unwrap().length as usize, size);
        }
    }

    #[test]
    fn exact_layout_of_a_login() {
        let bytes = Request::Login {
            user_id: b"jacking".to_vec(),
            password: b"pw".to_vec(),
        }
        .to_bytes();
        assert_eq!(&bytes[..5], &[71, 0, 201, 0, 0]);
        assert_eq!(&bytes[5..12], b"jacking");
        assert!(bytes[12..38].iter().all(|&b| b == 0));
        assert_eq!(&bytes[38..40], b"pw");
    }

    #[test]
    fn directions_are_enforced() {
        let response = Response::Login { result: 0 }.to_bytes();
        let got = decode_requests(&response, |_| panic!("a response decoded as a request"));
        assert!(matches!(
            got.error,
            Some(ProtocolError::WrongDirection { id: 202, .. })
        ));
        let system = Header {
            length: 5,
            id: id::SYS_USER_CONNECT,
            flags: 0,
        }
        .encode();
        let got = decode_requests(&system, |_| panic!());
        assert!(matches!(
            got.error,
            Some(ProtocolError::WrongDirection { id: 11, .. })
        ));
        let request = Request::RoomLeave.to_bytes();
        let got = decode_responses(&request, |_| panic!());
        assert!(matches!(
            got.error,
            Some(ProtocolError::WrongDirection { id: 215, .. })
        ));
    }

    #[test]
    fn wrong_size_is_refused_on_the_header_alone() {
        // A chat request announced as 100 bytes: refused with only the header in.
        let header = Header {
            length: 100,
            id: id::ROOM_CHAT_REQUEST,
            flags: 0,
        }
        .encode();
        let got = decode_requests(&header, |_| panic!());
        assert!(matches!(
            got.error,
            Some(ProtocolError::BadLength {
                id: 221,
                length: 100,
                ..
            })
        ));
        assert_eq!(got.consumed, 0);
    }

    #[test]
    fn bad_user_lists_are_refused() {
        let mut list = Response::RoomUserList(vec![RoomUser {
            unique_id: 1,
            user_id: b"ab".to_vec(),
        }])
        .to_bytes();
        list[5] = 2; // count says two users, one follows
        let got = decode_responses(&list, |_| panic!());
        assert!(matches!(got.error, Some(ProtocolError::BadBody { .. })));
    }

    #[test]
    fn decoding_until_stops_after_the_request_that_says_so() {
        let mut wire = Request::RoomLeave.to_bytes();
        wire.extend(Request::RoomEnter { room: 3 }.to_bytes());
        wire.extend(Request::RoomLeave.to_bytes());
        let mut got = Vec::new();
        let decoded = decode_requests_until(&wire, |request| {
            got.push(request);
            if got.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(got, [Request::RoomLeave, Request::RoomEnter { room: 3 }]);
        assert_eq!(decoded.consumed, 5 + 9);
        assert!(decoded.error.is_none());
    }
}
