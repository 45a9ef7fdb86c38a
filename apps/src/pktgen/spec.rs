//! [`PktgenSpec`]: what a pktgen instance sends and how it receives, validated.
//!
//! This module owns the generator's *parameters*: the TOML keys of a pktgen queue
//! (`[[queue]] params`), their defaults, and every cross-field rule. A spec that
//! [`PktgenSpec::validate`] accepted can be built into frames without any further check (the
//! builder and the app rely on that: sizes fit the headers and the signature, ranges do not run
//! past the end of the address space, rates are positive).
//!
//! # Frame-size convention
//!
//! Every size here is the Ethernet frame **without the 4-byte FCS**: the bytes the generator
//! writes into a UMEM frame, and what a pcap shows. The classic "64-byte frame" is `60` here and
//! "1518" is `1514`. IMIX is the simple 7:4:1 mix of 64/594/1518-byte *wire* frames, i.e.
//! `60/590/1514` here. Rates that count bits add what the wire adds (see [`Rate`]).
//!
//! A UDP frame must hold the headers and at least the compact signature (16 bytes, see
//! [`super::build`]): 58 bytes for IPv4 (so 60 is fine), 62 with a VLAN tag, 78 for IPv6, 82 for
//! IPv6 with a VLAN tag. A TCP frame must hold the headers only (a bare SYN has no payload):
//! 54 bytes for IPv4 (58 with the MSS option), so 60; 74 for IPv6 (78 with MSS); 4 more with a
//! VLAN tag. A `size` below the minimum is an error; IMIX raises its small frames to that
//! minimum (documented behaviour, not an error, since IMIX is a mix, not a size).
//!
//! # Keys
//!
//! ```toml
//! params = { role = "tx", peer = "xd1", dst_mac = "02:00:00:00:00:02",
//!            dst_ip = "198.19.0.1", dst_ip_count = 1000, src_port = "1000-1999",
//!            random = ["src_port"], size = 60, rate_pps = 1000000, count = 10000000 }
//! ```
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `role` | `"tx"`, `"rx"` or `"txrx"` | `"tx"` |
//! | `peer` | port to transmit on | the queue's port |
//! | `ipv6` | IPv6 instead of IPv4 | `false` |
//! | `proto` | `"udp"` or `"tcp"` (TCP header fields: the `tcp_*` keys of [`super::tcp`]) | `"udp"` |
//! | `src_mac`, `dst_mac` | MACs (`dst_mac` required to send synthesised frames) | src: the peer port's MAC |
//! | `src_ip`, `dst_ip` | first address of each range | `198.18.0.1`, `198.19.0.1` (`2001:2::1`, `2001:2::2` for IPv6) |
//! | `src_ip_count`, `dst_ip_count` | addresses in each range | 1 |
//! | `src_port`, `dst_port` | `1000` or `"1000-1999"` | 1024, 1024 |
//! | `random` | fields drawn at random instead of in sequence: `src_ip`, `dst_ip`, `src_port`, `dst_port` | none |
//! | `vlan` | 802.1Q VLAN id, 1..=4094 | untagged |
//! | `size` | `60` (fixed) or `"60-1514"` (uniform random) | 60 |
//! | `sizes` | list of sizes, cycled | |
//! | `imix` | `true`: 60/590/1514 in 7:4:1 | |
//! | `rate_pps` | packets per second | |
//! | `rate_mbps` | L1 megabits per second (frame + FCS + preamble + IFG) | |
//! | `rate_l2_mbps` | L2 megabits per second (frame + FCS) | |
//! | `rate_percent` + `link_mbps` | percent of a link's L1 rate | |
//! | (no rate key) | as fast as the TX ring takes frames | |
//! | `count` | stop after this many frames | unlimited |
//! | `duration_s` | stop after this long | unlimited |
//! | `stream` | stream id in the signature, 0..=65535 | 0 |
//! | `seed` | seed of the random fields and random sizes | 1 |
//! | `pcap` | replay this pcap's frames in order, cycling (no synthesis keys allowed) | |
//! | `capture` | write received frames to this pcap file | |
//! | `capture_frames` | capture ring slots (frames buffered between flushes) | 4096 |
//! | `capture_snaplen` | bytes kept per captured frame | 2048 |
//! | `linger_ms` | `txrx`: keep receiving this long after the last frame was sent | 100 |
//! | `max_streams` | streams the receiver tracks | 64 |
//!
//! Sequential fields form an odometer: `src_port` turns fastest, then `dst_port`, `src_ip`,
//! `dst_ip`, so the number of distinct flows is the product of the sequential ranges' sizes.
//! Random fields are drawn uniformly *inside* their range: the generator never writes an address
//! or port outside the ranges given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::tcp::TcpSpec;
use crate::params::{self, ParamErrors};

