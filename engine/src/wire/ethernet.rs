//! Ethernet II frames, MAC addresses, EtherTypes, and a single 802.1Q VLAN tag.
//!
//! [`EthernetFrame::check_len`] guarantees the 14-byte header. A VLAN tag is found by
//! [`EthernetFrame::l3_info`], which checks the four extra bytes itself and returns where the
//! network-layer header starts and which EtherType it carries. Only one tag (TPID `0x8100`) is
//! stripped; a second tag, or an 802.1ad (`0x88a8`) outer tag, is reported as the EtherType.
//! The frame check sequence is not part of the buffer (AF_XDP frames do not carry it).

use core::fmt;
use core::str::FromStr;

use super::{read_u16, write_u16, Error, Field, Rest, Result};

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// Builds an address from its six octets.
    #[inline]
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> Self {
        Self([a, b, c, d, e, f])
    }

    /// Builds an address from a six-byte slice; any other length is an error.
    #[inline]
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        data.try_into().map(Self).map_err(|_| Error)
    }

    /// The six octets.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is `ff:ff:ff:ff:ff:ff`.
    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        let a = self.0;
        a[0] & a[1] & a[2] & a[3] & a[4] & a[5] == 0xff
    }

    /// Whether the group bit is set (broadcast is a multicast address too).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether the group bit is clear.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally-administered bit is set.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", a[0], a[1], a[2], a[3], a[4], a[5])
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators): six groups of exactly two hex digits,
    /// one separator kind throughout.
    fn from_str(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 17 {
            return Err(Error);
        }
        let sep = bytes[2];
        if sep != b':' && sep != b'-' {
            return Err(Error);
        }
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && bytes[at - 1] != sep {
                return Err(Error);
            }
            *octet = (hex_digit(bytes[at])? << 4) | hex_digit(bytes[at + 1])?;
        }
        Ok(Self(out))
    }
}

#[inline]
fn hex_digit(c: u8) -> Result<u8> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(Error),
    }
}

/// An EtherType (or TPID) value.
///
/// A newtype rather than an enum: every `u16` is valid, and the well-known values are associated
/// constants usable in `match` patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: Self = Self(0x0800);
    /// ARP.
    pub const ARP: Self = Self(0x0806);
    /// 802.1Q VLAN tag (customer tag).
    pub const VLAN: Self = Self(0x8100);
    /// IPv6.
    pub const IPV6: Self = Self(0x86dd);
    /// 802.1ad service tag (QinQ outer tag); recognised, not stripped.
    pub const QINQ: Self = Self(0x88a8);
}

impl From<u16> for EtherType {
    #[inline]
    fn from(value: u16) -> Self {
        Self(value)
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(value: EtherType) -> Self {
        value.0
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::ARP => f.write_str("ARP"),
            Self::VLAN => f.write_str("VLAN"),
            Self::IPV6 => f.write_str("IPv6"),
            Self::QINQ => f.write_str("QinQ"),
            Self(other) => write!(f, "{other:#06x}"),
        }
    }
}

/// An 802.1Q tag control information word: priority (PCP), drop eligible (DEI), VLAN ID.
///
/// Stored as the raw 16-bit TCI, so every value is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag(pub u16);

impl VlanTag {
    /// Builds a tag; `pcp` must be at most 7 and `vid` at most 4095.
    #[inline]
    pub const fn new(pcp: u8, dei: bool, vid: u16) -> Result<Self> {
        if pcp > 7 || vid > 0x0fff {
            return Err(Error);
        }
        Ok(Self(((pcp as u16) << 13) | ((dei as u16) << 12) | vid))
    }

    /// Wraps a raw TCI word.
    #[inline]
    pub const fn from_tci(tci: u16) -> Self {
        Self(tci)
    }

    /// The raw TCI word.
    #[inline]
    pub const fn tci(&self) -> u16 {
        self.0
    }

