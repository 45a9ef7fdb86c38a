//! The NAT fast path for the common frame: untagged Ethernet, IPv4 without options, not a
//! fragment, TCP or UDP. [`V4Flow::parse`] reads what a NAT needs with a handful of loads and
//! length checks into a small `Copy` value (no layout to carry around), and
//! [`V4Flow::rewrite`] writes new addresses and ports with one incremental update per checksum
//! (RFC 1624; the UDP zero-checksum rules of RFC 768 as in [`NatFrame::rewrite`]).
//!
//! Anything else — a VLAN tag, IPv4 options, IPv6, ICMP, a fragment, a truncated or
//! inconsistent header — makes `parse` return `None`, and the caller takes the general path
//! ([`NatFrame`]). For every frame `parse` accepts, [`NatFrame::new_checked`] accepts it too
//! with the same 5-tuple and TCP flags, and `rewrite` gives exactly the bytes
//! [`NatFrame::rewrite`] gives (property-tested below), so the two paths are interchangeable.
//!
//! [`NatFrame`]: super::NatFrame
//! [`NatFrame::new_checked`]: super::NatFrame::new_checked
//! [`NatFrame::rewrite`]: super::NatFrame::rewrite

use core::net::Ipv4Addr;

use crate::wire::checksum::Delta;
use crate::wire::{IpPair, IpProtocol, TcpFlags};

/// Offsets in an untagged frame whose IPv4 header has no options.
const IP: usize = 14;
const L4: usize = IP + 20;

