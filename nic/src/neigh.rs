//! Neighbours (ARP for IPv4, NDP for IPv6) from the kernel's neighbour table, over rtnetlink.
//!
//! xskd keeps no neighbour table of its own. The kernel owns xskd's addresses (the XDP program
//! passes ARP and NDP to it, so it answers for them) and resolves the addresses xskd sends to.
//! For a backend nobody on the host talks to, xskd installs a **managed** entry
//! (`NTF_EXT_MANAGED`, Linux ≥ 5.16): the kernel resolves it at once and keeps re-probing it so
//! it stays REACHABLE. xskd then reads the MAC back.
//!
//! Owns: [`Neighbours`], a NETLINK_ROUTE socket in the network namespace of the thread that
//! opened it, and [`Resolver`], the guard the daemon holds for its list of backends.
//!
//! Guarantees:
//! * [`Neighbours::ensure_managed`] never modifies an existing entry (`NLM_F_EXCL`): a static,
//!   learned or foreign managed entry is reported as [`Created::Existing`] and left as it is.
//! * Entries xskd creates carry [`XSKD_NEIGH_PROTOCOL`] in `NDA_PROTOCOL`
//!   (`ip neigh` shows `proto 88`). [`Neighbours::remove_managed`] deletes an entry only if it
//!   is still managed and still carries that mark, so a foreign entry is never removed, not even
//!   one that replaced xskd's between creation and removal. Leftovers of an xskd that was
//!   killed are recognised by the same mark ([`Created::Adopted`]) and removed at the next
//!   normal shutdown.
//! * An entry the kernel would never resolve (it made it NOARP: a broadcast or multicast
//!   address) or does not keep managed (a kernel before 5.16) is deleted again at once and
//!   reported as an error, never handed out as a neighbour.
//! * A MAC is returned only from a state in which the kernel itself would use it
//!   ([`NudState::has_valid_lladdr`]); INCOMPLETE, FAILED and NONE entries are "unresolved".
//! * Errors name the operation, the interface (index and name), the address and the errno,
//!   with the kernel's extended-ack text ([`NeighError`]).
//!
//! **Control path only.** Every call is a blocking netlink exchange that allocates. The daemon's
//! control thread calls [`Resolver::refresh`] every few hundred milliseconds and hands the
//! changes to the lcores; lcores never call into this module.
//!
//! Kernel behaviour to know (measured on Linux 6.18 over veth, default neighbour parameters;
//! numbers from `nic/tests/neigh_veth.rs`):
//! * A new managed entry is probed at once. Over veth the answer is processed before the
//!   creating request returns: the entry is REACHABLE at the first read (~60 µs after the
//!   request was sent). On a wire it takes one round trip.
//! * An address nobody answers goes INCOMPLETE → FAILED after `mcast_solicit` (3) probes one
//!   `retrans_time` (1 s) apart (~3 s), and the kernel's managed work retries it every
//!   `interval_probe_time_ms` (5 s; the table-wide value, not the per-interface one): it
//!   cycles FAILED ↔ INCOMPLETE.
//! * A peer that changes its MAC and announces it (gratuitous ARP with `arp_notify`,
//!   unsolicited NA with `ndisc_notify`) is seen by the next read (the entry turns STALE with
//!   the new MAC), provided the entry is older than `locktime` (1 s).
//! * A peer that changes its MAC silently keeps being reported with the old MAC while the entry
//!   ages: REACHABLE for `base_reachable_time_ms` ± 50 % (15–45 s), DELAY (5 s), PROBE (3
//!   unicast probes to the old MAC, 1 s apart), FAILED (no MAC), and the next managed retry
//!   learns the new MAC. Measured 24–32 s on the old MAC, then 1.8–4.2 s unresolved.
//! * Carrier loss or the interface going down flushes every entry that is not PERMANENT,
//!   managed ones included, and the kernel does not recreate them: [`Resolver::refresh`] does.
//! * In a namespace that never had an IPv4 address (not even on `lo`), every new IPv4 entry is
//!   made NOARP with the broadcast address, for good; `ensure_managed` refuses it.

