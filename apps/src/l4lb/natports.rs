//! Source ports for NAT: which (SNAT address, port) pairs a shard hands out towards each
//! backend, and the reverse map from a reply to its flow.
//!
//! What must be unique is a flow's *reply tuple* (backend address, backend port, SNAT address,
//! SNAT port, protocol), as in conntrack: the same pair may be in use towards two backends at
//! once. So a shard keeps one *pool* of pairs per backend, keyed by the reply's source
//! ([`PoolKey`]: backend address, port and protocol; two backend slots with the same key share
//! one pool). A shard owns an equal, disjoint slice of the configured port range on every SNAT
//! address ([`super::L4lbParams::shard_ports`]), the same slice in each of its pools, so two
//! shards never give out the same pair towards a backend and a reply's destination port alone
//! says which shard owns the flow ([`NatPorts::owner`]).
//!
//! Capacity: per shard, per backend, per SNAT address of the backend's family, the shard's slice
//! of the port range; over all shards, addresses × ports × backends (per protocol, and per
//! address family: a backend uses the SNAT addresses of its own family). One address and the
//! default range 1024–65535 give 64 512 flows to each backend; three backends 193 536.
//!
//! Within a pool a pair is a *token* `address index << 16 | port`. Pairs never used yet are
//! handed out first, from a cursor (addresses interleaved, so consecutive flows spread over
//! them), then freed ones in FIFO order: a port is reused as late as possible, which keeps a
//! new connection from landing on the backend's TIME-WAIT of the previous one on that pair.
//! The reverse map of a pool is a plain array indexed by token (no hash on replies); the FIFO
//! is threaded through it (a free pair's entry links to the next free one), so a pool costs 4
//! bytes per pair and nothing else. The pool of a reply is one probe in a small open-addressed
//! table keyed by the reply's source ([`NatPorts::find`]).
//!
//! Memory: a pool is allocated when its backend first appears — at construction for the
//! configured backends, at run time on the control path ([`NatPorts::pool`], between bursts,
//! never per packet) — zeroed (`calloc`: untouched pages cost nothing), `4 × SNAT addresses ×
//! ports per shard` bytes. Pools are never freed: a backend removed and added again finds its
//! pool (and its pairs' reuse order) again, and since the controller never gives a slot another
//! backend there are at most `max_backends` pools (the cap: beyond it [`NatPorts::pool`] gives
//! none, and such a backend's new flows are refused).

use std::net::IpAddr;

/// A (SNAT address index, port) pair, packed: `address index << 16 | port` (< 2^24: at most
/// 256 addresses).
pub type Token = u32;

/// Index of a pool.
pub type PoolId = u16;

/// No pool (a slot without a backend, or the cap reached).
pub const NO_POOL: PoolId = PoolId::MAX;

/// What a pool is for: the source of the replies of its flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolKey {
    /// Backend address.
    pub addr: IpAddr,
    /// Backend port.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
}

impl PoolKey {
    #[inline]
    fn hash(&self) -> u64 {
        let (lo, hi) = match self.addr {
            IpAddr::V4(a) => (u64::from(u32::from(a)), 0),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                (x as u64, (x >> 64) as u64 | 1)
            }
        };
        let x = lo ^ hi.rotate_left(29) ^ (u64::from(self.port) << 32) ^ (u64::from(self.proto) << 48);
        let x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }
}

/// Reverse-map entry of a pair: `1..FREE` in use by flow `entry - 1`; 0 handed out but not
/// bound yet, or never handed out; `FREE | next` free and queued, `next` the token after it in
/// the FIFO (or [`END`]).
const FREE: u32 = 1 << 31;
/// The end of a FIFO (no token: tokens are below 2^24).
const END: u32 = FREE - 1;

/// The pairs towards one backend.
#[derive(Debug)]
struct Pool {
    key: PoolKey,
    /// Reverse map, one entry per pair of every SNAT address (`NatPorts::slot`); the entries of
    /// the other family's addresses are never touched.
    rev: Box<[u32]>,
    /// Never-used pairs handed out so far, in the order port offset × family address (the
    /// next one is offset `used / family addresses` on family address `used % family
    /// addresses`).
    used: u32,
    /// FIFO of freed pairs (tokens; [`END`]: empty), threaded through `rev`.
    head: Token,
    tail: Token,
    queued: u32,
}

