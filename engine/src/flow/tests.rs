//! Unit and property tests of the flow table. The property tests drive random operation
//! sequences through [`model::Checker`], which compares the table with a `HashMap` model after
//! every operation.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;

use super::model::{self, Checker, Op};
use super::*;
use crate::wire::{IpPair, IpProtocol};

const MS: Duration = Duration::from_millis(1);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn v4(a: u8, sp: u16) -> FlowKey {
    FlowKey::v4(Ipv4Addr::new(10, 0, 0, a), Ipv4Addr::new(198, 18, 0, 1), sp, 80, IpProtocol::TCP)
}

/// `n` distinct keys, half v4, half v6.
fn keys(n: usize) -> Vec<FlowKey> {
    (0..n as u32)
        .map(|i| {
            let a = Ipv4Addr::from(0x0a00_0000 | i);
            if i % 2 == 0 {
                FlowKey::v4(a, Ipv4Addr::new(198, 18, 0, 1), (i % 50_000) as u16, 443, IpProtocol::TCP)
            } else {
                FlowKey::v6(a.to_ipv6_mapped(), Ipv6Addr::LOCALHOST, 53, (i % 60_000) as u16, IpProtocol::UDP)
            }
        })
        .collect()
}

// ---- keys ----

#[test]
fn key_layout_is_the_documented_one() {
    let k = FlowKey::v4(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8), 0x1122, 0x3344, IpProtocol::UDP);
    let mut want = [0u8; 40];
    want[..4].copy_from_slice(&[1, 2, 3, 4]);
    want[16..20].copy_from_slice(&[5, 6, 7, 8]);
    want[32..38].copy_from_slice(&[0x22, 0x11, 0x44, 0x33, 17, 4]);
    assert_eq!(k.to_bytes(), want);
    let k6 = FlowKey::v6("2001:db8::1".parse().unwrap(), "::2".parse().unwrap(), 1, 2, IpProtocol::TCP);
    let mut want = [0u8; 40];
    want[..16].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    want[31] = 2;
    want[32..38].copy_from_slice(&[1, 0, 2, 0, 6, 6]);
    assert_eq!(k6.to_bytes(), want);
}

#[test]
fn v4_and_v6_keys_never_collide_by_layout() {
    let (a, b) = (Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8));
    let k4 = FlowKey::v4(a, b, 10, 20, IpProtocol::TCP);
    // Same leading address bytes, zero padding: only the family tells them apart.
    let pad = |x: Ipv4Addr| {
        let mut o = [0u8; 16];
        o[..4].copy_from_slice(&x.octets());
        Ipv6Addr::from(o)
    };
    for k6 in [
        FlowKey::v6(pad(a), pad(b), 10, 20, IpProtocol::TCP),
        FlowKey::v6(a.to_ipv6_mapped(), b.to_ipv6_mapped(), 10, 20, IpProtocol::TCP),
        FlowKey::v6(a.to_ipv6_compatible(), b.to_ipv6_compatible(), 10, 20, IpProtocol::TCP),
    ] {
        assert_ne!(k4, k6);
        assert_ne!(k4.to_bytes(), k6.to_bytes());
        assert_eq!(k6.family(), IpFamily::V6);
    }
    assert_eq!(k4.family(), IpFamily::V4);
    // And in a table, with every key forced into the same buckets and signature.
    let mut tb = FlowTable::with_hash_mask(8, FlowTimeouts::default(), 1, 0);
    let ix4 = tb.insert(k4, 4, TimeoutClass::Other, t(0)).unwrap();
    let k6 = FlowKey::v6(pad(a), pad(b), 10, 20, IpProtocol::TCP);
    let ix6 = tb.insert(k6, 6, TimeoutClass::Other, t(0)).unwrap();
    assert_eq!((tb.lookup(&k4), tb.lookup(&k6)), (Some(ix4), Some(ix6)));
}

