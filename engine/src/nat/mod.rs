//! In-place network address translation of Ethernet frames: a parsed view of the L3/L4 headers a
//! NAT or load balancer needs, address and port rewrites with incremental checksum updates, and
//! the translation of ICMP errors that quote a translated packet.
//!
//! Sans-I/O and allocation-free: everything works on the caller's frame bytes, and the only state
//! is the [`NatFrame`] view itself. Built on [`crate::wire`] (views for every header touched, and
//! [`Delta`] for the arithmetic).
//!
//! [`V4Flow`] is the fast path for the common frame (untagged IPv4 without options, TCP/UDP),
//! interchangeable with [`NatFrame`] for the frames it accepts.
//!
//! # What it guarantees
//!
//! * [`NatFrame::new_checked`] validates every length it relies on (Ethernet with at most one
//!   802.1Q tag, IPv4 with options or the IPv6 fixed header, and the TCP, UDP, ICMPv4 or ICMPv6
//!   header) and never panics. Malformed, unsupported and fragmented packets are distinct
//!   [`NatError`]s, so the caller can count them as distinct drop reasons.
//! * Every rewrite updates every checksum that covers a changed field **incrementally**
//!   (RFC 1624, eqn. 3), never by summing the packet again. When the checksums were valid, the
//!   result is bit-identical to a full recomputation (see [`Delta::apply`]); when one was wrong
//!   it stays exactly as wrong, so the receiver still drops the packet (a NAT that recomputed
//!   would launder the corruption).
//! * UDP (RFC 768): a zero checksum over IPv4 means "no checksum" and stays zero; a computed zero
//!   is sent as `0xffff`. Over IPv6 the UDP checksum is mandatory (RFC 8200 §8.1) and is always
//!   updated; a zero one received over IPv6 is invalid and is passed through unchanged (still
//!   invalid) rather than turned into a value that might verify.
//! * A rewrite followed by the opposite rewrite restores the original bytes (property-tested).
//!
//! # ICMP errors (path-MTU discovery through the NAT)
//!
//! An ICMP error (RFC 792: destination unreachable, including "fragmentation needed" of RFC 1191;
//! time exceeded; parameter problem; and their ICMPv6 counterparts of RFC 4443, including "packet
//! too big" of RFC 8201) quotes the IP header and at least the first 8 payload bytes of the packet
//! that caused it. A NAT must translate the quote too, or the original sender cannot match the
//! error to its socket and path-MTU discovery black-holes. [`NatFrame::inner_tuple`] extracts the
//! quoted packet's 5-tuple (so the caller can find its flow) and
//! [`NatFrame::translate_icmp_error`] rewrites the outer addresses, the quoted addresses (and the
//! quoted IPv4 header checksum), the quoted ports and the quoted TCP/UDP checksum, then updates the
//! ICMP checksum incrementally.
//!
//! The quoted TCP/UDP checksum covers the *whole* original datagram, most of which the quote
//! does not hold, so it cannot be verified; it is still updated incrementally when its two bytes
//! are in the quote, as Linux conntrack NAT does (`net/netfilter/nf_nat_proto.c`,
//! `tcp_manip_pkt`/`udp_manip_pkt`), so the sender sees a consistent copy of what it sent. A TCP
//! quote of fewer than 18 bytes does not hold the whole checksum field; then only the ports
//! change ([`InnerChecksum::Truncated`]; a 17-byte quote keeps the field's first byte as it was,
//! since its new value depends on the carry from the missing byte). Linux skips the update
//! unless the whole 20-byte header is present, which differs only for 18- and 19-byte quotes. A
//! quoted UDP checksum of zero stays zero. Linux then recomputes the ICMP checksum over the whole
//! message (`nf_nat_icmp_reply_translation`, after conntrack verified it on input when
//! `nf_conntrack_checksum` is set); this module updates it incrementally instead and does not
//! verify it (see [`NatFrame::verify_checksums`]), so a corrupted error stays corrupted.
//!
//! # Not supported
//!
//! IPv6 extension headers (a packet whose next header is not TCP, UDP or ICMPv6 is
//! [`NatError::Unsupported`], a fragment header is [`NatError::Fragment`]); QinQ; NAT between
//! address families; rewriting ICMP echo identifiers (ICMP queries are parsed, not rewritten); TTL
//! or hop-limit decrement (use [`Ipv4Packet::rewrite_ttl`] / [`Ipv6Packet::set_hop_limit`]).

mod v4;

pub use v4::V4Flow;

use core::fmt;
use core::net::IpAddr;

use crate::wire::checksum::Delta;
use crate::wire::{
    icmp, ipv4, ipv6, EtherType, EthernetAddress, EthernetFrame, Icmpv4Message, Icmpv4Packet, Icmpv6Message,
    Icmpv6Packet, IpPair, IpProtocol, Ipv4Packet, Ipv6Packet, TcpFlags, TcpPacket, UdpPacket, VlanTag,
};

/// Why a frame cannot be parsed or translated. Each variant maps to its own drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatError {
    /// Truncated or inconsistent headers (lengths that do not fit the frame, a wrong IP version,
    /// an ICMP error quoting less than an IP header and 8 bytes).
    Malformed,
    /// Well-formed, but not something this module handles: not IPv4/IPv6, a transport protocol
    /// other than TCP/UDP/ICMP, IPv6 extension headers, or an operation that does not apply to
    /// this packet (a port rewrite of an ICMP message, translating an ICMP message that is not
    /// an error).
    Unsupported,
    /// An IPv4 fragment (MF set or a non-zero offset) or an IPv6 packet with a fragment header;
    /// for an ICMP error, a quoted non-first fragment (its quote holds no ports).
    Fragment,
    /// The translation does not fit the packet: another address family or another protocol (a
    /// caller bug, not a property of received bytes).
    Mismatch,
}

impl fmt::Display for NatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed or truncated headers",
            Self::Unsupported => "unsupported protocol or operation",
            Self::Fragment => "IP fragment",
            Self::Mismatch => "translation does not match the packet's family or protocol",
        })
    }
}

impl core::error::Error for NatError {}

impl From<crate::wire::Error> for NatError {
    /// A wire view rejected a length: the frame is malformed.
    #[inline]
    fn from(_: crate::wire::Error) -> Self {
        Self::Malformed
    }
}

/// Addresses, protocol and ports of one packet, in the packet's own direction.
///
/// For ICMP echo request/reply both ports hold the echo identifier, so the reversed tuple of a
/// reply equals its request's tuple (as in Linux conntrack); for other ICMP messages both are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Source and destination addresses (one family, by construction).
    pub ips: IpPair,
    /// Transport protocol (`TCP`, `UDP`, `ICMP` or `ICMPV6`).
    pub protocol: IpProtocol,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl FiveTuple {
    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> IpAddr {
        match self.ips {
            IpPair::V4 { src, .. } => IpAddr::V4(src),
            IpPair::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> IpAddr {
        match self.ips {
            IpPair::V4 { dst, .. } => IpAddr::V4(dst),
            IpPair::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }

    /// The tuple of a packet going the other way (addresses and ports swapped).
    #[inline]
    pub fn reversed(&self) -> Self {
        Self { ips: self.ips.reversed(), protocol: self.protocol, src_port: self.dst_port, dst_port: self.src_port }
    }

    /// The same tuple with another source. [`NatError::Mismatch`] if `addr` is of the other family.
    #[inline]
    pub fn with_src(&self, addr: IpAddr, port: u16) -> Result<Self, NatError> {
        let ips = match (self.ips, addr) {
            (IpPair::V4 { dst, .. }, IpAddr::V4(src)) => IpPair::V4 { src, dst },
            (IpPair::V6 { dst, .. }, IpAddr::V6(src)) => IpPair::V6 { src, dst },
            _ => return Err(NatError::Mismatch),
        };
        Ok(Self { ips, src_port: port, ..*self })
    }

    /// The same tuple with another destination. [`NatError::Mismatch`] if `addr` is of the other
    /// family.
    #[inline]
    pub fn with_dst(&self, addr: IpAddr, port: u16) -> Result<Self, NatError> {
        Ok(self.reversed().with_src(addr, port)?.reversed())
    }
}

/// What [`NatFrame::translate_icmp_error`] did with the quoted TCP/UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InnerChecksum {
    /// The checksum field was in the quote and was updated incrementally.
    Updated,
    /// A TCP quote too short to hold the checksum field (fewer than 18 bytes); only the ports
    /// changed.
    Truncated,
    /// A quoted UDP checksum of zero (none computed); it stays zero.
    Absent,
}

/// Where the headers of a validated frame are. Every offset is inside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    vlan: Option<VlanTag>,
    /// Start of the IP header (14 or 18).
    l3: usize,
    /// Start of the transport header (`l3` + IHL*4, or `l3` + 40).
    l4: usize,
    /// End of the IP packet (Ethernet padding after it is not part of any header).
    end: usize,
    tuple: FiveTuple,
    tcp_flags: Option<TcpFlags>,
    /// ICMP type and code.
    icmp: Option<(u8, u8)>,
}

/// Where the quoted packet of an ICMP error is, and its tuple as it was sent.
#[derive(Debug, Clone, Copy)]
struct Quote {
    /// Start of the quoted IP header in the frame.
    ip: usize,
    /// Start of the quoted transport header; at least 8 bytes before the end of the message.
    l4: usize,
    tuple: FiveTuple,
}

/// A view of an Ethernet frame carrying IPv4 or IPv6 with TCP, UDP, ICMPv4 or ICMPv6, with its
/// header offsets and 5-tuple parsed once by [`Self::new_checked`].
///
/// The view owns its buffer (`&[u8]` to inspect, `&mut [u8]` to rewrite, as every `wire` view):
/// its cached layout stays true because nothing else can change the bytes, and the rewrites
/// update it. After `new_checked` succeeded, no method panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatFrame<T: AsRef<[u8]>> {
    buffer: T,
    layout: Layout,
}

