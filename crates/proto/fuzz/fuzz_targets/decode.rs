//! Feed arbitrary bytes, cut at arbitrary points, to both decoders: they must never panic,
//! and a split stream must decode exactly like the whole one.
#![no_main]

use iomodels_proto::{decode_stream, Direction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    for direction in [Direction::ToServer, Direction::ToClient] {
        let whole = decode_stream(direction, &[bytes]);
        let at = (cut as usize).min(bytes.len());
        let (a, b) = bytes.split_at(at);
        let split = decode_stream(direction, &[a, b]);
        assert_eq!(whole, split);
    }
});
