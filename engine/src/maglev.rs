//! Maglev consistent hashing: a lookup table that maps a flow hash to a backend, balanced, and
//! disturbed little when backends come and go (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI 2016, §3.4).
//!
//! # What it owns and guarantees
//!
//! [`MaglevTable`] is an immutable table of `M` entries (`M` a prime, default 65537), each the
//! index of a backend in the caller's backend list, or none. Building it allocates and takes
//! milliseconds (a control thread's job); [`MaglevTable::lookup`] is one `hash % M` and one load,
//! with no allocation. Cloning a table clones an [`Arc`], so a control thread builds a new table
//! and hands a clone to each lcore.
//!
//! * **Permutations** (paper §3.4): backend `i` with id `id` gets `offset = h1(id) mod M` and
//!   `skip = h2(id) mod (M - 1) + 1`, and prefers the slots `(offset + j * skip) mod M` for
//!   `j = 0, 1, …`. `M` is prime, so every permutation visits every slot.
//! * **Population** (the paper's pseudocode): round after round, each backend in turn claims its
//!   next preferred slot that is still free, until the table is full. A backend of weight `w`
//!   takes `w` turns per round (weights are first divided by their greatest common divisor, so
//!   `(2, 2)` builds the same table as `(1, 1)`). With equal weights every backend owns
//!   `⌊M/N⌋` or `⌈M/N⌉` entries; with weights, backend `i` owns between `r * w_i` and
//!   `(r + 1) * w_i` entries, `r = ⌊M / Σw⌋`.
//! * **Determinism**: the table depends only on the *set* of `(id, weight)` of the active
//!   backends and on `M`: backends take their turns in ascending id order, not in list order.
//!   The same set in another order, on another machine or in another process, gives a table in
//!   which every slot names the backend with the same id (the stored indices are positions in
//!   each caller's own list). `h1`/`h2` are fixed functions (SplitMix64's finaliser over the id
//!   XOR two constants), not `std`'s randomly keyed hasher, so load balancers that share a
//!   backend list agree on every flow.
//! * **Draining and removal**: only active backends with a non-zero weight enter the table. A
//!   backend that is draining (`active: false`) keeps its position in the list, so the indices
//!   of the others and the entries of the flows already pinned to it (in the caller's flow
//!   table) stay valid; it just gets no new flows. Removing (or adding) a backend moves its own
//!   entries plus a small extra share: measured in the tests at `M = 65537`, at most 0.05 % of
//!   the table for 3 backends, 0.3 % for 10, 0.6 % for 100 and 1000. Maglev trades this for its
//!   balance (the paper, §3.4); a larger `M` reduces it (0.34 % for 1000 backends at 655373).
//!
//! The flow hash given to [`MaglevTable::lookup`] is the caller's (a 5-tuple hash); it should be
//! stable across load balancers too if flows must land on the same backend whichever load
//! balancer sees them.

use core::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The default table size `M`, the paper's small table: a prime comfortably larger than 100 times
/// the backend count of a typical service (the paper's rule for good balance).
pub const DEFAULT_TABLE_SIZE: u32 = 65537;
/// The smallest accepted table size.
pub const MIN_TABLE_SIZE: u32 = DEFAULT_TABLE_SIZE;
/// The largest accepted table size (the largest prime below 2^24: 32 MiB of entries).
pub const MAX_TABLE_SIZE: u32 = 16_777_213;
/// The most backends a table can index (entries are `u16`, and `u16::MAX` means none).
pub const MAX_BACKENDS: usize = u16::MAX as usize;

/// One backend, as the table builder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MaglevBackend {
    /// Stable identity: the same backend must have the same id on every load balancer and across
    /// restarts (see [`MaglevBackend::id_of`]). Ids must be distinct.
    pub id: u64,
    /// Turns per population round; 0 leaves the backend out like `active: false`.
    pub weight: u32,
    /// `false` for a draining (or removed but still listed) backend: it keeps its index but gets
    /// no table entries.
    pub active: bool,
}

