//! Proof that the flow table does not allocate after construction: a million mixed operations
//! (insert, lookup, burst lookup, touch, set_class, remove, expire; with ordinary hashing and
//! with forced collisions, so displacement, refusal and reclaim run too) make zero heap
//! allocations. Its own test binary: the counting allocator counts per thread.

use std::net::Ipv4Addr;
use std::time::Duration;

use engine::wire::IpProtocol;
use engine::{FlowIx, FlowKey, FlowTable, FlowTimeouts, Instant, TimeoutClass};
use nic::alloc_count::{thread_allocations, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const BURST: usize = 64;

fn keys(n: u32) -> Vec<FlowKey> {
    (0..n)
        .map(|i| {
            let a = Ipv4Addr::from(0x0a00_0000 | i);
            if i % 2 == 0 {
                FlowKey::v4(a, Ipv4Addr::new(198, 18, 0, 1), i as u16, 80, IpProtocol::TCP)
            } else {
                FlowKey::v6(a.to_ipv6_mapped(), a.to_ipv6_compatible(), 53, i as u16, IpProtocol::UDP)
            }
        })
        .collect()
}

/// Runs `rounds` bursts of mixed operations over `keys` (more keys than the table holds, so it
/// stays full and keeps refusing, reclaiming and expiring). Returns what happened.
fn churn(
    tb: &mut FlowTable<[u32; 4]>,
    keys: &[FlowKey],
    rounds: usize,
    out: &mut Vec<(FlowKey, [u32; 4])>,
) -> engine::FlowCounters {
    let mut res = [None; BURST];
    let mut now = Instant::from_millis(1000);
    let mut x = 0x9e37_79b9_u32;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize
    };
    for round in 0..rounds {
        now += Duration::from_micros(100);
        let at = rnd() % (keys.len() - BURST);
        let burst = &keys[at..at + BURST];
        tb.lookup_burst(burst, &mut res);
        for (k, r) in burst.iter().zip(res) {
            match r {
                Some(ix) => {
                    tb.touch(ix, now);
                    if rnd() % 8 == 0 {
                        tb.set_class(ix, TimeoutClass::Closing);
                    }
                    if rnd() % 16 == 0 {
                        tb.remove(ix);
                    }
                }
                None => {
                    let class = TimeoutClass::ALL[rnd() % TimeoutClass::COUNT];
                    let _ = tb.insert(*k, [round as u32; 4], class, now);
                }
            }
        }
        let single = tb.lookup(&keys[rnd() % keys.len()]);
        if let Some(v) = single.and_then(|ix: FlowIx| tb.get_mut(ix)) {
            v[1] += 1;
        }
        out.clear();
        tb.expire(now, 64, out);
    }
    tb.counters()
}

#[test]
fn flow_table_makes_no_allocation_after_construction() {
    // The counter is live: it sees an allocation when there is one.
    let c0 = thread_allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert_eq!(thread_allocations() - c0, 1);
    drop(v);

    let timeouts = FlowTimeouts {
        half_open: Duration::from_millis(5),
        established: Duration::from_millis(50),
        closing: Duration::from_millis(2),
        udp: Duration::from_millis(20),
        other: Duration::from_millis(10),
    };
    let ks = keys(40_000);
    // Ordinary hashing, and all keys forced into a handful of buckets.
    // (7 signatures over 8 primary buckets: the buckets fill, and entries can still move.)
    for (mask, cap, rounds) in [(u64::MAX, 20_000, 15_000), (0x0007_0000_0000_0007, 300, 3_000)] {
        let mut tb = FlowTable::with_hash_mask(cap, timeouts, 42, mask);
        // The caller's expiry output, preallocated (the sweep's budget plus what an insert
        // may reclaim between two calls).
        let mut out = Vec::with_capacity(64 + 2 * 8 * BURST);
        churn(&mut tb, &ks, 200, &mut out); // warm-up (nothing left to allocate anyway)
        let before = thread_allocations();
        let c = churn(&mut tb, &ks, rounds, &mut out);
        let allocs = thread_allocations() - before;
        assert_eq!(allocs, 0, "mask {mask:#x}: {allocs} allocations; {c:?}");
        // It really did all of it.
        assert!(c.lookups as usize > rounds * BURST && c.inserts > 1_000 && c.removed > 10, "{c:?}");
        assert!(c.expired > 500, "{c:?}");
        if mask != u64::MAX {
            assert!(c.full_buckets > 0 && c.reclaimed > 0 && c.displaced > 0, "{c:?}");
        }
    }
}
