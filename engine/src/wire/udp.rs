//! UDP datagrams (RFC 768) and their pseudo-header checksum over IPv4 or IPv6.
//!
//! [`UdpPacket::check_len`] guarantees `8 <= length <= buffer.len()`; [`UdpPacket::payload`] is
//! `8..length`, so trailing bytes (IP or Ethernet padding) are ignored. A zero checksum over IPv4
//! means "not computed" and verifies; over IPv6 it is invalid (RFC 8200 §8.1).

use super::checksum::Delta;
use super::ip::{self, IpPair, IpProtocol};
use super::{read_u16, write_u16, Error, Field, Result};

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it. Use for emitting into a (reused) buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks its lengths. Use for untrusted input.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures `8 <= length field <= buffer.len()`. After `Ok`, no accessor or setter panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field (header and payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a header field, not a collection length
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, `8..length`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = usize::from(self.len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or_default()
    }

    /// The datagram bytes the checksum covers (`..length`, clamped to the buffer).
    #[inline]
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.len()).min(data.len())]
    }

    /// Whether the checksum is valid for these IP addresses. A zero checksum verifies over
    /// IPv4 (checksum not computed) and fails over IPv6. Always `true` under `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        if super::skip_checksum_verification() {
            return true;
        }
        if self.checksum() == 0 {
            return !ips.is_v6();
        }
        ip::transport_checksum_ok(ips, IpProtocol::UDP, self.datagram())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload (`8..length`),
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view (for example in a `TcpRepr<'a>` returned from a parsing helper).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let end = usize::from(self.len());
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(HEADER_LEN..end).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Swaps source and destination ports (the checksum does not change: the sum is the same).
    #[inline]
    pub fn swap_ports(&mut self) {
        let (src, dst) = (self.src_port(), self.dst_port());
        self.set_src_port(dst);
        self.set_dst_port(src);
    }

    /// The payload (`8..length`), mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        self.buffer.as_mut().get_mut(HEADER_LEN..end).unwrap_or_default()
    }

    /// Computes and stores the checksum for these IP addresses (over `..length`). A computed
    /// value of zero is stored as `0xffff`, as RFC 768 requires.
    #[inline]
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        self.set_checksum(0);
        let c = ip::transport_checksum(ips, IpProtocol::UDP, self.datagram());
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Applies an incremental change (RFC 1624) to the checksum: `delta` lists the words of the
    /// datagram *and of the pseudo header* (addresses) that changed.
    ///
    /// A stored zero is left alone: over IPv4 it means "no checksum" (RFC 768); over IPv6 it is
    /// invalid (RFC 8200 §8.1) and stays so, rather than becoming a value that might verify. A
    /// result of zero is stored as `0xffff` (RFC 768), as [`Self::fill_checksum`] does, so the
    /// update is bit-identical to a full recomputation (see [`Delta::apply`]).
    #[inline]
    pub fn update_checksum(&mut self, delta: Delta) {
        let old = self.checksum();
        if old == 0 {
            return;
        }
        let c = delta.apply(old);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// A UDP header: the two ports. Length and checksum follow from the payload and the IP
/// addresses and are written by `emit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port (never 0 in a parsed repr).
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a checked datagram; errors if the destination port is 0 (reserved). The checksum
    /// is *not* verified (see [`UdpPacket::verify_checksum`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<Self> {
        if packet.dst_port() == 0 {
            return Err(Error);
        }
        Ok(Self { src_port: packet.src_port(), dst_port: packet.dst_port() })
    }

    /// Header bytes (8). The payload follows them; the datagram is `8 + payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for a payload of `payload_len` bytes, with a zero checksum. Use when
    /// the payload is already in place; then call [`UdpPacket::fill_checksum`]. Panics if the
    /// buffer is shorter than 8 bytes.
    #[inline]
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>, payload_len: usize) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(HEADER_LEN + payload_len).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }

    /// Writes the whole datagram: the header, then `emit_payload` fills the `payload_len` payload
    /// bytes in place, then the checksum is computed. Panics if the buffer is shorter than
    /// `8 + payload_len` (or if `payload_len > 65527`).
    #[inline]
    pub fn emit<T, F>(&self, packet: &mut UdpPacket<T>, ips: &IpPair, payload_len: usize, emit_payload: F)
    where
        T: AsRef<[u8]> + AsMut<[u8]>,
        F: FnOnce(&mut [u8]),
    {
        assert!(HEADER_LEN + payload_len <= usize::from(u16::MAX), "UdpRepr::emit: datagram longer than 65535 bytes");
        self.emit_header(packet, payload_len);
        emit_payload(&mut packet.buffer.as_mut()[HEADER_LEN..HEADER_LEN + payload_len]);
        packet.fill_checksum(ips);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::ipv4::{tests::DNS_QUERY, Ipv4Packet};
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &UdpPacket<T>, ips: &IpPair) {
        let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum());
        let _ = (p.verify_checksum(ips), p.verify_checksum(&ips.reversed()));
        let payload = p.payload().len();
        assert_eq!(UdpPacket::new_unchecked(p.buffer.as_ref()).into_payload(), p.payload());
        if p.check_len().is_ok() {
            assert_eq!(payload + 8, usize::from(p.len()));
        }
        if let Ok(repr) = UdpRepr::parse(p) {
            assert_ne!(repr.dst_port, 0);
        }
    }

    fn exercise_mut(bytes: &[u8], ips: &IpPair) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = UdpPacket::new_checked(&mut buf[..]) else {
            return;
        };
        p.swap_ports();
        p.set_src_port(1);
        p.set_dst_port(2);
        let _ = p.payload_mut().len();
        p.fill_checksum(ips);
        assert!(p.verify_checksum(ips));
        p.set_len(u16::MAX);
        let _ = p.payload_mut().len();
        p.fill_checksum(ips);
        exercise(&p, ips);
        p.set_len(0);
        let _ = p.payload_mut().len();
        p.fill_checksum(ips);
        exercise(&p, ips);
    }

    fn dns_ips() -> IpPair {
        IpPair::V4 { src: Ipv4Addr::new(192, 168, 1, 100), dst: Ipv4Addr::new(8, 8, 8, 8) }
    }

    #[test]
    fn parses_known_datagram() {
        let ip = Ipv4Packet::new_checked(&DNS_QUERY[..]).unwrap();
        let p = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53000, 53, 37));
        assert_eq!(p.checksum(), 0x74b1);
        assert!(p.verify_checksum(&dns_ips()));
        assert!(
            !p.verify_checksum(&IpPair::V4 { src: Ipv4Addr::new(192, 168, 1, 101), dst: Ipv4Addr::new(8, 8, 8, 8) })
        );
        assert_eq!(&p.payload()[..2], &[0x1a, 0x2b]);
        assert_eq!(&p.payload()[12..20], b"\x07example");
        let repr = UdpRepr::parse(&p).unwrap();
        assert_eq!(repr, UdpRepr { src_port: 53000, dst_port: 53 });
        // Emit it again from the repr and the payload: byte-identical, checksum included.
        let mut out = [0u8; 37];
        let payload = p.payload();
        repr.emit(&mut UdpPacket::new_unchecked(&mut out[..]), &dns_ips(), payload.len(), |buf| {
            buf.copy_from_slice(payload)
        });
        assert_eq!(out, DNS_QUERY[20..]);
    }

    /// `update_checksum` keeps a zero ("no checksum") and turns a computed zero into 0xffff,
    /// exactly as `fill_checksum` does: the source port that makes the checksum compute to zero
    /// is found by brute force with `fill_checksum`, then reached incrementally.
    #[test]
    fn incremental_update_zero_rules() {
        let original = DNS_QUERY[20..].to_vec();
        let (old_port, old_sum) = (53000u16, 0x74b1u16);
        let port = (0..=u16::MAX)
            .find(|&port| {
                let mut b = original.clone();
                let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
                p.set_src_port(port);
                p.fill_checksum(&dns_ips());
                p.checksum() == 0xffff
            })
            .expect("some port makes the sum 0xffff");
        let mut b = original.clone();
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.set_src_port(port);
        p.update_checksum(Delta::ZERO.add_u16(old_port, port));
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&dns_ips()));
        // And back: from the 0xffff representation to the original value.
        p.set_src_port(old_port);
        p.update_checksum(Delta::ZERO.add_u16(port, old_port));
        assert_eq!(p.checksum(), old_sum);
        // A zero checksum stays zero.
        p.set_checksum(0);
        p.update_checksum(Delta::ZERO.add_u16(old_port, port));
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn zero_checksum_rules_and_padding() {
        let mut b = DNS_QUERY[20..].to_vec();
        b[6] = 0;
        b[7] = 0;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(&dns_ips()));
        let v6 = IpPair::V6 { src: Ipv6Addr::LOCALHOST, dst: Ipv6Addr::LOCALHOST };
        assert!(!p.verify_checksum(&v6));
        b.extend_from_slice(&[0xee; 5]);
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        p.fill_checksum(&dns_ips());
        assert_eq!(p.checksum(), 0x74b1); // padding is not summed
    }

    #[test]
    fn computed_zero_is_stored_as_ffff() {
        // Pick a payload word so that the checksum computes to zero: fill once, then fold the
        // stored value into the payload so the total becomes 0xffff before inversion.
        let ips = dns_ips();
        let mut b = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        UdpRepr { src_port: 1, dst_port: 2 }.emit_header(&mut p, 2);
        p.fill_checksum(&ips);
        let c = p.checksum();
        p.payload_mut().copy_from_slice(&c.to_be_bytes());
        p.fill_checksum(&ips);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&ips));
    }

    #[test]
    fn check_len_rules() {
        let mut b = DNS_QUERY[20..].to_vec();
        assert!(UdpPacket::new_checked(&b[..]).is_ok());
        b[5] = 7;
        assert!(UdpPacket::new_checked(&b[..]).is_err());
        b[5] = 38;
        assert!(UdpPacket::new_checked(&b[..]).is_err());
        b[5] = 8;
        assert!(UdpPacket::new_checked(&b[..]).unwrap().payload().is_empty());
        b[2] = 0;
        b[3] = 0;
        assert!(UdpRepr::parse(&UdpPacket::new_checked(&b[..]).unwrap()).is_err());
    }

    #[test]
    fn every_prefix_is_safe() {
        let udp = &DNS_QUERY[20..];
        for len in 0..=udp.len() {
            let checked = UdpPacket::new_checked(&udp[..len]);
            assert_eq!(checked.is_ok(), len == udp.len(), "len {len}");
            if let Ok(p) = checked {
                exercise(&p, &dns_ips());
            }
            exercise_mut(&udp[..len], &dns_ips());
        }
    }

    fn any_ips() -> impl Strategy<Value = IpPair> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| IpPair::V4 { src: s.into(), dst: d.into() }),
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| IpPair::V6 { src: s.into(), dst: d.into() }),
        ]
    }

    proptest! {
        #[test]
        fn repr_round_trip(
            src_port in any::<u16>(),
            dst_port in 1u16..,
            ips in any_ips(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            junk in any::<u8>(),
        ) {
            let repr = UdpRepr { src_port, dst_port };
            let mut buf = vec![junk; repr.buffer_len() + payload.len()];
            let mut p = UdpPacket::new_unchecked(&mut buf[..]);
            repr.emit(&mut p, &ips, payload.len(), |b| b.copy_from_slice(&payload));
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(&ips));
            prop_assert_ne!(p.checksum(), 0);
            prop_assert_eq!(UdpRepr::parse(&p).unwrap(), repr);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), ips in any_ips()) {
            if let Ok(p) = UdpPacket::new_checked(&bytes[..]) {
                exercise(&p, &ips);
            }
            exercise_mut(&bytes, &ips);
        }
    }
}