/// Smallest frame size accepted (64 bytes on the wire with the FCS).
pub const MIN_FRAME_LEN: usize = 60;
/// Largest frame size accepted (a 9000-byte jumbo frame; the UMEM frame must also hold it).
pub const MAX_FRAME_LEN: usize = 9000;
/// IMIX frame sizes (without FCS) and their order: 7 × 60, 4 × 590, 1 × 1514, interleaved so
/// that any 12 consecutive frames have the exact mix.
pub const IMIX_PATTERN: [u16; 12] = [60, 590, 60, 60, 590, 60, 1514, 60, 590, 60, 60, 590];
/// Bytes the wire adds to a frame for L1 rates: preamble + SFD (8), FCS (4), inter-frame gap (12).
pub const L1_OVERHEAD: usize = 24;
/// Bytes the wire adds to a frame for L2 rates: the FCS.
pub const L2_OVERHEAD: usize = 4;
/// Length of the compact signature (see [`super::build`]); the full one is 24 bytes.
pub(crate) const SIG_COMPACT_LEN: usize = 16;

/// Which way traffic goes for this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Send only (received frames are counted and dropped unparsed).
    Tx,
    /// Receive only: never done by itself.
    Rx,
    /// Send and receive on the same queue.
    TxRx,
}

impl Role {
    /// Whether this role sends.
    pub fn sends(self) -> bool {
        matches!(self, Role::Tx | Role::TxRx)
    }

    /// Whether this role parses what it receives.
    pub fn receives(self) -> bool {
        matches!(self, Role::Rx | Role::TxRx)
    }
}

/// How a field walks its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// In order, cycling (an odometer digit).
    Seq,
    /// Uniformly at random (seeded, deterministic).
    Random,
}

/// A range of IP addresses: `count` consecutive addresses from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// First address (its family must match [`PktgenSpec::ipv6`]).
    pub start: IpAddr,
    /// Number of addresses (≥ 1).
    pub count: u64,
    /// How to walk it.
    pub pick: Pick,
}

impl IpRange {
    /// One address.
    pub fn single(a: IpAddr) -> IpRange {
        IpRange { start: a, count: 1, pick: Pick::Seq }
    }

    /// The smallest prefix that holds every address of the range, as "addr/len".
    pub fn covering_prefix(&self) -> String {
        let (bits, first): (u32, u128) = match self.start {
            IpAddr::V4(a) => (32, u128::from(u32::from(a))),
            IpAddr::V6(a) => (128, u128::from(a)),
        };
        let last = first.saturating_add(u128::from(self.count.max(1)) - 1);
        // Common leading bits of first and last, within the address width.
        let diff = (first ^ last) << (128 - bits);
        let len = if diff == 0 { bits } else { diff.leading_zeros() };
        let mask = if len == 0 { 0 } else { (u128::MAX << (bits - len)) & (u128::MAX >> (128 - bits)) };
        let net = first & mask;
        let addr = match self.start {
            IpAddr::V4(_) => IpAddr::V4((net as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(net.into()),
        };
        format!("{addr}/{len}")
    }
}

/// A range of UDP ports, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (≥ `first`).
    pub last: u16,
    /// How to walk it.
    pub pick: Pick,
}

impl PortRange {
    /// One port.
    pub fn single(p: u16) -> PortRange {
        PortRange { first: p, last: p, pick: Pick::Seq }
    }

    /// Ports in the range.
    pub fn count(&self) -> u64 {
        u64::from(self.last.saturating_sub(self.first)) + 1
    }
}

/// Frame sizes, without FCS (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSize {
    /// Every frame this long.
    Fixed(u16),
    /// These sizes in order, cycled.
    List(Vec<u16>),
    /// Uniform in `min..=max` (seeded by [`PktgenSpec::seed`]).
    Random {
        /// Smallest.
        min: u16,
        /// Largest.
        max: u16,
    },
    /// 60/590/1514 in 7:4:1 ([`IMIX_PATTERN`]).
    Imix,
}

impl FrameSize {
    /// The largest frame this produces, given the smallest frame the headers allow.
    pub fn max_len(&self, min_len: usize) -> usize {
        let m = match self {
            FrameSize::Fixed(n) => *n as usize,
            FrameSize::List(v) => v.iter().copied().max().unwrap_or(0) as usize,
            FrameSize::Random { max, .. } => *max as usize,
            FrameSize::Imix => 1514,
        };
        m.max(min_len)
    }
}

/// A sending rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Frames per second.
    Pps(f64),
    /// L1 megabits per second: each frame counts `len + 24` bytes (FCS, preamble and SFD,
    /// inter-frame gap), what a link's line rate is quoted in.
    L1Mbps(f64),
    /// L2 megabits per second: each frame counts `len + 4` bytes (with its FCS).
    L2Mbps(f64),
    /// A percentage of a link's L1 rate.
    Percent {
        /// Percent, in (0, 100].
        pct: f64,
        /// The link's rate in megabits per second.
        link_mbps: f64,
    },
    /// As fast as the TX ring takes frames.
    Max,
}

