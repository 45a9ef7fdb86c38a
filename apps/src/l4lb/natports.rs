//! Source ports for NAT: which (SNAT address, port) pairs a shard hands out, and the reverse
//! map from a reply's destination to its flow.
//!
//! A shard owns an equal, disjoint slice of the configured port range on every SNAT address
//! ([`super::L4lbParams::shard_ports`]), so two shards can never give out the same pair and
//! a reply's destination port alone says which shard owns the flow ([`NatPorts::owner`]).
//! Within a shard a pair is a *token* `address index << 16 | port`; free tokens wait in a FIFO
//! per address family (a port is reused as late as possible, which keeps a new connection
//! from landing on a backend's TIME-WAIT of the previous one), and the reverse map is a plain
//! array indexed by token — replies need no hash lookup. Everything is allocated at start.

use std::net::IpAddr;

/// A (SNAT address index, port) pair, packed.
pub type Token = u32;

/// A fixed-capacity FIFO of tokens.
#[derive(Debug)]
struct Fifo {
    buf: Box<[Token]>,
    head: usize,
    len: usize,
}

impl Fifo {
    fn with_capacity(n: usize) -> Fifo {
        Fifo { buf: vec![0; n].into_boxed_slice(), head: 0, len: 0 }
    }

    #[inline]
    fn pop(&mut self) -> Option<Token> {
        if self.len == 0 {
            return None;
        }
        let t = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(t)
    }

    #[inline]
    fn push(&mut self, t: Token) {
        debug_assert!(self.len < self.buf.len(), "a token freed twice");
        if self.len < self.buf.len() {
            let at = (self.head + self.len) % self.buf.len();
            self.buf[at] = t;
            self.len += 1;
        }
    }
}

/// The ports of one shard.
#[derive(Debug)]
pub struct NatPorts {
    addrs: Vec<IpAddr>,
    /// First port of this shard's slice, ports per shard, shards, first port of the whole range.
    lo: u16,
    per: u32,
    shards: u16,
    range_lo: u16,
    v4: Fifo,
    v6: Fifo,
}

impl NatPorts {
    /// The pairs of shard `shard` of `shards`: ports `lo..lo+per` on every address of `addrs`,
    /// where the whole range starts at `range_lo`.
    pub fn new(addrs: &[IpAddr], range_lo: u16, per: u32, shard: u16, shards: u16) -> NatPorts {
        let lo = (u32::from(range_lo) + per * u32::from(shard)) as u16;
        let count = |v4: bool| addrs.iter().filter(|a| a.is_ipv4() == v4).count() * per as usize;
        let mut p = NatPorts {
            addrs: addrs.to_vec(),
            lo,
            per,
            shards,
            range_lo,
            v4: Fifo::with_capacity(count(true)),
            v6: Fifo::with_capacity(count(false)),
        };
        // Interleave addresses so consecutive flows spread over them.
        for off in 0..per {
            for (ai, a) in addrs.iter().enumerate() {
                let t = ((ai as u32) << 16) | (u32::from(lo) + off);
                if a.is_ipv4() {
                    p.v4.push(t);
                } else {
                    p.v6.push(t);
                }
            }
        }
        p
    }

    /// Size of the reverse map: one slot per pair this shard may hand out.
    pub fn slots(&self) -> usize {
        self.addrs.len() * self.per as usize
    }

    /// Takes a free pair of the family of `v4`.
    #[inline]
    pub fn alloc(&mut self, v4: bool) -> Option<Token> {
        if v4 {
            self.v4.pop()
        } else {
            self.v6.pop()
        }
    }

    /// Returns a pair.
    #[inline]
    pub fn free(&mut self, t: Token) {
        if self.addrs[(t >> 16) as usize].is_ipv4() {
            self.v4.push(t);
        } else {
            self.v6.push(t);
        }
    }

    /// Whether `a` is one of the SNAT addresses.
    #[inline]
    pub fn has_addr(&self, a: IpAddr) -> bool {
        self.addrs.contains(&a)
    }

    /// Free pairs of each family.
    pub fn available(&self) -> (usize, usize) {
        (self.v4.len, self.v6.len)
    }

    /// Address and port of a token.
    #[inline]
    pub fn pair(&self, t: Token) -> (IpAddr, u16) {
        (self.addrs[(t >> 16) as usize], t as u16)
    }

    /// Reverse-map slot of a token.
    #[inline]
    pub fn slot(&self, t: Token) -> usize {
        (t >> 16) as usize * self.per as usize + usize::from(t as u16 - self.lo)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<IpAddr> {
        vec!["198.19.0.2".parse().unwrap(), "2001:2::2".parse().unwrap(), "198.19.0.3".parse().unwrap()]
    }

    #[test]
    fn shards_own_disjoint_slices_and_replies_find_their_owner() {
        let a = addrs();
        let shards: Vec<NatPorts> = (0..3).map(|s| NatPorts::new(&a, 10000, 100, s, 3)).collect();
        let mut seen = std::collections::HashSet::new();
        for (s, fixed) in shards.iter().enumerate() {
            let mut p = NatPorts::new(&a, 10000, 100, s as u16, 3);
            assert_eq!(p.available(), (200, 100));
            while let Some(t) = p.alloc(true) {
                let (addr, port) = p.pair(t);
                assert!(addr.is_ipv4());
                assert!(seen.insert((addr, port)), "{addr}:{port} handed out twice");
                assert_eq!(p.owner(port), Some(s as u16));
                assert_eq!(p.token_of(addr, port), Some(t));
                assert!(p.slot(t) < p.slots());
            }
            assert_eq!(fixed.owner(9999), None);
            assert_eq!(fixed.owner(10300), None);
        }
        assert_eq!(seen.len(), 600);
        // Not ours: another shard's port, an unknown address.
        let p = &shards[0];
        assert_eq!(p.token_of(a[0], 10100), None);
        assert_eq!(p.token_of("198.19.0.9".parse().unwrap(), 10000), None);
    }

    #[test]
    fn freed_ports_are_reused_last_and_slots_are_unique() {
        let a = addrs();
        let mut p = NatPorts::new(&a, 2000, 4, 0, 1);
        let first = p.alloc(true).unwrap();
        let all: Vec<Token> = std::iter::from_fn(|| p.alloc(true)).collect();
        assert_eq!(all.len(), 7);
        p.free(first);
        p.free(all[0]);
        assert_eq!(p.alloc(true), Some(first), "FIFO: the first freed comes back first");
        let slots: std::collections::HashSet<usize> =
            std::iter::once(first).chain(all.iter().copied()).map(|t| p.slot(t)).collect();
        assert_eq!(slots.len(), 8);
        let v6 = p.alloc(false).unwrap();
        assert!(p.pair(v6).0.is_ipv6());
    }
}
