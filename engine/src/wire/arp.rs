//! ARP packets (RFC 826).
//!
//! The view reads any hardware/protocol address lengths the header declares;
//! [`ArpPacket::check_len`] guarantees the buffer holds all four addresses. [`ArpRepr`] covers the
//! only combination the engine speaks: Ethernet hardware addresses with IPv4 protocol addresses.

use core::fmt;
use core::net::Ipv4Addr;

use super::ethernet::{EtherType, EthernetAddress};
use super::{read_u16, write_u16, Error, Field, Result};

/// An ARP hardware type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArpHardware(pub u16);

impl ArpHardware {
    /// Ethernet (10 Mb and every later speed).
    pub const ETHERNET: Self = Self(1);
}

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// "Who has …?"
    pub const REQUEST: Self = Self(1);
    /// "… is at …".
    pub const REPLY: Self = Self(2);
}

impl fmt::Display for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::REQUEST => f.write_str("request"),
            Self::REPLY => f.write_str("reply"),
            Self(other) => write!(f, "op {other}"),
        }
    }
}

mod field {
    #![allow(non_snake_case)]

    use super::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    /// Length of the fixed part, before the addresses.
    pub const FIXED_LEN: usize = 8;

    #[inline]
    pub const fn SHA(hlen: u8, _plen: u8) -> Field {
        let start = FIXED_LEN;
        start..(start + hlen as usize)
    }

    #[inline]
    pub const fn SPA(hlen: u8, plen: u8) -> Field {
        let start = SHA(hlen, plen).end;
        start..(start + plen as usize)
    }

    #[inline]
    pub const fn THA(hlen: u8, plen: u8) -> Field {
        let start = SPA(hlen, plen).end;
        start..(start + hlen as usize)
    }

    #[inline]
    pub const fn TPA(hlen: u8, plen: u8) -> Field {
        let start = THA(hlen, plen).end;
        start..(start + plen as usize)
    }
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = field::TPA(6, 4).end;

/// A view of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking its length. Use for emitting into a (reused) buffer.
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