/// Transport protocol of synthesised frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP (every frame carries a signature).
    Udp,
    /// TCP segments with the header fields of [`PktgenSpec::tcp`].
    Tcp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Udp => 17,
            Proto::Tcp => 6,
        }
    }

    /// `"udp"` or `"tcp"`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// A validated pktgen configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PktgenSpec {
    /// Send, receive or both.
    pub role: Role,
    /// Port to transmit on (None: the queue's own port).
    pub peer: Option<String>,
    /// IPv6 instead of IPv4.
    pub ipv6: bool,
    /// UDP or TCP.
    pub proto: Proto,
    /// TCP header fields (used when `proto` is TCP).
    pub tcp: TcpSpec,
    /// Source MAC (None: the TX port's MAC, resolved when the app is built).
    pub src_mac: Option<[u8; 6]>,
    /// Destination MAC (required to send synthesised frames).
    pub dst_mac: Option<[u8; 6]>,
    /// Source addresses.
    pub src_ip: IpRange,
    /// Destination addresses.
    pub dst_ip: IpRange,
    /// Source ports.
    pub src_port: PortRange,
    /// Destination ports.
    pub dst_port: PortRange,
    /// 802.1Q VLAN id.
    pub vlan: Option<u16>,
    /// Frame sizes.
    pub size: FrameSize,
    /// Rate.
    pub rate: Rate,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long (from the first frame).
    pub duration: Option<Duration>,
    /// Stream id written into every signature.
    pub stream: u16,
    /// Seed of random fields and sizes.
    pub seed: u64,
    /// Replay this pcap instead of synthesising frames.
    pub pcap: Option<PathBuf>,
    /// Write received frames to this pcap.
    pub capture: Option<PathBuf>,
    /// Capture ring slots.
    pub capture_frames: usize,
    /// Bytes kept per captured frame.
    pub capture_snaplen: usize,
    /// `TxRx`: how long to keep receiving after the last frame was sent before being done.
    pub linger: Duration,
    /// Streams the receiver tracks (frames of further streams count as `rx_stream_overflow`).
    pub max_streams: usize,
}

impl Default for PktgenSpec {
    /// IPv4, one flow 198.18.0.1:1024 → 198.19.0.1:1024, 60-byte frames, maximum rate, no
    /// stop condition, no destination MAC (set one before sending).
    fn default() -> PktgenSpec {
        PktgenSpec {
            role: Role::Tx,
            peer: None,
            ipv6: false,
            proto: Proto::Udp,
            tcp: TcpSpec::default(),
            src_mac: None,
            dst_mac: None,
            src_ip: IpRange::single(IpAddr::V4(DEFAULT_SRC_V4)),
            dst_ip: IpRange::single(IpAddr::V4(DEFAULT_DST_V4)),
            src_port: PortRange::single(1024),
            dst_port: PortRange::single(1024),
            vlan: None,
            size: FrameSize::Fixed(60),
            rate: Rate::Max,
            count: None,
            duration: None,
            stream: 0,
            seed: 1,
            pcap: None,
            capture: None,
            capture_frames: 4096,
            capture_snaplen: 2048,
            linger: Duration::from_millis(100),
            max_streams: 64,
        }
    }
}

const DEFAULT_SRC_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DEFAULT_DST_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const DEFAULT_SRC_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const DEFAULT_DST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// Every key [`PktgenSpec::parse`] accepts.
pub const KEYS: &[&str] = &[
    "role",
    "peer",
    "ipv6",
    "proto",
    "tcp_flags",
    "tcp_seq",
    "tcp_ack",
    "tcp_window",
    "tcp_mss",
    "src_mac",
    "dst_mac",
    "src_ip",
    "dst_ip",
    "src_ip_count",
    "dst_ip_count",
    "src_port",
    "dst_port",
    "random",
    "vlan",
    "size",
    "sizes",
    "imix",
    "rate_pps",
    "rate_mbps",
    "rate_l2_mbps",
    "rate_percent",
    "link_mbps",
    "count",
    "duration_s",
    "stream",
    "seed",
    "pcap",
    "capture",
    "capture_frames",
    "capture_snaplen",
    "linger_ms",
    "max_streams",
];

/// Keys that describe synthesised frames (not allowed together with `pcap`).
const SYNTH_KEYS: &[&str] = &[
    "ipv6",
    "proto",
    "tcp_flags",
    "tcp_seq",
    "tcp_ack",
    "tcp_window",
    "tcp_mss",
    "src_mac",
    "dst_mac",
    "src_ip",
    "dst_ip",
    "src_ip_count",
    "dst_ip_count",
    "src_port",
    "dst_port",
    "random",
    "vlan",
    "size",
    "sizes",
    "imix",
    "stream",
];

impl PktgenSpec {
    /// Bytes of the UDP or TCP header.
    pub fn l4_header_len(&self) -> usize {
        match self.proto {
            Proto::Udp => 8,
            Proto::Tcp => self.tcp.header_len(),
        }
    }