mod resolver;
mod wire;

use std::fmt;
use std::io;
use std::net::IpAddr;

use crate::netlink::{next_seq, NlError, Socket};

pub use resolver::{NeighChange, NeighChangeKind, Resolution, Resolved, Resolver, Unresolved};

/// `NDA_PROTOCOL` of the entries xskd creates (unassigned in `linux/rtnetlink.h`'s `RTPROT_*`
/// list; shown as `proto 88` by `ip neigh`).
pub const XSKD_NEIGH_PROTOCOL: u8 = 88;

/// How often creating an entry is retried when it appears or disappears concurrently.
const CREATE_ATTEMPTS: usize = 3;

/// The kernel's neighbour state (`NUD_*`), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NudState {
    /// `NUD_NONE`: just created, not probed yet.
    None,
    /// `NUD_INCOMPLETE`: probing, no answer yet.
    Incomplete,
    /// `NUD_REACHABLE`: confirmed recently.
    Reachable,
    /// `NUD_STALE`: resolved, not confirmed recently; still used.
    Stale,
    /// `NUD_DELAY`: stale and in use; a probe is due.
    Delay,
    /// `NUD_PROBE`: unicast probes to the known address under way.
    Probe,
    /// `NUD_FAILED`: resolution failed.
    Failed,
    /// `NUD_NOARP`: needs no resolution (multicast, point-to-point).
    NoArp,
    /// `NUD_PERMANENT`: static, configured by an administrator.
    Permanent,
    /// Any other bit pattern, as received.
    Unknown(u16),
}

impl NudState {
    /// Decodes `ndm_state`.
    pub fn from_bits(bits: u16) -> NudState {
        match bits {
            0x00 => NudState::None,
            0x01 => NudState::Incomplete,
            0x02 => NudState::Reachable,
            0x04 => NudState::Stale,
            0x08 => NudState::Delay,
            0x10 => NudState::Probe,
            0x20 => NudState::Failed,
            0x40 => NudState::NoArp,
            0x80 => NudState::Permanent,
            other => NudState::Unknown(other),
        }
    }

    /// The `NUD_*` value.
    pub fn bits(self) -> u16 {
        match self {
            NudState::None => 0x00,
            NudState::Incomplete => 0x01,
            NudState::Reachable => 0x02,
            NudState::Stale => 0x04,
            NudState::Delay => 0x08,
            NudState::Probe => 0x10,
            NudState::Failed => 0x20,
            NudState::NoArp => 0x40,
            NudState::Permanent => 0x80,
            NudState::Unknown(b) => b,
        }
    }

    /// Whether the kernel considers the link-layer address valid in this state (`NUD_VALID`:
    /// REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP) and sends to it.
    pub fn has_valid_lladdr(self) -> bool {
        const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
        self.bits() & NUD_VALID != 0 && !matches!(self, NudState::Unknown(_))
    }
}

impl fmt::Display for NudState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NudState::None => f.write_str("NONE"),
            NudState::Incomplete => f.write_str("INCOMPLETE"),
            NudState::Reachable => f.write_str("REACHABLE"),
            NudState::Stale => f.write_str("STALE"),
            NudState::Delay => f.write_str("DELAY"),
            NudState::Probe => f.write_str("PROBE"),
            NudState::Failed => f.write_str("FAILED"),
            NudState::NoArp => f.write_str("NOARP"),
            NudState::Permanent => f.write_str("PERMANENT"),
            NudState::Unknown(b) => write!(f, "0x{b:x}"),
        }
    }
}