/// What the fast path read from a frame: the 5-tuple, the TCP flags (0 for UDP) and where the
/// transport checksum is. 20 bytes, `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Flow {
    /// Source address (host order).
    pub src: u32,
    /// Destination address (host order).
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// `6` (TCP) or `17` (UDP).
    pub proto: u8,
    /// TCP flags (the low 9 bits of the header's flag field), 0 for UDP.
    pub flags: u16,
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl V4Flow {
    /// Reads a frame of the fast path's shape; `None` for anything else (take the general
    /// path). Never panics.
    #[inline]
    pub fn parse(f: &[u8]) -> Option<V4Flow> {
        if f.len() < L4 + 8 || f[12] != 0x08 || f[13] != 0x00 || f[IP] != 0x45 {
            return None;
        }
        let total = usize::from(be16(f, IP + 2));
        // Fragment: MF set or a non-zero offset.
        if be16(f, IP + 6) & 0x3fff != 0 || total < 20 || IP + total > f.len() {
            return None;
        }
        let l4_len = total - 20;
        let proto = f[IP + 9];
        let flags = match proto {
            17 => {
                let ulen = usize::from(be16(f, L4 + 4));
                if l4_len < 8 || ulen < 8 || ulen > l4_len {
                    return None;
                }
                0
            }
            6 => {
                if l4_len < 20 {
                    return None;
                }
                let off = usize::from(f[L4 + 12] >> 4) * 4;
                if off < 20 || off > l4_len {
                    return None;
                }
                be16(f, L4 + 12) & 0x01ff
            }
            _ => return None,
        };
        Some(V4Flow {
            src: be32(f, IP + 12),
            dst: be32(f, IP + 16),
            sport: be16(f, L4),
            dport: be16(f, L4 + 2),
            proto,
            flags,
        })
    }

    /// The protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.proto)
    }

    /// The TCP flags (empty for UDP).
    #[inline]
    pub fn tcp_flags(&self) -> TcpFlags {
        TcpFlags::from_bits_truncate(self.flags)
    }

    /// The addresses.
    #[inline]
    pub fn ips(&self) -> IpPair {
        IpPair::V4 { src: Ipv4Addr::from(self.src), dst: Ipv4Addr::from(self.dst) }
    }

    /// The 5-tuple, as [`NatFrame::tuple`](super::NatFrame::tuple) gives it.
    #[inline]
    pub fn tuple(&self) -> super::FiveTuple {
        super::FiveTuple { ips: self.ips(), protocol: self.protocol(), src_port: self.sport, dst_port: self.dport }
    }

    /// Rewrites the frame this flow was parsed from (unchanged since) to source `src:sport`
    /// and destination `dst:dport`, updating the IPv4 header checksum and the TCP/UDP
    /// checksum incrementally. Returns `false`, leaving the frame untouched, if the frame is
    /// too short for the headers `parse` found (a caller bug, never a panic).
    #[inline]
    pub fn rewrite(&self, f: &mut [u8], src: u32, sport: u16, dst: u32, dport: u16) -> bool {
        let csum_at = if self.proto == 6 { L4 + 16 } else { L4 + 6 };
        if f.len() < csum_at + 2 {
            return false;
        }
        let addrs = Delta::ZERO.add_u32(self.src, src).add_u32(self.dst, dst);
        let ip_csum = addrs.apply(be16(f, IP + 10));
        f[IP + 10..IP + 12].copy_from_slice(&ip_csum.to_be_bytes());
        f[IP + 12..IP + 16].copy_from_slice(&src.to_be_bytes());
        f[IP + 16..IP + 20].copy_from_slice(&dst.to_be_bytes());
        let old = be16(f, csum_at);
        let l4 = addrs.add_u16(self.sport, sport).add_u16(self.dport, dport);
        let new = if self.proto == 17 {
            // RFC 768: 0 means "no checksum" and stays 0; a computed 0 is sent as 0xffff.
            match old {
                0 => 0,
                _ => match l4.apply(old) {
                    0 => 0xffff,
                    c => c,
                },
            }
        } else {
            l4.apply(old)
        };
        f[csum_at..csum_at + 2].copy_from_slice(&new.to_be_bytes());
        f[L4..L4 + 2].copy_from_slice(&sport.to_be_bytes());
        f[L4 + 2..L4 + 4].copy_from_slice(&dport.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::{FiveTuple, NatFrame};
    use proptest::prelude::*;

    /// A frame of the fast path's shape.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        proto: u8,
        src: u32,
        dst: u32,
        sport: u16,
        dport: u16,
        flags: u16,
        payload: &[u8],
        udp_csum0: bool,
    ) -> Vec<u8> {
        use crate::wire::{Ipv4Packet, TcpPacket, UdpPacket};
        let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
        let mut f = vec![0u8; L4 + l4_len];
        f[12] = 0x08;
        let mut ip = Ipv4Packet::new_unchecked(&mut f[IP..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len((20 + l4_len) as u16);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol(proto));
        ip.set_src_addr(Ipv4Addr::from(src));
        ip.set_dst_addr(Ipv4Addr::from(dst));
        ip.fill_checksum();
        let ips = IpPair::V4 { src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst) };
        if proto == 6 {
            let mut t = TcpPacket::new_unchecked(&mut f[L4..]);
            t.set_src_port(sport);
            t.set_dst_port(dport);
            t.set_header_len(20);
            t.set_flags(TcpFlags::from_bits_truncate(flags));
            t.payload_mut().copy_from_slice(payload);
            t.fill_checksum(&ips);
        } else {
            let mut u = UdpPacket::new_unchecked(&mut f[L4..]);
            u.set_src_port(sport);
            u.set_dst_port(dport);
            u.set_len(l4_len as u16);
            u.payload_mut().copy_from_slice(payload);
            if !udp_csum0 {
                u.fill_checksum(&ips);
            }
        }
        f
    }

    proptest! {
        /// Accepted frames parse identically by both paths, and rewrite to identical bytes.
        #[test]
        fn fast_path_agrees_with_the_general_path(
            tcp in any::<bool>(), src in any::<u32>(), dst in any::<u32>(), sport in any::<u16>(), dport in any::<u16>(),
            flags in 0u16..0x200, payload in prop::collection::vec(any::<u8>(), 0..64), udp_csum0 in any::<bool>(),
            pad in 0usize..8,
            to in (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>()),
        ) {
            let proto = if tcp { 6 } else { 17 };
            let mut f = frame(proto, src, dst, sport, dport, flags, &payload, udp_csum0 && !tcp);
            f.extend(std::iter::repeat_n(0u8, pad)); // Ethernet padding
            let v = V4Flow::parse(&f).expect("a fast-path frame");
            let nf = NatFrame::new_checked(&f[..]).expect("the general path accepts it too");
            let t = nf.tuple();
            prop_assert_eq!((t.ips, t.protocol, t.src_port, t.dst_port), (v.ips(), v.protocol(), v.sport, v.dport));
            if tcp {
                prop_assert_eq!(nf.tcp_flags(), Some(v.tcp_flags()));
            }
            let mut fast = f.clone();
            prop_assert!(v.rewrite(&mut fast, to.0, to.1, to.2, to.3));
            let mut general = f.clone();
            let target = FiveTuple {
                ips: IpPair::V4 { src: Ipv4Addr::from(to.0), dst: Ipv4Addr::from(to.2) },
                protocol: IpProtocol(proto),
                src_port: to.1,
                dst_port: to.3,
            };
            NatFrame::new_checked(&mut general[..]).unwrap().rewrite(&target).unwrap();
            prop_assert_eq!(fast, general);
        }

        /// Whatever the bytes, `parse` never panics, and what it accepts the general path
        /// accepts with the same tuple.
        #[test]
        fn anything_it_accepts_the_general_path_accepts(
            base in prop::collection::vec(any::<u8>(), 0..120), flips in prop::collection::vec((0usize..120, any::<u8>()), 0..6),
            tcp in any::<bool>(),
        ) {
            let mut f = frame(if tcp { 6 } else { 17 }, 1, 2, 3, 4, 2, &base, false);
            for (at, x) in flips {
                if let Some(b) = f.get_mut(at) {
                    *b ^= x;
                }
            }
            f.truncate(f.len().saturating_sub(base.len() % 7));
            if let Some(v) = V4Flow::parse(&f) {
                let nf = NatFrame::new_checked(&f[..]);
                prop_assert!(nf.is_ok(), "{:?}", nf);
                let t = nf.unwrap().tuple();
                prop_assert_eq!((t.ips, t.src_port, t.dst_port), (v.ips(), v.sport, v.dport));
            }
        }
    }

    #[test]
    fn other_shapes_take_the_general_path() {
        let ok = frame(17, 1, 2, 3, 4, 0, b"x", false);
        assert!(V4Flow::parse(&ok).is_some());
        let mut tagged = ok.clone();
        tagged[12] = 0x81;
        assert!(V4Flow::parse(&tagged).is_none());
        let mut options = ok.clone();
        options[IP] = 0x46;
        assert!(V4Flow::parse(&options).is_none());
        let mut frag = ok.clone();
        frag[IP + 6] = 0x20; // MF
        assert!(V4Flow::parse(&frag).is_none());
        let mut icmp = ok.clone();
        icmp[IP + 9] = 1;
        assert!(V4Flow::parse(&icmp).is_none());
        assert!(V4Flow::parse(&ok[..L4 + 4]).is_none());
    }
}
