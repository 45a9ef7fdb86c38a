//! ICMPv6 messages (RFC 4443): type, code, the checksum over the IPv6 pseudo header, echo
//! identifier and sequence number, the packet-too-big MTU, and the quoted packet of an error.
//!
//! [`Icmpv6Packet::check_len`] guarantees the 8-byte header. As with ICMPv4 there is no length
//! field: the view's buffer must be exactly the message (the IPv6 payload), since the checksum
//! covers all of it. Unlike ICMPv4, the checksum also covers the IPv6 pseudo header (RFC 4443
//! §2.3), so verifying and filling it take the [`IpPair`].
//!
//! There is no `Repr` yet: the engine only rewrites ICMPv6 messages in place (NAT of errors, see
//! `crate::nat`); neighbour discovery is not implemented.

use core::fmt;

use super::checksum::Delta;
use super::ip::{self, IpPair, IpProtocol};
use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Rest, Result};

/// An ICMPv6 message type. Types below 128 are errors (RFC 4443 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icmpv6Message(pub u8);

impl Icmpv6Message {
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Self = Self(1);
    /// Packet too big (path-MTU discovery, RFC 8201).
    pub const PKT_TOO_BIG: Self = Self(2);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Self = Self(3);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Self = Self(4);
    /// Echo request.
    pub const ECHO_REQUEST: Self = Self(128);
    /// Echo reply.
    pub const ECHO_REPLY: Self = Self(129);
    /// Router solicitation (RFC 4861).
    pub const ROUTER_SOLICIT: Self = Self(133);
    /// Router advertisement.
    pub const ROUTER_ADVERT: Self = Self(134);
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: Self = Self(135);
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: Self = Self(136);
    /// Redirect.
    pub const REDIRECT: Self = Self(137);

    /// Whether this is an error message (type below 128).
    #[inline]
    pub const fn is_error(self) -> bool {
        self.0 < 128
    }

    /// Whether this is one of the four error messages that quote the invoking packet and that a
    /// NAT translates (destination unreachable, packet too big, time exceeded, parameter problem).
    #[inline]
    pub const fn quotes_packet(self) -> bool {
        matches!(self.0, 1..=4)
    }
}

impl fmt::Display for Icmpv6Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::DST_UNREACHABLE => "destination unreachable",
            Self::PKT_TOO_BIG => "packet too big",
            Self::TIME_EXCEEDED => "time exceeded",
            Self::PARAM_PROBLEM => "parameter problem",
            Self::ECHO_REQUEST => "echo request",
            Self::ECHO_REPLY => "echo reply",
            Self::ROUTER_SOLICIT => "router solicitation",
            Self::ROUTER_ADVERT => "router advertisement",
            Self::NEIGHBOR_SOLICIT => "neighbor solicitation",
            Self::NEIGHBOR_ADVERT => "neighbor advertisement",
            Self::REDIRECT => "redirect",
            Self(other) => return write!(f, "type {other}"),
        };
        f.write_str(name)
    }
}

mod field {
    use super::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Echo request/reply.
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    /// Packet too big: the MTU of the next-hop link (32 bits).
    pub const MTU: Field = 4..8;
    /// The four type-specific header bytes.
    pub const REST_OF_HEADER: Field = 4..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMPv6 header.
pub const HEADER_LEN: usize = field::DATA.start;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking it. Use for emitting into a (reused) buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks its length. Use for untrusted input.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the 8-byte header is present. After `Ok`, no accessor or setter panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv6Message {
        Icmpv6Message(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU (meaningful for packet too big).
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::MTU)
    }

    /// The four type-specific header bytes.
    #[inline]
    pub fn rest_of_header(&self) -> &[u8] {
        &self.buffer.as_ref()[field::REST_OF_HEADER]
    }