#[test]
fn reversed_swaps_addresses_and_ports() {
    let k = FlowKey::v4(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8), 1111, 80, IpProtocol::TCP);
    let r = k.reversed();
    assert_eq!(r, FlowKey::v4(Ipv4Addr::new(5, 6, 7, 8), Ipv4Addr::new(1, 2, 3, 4), 80, 1111, IpProtocol::TCP));
    assert_eq!(r.reversed(), k);
    let (s, d): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
    let k6 = FlowKey::v6(s, d, 5, 6, IpProtocol::UDP);
    assert_eq!(k6.reversed(), FlowKey::v6(d, s, 6, 5, IpProtocol::UDP));
    assert_eq!(
        FlowKey::from_ips(&IpPair::V6 { src: s, dst: d }, 5, 6, IpProtocol::UDP).reversed(),
        FlowKey::from_ips(&IpPair::V6 { src: s, dst: d }.reversed(), 6, 5, IpProtocol::UDP)
    );
    assert_eq!(format!("{k}"), "proto 6 1.2.3.4:1111 -> 5.6.7.8:80");
    assert_eq!(format!("{:?}", k6.reversed()), "proto 17 [2001:db8::2]:6 -> [2001:db8::1]:5");
}

proptest! {
    #[test]
    fn key_getters_return_the_constructor_arguments(
        s in any::<[u8; 16]>(), d in any::<[u8; 16]>(), sp in any::<u16>(), dp in any::<u16>(),
        p in any::<u8>(), v6 in any::<bool>()
    ) {
        let k = if v6 {
            FlowKey::v6(Ipv6Addr::from(s), Ipv6Addr::from(d), sp, dp, IpProtocol(p))
        } else {
            let (s4, d4) = (Ipv4Addr::new(s[0], s[1], s[2], s[3]), Ipv4Addr::new(d[0], d[1], d[2], d[3]));
            FlowKey::v4(s4, d4, sp, dp, IpProtocol(p))
        };
        let r = k.reversed();
        prop_assert_eq!((r.src_addr(), r.dst_addr()), (k.dst_addr(), k.src_addr()));
        prop_assert_eq!((r.src_port(), r.dst_port(), r.protocol(), r.family()), (dp, sp, IpProtocol(p), k.family()));
        prop_assert_eq!((k.src_port(), k.dst_port(), k.protocol()), (sp, dp, IpProtocol(p)));
        if v6 {
            prop_assert_eq!(k.src_addr(), std::net::IpAddr::from(s));
            prop_assert_eq!(k.family(), IpFamily::V6);
        } else {
            prop_assert_eq!(k.src_addr(), std::net::IpAddr::from([s[0], s[1], s[2], s[3]]));
            prop_assert_eq!(k.family(), IpFamily::V4);
        }
    }
}

// ---- layout ----

#[test]
fn entry_of_a_16_byte_value_is_one_cache_line() {
    assert_eq!(size_of::<Option<Entry<[u32; 4]>>>(), 64);
    assert_eq!(align_of::<Option<Entry<[u32; 4]>>>(), 64);
    assert_eq!(size_of::<Option<Entry<u64>>>(), 64);
}

#[test]
fn buckets_keep_load_at_most_85_percent() {
    for cap in [1, 7, 8, 13, 1000, 55_705, 55_706, 1 << 20, 4 << 20] {
        let b = bucket_count(cap);
        assert!(b.is_power_of_two() && b >= 2);
        assert!(cap * 100 <= b * SLOTS * MAX_LOAD_PERCENT, "{cap}: {b} buckets");
        assert!(b == 2 || cap * 100 > (b / 2) * SLOTS * MAX_LOAD_PERCENT, "{cap}: {b} buckets is not the smallest");
    }
}

// ---- table behaviour ----

#[test]
fn insert_lookup_remove_basics() {
    let mut tb = FlowTable::with_seed(100, FlowTimeouts::default(), 7);
    let (a, b) = (v4(1, 1), v4(2, 2));
    let ia = tb.insert(a, "a", TimeoutClass::HalfOpen, t(0)).unwrap();
    assert_eq!(tb.insert(a, "again", TimeoutClass::HalfOpen, t(0)), Err(InsertError::Exists(ia)));
    assert_eq!(tb.lookup(&a), Some(ia));
    assert_eq!(tb.lookup(&b), None);
    assert_eq!((tb.get(ia), tb.key(ia), tb.class(ia)), (Some(&"a"), Some(&a), Some(TimeoutClass::HalfOpen)));
    *tb.get_mut(ia).unwrap() = "A";
    tb.set_class(ia, TimeoutClass::Established);
    assert_eq!(tb.class(ia), Some(TimeoutClass::Established));
    // To within a tick (~1.05 ms).
    let idle = tb.idle(ia, t(1000)).unwrap();
    assert!((Duration::from_micros(998_900)..=Duration::from_millis(1000)).contains(&idle), "{idle:?}");
    assert_eq!(tb.remove(ia), (a, "A"));
    assert_eq!(tb.get(ia), None);
    assert_eq!(tb.try_remove(ia), None);
    assert_eq!(tb.lookup(&a), None);
    let c = tb.counters();
    assert_eq!((c.lookups, c.hits, c.misses, c.inserts, c.exists, c.removed, c.len), (3, 1, 2, 1, 1, 1, 0));
}

