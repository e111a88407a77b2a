//! Decoding a stream that arrives in chunks, as a server's handler sees it.

use crate::packet::{decode_requests, decode_responses, Direction, Request, Response};
use crate::ProtocolError;

/// A decoded packet of either direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Packet {
    /// From a client.
    Request(Request),
    /// From the server.
    Response(Response),
}

/// Everything decoded from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOutcome {
    /// The packets, in order.
    pub packets: Vec<Packet>,
    /// The error that ended decoding, if any (nothing after it is looked at).
    pub error: Option<ProtocolError>,
    /// Bytes of an incomplete last packet (0 after an error).
    pub pending: usize,
}

/// Decode the concatenation of `chunks` as a receiver gets it: each chunk is appended to
/// what is left unconsumed, every complete packet is decoded, the rest waits for the next
/// chunk. Stops at the first protocol error.
///
/// The framing layer guarantees the outcome depends only on the bytes, not on where the
/// chunks were cut; the property tests and the fuzz target check exactly that.
pub fn decode_stream(direction: Direction, chunks: &[&[u8]]) -> StreamOutcome {
    let mut buffer: Vec<u8> = Vec::new();
    let mut packets = Vec::new();
    for chunk in chunks {
        buffer.extend_from_slice(chunk);
        let decoded = match direction {
            Direction::ToServer => decode_requests(&buffer, |r| packets.push(Packet::Request(r))),
            Direction::ToClient => decode_responses(&buffer, |r| packets.push(Packet::Response(r))),
        };
        if let Some(error) = decoded.error {
            return StreamOutcome {
                packets,
                error: Some(error),
                pending: 0,
            };
        }
        buffer.drain(..decoded.consumed);
    }
    StreamOutcome {
        packets,
        error: None,
        pending: buffer.len(),
    }
}
