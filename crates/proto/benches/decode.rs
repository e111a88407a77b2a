//! The framing decoder on a stream of chat requests, whole and cut into TCP-sized reads.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iomodels_proto::{decode_requests, Request};
use std::hint::black_box;

/// 1,000 requests as a client would send them: mostly chats, some logins and room moves.
fn stream() -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    for i in 0..1000usize {
        let request = match i % 10 {
            0 => Request::Login {
                user_id: format!("bot{i}").into_bytes(),
                password: b"secret".to_vec(),
            },
            1 => Request::RoomEnter {
                room: (i % 7) as i32,
            },
            2 => Request::RoomLeave,
            _ => Request::RoomChat {
                message: format!("message number {i} from a bench bot").into_bytes(),
            },
        };
        request.encode(&mut out);
    }
    (out, 1000)
}

fn decode(c: &mut Criterion) {
    let (bytes, packets) = stream();
    let mut group = c.benchmark_group("decode_requests");
    group.throughput(Throughput::Elements(packets as u64));
    group.bench_function("whole_buffer", |b| {
        b.iter(|| {
            let mut count = 0;
            let decoded = decode_requests(black_box(&bytes), |r| {
                black_box(r);
                count += 1;
            });
            assert_eq!((decoded.consumed, count), (bytes.len(), packets));
        })
    });
    // As the engine hands data over: reads of 1,460 bytes, with the unconsumed tail of one
    // read offered again in front of the next.
    group.bench_function("reads_of_1460", |b| {
        let mut pending = Vec::with_capacity(4096);
        b.iter(|| {
            let mut count = 0;
            pending.clear();
            for read in bytes.chunks(1460) {
                pending.extend_from_slice(read);
                let decoded = decode_requests(&pending, |r| {
                    black_box(r);
                    count += 1;
                });
                pending.drain(..decoded.consumed);
            }
            assert_eq!(count, packets);
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