#[test]
fn capacity_is_exact() {
    let mut tb = FlowTable::with_seed(1000, FlowTimeouts::default(), 3);
    let ks = keys(1001);
    for k in &ks[..1000] {
        tb.insert(*k, (), TimeoutClass::Udp, t(0)).unwrap();
    }
    assert_eq!(tb.insert(ks[1000], (), TimeoutClass::Udp, t(0)), Err(InsertError::Full));
    let c = tb.counters();
    assert_eq!((c.len, c.full, c.full_buckets), (1000, 1, 0));
    for k in &ks[..1000] {
        assert!(tb.lookup(k).is_some(), "{k}");
    }
}

#[test]
fn displacement_fills_buckets_to_85_percent() {
    // 8192 buckets × 8 slots × 85 %: the fullest a table of this bucket count gets.
    let cap = 8192 * SLOTS * MAX_LOAD_PERCENT / 100;
    for seed in 0..4 {
        let mut tb = FlowTable::with_seed(cap, FlowTimeouts::default(), seed);
        assert_eq!(tb.bucket_count(), 8192);
        let ks = keys(cap);
        let ixs: Vec<FlowIx> =
            ks.iter().map(|k| tb.insert(*k, k.src_port(), TimeoutClass::Udp, t(0)).unwrap()).collect();
        let c = tb.counters();
        assert_eq!((c.inserts, c.full), (cap as u64, 0), "seed {seed}");
        assert!(c.displaced > 0, "the fill never needed a move");
        for (k, ix) in ks.iter().zip(&ixs) {
            assert_eq!(tb.lookup(k), Some(*ix));
            assert_eq!(tb.get(*ix), Some(&k.src_port()));
        }
    }
}

#[test]
fn burst_lookup_equals_single_lookups() {
    let ks = keys(3000);
    let mut a = FlowTable::with_seed(2000, FlowTimeouts::default(), 11);
    for k in ks.iter().step_by(2) {
        a.insert(*k, (), TimeoutClass::Established, t(0)).unwrap();
    }
    let mut b = FlowTable::with_seed(2000, FlowTimeouts::default(), 11);
    for k in ks.iter().step_by(2) {
        b.insert(*k, (), TimeoutClass::Established, t(0)).unwrap();
    }
    // Bursts of every length from 0 to 200 (several stages), over hits and misses.
    let mut at = 0;
    for n in 0..=200 {
        let burst: Vec<FlowKey> = (0..n).map(|i| ks[(at + i * 7) % ks.len()]).collect();
        at += n;
        let mut out = vec![Some(FlowIx(u32::MAX)); n];
        a.lookup_burst(&burst, &mut out);
        let single: Vec<Option<FlowIx>> = burst.iter().map(|k| b.lookup(k)).collect();
        assert_eq!(out, single, "burst of {n}");
    }
    assert_eq!(a.counters(), b.counters());
    let c = a.counters();
    assert!(c.hits > 1000 && c.misses > 1000);
}

#[test]
fn probes_equal_single_lookups_whatever_the_steps_order() {
    let ks = keys(3000);
    let mut a = FlowTable::with_seed(2000, FlowTimeouts::default(), 11);
    let mut b = FlowTable::with_seed(2000, FlowTimeouts::default(), 11);
    for k in ks.iter().step_by(2) {
        a.insert(*k, (), TimeoutClass::Established, t(0)).unwrap();
        b.insert(*k, (), TimeoutClass::Established, t(0)).unwrap();
    }
    // Probes started in a batch, advanced `ahead` keys in front of the one finished (or not
    // advanced at all), as the l4lb interleaves them.
    for ahead in [0usize, 1, 8, 64, usize::MAX] {
        let batch: Vec<FlowKey> = (0..300).map(|i| ks[(i * 13 + ahead % 97) % ks.len()]).collect();
        let mut probes: Vec<Probe> = batch.iter().map(|k| a.probe_start(k)).collect();
        let mut got = Vec::new();
        for j in 0..batch.len() {
            if ahead != usize::MAX {
                if let Some(p) = probes.get_mut(j + ahead) {
                    a.probe_advance(p);
                }
            }
            got.push(a.probe_finish(&batch[j], &probes[j]));
        }
        let want: Vec<Option<FlowIx>> = batch.iter().map(|k| b.lookup(k)).collect();
        assert_eq!(got, want, "ahead {ahead}");
    }
    assert_eq!(a.counters(), b.counters());
}

