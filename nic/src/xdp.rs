//! The XDP program that steers claimed traffic to AF_XDP sockets: loading, attaching,
//! socket registration, counters, detaching, and `cleanup` of what a killed run left behind.
//!
//! Owns: the BPF object compiled from `nic/bpf/xskd.bpf.c` (embedded, see [`XDP_OBJECT`]), its
//! configuration ([`Claim`], encoded into `.rodata` and the `claim_rules` map *before* the
//! program is attached, so a half-written rule table is never live), and its attachment to one
//! interface ([`XdpProgram`]).
//!
//! Guarantees:
//! * Only claimed frames are redirected, and only when `xsks_map[rx_queue]` holds a socket; all
//!   other frames are `XDP_PASS`ed, so ARP, SSH and unclaimed flows keep reaching the kernel.
//!   Every frame increments exactly one counter of [`XdpProgStats`].
//! * Attachment is a bpf_link (aya 0.14 `Xdp::attach`): the kernel detaches it when the last
//!   descriptor closes, so a SIGKILLed process leaves nothing attached. [`XdpProgram::detach`]
//!   and `Drop` detach explicitly with `BPF_LINK_DETACH`, which takes effect at once even if a
//!   forked child briefly holds a copy of the descriptor.
//! * [`XdpProgram::mode`] reports the mode the kernel confirmed over netlink, not the request.
//! * An attach refused because something is already attached (`EBUSY`/`EEXIST`) fails with
//!   [`XdpError::AlreadyAttached`], which names what is attached and says to run
//!   `xskd cleanup IFACE`; [`cleanup`] removes netlink-attached programs and stale xskd links.
//! * Errors name the interface and the operation ([`XdpOp`]).
//!
//! Ordering rule for callers: detach the program *before* closing the AF_XDP sockets registered
//! in it (a kernel race was hit when sockets close under load with the program still attached;
//! see `shared/reference/anchors.md` §3.6).
//!
//! All interface names and indexes are those of the calling thread's network namespace at the
//! time of the call (see [`crate::netns::Netns::enter`]).

mod bpf_sys;
mod netlink;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use aya::maps::{Array, MapData, PerCpuArray, XskMap};
use aya::programs::links::FdLink;
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};

/// The compiled XDP object (`clang -O2 -g -target bpf`), built by `nic/build.rs`.
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xskd.bpf.o"));

/// Name of the XDP program (the C function) in [`XDP_OBJECT`]; the kernel shows it as the
/// program name, and [`cleanup`] recognises xskd's programs by the `xskd` prefix.
pub const PROGRAM_NAME: &str = "xskd_xdp";

/// Prefix of every program name xskd loads.
pub const PROGRAM_NAME_PREFIX: &str = "xskd";

/// Entries of `xsks_map`: the highest usable queue index is `MAX_QUEUES - 1`.
pub const MAX_QUEUES: u32 = 64;

/// Entries of `claim_rules`.
pub const MAX_RULES: usize = 16;

/// Mirror of `struct claim_rule` in `nic/bpf/xskd.bpf.c` (28 bytes, alignment 2, no implicit
/// padding; offsets asserted here and with `_Static_assert` in the C file).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClaimRuleRaw {
    /// Host byte order, 0 = any (compared after the optional 802.1Q tag).
    ethertype: u16,
    /// IP protocol, 0 = any.
    proto: u8,
    /// 0 = no destination match, 4 = IPv4, 6 = IPv6.
    family: u8,
    prefix_len: u8,
    pad: [u8; 3],
    /// Network byte order; IPv4 in the first 4 bytes.
    dst: [u8; 16],
    /// Inclusive range in host byte order; `0, 0` = any.
    port_lo: u16,
    port_hi: u16,
}

const _: () = {
    assert!(std::mem::size_of::<ClaimRuleRaw>() == 28);
    assert!(std::mem::align_of::<ClaimRuleRaw>() == 2);
    assert!(std::mem::offset_of!(ClaimRuleRaw, proto) == 2);
    assert!(std::mem::offset_of!(ClaimRuleRaw, family) == 3);
    assert!(std::mem::offset_of!(ClaimRuleRaw, prefix_len) == 4);
    assert!(std::mem::offset_of!(ClaimRuleRaw, dst) == 8);
    assert!(std::mem::offset_of!(ClaimRuleRaw, port_lo) == 24);
    assert!(std::mem::offset_of!(ClaimRuleRaw, port_hi) == 26);
};

// SAFETY: `ClaimRuleRaw` is `repr(C)`, `Copy`, made only of integers and integer arrays whose
// sizes add up to its size (no padding bytes, asserted above), so every bit pattern is valid and
// it can be copied to and from the kernel as raw bytes.
unsafe impl aya::Pod for ClaimRuleRaw {}

/// Mirror of `enum xskd_stat` in `nic/bpf/xskd.bpf.c`: the indexes of `xskd_stats`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatIndex {
    Redirected = 0,
    PassedUnclaimed = 1,
    PassedNoSocket = 2,
    ParseShort = 3,
}

impl StatIndex {
    const ALL: [StatIndex; 4] =
        [StatIndex::Redirected, StatIndex::PassedUnclaimed, StatIndex::PassedNoSocket, StatIndex::ParseShort];
}

/// The attach mode asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Driver (native) mode only; fail if the driver refuses.
    Native,
    /// Generic (skb) mode only.
    Generic,
    /// Native first; if the driver refuses (for a reason other than "something is already
    /// attached"), generic, with a warning.
    Auto,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Auto => "auto",
        })
    }
}

/// The attach mode obtained (confirmed by the kernel over netlink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver mode (`ip link` shows `xdp`).
    Native,
    /// Generic mode (`ip link` shows `xdpgeneric`).
    Generic,
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

/// Which traffic the program takes away from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Every frame (ARP included: the kernel stops seeing it on this interface).
    All,
    /// Frames that match at least one rule (first match wins); at most [`MAX_RULES`].
    /// An empty list claims nothing.
    Rules(Vec<ClaimRule>),
}

