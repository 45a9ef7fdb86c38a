//! The app interface: [`App`], its per-burst context [`Ctx`], and what it decides per frame
//! ([`Verdict`], [`DropReason`]).
//!
//! # The app model
//! An app *instance* (a `[[app]]` section, or a queue's own instance) runs as one **shard** on
//! every lcore that polls one of its queues. The shard on an lcore owns all of the instance's
//! (port, queue)s there — for a NAT, the client side and the backend side — and whatever state
//! it keeps (a flow-table shard, a port range). Shards of one instance never share memory; a
//! frame that belongs to another shard's state (a reply the NIC hashed to another queue) is
//! given [`Verdict::Handoff`] and arrives at that shard's [`App::process`] through a bounded
//! ring, marked by [`Ingress::handed_off`]; a full ring is a counted `handoff_full` drop.
//!
//! An app is called once per received burst ([`App::process`]), with where the burst came in
//! ([`Ingress`]), and must give every frame a verdict: transmit on one of the lcore's TX
//! targets, hand it to another shard, or drop it with a named reason. It must not block,
//! allocate, log or make syscalls. Frames never outlive the call inside app state: an app that
//! needs bytes later (TCP reassembly) copies them into its own pre-allocated memory. Apps that
//! originate traffic (generators, protocol timers) do so in [`App::produce`] and
//! [`App::on_timer`], emitting frames allocated from [`Ctx::pool`].

use nic::{Frame, FrameBuf, PoolCache};

use crate::batch::Batch;
use crate::time::Instant;

/// Index of a TX target of the lcore (a local port queue, or a handoff ring to another lcore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxPort(pub u8);

/// A port of the plan (its index), as seen by apps: where a burst came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// One shard of an app instance: its index among the lcores the instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard(pub u16);

/// Where the frames of one [`App::process`] call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingress {
    /// The port the frames were received on.
    pub port: PortId,
    /// The shard that handed them over, if they did not come from one of this shard's queues.
    pub handed_off: Option<Shard>,
}

impl Ingress {
    /// Frames received from `port` by this shard itself.
    pub const fn local(port: PortId) -> Ingress {
        Ingress { port, handed_off: None }
    }
}

/// Why a frame was dropped. Every reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The app left the frame without a verdict (an app bug; counted, never silent).
    NoVerdict = 0,
    /// Headers malformed or truncated.
    Malformed,
    /// A protocol the app does not handle.
    Unsupported,
    /// IP TTL/hop limit reached zero.
    TtlExceeded,
    /// No route, peer or destination for the frame.
    NoRoute,
    /// No flow-table entry and none may be created.
    NoFlow,
    /// Flow table full.
    TableFull,
    /// Frame pool exhausted.
    PoolEmpty,
    /// TX ring (or staging) full: the output could not keep up.
    TxRingFull,
    /// Handoff ring to another lcore (TX target or app shard) full.
    HandoffFull,
    /// Policy (filter, ACL) said drop.
    Filtered,
    /// Checksum verification failed.
    BadChecksum,
    /// Rate limiter said drop.
    RateLimited,
    /// The app consumed the frame on purpose (e.g. a sink, or a receiver that only counts).
    Consumed,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 14;

    /// All reasons, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::NoVerdict,
        DropReason::Malformed,
        DropReason::Unsupported,
        DropReason::TtlExceeded,
        DropReason::NoRoute,
        DropReason::NoFlow,
        DropReason::TableFull,
        DropReason::PoolEmpty,
        DropReason::TxRingFull,
        DropReason::HandoffFull,
        DropReason::Filtered,
        DropReason::BadChecksum,
        DropReason::RateLimited,
        DropReason::Consumed,
    ];

    /// Counter name (snake case, stable: used in logs, JSON and metrics).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoVerdict => "no_verdict",
            DropReason::Malformed => "malformed",
            DropReason::Unsupported => "unsupported",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoRoute => "no_route",
            DropReason::NoFlow => "no_flow",
            DropReason::TableFull => "table_full",
            DropReason::PoolEmpty => "pool_empty",
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::HandoffFull => "handoff_full",
            DropReason::Filtered => "filtered",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::RateLimited => "rate_limited",
            DropReason::Consumed => "consumed",
        }
    }
}

/// What happens to a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Free it and count the reason.
    Drop(DropReason),
    /// Transmit it on a TX target of the lcore.
    Tx(TxPort),
    /// Give it to another shard of the same app instance (its `process` sees it with
    /// [`Ingress::handed_off`] set). A frame that was itself handed over cannot be handed on:
    /// it is dropped as `no_route`, as is a shard the instance does not have.
    Handoff(Shard),
}

