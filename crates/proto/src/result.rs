//! Result codes carried by the responses (202, 207, 216, 222).

use std::fmt;

/// Why a request succeeded or failed. The numbers are the tutorial's where it has one
/// (0, 31, 32, 33, 54, 61, 81); the others are ours, placed in the same ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ResultCode {
    /// Success.
    None = 0,
    /// LOGIN: this user id is logged in on another session.
    UserAlreadyLoggedIn = 31,
    /// LOGIN: the server holds its maximum number of users.
    ServerFull = 32,
    /// LOGIN: the user store refused the password.
    InvalidPassword = 33,
    /// LOGIN: the user id is empty, longer than 32 bytes or not UTF-8.
    InvalidUserId = 34,
    /// LOGIN: this session is logged in already (as any user).
    SessionAlreadyLoggedIn = 35,
    /// ROOM_ENTER, ROOM_LEAVE, ROOM_CHAT: the session has not logged in.
    NotLoggedIn = 41,
    /// ROOM_ENTER: the room holds its capacity.
    RoomFull = 54,
    /// ROOM_ENTER: the user is in a room already (leave it first).
    AlreadyInRoom = 55,
    /// ROOM_ENTER: no room has this number.
    InvalidRoomNumber = 61,
    /// ROOM_CHAT, ROOM_LEAVE: the user is not in a room.
    NotInRoom = 81,
    /// ROOM_CHAT: the message fills its whole 257-byte field with no terminating NUL.
    InvalidMessage = 82,
}

impl ResultCode {
    /// Every code, in numeric order.
    pub const ALL: [ResultCode; 12] = [
        ResultCode::None,
        ResultCode::UserAlreadyLoggedIn,
        ResultCode::ServerFull,
        ResultCode::InvalidPassword,
        ResultCode::InvalidUserId,
        ResultCode::SessionAlreadyLoggedIn,
        ResultCode::NotLoggedIn,
        ResultCode::RoomFull,
        ResultCode::AlreadyInRoom,
        ResultCode::InvalidRoomNumber,
        ResultCode::NotInRoom,
        ResultCode::InvalidMessage,
    ];

    /// The number on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The number as the `i16` of ROOM_ENTER, ROOM_LEAVE and ROOM_CHAT responses.
    pub fn code_i16(self) -> i16 {
        self as u16 as i16
    }

    /// The code with this number, if any.
    pub fn from_code(code: u16) -> Option<ResultCode> {
        ResultCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The code with this `i16` number, if any.
    pub fn from_code_i16(code: i16) -> Option<ResultCode> {
        u16::try_from(code).ok().and_then(ResultCode::from_code)
    }

    /// One line on what the code means.
    pub fn description(self) -> &'static str {
        match self {
            ResultCode::None => "success",
            ResultCode::UserAlreadyLoggedIn => "user already logged in",
            ResultCode::ServerFull => "server full",
            ResultCode::InvalidPassword => "invalid password",
            ResultCode::InvalidUserId => "invalid user id",
            ResultCode::SessionAlreadyLoggedIn => "this session is already logged in",
            ResultCode::NotLoggedIn => "not logged in",
            ResultCode::RoomFull => "room full",
            ResultCode::AlreadyInRoom => "already in a room",
            ResultCode::InvalidRoomNumber => "invalid room number",
            ResultCode::NotInRoom => "not in a room",
            ResultCode::InvalidMessage => "invalid message",
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in ResultCode::ALL {
            assert_eq!(ResultCode::from_code(code.code()), Some(code));
            assert_eq!(ResultCode::from_code_i16(code.code_i16()), Some(code));
        }
        assert_eq!(ResultCode::from_code(1), None);
        assert_eq!(ResultCode::from_code_i16(-1), None);
    }
}
