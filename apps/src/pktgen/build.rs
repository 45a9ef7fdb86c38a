//! [`FrameBuilder`]: writes the generator's frames — Ethernet [+ 802.1Q] / IPv4 or IPv6 / UDP or
//! TCP with a signature payload — at a per-frame cost of one copy and a few dozen stores and adds.
//!
//! # What is in a frame
//!
//! Headers: IPv4 with DF set, identification 0, TTL 64, no options, a valid header checksum;
//! or IPv6 with traffic class 0, flow label 0, hop limit 64. UDP always carries a valid
//! checksum (mandatory for IPv6, and receivers that verify it see no errors over IPv4 either).
//!
//! TCP (`proto = "tcp"`): a 20-byte header (24 with the MSS option, kind 2, on SYN segments)
//! with the flags, window and sequence/acknowledgement numbers of [`super::tcp::TcpSpec`] —
//! fixed, or drawn per segment (a random ISN for every SYN of a flood) — urgent pointer 0, and a
//! valid checksum, computed the same incremental way. A TCP segment carries a payload only when
//! the frame leaves room for at least the compact signature (16 bytes): then the payload is the
//! signature and fill, as for UDP. Otherwise the segment is bare (no payload: IP length = headers)
//! and the frame is padded with zeros to its size, as a real 60-byte SYN is on an Ethernet wire.
//!
//! The UDP (or TCP) payload starts with the **signature**, in network byte order:
//!
//! | offset | full (payload ≥ 24 B) | compact (payload 16..24 B) |
//! |---|---|---|
//! | 0 | magic `u32` = `0x58534B44` ("XSKD") | magic |
//! | 4 | stream `u16` | stream |
//! | 6 | flags `u16` (bit 0 clear) | flags `u16` with [`FLAG_COMPACT`] |
//! | 8 | seq `u64` | seq, low 32 bits |
//! | 12 | | tx timestamp, low 32 bits of the ns |
//! | 16 | tx timestamp `u64`, ns of the sender's [`engine::Clock`] | fill |
//!
//! The compact form exists because a 60-byte IPv4 frame has only 18 payload bytes. Its
//! receiver extends the sequence number from the stream's recent ones and computes latency
//! modulo 2³² ns (4.29 s), which is plenty. After the signature comes the fill: the byte at
//! payload offset `k` is `k as u8`.
//!
//! # Cost
//!
//! Everything that does not change between frames is prepared once in [`FrameBuilder::new`]:
//! a template of the longest frame (headers, magic, stream, fill), the constant parts of both
//! checksums, and a table of the fill's checksum for every payload length. Per frame,
//! [`FrameBuilder::build`] copies `len` template bytes, stores lengths, addresses, ports, flags,
//! seq and timestamp, and computes both checksums by adding only those changed words to the
//! precomputed sums — no pass over the payload. It never allocates.

use std::net::IpAddr;

use super::spec::{FrameSize, Pick, PktgenSpec, Proto, IMIX_PATTERN};
use super::tcp::TcpNum;

/// Signature magic: "XSKD".
pub const SIG_MAGIC: u32 = 0x5853_4B44;
/// Length of the full signature.
pub const SIG_LEN: usize = 24;
/// Length of the compact signature.
pub const SIG_COMPACT_LEN: usize = super::spec::SIG_COMPACT_LEN;
/// Flag: the signature is compact (32-bit seq and timestamp).
pub const FLAG_COMPACT: u16 = 1;

/// A parsed signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// Stream id.
    pub stream: u16,
    /// Flags.
    pub flags: u16,
    /// Sequence number (only the low 32 bits are meaningful when compact).
    pub seq: u64,
    /// TX timestamp in ns (only the low 32 bits are meaningful when compact).
    pub tx_ts: u64,
}

impl Signature {
    /// Reads a signature from the start of a UDP payload; `None` if there is none.
    #[inline]
    pub fn parse(payload: &[u8]) -> Option<Signature> {
        let head: &[u8; SIG_COMPACT_LEN] = payload.get(..SIG_COMPACT_LEN)?.try_into().ok()?;
        if u32::from_be_bytes([head[0], head[1], head[2], head[3]]) != SIG_MAGIC {
            return None;
        }
        let stream = u16::from_be_bytes([head[4], head[5]]);
        let flags = u16::from_be_bytes([head[6], head[7]]);
        if flags & FLAG_COMPACT != 0 {
            let seq = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            let ts = u32::from_be_bytes([head[12], head[13], head[14], head[15]]);
            return Some(Signature { stream, flags, seq: u64::from(seq), tx_ts: u64::from(ts) });
        }
        let full: &[u8; SIG_LEN] = payload.get(..SIG_LEN)?.try_into().ok()?;
        let seq = u64::from_be_bytes(full[8..16].try_into().ok()?);
        let tx_ts = u64::from_be_bytes(full[16..24].try_into().ok()?);
        Some(Signature { stream, flags, seq, tx_ts })
    }

    /// Whether this is the compact form.
    #[inline]
    pub fn is_compact(&self) -> bool {
        self.flags & FLAG_COMPACT != 0
    }
}

/// wyrand: a fast, small, seedable 64-bit generator (deterministic for a seed).
#[derive(Debug, Clone)]
pub struct WyRand(u64);

