//! [`FlowKey`]: an IPv4 or IPv6 5-tuple in a fixed 40-byte layout of five `u64` words, so that
//! equality is five word compares and the table's hash reads the words directly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{IpPair, IpProtocol};

/// Address family of a [`FlowKey`] (stored in the key, so a v4 key never equals a v6 key, even
/// one whose addresses are the v4-mapped `::ffff:a.b.c.d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IpFamily {
    /// IPv4.
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// A 5-tuple: source and destination address and port, IP protocol, and the address family.
///
/// Layout (40 bytes, 8-byte aligned, no padding bytes left undefined):
///
/// | word | contents |
/// |---|---|
/// | 0, 1 | source address: 16 bytes, IPv4 in the first 4 bytes and zeros after |
/// | 2, 3 | destination address, the same way |
/// | 4 | bits 0–15 source port, 16–31 destination port, 32–39 protocol, 40–47 family (4 or 6), 48–63 zero |
///
/// Address bytes are in network order in memory (a word is `u64::from_le_bytes` of 8 address
/// bytes); ports and protocol are plain values. Ports are whatever the caller passes: for
/// protocols without ports (ICMP, …) use 0 or an identifier of the caller's choice.
#[derive(Clone, Copy, Eq, PartialOrd, Ord)]
#[repr(C, align(8))]
pub struct FlowKey {
    words: [u64; 5],
}

impl PartialEq for FlowKey {
    /// Five word compares folded into one branch (the derived version calls `memcmp`).
    #[inline]
    fn eq(&self, other: &FlowKey) -> bool {
        let (a, b) = (&self.words, &other.words);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl std::hash::Hash for FlowKey {
    /// The words, as the derived version would (for `HashMap`s outside the flow table).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.words.hash(state);
    }
}

const _: () = assert!(size_of::<FlowKey>() == FlowKey::SIZE);

impl FlowKey {
    /// Size in bytes.
    pub const SIZE: usize = 40;

    /// An IPv4 5-tuple.
    #[inline]
    pub fn v4(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16, protocol: IpProtocol) -> FlowKey {
        let a = |ip: Ipv4Addr| u64::from(u32::from_le_bytes(ip.octets()));
        FlowKey { words: [a(src), 0, a(dst), 0, tail(src_port, dst_port, protocol, IpFamily::V4)] }
    }

    /// An IPv6 5-tuple.
    #[inline]
    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, src_port: u16, dst_port: u16, protocol: IpProtocol) -> FlowKey {
        let (s0, s1) = v6_words(src);
        let (d0, d1) = v6_words(dst);
        FlowKey { words: [s0, s1, d0, d1, tail(src_port, dst_port, protocol, IpFamily::V6)] }
    }

    /// The 5-tuple of a packet whose addresses are `ips` (what the `wire` views give).
    #[inline]
    pub fn from_ips(ips: &IpPair, src_port: u16, dst_port: u16, protocol: IpProtocol) -> FlowKey {
        match *ips {
            IpPair::V4 { src, dst } => FlowKey::v4(src, dst, src_port, dst_port, protocol),
            IpPair::V6 { src, dst } => FlowKey::v6(src, dst, src_port, dst_port, protocol),
        }
    }

    /// The key of the other direction: addresses and ports swapped.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        let [s0, s1, d0, d1, t] = self.words;
        let ports = ((t & 0xffff) << 16) | ((t >> 16) & 0xffff);
        FlowKey { words: [d0, d1, s0, s1, (t & !0xffff_ffff) | ports] }
    }

    /// Address family.
    #[inline]
    pub fn family(&self) -> IpFamily {
        if (self.words[4] >> 40) as u8 == IpFamily::V6 as u8 {
            IpFamily::V6
        } else {
            IpFamily::V4
        }
    }

    /// Source address.
    pub fn src_addr(&self) -> IpAddr {
        self.addr(0)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> IpAddr {
        self.addr(2)
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.words[4] as u16
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        (self.words[4] >> 16) as u16
    }

    /// IP protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol((self.words[4] >> 32) as u8)
    }

    /// The five words of the layout above (for hashing the key elsewhere, e.g. backend choice).
    #[inline]
    pub fn words(&self) -> &[u64; 5] {
        &self.words
    }

    /// The 40 bytes of the layout (words in little-endian order).
    pub fn to_bytes(&self) -> [u8; FlowKey::SIZE] {
        let mut b = [0u8; FlowKey::SIZE];
        for (chunk, w) in b.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    fn addr(&self, first: usize) -> IpAddr {
        let (w0, w1) = (self.words[first], self.words[first + 1]);
        match self.family() {
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::from((w0 as u32).to_le_bytes())),
            IpFamily::V6 => {
                let mut o = [0u8; 16];
                o[..8].copy_from_slice(&w0.to_le_bytes());
                o[8..].copy_from_slice(&w1.to_le_bytes());
                IpAddr::V6(Ipv6Addr::from(o))
            }
        }
    }
}

#[inline]
fn tail(src_port: u16, dst_port: u16, protocol: IpProtocol, family: IpFamily) -> u64 {
    u64::from(src_port) | u64::from(dst_port) << 16 | u64::from(protocol.0) << 32 | (family as u64) << 40
}

#[inline]
fn v6_words(ip: Ipv6Addr) -> (u64, u64) {
    let o = ip.octets();
    let (a, b) = o.split_at(8);
    (u64::from_le_bytes(a.try_into().expect("8 bytes")), u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for FlowKey {
    /// `proto 6 10.0.0.1:1234 -> 10.0.0.2:80` (v6 addresses in brackets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, d) = (self.src_addr(), self.dst_addr());
        let (sp, dp, p) = (self.src_port(), self.dst_port(), self.protocol().0);
        match self.family() {
            IpFamily::V4 => write!(f, "proto {p} {s}:{sp} -> {d}:{dp}"),
            IpFamily::V6 => write!(f, "proto {p} [{s}]:{sp} -> [{d}]:{dp}"),
        }
    }
}