    /// Bytes of Ethernet (+ VLAN), IP and UDP or TCP headers.
    pub fn header_len(&self) -> usize {
        14 + if self.vlan.is_some() { 4 } else { 0 } + if self.ipv6 { 40 } else { 20 } + self.l4_header_len()
    }

    /// The smallest frame, at least [`MIN_FRAME_LEN`]: for UDP it holds the headers and the
    /// (compact) signature, for TCP the headers (a bare segment).
    pub fn min_frame_len(&self) -> usize {
        let sig = if self.proto == Proto::Udp { SIG_COMPACT_LEN } else { 0 };
        (self.header_len() + sig).max(MIN_FRAME_LEN)
    }

    /// Parses and validates a params table; every problem is reported with its key, unknown
    /// keys included.
    pub fn parse(t: &toml::Table) -> Result<PktgenSpec, ParamErrors> {
        let mut errs = ParamErrors::default();
        errs.unknown_keys(t, KEYS);
        let role = match params::opt_str(t, "role", &mut errs) {
            None | Some("tx") => Role::Tx,
            Some("rx") => Role::Rx,
            Some("txrx") => Role::TxRx,
            Some(o) => {
                errs.push("role", format!("unknown role '{o}' (expected one of tx, rx, txrx)"));
                Role::Tx
            }
        };
        let mut s = PktgenSpec { role, ..PktgenSpec::default() };
        s.peer = params::opt_str(t, "peer", &mut errs).map(str::to_string);
        s.ipv6 = params::opt_bool(t, "ipv6", &mut errs).unwrap_or(false);
        s.proto = match params::opt_str(t, "proto", &mut errs) {
            None | Some("udp") => Proto::Udp,
            Some("tcp") => Proto::Tcp,
            Some(o) => {
                errs.push("proto", format!("unknown protocol '{o}' (expected udp or tcp)"));
                Proto::Udp
            }
        };
        s.tcp = TcpSpec::parse(t, &mut errs);
        if s.proto != Proto::Tcp {
            for k in super::tcp::KEYS.iter().filter(|k| t.contains_key(**k)) {
                errs.push(k, "only used with proto = \"tcp\"".into());
            }
        }
        s.src_mac = params::opt_mac(t, "src_mac", &mut errs);
        s.dst_mac = params::opt_mac(t, "dst_mac", &mut errs);

        let random = parse_random(t, &mut errs);
        let pick = |k: &str| if random.contains(&k) { Pick::Random } else { Pick::Seq };
        let (dsrc, ddst) = if s.ipv6 {
            (IpAddr::V6(DEFAULT_SRC_V6), IpAddr::V6(DEFAULT_DST_V6))
        } else {
            (IpAddr::V4(DEFAULT_SRC_V4), IpAddr::V4(DEFAULT_DST_V4))
        };
        s.src_ip = parse_ip_range(t, "src_ip", dsrc, pick("src_ip"), &mut errs);
        s.dst_ip = parse_ip_range(t, "dst_ip", ddst, pick("dst_ip"), &mut errs);
        s.src_port = parse_port_range(t, "src_port", 1024, pick("src_port"), &mut errs);
        s.dst_port = parse_port_range(t, "dst_port", 1024, pick("dst_port"), &mut errs);
        s.vlan = params::opt_u64(t, "vlan", 1..=4094, &mut errs).map(|v| v as u16);
        s.size = parse_size(t, &mut errs);
        s.rate = parse_rate(t, &mut errs);
        s.count = params::opt_u64(t, "count", 1..=u64::MAX, &mut errs);
        s.duration = params::opt_f64(t, "duration_s", 1e-6..=1e9, &mut errs).map(Duration::from_secs_f64);
        s.stream = params::opt_u64(t, "stream", 0..=65535, &mut errs).map_or(0, |v| v as u16);
        s.seed = params::opt_u64(t, "seed", 0..=u64::MAX, &mut errs).unwrap_or(1);
        s.pcap = params::opt_str(t, "pcap", &mut errs).map(PathBuf::from);
        s.capture = params::opt_str(t, "capture", &mut errs).map(PathBuf::from);
        s.capture_frames = params::opt_u64(t, "capture_frames", 1..=1 << 20, &mut errs).map_or(4096, |v| v as usize);
        s.capture_snaplen = params::opt_u64(t, "capture_snaplen", 14..=65535, &mut errs).map_or(2048, |v| v as usize);
        s.linger = params::opt_u64(t, "linger_ms", 0..=3_600_000, &mut errs).map_or(s.linger, Duration::from_millis);
        s.max_streams = params::opt_u64(t, "max_streams", 1..=4096, &mut errs).map_or(64, |v| v as usize);

        if s.pcap.is_some() {
            for k in SYNTH_KEYS {
                if t.contains_key(*k) {
                    errs.push(k, "not used with pcap replay (frames are sent as the file has them)".into());
                }
            }
        }
        // Cross-field rules too, so one answer lists everything (a key already reported is
        // not reported twice).
        if let Err(more) = s.validate() {
            for (k, m) in more.0 {
                if !errs.has(&k) {
                    errs.push(&k, m);
                }
            }
        }
        errs.into_result(s)
    }

