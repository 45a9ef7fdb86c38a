//! Items shared by IPv4 and IPv6: the protocol number and the address pair that feeds the
//! transport pseudo-header checksum.
//!
//! [`IpPair`] holds both addresses of one family, so a pseudo header mixing an IPv4 source with
//! an IPv6 destination cannot be built.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::ipv4::Ipv4Repr;
use super::ipv6::Ipv6Repr;

/// An IP protocol number (IPv4 `protocol`, IPv6 `next header`).
///
/// A newtype rather than an enum: every `u8` is a valid value, and the well-known ones are
/// associated constants usable in `match` patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: Self = Self(0);
    /// ICMP for IPv4.
    pub const ICMP: Self = Self(1);
    /// IGMP.
    pub const IGMP: Self = Self(2);
    /// TCP.
    pub const TCP: Self = Self(6);
    /// UDP.
    pub const UDP: Self = Self(17);
    /// IPv6 routing header.
    pub const IPV6_ROUTE: Self = Self(43);
    /// IPv6 fragment header.
    pub const IPV6_FRAG: Self = Self(44);
    /// Encapsulating security payload.
    pub const ESP: Self = Self(50);
    /// Authentication header.
    pub const AH: Self = Self(51);
    /// ICMP for IPv6.
    pub const ICMPV6: Self = Self(58);
    /// IPv6 "no next header".
    pub const IPV6_NO_NEXT: Self = Self(59);
    /// IPv6 destination options.
    pub const IPV6_OPTS: Self = Self(60);
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(value: IpProtocol) -> Self {
        value.0
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::HOP_BY_HOP => "HOPOPT",
            Self::ICMP => "ICMP",
            Self::IGMP => "IGMP",
            Self::TCP => "TCP",
            Self::UDP => "UDP",
            Self::IPV6_ROUTE => "IPv6-Route",
            Self::IPV6_FRAG => "IPv6-Frag",
            Self::ESP => "ESP",
            Self::AH => "AH",
            Self::ICMPV6 => "ICMPv6",
            Self::IPV6_NO_NEXT => "IPv6-NoNxt",
            Self::IPV6_OPTS => "IPv6-Opts",
            Self(other) => return write!(f, "{other}"),
        };
        f.write_str(name)
    }
}

/// The source and destination addresses of one IP packet, as the transport checksum needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPair {
    /// An IPv4 packet's addresses.
    V4 {
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// An IPv6 packet's addresses.
    V6 {
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl IpPair {
    /// The pair of `src` and `dst`, if they are of one family.
    #[inline]
    pub fn from_addrs(src: core::net::IpAddr, dst: core::net::IpAddr) -> Option<IpPair> {
        match (src, dst) {
            (core::net::IpAddr::V4(src), core::net::IpAddr::V4(dst)) => Some(IpPair::V4 { src, dst }),
            (core::net::IpAddr::V6(src), core::net::IpAddr::V6(dst)) => Some(IpPair::V6 { src, dst }),
            _ => None,
        }
    }

    /// The pseudo-header sum (not inverted) for an upper-layer packet of `length` bytes.
    #[inline]
    pub fn pseudo_header_sum(&self, protocol: IpProtocol, length: u32) -> u16 {
        match self {
            Self::V4 { src, dst } => checksum::pseudo_header_v4(src, dst, protocol, length),
            Self::V6 { src, dst } => checksum::pseudo_header_v6(src, dst, protocol, length),
        }
    }

    /// The same pair with source and destination swapped (for building a reply).
    #[inline]
    pub fn reversed(&self) -> Self {
        match *self {
            Self::V4 { src, dst } => Self::V4 { src: dst, dst: src },
            Self::V6 { src, dst } => Self::V6 { src: dst, dst: src },
        }
    }

    /// Whether this is an IPv6 pair.
    #[inline]
    pub fn is_v6(&self) -> bool {
        matches!(self, Self::V6 { .. })
    }
}

impl From<&Ipv4Repr> for IpPair {
    #[inline]
    fn from(repr: &Ipv4Repr) -> Self {
        Self::V4 { src: repr.src_addr, dst: repr.dst_addr }
    }
}

impl From<&Ipv6Repr> for IpPair {
    #[inline]
    fn from(repr: &Ipv6Repr) -> Self {
        Self::V6 { src: repr.src_addr, dst: repr.dst_addr }
    }
}

/// Computes the transport checksum (to store, already inverted) over `segment`, which must have
/// its checksum field zeroed. Shared by UDP and TCP.
#[inline]
pub(super) fn transport_checksum(pair: &IpPair, protocol: IpProtocol, segment: &[u8]) -> u16 {
    let pseudo = pair.pseudo_header_sum(protocol, segment.len() as u32);
    !checksum::add(pseudo, checksum::data(segment))
}

/// Whether `segment` (checksum field included) verifies against the pseudo header.
#[inline]
pub(super) fn transport_checksum_ok(pair: &IpPair, protocol: IpProtocol, segment: &[u8]) -> bool {
    let pseudo = pair.pseudo_header_sum(protocol, segment.len() as u32);
    checksum::add(pseudo, checksum::data(segment)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_conversions_and_names() {
        assert_eq!(IpProtocol::from(17), IpProtocol::UDP);
        assert_eq!(u8::from(IpProtocol::TCP), 6);
        assert_eq!(IpProtocol::ICMPV6.to_string(), "ICMPv6");
        assert_eq!(IpProtocol(253).to_string(), "253");
        assert!(matches!(IpProtocol(1), IpProtocol::ICMP));
    }

    #[test]
    fn pair_reversal_and_family() {
        let p = IpPair::V4 { src: Ipv4Addr::new(1, 2, 3, 4), dst: Ipv4Addr::new(5, 6, 7, 8) };
        assert_eq!(p.reversed(), IpPair::V4 { src: Ipv4Addr::new(5, 6, 7, 8), dst: Ipv4Addr::new(1, 2, 3, 4) });
        assert!(!p.is_v6());
        // The pseudo-header sum is symmetric in source and destination.
        assert_eq!(p.pseudo_header_sum(IpProtocol::UDP, 8), p.reversed().pseudo_header_sum(IpProtocol::UDP, 8));
        let q = IpPair::V6 { src: Ipv6Addr::LOCALHOST, dst: Ipv6Addr::UNSPECIFIED };
        assert!(q.is_v6());
    }
}