impl WyRand {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> WyRand {
        WyRand(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2⁻³² for any `n` this crate uses).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A stateless 64-bit mix (splitmix64's finaliser), for values that must be computable for any
/// packet index (random sizes, which the rate limiter looks ahead at).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Frame sizes as a function of the packet index, so any future size can be looked at without
/// generating it (the rate limiter needs the next burst's sizes).
#[derive(Debug, Clone)]
enum SizeSeq {
    Fixed(usize),
    List(Box<[usize]>),
    Random { min: usize, span: u64, seed: u64 },
}

impl SizeSeq {
    fn new(size: &FrameSize, min_len: usize, seed: u64) -> SizeSeq {
        match size {
            FrameSize::Fixed(n) => SizeSeq::Fixed(*n as usize),
            FrameSize::List(v) => SizeSeq::List(v.iter().map(|&n| n as usize).collect()),
            FrameSize::Random { min, max } => SizeSeq::Random {
                min: *min as usize,
                span: u64::from(max - min) + 1,
                seed: mix(seed ^ 0x5349_5a45_5349_5a45),
            },
            FrameSize::Imix => SizeSeq::List(IMIX_PATTERN.iter().map(|&n| (n as usize).max(min_len)).collect()),
        }
    }

    #[inline]
    fn at(&self, k: u64) -> usize {
        match self {
            SizeSeq::Fixed(n) => *n,
            SizeSeq::List(v) => v[(k % v.len() as u64) as usize],
            SizeSeq::Random { min, span, seed } => {
                let r = mix(seed.wrapping_add(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
                min + ((u128::from(r) * u128::from(*span)) >> 64) as usize
            }
        }
    }
}

/// One field that walks a range: an odometer digit or a random draw.
#[derive(Debug, Clone, Copy)]
struct Dim {
    base: u128,
    count: u64,
    random: bool,
    idx: u64,
}

impl Dim {
    fn new(base: u128, count: u64, pick: Pick) -> Dim {
        Dim { base, count: count.max(1), random: pick == Pick::Random && count > 1, idx: 0 }
    }

    #[inline]
    fn value(&self, rng: &mut WyRand) -> u128 {
        let off = if self.random { rng.below(self.count) } else { self.idx };
        self.base.wrapping_add(u128::from(off))
    }
}

/// Dimension order in [`FrameBuilder::dims`]: the odometer turns the first one fastest.
const SRC_PORT: usize = 0;
const DST_PORT: usize = 1;
const SRC_IP: usize = 2;
const DST_IP: usize = 3;

/// Writes the TCP header's constant fields into `h` (data offset, flags, window, the MSS option)
/// and returns their sum for the checksum.
fn tcp_template(spec: &PktgenSpec, h: &mut [u8]) -> u64 {
    let t = &spec.tcp;
    let doff_flags = ((t.header_len() as u16 / 4) << 12) | u16::from(t.flags);
    h[12..14].copy_from_slice(&doff_flags.to_be_bytes());
    h[14..16].copy_from_slice(&t.window.to_be_bytes());
    let mut sum = u64::from(doff_flags) + u64::from(t.window);
    if let Some(mss) = t.mss {
        h[20..22].copy_from_slice(&0x0204u16.to_be_bytes()); // kind 2, length 4
        h[22..24].copy_from_slice(&mss.to_be_bytes());
        sum += 0x0204 + u64::from(mss);
    }
    sum
}

/// Writes the variable part of the signature (flags, seq, timestamp) at the start of a payload
/// of `plen` bytes (magic and stream are in the template) and returns its sum.
#[inline]
fn write_signature(sig: &mut [u8], plen: usize, seq: u64, tx_ts: u64) -> u64 {
    if plen < SIG_LEN {
        let (s32, t32) = (seq as u32, tx_ts as u32);
        sig[6..8].copy_from_slice(&FLAG_COMPACT.to_be_bytes());
        sig[8..12].copy_from_slice(&s32.to_be_bytes());
        sig[12..16].copy_from_slice(&t32.to_be_bytes());
        u64::from(FLAG_COMPACT) + words64(u64::from(s32)) + words64(u64::from(t32))
    } else {
        sig[6..8].copy_from_slice(&0u16.to_be_bytes());
        sig[8..16].copy_from_slice(&seq.to_be_bytes());
        sig[16..24].copy_from_slice(&tx_ts.to_be_bytes());
        words64(seq) + words64(tx_ts)
    }
}

/// Folds a 64-bit one's-complement accumulator to 16 bits.
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Sum of the four 16-bit words of a `u64` (not folded).
#[inline]
fn words64(v: u64) -> u64 {
    (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff)
}

/// The TCP numbers drawn or fixed per segment.
#[derive(Debug, Clone, Copy)]
struct TcpNums {
    seq: TcpNum,
    ack: TcpNum,
}

/// Builds the frames of one spec. See the module docs.
#[derive(Debug, Clone)]
pub struct FrameBuilder {
    template: Box<[u8]>,
    /// Offset of the IP header.
    l3: usize,
    /// Offset of the UDP or TCP header.
    l4: usize,
    /// Length of the UDP or TCP header.
    l4_hlen: usize,
    ipv6: bool,
    /// TCP: how the sequence and ack numbers are chosen; None for UDP.
    tcp: Option<TcpNums>,
    /// Constant part of the IPv4 header sum (version/IHL/TOS, ident, flags, TTL/protocol).
    ip_base: u64,
    /// Constant part of the UDP or TCP sum: protocol (pseudo header) and, for TCP, the header
    /// words that do not change (data offset and flags, window, MSS option).
    l4_base: u64,
    /// Sum of the signature's constant words (magic, stream).
    sig_base: u64,
    /// `fill_sum[n]`: one's-complement sum of the fill bytes of an `n`-byte UDP payload (the
    /// bytes after the signature form that length uses).
    fill_sum: Box<[u16]>,
    sizes: SizeSeq,
    dims: [Dim; 4],
    rng: WyRand,
    /// Frames built so far (the index of the next frame's size).
    index: u64,
}

impl FrameBuilder {
    /// Prepares the template and tables for `spec` (which must have passed
    /// [`PktgenSpec::validate`]; its `pcap` and `role` are ignored here).
    pub fn new(spec: &PktgenSpec, src_mac: [u8; 6], dst_mac: [u8; 6]) -> FrameBuilder {
        let min_len = spec.min_frame_len();
        let max_len = spec.size.max_len(min_len);
        let mut t = vec![0u8; max_len].into_boxed_slice();
        t[0..6].copy_from_slice(&dst_mac);
        t[6..12].copy_from_slice(&src_mac);
        let mut l3 = 14;
        if let Some(vid) = spec.vlan {
            t[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            t[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            l3 = 18;
        }
        let ethertype: u16 = if spec.ipv6 { 0x86dd } else { 0x0800 };
        t[l3 - 2..l3].copy_from_slice(&ethertype.to_be_bytes());
        let proto = spec.proto.number();
        let (l4, ip_base) = if spec.ipv6 {
            t[l3] = 0x60;
            t[l3 + 6] = proto; // next header
            t[l3 + 7] = 64; // hop limit
            (l3 + 40, 0)
        } else {
            let h = &mut t[l3..l3 + 20];
            h[0] = 0x45;
            h[6] = 0x40; // DF
            h[8] = 64; // TTL
            h[9] = proto;
            (l3 + 20, 0x4500 + 0x4000 + (64 << 8 | u64::from(proto)))
        };
        let l4_hlen = spec.l4_header_len();
        let l4_base = u64::from(proto) + if spec.proto == Proto::Tcp { tcp_template(spec, &mut t[l4..]) } else { 0 };
        let p = l4 + l4_hlen;
        for (k, b) in t[p..].iter_mut().enumerate() {
            *b = k as u8;
        }
        if t.len() >= p + 6 {
            t[p..p + 4].copy_from_slice(&SIG_MAGIC.to_be_bytes());
            t[p + 4..p + 6].copy_from_slice(&spec.stream.to_be_bytes());
        }
        let sig_base = words64(u64::from(SIG_MAGIC)) + u64::from(spec.stream);

        // Prefix sums of the fill pattern (byte k = k as u8), then per payload length the sum
        // over [signature length, n).
        let max_plen = max_len.saturating_sub(p);
        let mut prefix = vec![0u64; max_plen + 1];
        for k in 0..max_plen {
            let b = u64::from(k as u8);
            prefix[k + 1] = prefix[k] + if k % 2 == 0 { b << 8 } else { b };
        }
        let fill_sum = (0..=max_plen)
            .map(|n| {
                let sig = if n < SIG_LEN { SIG_COMPACT_LEN } else { SIG_LEN };
                fold(prefix[n].saturating_sub(prefix[sig.min(n)]))
            })
            .collect();

        let ip_bits = |a: IpAddr| match a {
            IpAddr::V4(a) => u128::from(a.to_bits()),
            IpAddr::V6(a) => a.to_bits(),
        };
        let dims = [
            Dim::new(u128::from(spec.src_port.first), spec.src_port.count(), spec.src_port.pick),
            Dim::new(u128::from(spec.dst_port.first), spec.dst_port.count(), spec.dst_port.pick),
            Dim::new(ip_bits(spec.src_ip.start), spec.src_ip.count, spec.src_ip.pick),
            Dim::new(ip_bits(spec.dst_ip.start), spec.dst_ip.count, spec.dst_ip.pick),
        ];
        FrameBuilder {
            template: t,
            l3,
            l4,
            l4_hlen,
            ipv6: spec.ipv6,
            tcp: (spec.proto == Proto::Tcp).then_some(TcpNums { seq: spec.tcp.seq, ack: spec.tcp.ack }),
            ip_base,
            l4_base,
            sig_base,
            fill_sum,
            sizes: SizeSeq::new(&spec.size, min_len, spec.seed),
            dims,
            rng: WyRand::new(spec.seed),
            index: 0,
        }
    }

    /// The longest frame this builder writes (the buffer `build` needs).
    pub fn max_len(&self) -> usize {
        self.template.len()
    }

    /// Length of the `i`-th frame from now (0: the next one `build` writes).
    #[inline]
    pub fn len_at(&self, i: usize) -> usize {
        self.sizes.at(self.index.wrapping_add(i as u64))
    }

    /// Frames built so far.
    pub fn built(&self) -> u64 {
        self.index
    }

    /// Number of distinct flows the sequential fields walk through (product of their range
    /// sizes; random fields not included).
    pub fn sequential_flows(&self) -> u128 {
        self.dims.iter().filter(|d| !d.random).map(|d| u128::from(d.count)).product()
    }

    /// Writes the next frame into `buf` with sequence number `seq` and TX timestamp `tx_ts`
    /// (ns); returns its length. Advances the flow fields and the size sequence.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Self::max_len`] (a caller bug: the app checks the UMEM frame
    /// capacity once, before the first frame).
    #[inline]
    pub fn build(&mut self, buf: &mut [u8], seq: u64, tx_ts: u64) -> usize {
        let len = self.sizes.at(self.index);
        let f = &mut buf[..len];
        f.copy_from_slice(&self.template[..len]);

        let sport = self.dims[SRC_PORT].value(&mut self.rng) as u16;
        let dport = self.dims[DST_PORT].value(&mut self.rng) as u16;
        let src = self.dims[SRC_IP].value(&mut self.rng);
        let dst = self.dims[DST_IP].value(&mut self.rng);

        let p = self.l4 + self.l4_hlen;
        let plen = len - p;
        // A TCP segment without room for the signature is bare; the frame is padded.
        let seg_plen = if self.tcp.is_some() && plen < SIG_COMPACT_LEN { 0 } else { plen };
        let l4_len = self.l4_hlen + seg_plen;
        // Pseudo header (protocol in l4_base, length, addresses), then the ports.
        let mut sum = self.l4_base + l4_len as u64 + self.write_ip(f, src, dst, l4_len);
        sum += u64::from(sport) + u64::from(dport);
        let csum_at = match self.tcp {
            None => {
                let u = &mut f[self.l4..];
                u[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                sum += l4_len as u64;
                6
            }
            Some(t) => {
                let (s, a) = (self.draw(t.seq), self.draw(t.ack));
                let h = &mut f[self.l4..];
                h[4..8].copy_from_slice(&s.to_be_bytes());
                h[8..12].copy_from_slice(&a.to_be_bytes());
                sum += words64(u64::from(s)) + words64(u64::from(a));
                16
            }
        };
        let h = &mut f[self.l4..];
        h[0..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        if seg_plen == 0 {
            f[p..].fill(0);
        } else {
            sum += self.sig_base + write_signature(&mut f[p..], plen, seq, tx_ts) + u64::from(self.fill_sum[plen]);
        }
        let c = !fold(sum);
        // UDP: 0 means "no checksum", so a computed 0 is sent as 0xffff (RFC 768). TCP has no such
        // value; both forms verify.
        let c = if c == 0 && self.tcp.is_none() { 0xffff } else { c };
        f[self.l4 + csum_at..self.l4 + csum_at + 2].copy_from_slice(&c.to_be_bytes());

        self.index += 1;
        self.step();
        len
    }

    /// A TCP sequence or ack number: the fixed one, or a random draw.
    #[inline]
    fn draw(&mut self, n: TcpNum) -> u32 {
        match n {
            TcpNum::Fixed(v) => v,
            TcpNum::Random => self.rng.next_u64() as u32,
        }
    }

    /// Writes the IP addresses and length (`l4_len` bytes of UDP/TCP follow the IP header) and,
    /// for IPv4, the header checksum; returns the addresses' sum for the pseudo header.
    #[inline]
    fn write_ip(&self, f: &mut [u8], src: u128, dst: u128, l4_len: usize) -> u64 {
        let l3 = self.l3;
        if self.ipv6 {
            f[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            f[l3 + 8..l3 + 24].copy_from_slice(&src.to_be_bytes());
            f[l3 + 24..l3 + 40].copy_from_slice(&dst.to_be_bytes());
            words64((src >> 64) as u64) + words64(src as u64) + words64((dst >> 64) as u64) + words64(dst as u64)
        } else {
            let (s4, d4) = (src as u32, dst as u32);
            let total = (20 + l4_len) as u16;
            let addr_words = words64(u64::from(s4)) + words64(u64::from(d4));
            let h = &mut f[l3..l3 + 20];
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[12..16].copy_from_slice(&s4.to_be_bytes());
            h[16..20].copy_from_slice(&d4.to_be_bytes());
            let ip_sum = !fold(self.ip_base + u64::from(total) + addr_words);
            h[10..12].copy_from_slice(&ip_sum.to_be_bytes());
            addr_words
        }
    }

    /// Advances the odometer of the sequential fields.
    #[inline]
    fn step(&mut self) {
        for d in &mut self.dims {
            if d.random || d.count == 1 {
                continue;
            }
            d.idx += 1;
            if d.idx < d.count {
                return;
            }
            d.idx = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktgen::spec::Proto;
    use crate::pktgen::spec::{IpRange, PortRange};
    use crate::pktgen::tcp::{TcpNum, TcpSpec, ACK, PSH, SYN};
    use engine::wire::{
        checksum, EtherType, EthernetFrame, IpPair, IpProtocol, Ipv4Packet, Ipv6Packet, TcpOption, TcpPacket, UdpPacket,
    };
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// What a frame parses back to, with both checksums verified from scratch.
    #[derive(Debug)]
    struct Parsed {
        vlan: Option<u16>,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        sig: Signature,
        udp_checksum: u16,
        recomputed: u16,
    }

    fn parse(frame: &[u8]) -> Parsed {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        let l3 = eth.l3_info().unwrap();
        let (src, dst, udp_bytes, pair) = match l3.ethertype {
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(eth.l3_payload().unwrap()).unwrap();
                assert!(ip.verify_checksum(), "IPv4 header checksum");
                assert_eq!(ip.protocol(), IpProtocol::UDP);
                assert_eq!(usize::from(ip.total_len()), eth.l3_payload().unwrap().len());
                // Same bytes, from-scratch checksum.
                let mut copy = ip.into_inner().to_vec();
                let mut p = Ipv4Packet::new_unchecked(&mut copy[..]);
                p.fill_checksum();
                assert_eq!(p.checksum(), ip.checksum());
                let pair = IpPair::V4 { src: ip.src_addr(), dst: ip.dst_addr() };
                (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), ip.payload().to_vec(), pair)
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(eth.l3_payload().unwrap()).unwrap();
                assert_eq!(ip.next_header(), IpProtocol::UDP);
                let pair = IpPair::V6 { src: ip.src_addr(), dst: ip.dst_addr() };
                (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), ip.payload().to_vec(), pair)
            }
            e => panic!("ethertype {e}"),
        };
        let udp = UdpPacket::new_checked(&udp_bytes[..]).unwrap();
        assert_eq!(usize::from(udp.len()), udp_bytes.len());
        assert!(udp.verify_checksum(&pair), "UDP checksum");
        let mut copy = udp_bytes.clone();
        let mut u = UdpPacket::new_unchecked(&mut copy[..]);
        u.fill_checksum(&pair);
        let sig = Signature::parse(udp.payload()).expect("signature");
        // The fill after the signature.
        let sig_len = if sig.is_compact() { SIG_COMPACT_LEN } else { SIG_LEN };
        for (k, b) in udp.payload().iter().enumerate().skip(sig_len) {
            assert_eq!(*b, k as u8, "fill byte {k}");
        }
        Parsed {
            vlan: l3.vlan.map(|t| t.vid()),
            src,
            dst,
            sport: udp.src_port(),
            dport: udp.dst_port(),
            sig,
            udp_checksum: udp.checksum(),
            recomputed: u.checksum(),
        }
    }

    fn spec() -> PktgenSpec {
        PktgenSpec { dst_mac: Some([2, 0, 0, 0, 0, 2]), ..Default::default() }
    }

    /// What a TCP frame parses back to, checksums verified and recomputed from scratch.
    #[derive(Debug)]
    struct ParsedTcp {
        vlan: Option<u16>,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u16,
        window: u16,
        mss: Option<u16>,
        /// IP length of the segment (header + payload), from the IP header.
        seg_len: usize,
        sig: Option<Signature>,
        checksum: u16,
        recomputed: u16,
    }

    fn parse_tcp(frame: &[u8]) -> ParsedTcp {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        let l3 = eth.l3_info().unwrap();
        let l3p = eth.l3_payload().unwrap();
        let (src, dst, seg, pair) = match l3.ethertype {
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(l3p).unwrap();
                assert!(ip.verify_checksum(), "IPv4 header checksum");
                assert_eq!(ip.protocol(), IpProtocol::TCP);
                let total = usize::from(ip.total_len());
                // Beyond the IP length: Ethernet padding, all zeros.
                assert!(l3p[total..].iter().all(|&b| b == 0), "padding");
                let pair = IpPair::V4 { src: ip.src_addr(), dst: ip.dst_addr() };
                (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), l3p[20..total].to_vec(), pair)
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(l3p).unwrap();
                assert_eq!(ip.next_header(), IpProtocol::TCP);
                let pair = IpPair::V6 { src: ip.src_addr(), dst: ip.dst_addr() };
                (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), ip.payload().to_vec(), pair)
            }
            e => panic!("ethertype {e}"),
        };
        let tcp = TcpPacket::new_checked(&seg[..]).unwrap();
        assert!(tcp.verify_checksum(&pair), "TCP checksum");
        let mut copy = seg.clone();
        let mut t = TcpPacket::new_unchecked(&mut copy[..]);
        t.fill_checksum(&pair);
        let mss = tcp.options_iter().find_map(|o| match o {
            Ok(TcpOption::MaxSegmentSize(m)) => Some(m),
            _ => None,
        });
        let sig = Signature::parse(tcp.payload());
        if let Some(sig) = sig {
            let sig_len = if sig.is_compact() { SIG_COMPACT_LEN } else { SIG_LEN };
            for (k, b) in tcp.payload().iter().enumerate().skip(sig_len) {
                assert_eq!(*b, k as u8, "fill byte {k}");
            }
        } else {
            assert!(tcp.payload().is_empty(), "a payload without a signature");
        }
        ParsedTcp {
            vlan: l3.vlan.map(|t| t.vid()),
            src,
            dst,
            sport: tcp.src_port(),
            dport: tcp.dst_port(),
            seq: tcp.seq_number().0,
            ack: tcp.ack_number().0,
            flags: tcp.flags().bits(),
            window: tcp.window_len(),
            mss,
            seg_len: seg.len(),
            sig,
            checksum: tcp.checksum(),
            recomputed: t.checksum(),
        }
    }

    fn tcp_spec() -> PktgenSpec {
        PktgenSpec { proto: Proto::Tcp, ..spec() }
    }

    fn build_all(spec: &PktgenSpec, n: usize) -> Vec<Vec<u8>> {
        spec.validate().unwrap();
        let mut b = FrameBuilder::new(spec, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut buf = vec![0xeeu8; b.max_len()];
        (0..n)
            .map(|i| {
                assert_eq!(b.len_at(0), b.sizes.at(i as u64));
                let len = b.build(&mut buf, 1000 + i as u64, 0x0102_0304_0506_0708 + i as u64 * 977);
                buf[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn ipv4_60_byte_frame_is_exact() {
        let f = &build_all(&spec(), 1)[0];
        assert_eq!(f.len(), 60);
        let p = parse(f);
        assert_eq!(p.src, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.dst, "198.19.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((p.sport, p.dport), (1024, 1024));
        assert!(p.sig.is_compact(), "18 payload bytes: compact signature");
        assert_eq!(p.sig.seq, 1000);
        assert_eq!(p.sig.tx_ts, 0x0506_0708);
        assert_eq!(&f[..12], &[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        assert_eq!(f[14 + 8], 64, "TTL");
        assert_eq!(&f[14 + 6..14 + 8], &[0x40, 0], "DF, offset 0");
    }

    #[test]
    fn full_signature_when_there_is_room() {
        let mut s = spec();
        s.size = FrameSize::Fixed(66);
        let p = parse(&build_all(&s, 1)[0]);
        assert!(!p.sig.is_compact());
        assert_eq!(p.sig.seq, 1000);
        assert_eq!(p.sig.tx_ts, 0x0102_0304_0506_0708);
        assert_eq!(p.sig.stream, 0);
    }

    #[test]
    fn sequential_fields_form_an_odometer() {
        let mut s = spec();
        s.src_port = PortRange { first: 1000, last: 1002, pick: Pick::Seq };
        s.dst_ip = IpRange { start: "10.0.0.254".parse().unwrap(), count: 4, pick: Pick::Seq };
        let frames = build_all(&s, 24);
        let got: Vec<(u16, IpAddr)> = frames.iter().map(|f| parse(f)).map(|p| (p.sport, p.dst)).collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            &got[..4],
            &[(1000, ip("10.0.0.254")), (1001, ip("10.0.0.254")), (1002, ip("10.0.0.254")), (1000, ip("10.0.0.255"))]
        );
        assert_eq!(got[9], (1000, ip("10.0.1.1")), "carries into the next octet");
        assert_eq!(got[12], got[0], "12 flows, then it cycles");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), 12);
    }

    #[test]
    fn thousands_of_flows_and_random_fields_stay_in_range_and_are_deterministic() {
        let mut s = spec();
        s.dst_ip.count = 1000;
        s.src_port = PortRange { first: 2000, last: 2999, pick: Pick::Random };
        s.seed = 99;
        let a = build_all(&s, 3000);
        assert_eq!(a, build_all(&s, 3000), "same seed, same frames");
        s.seed = 100;
        assert_ne!(a, build_all(&s, 3000));
        let ps: Vec<Parsed> = a.iter().map(|f| parse(f)).collect();
        assert_eq!(ps.iter().map(|p| p.dst).collect::<HashSet<_>>().len(), 1000);
        assert!(ps.iter().all(|p| (2000..=2999).contains(&p.sport)));
        let ports: HashSet<u16> = ps.iter().map(|p| p.sport).collect();
        assert!(ports.len() > 900, "random ports cover the range: {}", ports.len());
        assert_eq!(ps[0].dst, ps[1000].dst, "sequential dst_ip cycles every 1000 (random fields do not turn it)");
    }

    #[test]
    fn ipv6_vlan_imix_sizes_and_checksums() {
        let mut s = spec();
        s.ipv6 = true;
        s.vlan = Some(100);
        s.size = FrameSize::Imix;
        s.src_ip = IpRange { start: "2001:2::ffff:ffff:ffff:fffe".parse().unwrap(), count: 5, pick: Pick::Seq };
        s.dst_ip = IpRange::single("2001:2::2".parse().unwrap());
        s.stream = 0xbeef;
        let frames = build_all(&s, 24);
        let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
        let expect: Vec<usize> = IMIX_PATTERN.iter().map(|&n| (n as usize).max(82)).collect();
        assert_eq!(&lens[..12], &expect[..]);
        assert_eq!(lens.iter().filter(|&&l| l == 82).count(), 14);
        for f in &frames {
            let p = parse(f);
            assert_eq!(p.vlan, Some(100));
            assert_eq!(p.sig.stream, 0xbeef);
            assert!(p.sig.is_compact() == (f.len() == 82));
        }
        let p2 = parse(&frames[2]);
        assert_eq!(p2.src, "2001:2:0:1::".parse::<IpAddr>().unwrap(), "carry across 64-bit words");
    }

    #[test]
    fn random_sizes_are_in_range_and_lookahead_matches() {
        let mut s = spec();
        s.size = FrameSize::Random { min: 60, max: 1514 };
        s.seed = 5;
        let mut b = FrameBuilder::new(&s, [0; 6], [0; 6]);
        let ahead: Vec<usize> = (0..100).map(|i| b.len_at(i)).collect();
        let mut buf = vec![0u8; b.max_len()];
        let got: Vec<usize> = (0..100).map(|i| b.build(&mut buf, i, 0)).collect();
        assert_eq!(ahead, got);
        assert!(got.iter().all(|l| (60..=1514).contains(l)));
        assert!(got.iter().collect::<HashSet<_>>().len() > 50);
    }

    #[test]
    fn a_60_byte_syn_is_a_bare_segment_padded_with_zeros_and_isns_are_random() {
        let frames = build_all(&tcp_spec(), 200);
        let ps: Vec<ParsedTcp> = frames.iter().map(|f| parse_tcp(f)).collect();
        for (f, p) in frames.iter().zip(&ps) {
            assert_eq!(f.len(), 60);
            assert_eq!(p.seg_len, 20, "no payload");
            assert_eq!((p.flags, p.window, p.ack, p.mss), (u16::from(SYN), 64240, 0, None));
            assert_eq!((p.sport, p.dport), (1024, 1024));
            assert_eq!(p.checksum, p.recomputed);
            assert!(p.sig.is_none());
            assert_eq!(&f[54..], &[0u8; 6], "Ethernet padding");
        }
        let isns: HashSet<u32> = ps.iter().map(|p| p.seq).collect();
        assert!(isns.len() >= 199, "a fresh ISN per SYN: {} distinct of 200", isns.len());
        assert_eq!(frames, build_all(&tcp_spec(), 200), "seeded: the same ISNs again");
    }

    #[test]
    fn mss_option_fixed_numbers_and_a_payload_with_the_signature() {
        let mut s = tcp_spec();
        s.tcp = TcpSpec {
            flags: SYN,
            seq: TcpNum::Fixed(0xdead_beef),
            ack: TcpNum::Fixed(0),
            window: 1024,
            mss: Some(1460),
        };
        let p = parse_tcp(&build_all(&s, 1)[0]);
        assert_eq!((p.seq, p.mss, p.seg_len, p.window), (0xdead_beef, Some(1460), 24, 1024));
        assert_eq!(p.checksum, p.recomputed);
        // Room for the signature: an ACK|PSH data segment over IPv6 with a VLAN tag.
        let mut s = tcp_spec();
        s.ipv6 = true;
        s.vlan = Some(5);
        s.src_ip = IpRange::single("2001:2::1".parse().unwrap());
        s.dst_ip = IpRange::single("2001:2::2".parse().unwrap());
        s.tcp = TcpSpec { flags: ACK | PSH, seq: TcpNum::Fixed(1), ack: TcpNum::Random, ..TcpSpec::default() };
        s.size = FrameSize::List(vec![78, 93, 95, 200]);
        s.stream = 77;
        let frames = build_all(&s, 4);
        let ps: Vec<ParsedTcp> = frames.iter().map(|f| parse_tcp(f)).collect();
        assert_eq!(ps.iter().map(|p| p.seg_len).collect::<Vec<_>>(), vec![20, 20, 37, 142]);
        assert!(ps[0].sig.is_none() && ps[1].sig.is_none(), "15 bytes of room is not enough");
        let sig = ps[2].sig.expect("17 bytes: compact signature");
        assert!(sig.is_compact());
        assert_eq!((sig.seq, sig.stream), (1002, 77));
        let sig = ps[3].sig.expect("full signature");
        assert_eq!((sig.seq, sig.tx_ts), (1003, 0x0102_0304_0506_0708 + 3 * 977));
        assert!(ps.iter().all(|p| p.vlan == Some(5) && p.flags == u16::from(ACK | PSH) && p.checksum == p.recomputed));
        assert!(ps.iter().map(|p| p.ack).collect::<HashSet<_>>().len() == 4, "random acks");
    }

    #[test]
    fn random_sources_never_leave_the_given_range() {
        // A SYN flood from 198.18.0.0/15 with random ports: every address and port inside.
        let mut s = tcp_spec();
        s.src_ip = IpRange { start: "198.18.0.0".parse().unwrap(), count: 1 << 17, pick: Pick::Random };
        s.src_port = PortRange { first: 1024, last: 65535, pick: Pick::Random };
        s.dst_ip = IpRange::single("198.19.0.1".parse().unwrap());
        s.dst_port = PortRange::single(8080);
        let ps: Vec<ParsedTcp> = build_all(&s, 20_000).iter().map(|f| parse_tcp(f)).collect();
        let lo = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0));
        for p in &ps {
            let IpAddr::V4(a) = p.src else { panic!("v4") };
            assert_eq!(u32::from(a) >> 17, lo >> 17, "{a} outside 198.18.0.0/15");
            assert!(p.sport >= 1024);
            assert_eq!((p.dst, p.dport), ("198.19.0.1".parse::<IpAddr>().unwrap(), 8080));
            assert_eq!(p.checksum, p.recomputed);
        }
        let srcs: HashSet<(IpAddr, u16)> = ps.iter().map(|p| (p.src, p.sport)).collect();
        assert!(srcs.len() > 19_990, "distinct sources: {}", srcs.len());
        let top: HashSet<u8> = ps.iter().map(|p| if let IpAddr::V4(a) = p.src { a.octets()[1] } else { 0 }).collect();
        assert_eq!(top, HashSet::from([18, 19]), "both /16 halves are used");
        // A range ending at the top of the address space stays in it too.
        let mut s = spec();
        s.src_ip = IpRange { start: "255.255.255.250".parse().unwrap(), count: 6, pick: Pick::Random };
        assert!(build_all(&s, 500).iter().all(|f| matches!(parse(f).src, IpAddr::V4(a) if a.octets()[3] >= 250)));
    }

    #[test]
    fn signature_parse_rejects_foreign_payloads() {
        assert!(Signature::parse(&[]).is_none());
        assert!(Signature::parse(&[0x58, 0x53, 0x4b, 0x44, 0, 0, 0, 0]).is_none(), "too short");
        let mut full = [0u8; 24];
        full[..4].copy_from_slice(&SIG_MAGIC.to_be_bytes());
        assert!(Signature::parse(&full[..20]).is_none(), "full form cut short");
        assert_eq!(Signature::parse(&full).map(|s| s.seq), Some(0));
        full[0] = 0;
        assert!(Signature::parse(&full).is_none(), "wrong magic");
    }

    fn equal_mod_zero(a: u16, b: u16) -> bool {
        a == b || (a | b == 0xffff && (a == 0 || b == 0))
    }

    proptest! {
        /// Any valid spec, any seq and timestamp: both checksums equal a from-scratch computation
        /// (up to the two representations of zero), and every field reads back.
        #[test]
        fn every_frame_checksums_like_a_full_recomputation(
            ipv6 in any::<bool>(),
            vlan in proptest::option::of(1u16..4095),
            extra in 0usize..1500,
            random_ports in any::<bool>(),
            tcp in proptest::option::of((1u8..=255, any::<bool>(), any::<u16>(), proptest::option::of(1u16..))),
            src_count in 1u64..5000,
            seed in any::<u64>(),
            seq in any::<u64>(),
            ts in any::<u64>(),
            frames in 1usize..8,
        ) {
            let mut s = spec();
            s.ipv6 = ipv6;
            s.vlan = vlan;
            if ipv6 {
                s.src_ip = IpRange { start: "2001:db8::ffff:ffff".parse().unwrap(), count: src_count, pick: Pick::Random };
                s.dst_ip = IpRange::single("2001:db8::2".parse().unwrap());
            } else {
                s.src_ip = IpRange { start: "10.255.255.0".parse().unwrap(), count: src_count, pick: Pick::Random };
            }
            if random_ports {
                s.dst_port = PortRange { first: 0, last: 65535, pick: Pick::Random };
            }
            if let Some((flags, random_seq, window, mss)) = tcp {
                s.proto = Proto::Tcp;
                let seq = if random_seq { TcpNum::Random } else { TcpNum::Fixed(u32::from(window) * 65_537) };
                s.tcp = TcpSpec { flags: flags | if mss.is_some() { SYN } else { 0 }, seq, ack: TcpNum::Random, window, mss };
            }
            let len = (s.min_frame_len() + extra).min(1514);
            s.size = FrameSize::Fixed(len as u16);
            s.seed = seed;
            s.validate().unwrap();
            let mut b = FrameBuilder::new(&s, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let mut buf = vec![0xa5u8; 1514];
            for i in 0..frames as u64 {
                let n = b.build(&mut buf, seq.wrapping_add(i), ts);
                prop_assert_eq!(n, len);
                if s.proto == Proto::Tcp {
                    let p = parse_tcp(&buf[..n]);
                    prop_assert!(equal_mod_zero(p.checksum, p.recomputed), "{:#x} vs {:#x}", p.checksum, p.recomputed);
                    prop_assert_eq!(p.flags, u16::from(s.tcp.flags));
                    prop_assert_eq!((p.window, p.mss, p.vlan), (s.tcp.window, s.tcp.mss, vlan));
                    let room = n - s.header_len();
                    prop_assert_eq!(p.sig.is_some(), room >= SIG_COMPACT_LEN);
                    if let Some(sig) = p.sig {
                        let mask = if sig.is_compact() { 0xffff_ffff } else { u64::MAX };
                        prop_assert_eq!(sig.seq, seq.wrapping_add(i) & mask);
                    }
                    continue;
                }
                let p = parse(&buf[..n]);
                prop_assert!(equal_mod_zero(p.udp_checksum, p.recomputed), "{:#x} vs {:#x}", p.udp_checksum, p.recomputed);
                prop_assert_eq!(p.vlan, vlan);
                if p.sig.is_compact() {
                    prop_assert_eq!(p.sig.seq, seq.wrapping_add(i) & 0xffff_ffff);
                    prop_assert_eq!(p.sig.tx_ts, ts & 0xffff_ffff);
                } else {
                    prop_assert_eq!(p.sig.seq, seq.wrapping_add(i));
                    prop_assert_eq!(p.sig.tx_ts, ts);
                }
            }
        }
    }

    #[test]
    fn fill_sums_match_the_checksum_module() {
        let mut s = spec();
        s.size = FrameSize::Fixed(1514);
        let b = FrameBuilder::new(&s, [0; 6], [0; 6]);
        let pay = &b.template[b.l4 + 8..];
        for n in [16, 17, 18, 23, 24, 25, 100, 1471, 1472] {
            let sig = if n < SIG_LEN { SIG_COMPACT_LEN } else { SIG_LEN };
            let expect = checksum::data(&pay[sig..n]);
            assert!(equal_mod_zero(!b.fill_sum[n], !expect), "n {n}: {:#x} vs {expect:#x}", b.fill_sum[n]);
        }
    }
}
