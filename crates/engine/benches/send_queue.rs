//! The send queue (outbox) without sockets: what one `Session::send` costs on the echo path,
//! and what a room broadcast from another thread costs per recipient.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iomodels_engine::DetachedSession;
use std::hint::black_box;

fn peer() -> std::net::SocketAddr {
    "127.0.0.1:7000".parse().unwrap()
}

fn send_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_queue");
    for size in [64usize, 1024, 16 * 1024] {
        let message = vec![7u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        // Echo path: queue one message, then the driver takes it (one send, one drain).
        group.bench_function(format!("send_then_drain/{size}"), |b| {
            let detached = DetachedSession::new(peer(), 1 << 20);
            let mut wire = Vec::with_capacity(1 << 20);
            b.iter(|| {
                detached.session().send(black_box(&message)).unwrap();
                wire.clear();
                black_box(detached.drain_into(&mut wire));
            })
        });
    }
    // Header and body queued as one message, as the chat server sends packets.
    group.throughput(Throughput::Elements(1));
    group.bench_function("send_vectored/5+290", |b| {
        let detached = DetachedSession::new(peer(), 1 << 20);
        let (header, body) = ([1u8; 5], [2u8; 290]);
        let mut wire = Vec::with_capacity(1 << 20);
        b.iter(|| {
            detached
                .session()
                .send_vectored(&[black_box(&header), black_box(&body)])
                .unwrap();
            wire.clear();
            detached.drain_into(&mut wire);
        })
    });
    // A broadcast: one 295-byte notify to each of 100 sessions, drained afterwards.
    group.throughput(Throughput::Elements(100));
    group.bench_function("broadcast/100x295", |b| {
        let room: Vec<DetachedSession> = (0..100)
            .map(|_| DetachedSession::new(peer(), 1 << 20))
            .collect();
        let notify = [3u8; 295];
        let mut wire = Vec::with_capacity(1 << 16);
        b.iter_batched_ref(
            || (),
            |()| {
                for member in &room {
                    member.session().send(black_box(&notify)).unwrap();
                }
                for member in &room {
                    wire.clear();
                    member.drain_into(&mut wire);
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, send_queue);
criterion_main!(benches);