    /// Ensures the buffer holds the fixed part and all four addresses of the declared lengths.
    /// After `Ok`, no accessor or setter panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < field::FIXED_LEN {
            return Err(Error);
        }
        if data.len() < field::TPA(data[field::HLEN], data[field::PLEN]).end {
            return Err(Error);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type.
    #[inline]
    pub fn hardware_type(&self) -> ArpHardware {
        ArpHardware(read_u16(self.buffer.as_ref(), field::HTYPE))
    }

    /// Protocol type.
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(read_u16(self.buffer.as_ref(), field::OPER))
    }

    #[inline]
    fn addr(&self, f: fn(u8, u8) -> Field) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(f(self.hardware_len(), self.protocol_len())).unwrap_or_default()
    }

    /// Sender hardware address (`hardware_len` bytes).
    #[inline]
    pub fn source_hardware_addr(&self) -> &[u8] {
        self.addr(field::SHA)
    }

    /// Sender protocol address (`protocol_len` bytes).
    #[inline]
    pub fn source_protocol_addr(&self) -> &[u8] {
        self.addr(field::SPA)
    }

    /// Target hardware address (`hardware_len` bytes).
    #[inline]
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.addr(field::THA)
    }

    /// Target protocol address (`protocol_len` bytes).
    #[inline]
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.addr(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, value: ArpHardware) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value.0);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value.0);
    }

    /// Sets the hardware address length (address setters and getters follow it).
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length (address setters and getters follow it).
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, value: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, value.0);
    }

    /// Copies `addr` into the field at `f`. The field's length comes from the header; if `addr`
    /// has a different length (or the field does not fit the buffer any more) only the bytes
    /// both sides have are written.
    #[inline]
    fn set_addr(&mut self, f: fn(u8, u8) -> Field, addr: &[u8]) {
        let range = f(self.hardware_len(), self.protocol_len());
        let dst = self.buffer.as_mut().get_mut(range).unwrap_or_default();
        for (d, s) in dst.iter_mut().zip(addr) {
            *d = *s;
        }
    }

    /// Sets the sender hardware address (see the length rule on the address setters).
    #[inline]
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        self.set_addr(field::SHA, addr);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        self.set_addr(field::SPA, addr);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        self.set_addr(field::THA, addr);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        self.set_addr(field::TPA, addr);
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request, reply, or another operation code.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a checked packet. Errors unless it is Ethernet (1) / IPv4 (0x0800) with address
    /// lengths 6 and 4.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self> {
        if packet.hardware_type() != ArpHardware::ETHERNET
            || packet.protocol_type() != EtherType::IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error);
        }
        let ip = |b: &[u8]| <[u8; 4]>::try_from(b).map(Ipv4Addr::from).map_err(|_| Error);
        Ok(Self {
            operation: packet.operation(),
            source_hardware_addr: EthernetAddress::from_bytes(packet.source_hardware_addr())?,
            source_protocol_addr: ip(packet.source_protocol_addr())?,
            target_hardware_addr: EthernetAddress::from_bytes(packet.target_hardware_addr())?,
            target_protocol_addr: ip(packet.target_protocol_addr())?,
        })
    }

    /// Bytes `emit` writes (28).
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet. Panics if the buffer is shorter than [`Self::buffer_len`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        assert!(packet.buffer.as_ref().len() >= ETHERNET_IPV4_LEN, "ArpRepr::emit: buffer shorter than buffer_len()");
        packet.set_hardware_type(ArpHardware::ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &ArpPacket<T>) {
        let _ = (p.hardware_type(), p.protocol_type(), p.operation());
        let (sha, spa) = (p.source_hardware_addr(), p.source_protocol_addr());
        let (tha, tpa) = (p.target_hardware_addr(), p.target_protocol_addr());
        if p.check_len().is_ok() {
            let (h, l) = (usize::from(p.hardware_len()), usize::from(p.protocol_len()));
            assert_eq!((sha.len(), spa.len(), tha.len(), tpa.len()), (h, l, h, l));
        }
        if let Ok(repr) = ArpRepr::parse(p) {
            assert_eq!(repr.buffer_len(), 28);
        }
    }

    fn exercise_mut(bytes: &[u8]) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = ArpPacket::new_checked(&mut buf[..]) else {
            return;
        };
        p.set_operation(ArpOperation::REPLY);
        p.set_hardware_type(ArpHardware(7));
        p.set_protocol_type(EtherType::IPV6);
        p.set_source_hardware_addr(&[1; 6]);
        p.set_target_protocol_addr(&[2; 16]);
        // Growing the declared lengths past the buffer must not make anything panic.
        p.set_hardware_len(255);
        p.set_protocol_len(255);
        p.set_source_protocol_addr(&[3; 4]);
        p.set_target_hardware_addr(&[4; 6]);
        exercise(&p);
    }

    // A real "who has 192.168.1.1? tell 192.168.1.100" from 00:0c:29:3e:5b:7c.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x00, 0x0c, 0x29, 0x3e, 0x5b, 0x7c, 0xc0, 0xa8, 0x01, 0x64,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01,
    ];

    #[test]
    fn parses_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let repr = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            repr,
            ArpRepr {
                operation: ArpOperation::REQUEST,
                source_hardware_addr: EthernetAddress([0x00, 0x0c, 0x29, 0x3e, 0x5b, 0x7c]),
                source_protocol_addr: Ipv4Addr::new(192, 168, 1, 100),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: Ipv4Addr::new(192, 168, 1, 1),
            }
        );
        assert_eq!(repr.operation.to_string(), "request");
        let mut out = [0xffu8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, REQUEST);
    }

    #[test]
    fn rejects_other_address_kinds() {
        let mut bytes = REQUEST;
        bytes[5] = 16; // IPv6-sized protocol addresses: the view needs 8 + 2*(6+16) = 52 bytes
        assert!(ArpPacket::new_checked(&bytes[..]).is_err());
        let mut long = [0u8; 52];
        long[..28].copy_from_slice(&bytes);
        let p = ArpPacket::new_checked(&long[..]).unwrap();
        assert_eq!(p.target_protocol_addr().len(), 16);
        assert!(ArpRepr::parse(&p).is_err());
        let mut bytes = REQUEST;
        bytes[1] = 6; // IEEE 802 hardware type
        assert!(ArpRepr::parse(&ArpPacket::new_checked(&bytes[..]).unwrap()).is_err());
        assert_eq!(ArpOperation(9).to_string(), "op 9");
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=REQUEST.len() {
            let ok = ArpPacket::new_checked(&REQUEST[..len]).map(|p| exercise(&p));
            assert_eq!(ok.is_ok(), len == 28, "len {len}");
            exercise_mut(&REQUEST[..len]);
        }
    }

    fn any_repr() -> impl Strategy<Value = ArpRepr> {
        (any::<u16>(), any::<[u8; 6]>(), any::<[u8; 4]>(), any::<[u8; 6]>(), any::<[u8; 4]>()).prop_map(
            |(op, sha, spa, tha, tpa)| ArpRepr {
                operation: ArpOperation(op),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: spa.into(),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: tpa.into(),
            },
        )
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr(), junk in any::<u8>()) {
            let mut buf = vec![junk; repr.buffer_len()];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            let p = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = ArpPacket::new_checked(&bytes[..]) {
                exercise(&p);
            }
            exercise_mut(&bytes);
        }
    }
}
