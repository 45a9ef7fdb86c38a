//! IPv4 packets (RFC 791): header fields, options bytes, payload, header checksum, and in-place
//! rewrites (TTL, addresses) with incremental checksum update.
//!
//! [`Ipv4Packet::check_len`] guarantees `20 <= IHL*4 <= total_len <= buffer.len()`, so the header,
//! its options and the payload (`IHL*4..total_len`) are all inside the buffer; bytes after
//! `total_len` (Ethernet padding) are ignored. [`Ipv4Repr`] describes an unfragmented packet
//! without options; `parse` skips options and rejects fragments.

use core::net::Ipv4Addr;

use super::checksum;
use super::ip::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};

mod field {
    use super::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// TTL and protocol as one checksummed 16-bit word.
    pub const TTL_PROTOCOL: Field = 8..10;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
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

    /// Ensures `20 <= IHL*4 <= total_len <= buffer.len()`. After `Ok`, no accessor or setter
    /// panics. The version is not checked here (see [`Ipv4Repr::parse`]).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let header_len = usize::from(self.header_len());
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || header_len > total_len || total_len > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (4 for a valid packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole DSCP/ECN byte (formerly type of service).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated services code point (upper six bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit congestion notification (lower two bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total length (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The "don't fragment" flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The "more fragments" flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) * 8
    }

    /// Whether this packet is a fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_u32(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// Option bytes (`20..IHL*4`), unparsed.
    #[inline]
    pub fn options(&self) -> &[u8] {
        let end = usize::from(self.header_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or_default()
    }

    /// The payload, `IHL*4..total_len` (Ethernet padding after `total_len` excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        self.buffer.as_ref().get(range).unwrap_or_default()
    }

    /// The header bytes the checksum covers, clamped to the buffer.
    #[inline]
    fn header_bytes(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.header_len()).min(data.len())]
    }

    /// Whether the header checksum is valid. Always `true` under `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        if super::skip_checksum_verification() {
            return true;
        }
        checksum::data(self.header_bytes()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload (`IHL*4..total_len`),
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view (for example in a `TcpRepr<'a>` returned from a parsing helper).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(range).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (stored as `len / 4`).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    #[inline]
    fn update_flg_off(&mut self, mask: u16, bits: u16) {
        let data = self.buffer.as_mut();
        let old = read_u16(data, field::FLG_OFF);
        write_u16(data, field::FLG_OFF, (old & !mask) | (bits & mask));
    }

    /// Sets or clears "don't fragment".
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.update_flg_off(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets or clears "more fragments".
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.update_flg_off(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.update_flg_off(FRAG_OFFSET_MASK, bytes / 8);
    }

    /// Sets the time to live (the checksum is not touched; see [`Self::rewrite_ttl`]).
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address (the checksum is not touched; see [`Self::rewrite_src_addr`]).
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::SRC_ADDR, addr.to_bits());
    }

    /// Sets the destination address (the checksum is not touched).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        write_u32(self.buffer.as_mut(), field::DST_ADDR, addr.to_bits());
    }

    /// Option bytes, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        self.buffer.as_mut().get_mut(HEADER_LEN..end).unwrap_or_default()
    }

    /// The payload (`IHL*4..total_len`), mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        self.buffer.as_mut().get_mut(range).unwrap_or_default()
    }

    /// Computes and stores the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header_bytes());
        self.set_checksum(!sum);
    }

    /// Applies an incremental change (RFC 1624) to the header checksum: `delta` lists the header
    /// words that changed (see [`checksum::Delta`]).
    #[inline]
    pub fn update_checksum(&mut self, delta: checksum::Delta) {
        let c = delta.apply(self.checksum());
        self.set_checksum(c);
    }

    /// Sets the TTL and updates the header checksum incrementally (RFC 1624): the forwarding
    /// path's "decrement TTL" without re-summing the header.
    #[inline]
    pub fn rewrite_ttl(&mut self, ttl: u8) {
        let data = self.buffer.as_mut();
        let old = read_u16(data, field::TTL_PROTOCOL);
        data[field::TTL] = ttl;
        let new = read_u16(data, field::TTL_PROTOCOL);
        let c = checksum::update_u16(read_u16(data, field::CHECKSUM), old, new);
        write_u16(data, field::CHECKSUM, c);
    }

    /// Sets the source address and updates the header checksum incrementally. A NAT must
    /// also update the transport checksum (`checksum::update_u32` on the TCP/UDP field).
    #[inline]
    pub fn rewrite_src_addr(&mut self, addr: Ipv4Addr) {
        self.rewrite_u32(field::SRC_ADDR, addr.to_bits());
    }

    /// Sets the destination address and updates the header checksum incrementally.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, addr: Ipv4Addr) {
        self.rewrite_u32(field::DST_ADDR, addr.to_bits());
    }

    #[inline]
    fn rewrite_u32(&mut self, f: Field, new: u32) {
        let data = self.buffer.as_mut();
        let old = read_u32(data, f.clone());
        write_u32(data, f, new);
        let c = checksum::update_u32(read_u16(data, field::CHECKSUM), old, new);
        write_u16(data, field::CHECKSUM, c);
    }
}