/// Drop counters, one per reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl DropCounters {
    /// Adds `n` drops for `r`.
    #[inline]
    pub fn add(&mut self, r: DropReason, n: u64) {
        self.0[r as usize] += n;
    }

    /// Count for `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    /// Sum over all reasons except `Consumed` (which is not a loss).
    pub fn lost(&self) -> u64 {
        self.0.iter().enumerate().filter(|(i, _)| *i != DropReason::Consumed as usize).map(|(_, v)| v).sum()
    }

    /// Non-zero counters with their names.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.iter().map(move |r| (r.name(), self.get(*r))).filter(|(_, v)| *v > 0)
    }
}

/// What an app may touch during a call.
pub struct Ctx<'a, 'u> {
    /// Time of this loop iteration.
    pub now: Instant,
    /// The lcore's frame cache (allocate frames to send; free frames you consume).
    pub pool: &'a mut PoolCache<'u>,
    /// The lcore's drop counters.
    pub drops: &'a mut DropCounters,
    pub(crate) staging: &'a mut [FrameBuf<'u>],
}

impl std::fmt::Debug for Ctx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("now", &self.now).finish()
    }
}

impl<'a, 'u> Ctx<'a, 'u> {
    /// Builds a context over caller-owned parts (tests and benchmarks drive apps this way).
    pub fn new(
        now: Instant,
        pool: &'a mut PoolCache<'u>,
        drops: &'a mut DropCounters,
        staging: &'a mut [FrameBuf<'u>],
    ) -> Ctx<'a, 'u> {
        Ctx { now, pool, drops, staging }
    }

    /// Queues a frame the app built for transmission on `port`; gives it back when that
    /// target's staging is full (the caller frees it or keeps it for later).
    #[inline]
    pub fn emit(&mut self, port: TxPort, f: Frame<'u>) -> Result<(), Frame<'u>> {
        match self.staging.get_mut(port.0 as usize) {
            Some(s) => s.push(f),
            None => Err(f),
        }
    }

    /// Free staging slots for `port` (how many frames `emit` will accept now).
    #[inline]
    pub fn tx_room(&self, port: TxPort) -> usize {
        self.staging.get(port.0 as usize).map_or(0, |s| s.remaining())
    }

    /// Frees a frame and counts it under `reason`.
    #[inline]
    pub fn drop_frame(&mut self, f: Frame<'u>, reason: DropReason) {
        self.drops.add(reason, 1);
        self.pool.free(f);
    }

    /// Allocates up to `n` new frames (length 0) from the pool straight into `port`'s staging,
    /// as many as the pool has and the staging takes (`alloc_burst`), and calls `fill(i, frame)`
    /// on each in order so the app writes the packet and sets its length. Returns how many were
    /// staged (0 for an unknown target). The generator's fast path: one bulk pop from the cache,
    /// no per-frame `emit` check.
    #[inline]
    pub fn emit_new(&mut self, port: TxPort, n: usize, mut fill: impl FnMut(usize, &mut Frame<'u>)) -> usize {
        let Some(s) = self.staging.get_mut(port.0 as usize) else { return 0 };
        let start = s.len();
        let got = self.pool.alloc_burst(s, n, 0);
        for (i, f) in s.as_mut_slice()[start..].iter_mut().enumerate() {
            fill(i, f);
        }
        got
    }

    /// Number of TX targets of this lcore.
    pub fn tx_targets(&self) -> usize {
        self.staging.len()
    }
}

/// An app shard: one per (app instance, lcore), owning the instance's queues on that lcore and
/// called by that lcore only.
pub trait App<'u> {
    /// Handles one burst that came in at `from`: set a verdict for every frame of `batch`.
    fn process(&mut self, cx: &mut Ctx<'_, 'u>, from: Ingress, batch: &mut Batch<'u>);

    /// Called once per loop iteration whether or not anything was received; generators emit
    /// frames here (at most [`Ctx::tx_room`] per target). Bounded work.
    #[inline]
    fn produce(&mut self, _cx: &mut Ctx<'_, 'u>) {}

    /// Earliest time [`App::on_timer`] is wanted.
    #[inline]
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Timer callback (protocol timers, rate-control ticks). Bounded work.
    fn on_timer(&mut self, _cx: &mut Ctx<'_, 'u>) {}

    /// Whether the app has finished its job (a generator that sent its count). The lcore stops
    /// when every app on it is done. Long-running apps never are.
    fn is_done(&self) -> bool {
        false
    }

    /// Called once when the lcore stops, after its TX drain and before its final statistics:
    /// flush what the app buffered off the hot path (a capture file). May do I/O.
    fn finish(&mut self) {}

    /// App counters, appended to `out` as (name, value). Called off the hot path, when the
    /// lcore publishes its statistics.
    fn report(&self, _out: &mut Vec<(&'static str, u64)>) {}
}