/// What [`NatFrame::new_checked`] found in a frame (offsets, tuple, flags), kept so that a
/// caller who inspects a burst first and rewrites it later parses each frame once
/// ([`NatFrame::with_layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatLayout(Layout);

impl NatLayout {
    /// The packet's 5-tuple.
    #[inline]
    pub fn tuple(&self) -> FiveTuple {
        self.0.tuple
    }

    /// The TCP flags, for a TCP segment.
    #[inline]
    pub fn tcp_flags(&self) -> Option<TcpFlags> {
        self.0.tcp_flags
    }
}

impl<T: AsRef<[u8]>> NatFrame<T> {
    /// Parses a received frame: Ethernet (one optional 802.1Q tag), IPv4 or IPv6, then the TCP,
    /// UDP, ICMPv4 or ICMPv6 header, with every length checked. Checksums are not verified (see
    /// [`Self::verify_checksums`]).
    ///
    /// Errors: [`NatError::Fragment`] for IPv4 fragments and IPv6 fragment headers,
    /// [`NatError::Unsupported`] for other EtherTypes, protocols and IPv6 extension headers,
    /// [`NatError::Malformed`] for anything truncated or inconsistent.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, NatError> {
        let layout = parse(buffer.as_ref())?;
        Ok(Self { buffer, layout })
    }

    /// A view of `buffer` with a layout found earlier by [`Self::new_checked`] over the *same,
    /// unchanged* bytes (the second pass over a burst). Only the length is checked again, so no
    /// method can panic; a layout from other bytes gives wrong fields, never an out-of-bounds access.
    #[inline]
    pub fn with_layout(buffer: T, layout: NatLayout) -> Result<Self, NatError> {
        if buffer.as_ref().len() < layout.0.end {
            return Err(NatError::Malformed);
        }
        Ok(Self { buffer, layout: layout.0 })
    }

    /// The parsed layout (see [`Self::with_layout`]).
    #[inline]
    pub fn layout(&self) -> NatLayout {
        NatLayout(self.layout)
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The frame bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The 802.1Q tag, if the frame has one.
    #[inline]
    pub fn vlan(&self) -> Option<VlanTag> {
        self.layout.vlan
    }

    /// 4 or 6.
    #[inline]
    pub fn ip_version(&self) -> u8 {
        if self.layout.tuple.ips.is_v6() {
            6
        } else {
            4
        }
    }

    /// Offset of the IP header in the frame (14, or 18 behind a tag).
    #[inline]
    pub fn l3_offset(&self) -> usize {
        self.layout.l3
    }

    /// Offset of the transport header in the frame.
    #[inline]
    pub fn l4_offset(&self) -> usize {
        self.layout.l4
    }

    /// Length of the transport segment (IP payload), header included; Ethernet padding excluded.
    #[inline]
    pub fn l4_len(&self) -> usize {
        self.layout.end - self.layout.l4
    }

    /// Transport protocol (`TCP`, `UDP`, `ICMP` or `ICMPV6`).
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.layout.tuple.protocol
    }

    /// The packet's 5-tuple (see [`FiveTuple`] for ICMP).
    #[inline]
    pub fn tuple(&self) -> FiveTuple {
        self.layout.tuple
    }

    /// The TCP flags, for a TCP segment.
    #[inline]
    pub fn tcp_flags(&self) -> Option<TcpFlags> {
        self.layout.tcp_flags
    }

    /// ICMP (or ICMPv6) type and code, for an ICMP message.
    #[inline]
    pub fn icmp_type_code(&self) -> Option<(u8, u8)> {
        self.layout.icmp
    }

    /// Whether this is an ICMP error that quotes the packet which caused it (ICMPv4 destination
    /// unreachable, time exceeded, parameter problem; ICMPv6 destination unreachable, packet
    /// too big, time exceeded, parameter problem).
    #[inline]
    pub fn is_icmp_error(&self) -> bool {
        match self.layout.icmp {
            Some((t, _)) if self.layout.tuple.ips.is_v6() => Icmpv6Message(t).quotes_packet(),
            Some((t, _)) => Icmpv4Message(t).quotes_packet(),
            None => false,
        }
    }

    /// The 5-tuple of the packet quoted by an ICMP error, as that packet was sent (so for an
    /// error about a packet this NAT translated, it is the *translated* tuple; the caller looks
    /// up the flow whose output it is).
    ///
    /// Errors: [`NatError::Unsupported`] if this is not an ICMP error or the quoted packet is not
    /// TCP/UDP; [`NatError::Malformed`] if the quote holds less than an IP header and 8 bytes;
    /// [`NatError::Fragment`] if it quotes a non-first IPv4 fragment or an IPv6 fragment header.
    #[inline]
    pub fn inner_tuple(&self) -> Result<FiveTuple, NatError> {
        self.quote().map(|q| q.tuple)
    }

    /// Source MAC address.
    #[inline]
    pub fn src_mac(&self) -> EthernetAddress {
        EthernetFrame::new_unchecked(self.buffer.as_ref()).src_addr()
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_mac(&self) -> EthernetAddress {
        EthernetFrame::new_unchecked(self.buffer.as_ref()).dst_addr()
    }

    /// Whether the IPv4 header checksum (if any) and the TCP, UDP, ICMPv4 or ICMPv6 checksum are
    /// valid. A full computation over the packet: for the slow path, tests and debugging, not for
    /// every forwarded packet (a NAT that only rewrites headers leaves verification to the
    /// receiver; see the module docs). Always `true` under `cfg(fuzzing)`.
    pub fn verify_checksums(&self) -> bool {
        let Layout { l3, l4, end, tuple, .. } = self.layout;
        let data = self.buffer.as_ref();
        let (ip, segment) = (&data[l3..end], &data[l4..end]);
        if !tuple.ips.is_v6() && !Ipv4Packet::new_unchecked(ip).verify_checksum() {
            return false;
        }
        match tuple.protocol {
            IpProtocol::TCP => TcpPacket::new_unchecked(segment).verify_checksum(&tuple.ips),
            IpProtocol::UDP => UdpPacket::new_unchecked(segment).verify_checksum(&tuple.ips),
            IpProtocol::ICMP => Icmpv4Packet::new_unchecked(segment).verify_checksum(),
            _ => Icmpv6Packet::new_unchecked(segment).verify_checksum(&tuple.ips),
        }
    }

    /// Finds the quoted packet of an ICMP error.
    fn quote(&self) -> Result<Quote, NatError> {
        if !self.is_icmp_error() {
            return Err(NatError::Unsupported);
        }
        let Layout { l4, end, tuple, .. } = self.layout;
        // ICMPv4 and ICMPv6 headers are both 8 bytes.
        let ip = l4 + icmp::HEADER_LEN;
        let quoted = self.buffer.as_ref().get(ip..end).ok_or(NatError::Malformed)?;
        let (ips, protocol, header_len) = if tuple.ips.is_v6() { quoted_ipv6(quoted)? } else { quoted_ipv4(quoted)? };
        let ports = quoted.get(header_len..).filter(|l4| l4.len() >= 8).ok_or(NatError::Malformed)?;
        if !matches!(protocol, IpProtocol::TCP | IpProtocol::UDP) {
            return Err(NatError::Unsupported);
        }
        // TCP and UDP both start with the two ports.
        let ports = UdpPacket::new_unchecked(ports);
        let tuple = FiveTuple { ips, protocol, src_port: ports.src_port(), dst_port: ports.dst_port() };
        Ok(Quote { ip, l4: ip + header_len, tuple })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NatFrame<T> {
    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_mac(&mut self, addr: EthernetAddress) {
        EthernetFrame::new_unchecked(self.buffer.as_mut()).set_src_addr(addr);
    }

    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_mac(&mut self, addr: EthernetAddress) {
        EthernetFrame::new_unchecked(self.buffer.as_mut()).set_dst_addr(addr);
    }

    /// Turns an ICMPv4 echo request into its reply, in place: addresses and MACs swapped, type
    /// 8 → 0 with the ICMP checksum updated incrementally (the IPv4 header checksum does not
    /// change: swapping two words keeps their sum). The TTL is kept.
    ///
    /// Errors, with the frame untouched: [`NatError::Unsupported`] if this is not an ICMPv4
    /// echo request (code 0).
    pub fn echo_reply(&mut self) -> Result<(), NatError> {
        if self.layout.tuple.ips.is_v6() || self.layout.icmp != Some((Icmpv4Message::ECHO_REQUEST.0, 0)) {
            return Err(NatError::Unsupported);
        }
        let Layout { l3, l4, end, .. } = self.layout;
        let data = self.buffer.as_mut();
        let mut eth = EthernetFrame::new_unchecked(&mut *data);
        let (src, dst) = (eth.src_addr(), eth.dst_addr());
        eth.set_src_addr(dst);
        eth.set_dst_addr(src);
        let mut ip = Ipv4Packet::new_unchecked(&mut data[l3..l4]);
        let (a, b) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(b);
        ip.set_dst_addr(a);
        if !Icmpv4Packet::new_unchecked(&mut data[l4..end]).echo_request_to_reply() {
            return Err(NatError::Unsupported);
        }
        self.layout.tuple = self.layout.tuple.reversed();
        self.layout.icmp = Some((Icmpv4Message::ECHO_REPLY.0, 0));
        Ok(())
    }

    /// Rewrites a TCP or UDP packet so that its 5-tuple becomes `to`: both addresses and both
    /// ports (fields that do not change cost nothing extra and stay as they are), with the IPv4
    /// header checksum and the TCP/UDP checksum updated incrementally (see the module docs for the
    /// UDP zero-checksum rules). Full NAT (DNAT + SNAT) in one pass.
    ///
    /// Errors, with the frame untouched: [`NatError::Unsupported`] if the packet is not TCP/UDP,
    /// [`NatError::Mismatch`] if `to` has another address family or protocol.
    #[inline]
    pub fn rewrite(&mut self, to: &FiveTuple) -> Result<(), NatError> {
        let from = self.layout.tuple;
        if !matches!(from.protocol, IpProtocol::TCP | IpProtocol::UDP) {
            return Err(NatError::Unsupported);
        }
        if to.protocol != from.protocol {
            return Err(NatError::Mismatch);
        }
        let addrs = address_delta(&from.ips, &to.ips)?;
        let transport = addrs.add_u16(from.src_port, to.src_port).add_u16(from.dst_port, to.dst_port);
        let Layout { l3, l4, end, .. } = self.layout;
        let data = self.buffer.as_mut();
        set_addresses(&mut data[l3..l4], &to.ips, addrs);
        let segment = &mut data[l4..end];
        if from.protocol == IpProtocol::TCP {
            let mut tcp = TcpPacket::new_unchecked(segment);
            tcp.set_src_port(to.src_port);
            tcp.set_dst_port(to.dst_port);
            tcp.update_checksum(transport);
        } else {
            let mut udp = UdpPacket::new_unchecked(segment);
            udp.set_src_port(to.src_port);
            udp.set_dst_port(to.dst_port);
            udp.update_checksum(transport);
        }
        self.layout.tuple = *to;
        Ok(())
    }

    /// Rewrites the source address and port (SNAT). Same rules as [`Self::rewrite`].
    #[inline]
    pub fn rewrite_src(&mut self, addr: IpAddr, port: u16) -> Result<(), NatError> {
        let to = self.layout.tuple.with_src(addr, port)?;
        self.rewrite(&to)
    }

    /// Rewrites the destination address and port (DNAT). Same rules as [`Self::rewrite`].
    #[inline]
    pub fn rewrite_dst(&mut self, addr: IpAddr, port: u16) -> Result<(), NatError> {
        let to = self.layout.tuple.with_dst(addr, port)?;
        self.rewrite(&to)
    }

    /// Translates an ICMP error (see the module docs): sets the outer addresses to `outer`, the
    /// quoted packet's addresses and ports to `inner` (with the quoted IPv4 header checksum and,
    /// when present, the quoted TCP/UDP checksum), and updates the ICMP checksum, all
    /// incrementally. The outer ICMP type, code and the MTU of "fragmentation needed" / "packet
    /// too big" are kept.
    ///
    /// Returns what happened to the quoted transport checksum. Errors, with the frame untouched:
    /// those of [`Self::inner_tuple`], and [`NatError::Mismatch`] if `outer` or `inner` has
    /// another address family or `inner` another protocol than the quote.
    pub fn translate_icmp_error(&mut self, outer: &IpPair, inner: &FiveTuple) -> Result<InnerChecksum, NatError> {
        let quote = self.quote()?;
        let from = quote.tuple;
        if inner.protocol != from.protocol {
            return Err(NatError::Mismatch);
        }
        let outer_addrs = address_delta(&self.layout.tuple.ips, outer)?;
        let inner_addrs = address_delta(&from.ips, &inner.ips)?;
        let ports = Delta::ZERO.add_u16(from.src_port, inner.src_port).add_u16(from.dst_port, inner.dst_port);
        let Layout { l3, l4, end, .. } = self.layout;
        let v6 = outer.is_v6();
        let data = self.buffer.as_mut();

        // The quoted IP header: addresses, and the IPv4 header checksum. Everything the message
        // checksum covers and that changes goes into `message`.
        let mut message = inner_addrs.add(ports);
        let quoted_ip = &mut data[quote.ip..quote.l4];
        let old = quoted_header_checksum(quoted_ip, v6);
        set_addresses(quoted_ip, &inner.ips, inner_addrs);
        message = message.add_u16(old, quoted_header_checksum(quoted_ip, v6));

        let status = translate_quoted_transport(&mut data[quote.l4..end], inner, inner_addrs.add(ports), &mut message);

        // ICMPv6 covers the outer addresses through its pseudo header; ICMPv4 does not.
        if v6 {
            Icmpv6Packet::new_unchecked(&mut data[l4..end]).update_checksum(message.add(outer_addrs));
        } else {
            Icmpv4Packet::new_unchecked(&mut data[l4..end]).update_checksum(message);
        }
        set_addresses(&mut data[l3..l4], outer, outer_addrs);
        self.layout.tuple.ips = *outer;
        Ok(status)
    }
}

/// Rewrites the ports of a quoted TCP/UDP header (at least 8 bytes) and its checksum if present;
/// adds the checksum's change to `message` (the ICMP checksum's delta).
fn translate_quoted_transport(
    quoted: &mut [u8],
    inner: &FiveTuple,
    delta: Delta,
    message: &mut Delta,
) -> InnerChecksum {
    const TCP_CHECKSUM_END: usize = 18;
    let len = quoted.len();
    let (old, new, status) = if inner.protocol == IpProtocol::TCP {
        let mut tcp = TcpPacket::new_unchecked(quoted);
        tcp.set_src_port(inner.src_port);
        tcp.set_dst_port(inner.dst_port);
        if len < TCP_CHECKSUM_END {
            return InnerChecksum::Truncated;
        }
        let old = tcp.checksum();
        tcp.update_checksum(delta);
        (old, tcp.checksum(), InnerChecksum::Updated)
    } else {
        let mut udp = UdpPacket::new_unchecked(quoted);
        udp.set_src_port(inner.src_port);
        udp.set_dst_port(inner.dst_port);
        let old = udp.checksum();
        udp.update_checksum(delta);
        let status = if old == 0 { InnerChecksum::Absent } else { InnerChecksum::Updated };
        (old, udp.checksum(), status)
    };
    *message = message.add_u16(old, new);
    status
}

/// The header checksum of a quoted IP header (IPv6 has none: 0, which contributes no change).
#[inline]
fn quoted_header_checksum(header: &[u8], v6: bool) -> u16 {
    if v6 {
        0
    } else {
        Ipv4Packet::new_unchecked(header).checksum()
    }
}

/// The checksum change when the addresses `from` become `to`: the IPv4 header checksum's whole
/// delta, and the pseudo-header part of the TCP/UDP/ICMPv6 one.
#[inline]
fn address_delta(from: &IpPair, to: &IpPair) -> Result<Delta, NatError> {
    match (*from, *to) {
        (IpPair::V4 { src: a, dst: b }, IpPair::V4 { src: c, dst: d }) => {
            Ok(Delta::ZERO.add_u32(a.to_bits(), c.to_bits()).add_u32(b.to_bits(), d.to_bits()))
        }
        (IpPair::V6 { src: a, dst: b }, IpPair::V6 { src: c, dst: d }) => {
            Ok(Delta::ZERO.add_u128(a.to_bits(), c.to_bits()).add_u128(b.to_bits(), d.to_bits()))
        }
        _ => Err(NatError::Mismatch),
    }
}

/// Writes the addresses into an IP header (at least its fixed part) and, for IPv4, applies
/// `delta` (from [`address_delta`]) to the header checksum.
#[inline]
fn set_addresses(header: &mut [u8], to: &IpPair, delta: Delta) {
    match *to {
        IpPair::V4 { src, dst } => {
            let mut ip = Ipv4Packet::new_unchecked(header);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            ip.update_checksum(delta);
        }
        IpPair::V6 { src, dst } => {
            let mut ip = Ipv6Packet::new_unchecked(header);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
        }
    }
}

/// Parses and validates a frame (see [`NatFrame::new_checked`]).
#[inline]
fn parse(frame: &[u8]) -> Result<Layout, NatError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let l3 = eth.l3_info()?;
    let packet = eth.into_l3_payload()?;
    let (ips, protocol, header_len, ip_len) = match l3.ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(packet)?;
            if ip.version() != 4 {
                return Err(NatError::Malformed);
            }
            if ip.is_fragment() {
                return Err(NatError::Fragment);
            }
            let ips = IpPair::V4 { src: ip.src_addr(), dst: ip.dst_addr() };
            (ips, ip.protocol(), usize::from(ip.header_len()), usize::from(ip.total_len()))
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(packet)?;
            if ip.version() != 6 {
                return Err(NatError::Malformed);
            }
            let ips = IpPair::V6 { src: ip.src_addr(), dst: ip.dst_addr() };
            (ips, ip.next_header(), ipv6::HEADER_LEN, ipv6::HEADER_LEN + usize::from(ip.payload_len()))
        }
        _ => return Err(NatError::Unsupported),
    };
    let (l4, end) = (l3.offset + header_len, l3.offset + ip_len);
    let segment = frame.get(l4..end).ok_or(NatError::Malformed)?;
    let transport = parse_transport(protocol, segment, ips.is_v6())?;
    Ok(Layout {
        vlan: l3.vlan,
        l3: l3.offset,
        l4,
        end,
        tuple: FiveTuple { ips, protocol, src_port: transport.src_port, dst_port: transport.dst_port },
        tcp_flags: transport.tcp_flags,
        icmp: transport.icmp,
    })
}

