//! # iomodels-proto
//!
//! The chat protocol of the edu_cpp_IOCP tutorial, byte for byte, as a pure library: no
//! sockets, no threads, no allocation in the framing layer.
//!
//! - [`frame`]: the 5-byte header and the framing layer. A [`Judge`] decides whether a
//!   header is acceptable as soon as its 5 bytes are in, so a body that will be rejected is
//!   never waited for or buffered.
//! - [`packet`]: the packets ([`Request`] from client to server, [`Response`] from server
//!   to client), their ids and sizes, and the [`Direction`] that judges them.
//! - [`ResultCode`]: every result code a response can carry.
//! - [`decode_stream`]: decode a stream given in arbitrary chunks, the way a server sees
//!   it; used by the property tests and the fuzz target.
//!
//! ```
//! use iomodels_proto::{decode_requests, Request};
//!
//! let mut wire = Vec::new();
//! Request::RoomEnter { room: 3 }.encode(&mut wire);
//! Request::RoomLeave.encode(&mut wire);
//! wire.extend_from_slice(&[9, 0]); // the first bytes of the next packet
//!
//! let mut got = Vec::new();
//! let decoded = decode_requests(&wire, |request| got.push(request));
//! assert_eq!(got, [Request::RoomEnter { room: 3 }, Request::RoomLeave]);
//! assert_eq!(decoded.consumed, wire.len() - 2);
//! assert!(decoded.error.is_none());
//! ```
#![forbid(unsafe_code)]

pub mod frame;
pub mod packet;
mod result;
mod stream;

pub use frame::{split_frame, Frame, Header, Judge, HEADER_SIZE, MAX_PACKET_SIZE};
pub use packet::{
    decode_requests, decode_requests_until, decode_responses, id, Decoded, Direction, Request,
    Response, RoomUser, MAX_MESSAGE_LEN, MAX_PASSWORD_LEN, MAX_USER_ID_LEN,
};
pub use result::ResultCode;
pub use stream::{decode_stream, Packet, StreamOutcome};

/// Input that breaks the protocol. The session that sent it is closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The header's length is smaller than the header itself.
    #[error("packet length {length} is shorter than the {HEADER_SIZE}-byte header")]
    LengthTooShort {
        /// The length field.
        length: u16,
    },
    /// The header's length passes the maximum packet size.
    #[error("packet length {length} exceeds the maximum of {max} bytes")]
    LengthTooLong {
        /// The length field.
        length: u16,
        /// The maximum in force.
        max: usize,
    },
    /// No packet has this id.
    #[error("unknown packet id {id}")]
    UnknownId {
        /// The id field.
        id: u16,
    },
    /// The packet exists but is never sent in this direction (a client sending a
    /// response, notify or internal id).
    #[error("packet {id} ({name}) is not accepted in this direction")]
    WrongDirection {
        /// The id field.
        id: u16,
        /// The packet's name.
        name: &'static str,
    },
    /// The length does not fit the packet's id.
    #[error("packet {id} ({name}) cannot be {length} bytes long (expected {expected})")]
    BadLength {
        /// The id field.
        id: u16,
        /// The packet's name.
        name: &'static str,
        /// The length field.
        length: u16,
        /// What the id allows.
        expected: packet::Expected,
    },
    /// A variable-size body does not add up (a user list whose entries do not fill it).
    #[error("malformed {name} body: {what}")]
    BadBody {
        /// The packet's name.
        name: &'static str,
        /// What is wrong.
        what: &'static str,
    },
}