    /// Everything after the header (echo data, or as much of the invoking packet as fits for
    /// errors).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the pseudo header and the whole message is valid. Always `true`
    /// under `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        if super::skip_checksum_verification() {
            return true;
        }
        ip::transport_checksum_ok(ips, IpProtocol::ICMPV6, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv6Packet<&'a T> {
    /// Everything after the header,
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view.
    #[inline]
    pub fn into_data(self) -> &'a [u8] {
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(field::DATA).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: Icmpv6Message) {
        self.buffer.as_mut()[field::TYPE] = value.0;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the packet-too-big MTU.
    #[inline]
    pub fn set_mtu(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::MTU, value);
    }

    /// Everything after the header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and stores the checksum over the pseudo header and the whole message.
    #[inline]
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        self.set_checksum(0);
        let c = ip::transport_checksum(ips, IpProtocol::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Applies an incremental change (RFC 1624) to the stored checksum: `delta` lists the words
    /// of the message *and of the pseudo header* (addresses) that changed.
    #[inline]
    pub fn update_checksum(&mut self, delta: Delta) {
        let c = delta.apply(self.checksum());
        self.set_checksum(c);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use core::net::Ipv6Addr;

    use super::*;
    use proptest::prelude::*;

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>, ips: &IpPair) {
        let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
        let _ = (p.echo_seq_no(), p.mtu(), p.verify_checksum(ips));
        let _ = (p.msg_type().is_error(), p.msg_type().quotes_packet(), p.msg_type().to_string());
        assert_eq!(p.rest_of_header().len(), 4);
        assert_eq!(Icmpv6Packet::new_unchecked(p.buffer.as_ref()).into_data(), p.data());
        assert_eq!(p.data().len() + 8, p.buffer.as_ref().len());
    }

    fn exercise_mut(bytes: &[u8], ips: &IpPair) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = Icmpv6Packet::new_checked(&mut buf[..]) else {
            return;
        };
        p.set_msg_type(Icmpv6Message::PKT_TOO_BIG);
        p.set_msg_code(0);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.set_mtu(1280);
        let _ = p.data_mut().len();
        p.fill_checksum(ips);
        assert!(p.verify_checksum(ips));
        p.update_checksum(Delta::ZERO.add_u16(0, 1));
        exercise(&p, ips);
    }

    fn pair() -> IpPair {
        IpPair::V6 {
            src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        }
    }

    /// Echo request 2001:db8::1 → 2001:db8::2, id 0x1234, seq 1, data "abcde" (odd length);
    /// checksum 0xe846 computed independently of this crate (Python, RFC 1071 over the pseudo
    /// header and the message).
    const ECHO_REQUEST: [u8; 13] = [0x80, 0x00, 0xe8, 0x46, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd', b'e'];

    #[test]
    fn parses_known_echo_request() {
        let p = Icmpv6Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert!(p.verify_checksum(&pair()));
        // A different pseudo header (one destination bit flipped) does not verify.
        let IpPair::V6 { src, dst } = pair() else { unreachable!() };
        assert!(!p.verify_checksum(&IpPair::V6 { src, dst: Ipv6Addr::from_bits(dst.to_bits() ^ 1) }));
        assert_eq!(p.msg_type(), Icmpv6Message::ECHO_REQUEST);
        assert!(!p.msg_type().is_error());
        assert_eq!((p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq_no()), (0, 0xe846, 0x1234, 1));
        assert_eq!(p.data(), b"abcde");
        let mut b = ECHO_REQUEST;
        let mut q = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        q.fill_checksum(&pair());
        assert_eq!(b, ECHO_REQUEST);
    }

    #[test]
    fn incremental_update_matches_fill() {
        let mut b = ECHO_REQUEST;
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        // Echo request → reply (type 128 → 129) and a new destination address: the type word
        // and the pseudo header change.
        let new_dst = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x99);
        let IpPair::V6 { src, dst } = pair() else { unreachable!() };
        let delta = Delta::ZERO.add_u16(0x8000, 0x8100).add_u128(dst.to_bits(), new_dst.to_bits());
        p.set_msg_type(Icmpv6Message::ECHO_REPLY);
        p.update_checksum(delta);
        let incremental = p.checksum();
        let ips = IpPair::V6 { src, dst: new_dst };
        assert!(p.verify_checksum(&ips));
        p.fill_checksum(&ips);
        assert_eq!(p.checksum(), incremental);
    }

    #[test]
    fn names_and_classes() {
        assert_eq!(Icmpv6Message::PKT_TOO_BIG.to_string(), "packet too big");
        assert_eq!(Icmpv6Message(200).to_string(), "type 200");
        assert!(Icmpv6Message::PARAM_PROBLEM.quotes_packet());
        assert!(!Icmpv6Message(0).quotes_packet() && Icmpv6Message(0).is_error());
        assert!(!Icmpv6Message::NEIGHBOR_SOLICIT.is_error());
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=ECHO_REQUEST.len() {
            let checked = Icmpv6Packet::new_checked(&ECHO_REQUEST[..len]);
            assert_eq!(checked.is_ok(), len >= 8, "len {len}");
            if let Ok(p) = checked {
                exercise(&p, &pair());
            }
            exercise_mut(&ECHO_REQUEST[..len], &pair());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Icmpv6Packet::new_checked(&bytes[..]) {
                exercise(&p, &pair());
            }
            exercise_mut(&bytes, &pair());
        }
    }
}