proptest! {
    /// Inserts and removes between a probe's steps: finish never names an entry that does not
    /// hold the key, and a hit it misses is one a plain lookup finds (what the l4lb does after
    /// changing the table).
    #[test]
    fn probes_stay_safe_when_the_table_changes_under_them(
        ops in prop::collection::vec((0usize..64, any::<bool>()), 1..200),
    ) {
        let ks = keys(64);
        let mut tb = FlowTable::with_seed(48, FlowTimeouts::default(), 3);
        for k in ks.iter().step_by(3) {
            tb.insert(*k, (), TimeoutClass::Udp, t(0)).unwrap();
        }
        let mut probes: Vec<Probe> = ks.iter().map(|k| tb.probe_start(k)).collect();
        for p in probes.iter_mut() {
            tb.probe_advance(p);
        }
        for (i, ins) in ops {
            match (ins, tb.find(&ks[i])) {
                (true, None) => { let _ = tb.insert(ks[i], (), TimeoutClass::Udp, t(0)); }
                (false, Some(ix)) => { tb.remove(ix); }
                _ => {}
            }
        }
        for (k, p) in ks.iter().zip(&probes) {
            let r = tb.probe_finish(k, p);
            if let Some(ix) = r {
                prop_assert_eq!(tb.key(ix), Some(k));
            }
            prop_assert_eq!(r.or_else(|| tb.lookup(k)), tb.find(k));
        }
    }
}

#[test]
#[should_panic(expected = "3 keys but 2 results")]
fn burst_lookup_checks_lengths() {
    let mut tb: FlowTable<()> = FlowTable::with_seed(10, FlowTimeouts::default(), 1);
    tb.lookup_burst(&[v4(1, 1); 3], &mut [None; 2]);
}

/// Per class: entries expire no earlier than their timeout and no later than timeout + 2 ticks
/// + one full sweep, measured on a fake clock against when each was last seen.
#[test]
fn expiry_timing_per_class() {
    let to = FlowTimeouts { half_open: 5 * MS, established: 300 * MS, closing: 17 * MS, udp: 120 * MS, other: 64 * MS };
    let cap = 2000;
    let budget = 100; // a full sweep: 20 calls
    let step = Duration::from_micros(250); // one call per step: a sweep takes 5 ms
    let sweep = step * (cap / budget) as u32;
    let mut tb = FlowTable::with_seed(cap, to, 5);
    let ks = keys(cap);
    let mut last_seen = vec![Instant::ZERO; cap];
    let mut now = Instant::from_nanos(987_654_321);
    let mut ixs = Vec::new();
    for (i, k) in ks.iter().enumerate() {
        let class = TimeoutClass::ALL[i % TimeoutClass::COUNT];
        now += Duration::from_micros(37);
        ixs.push(tb.insert(*k, i, class, now).unwrap());
        last_seen[i] = now;
    }
    let mut out = Vec::with_capacity(cap);
    let mut gone = vec![false; cap];
    // Entries inserted early waited for the first sweep: lateness counts from then.
    let first_sweep = now + step;
    let touch_until = now + Duration::from_millis(100);
    let end = now + Duration::from_secs(1);
    while now < end {
        now += step;
        // Keep touching a third of the entries for the first 100 ms.
        if now < touch_until {
            for i in (0..cap).step_by(3) {
                if !gone[i] {
                    tb.touch(ixs[i], now);
                    last_seen[i] = now;
                }
            }
        }
        out.clear();
        tb.expire(now, budget, &mut out);
        for &(k, i) in &out {
            assert_eq!(k, ks[i]);
            let idle = now - last_seen[i];
            let timeout = to.get(TimeoutClass::ALL[i % TimeoutClass::COUNT]).expect("permanent never expires");
            assert!(idle > timeout, "{k}: expired after {idle:?}, timeout {timeout:?}");
            let late = Duration::from_nanos(2 << 20) + sweep + step;
            let due = (last_seen[i] + timeout).max(first_sweep);
            assert!(now <= due + late, "{k}: expired {:?} after due, more than {late:?}", now - due);
            gone[i] = true;
        }
    }
    for (i, g) in gone.iter().enumerate() {
        let permanent = TimeoutClass::ALL[i % TimeoutClass::COUNT] == TimeoutClass::Permanent;
        assert_eq!(*g, !permanent, "entry {i}");
    }
    assert_eq!(tb.len(), (0..cap).filter(|i| i % TimeoutClass::COUNT == TimeoutClass::Permanent as usize).count());
    assert_eq!(tb.counters().expired as usize, cap - tb.len());
}

