//! The per-lcore flow table: fixed-capacity, allocation-free state per 5-tuple, with timeouts.
//!
//! A [`FlowTable<V>`] maps a [`FlowKey`] (IPv4 or IPv6 5-tuple) to a caller value `V` and keeps,
//! per entry, its last-seen time and a [`TimeoutClass`]. One lcore owns it: no locks, no
//! atomics, counters are plain integers ([`FlowCounters`]). It is sans-I/O: time comes in as an
//! [`Instant`] argument, expired entries go out into a caller-owned `Vec`.
//!
//! # Guarantees
//!
//! * Memory is allocated once, in the constructor, for `capacity` entries; `insert`,
//!   `lookup`, `lookup_burst`, `remove`, `touch` and `expire` never allocate (`expire` pushes
//!   only into the spare capacity of the caller's `Vec`).
//! * A [`FlowIx`] returned by `insert` or a lookup names the same entry until the entry leaves
//!   the table, through [`FlowTable::remove`] or through [`FlowTable::expire`]'s output, and
//!   nowhere else: cuckoo displacement moves bucket slots, never entries, and a live (unexpired)
//!   entry is never evicted. After it leaves, the index is reused by later inserts.
//! * An entry expires no earlier than its class's timeout after its last `touch` (or insert),
//!   and is handed back no later than that timeout + 2.1 ms + one full sweep (below).
//! * Hashing is seeded per table (random by default), so keys cannot be aimed at one bucket
//!   without knowing the seed.
//!
//! # Layout (DPDK `rte_hash`-like: bucketized cuckoo hashing with signatures)
//!
//! * Buckets: a power-of-two array of 64-byte, 64-aligned cache lines, each with 8 slots of a
//!   16-bit signature (high hash bits; 0 = empty) and a 32-bit entry index, a bit per slot
//!   telling whether that entry is in its alternative bucket, and an *overflow count*: how many
//!   entries whose primary is this bucket sit in their alternative. The bucket count is
//!   the smallest power of two that keeps the table ≤ 85 % full at `capacity` entries (so
//!   between 42.5 % and 85 % full when the table is full).
//! * Each key has two candidate buckets: the primary (low hash bits) and the alternative
//!   (primary xor a non-zero function of the signature, so an entry's other bucket is known from
//!   its slot alone and moving it needs no rehash).
//! * Entries (key, value, last-seen tick, class) live in a separate array of `capacity` slots,
//!   each aligned to 64 bytes (one cache line when `size_of::<V>() <= 16`), with a LIFO free
//!   list of indices. The key is stored in full, so a signature match is always confirmed.
//!
//! # Cost
//!
//! * Lookup: one hash (a few ns), the signature compare in at most 2 buckets, and the key
//!   compare in the matching entry (plus one entry per false signature match, ~2.4·10⁻⁴ per
//!   lookup): at most 2 bucket lines + 1 entry line. A hit in its primary bucket (nearly all
//!   of them below ~50 % load) reads 1 bucket line + 1 entry line; a miss reads the
//!   alternative bucket only when the primary's overflow count is not 0, so at low load most
//!   misses (a SYN flood's packets) cost one line. [`FlowTable::lookup_burst`]
//!   does this in stages over up to 64 keys at once (hash all and prefetch their primary
//!   buckets; compare signatures and prefetch the matching entries or the alternative buckets;
//!   the same in the alternatives; compare keys), so the cache misses of a burst overlap.
//! * Insert: the lookup's probe (the key must be new), a free entry, and an empty slot in one of
//!   the two buckets. When both are full: entries in them that are already past their timeout
//!   are *reclaimed* (unlinked at once, handed back by the next `expire`); failing that, a
//!   breadth-first search of at most [`CUCKOO_NODES`] buckets for a chain of moves to an empty
//!   slot (cuckoo displacement). No path: refused ([`InsertError::Full`]).
//! * Remove: a rehash of the stored key and a scan of its 2 buckets.
//! * Expire: at most `budget` entry slots per call (see below).
//!
//! # Expiry
//!
//! [`FlowTable::expire`] examines at most `budget` consecutive entry slots per call, from a
//! cursor that persists across calls and wraps around, and moves the entries it finds past
//! their timeout into the caller's `Vec`. A full sweep therefore takes
//! `ceil(capacity / budget)` calls: with the table at 1 M entries, a budget of 256 per poll
//! loop iteration and 1 µs iterations, a sweep takes about 4 ms. An entry of class `c` expires
//! when more than `timeout(c)` has passed since its last-seen time (kept in ~1.05 ms ticks,
//! see [`timeout`]); [`TimeoutClass::Permanent`] entries never do. Entries reclaimed by an
//! insert are handed back first, by the next `expire` call, whatever its budget.