/// One entry of the kernel's neighbour table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighEntry {
    /// Interface index (in the socket's namespace).
    pub ifindex: u32,
    /// The neighbour's address.
    pub ip: IpAddr,
    /// `NDA_LLADDR` when it is an Ethernet address; the kernel sends it only in valid states.
    pub mac: Option<[u8; 6]>,
    /// State.
    pub state: NudState,
    /// `NTF_EXT_MANAGED`: the kernel keeps it resolved.
    pub managed: bool,
    /// `NDA_PROTOCOL` (0 when absent); [`XSKD_NEIGH_PROTOCOL`] marks xskd's entries.
    pub protocol: u8,
}

impl NeighEntry {
    /// Whether the kernel learned this entry on its own (not static, not NOARP, not managed):
    /// see [`Neighbours::ensure_managed`].
    pub fn is_learned(&self) -> bool {
        !self.managed && !matches!(self.state, NudState::Permanent | NudState::NoArp)
    }

    /// The MAC to send to, if the state makes it usable.
    pub fn usable_mac(&self) -> Option<[u8; 6]> {
        self.mac.filter(|_| self.state.has_valid_lladdr())
    }

    /// Whether xskd created this entry (managed and marked with [`XSKD_NEIGH_PROTOCOL`]).
    pub fn is_xskd_managed(&self) -> bool {
        self.managed && self.protocol == XSKD_NEIGH_PROTOCOL
    }
}

/// What [`Neighbours::ensure_managed`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A managed entry was created; xskd removes it at shutdown.
    New,
    /// A managed entry with xskd's mark was already there (left by an xskd that did not shut
    /// down normally); it is treated as created by this one.
    Adopted,
    /// Someone else's entry (static, learned, or managed without xskd's mark), left untouched.
    Existing(NeighEntry),
}

impl Created {
    /// Whether the entry is xskd's to remove ([`Created::New`] or [`Created::Adopted`]).
    pub fn is_ours(&self) -> bool {
        !matches!(self, Created::Existing(_))
    }
}

/// What [`Neighbours::remove_managed`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// xskd's entry was deleted.
    Deleted,
    /// There was no entry.
    Absent,
    /// The entry is not xskd's (any more); it was left untouched.
    NotOurs(NeighEntry),
}

/// A neighbour operation, for error context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighOp {
    /// Creating a managed entry (`RTM_NEWNEIGH`).
    Create,
    /// Reading one entry (`RTM_GETNEIGH`).
    Get,
    /// Dumping an interface's entries (`RTM_GETNEIGH` dump).
    Dump,
    /// Deleting an entry (`RTM_DELNEIGH`).
    Delete,
}

impl fmt::Display for NeighOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NeighOp::Create => "create managed entry (RTM_NEWNEIGH)",
            NeighOp::Get => "get entry (RTM_GETNEIGH)",
            NeighOp::Dump => "dump entries (RTM_GETNEIGH)",
            NeighOp::Delete => "delete entry (RTM_DELNEIGH)",
        })
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum NeighError {
    /// Opening or configuring the NETLINK_ROUTE socket failed.
    #[error("neighbours: open NETLINK_ROUTE socket: {source}")]
    Socket {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request, or the exchange failed.
    #[error("neighbours: {op} for {} on {iface}: {detail}", target(.ip))]
    Request {
        /// What was being done.
        op: NeighOp,
        /// Interface index.
        ifindex: u32,
        /// `ifindex N (name)`, or `ifindex N` when the name could not be read.
        iface: String,
        /// The neighbour address; `None` for a dump.
        ip: Option<IpAddr>,
        /// The OS error number.
        errno: i32,
        /// The error text with the kernel's extended-ack message.
        detail: String,
    },
    /// The kernel created the entry without `NTF_EXT_MANAGED` (kernels before 5.16 ignore
    /// `NDA_FLAGS_EXT`); the entry was deleted again.
    #[error(
        "neighbours: {ip} on {iface}: the kernel does not keep managed neighbour entries \
         (NTF_EXT_MANAGED needs Linux 5.16 or later)"
    )]
    ManagedUnsupported {
        /// Interface index.
        ifindex: u32,
        /// `ifindex N (name)`.
        iface: String,
        /// The neighbour address.
        ip: IpAddr,
    },
    /// The kernel created the entry as NOARP: it will never resolve `ip` on this interface,
    /// because `ip` is a broadcast or multicast address there, or the namespace had no IPv4
    /// address at all when the entry was created (no local routing table yet: the kernel then
    /// classifies every IPv4 neighbour as broadcast, and the entry stays so). The entry was
    /// deleted again.
    #[error(
        "neighbours: {ip} on {iface}: the kernel does not resolve this address here (NOARP, lladdr {}); \
         is it a broadcast or multicast address, or has the network namespace no IPv4 address yet?",
        mac_text(.mac)
    )]
    NotResolvable {
        /// Interface index.
        ifindex: u32,
        /// `ifindex N (name)`.
        iface: String,
        /// The neighbour address.
        ip: IpAddr,
        /// The link-layer address the kernel chose (broadcast or a multicast mapping).
        mac: Option<[u8; 6]>,
    },
}

