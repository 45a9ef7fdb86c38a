//! A reference model of [`FlowTable`] and a checker that applies each operation to the table
//! and to the model and compares them. Used by the property tests (`cfg(test)`) and by the
//! `flow_ops` fuzz target (feature `flow-model`); not part of the engine's API.
//!
//! The model is a set of `HashMap`s with no hashing, buckets or sweep of its own; it predicts
//! everything the table's contract fixes and checks the rest against the contract:
//!
//! * lookups, burst lookups, `get`, `key`, `class`, `remove`, `try_remove` and every counter
//!   but `displaced` are predicted exactly (the model keeps its own counts);
//! * an insert may be refused only when the model holds `capacity` entries, or when the new
//!   key and the linked entries admit no placement at all (an exact bipartite matching), or
//!   when the keys' bucket graph is too large for the bounded displacement search to be
//!   exhaustive (counted in [`Checker::bounded_refusals`]);
//! * an entry the insert reclaimed must have been past its timeout and in the new key's
//!   buckets; `expire` must hand back only entries past their timeout (strictly), all reclaimed
//!   ones at once, and any entry that has been eligible for a full sweep (`capacity` examined
//!   slots);
//! * after every operation, the buckets are recomputed from the entries (each linked entry in
//!   exactly one slot of one of its two buckets, with its signature; alternative bits and
//!   overflow counts exact).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::bucket::SLOTS;
use super::timeout::TICK_SHIFT;
use super::{FlowIx, FlowKey, FlowTable, FlowTimeouts, InsertError, TimeoutClass, CUCKOO_NODES};
use crate::time::Instant;
use crate::wire::IpProtocol;

/// Distinct keys the operations pick from (by number, see [`key`]).
pub const KEYS: u16 = 512;

/// Key number `i` (mod [`KEYS`]): v4 flows, their reverse directions, v6 flows and v6 flows
/// whose addresses are the v4-mapped forms of the first group (same address bytes, other
/// family).
pub fn key(i: u16) -> FlowKey {
    let i = i % KEYS;
    let n = i / 4;
    let a = Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8);
    let b = Ipv4Addr::new(198, 18, 0, 1);
    let port = 1000 + n;
    match i % 4 {
        0 => FlowKey::v4(a, b, port, 80, IpProtocol::TCP),
        1 => FlowKey::v4(b, a, 80, port, IpProtocol::TCP),
        2 => {
            FlowKey::v6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n), Ipv6Addr::LOCALHOST, port, 53, IpProtocol::UDP)
        }
        _ => FlowKey::v6(a.to_ipv6_mapped(), b.to_ipv6_mapped(), port, 80, IpProtocol::TCP),
    }
}

/// Short timeouts, all different, so that a test sees every class expire.
pub fn timeouts() -> FlowTimeouts {
    FlowTimeouts {
        half_open: Duration::from_millis(50),
        established: Duration::from_millis(400),
        closing: Duration::from_millis(20),
        udp: Duration::from_millis(100),
        other: Duration::from_millis(200),
    }
}

/// One operation on the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert key number `key` in `class`.
    Insert { key: u16, class: TimeoutClass },
    /// Look the key up.
    Lookup { key: u16 },
    /// Look the keys up in one burst.
    Burst { keys: Vec<u16> },
    /// Remove the key's entry, if the model has it.
    Remove { key: u16 },
    /// `try_remove` of index `ix % capacity`, in use or not.
    RemoveIx { ix: u32 },
    /// Touch the key's entry, if any.
    Touch { key: u16 },
    /// Change the class of the key's entry, if any.
    SetClass { key: u16, class: TimeoutClass },
    /// Change the value of the key's entry through `get_mut`, if any.
    Bump { key: u16 },
    /// Advance the clock.
    Advance { us: u32 },
    /// Expire with budget `budget % (2 × capacity) + 1`.
    Expire { budget: u16 },
}