/// One claim rule; every field that is `Some` must match. A rule with all fields `None`
/// matches every frame.
///
/// Matching is on the ethertype after at most one 802.1Q tag, the IPv4 protocol or the IPv6
/// *first* next-header (extension headers are not walked), the destination address prefix, and
/// the UDP/TCP destination port. A field the parser could not read (non-IP frame, IPv4
/// non-first fragment, truncated header) does not match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClaimRule {
    /// Ethertype (host order), e.g. `0x0800`; `Some(0)` is invalid (use `None`).
    pub ethertype: Option<u16>,
    /// IP protocol number, e.g. 17 for UDP; `Some(0)` is invalid (use `None`).
    pub proto: Option<u8>,
    /// Destination address and prefix length (≤ 32 for IPv4, ≤ 128 for IPv6).
    pub dst: Option<(IpAddr, u8)>,
    /// Inclusive UDP/TCP destination port range; `Some((0, 0))` is invalid (use `None`).
    pub dst_port: Option<(u16, u16)>,
}

impl ClaimRule {
    /// UDP to destination port `port`.
    pub fn udp_port(port: u16) -> ClaimRule {
        ClaimRule { proto: Some(17), dst_port: Some((port, port)), ..ClaimRule::default() }
    }

    /// TCP to destination port `port`.
    pub fn tcp_port(port: u16) -> ClaimRule {
        ClaimRule { proto: Some(6), dst_port: Some((port, port)), ..ClaimRule::default() }
    }

    /// This rule, restricted to destinations in `addr/prefix_len`.
    pub fn to_prefix(self, addr: IpAddr, prefix_len: u8) -> ClaimRule {
        ClaimRule { dst: Some((addr, prefix_len)), ..self }
    }

    /// Encodes the rule for the BPF map, rejecting rules that are ambiguous in the encoding
    /// or can never match.
    pub(crate) fn encode(&self) -> Result<ClaimRuleRaw, String> {
        let mut raw = ClaimRuleRaw::default();
        match self.ethertype {
            Some(0) => return Err("ethertype 0 is not a match value (use None for any)".into()),
            Some(e) => raw.ethertype = e,
            None => {}
        }
        match self.proto {
            Some(0) => return Err("protocol 0 is not a match value (use None for any)".into()),
            Some(p) => raw.proto = p,
            None => {}
        }
        if let Some((addr, plen)) = self.dst {
            let (family, max, ethertype) = match addr {
                IpAddr::V4(a) => {
                    raw.dst[..4].copy_from_slice(&a.octets());
                    (4u8, 32u8, 0x0800u16)
                }
                IpAddr::V6(a) => {
                    raw.dst.copy_from_slice(&a.octets());
                    (6u8, 128u8, 0x86dd_u16)
                }
            };
            if plen > max {
                return Err(format!("prefix length {plen} is longer than {max} bits for {addr}"));
            }
            if raw.ethertype != 0 && raw.ethertype != ethertype {
                return Err(format!("destination {addr} can never match ethertype {:#06x}", raw.ethertype));
            }
            raw.family = family;
            raw.prefix_len = plen;
        }
        if let Some((lo, hi)) = self.dst_port {
            if (lo, hi) == (0, 0) {
                return Err("port range 0-0 is not a match value (use None for any)".into());
            }
            if lo > hi {
                return Err(format!("port range {lo}-{hi} is empty"));
            }
            if raw.proto != 0 && raw.proto != 6 && raw.proto != 17 {
                return Err(format!("a destination port needs UDP or TCP, not protocol {}", raw.proto));
            }
            raw.port_lo = lo;
            raw.port_hi = hi;
        }
        Ok(raw)
    }
}

/// Per-program counters, summed over CPUs. Every frame the program saw is in exactly one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpProgStats {
    /// Claimed and redirected to the queue's AF_XDP socket.
    pub redirected: u64,
    /// Not claimed: passed to the kernel.
    pub passed_unclaimed: u64,
    /// Claimed, but no socket registered for the queue: passed to the kernel.
    pub passed_no_socket: u64,
    /// Not claimed and a header was truncated: passed to the kernel.
    pub parse_short: u64,
}

impl XdpProgStats {
    /// All frames the program saw.
    pub fn total(&self) -> u64 {
        self.redirected + self.passed_unclaimed + self.passed_no_socket + self.parse_short
    }

    /// The counts since the `earlier` snapshot.
    pub fn since(&self, earlier: &XdpProgStats) -> XdpProgStats {
        XdpProgStats {
            redirected: self.redirected.saturating_sub(earlier.redirected),
            passed_unclaimed: self.passed_unclaimed.saturating_sub(earlier.passed_unclaimed),
            passed_no_socket: self.passed_no_socket.saturating_sub(earlier.passed_no_socket),
            parse_short: self.parse_short.saturating_sub(earlier.parse_short),
        }
    }
}

/// The operation an [`XdpError`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpOp {
    /// Looking the interface up by name.
    ResolveInterface,
    /// Loading the object and the program (verifier).
    Load,
    /// Writing `claim_rules`.
    WriteRules,
    /// Attaching in driver mode.
    AttachNative,
    /// Attaching in generic mode.
    AttachGeneric,
    /// Checking over netlink that the program is attached in the expected mode.
    VerifyAttach,
    /// Setting `xsks_map[queue]`.
    RegisterSocket {
        /// Queue index.
        queue: u32,
    },
    /// Clearing `xsks_map[queue]`.
    UnregisterSocket {
        /// Queue index.
        queue: u32,
    },
    /// Reading `xskd_stats`.
    StatsRead,
    /// Running the program on a test frame (`BPF_PROG_TEST_RUN`).
    TestRun,
    /// `BPF_LINK_DETACH` of a bpf_link.
    LinkDetach,
    /// Walking the kernel's bpf_links.
    LinkEnumerate,
    /// Reading the interface's XDP state over netlink.
    NetlinkQuery,
    /// Detaching a program through netlink.
    NetlinkDetach,
    /// Checking that the program is gone after a detach.
    VerifyDetach,
}

