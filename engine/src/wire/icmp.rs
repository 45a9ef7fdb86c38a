//! ICMPv4 messages (RFC 792): type, code, checksum, echo identifier and sequence number, and
//! the error messages a forwarder sends (destination unreachable, time exceeded).
//!
//! [`Icmpv4Packet::check_len`] guarantees the 8-byte header. ICMP has no length field: the view's
//! buffer must be exactly the message (the IP payload), since the checksum covers all of it and
//! the data is everything after the header.

use core::fmt;

use super::checksum;
use super::{read_u16, write_u16, Error, Field, Rest, Result};

/// An ICMPv4 message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icmpv4Message(pub u8);

impl Icmpv4Message {
    /// Echo reply.
    pub const ECHO_REPLY: Self = Self(0);
    /// Destination unreachable.
    pub const DST_UNREACHABLE: Self = Self(3);
    /// Redirect.
    pub const REDIRECT: Self = Self(5);
    /// Echo request.
    pub const ECHO_REQUEST: Self = Self(8);
    /// Time exceeded.
    pub const TIME_EXCEEDED: Self = Self(11);
    /// Parameter problem.
    pub const PARAM_PROBLEM: Self = Self(12);
    /// Timestamp request.
    pub const TIMESTAMP: Self = Self(13);
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: Self = Self(14);

    /// Whether this is an error message that quotes the invoking packet's IP header and at least
    /// its first 8 payload bytes, and that a NAT translates: destination unreachable (including
    /// RFC 1191 "fragmentation needed"), time exceeded, parameter problem (RFC 792).
    #[inline]
    pub const fn quotes_packet(self) -> bool {
        matches!(self, Self::DST_UNREACHABLE | Self::TIME_EXCEEDED | Self::PARAM_PROBLEM)
    }
}

impl fmt::Display for Icmpv4Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ECHO_REPLY => f.write_str("echo reply"),
            Self::DST_UNREACHABLE => f.write_str("destination unreachable"),
            Self::REDIRECT => f.write_str("redirect"),
            Self::ECHO_REQUEST => f.write_str("echo request"),
            Self::TIME_EXCEEDED => f.write_str("time exceeded"),
            Self::PARAM_PROBLEM => f.write_str("parameter problem"),
            Self::TIMESTAMP => f.write_str("timestamp"),
            Self::TIMESTAMP_REPLY => f.write_str("timestamp reply"),
            Self(other) => write!(f, "type {other}"),
        }
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
    /// Destination unreachable, code 4 ("fragmentation needed", RFC 1191).
    pub const NEXT_HOP_MTU: Field = 6..8;
    /// The four type-specific header bytes.
    pub const REST_OF_HEADER: Field = 4..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMPv4 header.
pub const HEADER_LEN: usize = field::DATA.start;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
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
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message(self.buffer.as_ref()[field::TYPE])
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

    /// Next-hop MTU (meaningful for destination unreachable, code 4).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// The four type-specific header bytes.
    #[inline]
    pub fn rest_of_header(&self) -> &[u8] {
        &self.buffer.as_ref()[field::REST_OF_HEADER]
    }

    /// Everything after the header (echo data, or the invoking packet's header for errors).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole message is valid. Always `true` under
    /// `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        if super::skip_checksum_verification() {
            return true;
        }
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// Everything after the header,
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view (for example in a `TcpRepr<'a>` returned from a parsing helper).
    #[inline]
    pub fn into_data(self) -> &'a [u8] {
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(field::DATA).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
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

    /// Sets the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
    }

    /// The four type-specific header bytes, mutably.
    #[inline]
    pub fn rest_of_header_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::REST_OF_HEADER]
    }

    /// Everything after the header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and stores the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Applies an incremental change (RFC 1624) to the checksum: `delta` lists the words of the
    /// message that changed (ICMPv4 has no pseudo header).
    #[inline]
    pub fn update_checksum(&mut self, delta: checksum::Delta) {
        let c = delta.apply(self.checksum());
        self.set_checksum(c);
    }

    /// Turns an echo request into its reply in place: type 8 → 0, checksum updated
    /// incrementally (RFC 1624). Identifier, sequence number and data are kept, as RFC 792
    /// requires. Does nothing and returns `false` for any other message.
    #[inline]
    pub fn echo_request_to_reply(&mut self) -> bool {
        if self.msg_type() != Icmpv4Message::ECHO_REQUEST || self.msg_code() != 0 {
            return false;
        }
        let old = u16::from(Icmpv4Message::ECHO_REQUEST.0) << 8;
        let new = u16::from(Icmpv4Message::ECHO_REPLY.0) << 8;
        let c = checksum::update_u16(self.checksum(), old, new);
        self.set_msg_type(Icmpv4Message::ECHO_REPLY);
        self.set_checksum(c);
        true
    }
}