#[test]
fn permanent_entries_never_expire_nor_get_reclaimed() {
    // One signature, 2 buckets: 16 slots for everything.
    let mut tb = FlowTable::with_hash_mask(64, FlowTimeouts::uniform(MS), 1, 0);
    let ks = keys(17);
    for k in &ks[..16] {
        tb.insert(*k, (), TimeoutClass::Permanent, t(0)).unwrap();
    }
    let mut out = Vec::with_capacity(64);
    // 100 days later, across the 52-day tick wrap, sweeping all along.
    for day in 1..=100 {
        assert_eq!(tb.expire(t(day * 86_400_000), 64, &mut out), 0);
    }
    assert_eq!(tb.insert(ks[16], (), TimeoutClass::Udp, t(100 * 86_400_000)), Err(InsertError::Full));
    let c = tb.counters();
    assert_eq!((c.len, c.reclaimed, c.expired, c.full_buckets), (16, 0, 0, 1));
}

#[test]
fn insert_reclaims_expired_entries_in_full_buckets() {
    let to = FlowTimeouts::uniform(10 * MS);
    let mut tb = FlowTable::with_hash_mask(64, to, 1, 0);
    let ks = keys(20);
    let ixs: Vec<FlowIx> =
        ks[..16].iter().map(|k| tb.insert(*k, k.src_port(), TimeoutClass::Udp, t(0)).unwrap()).collect();
    // Full, nothing expired yet: refused.
    assert_eq!(tb.insert(ks[16], 0, TimeoutClass::Udp, t(5)), Err(InsertError::Full));
    // Keep four alive; the other twelve expire.
    for ix in &ixs[..4] {
        tb.touch(*ix, t(15));
    }
    let new = tb.insert(ks[16], 16, TimeoutClass::Udp, t(20)).unwrap();
    assert_eq!(tb.counters().reclaimed, 12);
    assert_eq!(tb.pending_reclaimed(), 12);
    // Reclaimed: not findable, still readable by index, not reused, counted in len.
    for (k, ix) in ks[4..16].iter().zip(&ixs[4..]) {
        assert_eq!(tb.lookup(k), None);
        assert_eq!(tb.get(*ix), Some(&k.src_port()));
        assert_ne!(*ix, new);
    }
    assert_eq!(tb.len(), 17);
    // The owner may remove one itself before it is handed back.
    assert_eq!(tb.remove(ixs[4]), (ks[4], ks[4].src_port()));
    // The next expire hands back the other eleven, even with a budget of 0.
    let mut out = Vec::with_capacity(16);
    assert_eq!(tb.expire(t(20), 0, &mut out), 11);
    let mut got: Vec<FlowKey> = out.iter().map(|(k, _)| *k).collect();
    got.sort();
    let mut want = ks[5..16].to_vec();
    want.sort();
    assert_eq!(got, want);
    let c = tb.counters();
    assert_eq!((c.len, c.expired, c.removed, c.inserts), (5, 11, 1, 17));
    for (k, ix) in ks[..4].iter().zip(&ixs) {
        assert_eq!(tb.lookup(k), Some(*ix));
    }
}

#[test]
fn expire_stops_when_out_is_full_and_resumes() {
    let mut tb = FlowTable::with_seed(100, FlowTimeouts::uniform(MS), 9);
    for k in keys(100) {
        tb.insert(k, (), TimeoutClass::Other, t(0)).unwrap();
    }
    let mut out = Vec::with_capacity(30);
    let mut total = 0;
    for _ in 0..4 {
        let n = tb.expire(t(10), 1000, &mut out);
        assert!(n <= 30);
        assert_eq!(out.capacity(), 30);
        total += n;
        out.clear();
    }
    assert_eq!(total, 100);
    assert!(tb.is_empty());
}