impl fmt::Display for XdpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XdpOp::ResolveInterface => f.write_str("resolve interface"),
            XdpOp::Load => f.write_str("load XDP program"),
            XdpOp::WriteRules => f.write_str("write claim_rules"),
            XdpOp::AttachNative => f.write_str("attach native"),
            XdpOp::AttachGeneric => f.write_str("attach generic"),
            XdpOp::VerifyAttach => f.write_str("verify attachment"),
            XdpOp::RegisterSocket { queue } => write!(f, "map update xsks_map[{queue}]"),
            XdpOp::UnregisterSocket { queue } => write!(f, "map delete xsks_map[{queue}]"),
            XdpOp::StatsRead => f.write_str("stats read"),
            XdpOp::TestRun => f.write_str("test run"),
            XdpOp::LinkDetach => f.write_str("bpf_link detach"),
            XdpOp::LinkEnumerate => f.write_str("bpf_link enumeration"),
            XdpOp::NetlinkQuery => f.write_str("netlink query"),
            XdpOp::NetlinkDetach => f.write_str("netlink detach"),
            XdpOp::VerifyDetach => f.write_str("verify detach"),
        }
    }
}

/// Errors of this module; each names the interface.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// No interface of that name in the calling thread's network namespace.
    #[error("{iface}: no such network interface in this network namespace ({op})")]
    NoSuchInterface {
        /// Interface name.
        iface: String,
        /// What was being done.
        op: XdpOp,
    },
    /// A claim rule that is ambiguous or can never match.
    #[error("{iface}: invalid claim rule #{index}: {reason}")]
    InvalidRule {
        /// Interface name.
        iface: String,
        /// Index in the rule list.
        index: usize,
        /// Why.
        reason: String,
    },
    /// More rules than `claim_rules` holds.
    #[error("{iface}: {count} claim rules given, at most {MAX_RULES} are supported")]
    TooManyRules {
        /// Interface name.
        iface: String,
        /// Rules given.
        count: usize,
    },
    /// A queue index beyond `xsks_map`.
    #[error("{iface}: {op}: queue {queue} is out of range (xsks_map has {MAX_QUEUES} entries)")]
    QueueOutOfRange {
        /// Interface name.
        iface: String,
        /// What was being done.
        op: XdpOp,
        /// Queue index.
        queue: u32,
    },
    /// The kernel refused the attach because an XDP program is already attached.
    #[error(
        "{iface}: {op} refused: {existing} is already attached; \
         run `xskd cleanup {iface}` to remove it"
    )]
    AlreadyAttached {
        /// Interface name.
        iface: String,
        /// The attach that was refused.
        op: XdpOp,
        /// What is attached (mode, program name and id, link or netlink, holders).
        existing: String,
        /// The kernel's answer: `EBUSY` or `EEXIST`.
        errno: i32,
    },
    /// Any other failed operation.
    #[error("{iface}: {op} failed: {detail}")]
    Failed {
        /// Interface name.
        iface: String,
        /// What was being done.
        op: XdpOp,
        /// The OS error number, when there is one.
        errno: Option<i32>,
        /// The error with its causes (and the verifier log for a load).
        detail: String,
    },
}

impl XdpError {
    /// The OS error number behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            XdpError::Failed { errno, .. } => *errno,
            XdpError::AlreadyAttached { errno, .. } => Some(*errno),
            XdpError::NoSuchInterface { .. } => Some(libc::ENODEV),
            _ => None,
        }
    }

    /// The operation that failed.
    pub fn op(&self) -> Option<XdpOp> {
        match self {
            XdpError::NoSuchInterface { op, .. }
            | XdpError::QueueOutOfRange { op, .. }
            | XdpError::AlreadyAttached { op, .. }
            | XdpError::Failed { op, .. } => Some(*op),
            XdpError::InvalidRule { .. } | XdpError::TooManyRules { .. } => None,
        }
    }

    fn failed(iface: &str, op: XdpOp, errno: Option<i32>, detail: impl fmt::Display) -> XdpError {
        XdpError::Failed { iface: iface.to_string(), op, errno, detail: detail.to_string() }
    }

    fn io(iface: &str, op: XdpOp, e: &io::Error) -> XdpError {
        XdpError::failed(iface, op, e.raw_os_error(), e)
    }

    fn nl(iface: &str, op: XdpOp, e: &crate::netlink::NlError) -> XdpError {
        if e.errno == libc::ENODEV {
            return XdpError::NoSuchInterface { iface: iface.to_string(), op };
        }
        XdpError::failed(iface, op, Some(e.errno), e)
    }

    fn aya(iface: &str, op: XdpOp, e: &(dyn std::error::Error + 'static)) -> XdpError {
        XdpError::failed(iface, op, errno_of(e), chain(e))
    }
}

/// `e` and its causes, joined with ": ".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The first OS error number in `e`'s chain.
fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    if let Some(ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(n))) =
        e.downcast_ref::<ProgramError>()
    {
        return n.raw_os_error();
    }
    if let Some(ProgramError::NetlinkError(n)) = e.downcast_ref::<ProgramError>() {
        return n.raw_os_error();
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        if let Some(sc) = c.downcast_ref::<aya::sys::SyscallError>() {
            if let Some(n) = sc.io_error.raw_os_error() {
                return Some(n);
            }
        }
        if let Some(ProgramError::LoadError { io_error, .. }) = c.downcast_ref::<ProgramError>() {
            return io_error.raw_os_error();
        }
        cur = c.source();
    }
    None
}

/// The index of `ifname` in the calling thread's network namespace.
fn ifindex_of(ifname: &str, op: XdpOp) -> Result<u32, XdpError> {
    let no_such = || XdpError::NoSuchInterface { iface: ifname.to_string(), op };
    let c = std::ffi::CString::new(ifname).map_err(|_| no_such())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) | Some(libc::ENXIO) | None => Err(no_such()),
            _ => Err(XdpError::io(ifname, op, &e)),
        };
    }
    Ok(idx)
}

/// Identity (device, inode) of the calling thread's network namespace.
fn current_netns_id() -> io::Result<(u64, u64)> {
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

/// Where one XDP program sits on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachSlot {
    /// Driver mode.
    Native,
    /// Generic (skb) mode.
    Generic,
    /// Hardware offload.
    Offload,
}