    /// Priority code point (0..=7).
    #[inline]
    pub const fn pcp(&self) -> u8 {
        (self.0 >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub const fn dei(&self) -> bool {
        self.0 & 0x1000 != 0
    }

    /// VLAN identifier (0..=4095).
    #[inline]
    pub const fn vid(&self) -> u16 {
        self.0 & 0x0fff
    }
}

mod field {
    use super::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
    // Behind an 802.1Q tag:
    pub const TCI: Field = 14..16;
    pub const INNER_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of one 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the network-layer header of a frame starts, after an optional 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3Info {
    /// The tag, if the outer EtherType was `0x8100`.
    pub vlan: Option<VlanTag>,
    /// The EtherType of the network-layer header (the inner one for a tagged frame).
    pub ethertype: EtherType,
    /// Byte offset of the network-layer header in the frame (14 or 18); always `<= len`.
    pub offset: usize,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length. Use for emitting into a (reused) buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks that it holds a whole header. Use for untrusted input.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the buffer holds the 14-byte header. After `Ok`, no accessor panics.
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

    /// The untagged header length (14).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let data = self.buffer.as_ref();
        EthernetAddress(data[field::DESTINATION].try_into().unwrap_or([0; 6]))
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let data = self.buffer.as_ref();
        EthernetAddress(data[field::SOURCE].try_into().unwrap_or([0; 6]))
    }

    /// The outer EtherType (`EtherType::VLAN` for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the 14-byte header (for a tagged frame this starts with the tag's TCI).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }

    /// Whether the outer EtherType is an 802.1Q tag.
    #[inline]
    pub fn is_vlan_tagged(&self) -> bool {
        self.ethertype() == EtherType::VLAN
    }

    /// Skips an optional 802.1Q tag and says where the network-layer header starts.
    ///
    /// Errors if the frame is tagged but too short to hold the tag and inner EtherType.
    #[inline]
    pub fn l3_info(&self) -> Result<L3Info> {
        let data = self.buffer.as_ref();
        let ethertype = self.ethertype();
        if ethertype != EtherType::VLAN {
            return Ok(L3Info { vlan: None, ethertype, offset: HEADER_LEN });
        }
        if data.len() < HEADER_LEN + VLAN_TAG_LEN {
            return Err(Error);
        }
        Ok(L3Info {
            vlan: Some(VlanTag(read_u16(data, field::TCI))),
            ethertype: EtherType(read_u16(data, field::INNER_ETHERTYPE)),
            offset: HEADER_LEN + VLAN_TAG_LEN,
        })
    }

    /// The network-layer bytes, behind an optional 802.1Q tag (see [`Self::l3_info`]).
    #[inline]
    pub fn l3_payload(&self) -> Result<&[u8]> {
        let offset = self.l3_info()?.offset;
        self.buffer.as_ref().get(offset..).ok_or(Error)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The network-layer bytes behind an optional tag (see [`Self::l3_info`]),
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view (for example in a `TcpRepr<'a>` returned from a parsing helper).
    #[inline]
    pub fn into_l3_payload(self) -> Result<&'a [u8]> {
        let offset = self.l3_info()?.offset;
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(offset..).ok_or(Error)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the outer EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    /// Everything after the 14-byte header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }

    /// The network-layer bytes behind an optional tag, mutably (see [`Self::l3_info`]).
    #[inline]
    pub fn l3_payload_mut(&mut self) -> Result<&mut [u8]> {
        let offset = self.l3_info()?.offset;
        self.buffer.as_mut().get_mut(offset..).ok_or(Error)
    }

    /// Rewrites the TCI of a tagged frame in place. Errors (and writes nothing) if the frame is
    /// not tagged or is too short for a tag.
    #[inline]
    pub fn set_vlan_tag(&mut self, tag: VlanTag) -> Result<()> {
        if self.l3_info()?.vlan.is_none() {
            return Err(Error);
        }
        write_u16(self.buffer.as_mut(), field::TCI, tag.0);
        Ok(())
    }

    /// Swaps source and destination addresses (the usual first step of a reply or a reflector).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (dst, rest) = self.buffer.as_mut().split_at_mut(6);
        dst.swap_with_slice(&mut rest[..6]);
    }
}

/// The link-layer header of a frame: addresses, network-layer EtherType, optional tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the network-layer header (behind the tag, if any).
    ///
    /// Must not be [`EtherType::VLAN`] when `vlan` is `None`: such a frame would parse back as
    /// tagged.
    pub ethertype: EtherType,
    /// One 802.1Q tag, emitted between the source address and `ethertype`.
    pub vlan: Option<VlanTag>,
}

impl EthernetRepr {
    /// Parses a checked frame, stripping one 802.1Q tag if present.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        let l3 = frame.l3_info()?;
        Ok(Self { src_addr: frame.src_addr(), dst_addr: frame.dst_addr(), ethertype: l3.ethertype, vlan: l3.vlan })
    }