impl Op {
    /// Decodes one operation from the front of `bytes` (fuzzing); `None` when they run out.
    pub fn decode(bytes: &mut &[u8]) -> Option<Op> {
        let (&tag, rest) = bytes.split_first()?;
        *bytes = rest;
        let mut u16_ = || -> Option<u16> {
            let (v, rest) = bytes.split_first_chunk::<2>()?;
            *bytes = rest;
            Some(u16::from_le_bytes(*v))
        };
        let class = |v: u16| TimeoutClass::ALL[usize::from(v >> 12) % TimeoutClass::COUNT];
        Some(match tag % 10 {
            0 => {
                let v = u16_()?;
                Op::Insert { key: v, class: class(v) }
            }
            1 => Op::Lookup { key: u16_()? },
            2 => {
                let n = u16_()? % 80;
                Op::Burst { keys: (0..n).map(|_| u16_()).collect::<Option<Vec<u16>>>()? }
            }
            3 => Op::Remove { key: u16_()? },
            4 => Op::RemoveIx { ix: u32::from(u16_()?) },
            5 => Op::Touch { key: u16_()? },
            6 => {
                let v = u16_()?;
                Op::SetClass { key: v, class: class(v) }
            }
            7 => Op::Bump { key: u16_()? },
            8 => Op::Advance { us: u32::from(u16_()?) * 4 },
            _ => Op::Expire { budget: u16_()? },
        })
    }
}

/// Values stored in the checked table: (unique id of the insert, bump count).
type Val = (u64, u64);

#[derive(Debug)]
struct Flow {
    key: FlowKey,
    ix: FlowIx,
    class: TimeoutClass,
    last_seen: Instant,
    /// Findable (false once an insert reclaimed it).
    linked: bool,
    bumps: u64,
    /// Slots swept before the first `expire` call that found it eligible (idle for its
    /// timeout + 2 ticks), continuously since; reset by touch and class changes.
    eligible_since: Option<u64>,
}

/// The table under test, its model, and the model's own counts.
#[derive(Debug)]
pub struct Checker {
    table: FlowTable<Val>,
    timeouts: FlowTimeouts,
    /// By insert id.
    flows: HashMap<u64, Flow>,
    /// Linked flows by key.
    linked: HashMap<FlowKey, u64>,
    /// All flows by index.
    by_ix: HashMap<FlowIx, u64>,
    now: Instant,
    next_id: u64,
    /// Entry slots examined by all `expire` calls.
    swept: u64,
    out: Vec<(FlowKey, Val)>,
    expect: super::FlowCounters,
    bounded_refusals: u64,
}

impl Checker {
    /// A table of `capacity` flows keeping the hash bits in `mask`, with [`timeouts`], its
    /// clock starting at tick `start_tick` (close to 2^32 to cross the tick wrap).
    pub fn new(capacity: usize, mask: u64, seed: u64, start_tick: u32) -> Checker {
        let capacity = capacity.max(1);
        Checker {
            table: FlowTable::with_hash_mask(capacity, timeouts(), seed, mask),
            timeouts: timeouts(),
            flows: HashMap::new(),
            linked: HashMap::new(),
            by_ix: HashMap::new(),
            now: Instant::from_nanos(u64::from(start_tick) << TICK_SHIFT),
            next_id: 0,
            swept: 0,
            out: Vec::with_capacity(3 * capacity),
            expect: super::FlowCounters::default(),
            bounded_refusals: 0,
        }
    }

    /// The table (for extra checks).
    pub fn table(&self) -> &FlowTable<Val> {
        &self.table
    }

    /// Inserts refused only because the displacement search is bounded (allowed; see module).
    pub fn bounded_refusals(&self) -> u64 {
        self.bounded_refusals
    }

