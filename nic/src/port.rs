//! Ports: the [`Port`] trait and its implementations.
//!
//! * [`RingPort`]: the four AF_XDP rings of one (interface, queue), either on a real AF_XDP
//!   socket ([`RingPort::open_xsk`]) or on heap rings driven by a simulated kernel
//!   ([`crate::sim`]). Both run the same ring code; only the wakeup path differs.
//! * [`NullPort`]: DPDK's `net_null` — RX hands out frames taken from the pool (contents
//!   untouched), TX returns them to the pool. Measures the engine with no kernel in the path.
//! * [`AnyPort`]: the enum the engine stores, so the per-burst dispatch is one `match`, not a
//!   virtual call.
//! * [`reclaim`]: after a run, the chunks stopped ports' rings still hold go back to the pool.
//!
//! Every port method does bounded work: at most one burst in or out, at most one ring's worth
//! of completions reaped, at most one wakeup syscall.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::frame::FrameBuf;
use crate::pool::PoolCache;
use crate::ring::{CompRing, FillRing, RxRing, TxRing};
use crate::sys::{self, Kick};
use crate::umem::Umem;
use crate::xsk::{self, XdpStatistics, XskConfig, XskError, XskSocket};

mod reclaim;
pub use reclaim::{reclaim, Reclaimed};

/// Per-port counters, owned by the lcore that drives the port (plain integers; the engine
/// publishes copies off the hot path).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames posted for transmission.
    pub tx_packets: u64,
    /// Bytes posted for transmission.
    pub tx_bytes: u64,
    /// TX wakeups issued (`sendto`).
    pub tx_kicks: u64,
    /// TX wakeups answered EAGAIN/EBUSY/ENOBUFS (kernel busy; retried later).
    pub tx_kicks_busy: u64,
    /// TX wakeups that failed otherwise.
    pub tx_kick_errors: u64,
    /// RX/fill wakeups issued (`recvfrom`, also busy-poll drives).
    pub rx_wakeups: u64,
    /// RX wakeups that failed with an unexpected errno.
    pub rx_wakeup_errors: u64,
    /// Chunks posted to the fill ring.
    pub fill_posted: u64,
    /// Times the fill ring could not be topped up because the pool was empty.
    pub fill_short: u64,
    /// Completions reaped.
    pub comp_reaped: u64,
    /// RX descriptors pointing outside the UMEM (never expected; skipped).
    pub rx_invalid_descs: u64,
    /// Polls that returned no frame.
    pub rx_empty_polls: u64,
}

/// A packet port, as seen by one lcore.
pub trait Port<'u> {
    /// Receives up to `max` frames (bounded by `out`'s free slots) into `out`; returns how many.
    fn rx_burst(&mut self, cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>, max: usize) -> usize;
    /// Posts frames from the front of `frames` for transmission; the ones that do not fit stay
    /// in `frames` (the caller decides: retry or drop). Returns how many were posted.
    fn tx_burst(&mut self, cache: &mut PoolCache<'u>, frames: &mut FrameBuf<'u>) -> usize;
    /// Makes posted frames go out: at most one wakeup syscall, and only if the kernel asks.
    fn flush(&mut self);
    /// Reaps completions into `cache` and tops the fill ring up from it. Bounded work.
    fn maintain(&mut self, cache: &mut PoolCache<'u>);
    /// Called when the lcore found nothing to do: drive busy polling or the RX wakeup.
    fn idle_kick(&mut self);
    /// Counters.
    fn counters(&self) -> &PortCounters;
    /// The fd to `poll()` on when idle (None for in-memory ports).
    fn poll_fd(&self) -> Option<RawFd>;
    /// Kernel statistics (a syscall; off the hot path). None for in-memory ports.
    fn xdp_statistics(&self) -> Option<XdpStatistics>;
}

/// Wakeup path of a ring port.
enum Backend {
    Xsk(XskSocket),
    Sim(Arc<SimKicks>),
}

/// Kick counters shared between a simulated port and its simulated kernel.
#[derive(Debug, Default)]
pub struct SimKicks {
    /// TX kicks issued by the port.
    pub tx: AtomicU64,
    /// RX kicks issued by the port.
    pub rx: AtomicU64,
}

/// The rings of one (interface, queue) plus their wakeup path.
pub struct RingPort<'u> {
    umem: &'u Umem,
    fill: FillRing,
    comp: CompRing,
    rx: RxRing,
    tx: TxRing,
    backend: Backend,
    need_wakeup: bool,
    busy_poll: bool,
    /// Frames submitted since the last kick.
    pending: u32,
    /// The last kick left descriptors in the TX ring (copy mode sends ≤ 32 per kick).
    backlog: bool,
    counters: PortCounters,
}