    /// Checks the cross-field rules (for specs built in code, such as by a CLI). [`Self::parse`]
    /// calls it.
    pub fn validate(&self) -> Result<(), ParamErrors> {
        let mut errs = ParamErrors::default();
        for (k, r) in [("src_ip", &self.src_ip), ("dst_ip", &self.dst_ip)] {
            match (r.start, self.ipv6) {
                (IpAddr::V4(a), false) => {
                    if r.count == 0 || u64::from(a.to_bits()) + r.count - 1 > u64::from(u32::MAX) {
                        errs.push(k, format!("{} addresses from {a} run past 255.255.255.255", r.count));
                    }
                }
                (IpAddr::V6(a), true) => {
                    if r.count == 0 || a.to_bits().checked_add(u128::from(r.count) - 1).is_none() {
                        errs.push(k, format!("{} addresses from {a} run past the end of the address space", r.count));
                    }
                }
                (a, v6) => {
                    errs.push(k, format!("{a} is not an {} address (ipv6 = {v6})", if v6 { "IPv6" } else { "IPv4" }))
                }
            }
        }
        for (k, r) in [("src_port", &self.src_port), ("dst_port", &self.dst_port)] {
            if r.first > r.last {
                errs.push(k, format!("range {}-{} is empty", r.first, r.last));
            }
        }
        if let Some(v) = self.vlan {
            if !(1..=4094).contains(&v) {
                errs.push("vlan", format!("{v} out of range 1..=4094"));
            }
        }
        if self.proto == Proto::Tcp {
            self.tcp.validate(&mut errs);
        }
        let min = self.min_frame_len();
        let check = |n: u16, errs: &mut ParamErrors, key: &str| {
            let n = n as usize;
            if n < min {
                let what = if self.proto == Proto::Udp { "the headers and the signature" } else { "the headers" };
                errs.push(key, format!("{n} B cannot hold {what}: {}", self.min_text()));
            } else if n > MAX_FRAME_LEN {
                errs.push(key, format!("{n} B is above the maximum of {MAX_FRAME_LEN} B"));
            }
        };
        if self.pcap.is_none() {
            match &self.size {
                FrameSize::Fixed(n) => check(*n, &mut errs, "size"),
                FrameSize::List(v) => {
                    if v.is_empty() {
                        errs.push("sizes", "must not be empty".into());
                    }
                    for n in v {
                        check(*n, &mut errs, "sizes");
                    }
                }
                FrameSize::Random { min: lo, max: hi } => {
                    check(*lo, &mut errs, "size");
                    check(*hi, &mut errs, "size");
                    if lo > hi {
                        errs.push("size", format!("range {lo}-{hi} is empty"));
                    }
                }
                FrameSize::Imix => {}
            }
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        match self.rate {
            Rate::Pps(r) if !(positive(r) && r >= 0.001) => errs.push("rate_pps", format!("{r} must be ≥ 0.001")),
            Rate::L1Mbps(r) if !(positive(r) && r >= 1e-6) => errs.push("rate_mbps", format!("{r} must be > 0")),
            Rate::L2Mbps(r) if !(positive(r) && r >= 1e-6) => errs.push("rate_l2_mbps", format!("{r} must be > 0")),
            Rate::Percent { pct, link_mbps } => {
                if !(positive(pct) && pct <= 100.0) {
                    errs.push("rate_percent", format!("{pct} must be in (0, 100]"));
                }
                if !(positive(link_mbps) && link_mbps * pct >= 1e-4) {
                    errs.push("link_mbps", format!("{link_mbps} must be > 0"));
                }
            }
            _ => {}
        }
        if self.count == Some(0) {
            errs.push("count", "must be at least 1".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            errs.push("duration_s", "must be positive".into());
        }
        if self.role.sends() && self.pcap.is_none() && self.dst_mac.is_none() {
            errs.push("dst_mac", "required to send synthesised frames".into());
        }
        if self.capture.is_some() && !self.role.receives() {
            errs.push("capture", "captures received frames: needs role rx or txrx".into());
        }
        if self.capture_frames == 0 || self.capture_snaplen < 14 {
            errs.push("capture_frames", "capture ring needs at least one slot of at least 14 bytes".into());
        }
        if self.max_streams == 0 {
            errs.push("max_streams", "must be at least 1".into());
        }
        errs.into_result(())
    }

    fn min_text(&self) -> String {
        format!(
            "the smallest frame for {}/{}{} is {} B",
            if self.ipv6 { "IPv6" } else { "IPv4" },
            self.proto.name().to_uppercase(),
            if self.vlan.is_some() { " with a VLAN tag" } else { "" },
            self.min_frame_len()
        )
    }
}

fn parse_random<'a>(t: &'a toml::Table, errs: &mut ParamErrors) -> Vec<&'a str> {
    const FIELDS: [&str; 4] = ["src_ip", "dst_ip", "src_port", "dst_port"];
    let mut out = Vec::new();
    match t.get("random") {
        None => {}
        Some(toml::Value::Array(a)) => {
            for v in a {
                match v.as_str() {
                    Some(s) if FIELDS.contains(&s) => out.push(s),
                    _ => errs.push("random", format!("{v} is not one of {}", FIELDS.join(", "))),
                }
            }
        }
        Some(v) => errs.push("random", format!("expected an array of field names, got {}", v.type_str())),
    }
    out
}