fn mac_text(mac: &Option<[u8; 6]>) -> String {
    mac.map_or_else(|| "none".to_string(), |m| crate::netns::format_mac(&m))
}

fn target(ip: &Option<IpAddr>) -> String {
    ip.map_or_else(|| "all entries".to_string(), |ip| ip.to_string())
}

impl NeighError {
    /// The OS error number behind this error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NeighError::Socket { source } => source.raw_os_error(),
            NeighError::Request { errno, .. } => Some(*errno),
            NeighError::ManagedUnsupported { .. } => Some(libc::EOPNOTSUPP),
            NeighError::NotResolvable { .. } => None,
        }
    }

    /// The operation that failed, for a refused request.
    pub fn op(&self) -> Option<NeighOp> {
        match self {
            NeighError::Request { op, .. } => Some(*op),
            _ => None,
        }
    }
}

/// The kernel's neighbour table of one network namespace, through a NETLINK_ROUTE socket
/// opened in the calling thread's namespace. Methods take `&mut self`: one exchange at a time.
#[derive(Debug)]
pub struct Neighbours {
    sock: Socket,
}

impl Neighbours {
    /// Opens the socket in the calling thread's network namespace; interface indexes given to
    /// the methods are that namespace's, whichever thread calls them later.
    pub fn open() -> Result<Neighbours, NeighError> {
        let sock = Socket::open().map_err(|source| NeighError::Socket { source })?;
        sock.set_strict_check().map_err(|source| NeighError::Socket { source })?;
        Ok(Neighbours { sock })
    }

    /// Makes sure an entry for `ip` exists on `ifindex`, creating a managed one (marked as
    /// xskd's) if there is none. A static (PERMANENT) entry, a NOARP one and someone else's
    /// managed entry are left as they are ([`Created::Existing`]). An entry the kernel merely
    /// *learned* is replaced by a managed one: xskd's frames bypass the kernel, so nothing
    /// would ever confirm a learned entry again, and its MAC would be trusted (STALE) with no
    /// re-probe however long the backend had been gone or had changed its MAC.
    pub fn ensure_managed(&mut self, ifindex: u32, ip: IpAddr) -> Result<Created, NeighError> {
        for _ in 0..CREATE_ATTEMPTS {
            let seq = next_seq();
            let req = wire::create_managed(seq, ifindex, ip, XSKD_NEIGH_PROTOCOL);
            match self.sock.transact(&req, seq, None) {
                Ok(_) => match self.get(ifindex, ip)? {
                    // Replaced by someone else between the two requests: theirs now.
                    Some(e) if e.protocol != XSKD_NEIGH_PROTOCOL => return Ok(Created::Existing(e)),
                    Some(e) if !e.managed => return Err(self.undo(ifindex, ip, Undo::NotManaged)),
                    Some(e) if e.state == NudState::NoArp => {
                        return Err(self.undo(ifindex, ip, Undo::NoArp { mac: e.mac }));
                    }
                    Some(_) => return Ok(Created::New),
                    None => {} // flushed right away (link went down): try again
                },
                Err(e) if e.errno == libc::EEXIST => match self.get(ifindex, ip)? {
                    Some(e) if e.is_xskd_managed() => return Ok(Created::Adopted),
                    Some(e) if e.is_learned() => {
                        tracing::info!(ifindex, %ip, state = %e.state, "learned neighbour entry replaced by a managed one");
                        self.delete(ifindex, ip)?; // then create it again, managed
                    }
                    Some(e) => return Ok(Created::Existing(e)),
                    None => {} // deleted meanwhile: try again
                },
                Err(e) => return Err(self.fail(NeighOp::Create, ifindex, Some(ip), &e)),
            }
        }
        let e = NlError { errno: libc::EAGAIN, msg: Some("the entry kept appearing and disappearing".into()) };
        Err(self.fail(NeighOp::Create, ifindex, Some(ip), &e))
    }

