//! The header and the framing layer: cut a byte stream into packets.
//!
//! Every packet starts with a 5-byte little-endian header: `length: u16` (the whole packet,
//! header included), `id: u16`, `flags: u8` (reserved; sent as 0). [`split_frame`] looks at
//! the front of a buffer: if fewer than 5 bytes are there it waits; once the header is in,
//! it is judged at once (length bounds, then the [`Judge`]), so a packet that will be
//! rejected is refused before its body arrives; a good header waits for its body, then
//! the whole packet is handed out as a [`Frame`] borrowing the buffer.

use crate::ProtocolError;

/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 5;

/// The largest packet accepted in either direction.
///
/// The largest packet of the chat protocol is a user list of a full room: 6 bytes plus 41
/// per user, at most 127 users (the count is an `i8`), 5213 bytes. Requests are at most
/// 262 bytes and the server's [`Judge`] holds each id to its exact size anyway.
pub const MAX_PACKET_SIZE: usize = 8 * 1024;

/// A packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Total size of the packet, header included.
    pub length: u16,
    /// The packet id.
    pub id: u16,
    /// Reserved for compression or encryption; 0.
    pub flags: u8,
}

impl Header {
    /// A header for a packet `id` with a body of `body_len` bytes.
    ///
    /// # Panics
    /// If the packet would pass [`MAX_PACKET_SIZE`]: the codec never builds one.
    pub fn for_body(id: u16, body_len: usize) -> Header {
        let length = HEADER_SIZE + body_len;
        assert!(
            length <= MAX_PACKET_SIZE,
            "packet {id} of {length} bytes is too large"
        );
        Header {
            length: length as u16,
            id,
            flags: 0,
        }
    }

    /// Read a header from the first 5 bytes of `bytes`, if there are 5.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_SIZE] = bytes.get(..HEADER_SIZE)?.try_into().ok()?;
        Some(Header {
            length: u16::from_le_bytes([b[0], b[1]]),
            id: u16::from_le_bytes([b[2], b[3]]),
            flags: b[4],
        })
    }

    /// The header's wire form.
    pub fn encode(self) -> [u8; HEADER_SIZE] {
        let [l0, l1] = self.length.to_le_bytes();
        let [i0, i1] = self.id.to_le_bytes();
        [l0, l1, i0, i1, self.flags]
    }

    /// Size of the body the header announces (0 if the length is too short to be valid).
    pub fn body_len(self) -> usize {
        usize::from(self.length).saturating_sub(HEADER_SIZE)
    }
}

/// Decides whether a header is acceptable: which ids are served and what length each may
/// have. Called once per packet, as soon as its header is complete.
pub trait Judge {
    /// `Ok` if a packet with this header may follow; the length is already known to be
    /// within `HEADER_SIZE..=MAX_PACKET_SIZE`.
    fn judge(&self, header: Header) -> Result<(), ProtocolError>;
}

/// One complete packet, borrowed from the buffer it was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header.
    pub header: Header,
    /// The body: `header.length - 5` bytes.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Size of the whole packet in bytes.
    pub fn len(&self) -> usize {
        HEADER_SIZE + self.body.len()
    }

    /// Whether the packet has no bytes at all (never: a header is 5 bytes).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Cut the packet at the front of `buf`.
///
/// `Ok(None)` when more bytes are needed (a partial header, or a good header whose body is
/// still arriving); `Ok(Some(frame))` when a whole packet is there (it is `frame.len()`
/// bytes long); `Err` as soon as a complete header is unacceptable, whether or not its body
/// has arrived.
pub fn split_frame<'a, J: Judge + ?Sized>(
    buf: &'a [u8],
    judge: &J,
) -> Result<Option<Frame<'a>>, ProtocolError> {
    let Some(header) = Header::parse(buf) else {
        return Ok(None);
    };
    let length = usize::from(header.length);
    if length < HEADER_SIZE {
        return Err(ProtocolError::LengthTooShort {
            length: header.length,
        });
    }
    if length > MAX_PACKET_SIZE {
        return Err(ProtocolError::LengthTooLong {
            length: header.length,
            max: MAX_PACKET_SIZE,
        });
    }
    judge.judge(header)?;
    match buf.get(HEADER_SIZE..length) {
        Some(body) => Ok(Some(Frame { header, body })),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Any;
    impl Judge for Any {
        fn judge(&self, _: Header) -> Result<(), ProtocolError> {
            Ok(())
        }
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            length: 0x1234,
            id: 0xabcd,
            flags: 7,
        };
        assert_eq!(h.encode(), [0x34, 0x12, 0xcd, 0xab, 7]);
        assert_eq!(Header::parse(&h.encode()), Some(h));
        assert_eq!(Header::parse(&[1, 2, 3, 4]), None);
    }

    #[test]
    fn bad_lengths_are_refused_before_the_body() {
        let short = Header {
            length: 4,
            id: 1,
            flags: 0,
        }
        .encode();
        assert_eq!(
            split_frame(&short, &Any),
            Err(ProtocolError::LengthTooShort { length: 4 })
        );
        let long = Header {
            length: 9000,
            id: 1,
            flags: 0,
        }
        .encode();
        assert!(matches!(
            split_frame(&long, &Any),
            Err(ProtocolError::LengthTooLong { length: 9000, .. })
        ));
    }

    #[test]
    fn waits_for_header_and_body() {
        let mut wire = Header::for_body(1, 3).encode().to_vec();
        wire.extend_from_slice(&[1, 2, 3, 99]);
        for cut in 0..8 {
            assert_eq!(split_frame(&wire[..cut], &Any), Ok(None), "cut {cut}");
        }
        let frame = split_frame(&wire, &Any).unwrap().unwrap();
        assert_eq!(frame.body, [1, 2, 3]);
        assert_eq!(frame.len(), 8);
    }
}