fn parse_ip_range(t: &toml::Table, key: &str, default: IpAddr, pick: Pick, errs: &mut ParamErrors) -> IpRange {
    let start = match params::opt_str(t, key, errs) {
        None => default,
        Some(s) => match s.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                errs.push(key, format!("'{s}' is not an IP address"));
                default
            }
        },
    };
    let ckey = format!("{key}_count");
    let count = params::opt_u64(t, &ckey, 1..=u64::MAX, errs).unwrap_or(1);
    IpRange { start, count, pick }
}

fn parse_port_range(t: &toml::Table, key: &str, default: u16, pick: Pick, errs: &mut ParamErrors) -> PortRange {
    let (first, last) = match t.get(key) {
        None => (default, default),
        Some(toml::Value::Integer(i)) if (0..=65535).contains(i) => (*i as u16, *i as u16),
        Some(toml::Value::String(s)) => match parse_u16_range(s) {
            Some((a, b)) if a <= b => (a, b),
            _ => {
                errs.push(key, format!("'{s}' is not a port or a range like \"1000-1999\""));
                (default, default)
            }
        },
        Some(v) => {
            errs.push(key, format!("expected a port (0..=65535) or \"first-last\", got {v}"));
            (default, default)
        }
    };
    PortRange { first, last, pick }
}

/// Parses "a" or "a-b".
fn parse_u16_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a = s.trim().parse().ok()?;
            Some((a, a))
        }
    }
}

fn parse_size(t: &toml::Table, errs: &mut ParamErrors) -> FrameSize {
    let given: Vec<&str> = ["size", "sizes", "imix"].into_iter().filter(|k| t.contains_key(*k)).collect();
    if given.len() > 1 {
        errs.push(given[1], format!("give only one of size, sizes, imix (got {})", given.join(", ")));
        return FrameSize::Fixed(60);
    }
    let u16_of = |v: &toml::Value| v.as_integer().and_then(|i| u16::try_from(i).ok());
    if let Some(v) = t.get("size") {
        if let Some(n) = u16_of(v) {
            return FrameSize::Fixed(n);
        }
        if let Some((lo, hi)) = v.as_str().and_then(parse_u16_range) {
            return FrameSize::Random { min: lo, max: hi };
        }
        errs.push("size", format!("expected a frame size (60) or a range (\"60-1514\"), got {v}"));
    } else if let Some(v) = t.get("sizes") {
        match v.as_array().map(|a| a.iter().map(u16_of).collect::<Option<Vec<u16>>>()) {
            Some(Some(list)) => return FrameSize::List(list),
            _ => errs.push("sizes", format!("expected an array of frame sizes, got {v}")),
        }
    } else if let Some(b) = params::opt_bool(t, "imix", errs) {
        if b {
            return FrameSize::Imix;
        }
    }
    FrameSize::Fixed(60)
}