/// The ports of one shard, in one pool per backend.
#[derive(Debug)]
pub struct NatPorts {
    addrs: Vec<IpAddr>,
    /// Address indices of each family: [IPv6, IPv4].
    family: [Box<[u32]>; 2],
    /// First port of this shard's slice, ports per shard, shards, first port of the whole range.
    lo: u16,
    per: u32,
    shards: u16,
    range_lo: u16,
    pools: Vec<Pool>,
    max_pools: usize,
    /// Open-addressed (linear probing) index of `pools` by key: pool id + 1, 0 empty; at most
    /// half full.
    index: Box<[u16]>,
}

impl NatPorts {
    /// The pairs of shard `shard` of `shards`: ports `lo..lo+per` on every address of `addrs`,
    /// where the whole range starts at `range_lo`, in up to `max_pools` pools (none yet).
    pub fn new(addrs: &[IpAddr], range_lo: u16, per: u32, shard: u16, shards: u16, max_pools: usize) -> NatPorts {
        let lo = (u32::from(range_lo) + per * u32::from(shard)) as u16;
        let family = |v4: bool| (0..addrs.len() as u32).filter(|&i| addrs[i as usize].is_ipv4() == v4).collect();
        let max_pools = max_pools.min(usize::from(NO_POOL));
        NatPorts {
            addrs: addrs.to_vec(),
            family: [family(false), family(true)],
            lo,
            per,
            shards,
            range_lo,
            pools: Vec::with_capacity(max_pools),
            max_pools,
            index: vec![0; (2 * max_pools).next_power_of_two().max(4)].into_boxed_slice(),
        }
    }

    /// The pool of `key`, made (and allocated) the first time: the control path, never per
    /// packet. None once `max_pools` pools exist.
    pub fn pool(&mut self, key: PoolKey) -> Option<PoolId> {
        if let Some(p) = self.find(key) {
            return Some(p);
        }
        if self.pools.len() >= self.max_pools {
            return None;
        }
        let id = self.pools.len() as PoolId;
        self.pools.push(Pool {
            key,
            rev: vec![0; self.addrs.len() * self.per as usize].into_boxed_slice(),
            used: 0,
            head: END,
            tail: END,
            queued: 0,
        });
        let mask = self.index.len() - 1;
        let mut i = key.hash() as usize & mask;
        while self.index[i] != 0 {
            i = (i + 1) & mask;
        }
        self.index[i] = id + 1;
        Some(id)
    }

    /// The pool of the backend `key`, if it has one (a reply's source and protocol).
    #[inline]
    pub fn find(&self, key: PoolKey) -> Option<PoolId> {
        let mask = self.index.len() - 1;
        let mut i = key.hash() as usize & mask;
        loop {
            let p = self.index[i].checked_sub(1)?;
            if self.pools[usize::from(p)].key == key {
                return Some(p);
            }
            i = (i + 1) & mask;
        }
    }

    /// Pools made so far.
    pub fn pools(&self) -> usize {
        self.pools.len()
    }

    /// Takes a free pair of `pool` for a flow of the family of `v4` (None: none left, or the
    /// pool's backend is of the other family). Bind it ([`Self::bind`]) or free it.
    #[inline]
    pub fn alloc(&mut self, pool: PoolId, v4: bool) -> Option<Token> {
        let p = self.pools.get_mut(usize::from(pool))?;
        if p.key.addr.is_ipv4() != v4 {
            return None;
        }
        let fam = &self.family[usize::from(v4)];
        if p.used < fam.len() as u32 * self.per {
            let n = fam.len() as u32;
            let t = (fam[(p.used % n) as usize] << 16) | (u32::from(self.lo) + p.used / n);
            p.used += 1;
            return Some(t);
        }
        if p.head == END {
            return None;
        }
        let t = p.head;
        let s = slot(self.per, self.lo, t);
        p.head = p.rev[s] & !FREE;
        if p.head == END {
            p.tail = END;
        }
        p.rev[s] = 0;
        p.queued -= 1;
        Some(t)
    }

