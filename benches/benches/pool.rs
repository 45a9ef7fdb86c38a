//! Frame pool micro-benchmarks: bulk allocate a burst of frames, then free the burst, by burst
//! size, against a `Vec::<u8>::with_capacity(2048)` per frame baseline (the cost of getting a
//! packet buffer from the general-purpose allocator).
//!
//! Every benchmark reports time per frame (criterion `Throughput::Elements(burst)`), and every
//! one checks afterwards that the frames really went around (count, pool counters, and that
//! every UMEM chunk is back on the free list), so none can silently measure nothing.
//!
//! * `pool_hot_cache`: one lcore cache (default size, 512) that never touches the shared list
//!   in steady state: alloc_bulk + free_burst is a LIFO stack of chunk addresses.
//! * `pool_shared_list`: allocate from one cache, free into another (two lcores' caches on the
//!   same UMEM, both default size): every frame goes through the UMEM's shared free list, in
//!   refills and flushes of half a cache under its mutex.
//! * `pool_tiny_cache`: one cache of capacity 2 (the minimum), so it refills or flushes for
//!   nearly every frame: the cost of the shared list without a useful cache.
//! * `pool_vec_baseline`: `Vec::<u8>::with_capacity(2048)` for each frame of the burst (kept in
//!   a pre-allocated vector, as the frames are kept in a `FrameBuf`), then all dropped.
//! * `pool_vec_immediate`: the same allocation, dropped at once, `burst` times: the allocator's
//!   best case (it hands the same block back every time).
//!
//! Run: `cargo bench -p benches --bench pool`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nic::pool::DEFAULT_CACHE_SIZE;
use nic::{Backing, FrameBuf, PoolCache, Umem, UmemConfig};

const BURSTS: [usize; 6] = [8, 16, 32, 64, 128, 256];
const FRAME_SIZE: u32 = 2048;
const FRAMES: u32 = 16384;
const FRAME_LEN: u32 = 60;

fn umem() -> Umem {
    let u = Umem::heap(UmemConfig { frame_size: FRAME_SIZE, frame_count: FRAMES, headroom: 0 }).expect("heap UMEM");
    assert_eq!(u.backing(), Backing::Heap);
    u
}

/// Frames counted by a benchmark routine; checked once criterion is done with it.
#[derive(Default)]
struct Tally {
    bursts: u64,
    frames: u64,
}

impl Tally {
    /// `frames == bursts * burst`, and, when the benchmark ran at all (it may be filtered
    /// out on the command line), that it moved frames.
    fn check(&self, what: &str, burst: usize) {
        assert_eq!(self.frames, self.bursts * burst as u64, "{what}/{burst}: a burst came up short");
        if self.bursts > 0 {
            assert!(self.frames > 0, "{what}/{burst}: no frame moved");
        }
    }
}

fn pool_hot_cache(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("pool_hot_cache");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, DEFAULT_CACHE_SIZE);
        let mut buf = FrameBuf::with_capacity(burst);
        let mut t = Tally::default();
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                let ok = cache.alloc_bulk(&mut buf, burst, FRAME_LEN);
                t.bursts += 1;
                t.frames += black_box(&mut buf).len() as u64;
                cache.free_burst(&mut buf);
                ok
            })
        });
        t.check("pool_hot_cache", burst);
        let s = cache.stats();
        assert_eq!(s.alloc_failed, 0);
        if t.bursts > 0 {
            // Hot means hot: one refill to start with, never a flush.
            assert_eq!((s.refills, s.flushes), (1, 0), "the cache went to the shared list");
        }
        drop(cache);
        assert_eq!(u.free_count(), FRAMES as usize, "a chunk went missing");
    }
    g.finish();
}

fn pool_shared_list(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("pool_shared_list");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut alloc_side = PoolCache::new(&u, DEFAULT_CACHE_SIZE);
        let mut free_side = PoolCache::new(&u, DEFAULT_CACHE_SIZE);
        let mut buf = FrameBuf::with_capacity(burst);
        let mut t = Tally::default();
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                let ok = alloc_side.alloc_bulk(&mut buf, burst, FRAME_LEN);
                t.bursts += 1;
                t.frames += black_box(&mut buf).len() as u64;
                free_side.free_burst(&mut buf);
                ok
            })
        });
        t.check("pool_shared_list", burst);
        let (a, f) = (alloc_side.stats(), free_side.stats());
        assert_eq!(a.alloc_failed, 0);
        if t.bursts > 0 {
            // Every frame crossed the shared list: refills of at most a cache and flushes of
            // half a cache.
            let cap = DEFAULT_CACHE_SIZE as u64;
            assert!(a.refills >= t.frames / cap && f.flushes + 2 >= t.frames / (cap / 2), "{a:?} {f:?} {}", t.frames);
        }
        drop((alloc_side, free_side));
        assert_eq!(u.free_count(), FRAMES as usize, "a chunk went missing");
    }
    g.finish();
}

fn pool_tiny_cache(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("pool_tiny_cache");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, 2);
        let mut buf = FrameBuf::with_capacity(burst);
        let mut t = Tally::default();
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                let ok = cache.alloc_bulk(&mut buf, burst, FRAME_LEN);
                t.bursts += 1;
                t.frames += black_box(&mut buf).len() as u64;
                cache.free_burst(&mut buf);
                ok
            })
        });
        t.check("pool_tiny_cache", burst);
        let s = cache.stats();
        assert_eq!(s.alloc_failed, 0);
        if t.bursts > 0 {
            // Per burst: the 2 cached frames, then a refill per 2 frames; a flush per frame freed
            // beyond the first 2.
            assert!(s.refills + t.bursts >= t.frames / 2 && s.flushes + 2 * t.bursts >= t.frames, "{s:?}");
        }
        drop(cache);
        assert_eq!(u.free_count(), FRAMES as usize, "a chunk went missing");
    }
    g.finish();
}

fn pool_vec_baseline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_vec_baseline");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut held: Vec<Vec<u8>> = Vec::with_capacity(burst);
        let mut t = Tally::default();
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                for _ in 0..burst {
                    held.push(Vec::with_capacity(FRAME_SIZE as usize));
                }
                t.bursts += 1;
                t.frames += black_box(&mut held).len() as u64;
                held.clear();
            })
        });
        t.check("pool_vec_baseline", burst);
    }
    g.finish();
}

fn pool_vec_immediate(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_vec_immediate");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut t = Tally::default();
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                for _ in 0..burst {
                    let v = black_box(Vec::<u8>::with_capacity(FRAME_SIZE as usize));
                    t.frames += (v.capacity() >= FRAME_SIZE as usize) as u64;
                }
                t.bursts += 1;
            })
        });
        t.check("pool_vec_immediate", burst);
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = pool;
    config = config();
    targets = pool_hot_cache, pool_shared_list, pool_tiny_cache, pool_vec_baseline, pool_vec_immediate
}
criterion_main!(pool);