impl AttachSlot {
    fn flags(self) -> u32 {
        match self {
            AttachSlot::Native => netlink::XDP_FLAGS_DRV_MODE,
            AttachSlot::Generic => netlink::XDP_FLAGS_SKB_MODE,
            AttachSlot::Offload => netlink::XDP_FLAGS_HW_MODE,
        }
    }
}

impl fmt::Display for AttachSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachSlot::Native => "native",
            AttachSlot::Generic => "generic",
            AttachSlot::Offload => "offload",
        })
    }
}

/// How a program is attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachVia {
    /// Legacy netlink attachment: stays until someone detaches it.
    Netlink,
    /// A bpf_link: goes away when its last descriptor closes.
    Link {
        /// Kernel link id.
        link_id: u32,
        /// Pids of live processes that hold the link open (empty: pinned in a bpffs, or no
        /// holder found).
        holders: Vec<u32>,
    },
}

/// One XDP program found on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    /// Mode slot.
    pub slot: AttachSlot,
    /// Kernel program id.
    pub prog_id: u32,
    /// Kernel program name (empty if unknown).
    pub prog_name: String,
    /// Link or netlink.
    pub via: AttachVia,
}

impl fmt::Display for AttachedProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} XDP program '{}' (id {})", self.slot, self.prog_name, self.prog_id)?;
        match &self.via {
            AttachVia::Netlink => f.write_str(" attached through netlink"),
            AttachVia::Link { link_id, holders } if holders.is_empty() => {
                write!(f, " attached through bpf_link {link_id} with no live holder")
            }
            AttachVia::Link { link_id, holders } => {
                let pids: Vec<String> = holders.iter().map(u32::to_string).collect();
                write!(f, " attached through bpf_link {link_id} held by pid {}", pids.join(", "))
            }
        }
    }
}

/// Reads what is attached to `ifindex` (calling thread's namespace), with names and links.
fn inspect(ifname: &str, ifindex: u32) -> Result<Vec<AttachedProgram>, XdpError> {
    let st = netlink::query(ifindex).map_err(|e| XdpError::nl(ifname, XdpOp::NetlinkQuery, &e))?;
    let slots = [
        (AttachSlot::Native, st.drv_prog_id),
        (AttachSlot::Generic, st.skb_prog_id),
        (AttachSlot::Offload, st.hw_prog_id),
    ];
    if slots.iter().all(|(_, id)| *id == 0) {
        return Ok(Vec::new());
    }
    let links = bpf_sys::xdp_links().map_err(|e| XdpError::io(ifname, XdpOp::LinkEnumerate, &e))?;
    let mut out = Vec::new();
    for (slot, prog_id) in slots {
        if prog_id == 0 {
            continue;
        }
        // Link info has only an ifindex (no namespace), so the program id, taken from this
        // namespace's netlink answer, is what ties a link to this interface.
        let via = match links.iter().find(|l| l.prog_id == prog_id && l.xdp_ifindex == ifindex) {
            Some(l) => AttachVia::Link { link_id: l.id, holders: bpf_sys::link_holders(l.id) },
            None => AttachVia::Netlink,
        };
        out.push(AttachedProgram {
            slot,
            prog_id,
            prog_name: bpf_sys::prog_name_by_id(prog_id).unwrap_or_default(),
            via,
        });
    }
    Ok(out)
}

/// A human description of what is attached to `ifindex`, for error messages.
fn describe_attached(ifname: &str, ifindex: u32) -> String {
    match inspect(ifname, ifindex) {
        Ok(progs) if progs.is_empty() => "an XDP program (gone by the time it was inspected)".into(),
        Ok(progs) => progs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "),
        Err(e) => format!("an XDP program (could not inspect it: {e})"),
    }
}

enum Attachment {
    /// A bpf_link we own (the only descriptor, unless a fork is in flight).
    Link { link: FdLink, link_id: u32 },
    /// aya fell back to netlink (only when `bpf_link_create` gives EINVAL): detached through
    /// netlink in the namespace of attach.
    Netlink { slot: AttachSlot, netns: OwnedFd },
}

/// The xskd XDP program loaded and attached to one interface. Owns the aya `Ebpf` (maps and
/// program) and the attachment; dropping it detaches (errors are logged), [`Self::detach`]
/// detaches and reports errors.
pub struct XdpProgram {
    ifname: String,
    ifindex: u32,
    mode: AttachedMode,
    prog_id: u32,
    netns_id: Option<(u64, u64)>,
    attachment: Option<Attachment>,
    ebpf: Ebpf,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("prog_id", &self.prog_id)
            .field("link_id", &self.link_id())
            .finish()
    }
}

/// Encodes a claim into (`claim_all`, rules).
fn encode_claim(ifname: &str, claim: &Claim) -> Result<(u8, Vec<ClaimRuleRaw>), XdpError> {
    match claim {
        Claim::All => Ok((1, Vec::new())),
        Claim::Rules(rules) => {
            if rules.len() > MAX_RULES {
                return Err(XdpError::TooManyRules { iface: ifname.to_string(), count: rules.len() });
            }
            let raw = rules
                .iter()
                .enumerate()
                .map(|(index, r)| {
                    r.encode().map_err(|reason| XdpError::InvalidRule { iface: ifname.to_string(), index, reason })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((0, raw))
        }
    }
}

fn prog_mut<'a>(ebpf: &'a mut Ebpf, ifname: &str) -> Result<&'a mut Xdp, XdpError> {
    let p = ebpf.program_mut(PROGRAM_NAME).ok_or_else(|| {
        XdpError::failed(ifname, XdpOp::Load, None, format!("no program {PROGRAM_NAME} in the object"))
    })?;
    p.try_into().map_err(|e: ProgramError| XdpError::aya(ifname, XdpOp::Load, &e))
}

