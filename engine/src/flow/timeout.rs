//! Timeout classes and their configurable idle timeouts, and the table's compact clock.
//!
//! Each entry carries a [`TimeoutClass`]; the class's timeout in [`FlowTimeouts`] is how long the
//! entry may stay idle (no [`touch`](super::FlowTable::touch)) before the expiry sweep hands it
//! back. The caller moves a TCP flow between classes as it sees the handshake and the close
//! ([`set_class`](super::FlowTable::set_class)).
//!
//! Inside the table, times are `u32` *ticks* of 2^20 ns (1.048576 ms), the entry's last-seen
//! time is 4 bytes: ticks wrap after 2^32 ticks (52 days), and ages are compared with wrapping
//! arithmetic, valid up to 2^31 ticks (26 days). Timeouts are capped at [`MAX_TIMEOUT`].

use std::time::Duration;

use crate::time::Instant;

/// How long an entry may be idle before it expires; chosen by the caller per flow and changed
/// as the flow's state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TimeoutClass {
    /// TCP, handshake not complete (SYN seen, no ACK of the SYN-ACK yet). Short, so a flood of
    /// spoofed SYNs ties up entries only briefly.
    HalfOpen,
    /// TCP, handshake complete.
    Established,
    /// TCP after a FIN or an RST.
    Closing,
    /// UDP.
    Udp,
    /// Any other protocol (ICMP, GRE, ESP, …).
    Other,
    /// Never expires on its own: the owner removes it (e.g. the reverse entry of a NAT pair,
    /// removed when its forward entry expires). The sweep skips it and an insert never
    /// reclaims it.
    Permanent,
}

impl TimeoutClass {
    /// Number of classes.
    pub const COUNT: usize = 6;
    /// Every class, in declaration order.
    pub const ALL: [TimeoutClass; TimeoutClass::COUNT] = [
        TimeoutClass::HalfOpen,
        TimeoutClass::Established,
        TimeoutClass::Closing,
        TimeoutClass::Udp,
        TimeoutClass::Other,
        TimeoutClass::Permanent,
    ];

    /// Lower-case name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            TimeoutClass::HalfOpen => "half_open",
            TimeoutClass::Established => "established",
            TimeoutClass::Closing => "closing",
            TimeoutClass::Udp => "udp",
            TimeoutClass::Other => "other",
            TimeoutClass::Permanent => "permanent",
        }
    }
}

/// Longest configurable timeout: 2^30 ticks, about 13 days (longer values are clamped to it).
/// Use [`TimeoutClass::Permanent`] for entries that must not expire.
pub const MAX_TIMEOUT: Duration = Duration::from_nanos(1 << (30 + TICK_SHIFT));

/// Idle timeouts per class (every class but [`TimeoutClass::Permanent`]).
///
/// The defaults follow Linux IPVS, the kernel's L4 load balancer (`net/netfilter/ipvs/`
/// `ip_vs_proto_tcp.c` `tcp_timeouts[]`, `ip_vs_proto_udp.c` `udp_timeouts[]`), with the
/// netfilter conntrack sysctls (`Documentation/networking/nf_conntrack-sysctl.rst`) for what
/// IPVS does not cover, except for the half-open timeout, shortened for SYN-flood resistance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimeouts {
    /// [`TimeoutClass::HalfOpen`]. Default 5 s. IPVS keeps SYN_RECV 60 s and conntrack
    /// `syn_recv` 60 s / `syn_sent` 120 s; 5 s covers a client's first SYN retransmissions
    /// (RFC 6298 initial RTO 1 s: SYNs at 0, 1 and 3 s) while a spoofed-SYN flood at R
    /// packets/s holds only about 5·R entries.
    pub half_open: Duration,
    /// [`TimeoutClass::Established`]. Default 900 s: IPVS ESTABLISHED (15 min). (conntrack's
    /// `established` is 5 days, a firewall's choice, not a load balancer's.)
    pub established: Duration,
    /// [`TimeoutClass::Closing`]. Default 10 s: IPVS CLOSE and conntrack `close` (10 s).
    /// IPVS FIN_WAIT and TIME_WAIT are 120 s; a half-closed flow that still carries data stays
    /// alive through [`touch`](super::FlowTable::touch), so only a silent one is cut short.
    pub closing: Duration,
    /// [`TimeoutClass::Udp`]. Default 300 s: IPVS UDP (5 min). (conntrack: 30 s unreplied,
    /// 120 s `udp_timeout_stream`.)
    pub udp: Duration,
    /// [`TimeoutClass::Other`]. Default 600 s: conntrack `generic_timeout`.
    pub other: Duration,
}

impl Default for FlowTimeouts {
    fn default() -> Self {
        FlowTimeouts {
            half_open: Duration::from_secs(5),
            established: Duration::from_secs(900),
            closing: Duration::from_secs(10),
            udp: Duration::from_secs(300),
            other: Duration::from_secs(600),
        }
    }
}

impl FlowTimeouts {
    /// The same timeout for every class (tests).
    pub fn uniform(d: Duration) -> FlowTimeouts {
        FlowTimeouts { half_open: d, established: d, closing: d, udp: d, other: d }
    }

    /// Timeout of `class`; `None` for [`TimeoutClass::Permanent`].
    pub fn get(&self, class: TimeoutClass) -> Option<Duration> {
        match class {
            TimeoutClass::HalfOpen => Some(self.half_open),
            TimeoutClass::Established => Some(self.established),
            TimeoutClass::Closing => Some(self.closing),
            TimeoutClass::Udp => Some(self.udp),
            TimeoutClass::Other => Some(self.other),
            TimeoutClass::Permanent => None,
        }
    }

    /// The timeouts in ticks, indexed by class; [`NEVER`] for `Permanent`.
    pub(super) fn ticks(&self) -> [u32; TimeoutClass::COUNT] {
        TimeoutClass::ALL.map(|c| self.get(c).map_or(NEVER, timeout_ticks))
    }
}

/// log2 of the tick length in nanoseconds.
pub(super) const TICK_SHIFT: u32 = 20;
/// Timeout ticks of a class that never expires.
pub(super) const NEVER: u32 = u32::MAX;

/// `t` in ticks (wrapping after 52 days).
#[inline]
pub(super) fn tick(t: Instant) -> u32 {
    (t.as_nanos() >> TICK_SHIFT) as u32
}

/// `d` rounded up to whole ticks, capped at 2^30.
fn timeout_ticks(d: Duration) -> u32 {
    let ns = d.min(MAX_TIMEOUT).as_nanos() as u64;
    ns.div_ceil(1 << TICK_SHIFT) as u32
}

/// Whether an entry last seen at tick `last` with a timeout of `timeout` ticks has expired at
/// tick `now`: more than `timeout` whole ticks between the two tick numbers. Because `timeout`
/// is the duration rounded up to ticks and the true times lie anywhere inside their ticks, this
/// means idle for more than the configured duration, and it holds once the entry has been idle
/// for the duration plus 2 ticks (2.1 ms). An entry seen "in the future" (a caller's clock
/// stepping back) is not expired.
#[inline]
pub(super) fn is_expired(last: u32, timeout: u32, now: u32) -> bool {
    let age = now.wrapping_sub(last);
    timeout != NEVER && age <= i32::MAX as u32 && age > timeout
}

/// Age in nanoseconds from tick `last` to tick `now` (0 if `last` is later), to within a tick.
pub(super) fn age(last: u32, now: u32) -> Duration {
    let age = now.wrapping_sub(last);
    let age = if age > i32::MAX as u32 { 0 } else { age };
    Duration::from_nanos(u64::from(age) << TICK_SHIFT)
}
