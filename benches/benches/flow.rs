//! Flow table lookup micro-benchmarks: `engine::FlowTable` (staged burst lookup of 64 keys, on
//! transparent huge pages as the engine builds it and on 4 KiB pages; and 64 single lookups)
//! against `hashbrown::HashMap` (its default hasher, foldhash) holding the
//! same keys and the same 16-byte value, at 1 k, 100 k, 393 k (the size DPDK's
//! `hash_perf_autotest` uses: 75 % of 2^19 slots), 1 M and 4 M flows; keys present (hit) and
//! absent (miss).
//!
//! Keys are L4-load-balancer-like IPv4 5-tuples: random client address and port towards one
//! VIP and port. Every table is filled to its capacity (so the flow table is as full as it
//! gets for that size). Lookups go through the keys in a shuffled order, not insertion
//! order: the entry array is in insertion order, so looking keys up in that order would walk it
//! sequentially and hide the cache misses that a real mix of flows causes. Each iteration looks
//! up the next 64 keys and, on a hit, reads the value (as an app would); the time reported is
//! per key (criterion `Throughput::Elements(64)`).
//!
//! Every benchmark checks afterwards that it did what it says: the flow table's own counters
//! (hits = lookups for hit runs, 0 for miss runs) and, for hashbrown, the number found.
//!
//! Run: `cargo bench -p benches --bench flow` (about 3 minutes; 1.2 GB of memory at 4 M flows).
//! One size: `FLOW_BENCH_SIZES=1M cargo bench -p benches --bench flow` (sizes by name, comma
//! separated; a criterion filter alone would still build every size's tables).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::wire::IpProtocol;
use engine::{FlowKey, FlowTable, FlowTableConfig, Instant, TimeoutClass};

const SIZES: [(usize, &str); 5] =
    [(1_000, "1k"), (100_000, "100k"), (393_216, "393k"), (1_000_000, "1M"), (4_000_000, "4M")];
const BURST: usize = 64;
/// The value stored with each flow (16 bytes: a flow table entry is then one cache line).
type Val = [u32; 4];

/// xorshift64*: a deterministic stream of random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn key(&mut self) -> FlowKey {
        let r = self.next();
        FlowKey::v4(Ipv4Addr::from(r as u32), Ipv4Addr::new(198, 18, 0, 1), (r >> 32) as u16, 443, IpProtocol::TCP)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.next() as usize % (i + 1));
        }
    }
}

struct Fixture {
    /// The flow table as the engine builds it (huge-page advice on).
    table: FlowTable<Val>,
    /// The same on 4 KiB pages (as hashbrown's memory is).
    table_4k: FlowTable<Val>,
    map: hashbrown::HashMap<FlowKey, Val>,
    /// Keys in the tables, shuffled; a multiple of the burst.
    hits: Vec<FlowKey>,
    /// Keys in neither, as many.
    misses: Vec<FlowKey>,
}

fn fixture(n: usize) -> Fixture {
    let mut rng = Rng(0x5eed_0000 + n as u64);
    let config = FlowTableConfig { seed: Some(7), ..FlowTableConfig::new(n) };
    let mut table = FlowTable::with_config(&config);
    let mut table_4k = FlowTable::with_config(&FlowTableConfig { huge_pages: false, ..config });
    let mut map = hashbrown::HashMap::with_capacity(n);
    let mut hits = Vec::with_capacity(n);
    while hits.len() < n {
        let k = rng.key();
        let v = [hits.len() as u32, 1, 2, 3];
        if table.insert(k, v, TimeoutClass::Established, Instant::ZERO).is_ok() {
            table_4k.insert(k, v, TimeoutClass::Established, Instant::ZERO).expect("same keys, same seed");
            map.insert(k, v);
            hits.push(k);
        }
    }
    assert_eq!((table.len(), map.len(), table.counters().full), (n, n, 0));
    let mut misses = Vec::with_capacity(n);
    while misses.len() < n {
        let k = rng.key();
        if !map.contains_key(&k) {
            misses.push(k);
        }
    }
    rng.shuffle(&mut hits);
    let len = n - n % BURST;
    hits.truncate(len);
    misses.truncate(len);
    let load = n as f64 / (table.bucket_count() * 8) as f64;
    eprintln!(
        "flow table {n}: {} buckets (load {:.1} %), {:.1} MiB; hashbrown capacity {}",
        table.bucket_count(),
        load * 100.0,
        table.memory_bytes() as f64 / (1 << 20) as f64,
        map.capacity()
    );
    Fixture { table, table_4k, map, hits, misses }
}