impl XdpProgram {
    /// Loads the program configured with `claim`, then attaches it to `ifname` (calling
    /// thread's network namespace) in `mode`. `Auto` tries native first and falls back to
    /// generic with a warning, except when the refusal is "already attached".
    pub fn attach(ifname: &str, mode: XdpMode, claim: &Claim) -> Result<XdpProgram, XdpError> {
        let (claim_all, rules) = encode_claim(ifname, claim)?;
        let ifindex = ifindex_of(ifname, XdpOp::ResolveInterface)?;
        let n_rules = u32::try_from(rules.len()).expect("at most MAX_RULES");

        let mut ebpf = EbpfLoader::new()
            .override_global("claim_all", &claim_all, true)
            .override_global("n_rules", &n_rules, true)
            .load(XDP_OBJECT)
            .map_err(|e| XdpError::aya(ifname, XdpOp::Load, &e))?;
        {
            let map = ebpf
                .map_mut("claim_rules")
                .ok_or_else(|| XdpError::failed(ifname, XdpOp::WriteRules, None, "no map claim_rules in the object"))?;
            let mut arr: Array<&mut MapData, ClaimRuleRaw> =
                Array::try_from(map).map_err(|e| XdpError::aya(ifname, XdpOp::WriteRules, &e))?;
            for (i, r) in rules.iter().enumerate() {
                let i = u32::try_from(i).expect("at most MAX_RULES");
                arr.set(i, r, 0).map_err(|e| XdpError::aya(ifname, XdpOp::WriteRules, &e))?;
            }
        }
        let prog = prog_mut(&mut ebpf, ifname)?;
        prog.load().map_err(|e| XdpError::aya(ifname, XdpOp::Load, &e))?;
        let prog_id = prog.info().map_err(|e| XdpError::aya(ifname, XdpOp::Load, &e))?.id();

        let (mode, attachment) = match mode {
            XdpMode::Native => (AttachedMode::Native, attach_in(prog, ifname, ifindex, AttachedMode::Native)?),
            XdpMode::Generic => (AttachedMode::Generic, attach_in(prog, ifname, ifindex, AttachedMode::Generic)?),
            XdpMode::Auto => match attach_in(prog, ifname, ifindex, AttachedMode::Native) {
                Ok(a) => (AttachedMode::Native, a),
                Err(e @ XdpError::AlreadyAttached { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(iface = %ifname, error = %e, "native XDP attach failed, using generic mode");
                    (AttachedMode::Generic, attach_in(prog, ifname, ifindex, AttachedMode::Generic)?)
                }
            },
        };
        let mut me = XdpProgram {
            ifname: ifname.to_string(),
            ifindex,
            mode,
            prog_id,
            netns_id: current_netns_id().ok(),
            attachment: Some(attachment),
            ebpf,
        };

        // Confirm with the kernel what was obtained.
        let err = match netlink::query(ifindex) {
            Ok(s) => {
                let slot_id = match mode {
                    AttachedMode::Native => s.drv_prog_id,
                    AttachedMode::Generic => s.skb_prog_id,
                };
                (slot_id != prog_id).then(|| {
                    XdpError::failed(
                        ifname,
                        XdpOp::VerifyAttach,
                        None,
                        format!(
                            "program {prog_id} is not in the {mode} slot after attach \
                             (native id {}, generic id {})",
                            s.drv_prog_id, s.skb_prog_id
                        ),
                    )
                })
            }
            Err(e) => Some(XdpError::nl(ifname, XdpOp::VerifyAttach, &e)),
        };
        if let Some(err) = err {
            let _ = me.detach_inner();
            return Err(err);
        }
        tracing::debug!(iface = %ifname, ifindex, prog_id, mode = %mode, "XDP program attached");
        Ok(me)
    }

    /// The mode the kernel confirmed.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// The interface name given to [`Self::attach`].
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in the namespace of attach).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The kernel's id of the loaded program.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// The kernel's id of the bpf_link (`None` if aya had to attach through netlink, or after
    /// detach).
    pub fn link_id(&self) -> Option<u32> {
        match &self.attachment {
            Some(Attachment::Link { link_id, .. }) => Some(*link_id),
            _ => None,
        }
    }

    /// Registers the AF_XDP socket `fd` (bound to `queue` of this interface) in
    /// `xsks_map[queue]`; claimed frames received on `queue` go to it from now on.
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        let op = XdpOp::RegisterSocket { queue };
        self.check_queue(queue, op)?;
        let ifname = self.ifname.clone();
        self.xsks_map(op)?.set(queue, fd.as_raw_fd(), 0).map_err(|e| XdpError::aya(&ifname, op, &e))
    }

