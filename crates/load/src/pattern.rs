//! The bytes each message carries, so every echoed byte can be checked.
//!
//! Message `m` of connection `c` is filled from a 64-bit key mixed from `(c, m)`: byte
//! `i` is `a + s * (i + 2 * (i >> 8))` (mod 256) with `a` and odd `s` taken from the key.
//! Neighbouring bytes therefore always differ (by `s` or `3s`, both odd), so a dropped,
//! duplicated or swapped byte shows at once, and messages differ from each other and
//! from other connections', so a mixed-up or misrouted message shows too.
//!
//! The pattern is a function of the position in the connection's byte stream, so
//! neither side keeps a copy of what was sent: the sender fills its scratch buffer from
//! the position it has reached, the receiver compares against the position it expects.

/// SplitMix64: a cheap, well-mixing bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The base and the odd step of message `message` on connection `connection`.
fn key(connection: u64, message: u64) -> (u8, u8) {
    let k = mix(connection.wrapping_mul(0x0100_0000_01B3) ^ mix(message));
    (k as u8, (k >> 8) as u8 | 1)
}

/// The byte at `offset` of a message with key `(a, s)`: the definition that [`fill`]
/// and [`verify`] compute block by block.
#[cfg(test)]
fn byte(a: u8, s: u8, offset: usize) -> u8 {
    let i = offset.wrapping_add(2 * (offset >> 8)) as u8;
    a.wrapping_add(s.wrapping_mul(i))
}

/// Visit the messages a stream range covers: `f(message, offset_in_message, range_in_buf)`.
#[inline]
fn for_each_segment(
    payload: usize,
    position: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, std::ops::Range<usize>) -> bool,
) -> bool {
    let payload64 = payload as u64;
    let mut done = 0;
    while done < len {
        let at = position + done as u64;
        let message = at / payload64;
        let offset = (at % payload64) as usize;
        let take = (payload - offset).min(len - done);
        if !f(message, offset, done..done + take) {
            return false;
        }
        done += take;
    }
    true
}

/// Visit the 256-byte blocks a message segment covers: within block `k` byte `i` is
/// `a + s * (2k) + s * (i as u8)`, a form the compiler vectorises (no shift per byte).
/// `f(base, first_low_byte, range)`.
#[inline]
fn for_each_block(
    a: u8,
    s: u8,
    offset: usize,
    len: usize,
    mut f: impl FnMut(u8, u8, std::ops::Range<usize>),
) {
    let mut done = 0;
    while done < len {
        let at = offset + done;
        let take = (256 - (at & 255)).min(len - done);
        let base = a.wrapping_add(s.wrapping_mul((2 * (at >> 8)) as u8));
        f(base, at as u8, done..done + take);
        done += take;
    }
}

/// Fill `out` with the bytes at stream position `position` of `connection`.
pub fn fill(connection: u64, payload: usize, position: u64, out: &mut [u8]) {
    for_each_segment(payload, position, out.len(), |message, offset, range| {
        let (a, s) = key(connection, message);
        let segment = &mut out[range];
        for_each_block(a, s, offset, segment.len(), |base, low, block| {
            for (i, b) in segment[block].iter_mut().enumerate() {
                *b = base.wrapping_add(s.wrapping_mul(low.wrapping_add(i as u8)));
            }
        });
        true
    });
}

/// Whether `data` is exactly what `connection` sent at stream position `position`.
pub fn verify(connection: u64, payload: usize, position: u64, data: &[u8]) -> bool {
    for_each_segment(payload, position, data.len(), |message, offset, range| {
        let (a, s) = key(connection, message);
        let segment = &data[range];
        let mut diff = 0u8;
        for_each_block(a, s, offset, segment.len(), |base, low, block| {
            // Fold rather than short-circuit: the loop stays branch-free and vectorises.
            diff |= segment[block].iter().enumerate().fold(0u8, |acc, (i, &b)| {
                acc | (b ^ base.wrapping_add(s.wrapping_mul(low.wrapping_add(i as u8))))
            });
        });
        diff == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(connection: u64, payload: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        fill(connection, payload, 0, &mut v);
        v
    }

    #[test]
    fn neighbours_always_differ() {
        for c in 0..50 {
            let s = stream(c, 1000, 5000);
            assert!(s.chunks(1000).all(|m| m.windows(2).all(|w| w[0] != w[1])));
        }
    }

    #[test]
    fn blocks_follow_the_definition() {
        for (c, payload) in [(3u64, 64usize), (9, 1000), (1, 5000)] {
            let s = stream(c, payload, 3 * payload + 17);
            for (at, &b) in s.iter().enumerate() {
                let (a, step) = key(c, (at / payload) as u64);
                assert_eq!(b, byte(a, step, at % payload), "at {at}");
            }
        }
    }

    #[test]
    fn connections_and_messages_differ() {
        assert_ne!(stream(1, 64, 64), stream(2, 64, 64));
        let s = stream(1, 64, 128);
        assert_ne!(s[..64], s[64..]);
    }

    proptest! {
        #[test]
        fn fill_then_verify_in_any_split(c in 0u64..1000, payload in 1usize..600,
                                         start in 0u64..5000, len in 0usize..3000,
                                         cut in 0usize..3000) {
            let mut data = vec![0; len];
            fill(c, payload, start, &mut data);
            let cut = cut.min(len);
            prop_assert!(verify(c, payload, start, &data[..cut]));
            prop_assert!(verify(c, payload, start + cut as u64, &data[cut..]));
        }

        #[test]
        fn any_single_change_is_caught(c in 0u64..1000, payload in 2usize..600,
                                       len in 2usize..3000, at in 0usize..3000,
                                       kind in 0u8..3, flip in 1u8..=255) {
            let mut data = vec![0; len];
            fill(c, payload, 0, &mut data);
            let at = at % (len - 1);
            match kind {
                0 => data[at] ^= flip,
                1 => { data.remove(at); }
                _ => {
                    // Swap two neighbours inside one message (they always differ).
                    let at = if (at + 1) % payload == 0 { at.saturating_sub(1) } else { at };
                    data.swap(at, at + 1);
                }
            }
            // A byte dropped with fewer than two after it can leave a stream that is only
            // short (or matches by a 1/256 chance at a message boundary), not wrong.
            if kind == 1 && at + 2 >= len { return Ok(()); }
            prop_assert!(!verify(c, payload, 0, &data));
        }
    }
}