mod bucket;
mod burst;
mod counters;
mod expire;
mod insert;
mod key;
#[cfg(any(test, feature = "flow-model"))]
pub mod model;
pub mod timeout;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use bucket::{place, Bucket, FlowHasher, Place, SLOTS};
pub use burst::{Probe, STAGE};
pub use counters::FlowCounters;
pub use insert::CUCKOO_NODES;
pub use key::{FlowKey, IpFamily};
pub use timeout::{FlowTimeouts, TimeoutClass};

use crate::time::Instant;
use timeout::tick;

/// Largest capacity a table may have (entry indices are 32-bit).
pub const MAX_CAPACITY: usize = 1 << 31;
/// Highest bucket occupancy the bucket count is sized for, in percent of all slots, when the
/// table holds `capacity` entries.
pub const MAX_LOAD_PERCENT: usize = 85;

/// Index of an entry: stable until the entry leaves the table (see the module docs). Also a
/// dense index in `0..capacity` for side arrays the caller keeps per flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowIx(u32);

impl FlowIx {
    /// The index, in `0..capacity`.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// No room: every entry is in use, or both candidate buckets are full and no displacement
    /// path was found (counted in [`FlowCounters::full`]). The value is dropped.
    Full,
    /// The key is already in the table, at this index (counted in [`FlowCounters::exists`]).
    /// The table is unchanged; the value is dropped.
    Exists(FlowIx),
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::Full => write!(f, "flow table full"),
            InsertError::Exists(ix) => write!(f, "flow already in the table at index {}", ix.0),
        }
    }
}

impl std::error::Error for InsertError {}

/// One flow. Aligned to a cache line so that the key is always within one line.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Entry<V> {
    key: FlowKey,
    /// Last-seen time in ticks (see [`timeout`]).
    last_seen: u32,
    class: TimeoutClass,
    /// In its bucket (findable). False once reclaimed by an insert, until handed back.
    linked: bool,
    value: V,
}

/// A fixed-capacity flow table owned by one lcore. See the [module docs](self).
pub struct FlowTable<V> {
    buckets: Vec<Bucket>,
    bucket_mask: usize,
    entries: Vec<Option<Entry<V>>>,
    /// Free entry indices (a stack: the most recently freed entry is reused first, while its
    /// line may still be cached).
    free: Vec<u32>,
    /// Entries reclaimed by inserts, not yet handed back by `expire`.
    reclaimed: Vec<u32>,
    hasher: FlowHasher,
    timeouts: FlowTimeouts,
    timeout_ticks: [u32; TimeoutClass::COUNT],
    /// Next entry slot the expiry sweep examines.
    cursor: usize,
    counters: FlowCounters,
}

impl<V> fmt::Debug for FlowTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("buckets", &self.buckets.len())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

/// How to build a [`FlowTable`]: everything fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Most entries (1..=[`MAX_CAPACITY`]).
    pub capacity: usize,
    /// Idle timeouts per class.
    pub timeouts: FlowTimeouts,
    /// Hash seed; `None` (the default) draws a random one per table.
    pub seed: Option<u64>,
    /// Hash bits kept: `u64::MAX` (the default). Collision tests keep few bits (e.g.
    /// `0x0001_0000_0000_0003`: one signature, 4 primary buckets) so that many keys share
    /// buckets and signatures; everything must still work, only slower and fuller.
    pub hash_mask: u64,
    /// Ask for transparent huge pages for the bucket and entry arrays (the default: a table of
    /// a million flows spans ~85 MiB, and with 4 KiB pages nearly every random lookup also
    /// misses the TLB). Advisory; ignored where THP is unavailable.
    pub huge_pages: bool,
}

impl FlowTableConfig {
    /// `capacity` entries, default timeouts, random seed, full hash, huge pages.
    pub fn new(capacity: usize) -> FlowTableConfig {
        FlowTableConfig {
            capacity,
            timeouts: FlowTimeouts::default(),
            seed: None,
            hash_mask: u64::MAX,
            huge_pages: true,
        }
    }
}