#[test]
fn clock_stepping_back_does_not_expire() {
    let mut tb = FlowTable::with_seed(10, FlowTimeouts::uniform(MS), 2);
    let ix = tb.insert(v4(1, 1), (), TimeoutClass::Other, t(10_000)).unwrap();
    let mut out = Vec::with_capacity(10);
    assert_eq!(tb.expire(t(5_000), 10, &mut out), 0);
    assert_eq!(tb.idle(ix, t(5_000)), Some(Duration::ZERO));
    assert_eq!(tb.expire(t(10_003), 10, &mut out), 1);
}

#[test]
fn counters_name_every_field() {
    let c = FlowCounters { lookups: 3, hits: 2, misses: 1, len: 9, ..Default::default() };
    let f: Vec<(&str, u64)> = c.fields().collect();
    assert_eq!(f.len(), FlowCounters::NAMES.len());
    assert_eq!(f.len(), size_of::<FlowCounters>() / 8);
    assert_eq!(&f[..3], &[("lookups", 3), ("hits", 2), ("misses", 1)]);
    assert_eq!(f.last(), Some(&("len", 9)));
}

#[test]
fn random_seeds_differ() {
    // Two tables place the same key differently (with overwhelming probability): the seed is
    // per table, not per process.
    let ks = keys(64);
    let a: FlowTable<()> = FlowTable::new(1 << 16, FlowTimeouts::default());
    let b: FlowTable<()> = FlowTable::new(1 << 16, FlowTimeouts::default());
    let same = ks.iter().filter(|k| a.place_of(k).prim == b.place_of(k).prim).count();
    assert!(same < 8, "{same} of 64 keys in the same bucket");
}

// ---- property tests against the model ----

fn class() -> impl Strategy<Value = TimeoutClass> {
    (0..TimeoutClass::COUNT).prop_map(|i| TimeoutClass::ALL[i])
}

fn op(keys: u16) -> impl Strategy<Value = Op> {
    let k = 0..keys;
    prop_oneof![
        6 => (k.clone(), class()).prop_map(|(key, class)| Op::Insert { key, class }),
        3 => k.clone().prop_map(|key| Op::Lookup { key }),
        2 => proptest::collection::vec(k.clone(), 0..100).prop_map(|keys| Op::Burst { keys }),
        2 => k.clone().prop_map(|key| Op::Remove { key }),
        1 => any::<u32>().prop_map(|ix| Op::RemoveIx { ix }),
        2 => k.clone().prop_map(|key| Op::Touch { key }),
        1 => (k.clone(), class()).prop_map(|(key, class)| Op::SetClass { key, class }),
        1 => k.prop_map(|key| Op::Bump { key }),
        3 => (0u32..60_000).prop_map(|us| Op::Advance { us }),
        2 => any::<u16>().prop_map(|budget| Op::Expire { budget }),
    ]
}

fn run(capacity: usize, mask: u64, seed: u64, start_tick: u32, ops: &[Op]) -> Checker {
    let mut c = Checker::new(capacity, mask, seed, start_tick);
    for o in ops {
        c.apply(o);
    }
    c.check_all();
    c
}

/// Hash masks: all bits; one signature and 4 primary buckets; 2 signatures and 2 primaries;
/// everything in 2 buckets.
const MASKS: [u64; 4] = [u64::MAX, 0x0001_0000_0000_0003, 0x0003_0000_0000_0001, 0];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Ordinary hashing, tables from tiny to a few hundred entries, keys often repeating.
    #[test]
    fn table_matches_model(
        capacity in 1usize..300, keys in 1u16..model::KEYS, seed in any::<u64>(),
        ops in proptest::collection::vec(op(model::KEYS), 1..400)
    ) {
        let ops: Vec<Op> = ops.into_iter().map(|o| narrow(o, keys)).collect();
        run(capacity, u64::MAX, seed, 1 << 20, &ops);
    }

    /// Forced collisions: many keys share buckets and signatures, so inserts fill buckets,
    /// displace, reclaim and get refused; the clock starts just before the tick wrap.
    #[test]
    fn table_matches_model_with_collisions(
        capacity in 1usize..120, mask_ix in 0..MASKS.len(), seed in any::<u64>(),
        start in 0u32..2000, ops in proptest::collection::vec(op(96), 1..500)
    ) {
        let c = run(capacity, MASKS[mask_ix], seed, u32::MAX - start, &ops);
        // Every bucket graph here has at most 16 buckets: no refusal may be blamed on the
        // search bound.
        prop_assert_eq!(c.bounded_refusals(), 0);
    }
}

