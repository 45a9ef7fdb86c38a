//! Ports: the [`Port`] trait and its implementations.
//!
//! * [`RingPort`]: the four AF_XDP rings of one (interface, queue), either on a real AF_XDP
//!   socket ([`RingPort::open_xsk`]) or on heap rings driven by a simulated kernel
//!   ([`crate::sim`]). Both run the same ring code; only the wakeup path differs.
//! * [`NullPort`]: DPDK's `net_null` — RX hands out frames taken from the pool (contents
//!   untouched), TX returns them to the pool. Measures the engine with no kernel in the path.
//! * [`AnyPort`]: the enum the engine stores, so the per-burst dispatch is one `match`, not a
//!   virtual call.
//!
//! Every port method does bounded work: at most one burst in or out, at most one ring's worth
//! of completions reaped, at most one wakeup syscall.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::frame::{Frame, FrameBuf};
use crate::pool::PoolCache;
use crate::ring::{CompRing, FillRing, RxRing, TxRing};
use crate::sys::{self, Kick};
use crate::umem::Umem;
use crate::xsk::{self, XdpStatistics, XskConfig, XskError, XskSocket};

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
    /// Invalid RX descriptors (outside the UMEM or past their chunk's end; never expected):
    /// consumed, not received; see [`RxRing::recv_burst`].
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
    /// Addresses outside the UMEM posted on the fill ring ([`RingPort::post_invalid_fill`]).
    invalid_fill_posted: u32,
    /// Frames sent with an invalid length ([`RingPort::post_invalid_tx`]).
    invalid_tx_frames: u64,
    counters: PortCounters,
}