impl<V> FlowTable<V> {
    /// A table for up to `capacity` flows, with a random hash seed (see [`FlowTableConfig`]).
    ///
    /// Panics if `capacity` is 0 or above [`MAX_CAPACITY`] (configuration validates it first).
    pub fn new(capacity: usize, timeouts: FlowTimeouts) -> FlowTable<V> {
        FlowTable::with_config(&FlowTableConfig { timeouts, ..FlowTableConfig::new(capacity) })
    }

    /// As [`new`](Self::new), with a fixed hash seed (deterministic tests and benchmarks).
    pub fn with_seed(capacity: usize, timeouts: FlowTimeouts, seed: u64) -> FlowTable<V> {
        FlowTable::with_config(&FlowTableConfig { timeouts, seed: Some(seed), ..FlowTableConfig::new(capacity) })
    }

    /// As [`with_seed`](Self::with_seed), keeping only the hash bits in `mask` (collision
    /// tests, see [`FlowTableConfig::hash_mask`]).
    pub fn with_hash_mask(capacity: usize, timeouts: FlowTimeouts, seed: u64, mask: u64) -> FlowTable<V> {
        let c = FlowTableConfig { timeouts, seed: Some(seed), hash_mask: mask, ..FlowTableConfig::new(capacity) };
        FlowTable::with_config(&c)
    }

    /// A table as `config` says: all its memory is allocated here, once.
    ///
    /// Panics if the capacity is 0 or above [`MAX_CAPACITY`].
    pub fn with_config(config: &FlowTableConfig) -> FlowTable<V> {
        let capacity = config.capacity;
        assert!((1..=MAX_CAPACITY).contains(&capacity), "flow table capacity {capacity} not in 1..={MAX_CAPACITY}");
        let nbuckets = bucket_count(capacity);
        let mut buckets = Vec::with_capacity(nbuckets);
        let mut entries = Vec::with_capacity(capacity);
        if config.huge_pages {
            // Before the first write, so that the pages are faulted in huge.
            let advice = nic::sys::advise_hugepages(buckets.spare_capacity_mut())
                .and_then(|()| nic::sys::advise_hugepages(entries.spare_capacity_mut()));
            if let Err(e) = advice {
                tracing::debug!("flow table: no huge pages (madvise: {e})");
            }
        }
        buckets.resize(nbuckets, Bucket::default());
        entries.resize_with(capacity, || None);
        let seed = config.seed.unwrap_or_else(FlowHasher::random_seed);
        FlowTable {
            buckets,
            bucket_mask: nbuckets - 1,
            entries,
            free: (0..capacity as u32).rev().collect(),
            reclaimed: Vec::with_capacity(capacity),
            hasher: FlowHasher::with_seed(seed, config.hash_mask),
            timeouts: config.timeouts,
            timeout_ticks: config.timeouts.ticks(),
            cursor: 0,
            counters: FlowCounters::default(),
        }
    }