    /// Applies `op` to the table and the model and checks the table against the model.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Insert { key: k, class } => self.insert(key(*k), *class),
            Op::Lookup { key: k } => {
                let k = key(*k);
                let want = self.linked_ix(&k);
                self.count_lookup(want.is_some());
                assert_eq!(self.table.lookup(&k), want, "lookup {k}");
            }
            Op::Burst { keys } => {
                let keys: Vec<FlowKey> = keys.iter().map(|&k| key(k)).collect();
                let want: Vec<Option<FlowIx>> = keys.iter().map(|k| self.linked_ix(k)).collect();
                want.iter().for_each(|w| self.count_lookup(w.is_some()));
                let mut got = vec![None; keys.len()];
                self.table.lookup_burst(&keys, &mut got);
                assert_eq!(got, want, "lookup_burst");
            }
            Op::Remove { key: k } => {
                let k = key(*k);
                if let Some(id) = self.linked.get(&k).copied() {
                    let ix = self.flows[&id].ix;
                    let got = self.table.remove(ix);
                    let f = self.forget(id);
                    assert_eq!(got, (k, (id, f.bumps)), "remove {k}");
                    self.expect.removed += 1;
                }
            }
            Op::RemoveIx { ix } => self.remove_ix(FlowIx(*ix % self.table.capacity() as u32)),
            Op::Touch { key: k } => {
                let now = self.now;
                if let Some(f) = self.linked_flow(key(*k)) {
                    let ix = f.ix;
                    (f.last_seen, f.eligible_since) = (now, None);
                    self.table.touch(ix, now);
                    assert!(self.table.idle(ix, now).unwrap() < Duration::from_nanos(1 << TICK_SHIFT));
                }
            }
            Op::SetClass { key: k, class } => {
                if let Some(f) = self.linked_flow(key(*k)) {
                    let ix = f.ix;
                    (f.class, f.eligible_since) = (*class, None);
                    self.table.set_class(ix, *class);
                    assert_eq!(self.table.class(ix), Some(*class));
                }
            }
            Op::Bump { key: k } => {
                if let Some(f) = self.linked_flow(key(*k)) {
                    f.bumps += 1;
                    let (ix, bumps) = (f.ix, f.bumps);
                    self.table.get_mut(ix).expect("linked entry is in use").1 += 1;
                    assert_eq!(self.table.get(ix).map(|v| v.1), Some(bumps));
                }
            }
            Op::Advance { us } => self.now += Duration::from_micros(u64::from(*us)),
            Op::Expire { budget } => self.expire(usize::from(*budget) % (2 * self.table.capacity()) + 1),
        }
        self.check_counters();
        self.table.check_buckets();
    }

    /// Checks every entry of the table against the model, and every model flow against the
    /// table.
    pub fn check_all(&self) {
        assert_eq!(self.table.len(), self.flows.len());
        for (ix, k, v) in self.table.iter() {
            let f = &self.flows[&v.0];
            assert_eq!((f.ix, f.key, f.bumps), (ix, *k, v.1));
            assert_eq!(self.table.class(ix), Some(f.class));
            // A reclaimed entry is not findable; its key may have a new, linked entry.
            assert_eq!(self.table.find(k), self.linked_ix(k), "find {k}");
            assert_eq!(self.linked_ix(k) == Some(ix), f.linked);
        }
        assert_eq!(self.table.pending_reclaimed(), self.flows.values().filter(|f| !f.linked).count());
    }

    fn linked_ix(&self, k: &FlowKey) -> Option<FlowIx> {
        self.linked.get(k).map(|id| self.flows[id].ix)
    }

    fn linked_flow(&mut self, k: FlowKey) -> Option<&mut Flow> {
        let id = *self.linked.get(&k)?;
        self.flows.get_mut(&id)
    }

    fn count_lookup(&mut self, hit: bool) {
        self.expect.lookups += 1;
        self.expect.hits += u64::from(hit);
        self.expect.misses += u64::from(!hit);
    }

    fn forget(&mut self, id: u64) -> Flow {
        let f = self.flows.remove(&id).expect("model flow");
        if f.linked {
            self.linked.remove(&f.key);
        }
        self.by_ix.remove(&f.ix);
        f
    }

    fn timeout(&self, class: TimeoutClass) -> Option<Duration> {
        self.timeouts.get(class)
    }

    fn insert(&mut self, k: FlowKey, class: TimeoutClass) {
        let id = self.next_id;
        self.next_id += 1;
        let before = self.table.counters();
        let got = self.table.insert(k, (id, 0), class, self.now);
        let reclaimed = self.table.counters().reclaimed - before.reclaimed;
        if let Some(ix) = self.linked_ix(&k) {
            assert_eq!(got, Err(InsertError::Exists(ix)), "insert of present {k}");
            self.expect.exists += 1;
            return;
        }
        match got {
            Ok(ix) => {
                assert!(self.flows.len() < self.table.capacity(), "insert beyond capacity");
                assert!(!self.by_ix.contains_key(&ix), "insert reused {ix:?}, still in use");
                self.reconcile_reclaims(&k, reclaimed);
                let flow =
                    Flow { key: k, ix, class, last_seen: self.now, linked: true, bumps: 0, eligible_since: None };
                self.flows.insert(id, flow);
                self.linked.insert(k, id);
                self.by_ix.insert(ix, id);
                self.expect.inserts += 1;
            }
            Err(InsertError::Full) => {
                assert_eq!(reclaimed, 0, "refused insert reclaimed entries");
                self.expect.full += 1;
                if self.flows.len() < self.table.capacity() {
                    self.expect.full_buckets += 1;
                    self.check_refusal(&k);
                }
            }
            Err(e) => panic!("insert {k}: {e} but the model has no such key"),
        }
    }

    /// After an insert: every linked flow the table no longer finds was reclaimed, which is
    /// allowed only for an entry past its timeout in one of the new key's buckets.
    fn reconcile_reclaims(&mut self, new: &FlowKey, reclaimed: u64) {
        let buckets = self.table.place_of(new);
        let lost: Vec<u64> =
            self.linked.iter().filter(|(k, _)| self.table.find(k).is_none()).map(|(_, &id)| id).collect();
        assert_eq!(lost.len() as u64, reclaimed, "reclaimed counter vs entries that vanished");
        for id in lost {
            let f = self.flows.get_mut(&id).expect("model flow");
            let timeout = self.timeouts.get(f.class).unwrap_or_else(|| panic!("permanent {} reclaimed", f.key));
            assert!(self.now - f.last_seen > timeout, "{} reclaimed before its timeout", f.key);
            let p = self.table.place_of(&f.key);
            let near = [p.prim, p.alt].iter().any(|b| [buckets.prim, buckets.alt].contains(b));
            assert!(near, "{} reclaimed outside the new key's buckets", f.key);
            assert_eq!(self.table.get(f.ix).map(|v| v.0), Some(id), "reclaimed entry keeps its value");
            f.linked = false;
            self.linked.remove(&f.key);
            self.expect.reclaimed += 1;
        }
    }

    /// An insert refused with free entries: allowed when no placement of the linked entries
    /// plus the new key exists, or when the displacement search could not be exhaustive.
    fn check_refusal(&mut self, new: &FlowKey) {
        let pair = |k: &FlowKey| {
            let p = self.table.place_of(k);
            [p.prim, p.alt]
        };
        let mut pairs: Vec<[usize; 2]> = self.linked.keys().map(pair).collect();
        pairs.push(pair(new));
        let component = component_size(&pairs, pairs.len() - 1);
        if component > CUCKOO_NODES {
            self.bounded_refusals += 1;
        } else {
            assert!(!placement_exists(&pairs), "insert of {new} refused but a placement exists");
        }
    }

    fn remove_ix(&mut self, ix: FlowIx) {
        let got = self.table.try_remove(ix);
        match self.by_ix.get(&ix).copied() {
            Some(id) => {
                let f = self.forget(id);
                assert_eq!(got, Some((f.key, (id, f.bumps))), "try_remove {ix:?}");
                self.expect.removed += 1;
            }
            None => assert_eq!(got, None, "try_remove of unused {ix:?}"),
        }
    }

    fn expire(&mut self, budget: usize) {
        let cap = self.table.capacity();
        let eligible_after = |t: Duration| t + Duration::from_nanos(2 << TICK_SHIFT);
        let now = self.now;
        let swept = self.swept;
        for f in self.flows.values_mut().filter(|f| f.linked) {
            let eligible = self.timeouts.get(f.class).is_some_and(|t| now - f.last_seen >= eligible_after(t));
            if eligible && f.eligible_since.is_none() {
                f.eligible_since = Some(swept);
            }
        }
        self.out.clear();
        let spare = self.out.capacity();
        let n = self.table.expire(now, budget, &mut self.out);
        assert_eq!(self.out.capacity(), spare, "expire grew the output vector");
        assert_eq!(n, self.out.len());
        self.swept += budget.min(cap) as u64;
        let out = std::mem::take(&mut self.out);
        for (k, (id, bumps)) in &out {
            let f = self.forget(*id);
            assert_eq!((f.key, f.bumps), (*k, *bumps), "expired entry's contents");
            if f.linked {
                let t = self.timeout(f.class).unwrap_or_else(|| panic!("permanent {k} expired"));
                assert!(now - f.last_seen > t, "{k} expired after {:?} idle, timeout {t:?}", now - f.last_seen);
            }
            self.expect.expired += 1;
        }
        self.out = out;
        assert!(self.flows.values().all(|f| f.linked), "a reclaimed entry was not handed back");
        for f in self.flows.values() {
            if let Some(s) = f.eligible_since {
                assert!(self.swept - s < cap as u64, "{} eligible for a full sweep and still there", f.key);
            }
        }
    }

    fn check_counters(&self) {
        let got = self.table.counters();
        let want = super::FlowCounters { displaced: got.displaced, len: self.flows.len() as u64, ..self.expect };
        assert_eq!(got, want, "counters (table vs model)");
        assert_eq!(got.lookups, got.hits + got.misses);
        assert_eq!(got.inserts, got.len + got.removed + got.expired);
    }
}

