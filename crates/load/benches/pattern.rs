//! The generator's per-byte work: filling messages and verifying echoes.
#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use iomodels_load::pattern;

fn fill_and_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("pattern");
    for (payload, len) in [(64usize, 64usize), (64, 65_536), (1024, 65_536)] {
        let mut buffer = vec![0u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        let id = format!("payload {payload}, {len} B");
        group.bench_function(BenchmarkId::new("fill", &id), |b| {
            b.iter(|| pattern::fill(black_box(7), payload, black_box(640), &mut buffer))
        });
        pattern::fill(7, payload, 640, &mut buffer);
        group.bench_function(BenchmarkId::new("verify", &id), |b| {
            b.iter(|| {
                assert!(pattern::verify(
                    black_box(7),
                    payload,
                    black_box(640),
                    &buffer
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fill_and_verify);
criterion_main!(benches);