/// What [`parse_transport`] found.
struct Transport {
    src_port: u16,
    dst_port: u16,
    tcp_flags: Option<TcpFlags>,
    icmp: Option<(u8, u8)>,
}

/// Validates the transport header of an IP payload.
#[inline]
fn parse_transport(protocol: IpProtocol, segment: &[u8], v6: bool) -> Result<Transport, NatError> {
    let ports = |src_port, dst_port| Transport { src_port, dst_port, tcp_flags: None, icmp: None };
    match protocol {
        IpProtocol::TCP => {
            let tcp = TcpPacket::new_checked(segment)?;
            Ok(Transport { tcp_flags: Some(tcp.flags()), ..ports(tcp.src_port(), tcp.dst_port()) })
        }
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(segment)?;
            Ok(ports(udp.src_port(), udp.dst_port()))
        }
        IpProtocol::ICMP if !v6 => {
            let icmp = Icmpv4Packet::new_checked(segment)?;
            let (t, code) = (icmp.msg_type(), icmp.msg_code());
            let echo = code == 0 && matches!(t, Icmpv4Message::ECHO_REQUEST | Icmpv4Message::ECHO_REPLY);
            let id = if echo { icmp.echo_ident() } else { 0 };
            Ok(Transport { icmp: Some((t.0, code)), ..ports(id, id) })
        }
        IpProtocol::ICMPV6 if v6 => {
            let icmp = Icmpv6Packet::new_checked(segment)?;
            let (t, code) = (icmp.msg_type(), icmp.msg_code());
            let echo = code == 0 && matches!(t, Icmpv6Message::ECHO_REQUEST | Icmpv6Message::ECHO_REPLY);
            let id = if echo { icmp.echo_ident() } else { 0 };
            Ok(Transport { icmp: Some((t.0, code)), ..ports(id, id) })
        }
        IpProtocol::IPV6_FRAG if v6 => Err(NatError::Fragment),
        _ => Err(NatError::Unsupported),
    }
}