/// An ICMPv4 message the engine understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (type 8, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply (type 0, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Reason (0 net, 1 host, 3 port, 4 fragmentation needed, …).
        code: u8,
        /// Next-hop MTU for code 4 (zero otherwise).
        next_hop_mtu: u16,
        /// The invoking packet's IP header and at least 8 bytes of its payload.
        data: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// 0: TTL exceeded in transit, 1: fragment reassembly time exceeded.
        code: u8,
        /// The invoking packet's IP header and at least 8 bytes of its payload.
        data: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a checked message. Errors for other types, and for echo messages with a non-zero
    /// code. The checksum is *not* verified (see [`Icmpv4Packet::verify_checksum`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv4Packet<&'a T>) -> Result<Self> {
        // Borrow the data from the underlying buffer (lifetime 'a), not from the view.
        let data: &'a [u8] = packet.buffer.as_ref().get(field::DATA).ok_or(Error)?;
        match (packet.msg_type(), packet.msg_code()) {
            (Icmpv4Message::ECHO_REQUEST, 0) => {
                Ok(Self::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data })
            }
            (Icmpv4Message::ECHO_REPLY, 0) => {
                Ok(Self::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data })
            }
            (Icmpv4Message::DST_UNREACHABLE, code) => {
                Ok(Self::DstUnreachable { code, next_hop_mtu: packet.next_hop_mtu(), data })
            }
            (Icmpv4Message::TIME_EXCEEDED, code) => Ok(Self::TimeExceeded { code, data }),
            _ => Err(Error),
        }
    }

    /// Bytes `emit` writes: the 8-byte header and the data.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        let data = match self {
            Self::EchoRequest { data, .. }
            | Self::EchoReply { data, .. }
            | Self::DstUnreachable { data, .. }
            | Self::TimeExceeded { data, .. } => data,
        };
        HEADER_LEN + data.len()
    }

    /// Writes the message and its checksum. Panics if the buffer is shorter than
    /// [`Self::buffer_len`]; the view's buffer should be exactly that long, since the checksum
    /// covers all of it.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let (msg_type, code, rest, data) = match *self {
            Self::EchoRequest { ident, seq_no, data } => (Icmpv4Message::ECHO_REQUEST, 0, (ident, seq_no), data),
            Self::EchoReply { ident, seq_no, data } => (Icmpv4Message::ECHO_REPLY, 0, (ident, seq_no), data),
            Self::DstUnreachable { code, next_hop_mtu, data } => {
                (Icmpv4Message::DST_UNREACHABLE, code, (0, next_hop_mtu), data)
            }
            Self::TimeExceeded { code, data } => (Icmpv4Message::TIME_EXCEEDED, code, (0, 0), data),
        };
        let buf = packet.buffer.as_mut();
        buf[field::TYPE] = msg_type.0;
        buf[field::CODE] = code;
        write_u16(buf, field::CHECKSUM, 0);
        write_u16(buf, 4..6, rest.0);
        write_u16(buf, 6..8, rest.1);
        buf[HEADER_LEN..HEADER_LEN + data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) {
        let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
        let _ = (p.echo_seq_no(), p.next_hop_mtu(), p.verify_checksum());
        assert_eq!(p.rest_of_header().len(), 4);
        assert_eq!(Icmpv4Packet::new_unchecked(p.buffer.as_ref()).into_data(), p.data());
        assert_eq!(p.data().len() + 8, p.buffer.as_ref().len());
        let _ = p.msg_type().to_string();
        if let Ok(repr) = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(p.buffer.as_ref())) {
            assert_eq!(repr.buffer_len(), p.buffer.as_ref().len());
        }
    }

    fn exercise_mut(bytes: &[u8]) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = Icmpv4Packet::new_checked(&mut buf[..]) else {
            return;
        };
        p.set_msg_type(Icmpv4Message::ECHO_REQUEST);
        p.set_msg_code(0);
        p.set_echo_ident(1);
        p.set_echo_seq_no(2);
        p.set_next_hop_mtu(3);
        p.rest_of_header_mut()[0] = 4;
        let _ = p.data_mut().len();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert!(p.echo_request_to_reply());
        assert!(p.verify_checksum());
        assert!(!p.echo_request_to_reply());
        exercise(&p);
    }

    /// `ping` style echo request: id 0x1234, seq 1, data "abcdefgh"; checksum 0x5435 computed
    /// independently of this crate.
    const ECHO_REQUEST: [u8; 16] =
        [0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h'];

    #[test]
    fn parses_echo_request_and_replies_in_place() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), Icmpv4Message::ECHO_REQUEST);
        assert_eq!((p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq_no()), (0, 0x5435, 0x1234, 1));
        assert_eq!(p.data(), b"abcdefgh");
        let repr = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(repr, Icmpv4Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" });
        let mut out = [0xffu8; 16];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, ECHO_REQUEST);

        let mut b = ECHO_REQUEST;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.echo_request_to_reply());
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
        let reply = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert!(matches!(Icmpv4Repr::parse(&reply), Ok(Icmpv4Repr::EchoReply { ident: 0x1234, seq_no: 1, .. })));
    }

    #[test]
    fn errors_and_rejections() {
        let mut b = ECHO_REQUEST;
        b[1] = 1; // echo request with a non-zero code
        assert!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&b[..]).unwrap()).is_err());
        b[0] = 13; // timestamp: not represented
        assert!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&b[..]).unwrap()).is_err());
        let inner = [0x45u8, 0, 0, 28, 0, 0, 0, 0, 1, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0];
        let repr = Icmpv4Repr::DstUnreachable { code: 4, next_hop_mtu: 1400, data: &inner };
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        let p = Icmpv4Packet::new_checked(&out[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!((p.msg_type().to_string(), p.next_hop_mtu()), ("destination unreachable".into(), 1400));
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);
        assert_eq!(Icmpv4Message(42).to_string(), "type 42");
        let mut b = ECHO_REQUEST;
        b[9] ^= 0x10;
        assert!(!Icmpv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=ECHO_REQUEST.len() {
            let checked = Icmpv4Packet::new_checked(&ECHO_REQUEST[..len]);
            assert_eq!(checked.is_ok(), len >= 8, "len {len}");
            if let Ok(p) = checked {
                exercise(&p);
            }
            exercise_mut(&ECHO_REQUEST[..len]);
        }
    }

    fn any_repr(data: &[u8]) -> impl Strategy<Value = Icmpv4Repr<'_>> {
        (0u8..4, any::<u16>(), any::<u16>(), any::<u8>(), 0..=data.len()).prop_map(move |(kind, a, b, code, n)| {
            let data = &data[..n];
            match kind {
                0 => Icmpv4Repr::EchoRequest { ident: a, seq_no: b, data },
                1 => Icmpv4Repr::EchoReply { ident: a, seq_no: b, data },
                2 => Icmpv4Repr::DstUnreachable { code, next_hop_mtu: b, data },
                _ => Icmpv4Repr::TimeExceeded { code, data },
            }
        })
    }

    const DATA: [u8; 100] = {
        let mut d = [0u8; 100];
        let mut i = 0;
        while i < 100 {
            d[i] = (i as u8) ^ 0xa5;
            i += 1;
        }
        d
    };

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr(&DATA), junk in any::<u8>()) {
            let mut buf = vec![junk; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&bytes[..]) {
                exercise(&p);
            }
            exercise_mut(&bytes);
        }
    }
}