/// Buckets connected to the buckets of `pairs[root]` when each pair is an edge.
fn component_size(pairs: &[[usize; 2]], root: usize) -> usize {
    let mut seen: HashSet<usize> = pairs[root].into_iter().collect();
    loop {
        let before = seen.len();
        for p in pairs {
            if seen.contains(&p[0]) || seen.contains(&p[1]) {
                seen.extend(p);
            }
        }
        if seen.len() == before {
            return seen.len();
        }
    }
}

/// Whether every item can sit in one of its two buckets with at most [`SLOTS`] per bucket
/// (augmenting paths, as for bipartite matching).
fn placement_exists(pairs: &[[usize; 2]]) -> bool {
    fn place(
        i: usize,
        pairs: &[[usize; 2]],
        members: &mut HashMap<usize, Vec<usize>>,
        seen: &mut HashSet<usize>,
    ) -> bool {
        for b in pairs[i] {
            if !seen.insert(b) {
                continue;
            }
            let m = members.entry(b).or_default();
            if m.len() < SLOTS {
                m.push(i);
                return true;
            }
            for j in m.clone() {
                if place(j, pairs, members, seen) {
                    let m = members.get_mut(&b).expect("bucket");
                    m.retain(|&x| x != j);
                    m.push(i);
                    return true;
                }
            }
        }
        false
    }
    let mut members = HashMap::new();
    (0..pairs.len()).all(|i| place(i, pairs, &mut members, &mut HashSet::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_oracle() {
        // 17 items that all want buckets 0 or 1: 16 fit, 17 do not.
        assert!(placement_exists(&[[0, 1]; 16]));
        assert!(!placement_exists(&[[0, 1]; 17]));
        // A chain: 8 in {0,1} + 8 in {1,2} + 8 in {2,3} + 9 in {0,3}: 33 items, 32 slots.
        let mut p = vec![[0, 1]; 8];
        p.extend([[1, 2]; 8]);
        p.extend([[2, 3]; 8]);
        p.extend([[0, 3]; 8]);
        assert!(placement_exists(&p));
        p.push([0, 3]);
        assert!(!placement_exists(&p));
        // Needs a move: bucket 0 is full of items that can go to 5.
        let mut p = vec![[0, 5]; 8];
        p.push([0, 0]);
        assert!(placement_exists(&p));
        assert_eq!(component_size(&[[0, 1], [1, 2], [7, 8]], 0), 3);
    }
}