    /// Most entries the table holds.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Entries in use (including reclaimed ones not yet handed back by `expire`).
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Whether no entry is in use.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buckets (a power of two).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Bytes allocated for buckets, entries and index lists.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>()
            + self.entries.capacity() * size_of::<Option<Entry<V>>>()
            + (self.free.capacity() + self.reclaimed.capacity()) * size_of::<u32>()
    }

    /// The configured timeouts.
    pub fn timeouts(&self) -> &FlowTimeouts {
        &self.timeouts
    }

    /// A copy of the counters, with `len` filled in.
    pub fn counters(&self) -> FlowCounters {
        FlowCounters { len: self.len() as u64, ..self.counters }
    }

    /// Entries reclaimed by inserts that the next `expire` will hand back.
    pub fn pending_reclaimed(&self) -> usize {
        self.reclaimed.len()
    }

    /// Looks `key` up (counted in the lookup counters).
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<FlowIx> {
        let r = self.find(key);
        self.count_lookups(1, u64::from(r.is_some()));
        r
    }

    /// Looks `key` up without counting it (reports, debugging).
    #[inline]
    pub fn find(&self, key: &FlowKey) -> Option<FlowIx> {
        self.find_at(key, self.place_of(key))
    }

    /// The value of entry `ix`, if it is in use.
    #[inline]
    pub fn get(&self, ix: FlowIx) -> Option<&V> {
        self.entry(ix).map(|e| &e.value)
    }

    /// The value of entry `ix`, mutably, if it is in use.
    #[inline]
    pub fn get_mut(&mut self, ix: FlowIx) -> Option<&mut V> {
        self.entries.get_mut(ix.index())?.as_mut().map(|e| &mut e.value)
    }

    /// The key of entry `ix`, if it is in use.
    #[inline]
    pub fn key(&self, ix: FlowIx) -> Option<&FlowKey> {
        self.entry(ix).map(|e| &e.key)
    }

    /// The timeout class of entry `ix`, if it is in use.
    pub fn class(&self, ix: FlowIx) -> Option<TimeoutClass> {
        self.entry(ix).map(|e| e.class)
    }

    /// How long entry `ix` has been idle at `now` (to within a tick, ~1.05 ms), if in use.
    pub fn idle(&self, ix: FlowIx, now: Instant) -> Option<Duration> {
        self.entry(ix).map(|e| timeout::age(e.last_seen, tick(now)))
    }

    /// Marks entry `ix` as seen at `now` (restarts its timeout).
    ///
    /// Panics if `ix` is not in use (a `FlowIx` kept after its entry left the table: a bug).
    #[inline]
    pub fn touch(&mut self, ix: FlowIx, now: Instant) {
        self.live_mut(ix).last_seen = tick(now);
    }

    /// Moves entry `ix` to timeout class `class` (e.g. `Established` once the handshake
    /// completes); its last-seen time is unchanged.
    ///
    /// Panics if `ix` is not in use.
    #[inline]
    pub fn set_class(&mut self, ix: FlowIx, class: TimeoutClass) {
        self.live_mut(ix).class = class;
    }

    /// Removes entry `ix` and returns its key and value.
    ///
    /// Panics if `ix` is not in use (see [`try_remove`](Self::try_remove)).
    pub fn remove(&mut self, ix: FlowIx) -> (FlowKey, V) {
        match self.try_remove(ix) {
            Some(kv) => kv,
            None => panic!("flow table: remove of entry {} which is not in use", ix.0),
        }
    }

    /// Removes entry `ix` if it is in use and returns its key and value.
    pub fn try_remove(&mut self, ix: FlowIx) -> Option<(FlowKey, V)> {
        let e = self.entry(ix)?;
        if e.linked {
            let key = e.key;
            self.unlink(&key, ix.0);
        } else {
            // Reclaimed, not yet handed back: it leaves through here instead.
            let at = self.reclaimed.iter().position(|&r| r == ix.0).expect("reclaimed entry is listed");
            self.reclaimed.swap_remove(at);
        }
        self.counters.removed += 1;
        Some(self.release(ix.0))
    }

    /// The index of entry slot `i` (in `0..capacity`) if it is in use: for callers that keep
    /// flow indices in side arrays of their own (as `FlowIx::index()` values).
    #[inline]
    pub fn ix(&self, i: usize) -> Option<FlowIx> {
        self.entries.get(i)?.as_ref().map(|_| FlowIx(i as u32))
    }

    /// Every entry in use, in index order (reports, shutdown; not for the packet path).
    pub fn iter(&self) -> impl Iterator<Item = (FlowIx, &FlowKey, &V)> {
        self.entries.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (FlowIx(i as u32), &e.key, &e.value)))
    }

    // ---- internals shared by the submodules ----

    #[inline]
    fn place_of(&self, key: &FlowKey) -> Place {
        place(self.hasher.hash(key), self.bucket_mask)
    }

    #[inline]
    fn entry(&self, ix: FlowIx) -> Option<&Entry<V>> {
        self.entries.get(ix.index())?.as_ref()
    }

    fn live_mut(&mut self, ix: FlowIx) -> &mut Entry<V> {
        match self.entries.get_mut(ix.index()) {
            Some(Some(e)) => e,
            _ => panic!("flow table: entry {} is not in use", ix.0),
        }
    }

    #[inline]
    fn count_lookups(&mut self, n: u64, hits: u64) {
        self.counters.lookups += n;
        self.counters.hits += hits;
        self.counters.misses += n - hits;
    }

    /// Whether entry `ix` (pointed to by a bucket slot) holds `key`.
    #[inline]
    fn holds(&self, ix: u32, key: &FlowKey) -> bool {
        matches!(&self.entries[ix as usize], Some(e) if e.key == *key)
    }

    /// The entry among the slots `m` of bucket `b` that holds `key`.
    #[inline]
    fn find_in(&self, b: usize, mut m: u32, key: &FlowKey) -> Option<FlowIx> {
        let bucket = &self.buckets[b];
        while m != 0 {
            let ix = bucket.ix[m.trailing_zeros() as usize];
            if self.holds(ix, key) {
                return Some(FlowIx(ix));
            }
            m &= m - 1;
        }
        None
    }

    #[inline]
    fn find_at(&self, key: &FlowKey, p: Place) -> Option<FlowIx> {
        self.find_in(p.prim, self.buckets[p.prim].matches(p.sig), key)
            .or_else(|| self.find_in(p.alt, self.alt_matches(p), key))
    }

    /// Signature matches in the alternative bucket of `p`; none without reading it when no
    /// entry of the primary overflowed.
    #[inline]
    fn alt_matches(&self, p: Place) -> u32 {
        if self.buckets[p.prim].overflow == 0 {
            0
        } else {
            self.buckets[p.alt].matches(p.sig)
        }
    }

    /// Puts entry `ix` with signature `sig` in slot `s` of bucket `b`, one of its two buckets,
    /// where `other` is the other one.
    #[inline]
    fn place_entry(&mut self, (b, s): (usize, usize), sig: u16, ix: u32, is_prim: bool, other: usize) {
        self.buckets[b].set(s, sig, ix, !is_prim);
        if !is_prim {
            self.buckets[other].overflow += 1;
        }
    }

    /// Empties slot `s` of bucket `b`, keeping the overflow count of the entry's primary.
    #[inline]
    fn clear_slot(&mut self, b: usize, s: usize) {
        if self.buckets[b].in_alt(s) {
            let prim = bucket::other_bucket(b, self.buckets[b].sig(s), self.bucket_mask);
            self.buckets[prim].overflow -= 1;
        }
        self.buckets[b].clear(s);
    }

    /// Clears the bucket slot that points to entry `ix` (whose key is `key`).
    fn unlink(&mut self, key: &FlowKey, ix: u32) {
        let p = self.place_of(key);
        for b in [p.prim, p.alt] {
            let bucket = &self.buckets[b];
            let mut m = bucket.matches(p.sig);
            while m != 0 {
                let s = m.trailing_zeros() as usize;
                if bucket.ix[s] == ix {
                    self.clear_slot(b, s);
                    return;
                }
                m &= m - 1;
            }
        }
        unreachable!("flow table: entry {ix} ({key}) is in neither of its buckets");
    }

    /// Recomputes every bucket's slots, alternative bits and overflow counts from the entries
    /// and compares (tests: the bucket invariants the lookups rely on).
    #[cfg(any(test, feature = "flow-model"))]
    fn check_buckets(&self) {
        let mut overflow = vec![0u32; self.buckets.len()];
        let mut seen = 0;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for s in 0..SLOTS {
                if bucket.sig(s) == bucket::EMPTY {
                    continue;
                }
                let ix = bucket.ix[s];
                let e = self.entries[ix as usize].as_ref().expect("a slot points to a free entry");
                assert!(e.linked, "a slot points to a reclaimed entry");
                let p = self.place_of(&e.key);
                assert_eq!(bucket.sig(s), p.sig, "slot signature of {}", e.key);
                assert!(b == p.prim || b == p.alt, "{} in bucket {b}, not one of its own", e.key);
                assert_eq!(bucket.in_alt(s), b == p.alt, "alternative bit of {}", e.key);
                overflow[p.prim] += u32::from(b == p.alt);
                seen += 1;
            }
        }
        for (b, bucket) in self.buckets.iter().enumerate() {
            assert_eq!(bucket.overflow, overflow[b], "overflow count of bucket {b}");
        }
        let linked = self.entries.iter().flatten().filter(|e| e.linked).count();
        assert_eq!(seen, linked, "slots vs linked entries");
    }

    /// Frees entry `ix` (already unlinked) and returns its contents.
    fn release(&mut self, ix: u32) -> (FlowKey, V) {
        let e = self.entries[ix as usize].take().expect("released entry is in use");
        self.free.push(ix);
        (e.key, e.value)
    }
}

/// Buckets for `capacity` entries: the smallest power of two (at least 2) with
/// `capacity ≤ MAX_LOAD_PERCENT % of 8 × buckets`.
fn bucket_count(capacity: usize) -> usize {
    (capacity * 100).div_ceil(SLOTS * MAX_LOAD_PERCENT).next_power_of_two().max(2)
}