fn parse_rate(t: &toml::Table, errs: &mut ParamErrors) -> Rate {
    let given: Vec<&str> =
        ["rate_pps", "rate_mbps", "rate_l2_mbps", "rate_percent"].into_iter().filter(|k| t.contains_key(*k)).collect();
    if given.len() > 1 {
        errs.push(given[1], format!("give only one rate (got {})", given.join(", ")));
        return Rate::Max;
    }
    if t.contains_key("link_mbps") && !t.contains_key("rate_percent") {
        errs.push("link_mbps", "only used with rate_percent".into());
    }
    let big = 1e-9..=1e7;
    if let Some(r) = params::opt_f64(t, "rate_pps", 0.001..=1e10, errs) {
        return Rate::Pps(r);
    }
    if let Some(r) = params::opt_f64(t, "rate_mbps", big.clone(), errs) {
        return Rate::L1Mbps(r);
    }
    if let Some(r) = params::opt_f64(t, "rate_l2_mbps", big.clone(), errs) {
        return Rate::L2Mbps(r);
    }
    if t.contains_key("rate_percent") {
        let pct = params::opt_f64(t, "rate_percent", 1e-9..=100.0, errs);
        let link = params::opt_f64(t, "link_mbps", big, errs);
        match (pct, link) {
            (Some(pct), Some(link_mbps)) => return Rate::Percent { pct, link_mbps },
            (Some(_), None) if !errs.has("link_mbps") => {
                errs.push("link_mbps", "required with rate_percent".into());
            }
            _ => {}
        }
    }
    Rate::Max
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    fn err_keys(s: &str) -> Vec<String> {
        PktgenSpec::parse(&table(s)).unwrap_err().0.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn covering_prefixes() {
        let r = |a: &str, count: u64| IpRange { start: a.parse().unwrap(), count, pick: Pick::Seq }.covering_prefix();
        assert_eq!(r("198.18.0.1", 1), "198.18.0.1/32");
        assert_eq!(r("198.18.128.0", 32768), "198.18.128.0/17");
        assert_eq!(r("198.18.0.255", 2), "198.18.0.0/23");
        assert_eq!(r("198.18.0.0", 131072), "198.18.0.0/15");
        assert_eq!(r("2001:2::", 256), "2001:2::/120");
    }

    #[test]
    fn defaults_and_a_full_spec() {
        let s = PktgenSpec::parse(&table(r#"dst_mac = "02:00:00:00:00:02""#)).unwrap();
        assert_eq!(s.role, Role::Tx);
        assert_eq!(s.size, FrameSize::Fixed(60));
        assert_eq!(s.rate, Rate::Max);
        assert_eq!(s.src_ip.start, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.min_frame_len(), 60);

        let s = PktgenSpec::parse(&table(
            r#"
role = "txrx"
peer = "xd1"
dst_mac = "02:00:00:00:00:02"
src_mac = "02:00:00:00:00:01"
dst_ip = "198.19.0.1"
dst_ip_count = 1000
src_port = "1000-1999"
dst_port = 9
random = ["src_port"]
vlan = 100
sizes = [64, 128, 1514]
rate_l2_mbps = 250.5
count = 5000
duration_s = 2.5
stream = 7
seed = 42
linger_ms = 10
"#,
        ))
        .unwrap();
        assert_eq!(s.role, Role::TxRx);
        assert_eq!(s.peer.as_deref(), Some("xd1"));
        assert_eq!(s.dst_ip.count, 1000);
        assert_eq!(s.dst_ip.pick, Pick::Seq);
        assert_eq!(s.src_port, PortRange { first: 1000, last: 1999, pick: Pick::Random });
        assert_eq!(s.src_port.count(), 1000);
        assert_eq!(s.dst_port, PortRange::single(9));
        assert_eq!(s.vlan, Some(100));
        assert_eq!(s.size, FrameSize::List(vec![64, 128, 1514]));
        assert_eq!(s.rate, Rate::L2Mbps(250.5));
        assert_eq!(s.count, Some(5000));
        assert_eq!(s.duration, Some(Duration::from_millis(2500)));
        assert_eq!((s.stream, s.seed), (7, 42));
        assert_eq!(s.linger, Duration::from_millis(10));
        assert_eq!(s.min_frame_len(), 62);

        let s = PktgenSpec::parse(&table(
            r#"dst_mac = "02:00:00:00:00:02"
ipv6 = true
imix = true
rate_percent = 10
link_mbps = 10000"#,
        ))
        .unwrap();
        assert_eq!(s.src_ip.start, "2001:2::1".parse::<IpAddr>().unwrap());
        assert_eq!(s.size, FrameSize::Imix);
        assert_eq!(s.rate, Rate::Percent { pct: 10.0, link_mbps: 10000.0 });
        assert_eq!(s.min_frame_len(), 78);
        assert_eq!(s.size.max_len(s.min_frame_len()), 1514);

        let s = PktgenSpec::parse(&table(
            r#"size = "64-1500"
rate_mbps = 1000
dst_mac = "02:00:00:00:00:02""#,
        ))
        .unwrap();
        assert_eq!(s.size, FrameSize::Random { min: 64, max: 1500 });
        assert_eq!(s.rate, Rate::L1Mbps(1000.0));
        let s = PktgenSpec::parse(&table(r#"role = "rx""#)).unwrap();
        assert_eq!(s.role, Role::Rx);
        let s = PktgenSpec::parse(&table(
            r#"pcap = "x.pcap"
rate_pps = 10"#,
        ))
        .unwrap();
        assert_eq!(s.pcap, Some(PathBuf::from("x.pcap")));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        assert_eq!(err_keys("colour = 1"), vec!["colour", "dst_mac"]);
        assert_eq!(err_keys(r#"role = "both""#), vec!["role", "dst_mac"]);
        let d = r#"dst_mac = "02:00:00:00:00:02""#;
        assert_eq!(err_keys(&format!("{d}\nsize = 59")), vec!["size"]);
        assert_eq!(err_keys(&format!("{d}\nsize = 9001")), vec!["size"]);
        assert_eq!(err_keys(&format!("{d}\nsize = 60\nvlan = 5")), vec!["size"], "60 B is too small with a tag");
        assert_eq!(err_keys(&format!("{d}\nsize = 77\nipv6 = true")), vec!["size"]);
        assert_eq!(err_keys(&format!("{d}\nsize = \"100-90\"")), vec!["size"]);
        assert_eq!(err_keys(&format!("{d}\nsizes = []")), vec!["sizes"]);
        assert_eq!(err_keys(&format!("{d}\nsizes = [60, \"x\"]")), vec!["sizes"]);
        assert_eq!(err_keys(&format!("{d}\nsize = 60\nimix = true")), vec!["imix"]);
        assert_eq!(err_keys(&format!("{d}\nrate_pps = 1\nrate_mbps = 2")), vec!["rate_mbps"]);
        assert_eq!(err_keys(&format!("{d}\nrate_pps = 0")), vec!["rate_pps"]);
        assert_eq!(err_keys(&format!("{d}\nrate_percent = 10")), vec!["link_mbps"]);
        assert_eq!(err_keys(&format!("{d}\nrate_percent = 101\nlink_mbps = 1")), vec!["rate_percent"]);
        assert_eq!(err_keys(&format!("{d}\nlink_mbps = 1")), vec!["link_mbps"]);
        assert_eq!(err_keys(&format!("{d}\nvlan = 4095")), vec!["vlan"]);
        assert_eq!(err_keys(&format!("{d}\nsrc_port = \"2000-1000\"")), vec!["src_port"]);
        assert_eq!(err_keys(&format!("{d}\ndst_port = 70000")), vec!["dst_port"]);
        assert_eq!(err_keys(&format!("{d}\nrandom = [\"ttl\"]")), vec!["random"]);
        assert_eq!(err_keys(&format!("{d}\ndst_ip = \"2001:db8::1\"")), vec!["dst_ip"]);
        assert_eq!(err_keys(&format!("{d}\ndst_ip = \"255.255.255.0\"\ndst_ip_count = 257")), vec!["dst_ip"]);
        assert_eq!(err_keys(&format!("{d}\ndst_ip = \"nope\"")), vec!["dst_ip"]);
        assert_eq!(err_keys(&format!("{d}\ncount = 0")), vec!["count"]);
        assert_eq!(err_keys(&format!("{d}\ncapture = \"c.pcap\"")), vec!["capture"]);
        assert_eq!(err_keys("pcap = \"a.pcap\"\nsize = 60\nvlan = 3"), vec!["vlan", "size"]);
        // Several problems at once, in one answer.
        assert_eq!(
            err_keys("ipv6 = 1\nsize = \"x\"\nrate_pps = \"fast\"\nbogus = 2"),
            vec!["bogus", "ipv6", "size", "rate_pps", "dst_mac"]
        );
    }

    #[test]
    fn tcp_keys_minimum_sizes_and_their_errors() {
        use crate::pktgen::tcp::{TcpNum, ACK, SYN};
        let d = r#"dst_mac = "02:00:00:00:00:02""#;
        let s = PktgenSpec::parse(&table(&format!("{d}\nproto = \"tcp\""))).unwrap();
        assert_eq!((s.proto, s.tcp, s.header_len(), s.min_frame_len()), (Proto::Tcp, TcpSpec::default(), 54, 60));
        let s = PktgenSpec::parse(&table(&format!(
            "{d}\nproto = \"tcp\"\ntcp_flags = \"syn,ack\"\ntcp_seq = 5\ntcp_mss = 1460\nipv6 = true\nvlan = 9\nsize = 82"
        )))
        .unwrap();
        assert_eq!((s.tcp.flags, s.tcp.seq, s.tcp.mss), (SYN | ACK, TcpNum::Fixed(5), Some(1460)));
        assert_eq!(s.min_frame_len(), 14 + 4 + 40 + 24, "IPv6 + VLAN + TCP with MSS, no signature needed");
        assert_eq!(err_keys(&format!("{d}\nproto = \"sctp\"")), vec!["proto"]);
        assert_eq!(err_keys(&format!("{d}\ntcp_flags = \"syn\"\ntcp_mss = 1")), vec!["tcp_flags", "tcp_mss"]);
        assert_eq!(err_keys(&format!("{d}\nproto = \"tcp\"\nipv6 = true\nsize = 73")), vec!["size"]);
        assert_eq!(err_keys(&format!("{d}\nproto = \"tcp\"\ntcp_flags = \"fin\"\ntcp_mss = 536")), vec!["tcp_mss"]);
        assert_eq!(err_keys("pcap = \"a.pcap\"\nproto = \"tcp\""), vec!["proto"]);
    }

    #[test]
    fn specs_built_in_code_are_validated_too() {
        let mut s = PktgenSpec { dst_mac: Some([2, 0, 0, 0, 0, 2]), ..Default::default() };
        assert!(s.validate().is_ok());
        s.ipv6 = true;
        let e = s.validate().unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["src_ip", "dst_ip", "size"]);
        s.ipv6 = false;
        s.rate = Rate::Pps(f64::NAN);
        assert!(s.validate().is_err());
    }
}