/// Validates a quoted IPv4 header (the total length is the original packet's, longer than the
/// quote, so only the header itself is checked). Returns addresses, protocol and header length.
fn quoted_ipv4(quoted: &[u8]) -> Result<(IpPair, IpProtocol, usize), NatError> {
    if quoted.len() < ipv4::HEADER_LEN {
        return Err(NatError::Malformed);
    }
    let ip = Ipv4Packet::new_unchecked(quoted);
    let header_len = usize::from(ip.header_len());
    if ip.version() != 4 || header_len < ipv4::HEADER_LEN || header_len > quoted.len() {
        return Err(NatError::Malformed);
    }
    // A first fragment (offset 0, MF set) still quotes the ports; a later one quotes payload.
    if ip.frag_offset() != 0 {
        return Err(NatError::Fragment);
    }
    Ok((IpPair::V4 { src: ip.src_addr(), dst: ip.dst_addr() }, ip.protocol(), header_len))
}

/// Validates a quoted IPv6 fixed header (its payload length is the original packet's).
fn quoted_ipv6(quoted: &[u8]) -> Result<(IpPair, IpProtocol, usize), NatError> {
    if quoted.len() < ipv6::HEADER_LEN {
        return Err(NatError::Malformed);
    }
    let ip = Ipv6Packet::new_unchecked(quoted);
    if ip.version() != 6 {
        return Err(NatError::Malformed);
    }
    if ip.next_header() == IpProtocol::IPV6_FRAG {
        return Err(NatError::Fragment);
    }
    Ok((IpPair::V6 { src: ip.src_addr(), dst: ip.dst_addr() }, ip.next_header(), ipv6::HEADER_LEN))
}

#[cfg(test)]
mod tests {
    //! The expected bytes of every rewrite are built independently: the whole packet is emitted
    //! again from the `wire` reprs with the new addresses and ports, which computes every
    //! checksum from scratch. The incremental rewrite must match it byte for byte.

    use core::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::wire::{EthernetRepr, Ipv4Repr, Ipv6Repr, TcpControl, TcpRepr, TcpSeqNumber, TcpTimestamp, UdpRepr};
    use proptest::prelude::*;

    /// Everything about a test packet but its addresses, protocol and ports.
    #[derive(Debug, Clone)]
    struct Shape {
        vlan: Option<VlanTag>,
        src_mac: EthernetAddress,
        dst_mac: EthernetAddress,
        ttl: u8,
        ident: u16,
        dscp_ecn: u8,
        dont_frag: bool,
        /// IPv4 options (a multiple of 4 bytes, at most 40).
        ip_options: Vec<u8>,
        flow_label: u32,
        tcp: TcpShape,
        /// Store a zero UDP checksum ("none" over IPv4, invalid over IPv6).
        udp_zero: bool,
        payload: Vec<u8>,
        /// Ethernet padding after the IP packet.
        pad: usize,
    }

    #[derive(Debug, Clone, Copy)]
    struct TcpShape {
        seq: u32,
        ack: Option<u32>,
        control: TcpControl,
        window: u16,
        mss: Option<u16>,
        timestamp: Option<(u32, u32)>,
        push: bool,
    }

    fn plain_shape() -> Shape {
        Shape {
            vlan: None,
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ttl: 64,
            ident: 0x1234,
            dscp_ecn: 0,
            dont_frag: true,
            ip_options: Vec::new(),
            flow_label: 0x12345,
            tcp: TcpShape {
                seq: 1000,
                ack: Some(2000),
                control: TcpControl::None,
                window: 512,
                mss: None,
                timestamp: None,
                push: true,
            },
            udp_zero: false,
            payload: b"hello, world".to_vec(),
            pad: 0,
        }
    }