/// An unfragmented IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes; `emit` stores `20 + payload_len` as the total length, so this
    /// must be at most `65535 - 20`.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP (upper six bits) and ECN (lower two bits).
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// The "don't fragment" flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parses a checked packet: errors if the version is not 4 or the packet is a fragment.
    /// Options are skipped. The checksum is *not* verified (see
    /// [`Ipv4Packet::verify_checksum`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        if packet.version() != 4 || packet.is_fragment() {
            return Err(Error);
        }
        let payload_len = usize::from(packet.total_len()).checked_sub(usize::from(packet.header_len())).ok_or(Error)?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len,
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Header bytes `emit` writes (20). The payload follows them.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header length plus payload length.
    #[inline]
    pub const fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header, checksum included. Panics if the buffer is shorter than
    /// [`Self::buffer_len`]. The payload bytes are not touched.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total = u16::try_from(self.total_len()).unwrap_or(u16::MAX);
        let data = packet.buffer.as_mut();
        data[field::VER_IHL] = 0x40 | (HEADER_LEN / 4) as u8;
        data[field::DSCP_ECN] = self.dscp_ecn;
        write_u16(data, field::LENGTH, total);
        write_u16(data, field::IDENT, self.ident);
        write_u16(data, field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        data[field::TTL] = self.ttl;
        data[field::PROTOCOL] = self.protocol.0;
        write_u32(data, field::SRC_ADDR, self.src_addr.to_bits());
        write_u32(data, field::DST_ADDR, self.dst_addr.to_bits());
        packet.fill_checksum();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A DNS query for `example.com` A from 192.168.1.100:53000 to 8.8.8.8:53, both checksums
    /// computed independently of this crate (header a9a8, UDP 74b1).
    pub(in crate::wire) const DNS_QUERY: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0xbe, 0xef, 0x40, 0x00, 0x40, 0x11, 0xa9, 0xa8, //
        0xc0, 0xa8, 0x01, 0x64, 0x08, 0x08, 0x08, 0x08, 0xcf, 0x08, 0x00, 0x35, //
        0x00, 0x25, 0x74, 0xb1, 0x1a, 0x2b, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, //
        0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
        let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.dscp(), p.ecn());
        let _ = (p.total_len(), p.ident(), p.dont_frag(), p.more_frags());
        let _ = (p.frag_offset(), p.is_fragment(), p.ttl(), p.protocol());
        let _ = (p.checksum(), p.src_addr(), p.dst_addr(), p.verify_checksum());
        let (options, payload) = (p.options().len(), p.payload().len());
        assert_eq!(Ipv4Packet::new_unchecked(p.buffer.as_ref()).into_payload(), p.payload());
        if p.check_len().is_ok() {
            assert_eq!(options + 20, usize::from(p.header_len()));
            assert_eq!(payload, usize::from(p.total_len() - u16::from(p.header_len())));
        }
        if let Ok(repr) = Ipv4Repr::parse(p) {
            assert_eq!(repr.payload_len, payload);
        }
    }

    fn exercise_mut(bytes: &[u8]) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = Ipv4Packet::new_checked(&mut buf[..]) else {
            return;
        };
        p.rewrite_ttl(0);
        p.rewrite_src_addr(Ipv4Addr::BROADCAST);
        p.rewrite_dst_addr(Ipv4Addr::UNSPECIFIED);
        p.set_dont_frag(true);
        p.set_more_frags(true);
        p.set_frag_offset(0xffff);
        p.set_ident(1);
        p.set_dscp_ecn(0xff);
        p.set_protocol(IpProtocol::TCP);
        p.set_ttl(9);
        p.set_src_addr(Ipv4Addr::LOCALHOST);
        p.set_dst_addr(Ipv4Addr::LOCALHOST);
        let _ = (p.options_mut().len(), p.payload_mut().len());
        p.fill_checksum();
        assert!(p.verify_checksum());
        // Break every length invariant: nothing may panic afterwards.
        p.set_version(15);
        p.set_header_len(60);
        p.set_total_len(u16::MAX);
        let _ = (p.options_mut().len(), p.payload_mut().len());
        p.fill_checksum();
        exercise(&p);
        p.set_header_len(0);
        p.set_total_len(3);
        let _ = (p.options_mut().len(), p.payload_mut().len());
        p.fill_checksum();
        exercise(&p);
    }

    #[test]
    fn parses_known_packet() {
        let p = Ipv4Packet::new_checked(&DNS_QUERY[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0xa9a8);
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 57));
        assert_eq!((p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset()), (0xbeef, true, false, 0));
        assert_eq!((p.ttl(), p.protocol()), (64, IpProtocol::UDP));
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(8, 8, 8, 8));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 37);
        let repr = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Ipv4Repr {
                src_addr: Ipv4Addr::new(192, 168, 1, 100),
                dst_addr: Ipv4Addr::new(8, 8, 8, 8),
                protocol: IpProtocol::UDP,
                payload_len: 37,
                ttl: 64,
                dscp_ecn: 0,
                ident: 0xbeef,
                dont_frag: true,
            }
        );
        let mut out = DNS_QUERY;
        out[..20].fill(0xcc);
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, DNS_QUERY);
    }

    #[test]
    fn bad_checksum_and_padding() {
        let mut bytes = DNS_QUERY.to_vec();
        bytes[11] ^= 1;
        assert!(!Ipv4Packet::new_checked(&bytes[..]).unwrap().verify_checksum());
        // Ethernet padding after total_len is not payload.
        let mut padded = DNS_QUERY.to_vec();
        padded.extend_from_slice(&[0; 7]);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 37);
    }

    #[test]
    fn check_len_rules() {
        let len_ok = |f: &dyn Fn(&mut [u8])| {
            let mut b = DNS_QUERY;
            f(&mut b);
            Ipv4Packet::new_checked(&b[..]).is_ok()
        };
        assert!(len_ok(&|_| {}));
        assert!(!len_ok(&|b| b[0] = 0x44)); // IHL 16 bytes < 20
        assert!(!len_ok(&|b| b[0] = 0x4f)); // IHL*4 = 60 > total length 57
        assert!(!len_ok(&|b| b[3] = 19)); // total length < IHL*4
        assert!(!len_ok(&|b| b[3] = 58)); // total length > buffer
        assert!(len_ok(&|b| b[3] = 20)); // header only: empty payload is fine
        assert!(len_ok(&|b| b[0] = 0x46)); // 4 option bytes, still consistent
    }

    #[test]
    fn options_and_repr_rejections() {
        let mut b = DNS_QUERY;
        b[0] = 0x46; // four option bytes: the first four UDP bytes become "options"
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options(), &DNS_QUERY[20..24]);
        assert_eq!(Ipv4Repr::parse(&p).unwrap().payload_len, 33);
        let mut b = DNS_QUERY;
        b[0] = 0x65;
        assert!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()).is_err());
        let mut b = DNS_QUERY;
        b[6] = 0x20; // MF
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment() && p.more_frags());
        assert!(Ipv4Repr::parse(&p).is_err());
        let mut b = DNS_QUERY;
        b[7] = 0x01; // offset 8
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.frag_offset(), 8);
        assert!(Ipv4Repr::parse(&p).is_err());
    }

    #[test]
    fn in_place_rewrites_keep_checksum_valid() {
        let mut b = DNS_QUERY;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.rewrite_ttl(p.ttl() - 1);
        assert!(p.verify_checksum());
        p.rewrite_src_addr(Ipv4Addr::new(203, 0, 113, 9));
        p.rewrite_dst_addr(Ipv4Addr::new(198, 18, 0, 1));
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
        assert_eq!((p.ttl(), p.src_addr()), (63, Ipv4Addr::new(203, 0, 113, 9)));
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        assert_eq!((p.dont_frag(), p.more_frags(), p.frag_offset()), (false, true, 1480));
        p.payload_mut()[0] = 0xaa;
        p.set_header_len(24);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 33);
        assert_eq!(b[20..24], [1, 1, 1, 0]);
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=DNS_QUERY.len() {
            let prefix = &DNS_QUERY[..len];
            let checked = Ipv4Packet::new_checked(prefix);
            assert_eq!(checked.is_ok(), len == DNS_QUERY.len(), "len {len}");
            if let Ok(p) = checked {
                exercise(&p);
            }
            exercise_mut(prefix);
            // Unchecked views of the prefix with a matching total length are still consistent.
            let mut b = prefix.to_vec();
            if len >= 20 {
                b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                let p = Ipv4Packet::new_checked(&b[..]).unwrap();
                exercise(&p);
                exercise_mut(&b);
            }
        }
    }

    fn any_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..1500,
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
        )
            .prop_map(|(s, d, proto, payload_len, ttl, dscp_ecn, ident, dont_frag)| Ipv4Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                protocol: IpProtocol(proto),
                payload_len,
                ttl,
                dscp_ecn,
                ident,
                dont_frag,
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr(), junk in any::<u8>()) {
            let mut buf = vec![junk; repr.total_len()];
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p);
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p).unwrap(), repr);
            prop_assert_eq!(p.payload().len(), repr.payload_len);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                exercise(&p);
            }
            exercise_mut(&bytes);
        }

        /// Mostly-valid headers (version 4, consistent lengths) with random other fields.
        #[test]
        fn near_valid_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 20..100), ihl in 5u8..16) {
            let len = bytes.len() as u16;
            bytes[0] = 0x40 | ihl;
            bytes[2..4].copy_from_slice(&len.to_be_bytes());
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                exercise(&p);
                prop_assert!(usize::from(p.header_len()) <= bytes.len());
            }
            exercise_mut(&bytes);
        }
    }
}