    /// Clears `xsks_map[queue]`; claimed frames on `queue` are passed to the kernel again
    /// (counted as `passed_no_socket`). Clearing an empty entry is not an error.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        let op = XdpOp::UnregisterSocket { queue };
        self.check_queue(queue, op)?;
        let ifname = self.ifname.clone();
        match self.xsks_map(op)?.unset(queue) {
            Ok(()) => Ok(()),
            Err(e) if errno_of(&e) == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(XdpError::aya(&ifname, op, &e)),
        }
    }

    fn check_queue(&self, queue: u32, op: XdpOp) -> Result<(), XdpError> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::QueueOutOfRange { iface: self.ifname.clone(), op, queue });
        }
        Ok(())
    }

    fn xsks_map(&mut self, op: XdpOp) -> Result<XskMap<&mut MapData>, XdpError> {
        let ifname = &self.ifname;
        let map = self
            .ebpf
            .map_mut("xsks_map")
            .ok_or_else(|| XdpError::failed(ifname, op, None, "no map xsks_map in the object"))?;
        XskMap::try_from(map).map_err(|e| XdpError::aya(ifname, op, &e))
    }

    /// The counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpProgStats, XdpError> {
        let op = XdpOp::StatsRead;
        let map = self
            .ebpf
            .map("xskd_stats")
            .ok_or_else(|| XdpError::failed(&self.ifname, op, None, "no map xskd_stats in the object"))?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| XdpError::aya(&self.ifname, op, &e))?;
        let mut sums = [0u64; 4];
        for idx in StatIndex::ALL {
            let vals = arr.get(&(idx as u32), 0).map_err(|e| XdpError::aya(&self.ifname, op, &e))?;
            sums[idx as usize] = vals.iter().sum();
        }
        Ok(XdpProgStats {
            redirected: sums[StatIndex::Redirected as usize],
            passed_unclaimed: sums[StatIndex::PassedUnclaimed as usize],
            passed_no_socket: sums[StatIndex::PassedNoSocket as usize],
            parse_short: sums[StatIndex::ParseShort as usize],
        })
    }

    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (as if received on queue 0
    /// of the loopback device) and returns the XDP action (2 = `XDP_PASS`, 4 =
    /// `XDP_REDIRECT`). The counters move exactly as for a received frame, which makes this a
    /// deterministic check of the claim rules. `frame` must be at least 14 bytes.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        let op = XdpOp::TestRun;
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or_else(|| XdpError::failed(&self.ifname, op, None, "program not found"))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::aya(&self.ifname, op, &e))?;
        let res = prog
            .test_run(TestRunOptions { data_in: Some(frame), ..TestRunOptions::default() })
            .map_err(|e| XdpError::aya(&self.ifname, op, &e))?;
        Ok(res.return_value)
    }

    /// Detaches the program and checks with the kernel that it is gone. Call this before
    /// closing the AF_XDP sockets registered in it.
    pub fn detach(mut self) -> Result<(), XdpError> {
        self.detach_inner()
    }

    fn detach_inner(&mut self) -> Result<(), XdpError> {
        let Some(att) = self.attachment.take() else {
            return Ok(());
        };
        let ifname = self.ifname.clone();
        match att {
            Attachment::Link { link, link_id } => {
                // BPF_LINK_DETACH acts for every holder of the link, so a child process that
                // forked but has not exec'd yet (and so still holds a copy of our descriptor)
                // cannot keep the program attached after we return. Opening a link by id needs
                // CAP_SYS_ADMIN; without it, closing our descriptor is the detach, and the
                // verification below waits out such a child.
                let explicit = bpf_sys::link_fd_by_id(link_id).and_then(|fd| bpf_sys::link_detach(fd.as_fd()));
                if let Err(e) = explicit {
                    tracing::debug!(iface = %ifname, link_id, error = %e,
                        "BPF_LINK_DETACH unavailable, detaching by closing the link");
                }
                drop(link);
            }
            Attachment::Netlink { slot, netns } => {
                let here = current_netns_id().ok();
                let _guard = if here.is_some() && netns_id_of(netns.as_fd()) == here {
                    None
                } else {
                    Some(
                        crate::netns::enter_fd(netns.as_fd())
                            .map_err(|e| XdpError::io(&ifname, XdpOp::NetlinkDetach, &e))?,
                    )
                };
                let prog = self.ebpf.program(PROGRAM_NAME).and_then(|p| p.fd().ok()).map(|fd| fd.as_fd());
                match netlink::set_xdp(self.ifindex, None, slot.flags(), prog) {
                    // ENODEV: the interface is gone; EEXIST: another program replaced ours.
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ENODEV || e.errno == libc::EEXIST => {}
                    Err(e) => return Err(XdpError::nl(&ifname, XdpOp::NetlinkDetach, &e)),
                }
                return Ok(());
            }
        }
        // Verify, when this thread is in the namespace of attach (interface indexes are per
        // namespace). The link detach above is authoritative; this catches surprises.
        if self.netns_id.is_some() && self.netns_id == current_netns_id().ok() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            loop {
                match netlink::query(self.ifindex) {
                    Ok(st) if [st.drv_prog_id, st.skb_prog_id, st.hw_prog_id].contains(&self.prog_id) => {
                        if std::time::Instant::now() > deadline {
                            return Err(XdpError::failed(
                                &ifname,
                                XdpOp::VerifyDetach,
                                None,
                                format!("program {} is still attached after detach", self.prog_id),
                            ));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Ok(_) => break,
                    Err(e) if e.errno == libc::ENODEV => break,
                    Err(e) => return Err(XdpError::nl(&ifname, XdpOp::VerifyDetach, &e)),
                }
            }
        }
        tracing::debug!(iface = %ifname, prog_id = self.prog_id, "XDP program detached");
        Ok(())
    }
}

fn netns_id_of(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    let f = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let m = f.metadata().ok()?;
    Some((m.dev(), m.ino()))
}

/// Attaches the loaded `prog` in `mode`; returns the attachment we own.
fn attach_in(prog: &mut Xdp, ifname: &str, ifindex: u32, mode: AttachedMode) -> Result<Attachment, XdpError> {
    let (aya_mode, op, slot) = match mode {
        AttachedMode::Native => (aya::programs::XdpMode::Driver, XdpOp::AttachNative, AttachSlot::Native),
        AttachedMode::Generic => (aya::programs::XdpMode::Skb, XdpOp::AttachGeneric, AttachSlot::Generic),
    };
    let link_id = prog.attach_to_if_index(ifindex, aya_mode).map_err(|e| match errno_of(&e) {
        Some(errno @ (libc::EBUSY | libc::EEXIST)) => XdpError::AlreadyAttached {
            iface: ifname.to_string(),
            op,
            existing: describe_attached(ifname, ifindex),
            errno,
        },
        _ => XdpError::aya(ifname, op, &e),
    })?;
    let link = prog.take_link(link_id).map_err(|e| XdpError::aya(ifname, op, &e))?;
    match FdLink::try_from(link) {
        Ok(fd_link) => {
            let link_id = match fd_link.info() {
                Ok(info) => info.id(),
                Err(e) => {
                    // Dropping `fd_link` closes the only descriptor and detaches it.
                    return Err(XdpError::aya(ifname, op, &e));
                }
            };
            Ok(Attachment::Link { link: fd_link, link_id })
        }
        Err(_) => {
            // aya attached through netlink (bpf_link_create said EINVAL). Converting consumed
            // aya's handle without detaching, so we own a netlink attachment now.
            let netns = match std::fs::File::open("/proc/thread-self/ns/net") {
                Ok(f) => OwnedFd::from(f),
                Err(e) => {
                    // Without the namespace handle we could not detach later: undo it now.
                    let fd = prog.fd().map(|fd| fd.as_fd()).ok();
                    let _ = netlink::set_xdp(ifindex, None, slot.flags(), fd);
                    return Err(XdpError::io(ifname, op, &e));
                }
            };
            tracing::warn!(iface = %ifname, "bpf_link attach unavailable, XDP attached through netlink");
            Ok(Attachment::Netlink { slot, netns })
        }
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach_inner() {
            tracing::warn!(iface = %self.ifname, error = %e, "XDP detach on drop failed");
        }
    }
}