    /// Records that pair `t` of `pool` (just taken) belongs to flow index `flow`.
    #[inline]
    pub fn bind(&mut self, pool: PoolId, t: Token, flow: usize) {
        let s = slot(self.per, self.lo, t);
        if let Some(e) = self.pools.get_mut(usize::from(pool)).and_then(|p| p.rev.get_mut(s)) {
            debug_assert!(*e == 0, "a pair bound twice");
            *e = flow as u32 + 1;
        }
    }

    /// Returns pair `t` to `pool` (the end of its FIFO); a pair already free is left alone.
    #[inline]
    pub fn free(&mut self, pool: PoolId, t: Token) {
        let s = slot(self.per, self.lo, t);
        let Some(p) = self.pools.get_mut(usize::from(pool)) else { return };
        match p.rev.get(s) {
            Some(&e) if e & FREE == 0 => {}
            _ => {
                debug_assert!(false, "a pair freed twice or not ours");
                return;
            }
        }
        p.rev[s] = FREE | END;
        if p.tail == END {
            p.head = t;
        } else {
            p.rev[slot(self.per, self.lo, p.tail)] = FREE | t;
        }
        p.tail = t;
        p.queued += 1;
    }

    /// The flow index pair `t` of `pool` is bound to.
    #[inline]
    pub fn flow(&self, pool: PoolId, t: Token) -> Option<usize> {
        let e = *self.pools.get(usize::from(pool))?.rev.get(slot(self.per, self.lo, t))?;
        (e != 0 && e & FREE == 0).then(|| (e - 1) as usize)
    }

    /// Free pairs of `pool` (0: no such pool).
    pub fn free_pairs(&self, pool: PoolId) -> usize {
        self.pools.get(usize::from(pool)).map_or(0, |p| self.free_in(p))
    }

    /// Free pairs summed over every pool.
    pub fn available(&self) -> usize {
        self.pools.iter().map(|p| self.free_in(p)).sum()
    }

    /// Never-used plus freed pairs of `p`.
    fn free_in(&self, p: &Pool) -> usize {
        let total = self.family[usize::from(p.key.addr.is_ipv4())].len() as u32 * self.per;
        (total - p.used + p.queued) as usize
    }

    /// Whether `a` is one of the SNAT addresses.
    #[inline]
    pub fn has_addr(&self, a: IpAddr) -> bool {
        self.addrs.contains(&a)
    }

    /// Address and port of a token.
    #[inline]
    pub fn pair(&self, t: Token) -> (IpAddr, u16) {
        (self.addrs[(t >> 16) as usize], t as u16)
    }

    /// The shard that owns destination port `port` of a reply (None: outside the range).
    #[inline]
    pub fn owner(&self, port: u16) -> Option<u16> {
        let off = u32::from(port.checked_sub(self.range_lo)?);
        let s = off / self.per.max(1);
        (s < u32::from(self.shards)).then_some(s as u16)
    }

    /// The token of a reply's destination when this shard owns it: the address must be one of
    /// ours and the port in our slice.
    #[inline]
    pub fn token_of(&self, addr: IpAddr, port: u16) -> Option<Token> {
        if port < self.lo || u32::from(port - self.lo) >= self.per {
            return None;
        }
        let ai = self.addrs.iter().position(|a| *a == addr)?;
        Some(((ai as u32) << 16) | u32::from(port))
    }
}