/// Restricts an op's keys to `0..keys` (so some runs reuse few keys a lot).
fn narrow(o: Op, keys: u16) -> Op {
    match o {
        Op::Insert { key, class } => Op::Insert { key: key % keys, class },
        Op::Lookup { key } => Op::Lookup { key: key % keys },
        Op::Burst { keys: ks } => Op::Burst { keys: ks.into_iter().map(|k| k % keys).collect() },
        Op::Remove { key } => Op::Remove { key: key % keys },
        Op::Touch { key } => Op::Touch { key: key % keys },
        Op::SetClass { key, class } => Op::SetClass { key: key % keys, class },
        Op::Bump { key } => Op::Bump { key: key % keys },
        o => o,
    }
}

/// A long deterministic run per mask, so the full and reclaim paths get many visits.
#[test]
fn long_model_runs() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (i, &mask) in MASKS.iter().enumerate() {
        let cap = [300, 100, 100, 20][i];
        let mut c = Checker::new(cap, mask, i as u64, u32::MAX - 500);
        let mut bytes = Vec::new();
        for _ in 0..60_000 {
            bytes.push(next() as u8);
        }
        let mut rest = &bytes[..];
        while let Some(op) = Op::decode(&mut rest) {
            let op = match op {
                // Keep the key space near the capacity, so the table fills.
                Op::Insert { key, class } => Op::Insert { key: key % (cap as u16 * 2), class },
                // And time slow, so that entries live long enough to fill it.
                Op::Advance { us } => Op::Advance { us: us / 16 },
                // And removals rare.
                Op::RemoveIx { ix } if ix % 8 != 0 => Op::Lookup { key: ix as u16 },
                o => o,
            };
            c.apply(&op);
        }
        c.check_all();
        let k = c.table().counters();
        assert!(k.inserts > 100 && k.expired > 10, "mask {mask:#x}: {k:?}");
        if mask != u64::MAX {
            assert!(k.full_buckets > 0 && k.reclaimed > 0, "mask {mask:#x}: {k:?}");
        }
    }
}

/// Keys that differ only in one field (a port, the low bits of an address: what real traffic
/// and a crafted flood look like) spread over buckets and signatures like random ones.
#[test]
fn hash_spreads_structured_keys() {
    type Family = (&'static str, fn(u32) -> FlowKey);
    let families: [Family; 4] = [
        ("src port", |i| {
            FlowKey::v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 0, 1), i as u16, 80, IpProtocol::TCP)
        }),
        ("dst port", |i| {
            FlowKey::v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 0, 1), 80, i as u16, IpProtocol::UDP)
        }),
        ("src addr", |i| {
            FlowKey::v4(Ipv4Addr::from(0x0a00_0000 + i), Ipv4Addr::new(198, 18, 0, 1), 5, 80, IpProtocol::TCP)
        }),
        ("v6 addr", |i| {
            FlowKey::v6(
                Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i) << 64),
                Ipv6Addr::LOCALHOST,
                1,
                2,
                IpProtocol::UDP,
            )
        }),
    ];
    let n = 1u32 << 16;
    for seed in 0..3 {
        let tb: FlowTable<()> =
            FlowTable::with_seed(4096 * SLOTS * MAX_LOAD_PERCENT / 100, FlowTimeouts::default(), seed);
        assert_eq!(tb.bucket_count(), 4096);
        for (what, key) in families {
            let mut per_bucket = vec![0u32; 4096];
            let mut sigs = vec![false; 1 << 16];
            for i in 0..n {
                let p = tb.place_of(&key(i));
                per_bucket[p.prim] += 1;
                sigs[usize::from(p.sig)] = true;
            }
            // 16 keys per bucket on average: Poisson(16) stays under 40 with overwhelming odds.
            let max = per_bucket.iter().max().copied().unwrap_or(0);
            assert!(max < 40, "{what}, seed {seed}: a bucket got {max} keys (mean 16)");
            // 65536 draws of 65535 signatures: about 63 % distinct.
            let distinct = sigs.iter().filter(|&&s| s).count();
            assert!((39_000..43_500).contains(&distinct), "{what}, seed {seed}: {distinct} distinct signatures");
        }
    }
}