    /// Deletes the entry for `ip` on `ifindex` if it is xskd's (managed, with xskd's mark);
    /// any other entry is left as it is.
    pub fn remove_managed(&mut self, ifindex: u32, ip: IpAddr) -> Result<Removed, NeighError> {
        match self.get(ifindex, ip)? {
            None => Ok(Removed::Absent),
            Some(e) if !e.is_xskd_managed() => Ok(Removed::NotOurs(e)),
            Some(_) => self.delete(ifindex, ip),
        }
    }

    fn delete(&mut self, ifindex: u32, ip: IpAddr) -> Result<Removed, NeighError> {
        let seq = next_seq();
        match self.sock.transact(&wire::delete(seq, ifindex, ip), seq, None) {
            Ok(_) => Ok(Removed::Deleted),
            Err(e) if e.errno == libc::ENOENT => Ok(Removed::Absent),
            Err(e) => Err(self.fail(NeighOp::Delete, ifindex, Some(ip), &e)),
        }
    }

    /// The entry for `ip` on `ifindex`, whatever its state; `None` if there is none.
    pub fn get(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<NeighEntry>, NeighError> {
        let seq = next_seq();
        match self.sock.transact(&wire::get(seq, ifindex, ip), seq, Some(wire::RTM_NEWNEIGH)) {
            Ok(Some(body)) => match wire::parse_entry(&body) {
                Some(e) => Ok(Some(e)),
                None => {
                    let e = NlError { errno: libc::EBADMSG, msg: Some("undecodable RTM_NEWNEIGH reply".into()) };
                    Err(self.fail(NeighOp::Get, ifindex, Some(ip), &e))
                }
            },
            Ok(None) => Ok(None),
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(self.fail(NeighOp::Get, ifindex, Some(ip), &e)),
        }
    }

    /// The MAC of `ip` on `ifindex` if the kernel has it in a usable state; `None` when there
    /// is no entry or it is unresolved (NONE, INCOMPLETE, FAILED).
    pub fn lookup(&mut self, ifindex: u32, ip: IpAddr) -> Result<Option<[u8; 6]>, NeighError> {
        Ok(self.get(ifindex, ip)?.and_then(|e| e.usable_mac()))
    }

    /// Every IPv4 and IPv6 entry of `ifindex`, in the kernel's order, NOARP ones included.
    pub fn dump(&mut self, ifindex: u32) -> Result<Vec<NeighEntry>, NeighError> {
        let bodies = self
            .sock
            .dump(|seq| wire::dump(seq, ifindex), wire::RTM_NEWNEIGH)
            .map_err(|e| self.fail(NeighOp::Dump, ifindex, None, &e))?;
        // The kernel filters by interface; the check here keeps that a guarantee of this call.
        Ok(bodies.iter().filter_map(|b| wire::parse_entry(b)).filter(|e| e.ifindex == ifindex).collect())
    }

    fn iface(&self, ifindex: u32) -> String {
        match self.sock.ifname(ifindex) {
            Some(name) => format!("ifindex {ifindex} ({name})"),
            None => format!("ifindex {ifindex}"),
        }
    }

    fn fail(&self, op: NeighOp, ifindex: u32, ip: Option<IpAddr>, e: &NlError) -> NeighError {
        NeighError::Request { op, ifindex, iface: self.iface(ifindex), ip, errno: e.errno, detail: e.to_string() }
    }

    /// Deletes the entry just created (it is not managed, so `remove_managed` would refuse it)
    /// and returns the error that explains why.
    fn undo(&mut self, ifindex: u32, ip: IpAddr, why: Undo) -> NeighError {
        if let Err(e) = self.delete(ifindex, ip) {
            tracing::warn!(error = %e, "could not delete the neighbour entry just created");
        }
        let iface = self.iface(ifindex);
        match why {
            Undo::NotManaged => NeighError::ManagedUnsupported { ifindex, iface, ip },
            Undo::NoArp { mac } => NeighError::NotResolvable { ifindex, iface, ip, mac },
        }
    }
}

/// Why a just-created entry is deleted again.
enum Undo {
    NotManaged,
    NoArp { mac: Option<[u8; 6]> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nud_states_round_trip_and_validity_matches_the_kernel() {
        // NUD_VALID = PERMANENT|NOARP|REACHABLE|PROBE|STALE|DELAY (include/net/neighbour.h).
        let valid = [NudState::Reachable, NudState::Stale, NudState::Delay, NudState::Probe, NudState::NoArp];
        for bit in 0..8 {
            let s = NudState::from_bits(1 << bit);
            assert_eq!(s.bits(), 1 << bit);
            assert!(!matches!(s, NudState::Unknown(_)));
            let want = valid.contains(&s) || s == NudState::Permanent;
            assert_eq!(s.has_valid_lladdr(), want, "{s}");
        }
        assert_eq!(NudState::from_bits(0), NudState::None);
        assert!(!NudState::None.has_valid_lladdr());
        assert_eq!(NudState::from_bits(0x22), NudState::Unknown(0x22));
        assert!(!NudState::Unknown(0x22).has_valid_lladdr());
    }

    #[test]
    fn usable_mac_needs_a_valid_state_and_an_address() {
        let mut e = NeighEntry {
            ifindex: 1,
            ip: "198.18.0.1".parse().expect("ip"),
            mac: Some([2, 0, 0, 0, 0, 1]),
            state: NudState::Stale,
            managed: false,
            protocol: 0,
        };
        assert_eq!(e.usable_mac(), Some([2, 0, 0, 0, 0, 1]));
        e.state = NudState::Failed;
        assert_eq!(e.usable_mac(), None);
        e.state = NudState::Reachable;
        e.mac = None;
        assert_eq!(e.usable_mac(), None);
    }

    #[test]
    fn only_marked_managed_entries_are_xskds() {
        let e = |managed, protocol| NeighEntry {
            ifindex: 1,
            ip: "198.18.0.1".parse().expect("ip"),
            mac: None,
            state: NudState::Incomplete,
            managed,
            protocol,
        };
        assert!(e(true, XSKD_NEIGH_PROTOCOL).is_xskd_managed());
        assert!(!e(true, 0).is_xskd_managed(), "someone's `ip neigh add … managed`");
        assert!(!e(false, XSKD_NEIGH_PROTOCOL).is_xskd_managed(), "replaced by a static entry");
    }

    #[test]
    fn request_error_names_everything() {
        let e = NeighError::Request {
            op: NeighOp::Create,
            ifindex: 7,
            iface: "ifindex 7 (d0)".into(),
            ip: Some("198.18.0.9".parse().expect("ip")),
            errno: libc::ENODEV,
            detail: io::Error::from_raw_os_error(libc::ENODEV).to_string(),
        };
        let s = e.to_string();
        assert!(s.contains("create managed entry") && s.contains("198.18.0.9") && s.contains("ifindex 7 (d0)"), "{s}");
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert_eq!(e.op(), Some(NeighOp::Create));
    }
}