/// The next burst of `keys`, advancing `pos`.
#[inline]
fn next_burst<'k>(keys: &'k [FlowKey], pos: &mut usize) -> &'k [FlowKey] {
    let b = &keys[*pos..*pos + BURST];
    *pos = (*pos + BURST) % keys.len();
    b
}

/// The sizes to run: all, or those named in `FLOW_BENCH_SIZES`.
fn sizes() -> Vec<(usize, &'static str)> {
    match std::env::var("FLOW_BENCH_SIZES") {
        Ok(names) => SIZES.into_iter().filter(|(_, s)| names.split(',').any(|n| n.trim() == *s)).collect(),
        Err(_) => SIZES.to_vec(),
    }
}

fn flow_lookup(c: &mut Criterion) {
    for (n, name) in sizes() {
        let mut f = fixture(n);
        let mut g = c.benchmark_group(format!("flow_lookup_{name}"));
        g.throughput(Throughput::Elements(BURST as u64));
        for hit in [true, false] {
            let what = if hit { "hit" } else { "miss" };
            let keys = if hit { &f.hits } else { &f.misses };
            for (name, table) in [("xskd_burst64", &mut f.table), ("xskd_burst64_4k", &mut f.table_4k)] {
                let before = table.counters();
                let mut pos = 0;
                let mut out = [None; BURST];
                g.bench_function(BenchmarkId::new(name, what), |b| {
                    b.iter(|| {
                        table.lookup_burst(next_burst(keys, &mut pos), &mut out);
                        let mut sum = 0;
                        for ix in out.iter().flatten() {
                            sum += table.get(*ix).map_or(0, |v| v[0]);
                        }
                        sum
                    })
                });
                check(table.counters().hits - before.hits, table.counters().lookups - before.lookups, hit);
            }

            let table = &mut f.table;
            let before = table.counters();
            let mut pos = 0;
            g.bench_function(BenchmarkId::new("xskd_single", what), |b| {
                b.iter(|| {
                    let mut sum = 0;
                    for k in next_burst(keys, &mut pos) {
                        if let Some(ix) = table.lookup(k) {
                            sum += table.get(ix).map_or(0, |v| v[0]);
                        }
                    }
                    sum
                })
            });
            check(table.counters().hits - before.hits, table.counters().lookups - before.lookups, hit);

            let (map, mut pos, mut found, mut looked) = (&f.map, 0, 0u64, 0u64);
            g.bench_function(BenchmarkId::new("hashbrown", what), |b| {
                b.iter(|| {
                    let mut sum = 0;
                    for k in next_burst(keys, &mut pos) {
                        if let Some(v) = map.get(black_box(k)) {
                            sum += v[0];
                            found += 1;
                        }
                    }
                    looked += BURST as u64;
                    sum
                })
            });
            check(found, looked, hit);
        }
        g.finish();
    }
}

/// A hit run found every key, a miss run none, and the run did look keys up (unless filtered
/// out on the command line).
fn check(found: u64, looked: u64, hit: bool) {
    assert_eq!(found, if hit { looked } else { 0 }, "{found} of {looked} keys found");
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = flow;
    config = config();
    targets = flow_lookup
}
criterion_main!(flow);