impl MaglevBackend {
    /// An active backend of weight 1.
    #[inline]
    pub const fn new(id: u64) -> Self {
        Self { id, weight: 1, active: true }
    }

    /// A stable id for a backend named by its socket address: FNV-1a over the address family, the
    /// address octets and the port (big-endian), then SplitMix64's finaliser. The same on every
    /// machine and in every build.
    pub fn id_of(addr: &SocketAddr) -> u64 {
        const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
        let fnv = |h: u64, bytes: &[u8]| bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME));
        let h = match addr {
            SocketAddr::V4(a) => fnv(fnv(FNV_OFFSET, &[4]), &a.ip().octets()),
            SocketAddr::V6(a) => fnv(fnv(FNV_OFFSET, &[6]), &a.ip().octets()),
        };
        mix64(fnv(h, &addr.port().to_be_bytes()))
    }
}

/// Why a table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaglevError {
    /// The table size is not a prime.
    SizeNotPrime(u32),
    /// The table size is outside `MIN_TABLE_SIZE..=MAX_TABLE_SIZE`.
    SizeOutOfRange(u32),
    /// More than [`MAX_BACKENDS`] backends in the list.
    TooManyBackends(usize),
    /// Two backends in the list share this id.
    DuplicateId(u64),
}

impl fmt::Display for MaglevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SizeNotPrime(m) => write!(f, "Maglev table size {m} is not a prime"),
            Self::SizeOutOfRange(m) => {
                write!(f, "Maglev table size {m} is outside {MIN_TABLE_SIZE}..={MAX_TABLE_SIZE}")
            }
            Self::TooManyBackends(n) => write!(f, "{n} backends, at most {MAX_BACKENDS} fit a Maglev table"),
            Self::DuplicateId(id) => write!(f, "two backends have the id {id:#x}"),
        }
    }
}

impl std::error::Error for MaglevError {}

/// A built Maglev lookup table. Cheap to clone (an [`Arc`]); immutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    entries: Arc<[u16]>,
    backends: usize,
    active: usize,
}

impl MaglevTable {
    /// The entry value of a slot with no backend (only in a table without active backends).
    pub const NO_BACKEND: u16 = u16::MAX;

    /// Builds a table of [`DEFAULT_TABLE_SIZE`] entries (see [`Self::with_size`]).
    pub fn new(backends: &[MaglevBackend]) -> Result<Self, MaglevError> {
        Self::with_size(backends, DEFAULT_TABLE_SIZE)
    }

    /// Builds a table of `size` entries over `backends`; entries hold indices into `backends`.
    /// `size` must be a prime in `MIN_TABLE_SIZE..=MAX_TABLE_SIZE` (the paper also uses 655373).
    ///
    /// Allocates the table and `O(N)` scratch; runs in about `M log M` probes. Errors for a bad
    /// size, more than [`MAX_BACKENDS`] backends, or a repeated id (inactive backends included).
    pub fn with_size(backends: &[MaglevBackend], size: u32) -> Result<Self, MaglevError> {
        if !(MIN_TABLE_SIZE..=MAX_TABLE_SIZE).contains(&size) {
            return Err(MaglevError::SizeOutOfRange(size));
        }
        if !is_prime(size) {
            return Err(MaglevError::SizeNotPrime(size));
        }
        if backends.len() > MAX_BACKENDS {
            return Err(MaglevError::TooManyBackends(backends.len()));
        }
        let mut order: Vec<u16> = (0..backends.len()).map(|i| i as u16).collect();
        order.sort_unstable_by_key(|&i| backends[usize::from(i)].id);
        if let Some(pair) = order.windows(2).find(|w| backends[usize::from(w[0])].id == backends[usize::from(w[1])].id)
        {
            return Err(MaglevError::DuplicateId(backends[usize::from(pair[0])].id));
        }
        order.retain(|&i| backends[usize::from(i)].active && backends[usize::from(i)].weight > 0);
        let entries = populate(backends, &order, size);
        Ok(Self { entries: entries.into(), backends: backends.len(), active: order.len() })
    }