    /// Header bytes `emit` writes: 14, or 18 with a tag.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        match self.vlan {
            Some(_) => HEADER_LEN + VLAN_TAG_LEN,
            None => HEADER_LEN,
        }
    }

    /// Writes the header. Panics if the buffer is shorter than [`Self::buffer_len`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        match self.vlan {
            None => frame.set_ethertype(self.ethertype),
            Some(tag) => {
                frame.set_ethertype(EtherType::VLAN);
                let data = frame.buffer.as_mut();
                write_u16(data, field::TCI, tag.0);
                write_u16(data, field::INNER_ETHERTYPE, self.ethertype.0);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Calls every getter (used by the chain tests in `wire::tests` too).
    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) {
        let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
        let _ = (frame.payload().len(), frame.is_vlan_tagged());
        if let Ok(l3) = frame.l3_info() {
            assert!(l3.offset <= frame.buffer.as_ref().len());
            assert!(frame.l3_payload().is_ok());
            let view = EthernetFrame::new_unchecked(frame.buffer.as_ref());
            assert_eq!(view.into_l3_payload(), frame.l3_payload());
        }
        let _ = EthernetRepr::parse(frame);
    }

    /// Calls every setter on a copy (a checked frame's setters must not panic either).
    fn exercise_mut(bytes: &[u8]) {
        let mut buf = bytes.to_vec();
        let Ok(mut frame) = EthernetFrame::new_checked(&mut buf[..]) else {
            return;
        };
        frame.set_dst_addr(EthernetAddress::BROADCAST);
        frame.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        frame.swap_addrs();
        let _ = frame.set_vlan_tag(VlanTag(0xffff));
        let _ = frame.payload_mut().len();
        let _ = frame.l3_payload_mut().map(|p| p.len());
        frame.set_ethertype(EtherType::VLAN);
        let _ = frame.set_vlan_tag(VlanTag(1));
        let _ = frame.l3_payload_mut().map(|p| p.len());
        exercise(&frame);
    }

    // dst 00:1b:21:3a:4f:5e, src 3c:fd:fe:01:02:03, 802.1Q PCP 5 VID 42, inner IPv4.
    const TAGGED: [u8; 22] = [
        0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x5e, 0x3c, 0xfd, 0xfe, 0x01, 0x02, 0x03, 0x81, 0x00, 0xa0, 0x2a, 0x08, 0x00,
        0x45, 0x00, 0x00, 0x14,
    ];

    #[test]
    fn parses_tagged_frame() {
        let frame = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(frame.dst_addr().to_string(), "00:1b:21:3a:4f:5e");
        assert_eq!(frame.src_addr(), "3c:fd:fe:01:02:03".parse().unwrap());
        assert_eq!(frame.ethertype(), EtherType::VLAN);
        let l3 = frame.l3_info().unwrap();
        let tag = l3.vlan.unwrap();
        assert_eq!((tag.pcp(), tag.dei(), tag.vid()), (5, false, 42));
        assert_eq!(l3.ethertype, EtherType::IPV4);
        assert_eq!(l3.offset, 18);
        assert_eq!(frame.l3_payload().unwrap(), &[0x45, 0x00, 0x00, 0x14]);
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.vlan, Some(VlanTag::new(5, false, 42).unwrap()));
        assert_eq!(repr.buffer_len(), 18);
        let mut out = [0u8; 18];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(out, TAGGED[..18]);
    }

    #[test]
    fn untagged_frame_and_short_tag() {
        let mut bytes = TAGGED;
        bytes[12..14].copy_from_slice(&[0x86, 0xdd]);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        let l3 = frame.l3_info().unwrap();
        assert_eq!((l3.vlan, l3.ethertype, l3.offset), (None, EtherType::IPV6, 14));
        // A tagged frame with the tag cut off: the header is fine, the L3 lookup is not.
        let short = EthernetFrame::new_checked(&TAGGED[..16]).unwrap();
        assert_eq!(short.l3_info(), Err(Error));
        assert_eq!(short.l3_payload(), Err(Error));
        assert!(EthernetRepr::parse(&short).is_err());
        assert!(EthernetFrame::new_checked(&TAGGED[..13]).is_err());
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut bytes = TAGGED;
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        frame.swap_addrs();
        assert_eq!(frame.src_addr().to_string(), "00:1b:21:3a:4f:5e");
        assert_eq!(frame.dst_addr().to_string(), "3c:fd:fe:01:02:03");
        frame.set_vlan_tag(VlanTag::new(0, true, 7).unwrap()).unwrap();
        frame.l3_payload_mut().unwrap()[0] = 0x46;
        let bytes = frame.into_inner();
        assert_eq!(&bytes[14..16], &[0x10, 0x07]);
        assert_eq!(bytes[18], 0x46);
        let mut untagged = [0u8; 14];
        let mut frame = EthernetFrame::new_checked(&mut untagged[..]).unwrap();
        assert_eq!(frame.set_vlan_tag(VlanTag(1)), Err(Error));
        assert!(frame.payload_mut().is_empty());
    }

    #[test]
    fn addresses() {
        let b = EthernetAddress::BROADCAST;
        assert!(b.is_broadcast() && b.is_multicast() && !b.is_unicast());
        let m = EthernetAddress::new(0x01, 0x00, 0x5e, 0, 0, 1);
        assert!(m.is_multicast() && !m.is_broadcast());
        let u = EthernetAddress::new(0x02, 0, 0, 0, 0, 1);
        assert!(u.is_unicast() && u.is_local());
        assert_eq!(u.as_bytes(), &[2, 0, 0, 0, 0, 1]);
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3, 4, 5, 6]).unwrap().to_string(), "01:02:03:04:05:06");
        assert!(EthernetAddress::from_bytes(&[1, 2, 3]).is_err());
        assert_eq!("AA-bb-CC-dd-EE-ff".parse(), Ok(EthernetAddress([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])));
        for bad in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:fg",
            "aa:bb-cc:dd:ee:ff",
            "aa:bb:cc:dd:ee:f",
            "+a:bb:cc:dd:ee:ff",
            "aa.bb.cc.dd.ee.ff",
        ] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ethertype_and_tag_values() {
        assert_eq!(EtherType::from(0x0806), EtherType::ARP);
        assert_eq!(u16::from(EtherType::IPV6), 0x86dd);
        assert_eq!(EtherType::IPV4.to_string(), "IPv4");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
        assert!(VlanTag::new(8, false, 1).is_err());
        assert!(VlanTag::new(0, false, 4096).is_err());
        let t = VlanTag::new(7, true, 4095).unwrap();
        assert_eq!(t.tci(), 0xffff);
        assert_eq!(VlanTag::from_tci(0xffff), t);
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=TAGGED.len() {
            let prefix = &TAGGED[..len];
            match EthernetFrame::new_checked(prefix) {
                Ok(frame) => {
                    assert!(len >= HEADER_LEN);
                    exercise(&frame);
                    assert_eq!(frame.l3_info().is_ok(), len >= 18);
                }
                Err(Error) => assert!(len < HEADER_LEN),
            }
            exercise_mut(prefix);
        }
    }

    fn any_repr() -> impl Strategy<Value = EthernetRepr> {
        (any::<[u8; 6]>(), any::<[u8; 6]>(), any::<u16>(), proptest::option::of(any::<u16>())).prop_filter_map(
            "untagged VLAN ethertype",
            |(s, d, et, tci)| {
                let repr = EthernetRepr {
                    src_addr: EthernetAddress(s),
                    dst_addr: EthernetAddress(d),
                    ethertype: EtherType(et),
                    vlan: tci.map(VlanTag),
                };
                (repr.vlan.is_some() || repr.ethertype != EtherType::VLAN).then_some(repr)
            },
        )
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr(), extra in 0usize..4) {
            let mut buf = vec![0xa5u8; repr.buffer_len() + extra];
            repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
            let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
            prop_assert_eq!(frame.l3_info().unwrap().offset, repr.buffer_len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
                exercise(&frame);
            }
            exercise_mut(&bytes);
        }

        #[test]
        fn address_display_parse_round_trip(bytes in any::<[u8; 6]>()) {
            let a = EthernetAddress(bytes);
            prop_assert_eq!(a.to_string().parse::<EthernetAddress>(), Ok(a));
        }
    }
}