impl std::fmt::Debug for RingPort<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RingPort");
        match &self.backend {
            Backend::Xsk(s) => d.field("socket", s),
            Backend::Sim(_) => d.field("socket", &"simulated"),
        };
        d.finish()
    }
}

impl<'u> RingPort<'u> {
    /// Opens an AF_XDP socket on `cfg.ifname`/`cfg.queue` over `umem` (fill ring primed from
    /// `cache`). Register [`RingPort::socket`] in the XDP program's XSKMAP afterwards.
    pub fn open_xsk(umem: &'u Umem, cache: &mut PoolCache<'u>, cfg: &XskConfig) -> Result<RingPort<'u>, XskError> {
        let p = xsk::open(umem, cache, cfg)?;
        let need_wakeup = p.socket.need_wakeup();
        Ok(RingPort {
            umem,
            fill: p.fill,
            comp: p.comp,
            rx: p.rx,
            tx: p.tx,
            backend: Backend::Xsk(p.socket),
            need_wakeup,
            busy_poll: cfg.busy_poll.is_some(),
            pending: 0,
            backlog: false,
            counters: PortCounters::default(),
        })
    }

    pub(crate) fn from_sim(
        umem: &'u Umem,
        rings: (FillRing, CompRing, RxRing, TxRing),
        kicks: Arc<SimKicks>,
        need_wakeup: bool,
    ) -> RingPort<'u> {
        let (fill, comp, rx, tx) = rings;
        RingPort {
            umem,
            fill,
            comp,
            rx,
            tx,
            backend: Backend::Sim(kicks),
            need_wakeup,
            busy_poll: false,
            pending: 0,
            backlog: false,
            counters: PortCounters::default(),
        }
    }

    /// The AF_XDP socket (None for a simulated port).
    pub fn socket(&self) -> Option<&XskSocket> {
        match &self.backend {
            Backend::Xsk(s) => Some(s),
            Backend::Sim(_) => None,
        }
    }

    /// The socket fd, for the XSKMAP.
    pub fn socket_fd(&self) -> Option<BorrowedFd<'_>> {
        self.socket().map(|s| s.as_fd())
    }

    /// Frames currently posted on the fill ring (owned by the kernel).
    pub fn fill_level(&mut self) -> u32 {
        self.fill.size() - self.fill.free_slots()
    }

    fn kick_tx(&mut self) {
        self.counters.tx_kicks += 1;
        match &self.backend {
            Backend::Xsk(s) => match sys::kick_tx(s.raw_fd()) {
                Kick::Done => {}
                Kick::Busy => self.counters.tx_kicks_busy += 1,
                Kick::Failed(_) => self.counters.tx_kick_errors += 1,
            },
            Backend::Sim(k) => {
                k.tx.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn kick_rx(&mut self) {
        self.counters.rx_wakeups += 1;
        match &self.backend {
            Backend::Xsk(s) => {
                if let Kick::Failed(_) = sys::kick_rx(s.raw_fd()) {
                    self.counters.rx_wakeup_errors += 1;
                }
            }
            Backend::Sim(k) => {
                k.rx.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'u> Port<'u> for RingPort<'u> {
    #[inline]
    fn rx_burst(&mut self, _cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>, max: usize) -> usize {
        let (n, bytes) = self.rx.recv_burst(self.umem, out, max as u32);
        if n == 0 {
            self.counters.rx_empty_polls += 1;
            if self.need_wakeup && self.fill.needs_wakeup() {
                self.kick_rx();
            }
            return 0;
        }
        self.counters.rx_packets += n as u64;
        self.counters.rx_bytes += bytes;
        n as usize
    }

    #[inline]
    fn tx_burst(&mut self, _cache: &mut PoolCache<'u>, frames: &mut FrameBuf<'u>) -> usize {
        let (n, bytes) = self.tx.send_burst(frames);
        self.pending += n;
        self.counters.tx_packets += n as u64;
        self.counters.tx_bytes += bytes;
        n as usize
    }

    #[inline]
    fn flush(&mut self) {
        if self.pending == 0 {
            // Nothing new: kick again only if the last kick left descriptors unsent.
            if !self.backlog || self.tx.outstanding() == 0 {
                self.backlog = false;
                return;
            }
        }
        self.pending = 0;
        if self.need_wakeup && !self.tx.needs_wakeup() {
            self.backlog = false;
            return;
        }
        self.kick_tx();
        self.backlog = self.tx.outstanding() > 0;
    }

    #[inline]
    fn maintain(&mut self, cache: &mut PoolCache<'u>) {
        let reaped = self.comp.reap(cache, self.comp.size());
        self.counters.comp_reaped += reaped as u64;
        let free = self.fill.free_slots();
        if free > 0 {
            let posted = self.fill.refill(cache, free);
            self.counters.fill_posted += posted as u64;
            if posted < free {
                // The pool ran dry before the fill ring was full: the kernel may soon have no
                // buffer to receive into (see rx_fill_ring_empty_descs).
                self.counters.fill_short += 1;
            }
        }
        self.counters.rx_invalid_descs = self.rx.invalid_descs();
    }

    #[inline]
    fn idle_kick(&mut self) {
        if self.busy_poll || (self.need_wakeup && self.fill.needs_wakeup()) {
            self.kick_rx();
        }
    }

    fn counters(&self) -> &PortCounters {
        &self.counters
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.socket().map(|s| s.as_fd().as_raw_fd())
    }

    fn xdp_statistics(&self) -> Option<XdpStatistics> {
        self.socket().and_then(|s| s.statistics().ok())
    }
}

/// DPDK `net_null`: RX hands out `len`-byte frames from the pool without touching their
/// contents; TX returns frames to the pool.
#[derive(Debug)]
pub struct NullPort {
    len: u32,
    counters: PortCounters,
}

impl NullPort {
    /// A null port whose RX frames are `len` bytes long.
    pub fn new(len: u32) -> NullPort {
        NullPort { len, counters: PortCounters::default() }
    }
}

impl<'u> Port<'u> for NullPort {
    #[inline]
    fn rx_burst(&mut self, cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>, max: usize) -> usize {
        let n = cache.alloc_burst(out, max, self.len);
        self.counters.rx_packets += n as u64;
        self.counters.rx_bytes += n as u64 * self.len as u64;
        if n == 0 {
            self.counters.rx_empty_polls += 1;
        }
        n
    }

    #[inline]
    fn tx_burst(&mut self, cache: &mut PoolCache<'u>, frames: &mut FrameBuf<'u>) -> usize {
        let n = frames.len();
        let mut bytes = 0u64;
        for f in frames.iter() {
            bytes += f.len() as u64;
        }
        cache.free_burst(frames);
        self.counters.tx_packets += n as u64;
        self.counters.tx_bytes += bytes;
        n
    }

    #[inline]
    fn flush(&mut self) {}

    #[inline]
    fn maintain(&mut self, _cache: &mut PoolCache<'u>) {}

    #[inline]
    fn idle_kick(&mut self) {}

    fn counters(&self) -> &PortCounters {
        &self.counters
    }

    fn poll_fd(&self) -> Option<RawFd> {
        None
    }

    fn xdp_statistics(&self) -> Option<XdpStatistics> {
        None
    }
}

/// Any port, dispatched with one `match` per call (per burst), not a virtual call.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per lcore queue, never moved on the hot path
pub enum AnyPort<'u> {
    /// AF_XDP socket or simulated rings.
    Ring(RingPort<'u>),
    /// In-memory null port.
    Null(NullPort),
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyPort::Ring($p) => $e,
            AnyPort::Null($p) => $e,
        }
    };
}

impl<'u> Port<'u> for AnyPort<'u> {
    #[inline]
    fn rx_burst(&mut self, cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>, max: usize) -> usize {
        dispatch!(self, p => p.rx_burst(cache, out, max))
    }
    #[inline]
    fn tx_burst(&mut self, cache: &mut PoolCache<'u>, frames: &mut FrameBuf<'u>) -> usize {
        dispatch!(self, p => p.tx_burst(cache, frames))
    }
    #[inline]
    fn flush(&mut self) {
        dispatch!(self, p => p.flush())
    }
    #[inline]
    fn maintain(&mut self, cache: &mut PoolCache<'u>) {
        dispatch!(self, p => p.maintain(cache))
    }
    #[inline]
    fn idle_kick(&mut self) {
        dispatch!(self, p => p.idle_kick())
    }
    fn counters(&self) -> &PortCounters {
        dispatch!(self, p => p.counters())
    }
    fn poll_fd(&self) -> Option<RawFd> {
        dispatch!(self, p => p.poll_fd())
    }
    fn xdp_statistics(&self) -> Option<XdpStatistics> {
        dispatch!(self, p => p.xdp_statistics())
    }
}