/// Reverse-map slot of token `t` (ports `lo..lo+per` of each address in turn).
#[inline]
fn slot(per: u32, lo: u16, t: Token) -> usize {
    (t >> 16) as usize * per as usize + usize::from((t as u16).wrapping_sub(lo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet, VecDeque};

    fn addrs() -> Vec<IpAddr> {
        vec!["198.19.0.2".parse().unwrap(), "2001:2::2".parse().unwrap(), "198.19.0.3".parse().unwrap()]
    }

    fn key(last: u8, port: u16, proto: u8) -> PoolKey {
        PoolKey { addr: IpAddr::from([198, 19, 0, last]), port, proto }
    }

    #[test]
    fn shards_own_disjoint_slices_and_replies_find_their_owner() {
        let a = addrs();
        let mut seen = HashSet::new();
        for s in 0..3u16 {
            let mut p = NatPorts::new(&a, 10000, 100, s, 3, 4);
            let b = p.pool(key(11, 80, 6)).unwrap();
            let b6 = p.pool(PoolKey { addr: "2001:2::11".parse().unwrap(), port: 80, proto: 6 }).unwrap();
            assert_eq!((p.free_pairs(b), p.free_pairs(b6)), (200, 100));
            assert_eq!(p.alloc(b, false), None, "an IPv4 backend's pool has no IPv6 pairs");
            let mut n = 0;
            while let Some(t) = p.alloc(b, true) {
                let (addr, port) = p.pair(t);
                assert!(addr.is_ipv4());
                assert!(seen.insert((addr, port)), "{addr}:{port} handed out twice");
                assert_eq!(p.owner(port), Some(s));
                assert_eq!(p.token_of(addr, port), Some(t));
                p.bind(b, t, n);
                n += 1;
            }
            assert_eq!(n, 200);
            assert_eq!(p.owner(9999), None);
            assert_eq!(p.owner(10300), None);
            // Not ours: another shard's port, an unknown address.
            let other = 10000 + 100 * ((s + 1) % 3);
            assert_eq!(p.token_of(a[0], other), None);
            assert_eq!(p.token_of("198.19.0.9".parse().unwrap(), 10000 + 100 * s), None);
        }
        assert_eq!(seen.len(), 600);
    }

    #[test]
    fn each_backend_has_every_pair_and_replies_find_their_flow() {
        let a = addrs();
        let mut p = NatPorts::new(&a, 2000, 4, 0, 1, 3);
        let pools: Vec<PoolId> = (0..3).map(|i| p.pool(key(11 + i, 8080, 6)).unwrap()).collect();
        assert_eq!(p.pool(key(11, 8080, 6)), Some(pools[0]), "one pool per key");
        assert_eq!(p.pool(key(11, 8080, 17)), None, "the cap: 3 pools");
        assert_eq!(p.find(key(11, 8080, 17)), None);
        assert_eq!(p.find(key(11, 8081, 6)), None);
        // Every backend gets all 8 IPv4 pairs, the same ones.
        let mut got: Vec<Vec<Token>> = vec![];
        for (bi, &b) in pools.iter().enumerate() {
            let ts: Vec<Token> = std::iter::from_fn(|| p.alloc(b, true)).collect();
            for (k, &t) in ts.iter().enumerate() {
                p.bind(b, t, bi * 100 + k);
            }
            got.push(ts);
        }
        assert_eq!(got[0].len(), 8);
        assert!(got.iter().all(|g| g == &got[0]));
        assert_eq!(p.available(), 0, "an IPv4 backend's pool holds the IPv4 pairs only");
        for (bi, g) in got.iter().enumerate() {
            let b = p.find(key(11 + bi as u8, 8080, 6)).unwrap();
            for (k, &t) in g.iter().enumerate() {
                assert_eq!(p.flow(b, t), Some(bi * 100 + k));
            }
        }
        // Freeing in one pool leaves the others alone.
        p.free(pools[1], got[1][3]);
        assert_eq!(p.flow(pools[1], got[1][3]), None);
        assert_eq!(p.flow(pools[0], got[0][3]), Some(3));
        assert_eq!((p.free_pairs(pools[0]), p.free_pairs(pools[1])), (0, 1));
        assert_eq!(p.alloc(pools[0], true), None);
        assert_eq!(p.alloc(pools[1], true), Some(got[1][3]));
    }

    #[test]
    fn fresh_pairs_first_then_freed_ones_in_fifo_order() {
        let a = addrs();
        let mut p = NatPorts::new(&a, 2000, 4, 0, 1, 1);
        let b = p.pool(key(11, 53, 17)).unwrap();
        let first = p.alloc(b, true).unwrap();
        p.bind(b, first, 0);
        p.free(b, first);
        // The freed pair waits until every never-used one has been handed out.
        let rest: Vec<Token> = (0..7).map(|_| p.alloc(b, true).unwrap()).collect();
        assert!(!rest.contains(&first));
        // Addresses interleave: 198.19.0.2 and 198.19.0.3 (indices 0 and 2) alternate.
        assert_eq!(rest.iter().take(3).map(|t| t >> 16).collect::<Vec<_>>(), vec![2, 0, 2]);
        assert_eq!(p.alloc(b, true), Some(first));
        assert_eq!(p.alloc(b, true), None);
        for &t in rest.iter().rev() {
            p.free(b, t);
        }
        let again: Vec<Token> = std::iter::from_fn(|| p.alloc(b, true)).collect();
        assert_eq!(again, rest.iter().rev().copied().collect::<Vec<_>>(), "FIFO: first freed, first out");
    }

    #[test]
    fn many_backends_hash_to_their_own_pool() {
        let mut p = NatPorts::new(&addrs(), 2000, 2, 0, 1, 600);
        let mut keys = vec![];
        for i in 0..200u16 {
            keys.push(key(11 + (i % 50) as u8, 8000 + i / 50, if i % 2 == 0 { 6 } else { 17 }));
            let a6 = format!("2001:2::{:x}", 0x100 + i).parse().unwrap();
            keys.push(PoolKey { addr: a6, port: 8080, proto: 6 });
        }
        let ids: Vec<PoolId> = keys.iter().map(|&k| p.pool(k).unwrap()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 400);
        for (k, id) in keys.iter().zip(&ids) {
            assert_eq!(p.find(*k), Some(*id));
        }
        assert_eq!(p.pools(), 400);
    }

    /// A model: per pool a set of free pairs in order of freeing (never-used pairs first), and
    /// the flow of each pair in use; random alloc/free sequences over three pools.
    mod model {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
            #[test]
            fn pools_match_a_model(ops in prop::collection::vec((0u8..3, any::<bool>(), any::<u16>()), 1..400)) {
                let a = addrs();
                let mut p = NatPorts::new(&a, 3000, 5, 1, 2, 3);
                let pools: Vec<PoolId> = (0..3).map(|i| p.pool(key(11 + i, 80, 6)).unwrap()).collect();
                let all: Vec<(IpAddr, u16)> = (0..5u16)
                    .flat_map(|off| [a[0], a[2]].into_iter().map(move |ad| (ad, 3005 + off)))
                    .collect();
                // Model: never-used pairs in order, freed ones in FIFO order, in-use pair → flow.
                let mut fresh: Vec<VecDeque<(IpAddr, u16)>> = vec![all.iter().copied().collect(); 3];
                let mut freed: Vec<VecDeque<(IpAddr, u16)>> = vec![VecDeque::new(); 3];
                let mut live: HashMap<(usize, IpAddr, u16), (Token, usize)> = HashMap::new();
                let mut next_flow = 0;
                for (pi, alloc, pick) in ops {
                    let pi = usize::from(pi);
                    let b = pools[pi];
                    if alloc {
                        let want = fresh[pi].pop_front().or_else(|| freed[pi].pop_front());
                        let got = p.alloc(b, true);
                        prop_assert_eq!(got.map(|t| p.pair(t)), want);
                        if let (Some(t), Some(pair)) = (got, want) {
                            p.bind(b, t, next_flow);
                            prop_assert!(live.insert((pi, pair.0, pair.1), (t, next_flow)).is_none());
                            next_flow += 1;
                        }
                    } else {
                        let mine: Vec<(IpAddr, u16)> =
                            live.keys().filter(|k| k.0 == pi).map(|k| (k.1, k.2)).collect();
                        if mine.is_empty() {
                            continue;
                        }
                        let mut mine = mine;
                        mine.sort();
                        let pair = mine[usize::from(pick) % mine.len()];
                        let (t, _) = live.remove(&(pi, pair.0, pair.1)).unwrap();
                        p.free(b, t);
                        freed[pi].push_back(pair);
                    }
                    // Every live pair's reply finds its flow; free pairs find none.
                    for (&(lpi, ad, port), &(_, flow)) in &live {
                        let t = p.token_of(ad, port).unwrap();
                        prop_assert_eq!(p.flow(p.find(key(11 + lpi as u8, 80, 6)).unwrap(), t), Some(flow));
                    }
                    for (qi, q) in freed.iter().enumerate() {
                        for &(ad, port) in q {
                            prop_assert_eq!(p.flow(pools[qi], p.token_of(ad, port).unwrap()), None);
                        }
                    }
                    for (qi, &b) in pools.iter().enumerate() {
                        prop_assert_eq!(p.free_pairs(b), fresh[qi].len() + freed[qi].len());
                    }
                }
            }
        }
    }
}