/// What [`cleanup_with`] may remove.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupOptions {
    /// Also detach xskd bpf_links that a live process still holds (normally a running xskd:
    /// left alone unless this is set).
    pub detach_live_links: bool,
}

/// A program [`cleanup`] left in place, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptProgram {
    /// The program.
    pub program: AttachedProgram,
    /// Why it was left.
    pub reason: String,
}

/// What [`cleanup`] did on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupReport {
    /// Interface name.
    pub ifname: String,
    /// Programs detached.
    pub removed: Vec<AttachedProgram>,
    /// Programs left in place.
    pub kept: Vec<KeptProgram>,
}

impl CleanupReport {
    /// True when nothing was attached at all.
    pub fn nothing_to_clean(&self) -> bool {
        self.removed.is_empty() && self.kept.is_empty()
    }
}

impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nothing_to_clean() {
            return write!(f, "{}: nothing to clean", self.ifname);
        }
        let mut first = true;
        for p in &self.removed {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{}: removed {p}", self.ifname)?;
        }
        for k in &self.kept {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{}: left {}: {}", self.ifname, k.program, k.reason)?;
        }
        Ok(())
    }
}

/// Removes what a killed or older run left on `ifname` (calling thread's namespace), with the
/// default [`CleanupOptions`]:
/// * every XDP program attached through netlink, native, generic or offload, whatever its
///   name (an older xskd, `ip link set dev X xdp obj ...`, libxdp);
/// * xskd bpf_links (program name starting with `xskd`) that no live process holds (pinned in
///   a bpffs).
///
/// It leaves, and reports, bpf_links of other programs and xskd links held by a live process
/// (see [`cleanup_with`] to detach those too). "Nothing to clean" is a normal outcome.
pub fn cleanup(ifname: &str) -> Result<CleanupReport, XdpError> {
    cleanup_with(ifname, &CleanupOptions::default())
}