    /// The backend index for a flow hash (`hash mod M`), or `None` if no backend is active.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let slot = (hash % self.entries.len() as u64) as usize;
        match self.entries[slot] {
            Self::NO_BACKEND => None,
            index => Some(usize::from(index)),
        }
    }

    /// The table size `M`.
    #[inline]
    pub fn size(&self) -> usize {
        self.entries.len()
    }

    /// Whether no backend is active (every lookup returns `None`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// How many backends took part (active, non-zero weight).
    #[inline]
    pub fn active_backends(&self) -> usize {
        self.active
    }

    /// The length of the backend list the table was built from (indices are below it).
    #[inline]
    pub fn backend_count(&self) -> usize {
        self.backends
    }

    /// The entries: backend indices, or [`Self::NO_BACKEND`].
    #[inline]
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }

    /// Entries owned by each backend of the list (for metrics: the share of new flows each one
    /// gets). Allocates.
    pub fn entries_per_backend(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.backends];
        for &e in self.entries.iter() {
            if let Some(c) = counts.get_mut(usize::from(e)) {
                *c += 1;
            }
        }
        counts
    }
}

/// SplitMix64's output function (Steele, Lea, Flood, OOPSLA 2014): a bijection on `u64` in which
/// every input bit affects every output bit.
#[inline]
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `h1`: the permutation offset's hash (the constant is the first SHA-512 IV word).
#[inline]
const fn h1(id: u64) -> u64 {
    mix64(id ^ 0x6a09_e667_f3bc_c908)
}

/// `h2`: the permutation skip's hash (the second SHA-512 IV word).
#[inline]
const fn h2(id: u64) -> u64 {
    mix64(id ^ 0xbb67_ae85_84ca_a73b)
}

/// The first slot and the step of a backend's permutation over a table of prime size `m`.
#[inline]
const fn permutation(id: u64, m: u32) -> (u32, u32) {
    let m = m as u64;
    ((h1(id) % m) as u32, (h2(id) % (m - 1) + 1) as u32)
}

/// The paper's population loop over the active backends in `order` (indices into `backends`,
/// ascending id), `weight / gcd` turns each per round.
fn populate(backends: &[MaglevBackend], order: &[u16], size: u32) -> Vec<u16> {
    let mut entries = vec![MaglevTable::NO_BACKEND; size as usize];
    let divisor = order.iter().map(|&i| backends[usize::from(i)].weight).fold(0, gcd);
    if divisor == 0 {
        return entries;
    }
    struct Turns {
        index: u16,
        weight: u32,
        next: u32,
        skip: u32,
    }
    let mut turns: Vec<Turns> = order
        .iter()
        .map(|&index| {
            let b = &backends[usize::from(index)];
            let (next, skip) = permutation(b.id, size);
            Turns { index, weight: b.weight / divisor, next, skip }
        })
        .collect();
    let mut left = size;
    loop {
        for t in &mut turns {
            for _ in 0..t.weight {
                // The permutation visits every slot and one is still free, so this ends.
                while entries[t.next as usize] != MaglevTable::NO_BACKEND {
                    t.next = step(t.next, t.skip, size);
                }
                entries[t.next as usize] = t.index;
                t.next = step(t.next, t.skip, size);
                left -= 1;
                if left == 0 {
                    return entries;
                }
            }
        }
    }
}

/// `(slot + skip) mod m` for `slot, skip < m`.
#[inline]
const fn step(slot: u32, skip: u32, m: u32) -> u32 {
    let next = slot + skip; // < 2^25: no overflow
    if next >= m {
        next - m
    } else {
        next
    }
}

const fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Whether `n` is prime (the table size must be): trial division by 2, 3 and `6k ± 1` up to
/// `√n` (under 700 steps for `n < 2^24`).
pub const fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5u32;
    while d as u64 * d as u64 <= n as u64 {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    const M: u32 = DEFAULT_TABLE_SIZE;

    /// `n` distinct pseudo-random backend ids (a xorshift stream, unrelated to the table's hash).
    fn ids(n: usize, seed: u64) -> Vec<u64> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    }

    fn backends(ids: &[u64]) -> Vec<MaglevBackend> {
        ids.iter().map(|&id| MaglevBackend::new(id)).collect()
    }

    /// The id owning each slot (`None` for an empty slot).
    fn owners(table: &MaglevTable, list: &[MaglevBackend]) -> Vec<Option<u64>> {
        table.entries().iter().map(|&e| list.get(usize::from(e)).map(|b| b.id)).collect()
    }

    fn count(table: &MaglevTable, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &e in table.entries() {
            c[usize::from(e)] += 1;
        }
        c
    }

    /// The paper's pseudocode, written out with an explicit `permutation[i][j]` matrix computed by
    /// multiplication (`(offset + j * skip) mod M`), unweighted, backends in the given order.
    fn reference(ids: &[u64], m: u32) -> Vec<u16> {
        let m64 = u64::from(m);
        let permutation: Vec<Vec<u32>> = ids
            .iter()
            .map(|&id| {
                let (offset, skip) = (h1(id) % m64, h2(id) % (m64 - 1) + 1);
                (0..m64).map(|j| ((offset + j * skip) % m64) as u32).collect()
            })
            .collect();
        let mut next = vec![0usize; ids.len()];
        let mut entry = vec![-1i32; m as usize];
        let mut n = 0;
        loop {
            for i in 0..ids.len() {
                let mut c = permutation[i][next[i]];
                while entry[c as usize] >= 0 {
                    next[i] += 1;
                    c = permutation[i][next[i]];
                }
                entry[c as usize] = i as i32;
                next[i] += 1;
                n += 1;
                if n == m as usize {
                    return entry.into_iter().map(|e| e as u16).collect();
                }
            }
        }
    }

    #[test]
    fn matches_the_papers_pseudocode() {
        for n in [1, 2, 3, 10, 37] {
            let mut sorted = ids(n, 0xfeed + n as u64);
            sorted.sort_unstable();
            let table = MaglevTable::new(&backends(&sorted)).unwrap();
            assert_eq!(table.entries(), &reference(&sorted, M)[..], "{n} backends");
        }
    }

    #[test]
    fn mixer_is_splitmix64() {
        // SplitMix64 seeded with 0: its first output is mix64(0x9e3779b97f4a7c15) (published
        // reference value of the generator).
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
    }

    /// (a) Every backend owns ⌊M/N⌋ or ⌈M/N⌉ entries: far inside the paper's 1 %.
    #[test]
    fn equal_weights_balance_to_one_entry() {
        for n in [1, 3, 10, 100, 1000] {
            let list = backends(&ids(n, 7 * n as u64));
            let table = MaglevTable::new(&list).unwrap();
            let c = count(&table, n);
            let (lo, hi) = (*c.iter().min().unwrap(), *c.iter().max().unwrap());
            assert!(hi - lo <= 1, "{n} backends: {lo}..={hi}");
            assert_eq!(c.iter().sum::<usize>(), M as usize);
            assert_eq!(table.entries_per_backend().iter().map(|&x| x as usize).collect::<Vec<_>>(), c);
            assert!(lo as f64 >= M as f64 / n as f64 * 0.99, "{n} backends: {lo}");
        }
    }

    /// (a) With weights, backend `i` owns between `r * w_i` and `(r + 1) * w_i` entries,
    /// `r = ⌊M / Σw⌋` (weights after dividing by their gcd).
    #[test]
    fn weights_give_proportional_shares() {
        for weights in [vec![1u32, 2, 3], vec![10, 10, 30, 50], vec![4, 6], vec![1, 1, 1, 97]] {
            let ids = ids(weights.len(), 99);
            let list: Vec<_> =
                ids.iter().zip(&weights).map(|(&id, &weight)| MaglevBackend { id, weight, active: true }).collect();
            let table = MaglevTable::new(&list).unwrap();
            let g = weights.iter().copied().fold(0, gcd);
            let total: u32 = weights.iter().map(|w| w / g).sum();
            let r = M / total;
            for (i, c) in count(&table, list.len()).into_iter().enumerate() {
                let w = weights[i] / g;
                assert!((r * w..=(r + 1) * w).contains(&(c as u32)), "weights {weights:?}: backend {i} has {c}");
            }
        }
        // Scaling every weight changes nothing.
        let ids = ids(5, 3);
        let with = |w: u32| ids.iter().map(|&id| MaglevBackend { id, weight: w, active: true }).collect::<Vec<_>>();
        assert_eq!(MaglevTable::new(&with(1)).unwrap(), MaglevTable::new(&with(6)).unwrap());
    }

    /// Fraction of slots whose owner differs, and the fraction the theory forces to move.
    fn disruption(before: &[Option<u64>], after: &[Option<u64>], moved_id: u64) -> (f64, f64) {
        let changed = before.iter().zip(after).filter(|(a, b)| a != b).count();
        let forced = before.iter().zip(after).filter(|(a, b)| **a == Some(moved_id) || **b == Some(moved_id)).count();
        // Every slot of the removed (or added) backend must have changed.
        assert!(changed >= forced);
        let m = before.len() as f64;
        (changed as f64 / m, forced as f64 / m)
    }

    /// Extra disruption allowed beyond the theoretical minimum, as a fraction of the table.
    /// Measured over the cases below (M = 65537, two id sets each): extra 0.01-0.05 % for N = 3,
    /// 0.2-0.3 % for N = 10, 0.5-0.6 % for N = 100 and N = 1000 (where it is ~6x the forced 0.1 %:
    /// M/N = 65 is below the paper's advice of M >= 100 N; see `larger_table_disrupts_less`).
    const EXTRA: f64 = 0.01;

    /// (b) Removing one of N backends (marking it draining, or dropping it from the list) moves
    /// its own 1/N of the table and at most `EXTRA` more; adding one likewise.
    #[test]
    fn removing_or_adding_one_backend_moves_little() {
        for n in [3usize, 10, 100, 1000] {
            for seed in [1u64, 2] {
                let ids = ids(n + 1, seed * 1000 + n as u64);
                let (present, newcomer) = (&ids[..n], ids[n]);
                let list = backends(present);
                let before = owners(&MaglevTable::new(&list).unwrap(), &list);

                let victim = list[n / 2].id;
                let mut draining = list.clone();
                draining[n / 2].active = false;
                let t = MaglevTable::new(&draining).unwrap();
                assert!(t.entries().iter().all(|&e| usize::from(e) != n / 2));
                let after = owners(&t, &draining);
                let (changed, forced) = disruption(&before, &after, victim);
                assert!(changed <= 1.0 / n as f64 + EXTRA, "N={n} remove: {changed:.4} (forced {forced:.4})");
                // Dropping it from the list instead gives the same owners (only indices shift).
                let shorter: Vec<_> = list.iter().copied().filter(|b| b.id != victim).collect();
                assert_eq!(owners(&MaglevTable::new(&shorter).unwrap(), &shorter), after);

                let mut longer = list.clone();
                longer.push(MaglevBackend::new(newcomer));
                let after = owners(&MaglevTable::new(&longer).unwrap(), &longer);
                let (changed, forced) = disruption(&before, &after, newcomer);
                assert!(changed <= 1.0 / (n + 1) as f64 + EXTRA, "N={n} add: {changed:.4} (forced {forced:.4})");
            }
        }
    }

    /// The paper's remedy for large N: a larger table. With N = 1000 the extra disruption of
    /// removing one backend was 0.48-0.59 % of the table at M = 65537 (M/N = 65) and 0.32-0.34 %
    /// at M = 655373 (M/N = 655) in our runs; the test asserts a reduction of at least 20 %.
    #[test]
    fn larger_table_disrupts_less() {
        for seed in [77u64, 80] {
            let ids = ids(1000, seed);
            let list = backends(&ids);
            let mut draining = list.clone();
            draining[500].active = false;
            let extra = |m: u32| {
                let before = owners(&MaglevTable::with_size(&list, m).unwrap(), &list);
                let after = owners(&MaglevTable::with_size(&draining, m).unwrap(), &draining);
                let (changed, forced) = disruption(&before, &after, ids[500]);
                changed - forced
            };
            let (small, large) = (extra(65537), extra(655373));
            assert!(large < 0.8 * small, "extra {small:.4} at M=65537, {large:.4} at M=655373");
        }
    }

    /// (c) The table depends on the set, not the order: every slot names the same backend id.
    #[test]
    fn order_of_the_list_does_not_matter() {
        let ids = ids(50, 5);
        let list = backends(&ids);
        let reference = owners(&MaglevTable::new(&list).unwrap(), &list);
        let mut reversed = list.clone();
        reversed.reverse();
        assert_eq!(owners(&MaglevTable::new(&reversed).unwrap(), &reversed), reference);
        let mut rotated = list.clone();
        rotated.rotate_left(17);
        rotated[3].weight = 1;
        assert_eq!(owners(&MaglevTable::new(&rotated).unwrap(), &rotated), reference);
        // The stored indices differ (they are positions in each list).
        assert_ne!(MaglevTable::new(&reversed).unwrap().entries(), MaglevTable::new(&list).unwrap().entries());
    }

    /// (d) Sizes: primes in range accepted, everything else rejected with the right error;
    /// `is_prime` agrees with a sieve.
    #[test]
    fn table_size_is_validated() {
        const LIMIT: usize = 700_000;
        let mut sieve = vec![true; LIMIT];
        sieve[0] = false;
        sieve[1] = false;
        for i in 2..LIMIT {
            if sieve[i] {
                for j in (i * i..LIMIT).step_by(i) {
                    sieve[j] = false;
                }
            }
        }
        for (n, &prime) in sieve.iter().enumerate() {
            assert_eq!(is_prime(n as u32), prime, "{n}");
        }
        assert!(is_prime(MAX_TABLE_SIZE) && !(MAX_TABLE_SIZE + 1..1 << 24).any(is_prime));
        let one = [MaglevBackend::new(1)];
        for size in [65537, 65539, 655373] {
            let t = MaglevTable::with_size(&one, size).unwrap();
            assert_eq!(t.size(), size as usize);
            assert!(t.entries().iter().all(|&e| e == 0));
        }
        assert_eq!(MaglevTable::with_size(&one, 65541), Err(MaglevError::SizeNotPrime(65541)));
        assert_eq!(MaglevTable::with_size(&one, 655371), Err(MaglevError::SizeNotPrime(655371)));
        assert_eq!(MaglevTable::with_size(&one, 65521), Err(MaglevError::SizeOutOfRange(65521)));
        assert_eq!(MaglevTable::with_size(&one, 0), Err(MaglevError::SizeOutOfRange(0)));
        assert_eq!(MaglevTable::with_size(&one, 16_777_259), Err(MaglevError::SizeOutOfRange(16_777_259)));
        assert!(MaglevError::SizeNotPrime(65541).to_string().contains("not a prime"));
    }

    /// (e) No active backend: every slot empty, every lookup `None`.
    #[test]
    fn no_active_backend_means_no_backend() {
        let mut list = backends(&ids(4, 11));
        for t in [MaglevTable::new(&[]).unwrap(), MaglevTable::new(&list).unwrap()] {
            assert_eq!(t.size(), M as usize);
            assert_eq!(t.is_empty(), t.backend_count() == 0);
        }
        list[0].active = false;
        list[1].active = false;
        list[2].weight = 0;
        list[3].active = false;
        let t = MaglevTable::new(&list).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.active_backends(), 0);
        assert!(t.entries().iter().all(|&e| e == MaglevTable::NO_BACKEND));
        assert!((0..10_000u64).map(|h| h.wrapping_mul(0x9e37_79b9_7f4a_7c15)).all(|h| t.lookup(h).is_none()));
        assert_eq!(t.entries_per_backend(), vec![0; 4]);
        // One of them back: it owns the whole table.
        list[2].weight = 3;
        let t = MaglevTable::new(&list).unwrap();
        assert_eq!(t.lookup(12345), Some(2));
        assert_eq!(t.entries_per_backend(), vec![0, 0, M, 0]);
    }

    #[test]
    fn bad_lists_are_rejected() {
        let list = [MaglevBackend::new(5), MaglevBackend { id: 9, weight: 1, active: false }, MaglevBackend::new(9)];
        assert_eq!(MaglevTable::new(&list), Err(MaglevError::DuplicateId(9)));
        let many = vec![MaglevBackend::new(0); MAX_BACKENDS + 1];
        assert_eq!(MaglevTable::new(&many), Err(MaglevError::TooManyBackends(MAX_BACKENDS + 1)));
    }

    #[test]
    fn lookup_is_hash_mod_m_and_clones_share() {
        let list = backends(&ids(7, 21));
        let t = MaglevTable::new(&list).unwrap();
        for h in [0u64, 1, 65536, 65537, 65538, u64::MAX, 0x1234_5678_9abc_def0] {
            assert_eq!(t.lookup(h), Some(usize::from(t.entries()[(h % u64::from(M)) as usize])));
        }
        let shared = t.clone();
        assert!(core::ptr::eq(shared.entries().as_ptr(), t.entries().as_ptr()));
    }

    #[test]
    fn ids_of_socket_addresses_are_stable_and_distinct() {
        let a = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80));
        let b = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 81));
        let c = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 80, 0, 0));
        let ids = [MaglevBackend::id_of(&a), MaglevBackend::id_of(&b), MaglevBackend::id_of(&c)];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(MaglevBackend::id_of(&a), ids[0]);
        // The same address in another process: FNV-1a and SplitMix64 are fixed functions. The
        // value is FNV-1a-64 of [4, 198, 18, 0, 1, 0, 80] (computed independently, in Python: 0x35205bd695e0b11c)
        // passed through mix64.
        assert_eq!(ids[0], mix64(0x3520_5bd6_95e0_b11c));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        /// Random small lists with random weights and states: the table only names active
        /// backends of non-zero weight, each of them at least once, and lookups agree.
        #[test]
        fn only_active_backends_own_entries(
            specs in proptest::collection::vec((any::<u64>(), 0u32..5, any::<bool>()), 0..12),
        ) {
            let mut list: Vec<MaglevBackend> = Vec::new();
            for (id, weight, active) in specs {
                if list.iter().all(|b| b.id != id) {
                    list.push(MaglevBackend { id, weight, active });
                }
            }
            let t = MaglevTable::new(&list).unwrap();
            let live: Vec<usize> = (0..list.len()).filter(|&i| list[i].active && list[i].weight > 0).collect();
            prop_assert_eq!(t.active_backends(), live.len());
            let per = t.entries_per_backend();
            for (i, &c) in per.iter().enumerate() {
                prop_assert_eq!(c > 0, live.contains(&i), "backend {} owns {}", i, c);
            }
            prop_assert_eq!(t.is_empty(), live.is_empty());
        }
    }
}
