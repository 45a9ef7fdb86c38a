//! The IPv6 fixed header (RFC 8200 §3).
//!
//! [`Ipv6Packet::check_len`] guarantees the 40-byte header and `40 + payload_len <= buffer.len()`;
//! [`Ipv6Packet::payload`] is exactly `payload_len` bytes (padding excluded). Extension headers
//! are not walked: `next_header` says what follows the fixed header, and a caller that wants to
//! look past hop-by-hop, routing or fragment headers does so on `payload()`. Jumbograms
//! (payload length 0 with a hop-by-hop jumbo option) are not supported.

use core::net::Ipv6Addr;

use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};

mod field {
    use super::Field;

    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet (fixed header and payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
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

    /// Ensures the fixed header and `payload_len` bytes after it are in the buffer. After `Ok`,
    /// no accessor or setter panics. The version is checked by [`Ipv6Repr::parse`].
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    /// IP version (6 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class (DSCP in the upper six bits, ECN in the lower two).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// Payload length (everything after the fixed header, extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The header that follows the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let data = self.buffer.as_ref();
        Ipv6Addr::from(<[u8; 16]>::try_from(&data[field::SRC_ADDR]).unwrap_or([0; 16]))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let data = self.buffer.as_ref();
        Ipv6Addr::from(<[u8; 16]>::try_from(&data[field::DST_ADDR]).unwrap_or([0; 16]))
    }

    /// The payload: `payload_len` bytes after the fixed header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or_default()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The payload (`payload_len` bytes after the fixed header),
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view (for example in a `TcpRepr<'a>` returned from a parsing helper).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(HEADER_LEN..end).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn update_ver_tc_flow(&mut self, mask: u32, bits: u32) {
        let data = self.buffer.as_mut();
        let old = read_u32(data, field::VER_TC_FLOW);
        write_u32(data, field::VER_TC_FLOW, (old & !mask) | (bits & mask));
    }

    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        self.update_ver_tc_flow(0xf000_0000, u32::from(version) << 28);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        self.update_ver_tc_flow(0x0ff0_0000, u32::from(value) << 20);
    }

    /// Sets the flow label (bits above the lower 20 are ignored).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        self.update_ver_tc_flow(FLOW_LABEL_MASK, value);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.0;
    }

    /// Sets the hop limit (IPv6 has no header checksum, so nothing else changes).
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        self.buffer.as_mut().get_mut(HEADER_LEN..end).unwrap_or_default()
    }
}

/// An IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The header that follows.
    pub next_header: IpProtocol,
    /// Bytes after the fixed header (at most 65535).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (lower 20 bits; `emit` ignores the rest).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a checked packet; errors if the version is not 6.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self> {
        if packet.version() != 6 {
            return Err(Error);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Header bytes `emit` writes (40). The payload follows them.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header. Panics if the buffer is shorter than [`Self::buffer_len`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        let word = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & FLOW_LABEL_MASK);
        write_u32(packet.buffer.as_mut(), field::VER_TC_FLOW, word);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) {
        let _ = (p.version(), p.traffic_class(), p.flow_label(), p.next_header());
        let _ = (p.hop_limit(), p.src_addr(), p.dst_addr());
        let payload = p.payload().len();
        assert_eq!(Ipv6Packet::new_unchecked(p.buffer.as_ref()).into_payload(), p.payload());
        if p.check_len().is_ok() {
            assert_eq!(payload, usize::from(p.payload_len()));
        }
        if let Ok(repr) = Ipv6Repr::parse(p) {
            assert_eq!(repr.buffer_len(), 40);
        }
    }

    fn exercise_mut(bytes: &[u8]) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = Ipv6Packet::new_checked(&mut buf[..]) else {
            return;
        };
        p.set_version(6);
        p.set_traffic_class(0xff);
        p.set_flow_label(u32::MAX);
        p.set_next_header(IpProtocol::UDP);
        p.set_hop_limit(0);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        let _ = p.payload_mut().len();
        p.set_payload_len(u16::MAX);
        let _ = p.payload_mut().len();
        exercise(&p);
    }

    /// An ICMPv6 echo request, 2001:db8::1 → 2001:db8::2, hop limit 64, flow label 0x12345,
    /// traffic class 0xb8 (EF), 8 payload bytes.
    const ECHO: [u8; 48] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x08, 0x3a, 0x40, // ver 6, tc b8, flow 12345, len 8, ICMPv6
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01,
    ];

    #[test]
    fn parses_known_packet() {
        let p = Ipv6Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::ICMPV6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &ECHO[40..]);
        let repr = Ipv6Repr::parse(&p).unwrap();
        let mut out = ECHO;
        out[..40].fill(0x77);
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, ECHO);
    }

    #[test]
    fn lengths_and_version() {
        let mut padded = ECHO.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(Ipv6Packet::new_checked(&padded[..]).unwrap().payload().len(), 8);
        let mut long = ECHO;
        long[5] = 9;
        assert!(Ipv6Packet::new_checked(&long[..]).is_err());
        let mut v4 = ECHO;
        v4[0] = 0x4b;
        assert!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&v4[..]).unwrap()).is_err());
        let mut b = ECHO;
        let mut p = Ipv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_flow_label(0xfff_ffff);
        assert_eq!((p.flow_label(), p.traffic_class(), p.version()), (0xfffff, 0xb8, 6));
        p.set_traffic_class(0);
        assert_eq!((p.flow_label(), p.traffic_class(), p.version()), (0xfffff, 0, 6));
        p.payload_mut()[0] = 0x81;
        assert_eq!(b[40], 0x81);
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=ECHO.len() {
            let checked = Ipv6Packet::new_checked(&ECHO[..len]);
            assert_eq!(checked.is_ok(), len == ECHO.len(), "len {len}");
            if let Ok(p) = checked {
                exercise(&p);
            }
            exercise_mut(&ECHO[..len]);
        }
    }

    fn any_repr() -> impl Strategy<Value = Ipv6Repr> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            0usize..2000,
            any::<u8>(),
            any::<u8>(),
            0u32..=FLOW_LABEL_MASK,
        )
            .prop_map(|(s, d, nh, payload_len, hop_limit, traffic_class, flow_label)| Ipv6Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                next_header: IpProtocol(nh),
                payload_len,
                hop_limit,
                traffic_class,
                flow_label,
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr(), junk in any::<u8>()) {
            let mut buf = vec![junk; repr.buffer_len() + repr.payload_len];
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
                exercise(&p);
            }
            exercise_mut(&bytes);
        }
    }
}