/// [`cleanup`] with options.
pub fn cleanup_with(ifname: &str, opts: &CleanupOptions) -> Result<CleanupReport, XdpError> {
    let ifindex = ifindex_of(ifname, XdpOp::ResolveInterface)?;
    let mut report = CleanupReport { ifname: ifname.to_string(), removed: Vec::new(), kept: Vec::new() };
    for prog in inspect(ifname, ifindex)? {
        match &prog.via {
            AttachVia::Netlink => {
                let fd = match bpf_sys::prog_fd_by_id(prog.prog_id) {
                    Ok(fd) => fd,
                    Err(e) if bpf_sys::is_gone(&e) => continue, // gone meanwhile
                    Err(e) => return Err(XdpError::io(ifname, XdpOp::NetlinkDetach, &e)),
                };
                match netlink::set_xdp(ifindex, None, prog.slot.flags(), Some(fd.as_fd())) {
                    Ok(()) => report.removed.push(prog),
                    Err(e) if e.errno == libc::EEXIST => report.kept.push(KeptProgram {
                        program: prog,
                        reason: "it was replaced while cleaning; run cleanup again".into(),
                    }),
                    Err(e) => return Err(XdpError::nl(ifname, XdpOp::NetlinkDetach, &e)),
                }
            }
            AttachVia::Link { link_id, holders } => {
                if !prog.prog_name.starts_with(PROGRAM_NAME_PREFIX) {
                    let reason = "not an xskd program; detach it with the tool that attached it".into();
                    report.kept.push(KeptProgram { program: prog, reason });
                    continue;
                }
                if !holders.is_empty() && !opts.detach_live_links {
                    let reason = "a live process holds the link (a running xskd?); stop it, or \
                                  clean up with detach_live_links (--force)"
                        .into();
                    report.kept.push(KeptProgram { program: prog, reason });
                    continue;
                }
                let fd = match bpf_sys::link_fd_by_id(*link_id) {
                    Ok(fd) => fd,
                    Err(e) if bpf_sys::is_gone(&e) => continue,
                    Err(e) => return Err(XdpError::io(ifname, XdpOp::LinkDetach, &e)),
                };
                bpf_sys::link_detach(fd.as_fd()).map_err(|e| XdpError::io(ifname, XdpOp::LinkDetach, &e))?;
                report.removed.push(prog);
            }
        }
    }
    // Check that what we report as removed is gone.
    let st = netlink::query(ifindex).map_err(|e| XdpError::nl(ifname, XdpOp::VerifyDetach, &e))?;
    let now = [st.drv_prog_id, st.skb_prog_id, st.hw_prog_id];
    if let Some(p) = report.removed.iter().find(|p| now.contains(&p.prog_id)) {
        return Err(XdpError::failed(
            ifname,
            XdpOp::VerifyDetach,
            None,
            format!("{p} is still attached after cleanup"),
        ));
    }
    for p in &report.removed {
        tracing::info!(iface = %ifname, program = %p, "cleanup removed XDP program");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The compiled object (what the kernel loads), not the C source: its maps have the sizes
    /// the Rust side indexes with, and the program is where `attach` looks for it. That each
    /// counter index means what [`StatIndex`] says is checked by behaviour in the root tests
    /// (`nic/tests/xdp_veth.rs`: every crafted frame moves exactly the expected counter, and
    /// redirected frames move `redirected`).
    #[test]
    fn compiled_object_matches_the_rust_side() {
        let obj = aya_obj::Object::parse(XDP_OBJECT).expect("parse xskd.bpf.o");
        let map = |name: &str| obj.maps.get(name).unwrap_or_else(|| panic!("no map {name}"));
        let stats = map("xskd_stats");
        assert_eq!(stats.map_type(), aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY as u32);
        assert_eq!(stats.max_entries() as usize, StatIndex::ALL.len());
        assert_eq!(stats.value_size(), 8);
        let xsks = map("xsks_map");
        assert_eq!(xsks.map_type(), aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_XSKMAP as u32);
        assert_eq!(xsks.max_entries(), MAX_QUEUES);
        let rules = map("claim_rules");
        assert_eq!(rules.max_entries() as usize, MAX_RULES);
        assert_eq!(rules.value_size() as usize, std::mem::size_of::<ClaimRuleRaw>());
        let prog = obj.programs.get(PROGRAM_NAME).expect("program");
        assert!(matches!(prog.section, aya_obj::ProgramSection::Xdp { frags: false, .. }), "{:?}", prog.section);
        assert_eq!(
            StatIndex::ALL.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            (0..StatIndex::ALL.len() as u32).collect::<Vec<_>>(),
            "indexes are dense, in order"
        );
    }

    #[test]
    fn object_is_embedded_elf() {
        assert_eq!(&XDP_OBJECT[..4], b"\x7fELF");
    }

    #[test]
    fn rules_encode_to_the_documented_layout() {
        let r = ClaimRule::udp_port(9000).to_prefix(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 24);
        let raw = r.encode().expect("valid");
        assert_eq!(raw.proto, 17);
        assert_eq!(raw.family, 4);
        assert_eq!(raw.prefix_len, 24);
        assert_eq!(&raw.dst[..4], &[198, 18, 0, 2]);
        assert_eq!(&raw.dst[4..], &[0; 12]);
        assert_eq!((raw.port_lo, raw.port_hi), (9000, 9000));
        assert_eq!(raw.ethertype, 0);

        let v6 = ClaimRule {
            ethertype: Some(0x86dd),
            dst: Some((IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)), 45)),
            ..ClaimRule::default()
        };
        let raw = v6.encode().expect("valid");
        assert_eq!(raw.family, 6);
        assert_eq!(raw.prefix_len, 45);
        assert_eq!(&raw.dst[..4], &[0x20, 0x01, 0, 2]);
        assert_eq!(raw.dst[15], 1);
        assert_eq!(ClaimRule::default().encode().expect("any"), ClaimRuleRaw::default());
    }

    #[test]
    fn invalid_rules_are_rejected_with_a_reason() {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let bad = [
            ClaimRule { ethertype: Some(0), ..ClaimRule::default() },
            ClaimRule { proto: Some(0), ..ClaimRule::default() },
            ClaimRule { dst: Some((v4, 33)), ..ClaimRule::default() },
            ClaimRule { dst_port: Some((0, 0)), ..ClaimRule::default() },
            ClaimRule { dst_port: Some((10, 9)), ..ClaimRule::default() },
            ClaimRule { proto: Some(1), dst_port: Some((1, 2)), ..ClaimRule::default() },
            ClaimRule { ethertype: Some(0x86dd), dst: Some((v4, 24)), ..ClaimRule::default() },
        ];
        for (i, r) in bad.iter().enumerate() {
            let err = encode_claim("t0", &Claim::Rules(vec![ClaimRule::default(), *r])).unwrap_err();
            match err {
                XdpError::InvalidRule { index, ref iface, .. } => {
                    assert_eq!((index, iface.as_str()), (1, "t0"), "case {i}: {err}");
                }
                other => panic!("case {i}: unexpected {other}"),
            }
        }
        let many = Claim::Rules(vec![ClaimRule::udp_port(1); MAX_RULES + 1]);
        assert!(matches!(
            encode_claim("t0", &many),
            Err(XdpError::TooManyRules { count, .. }) if count == MAX_RULES + 1
        ));
        assert_eq!(encode_claim("t0", &Claim::All).unwrap(), (1, vec![]));
    }

    #[test]
    fn stats_delta_and_total() {
        let a = XdpProgStats { redirected: 5, passed_unclaimed: 3, passed_no_socket: 2, parse_short: 1 };
        let b = XdpProgStats { redirected: 7, passed_unclaimed: 3, passed_no_socket: 4, parse_short: 1 };
        assert_eq!(b.total(), 15);
        assert_eq!(
            b.since(&a),
            XdpProgStats { redirected: 2, passed_unclaimed: 0, passed_no_socket: 2, parse_short: 0 }
        );
    }

    #[test]
    fn errors_name_interface_and_operation() {
        let e = XdpError::failed("d0", XdpOp::RegisterSocket { queue: 3 }, Some(libc::EINVAL), "boom");
        assert_eq!(e.to_string(), "d0: map update xsks_map[3] failed: boom");
        assert_eq!(e.errno(), Some(libc::EINVAL));
        let e = XdpError::AlreadyAttached {
            iface: "d0".into(),
            op: XdpOp::AttachNative,
            existing: "generic XDP program 'x' (id 1) attached through netlink".into(),
            errno: libc::EEXIST,
        };
        let s = e.to_string();
        assert!(s.contains("attach native refused"), "{s}");
        assert!(s.contains("run `xskd cleanup d0`"), "{s}");
    }

    #[test]
    fn cleanup_report_says_nothing_to_clean() {
        let r = CleanupReport { ifname: "d0".into(), removed: vec![], kept: vec![] };
        assert_eq!(r.to_string(), "d0: nothing to clean");
        let p = AttachedProgram {
            slot: AttachSlot::Generic,
            prog_id: 9,
            prog_name: "xskd_xdp".into(),
            via: AttachVia::Netlink,
        };
        let r = CleanupReport { ifname: "d0".into(), removed: vec![p], kept: vec![] };
        assert_eq!(r.to_string(), "d0: removed generic XDP program 'xskd_xdp' (id 9) attached through netlink");
    }

    #[test]
    fn unknown_interface_is_reported() {
        let err = ifindex_of("xskd-nonexist0", XdpOp::ResolveInterface).unwrap_err();
        assert!(matches!(err, XdpError::NoSuchInterface { .. }), "{err}");
        assert!(err.to_string().starts_with("xskd-nonexist0: no such network interface"));
    }
}
