//! Maglev table micro-benchmarks (`engine::maglev`):
//!
//! * `maglev_build/{3,100,1000}`: building a table of M = 65537 entries over that many active
//!   backends of weight 1 (allocation of the table included): the control thread's cost of a
//!   backend change. Time per build.
//! * `maglev_lookup`: one `lookup` (`hash % M` and a load from a 128 KiB table), hashes from a
//!   multiplicative sequence so consecutive lookups hit different cache lines. Time per lookup.
//!
//! Time is the thread's CPU time, as in `benches/nat.rs` (the machine these ran on is shared).
//!
//! Run: `cargo bench -p benches --bench maglev`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::maglev::{MaglevBackend, MaglevTable, DEFAULT_TABLE_SIZE};

fn backends(n: u64) -> Vec<MaglevBackend> {
    (0..n).map(|i| MaglevBackend::new(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed)).collect()
}

fn maglev_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    for n in [3u64, 100, 1000] {
        let list = backends(n);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    black_box(MaglevTable::new(black_box(&list)).expect("valid backends"));
                })
            })
        });
        let t = MaglevTable::new(&list).expect("valid backends");
        assert_eq!(t.size(), DEFAULT_TABLE_SIZE as usize);
        assert_eq!(t.entries_per_backend().iter().map(|&c| u64::from(c)).sum::<u64>(), u64::from(DEFAULT_TABLE_SIZE));
    }
    g.finish();
}

fn maglev_lookup(c: &mut Criterion) {
    const LOOKUPS: u64 = 1024;
    let list = backends(100);
    let table = MaglevTable::new(&list).expect("valid backends");
    let mut g = c.benchmark_group("maglev_lookup");
    g.throughput(Throughput::Elements(LOOKUPS));
    let mut found = 0u64;
    g.bench_function("100", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut h = black_box(0x1234_5678_u64);
                for _ in 0..LOOKUPS {
                    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
                    found += black_box(table.lookup(h)).is_some() as u64;
                }
            })
        })
    });
    assert!(found > 0 && found.is_multiple_of(LOOKUPS), "every lookup finds a backend");
    g.finish();
}

/// Runs `f` `iters` times; returns the thread CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = nic::sys::thread_cpu_time().expect("thread CPU clock");
    for _ in 0..iters {
        f();
    }
    nic::sys::thread_cpu_time().expect("thread CPU clock") - start
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = maglev_build, maglev_lookup
}
criterion_main!(benches);
