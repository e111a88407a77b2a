//! The send queue (outbox) without sockets: what one `Session::send` costs on the echo path,
//! and what a room broadcast from another thread costs per recipient.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iomodels_engine::{DetachedSession, SharedMessage};
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

    // What a broadcast costs the broadcasting thread (the chat server's one logic thread):
    // queueing one packet to each of 20 members, copied (`send`) or by reference
    // (`send_shared`). Only the queueing is timed; the queues are drained untimed.
    let mut group = c.benchmark_group("broadcast_enqueue");
    group.throughput(Throughput::Elements(20));
    for size in [64usize, 1024, 16 * 1024] {
        let room: Vec<DetachedSession> = (0..20)
            .map(|_| DetachedSession::new(peer(), 1 << 30))
            .collect();
        let packet = vec![3u8; size];
        let mut wire = Vec::with_capacity(1 << 22);
        let mut timed = |b: &mut criterion::Bencher, broadcast: &dyn Fn(&[DetachedSession])| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for chunk in 0..iters.div_ceil(100) {
                    let rounds = (iters - chunk * 100).min(100);
                    let start = std::time::Instant::now();
                    for _ in 0..rounds {
                        broadcast(&room);
                    }
                    spent += start.elapsed();
                    for member in &room {
                        wire.clear();
                        member.drain_into(&mut wire);
                    }
                }
                spent
            })
        };
        group.bench_function(format!("copied/{size}"), |b| {
            timed(b, &|room| {
                for member in room {
                    member.session().send(black_box(&packet)).unwrap();
                }
            })
        });
        group.bench_function(format!("shared/{size}"), |b| {
            timed(b, &|room| {
                // Encoded once (here: copied once), queued to every member.
                let shared = SharedMessage::from(black_box(&packet[..]));
                for member in room {
                    member.session().send_shared(&shared).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, send_queue);
criterion_main!(benches);