    /// The TCP segment or UDP datagram of `shape` with `t`'s ports, checksummed for `t`'s
    /// addresses from scratch.
    fn transport(shape: &Shape, t: &FiveTuple) -> Vec<u8> {
        if t.protocol == IpProtocol::TCP {
            let s = shape.tcp;
            let mut repr = TcpRepr::new(t.src_port, t.dst_port, TcpSeqNumber(s.seq));
            repr.ack_number = s.ack.map(TcpSeqNumber);
            repr.control = s.control;
            repr.window_len = s.window;
            repr.max_seg_size = s.mss;
            repr.timestamp = s.timestamp.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr });
            repr.push = s.push;
            repr.payload = &shape.payload;
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &t.ips);
            buf
        } else {
            let repr = UdpRepr { src_port: t.src_port, dst_port: t.dst_port };
            let mut buf = vec![0u8; udp_header_len() + shape.payload.len()];
            let n = shape.payload.len();
            repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &t.ips, n, |p| p.copy_from_slice(&shape.payload));
            if shape.udp_zero {
                UdpPacket::new_unchecked(&mut buf[..]).set_checksum(0);
            }
            buf
        }
    }

    fn udp_header_len() -> usize {
        crate::wire::udp::HEADER_LEN
    }

    /// An IP packet around `payload`, header checksum computed from scratch.
    fn ip_packet(shape: &Shape, ips: &IpPair, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        match *ips {
            IpPair::V4 { src, dst } => {
                let repr = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol,
                    payload_len: payload.len(),
                    ttl: shape.ttl,
                    dscp_ecn: shape.dscp_ecn,
                    ident: shape.ident,
                    dont_frag: shape.dont_frag,
                };
                let header_len = ipv4::HEADER_LEN + shape.ip_options.len();
                let mut buf = vec![0u8; header_len + payload.len()];
                let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
                repr.emit(&mut ip);
                if !shape.ip_options.is_empty() {
                    ip.set_header_len(header_len as u8);
                    ip.set_total_len((header_len + payload.len()) as u16);
                    ip.options_mut().copy_from_slice(&shape.ip_options);
                    ip.fill_checksum();
                }
                buf[header_len..].copy_from_slice(payload);
                buf
            }
            IpPair::V6 { src, dst } => {
                let repr = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: protocol,
                    payload_len: payload.len(),
                    hop_limit: shape.ttl,
                    traffic_class: shape.dscp_ecn,
                    flow_label: shape.flow_label,
                };
                let mut buf = vec![0u8; ipv6::HEADER_LEN + payload.len()];
                repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
                buf[ipv6::HEADER_LEN..].copy_from_slice(payload);
                buf
            }
        }
    }

    /// An Ethernet frame around an IP packet, with `shape.pad` bytes of padding.
    fn frame(shape: &Shape, v6: bool, packet: &[u8]) -> Vec<u8> {
        let eth = EthernetRepr {
            src_addr: shape.src_mac,
            dst_addr: shape.dst_mac,
            ethertype: if v6 { EtherType::IPV6 } else { EtherType::IPV4 },
            vlan: shape.vlan,
        };
        let mut buf = vec![0u8; eth.buffer_len()];
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        buf.extend_from_slice(packet);
        buf.resize(buf.len() + shape.pad, 0xee);
        buf
    }

    /// The whole frame of a TCP/UDP packet with tuple `t`.
    fn build(shape: &Shape, t: &FiveTuple) -> Vec<u8> {
        frame(shape, t.ips.is_v6(), &ip_packet(shape, &t.ips, t.protocol, &transport(shape, t)))
    }

    fn v4(a: [u8; 4], b: [u8; 4]) -> IpPair {
        IpPair::V4 { src: Ipv4Addr::from(a), dst: Ipv4Addr::from(b) }
    }

    fn v6(a: u128, b: u128) -> IpPair {
        IpPair::V6 { src: Ipv6Addr::from_bits(a), dst: Ipv6Addr::from_bits(b) }
    }

    fn tuple(ips: IpPair, protocol: IpProtocol, src_port: u16, dst_port: u16) -> FiveTuple {
        FiveTuple { ips, protocol, src_port, dst_port }
    }

    fn any_pair(is_v6: bool) -> BoxedStrategy<IpPair> {
        if is_v6 {
            (any::<u128>(), any::<u128>()).prop_map(|(a, b)| v6(a, b)).boxed()
        } else {
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| v4(a, b)).boxed()
        }
    }

    /// Two tuples of one family and protocol (TCP or UDP): before and after a translation.
    fn any_translation() -> impl Strategy<Value = (FiveTuple, FiveTuple)> {
        (any::<bool>(), any::<bool>()).prop_flat_map(|(is_v6, tcp)| {
            let protocol = if tcp { IpProtocol::TCP } else { IpProtocol::UDP };
            let t = move || {
                (any_pair(is_v6), any::<u16>(), any::<u16>())
                    .prop_map(move |(ips, sp, dp)| tuple(ips, protocol, sp, dp))
            };
            (t(), t())
        })
    }

    fn any_tcp_shape() -> impl Strategy<Value = TcpShape> {
        let control = prop_oneof![Just(TcpControl::None), Just(TcpControl::Syn), Just(TcpControl::Fin)];
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            control,
            any::<u16>(),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<(u32, u32)>()),
            any::<bool>(),
        )
            .prop_map(|(seq, ack, control, window, mss, timestamp, push)| TcpShape {
                seq,
                ack,
                control,
                window,
                mss,
                timestamp,
                push,
            })
    }

    fn any_shape() -> impl Strategy<Value = Shape> {
        let link = (proptest::option::of(any::<u16>()), any::<[u8; 6]>(), any::<[u8; 6]>());
        let ip = (any::<u8>(), any::<u16>(), any::<u8>(), any::<bool>(), 0usize..=10, any::<u32>());
        let rest =
            (any_tcp_shape(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300), 0usize..24, any::<u64>());
        (link, ip, rest).prop_map(|((vlan, src, dst), (ttl, ident, dscp_ecn, df, opt_words, flow), rest)| {
            let (tcp, udp_zero, payload, pad, seed) = rest;
            let ip_options = (0..opt_words * 4).map(|i| (seed >> (i % 64)) as u8).collect();
            Shape {
                vlan: vlan.map(VlanTag::from_tci),
                src_mac: EthernetAddress(src),
                dst_mac: EthernetAddress(dst),
                ttl,
                ident,
                dscp_ecn,
                dont_frag: df,
                ip_options,
                flow_label: flow & 0xf_ffff,
                tcp,
                udp_zero,
                payload,
                pad,
            }
        })
    }

    /// Whether the frame's checksums are all valid as built (an IPv6 UDP zero is not).
    fn valid_as_built(shape: &Shape, t: &FiveTuple) -> bool {
        !(shape.udp_zero && t.protocol == IpProtocol::UDP && t.ips.is_v6())
    }

    proptest! {
        /// The core property: a rewrite gives exactly the bytes of the packet emitted from
        /// scratch with the new tuple, and rewriting back restores the original bytes.
        #[test]
        fn rewrite_equals_rebuild_and_reverts((from, to) in any_translation(), shape in any_shape()) {
            let original = build(&shape, &from);
            let expected = build(&shape, &to);
            let mut bytes = original.clone();
            let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
            prop_assert_eq!(f.tuple(), from);
            prop_assert_eq!(f.verify_checksums(), valid_as_built(&shape, &from));
            f.rewrite(&to).unwrap();
            prop_assert_eq!(f.tuple(), to);
            prop_assert_eq!(f.verify_checksums(), valid_as_built(&shape, &to));
            prop_assert_eq!(&bytes, &expected);

            let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
            prop_assert_eq!(f.tuple(), to);
            f.rewrite(&from).unwrap();
            prop_assert_eq!(&bytes, &original);
        }

        /// DNAT then SNAT, one side at a time, and the MAC rewrite, give the same bytes.
        #[test]
        fn one_side_at_a_time_and_macs(
            (from, to) in any_translation(),
            shape in any_shape(),
            (src_mac, dst_mac) in any::<([u8; 6], [u8; 6])>(),
        ) {
            let (src_mac, dst_mac) = (EthernetAddress(src_mac), EthernetAddress(dst_mac));
            let mut bytes = build(&shape, &from);
            let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
            f.rewrite_dst(to.dst_addr(), to.dst_port).unwrap();
            prop_assert_eq!(f.tuple().dst_addr(), to.dst_addr());
            prop_assert_eq!(f.tuple().src_addr(), from.src_addr());
            f.rewrite_src(to.src_addr(), to.src_port).unwrap();
            f.set_src_mac(src_mac);
            f.set_dst_mac(dst_mac);
            prop_assert_eq!((f.src_mac(), f.dst_mac()), (src_mac, dst_mac));
            let expected_shape = Shape { src_mac, dst_mac, ..shape.clone() };
            prop_assert_eq!(&bytes, &build(&expected_shape, &to));
        }

        /// What the view reports matches how the frame was built.
        #[test]
        fn view_reports_the_layout((t, _) in any_translation(), shape in any_shape()) {
            let bytes = build(&shape, &t);
            let f = NatFrame::new_checked(&bytes[..]).unwrap();
            let l3 = if shape.vlan.is_some() { 18 } else { 14 };
            let ip_header = if t.ips.is_v6() { 40 } else { 20 + shape.ip_options.len() };
            let l4_len = transport(&shape, &t).len();
            prop_assert_eq!(f.vlan(), shape.vlan);
            prop_assert_eq!(f.ip_version(), if t.ips.is_v6() { 6 } else { 4 });
            prop_assert_eq!((f.l3_offset(), f.l4_offset(), f.l4_len()), (l3, l3 + ip_header, l4_len));
            prop_assert_eq!(f.l4_offset() + f.l4_len() + shape.pad, bytes.len());
            prop_assert_eq!(f.protocol(), t.protocol);
            prop_assert_eq!((f.icmp_type_code(), f.is_icmp_error()), (None, false));
            prop_assert_eq!(f.inner_tuple(), Err(NatError::Unsupported));
            if t.protocol == IpProtocol::TCP {
                let s = shape.tcp;
                let mut expect = match s.control {
                    TcpControl::Syn => TcpFlags::SYN,
                    TcpControl::Fin => TcpFlags::FIN,
                    _ => TcpFlags::empty(),
                };
                expect = expect.with(TcpFlags::ACK, s.ack.is_some()).with(TcpFlags::PSH, s.push);
                prop_assert_eq!(f.tcp_flags(), Some(expect));
            } else {
                prop_assert_eq!(f.tcp_flags(), None);
            }
        }
    }

    #[test]
    fn ipv4_udp_zero_checksum_stays_zero() {
        let shape = Shape { udp_zero: true, ..plain_shape() };
        let from = tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::UDP, 5000, 53);
        let to = tuple(v4([198, 18, 9, 9], [198, 18, 0, 2]), IpProtocol::UDP, 6000, 5353);
        let mut bytes = build(&shape, &from);
        let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
        f.rewrite(&to).unwrap();
        assert!(f.verify_checksums());
        let l4 = f.l4_offset();
        assert_eq!(UdpPacket::new_checked(&bytes[l4..]).unwrap().checksum(), 0);
        assert_eq!(bytes, build(&shape, &to));
    }

    /// RFC 768: a checksum that computes to zero is sent as 0xffff. The destination port that
    /// makes the new datagram's sum 0xffff is found with the full computation, then reached by
    /// an incremental rewrite; over IPv4 and IPv6.
    #[test]
    fn udp_checksum_computing_to_zero_is_sent_as_ffff() {
        let shape = plain_shape();
        for ips in [v4([10, 0, 0, 1], [198, 18, 0, 1]), v6(0x2001_0db8 << 96 | 1, 0x2001_0db8 << 96 | 2)] {
            let from = tuple(ips, IpProtocol::UDP, 40000, 53);
            let checksum_of = |bytes: &[u8]| {
                let f = NatFrame::new_checked(bytes).unwrap();
                UdpPacket::new_checked(&bytes[f.l4_offset()..]).unwrap().checksum()
            };
            let port = (0..=u16::MAX)
                .find(|&p| checksum_of(&build(&shape, &FiveTuple { dst_port: p, ..from })) == 0xffff)
                .expect("a port whose datagram sums to 0xffff");
            let to = FiveTuple { dst_port: port, ..from };
            let mut bytes = build(&shape, &from);
            assert_ne!(checksum_of(&bytes), 0xffff);
            NatFrame::new_checked(&mut bytes[..]).unwrap().rewrite(&to).unwrap();
            assert_eq!(checksum_of(&bytes), 0xffff);
            assert_eq!(bytes, build(&shape, &to));
            NatFrame::new_checked(&mut bytes[..]).unwrap().rewrite(&from).unwrap();
            assert_eq!(bytes, build(&shape, &from));
        }
    }

    #[test]
    fn fragments_are_reported_as_such() {
        let t = tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::UDP, 5000, 53);
        let base = build(&plain_shape(), &t);
        let with_ip = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut b = base.clone();
            f(&mut Ipv4Packet::new_unchecked(&mut b[14..]));
            NatFrame::new_checked(&b[..]).map(|f| f.tuple())
        };
        assert_eq!(with_ip(&|ip| ip.set_more_frags(true)), Err(NatError::Fragment));
        assert_eq!(with_ip(&|ip| ip.set_frag_offset(1480)), Err(NatError::Fragment));
        assert_eq!(with_ip(&|ip| ip.set_dont_frag(false)), Ok(t));

        let t6 = tuple(v6(1, 2), IpProtocol::UDP, 5000, 53);
        let mut b = build(&plain_shape(), &t6);
        Ipv6Packet::new_unchecked(&mut b[14..]).set_next_header(IpProtocol::IPV6_FRAG);
        assert_eq!(NatFrame::new_checked(&b[..]).map(|f| f.tuple()), Err(NatError::Fragment));
    }

    #[test]
    fn other_protocols_are_unsupported() {
        let t = tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::UDP, 5000, 53);
        let base = build(&plain_shape(), &t);
        let mut gre = base.clone();
        Ipv4Packet::new_unchecked(&mut gre[14..]).set_protocol(IpProtocol(47));
        let mut arp = base.clone();
        EthernetFrame::new_unchecked(&mut arp[..]).set_ethertype(EtherType::ARP);
        let mut qinq = base.clone();
        EthernetFrame::new_unchecked(&mut qinq[..]).set_ethertype(EtherType::QINQ);
        let mut icmpv6_in_v4 = base.clone();
        Ipv4Packet::new_unchecked(&mut icmpv6_in_v4[14..]).set_protocol(IpProtocol::ICMPV6);
        let mut hop_by_hop = build(&plain_shape(), &tuple(v6(1, 2), IpProtocol::UDP, 5000, 53));
        Ipv6Packet::new_unchecked(&mut hop_by_hop[14..]).set_next_header(IpProtocol::HOP_BY_HOP);
        for b in [gre, arp, qinq, icmpv6_in_v4, hop_by_hop] {
            assert_eq!(NatFrame::new_checked(&b[..]).map(|f| f.tuple()), Err(NatError::Unsupported));
        }
    }

    #[test]
    fn truncated_and_inconsistent_frames_are_malformed() {
        let mut shape = Shape { vlan: Some(VlanTag::from_tci(100)), ..plain_shape() };
        shape.tcp.mss = Some(1460);
        for t in [
            tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::TCP, 5000, 80),
            tuple(v6(7, 9), IpProtocol::UDP, 5000, 53),
        ] {
            let full = build(&shape, &t);
            for len in 0..full.len() {
                assert_eq!(NatFrame::new_checked(&full[..len]).map(|f| f.tuple()), Err(NatError::Malformed), "{len}");
            }
            assert_eq!(NatFrame::new_checked(&full[..]).map(|f| f.tuple()), Ok(t));
        }
        let t = tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::UDP, 5000, 53);
        let base = build(&plain_shape(), &t);
        let mut wrong_version = base.clone();
        Ipv4Packet::new_unchecked(&mut wrong_version[14..]).set_version(6);
        let mut long_udp = base.clone();
        UdpPacket::new_unchecked(&mut long_udp[34..]).set_len(1000);
        let mut short_tcp = build(&plain_shape(), &FiveTuple { protocol: IpProtocol::TCP, ..t });
        TcpPacket::new_unchecked(&mut short_tcp[34..]).set_header_len(16);
        for b in [wrong_version, long_udp, short_tcp] {
            assert_eq!(NatFrame::new_checked(&b[..]).map(|f| f.tuple()), Err(NatError::Malformed));
        }
    }

    #[test]
    fn mismatched_translations_leave_the_frame_alone() {
        let t = tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::TCP, 5000, 80);
        let original = build(&plain_shape(), &t);
        let mut bytes = original.clone();
        let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(f.rewrite(&tuple(v6(1, 2), IpProtocol::TCP, 1, 2)), Err(NatError::Mismatch));
        assert_eq!(f.rewrite(&FiveTuple { protocol: IpProtocol::UDP, ..t }), Err(NatError::Mismatch));
        assert_eq!(f.rewrite_src(IpAddr::V6(Ipv6Addr::LOCALHOST), 1), Err(NatError::Mismatch));
        assert_eq!(f.rewrite_dst(IpAddr::V6(Ipv6Addr::LOCALHOST), 1), Err(NatError::Mismatch));
        assert_eq!(f.translate_icmp_error(&t.ips, &t), Err(NatError::Unsupported));
        assert_eq!(f.tuple(), t);
        assert_eq!(bytes, original);
        assert_eq!(NatError::Fragment.to_string(), "IP fragment");
    }

    #[test]
    fn tuple_helpers() {
        let t = tuple(v4([10, 0, 0, 1], [198, 18, 0, 1]), IpProtocol::TCP, 5000, 80);
        let r = t.reversed();
        assert_eq!((r.src_addr(), r.dst_addr(), r.src_port, r.dst_port), (t.dst_addr(), t.src_addr(), 80, 5000));
        assert_eq!(r.reversed(), t);
        let dnat = t.with_dst(IpAddr::V4(Ipv4Addr::new(198, 18, 5, 5)), 8080).unwrap();
        assert_eq!(dnat, tuple(v4([10, 0, 0, 1], [198, 18, 5, 5]), IpProtocol::TCP, 5000, 8080));
        let snat = t.with_src(IpAddr::V4(Ipv4Addr::new(198, 18, 6, 6)), 1024).unwrap();
        assert_eq!(snat, tuple(v4([198, 18, 6, 6], [198, 18, 0, 1]), IpProtocol::TCP, 1024, 80));
    }

    // ---- ICMP ----

    /// An ICMP error of type/code/rest-of-header `kind`, from the outer addresses `outer`,
    /// quoting the first `quote` transport bytes of the packet `inner` (built with
    /// `inner_shape`), every checksum computed from scratch.
    fn icmp_error(
        shape: &Shape,
        inner_shape: &Shape,
        kind: (u8, u8, [u8; 4]),
        outer: &IpPair,
        inner: &FiveTuple,
        quote: usize,
    ) -> Vec<u8> {
        icmp_error_edited(shape, inner_shape, kind, outer, inner, quote, |_| {})
    }

    /// [`icmp_error`], with `edit` applied to the quoted transport bytes before the ICMP
    /// checksum is computed.
    fn icmp_error_edited(
        shape: &Shape,
        inner_shape: &Shape,
        kind: (u8, u8, [u8; 4]),
        outer: &IpPair,
        inner: &FiveTuple,
        quote: usize,
        edit: impl Fn(&mut [u8]),
    ) -> Vec<u8> {
        let inner_packet = ip_packet(inner_shape, &inner.ips, inner.protocol, &transport(inner_shape, inner));
        let header_len = if inner.ips.is_v6() { 40 } else { 20 + inner_shape.ip_options.len() };
        let mut quoted = inner_packet[..(header_len + quote).min(inner_packet.len())].to_vec();
        edit(&mut quoted[header_len..]);
        let mut message = vec![0u8; 8 + quoted.len()];
        message[0] = kind.0;
        message[1] = kind.1;
        message[4..8].copy_from_slice(&kind.2);
        message[8..].copy_from_slice(&quoted);
        let protocol = if outer.is_v6() {
            Icmpv6Packet::new_unchecked(&mut message[..]).fill_checksum(outer);
            IpProtocol::ICMPV6
        } else {
            Icmpv4Packet::new_unchecked(&mut message[..]).fill_checksum();
            IpProtocol::ICMP
        };
        frame(shape, outer.is_v6(), &ip_packet(shape, outer, protocol, &message))
    }

    /// ICMP errors that quote: ICMPv4 destination unreachable (code 4: "fragmentation needed"
    /// with a next-hop MTU), time exceeded, parameter problem; their ICMPv6 counterparts and
    /// packet too big.
    fn any_error_kind(is_v6: bool) -> BoxedStrategy<(u8, u8, [u8; 4])> {
        let types: &[u8] = if is_v6 { &[1, 2, 3, 4] } else { &[3, 11, 12] };
        (proptest::sample::select(types), 0u8..16, any::<[u8; 4]>()).prop_map(|(t, c, rest)| (t, c, rest)).boxed()
    }

    /// Everything an ICMP translation test needs: outer shape, inner shape, kind, outer pairs
    /// before/after, inner tuples before/after, quoted transport length.
    #[allow(clippy::type_complexity)]
    fn any_icmp_case(
    ) -> impl Strategy<Value = (Shape, Shape, (u8, u8, [u8; 4]), (IpPair, IpPair), (FiveTuple, FiveTuple), usize)> {
        any_translation().prop_flat_map(|(from, to)| {
            let is_v6 = from.ips.is_v6();
            (
                any_shape(),
                any_shape(),
                any_error_kind(is_v6),
                (any_pair(is_v6), any_pair(is_v6)),
                Just((from, to)),
                8usize..120,
            )
        })
    }

    fn quoted_status(inner_shape: &Shape, inner: &FiveTuple, quote: usize) -> InnerChecksum {
        if inner.protocol == IpProtocol::UDP {
            if inner_shape.udp_zero {
                InnerChecksum::Absent
            } else {
                InnerChecksum::Updated
            }
        } else if quote.min(transport(inner_shape, inner).len()) >= 18 {
            InnerChecksum::Updated
        } else {
            InnerChecksum::Truncated
        }
    }

    proptest! {
        /// Translating an ICMP error gives exactly the error built from scratch around the
        /// translated quote, and translating back restores the original bytes.
        #[test]
        fn icmp_error_translation_equals_rebuild(case in any_icmp_case()) {
            let (shape, inner_shape, kind, (outer0, outer1), (inner0, inner1), quote) = case;
            let original = icmp_error(&shape, &inner_shape, kind, &outer0, &inner0, quote);
            // A 17-byte TCP quote holds the first byte of the checksum only: its new value
            // depends on the carry from the missing byte, so it is kept as it was.
            let original_byte = transport(&inner_shape, &inner0).get(16).copied();
            let keep_half_checksum = |quoted: &mut [u8]| {
                if inner0.protocol == IpProtocol::TCP && quoted.len() == 17 {
                    quoted[16] = original_byte.unwrap_or_default();
                }
            };
            let expected = icmp_error_edited(&shape, &inner_shape, kind, &outer1, &inner1, quote, keep_half_checksum);
            let mut bytes = original.clone();
            let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
            prop_assert!(f.is_icmp_error());
            prop_assert_eq!(f.icmp_type_code(), Some((kind.0, kind.1)));
            prop_assert_eq!(f.tuple(), FiveTuple { ips: outer0, protocol: f.protocol(), src_port: 0, dst_port: 0 });
            prop_assert_eq!(f.inner_tuple(), Ok(inner0));
            prop_assert!(f.verify_checksums());
            prop_assert_eq!(f.rewrite(&inner1), Err(NatError::Unsupported));

            let status = f.translate_icmp_error(&outer1, &inner1).unwrap();
            prop_assert_eq!(status, quoted_status(&inner_shape, &inner1, quote));
            prop_assert_eq!(f.tuple().ips, outer1);
            prop_assert_eq!(f.inner_tuple(), Ok(inner1));
            prop_assert!(f.verify_checksums());
            prop_assert_eq!(&bytes, &expected);

            let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
            f.translate_icmp_error(&outer0, &inner0).unwrap();
            prop_assert_eq!(&bytes, &original);
        }
    }

    /// The l4lb's path-MTU story end to end. A client sends to the VIP; the load balancer
    /// translates to (SNAT address, backend); a router on the backend side answers
    /// "fragmentation needed, MTU 1400" to the SNAT address, quoting the translated packet. The
    /// load balancer finds the flow by the quoted tuple and translates the error back: the
    /// client must receive exactly the error the router would have sent had it been on the
    /// client's path (same MTU, quoting the client's own packet), built here from scratch.
    #[test]
    fn path_mtu_discovery_through_the_nat() {
        let router = Ipv4Addr::new(198, 18, 200, 1);
        let client = tuple(v4([198, 18, 1, 10], [198, 18, 0, 100]), IpProtocol::TCP, 43210, 443);
        let backend = tuple(v4([198, 18, 0, 200], [198, 18, 2, 20]), IpProtocol::TCP, 61000, 8443);
        let mut shape = plain_shape();
        shape.payload = vec![0x5a; 1400];
        shape.tcp.timestamp = Some((7, 8));
        let frag_needed = (3, 4, [0, 0, 0x05, 0x78]);
        let quote = 8; // RFC 792's minimum: ports and sequence number, no TCP checksum

        // What the load balancer sent to the backend, then the router's error about it.
        let mut sent = build(&shape, &client);
        NatFrame::new_checked(&mut sent[..]).unwrap().rewrite(&backend).unwrap();
        assert_eq!(sent, build(&shape, &backend));
        let to_lb = IpPair::V4 { src: router, dst: Ipv4Addr::new(198, 18, 0, 200) };
        let mut error = icmp_error(&plain_shape(), &shape, frag_needed, &to_lb, &backend, quote);

        let mut f = NatFrame::new_checked(&mut error[..]).unwrap();
        assert_eq!(f.inner_tuple(), Ok(backend));
        // The caller's flow table maps `backend` (its output tuple) back to `client`.
        let to_client = IpPair::V4 { src: router, dst: Ipv4Addr::new(198, 18, 1, 10) };
        assert_eq!(f.translate_icmp_error(&to_client, &client), Ok(InnerChecksum::Truncated));
        assert!(f.verify_checksums());
        assert_eq!(error, icmp_error(&plain_shape(), &shape, frag_needed, &to_client, &client, quote));
        let icmp = Icmpv4Packet::new_checked(&error[34..]).unwrap();
        assert_eq!(icmp.next_hop_mtu(), 1400);

        // Modern routers quote more (RFC 1812): then the quoted TCP checksum is updated too.
        let mut error = icmp_error(&plain_shape(), &shape, frag_needed, &to_lb, &backend, 548);
        let mut f = NatFrame::new_checked(&mut error[..]).unwrap();
        assert_eq!(f.translate_icmp_error(&to_client, &client), Ok(InnerChecksum::Updated));
        assert_eq!(error, icmp_error(&plain_shape(), &shape, frag_needed, &to_client, &client, 548));
    }

    /// Every quote length from RFC 792's 8 bytes to the whole packet, TCP and UDP, IPv4 and
    /// IPv6: the checksum status switches exactly where the field becomes complete.
    #[test]
    fn every_quote_length_translates() {
        let mut inner_shape = plain_shape();
        inner_shape.tcp.mss = Some(1400);
        for (outer, ips0, ips1) in [
            (
                v4([198, 18, 200, 1], [198, 18, 0, 1]),
                v4([198, 18, 0, 1], [198, 18, 9, 9]),
                v4([198, 18, 1, 1], [198, 18, 0, 9]),
            ),
            (v6(1, 2), v6(3 << 64 | 4, 5), v6(6, 7 << 100 | 8)),
        ] {
            for protocol in [IpProtocol::TCP, IpProtocol::UDP] {
                let (inner0, inner1) = (tuple(ips0, protocol, 1000, 2000), tuple(ips1, protocol, 3000, 4000));
                let full = transport(&inner_shape, &inner0);
                for quote in 8..=full.len() {
                    let kind = (if outer.is_v6() { 2 } else { 3 }, 4, [0, 0, 5, 0xdc]);
                    let mut bytes = icmp_error(&plain_shape(), &inner_shape, kind, &outer, &inner0, quote);
                    let status = NatFrame::new_checked(&mut bytes[..]).unwrap().translate_icmp_error(&outer, &inner1);
                    let keep = |q: &mut [u8]| {
                        if protocol == IpProtocol::TCP && q.len() == 17 {
                            q[16] = full[16];
                        }
                    };
                    let expected = icmp_error_edited(&plain_shape(), &inner_shape, kind, &outer, &inner1, quote, keep);
                    assert_eq!(bytes, expected, "{protocol} quote {quote}");
                    let complete = protocol == IpProtocol::UDP || quote >= 18;
                    let want = if complete { InnerChecksum::Updated } else { InnerChecksum::Truncated };
                    assert_eq!(status, Ok(want), "{protocol} quote {quote}");
                }
            }
        }
    }

    /// The `nat` fuzz seeds (checksums checked outside this crate, in Python): a tagged ICMPv4
    /// "fragmentation needed" quoting 28 bytes of TCP, and an ICMPv6 "packet too big" quoting a
    /// whole UDP datagram, whose quoted checksum can therefore be verified after translation.
    #[test]
    fn fuzz_seeds_parse_and_translate() {
        let frag_needed = include_bytes!("../../fuzz/seeds/nat/vlan_ipv4_icmp_frag_needed");
        let f = NatFrame::new_checked(&frag_needed[..]).unwrap();
        assert!(f.is_icmp_error() && f.verify_checksums());
        assert_eq!((f.vlan(), f.icmp_type_code()), (Some(VlanTag::from_tci(7)), Some((3, 4))));
        assert_eq!(f.inner_tuple().map(|t| (t.protocol, t.src_port, t.dst_port)), Ok((IpProtocol::TCP, 61000, 8443)));

        let mut too_big = include_bytes!("../../fuzz/seeds/nat/ipv6_icmpv6_packet_too_big").to_vec();
        let mut f = NatFrame::new_checked(&mut too_big[..]).unwrap();
        assert!(f.is_icmp_error() && f.verify_checksums());
        let inner = f.inner_tuple().unwrap();
        assert_eq!((inner.protocol, inner.src_port, inner.dst_port), (IpProtocol::UDP, 5353, 53));
        let quoted_udp = f.l4_offset() + 8 + 40;
        let verify_quoted =
            |bytes: &[u8], ips: &IpPair| UdpPacket::new_checked(&bytes[quoted_udp..]).unwrap().verify_checksum(ips);
        let to = tuple(v6(0x2001_0db8 << 96 | 0xabc, 0xfd00 << 112 | 0x7), IpProtocol::UDP, 1, 65535);
        let outer = v6(0x2001_0db8 << 96 | 0xff, 0xfd00 << 112 | 0x1);
        assert_eq!(f.translate_icmp_error(&outer, &to), Ok(InnerChecksum::Updated));
        assert!(f.verify_checksums());
        assert!(verify_quoted(&too_big, &to.ips));
        assert!(!verify_quoted(&too_big, &inner.ips));
    }

    #[test]
    fn icmp_echo_is_parsed_not_translated() {
        let mut echo = vec![8u8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
        Icmpv4Packet::new_unchecked(&mut echo[..]).fill_checksum();
        let ips = v4([198, 18, 1, 1], [198, 18, 0, 1]);
        let bytes = frame(&plain_shape(), false, &ip_packet(&plain_shape(), &ips, IpProtocol::ICMP, &echo));
        let f = NatFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(f.tuple(), tuple(ips, IpProtocol::ICMP, 0x1234, 0x1234));
        assert_eq!((f.icmp_type_code(), f.is_icmp_error(), f.tcp_flags()), (Some((8, 0)), false, None));
        assert!(f.verify_checksums());
        assert_eq!(f.inner_tuple(), Err(NatError::Unsupported));

        let mut echo6 = vec![128u8, 0, 0, 0, 0xab, 0xcd, 0, 1, b'p'];
        let ips6 = v6(0x2001_0db8 << 96 | 1, 0x2001_0db8 << 96 | 2);
        Icmpv6Packet::new_unchecked(&mut echo6[..]).fill_checksum(&ips6);
        let mut bytes = frame(&plain_shape(), true, &ip_packet(&plain_shape(), &ips6, IpProtocol::ICMPV6, &echo6));
        let mut f = NatFrame::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(f.tuple(), tuple(ips6, IpProtocol::ICMPV6, 0xabcd, 0xabcd));
        assert!(f.verify_checksums());
        let any = tuple(ips6, IpProtocol::ICMPV6, 1, 1);
        assert_eq!(f.rewrite(&any), Err(NatError::Unsupported));
        assert_eq!(f.translate_icmp_error(&ips6, &any), Err(NatError::Unsupported));
        // A neighbour solicitation is ICMPv6 but neither echo nor error: ports 0.
        echo6[0] = 135;
        Icmpv6Packet::new_unchecked(&mut echo6[..]).fill_checksum(&ips6);
        let bytes = frame(&plain_shape(), true, &ip_packet(&plain_shape(), &ips6, IpProtocol::ICMPV6, &echo6));
        assert_eq!(NatFrame::new_checked(&bytes[..]).unwrap().tuple(), tuple(ips6, IpProtocol::ICMPV6, 0, 0));
    }

    #[test]
    fn bad_quotes_are_rejected_and_leave_the_frame_alone() {
        let kind = (11, 0, [0; 4]);
        let outer = v4([198, 18, 200, 1], [198, 18, 0, 1]);
        let inner = tuple(v4([198, 18, 0, 1], [198, 18, 9, 9]), IpProtocol::UDP, 1000, 2000);
        let build_error = |quote| icmp_error(&plain_shape(), &plain_shape(), kind, &outer, &inner, quote);
        let check = |bytes: &[u8], want: NatError| {
            let mut copy = bytes.to_vec();
            let mut f = NatFrame::new_checked(&mut copy[..]).unwrap();
            assert_eq!(f.inner_tuple(), Err(want));
            assert_eq!(f.translate_icmp_error(&outer, &inner), Err(want));
            assert_eq!(copy, bytes);
        };
        for quote in 0..8 {
            check(&build_error(quote), NatError::Malformed);
        }
        let good = build_error(8);
        let inner_ip = 14 + 20 + 8;
        let edit = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut b = good.clone();
            f(&mut Ipv4Packet::new_unchecked(&mut b[inner_ip..]));
            b
        };
        check(&edit(&|ip| ip.set_header_len(16)), NatError::Malformed);
        check(&edit(&|ip| ip.set_header_len(24)), NatError::Malformed); // 4 bytes short of 8
        check(&edit(&|ip| ip.set_version(6)), NatError::Malformed);
        check(&edit(&|ip| ip.set_frag_offset(8)), NatError::Fragment);
        check(&edit(&|ip| ip.set_protocol(IpProtocol::ICMP)), NatError::Unsupported);
        // A first fragment still quotes its ports.
        let first = edit(&|ip| ip.set_more_frags(true));
        assert_eq!(NatFrame::new_checked(&first[..]).unwrap().inner_tuple(), Ok(inner));

        // Wrong family or protocol for the translation.
        let mut b = good.clone();
        let mut f = NatFrame::new_checked(&mut b[..]).unwrap();
        assert_eq!(f.translate_icmp_error(&v6(1, 2), &inner), Err(NatError::Mismatch));
        assert_eq!(f.translate_icmp_error(&outer, &tuple(v6(1, 2), IpProtocol::UDP, 1, 2)), Err(NatError::Mismatch));
        assert_eq!(
            f.translate_icmp_error(&outer, &FiveTuple { protocol: IpProtocol::TCP, ..inner }),
            Err(NatError::Mismatch)
        );
        assert_eq!(b, good);

        // IPv6 quotes: a fragment header, an extension header, a short quote.
        let outer6 = v6(1, 2);
        let inner6 = tuple(v6(2, 3), IpProtocol::TCP, 1000, 2000);
        let good6 = icmp_error(&plain_shape(), &plain_shape(), (1, 0, [0; 4]), &outer6, &inner6, 8);
        let next_header = |nh| {
            let mut b = good6.clone();
            Ipv6Packet::new_unchecked(&mut b[14 + 40 + 8..]).set_next_header(nh);
            NatFrame::new_checked(&b[..]).unwrap().inner_tuple()
        };
        assert_eq!(next_header(IpProtocol::IPV6_FRAG), Err(NatError::Fragment));
        assert_eq!(next_header(IpProtocol::IPV6_OPTS), Err(NatError::Unsupported));
        assert_eq!(next_header(IpProtocol::TCP), Ok(inner6));
        let short6 = icmp_error(&plain_shape(), &plain_shape(), (2, 0, [0; 4]), &outer6, &inner6, 7);
        assert_eq!(NatFrame::new_checked(&short6[..]).unwrap().inner_tuple(), Err(NatError::Malformed));
    }

    // ---- Robustness ----

    /// Calls everything on a frame; whatever the bytes, nothing may panic, and every rewrite
    /// keeps each checksum exactly as valid (or invalid) as it was.
    fn exercise(bytes: &[u8], to: &FiveTuple, outer: &IpPair) {
        let mut copy = bytes.to_vec();
        let Ok(mut f) = NatFrame::new_checked(&mut copy[..]) else {
            return;
        };
        let _ = (f.vlan(), f.ip_version(), f.l3_offset(), f.protocol(), f.tcp_flags(), f.icmp_type_code());
        let _ = (f.src_mac(), f.dst_mac(), f.is_icmp_error(), f.as_bytes().len());
        assert!(f.l4_offset() + f.l4_len() <= bytes.len());
        let valid = f.verify_checksums();
        let before = f.tuple();
        let inner = f.inner_tuple();
        let to = FiveTuple { protocol: before.protocol, ..*to };
        if f.rewrite(&to).is_ok() {
            assert_eq!(f.verify_checksums(), valid);
            f.rewrite(&before).unwrap();
            assert_eq!(f.verify_checksums(), valid);
            assert_eq!(f.tuple(), before);
        }
        if let Ok(inner) = inner {
            let translated = FiveTuple { protocol: inner.protocol, ..to };
            if f.translate_icmp_error(outer, &translated).is_ok() {
                assert_eq!(f.verify_checksums(), valid);
                assert_eq!(f.inner_tuple(), Ok(translated));
                f.translate_icmp_error(&before.ips, &inner).unwrap();
                assert_eq!(f.verify_checksums(), valid);
            }
        }
        f.set_src_mac(EthernetAddress::BROADCAST);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            (t, _) in any_translation(),
        ) {
            exercise(&bytes, &t, &t.ips);
        }

        /// Valid frames (plain and ICMP errors) with random bytes overwritten and a random
        /// truncation: reaches every parser branch deep inside.
        #[test]
        fn corrupted_frames_never_panic(
            case in any_icmp_case(),
            plain in any::<bool>(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let (shape, inner_shape, kind, (outer0, outer1), (inner0, inner1), quote) = case;
            let mut bytes = if plain {
                build(&shape, &inner0)
            } else {
                icmp_error(&shape, &inner_shape, kind, &outer0, &inner0, quote)
            };
            for (at, value) in flips {
                let n = bytes.len();
                bytes[at % n] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1) + bytes.len() / 2);
            exercise(&bytes, &inner1, &outer1);
        }
    }
}