/// What [`RingPort::close`] gave back to the pool, and what it had to leave with the kernel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Frames still on the RX ring: received, then freed.
    pub rx: u32,
    /// TX completions reaped while closing.
    pub completions: u32,
    /// TX descriptors the kernel never took: taken back.
    pub tx_unsent: u32,
    /// Chunks taken back from the fill ring.
    pub fill: u32,
    /// Chunks left with the kernel: TX frames not completed before the timeout, and the fill
    /// entries of a zero-copy socket (its driver takes them in bulk). They are lost to the pool
    /// until the UMEM goes.
    pub kept_by_kernel: u32,
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
            invalid_fill_posted: 0,
            invalid_tx_frames: 0,
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
            invalid_fill_posted: 0,
            invalid_tx_frames: 0,
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

    /// Descriptors on the TX ring the kernel has not taken yet.
    pub fn tx_outstanding(&self) -> u32 {
        self.tx.outstanding()
    }

    /// Whether the kernel asks for a wakeup to process the TX ring (`XDP_RING_NEED_WAKEUP` on
    /// the TX ring's flags).
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    /// Whether the kernel asks for a wakeup to take fill entries (`XDP_RING_NEED_WAKEUP` on the
    /// fill ring's flags): what [`Port::rx_burst`] and [`Port::idle_kick`] act on.
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// Whether this port uses the need_wakeup protocol (else it kicks on every flush).
    pub fn uses_need_wakeup(&self) -> bool {
        self.need_wakeup
    }

    /// Sends `frame` with a length the kernel must refuse (0, or past the end of its chunk), to
    /// test the kernel's TX validation (`tx_invalid_descs`). The frame moves to the kernel as
    /// with any send: a kernel that completes invalid descriptors (6.18 does) gives the chunk
    /// back through the completion ring; one that does not keeps it, and [`RingPort::close`]
    /// reports it in `kept_by_kernel`. Not counted in `tx_packets`; the next [`Port::flush`]
    /// kicks. Gives the frame back when the TX ring is full.
    ///
    /// # Panics
    /// If `len` would make a valid descriptor.
    pub fn post_invalid_tx(&mut self, frame: Frame<'u>, len: u32) -> Result<(), Frame<'u>> {
        let addr = frame.desc_addr();
        assert!(!self.umem.desc_is_valid(addr, len), "({addr:#x}, {len}) is a valid descriptor");
        if !self.tx.post_raw(crate::ring::XdpDesc { addr, len, options: 0 }) {
            return Err(frame);
        }
        // The descriptor now stands for the chunk: the handle goes, as in TxRing::send_burst.
        let _sent = frame;
        self.invalid_tx_frames += 1;
        self.pending += 1;
        Ok(())
    }

    /// Posts a TX descriptor for an address outside the UMEM (no chunk changes hands), to test
    /// the kernel's TX validation. A completion the kernel may post for it is skipped by
    /// [`CompRing::reap`](crate::ring::CompRing::reap) ([`RingPort::invalid_completions`]).
    /// Returns `false` when the TX ring is full.
    ///
    /// # Panics
    /// If `addr` lies inside the UMEM.
    pub fn post_foreign_tx(&mut self, addr: u64, len: u32) -> bool {
        assert!(addr >= self.umem.region_len() as u64, "{addr:#x} lies inside the UMEM");
        let ok = self.tx.post_raw(crate::ring::XdpDesc { addr, len, options: 0 });
        self.pending += u32::from(ok);
        ok
    }

    /// Completions skipped because they named no chunk of the UMEM.
    pub fn invalid_completions(&self) -> u64 {
        self.comp.invalid_completions()
    }

    /// Posts an address outside the UMEM on the fill ring, to test the kernel's fill
    /// validation: the kernel consumes and skips it (counting it in its fill queue's invalid
    /// counter, which `XDP_STATISTICS` does not report) and receives into the next entry.
    /// Returns `false` when the fill ring is full.
    ///
    /// # Panics
    /// If `addr` lies inside the UMEM.
    pub fn post_invalid_fill(&mut self, addr: u64) -> bool {
        assert!(addr >= self.umem.region_len() as u64, "{addr:#x} lies inside the UMEM");
        let ok = self.fill.post_raw(addr);
        self.invalid_fill_posted += u32::from(ok);
        ok
    }

    /// Stops the port and returns to `cache` every chunk it can prove is no longer the
    /// kernel's; says what it returned and what it could not.
    ///
    /// **Call it only when nothing is delivered to this socket any more**: after removing it
    /// from the XDP program's XSKMAP (or detaching the program). A frame redirected to the
    /// socket while it closes could land in a chunk already given back.
    ///
    /// In order: (1) TX: kicks until the kernel took every descriptor and reaps completions
    /// until every frame posted is completed, or `timeout` passes (a simulated port has no
    /// kernel thread: no waiting); descriptors never taken are taken back, frames taken but not
    /// completed stay with the kernel. (2) RX: receives what is on the ring and frees it.
    /// (3) Fill: in copy mode the kernel takes fill entries strictly in order, one per frame it
    /// puts on the RX ring, skipping addresses outside the UMEM, and after a drop for a full
    /// RX ring keeps the entry it took for the next frame; so the entries from index
    /// (RX producer + invalid entries posted) on are not consumed, or are that one kept entry,
    /// and come back (the kept one is the kernel's until the socket closes, which follows; it
    /// is not touched again since nothing is delivered any more). That index is checked against
    /// the fill ring's published consumer; if they disagree, nothing is taken back. A zero-copy
    /// socket's driver takes fill entries in bulk: they stay with the kernel. A simulated
    /// kernel publishes its consumer index exactly: entries from it on come back. (4) The
    /// socket closes (with the rings' mappings).
    pub fn close(mut self, cache: &mut PoolCache<'u>, timeout: Duration) -> Reclaimed {
        let mut r = Reclaimed::default();
        let copy_mode = match &self.backend {
            Backend::Xsk(s) => !s.zero_copy(),
            Backend::Sim(_) => true,
        };
        let deadline = Instant::now() + if self.socket().is_some() { timeout } else { Duration::ZERO };
        // (1) TX. Frames posted with an invalid length come back only from kernels that
        // complete invalid descriptors; extra completions are theirs.
        let in_flight = loop {
            r.completions += self.comp.reap(cache, self.comp.size());
            let cons = self.tx.core.published_consumer();
            let valid_unsent = (0..self.tx.outstanding())
                .map(|i| self.tx.core.read_at(cons.wrapping_add(i)))
                .filter(|d| self.umem.desc_is_valid(d.addr, d.len))
                .count() as u64;
            let reaped = self.counters.comp_reaped + u64::from(r.completions);
            let in_flight = self.counters.tx_packets.saturating_sub(reaped + valid_unsent);
            if (in_flight == 0 && self.tx.outstanding() == 0) || Instant::now() >= deadline {
                break in_flight;
            }
            if self.tx.outstanding() > 0 {
                self.kick_tx();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        };
        let reaped = self.counters.comp_reaped + u64::from(r.completions) - self.comp.invalid_completions();
        let invalid_kept = self.invalid_tx_frames.saturating_sub(reaped.saturating_sub(self.counters.tx_packets));
        r.kept_by_kernel += (in_flight + invalid_kept) as u32;
        let cons = self.tx.core.published_consumer();
        for i in 0..self.tx.outstanding() {
            let d = self.tx.core.read_at(cons.wrapping_add(i));
            // A zero-copy driver may still take these: they stay its.
            if copy_mode && self.umem.desc_is_valid(d.addr, d.len) {
                cache.push_addr(self.umem.chunk_of(d.addr));
                r.tx_unsent += 1;
            } else if !copy_mode {
                r.kept_by_kernel += 1;
            }
        }
        // (2) RX.
        let mut buf = FrameBuf::with_capacity(self.rx.size() as usize);
        loop {
            let (n, _) = self.rx.recv_burst(cache, &mut buf, self.rx.size());
            r.rx += n;
            cache.free_burst(&mut buf);
            if n == 0 {
                break;
            }
        }
        // (3) Fill.
        let prod = self.fill.core.producer_index();
        let published = self.fill.core.published_consumer();
        let first_kernel_free = match &self.backend {
            Backend::Sim(_) => Some(published),
            Backend::Xsk(_) if copy_mode => {
                let start = self.rx.core.published_producer().wrapping_add(self.invalid_fill_posted);
                // The kernel has published at most one entry past `start` (the kept one), and
                // `start` is not past what we produced.
                let ahead = published.wrapping_sub(start) as i32;
                let left = prod.wrapping_sub(start) as i32;
                (ahead <= 1 && (0..=self.fill.size() as i32).contains(&left)).then_some(start)
            }
            Backend::Xsk(_) => None,
        };
        match first_kernel_free {
            Some(start) => {
                for idx in (0..prod.wrapping_sub(start)).map(|i| start.wrapping_add(i)) {
                    let a = self.fill.core.read_at(idx);
                    if a < self.umem.region_len() as u64 {
                        cache.push_addr(self.umem.chunk_of(a));
                        r.fill += 1;
                    }
                }
            }
            None => r.kept_by_kernel += prod.wrapping_sub(published),
        }
        // (4) The socket and the rings go with `self`.
        r
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
    fn rx_burst(&mut self, cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>, max: usize) -> usize {
        let (n, bytes) = self.rx.recv_burst(cache, out, max as u32);
        self.counters.rx_invalid_descs = self.rx.invalid_descs();
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
/// contents; TX returns frames to the pool. A *replay* null port ([`NullPort::replay`]) writes
/// the next of a fixed set of frames into each RX frame instead (what a NIC's DMA would have
/// written), so apps that parse their input (a NAT) can be measured without a kernel; the copy
/// is part of what it measures.
#[derive(Debug)]
pub struct NullPort {
    len: u32,
    counters: PortCounters,
    /// Replay: the frames, each padded to whole 64-byte blocks, the next one to hand out, and the
    /// step between two (this queue's share, see [`NullPort::replay_share`]).
    templates: Option<(Arc<[u8]>, usize, usize)>,
    /// False: RX hands out nothing (a TX-only sink).
    rx: bool,
}

impl NullPort {
    /// A null port whose RX frames are `len` bytes long.
    pub fn new(len: u32) -> NullPort {
        NullPort { len, counters: PortCounters::default(), templates: None, rx: true }
    }

    /// A null port that receives nothing and takes everything sent to it.
    pub fn tx_only() -> NullPort {
        NullPort { len: 60, counters: PortCounters::default(), templates: None, rx: false }
    }

    /// A null port whose RX frames are, in turn and over again, the `frames.len() / len`
    /// frames of `len` bytes stored back to back in `frames`.
    pub fn replay(len: u32, frames: Arc<[u8]>) -> NullPort {
        NullPort::replay_share(len, frames, 0, 1)
    }

    /// Queue `queue` of `queues` of a replay port: frames `queue`, `queue + queues`, … — the
    /// frames spread over the queues as RSS spreads flows (a pcap with one frame per flow
    /// gives each queue a disjoint share of the flows).
    pub fn replay_share(len: u32, frames: Arc<[u8]>, queue: usize, queues: usize) -> NullPort {
        let count = frames.len() / len.max(1) as usize;
        assert!(
            len > 0 && count > queue && queues > 0,
            "replay queue {queue} of {queues} needs a frame of {len} bytes"
        );
        // Each frame padded to whole 64-byte blocks (see `copy_frame`).
        let l = len as usize;
        let stride = l.div_ceil(64) * 64;
        let mut padded = vec![0u8; count * stride];
        for (d, s) in padded.chunks_exact_mut(stride).zip(frames.chunks_exact(l)) {
            d[..l].copy_from_slice(s);
        }
        NullPort {
            len,
            counters: PortCounters::default(),
            templates: Some((padded.into(), queue, queues.max(1))),
            rx: true,
        }
    }
}

/// Writes `src` (a whole number of 64-byte blocks, zero-padded past the frame) into `f` and
/// sets its length to `len`: fixed-size block copies the compiler inlines (a NIC's DMA costs the
/// CPU nothing; this comes close), or a plain copy when the chunk has no room for the padding.
#[inline]
fn copy_frame(f: &mut crate::Frame<'_>, src: &[u8], len: usize) {
    if src.len() <= f.capacity() {
        f.set_len(src.len());
        for (d, s) in f.data_mut().chunks_exact_mut(64).zip(src.chunks_exact(64)) {
            // Through arrays: a copy of a known size, inlined (a slice copy calls memcpy).
            if let (Ok(d), Ok(s)) = (<&mut [u8; 64]>::try_from(d), <&[u8; 64]>::try_from(s)) {
                *d = *s;
            }
        }
        f.set_len(len);
    } else {
        f.set_len(len);
        f.data_mut().copy_from_slice(&src[..len]);
    }
}

impl<'u> Port<'u> for NullPort {
    #[inline]
    fn rx_burst(&mut self, cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>, max: usize) -> usize {
        if !self.rx {
            self.counters.rx_empty_polls += 1;
            return 0;
        }
        let start = out.len();
        let n = cache.alloc_burst(out, max, self.len);
        if let Some((frames, next, step)) = &mut self.templates {
            let len = self.len as usize;
            let stride = len.div_ceil(64) * 64;
            let count = frames.len() / stride;
            for f in &mut out.as_mut_slice()[start..] {
                copy_frame(f, &frames[*next * stride..(*next + 1) * stride], len);
                *next += *step;
                if *next >= count {
                    *next %= *step;
                }
            }
        }
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

#[cfg(test)]
mod null_replay_tests {
    use super::*;
    use crate::umem::{Umem, UmemConfig};

    /// A replay port hands out its frames in turn, byte for byte, whatever their length.
    #[test]
    fn replay_hands_out_the_frames_in_turn() {
        let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 256, headroom: 0 }).unwrap();
        let mut cache = PoolCache::new(&u, 64);
        for len in [60usize, 64, 100, 128] {
            let frames: Vec<u8> = (0..3 * len).map(|i| (i * 7 + len) as u8).collect();
            let mut p = NullPort::replay(len as u32, frames.clone().into());
            let mut out = FrameBuf::with_capacity(8);
            assert_eq!(p.rx_burst(&mut cache, &mut out, 7), 7);
            for (k, f) in out.iter().enumerate() {
                let i = k % 3;
                assert_eq!(f.data(), &frames[i * len..(i + 1) * len], "len {len}, frame {k}");
            }
            cache.free_burst(&mut out);
        }
    }
}
