//! A simulated kernel for AF_XDP rings: tests and benchmarks without root, NIC or syscalls.
//!
//! [`sim_port`] builds a [`RingPort`](crate::port::RingPort) whose four rings live on the heap
//! and a [`SimWire`] that plays the kernel's side of the *same* ring code: it consumes the fill
//! ring to deliver injected packets on the RX ring (counting drops the way the kernel's
//! `XDP_STATISTICS` does), and consumes the TX ring to hand transmitted bytes to the test,
//! posting completions. Packet data is copied in and out, as in AF_XDP copy mode.
//!
//! A `SimWire` is `Send`, so a test or benchmark can run it on another thread as the kernel
//! would run on another core.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::frame::FrameBuf;
use crate::pool::PoolCache;
use crate::port::{RingPort, SimKicks};
use crate::ring::{CompRing, FillRing, HeapRingMem, RingCore, RingMem, Role, RxRing, TxRing, XdpDesc};
use crate::umem::Umem;

/// Ring sizes and wakeup behaviour of a simulated port.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// RX ring size.
    pub rx_size: u32,
    /// TX ring size.
    pub tx_size: u32,
    /// Fill ring size.
    pub fill_size: u32,
    /// Completion ring size.
    pub comp_size: u32,
    /// Whether the port honours need_wakeup flags (the sim sets them via [`SimWire::set_tx_needs_wakeup`]).
    pub need_wakeup: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig { rx_size: 2048, tx_size: 2048, fill_size: 4096, comp_size: 2048, need_wakeup: true }
    }
}

/// What the simulated kernel saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimStats {
    /// Packets placed on the RX ring.
    pub rx_delivered: u64,
    /// Packets dropped because the fill ring was empty (`rx_fill_ring_empty_descs`).
    pub rx_dropped_fill_empty: u64,
    /// Packets dropped because the RX ring was full (`rx_ring_full`).
    pub rx_dropped_ring_full: u64,
    /// Packets dropped because they do not fit a chunk.
    pub rx_dropped_too_big: u64,
    /// Fill-ring addresses outside the UMEM, skipped (the kernel counts these in its fill
    /// queue, which `XDP_STATISTICS` does not report).
    pub rx_fill_invalid_descs: u64,
    /// Frames taken off the TX ring and sent (completed).
    pub tx_sent: u64,
    /// TX descriptors that were invalid (outside the UMEM, past their chunk's end, or empty):
    /// consumed without a completion, as the kernel's `tx_invalid_descs`.
    pub tx_invalid_descs: u64,
}

/// The kernel side of a simulated port.
pub struct SimWire<'u> {
    umem: &'u Umem,
    fill: RingCore<u64>,
    comp: RingCore<u64>,
    rx: RingCore<XdpDesc>,
    tx: RingCore<XdpDesc>,
    kicks: Arc<SimKicks>,
    stats: SimStats,
}

impl std::fmt::Debug for SimWire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimWire").field("stats", &self.stats).finish()
    }
}

fn pair<T: Copy>(size: u32, user: Role) -> (RingCore<T>, RingCore<T>) {
    let mem = HeapRingMem::new(size, std::mem::size_of::<T>());
    let base = mem.base();
    let kernel = if user == Role::Producer { Role::Consumer } else { Role::Producer };
    // SAFETY: `HeapRingMem::new` laid out producer/consumer/flags and `size` slots of `T` at
    // `HeapRingMem::OFFSETS`; one owner per role.
    unsafe {
        (
            RingCore::new(base, HeapRingMem::OFFSETS, size, RingMem::Heap(mem.clone()), user),
            RingCore::new(base, HeapRingMem::OFFSETS, size, RingMem::Heap(mem), kernel),
        )
    }
}

/// Builds a simulated port over `umem` with its fill ring primed from `cache`.
pub fn sim_port<'u>(umem: &'u Umem, cache: &mut PoolCache<'u>, cfg: SimConfig) -> (RingPort<'u>, SimWire<'u>) {
    for s in [cfg.rx_size, cfg.tx_size, cfg.fill_size, cfg.comp_size] {
        assert!(s.is_power_of_two(), "simulated ring sizes must be powers of two");
    }
    let (uf, kf) = pair::<u64>(cfg.fill_size, Role::Producer);
    let (uc, kc) = pair::<u64>(cfg.comp_size, Role::Consumer);
    let (ur, kr) = pair::<XdpDesc>(cfg.rx_size, Role::Consumer);
    let (ut, kt) = pair::<XdpDesc>(cfg.tx_size, Role::Producer);
    let mut fill = FillRing { core: uf };
    fill.refill(cache, cfg.fill_size);
    let kicks = Arc::new(SimKicks::default());
    let port = RingPort::from_sim(
        umem,
        (fill, CompRing { core: uc, invalid: 0 }, RxRing { core: ur, invalid: 0 }, TxRing { core: ut }),
        kicks.clone(),
        cfg.need_wakeup,
    );
    let wire = SimWire { umem, fill: kf, comp: kc, rx: kr, tx: kt, kicks, stats: SimStats::default() };
    (port, wire)
}

impl<'u> SimWire<'u> {
    /// Delivers one packet: takes a chunk from the fill ring, copies `pkt` to the same offset
    /// the kernel uses (UMEM headroom + 256), posts an RX descriptor. Returns `false` (and
    /// counts why) when the packet was dropped.
    pub fn inject(&mut self, pkt: &[u8]) -> bool {
        let off = self.umem.data_offset() as usize;
        if off + pkt.len() > self.umem.frame_size() as usize {
            self.stats.rx_dropped_too_big += 1;
            return false;
        }
        if self.rx.prod_free(1) == 0 {
            self.stats.rx_dropped_ring_full += 1;
            return false;
        }
        let Some(chunk) = self.take_fill() else {
            self.stats.rx_dropped_fill_empty += 1;
            return false;
        };
        // SAFETY: the chunk was posted on the fill ring, so the (simulated) kernel owns it until
        // it posts it on the RX ring; off + len <= frame_size (checked above); the chunk lies
        // inside the region (take_fill returns only chunk starts below the region's end).
        unsafe {
            let dst = self.umem.base().as_ptr().add(chunk as usize + off);
            std::ptr::copy_nonoverlapping(pkt.as_ptr(), dst, pkt.len());
        }
        self.rx.prod_write(0, XdpDesc { addr: chunk + off as u64, len: pkt.len() as u32, options: 0 });
        self.rx.prod_submit(1);
        self.stats.rx_delivered += 1;
        true
    }

    /// Takes the next valid chunk off the fill ring, skipping (and counting) addresses outside
    /// the UMEM as the kernel does; `None` when the ring is empty.
    fn take_fill(&mut self) -> Option<u64> {
        while self.fill.cons_avail(1) > 0 {
            let a = self.fill.cons_read(0);
            self.fill.cons_release(1);
            if a < self.umem.region_len() as u64 {
                return Some(self.umem.chunk_of(a));
            }
            self.stats.rx_fill_invalid_descs += 1;
        }
        None
    }

    /// Posts an RX descriptor for a chunk taken off the fill ring, claiming `len` bytes
    /// without copying any: with `len` past the end of the chunk, an invalid descriptor whose
    /// chunk is nonetheless the port's again (what a faulty kernel or driver could hand back).
    /// Returns `false` (counting nothing) when the RX ring is full or the fill ring empty.
    pub fn inject_bad_len(&mut self, len: u32) -> bool {
        if self.rx.prod_free(1) == 0 {
            return false;
        }
        let Some(chunk) = self.take_fill() else { return false };
        let addr = chunk + u64::from(self.umem.data_offset());
        self.rx.prod_write(0, XdpDesc { addr, len, options: 0 });
        self.rx.prod_submit(1);
        true
    }

    /// Posts an RX descriptor for an arbitrary `addr` without taking a fill chunk: with an
    /// address outside the UMEM, an invalid descriptor that names no chunk of the port's.
    /// Returns `false` when the RX ring is full.
    pub fn inject_foreign(&mut self, addr: u64, len: u32) -> bool {
        if self.rx.prod_free(1) == 0 {
            return false;
        }
        self.rx.prod_write(0, XdpDesc { addr, len, options: 0 });
        self.rx.prod_submit(1);
        true
    }

    /// Takes up to `max` descriptors off the TX ring, hands each valid frame's bytes to `sink`,
    /// and posts their completions. Stops early when the completion ring is full. Returns how
    /// many descriptors it consumed.
    pub fn transmit(&mut self, max: u32, mut sink: impl FnMut(&[u8])) -> u32 {
        self.transmit_descs(max, |_, b| sink(b))
    }

    /// As [`SimWire::transmit`], handing `sink` each descriptor's UMEM address with its bytes.
    /// Invalid descriptors (outside the UMEM, past their chunk's end, or empty) are consumed and
    /// counted in `tx_invalid_descs`, never read and never completed, as the kernel does.
    pub fn transmit_descs(&mut self, max: u32, mut sink: impl FnMut(u64, &[u8])) -> u32 {
        let n = self.tx.cons_avail(max);
        // Reserve a completion for every descriptor: the kernel also needs completion space
        // before it looks at a descriptor.
        let n = n.min(self.comp.prod_free(n));
        let mut done = 0;
        for i in 0..n {
            let d = self.tx.cons_read(i);
            if !self.umem.desc_is_valid(d.addr, d.len) {
                self.stats.tx_invalid_descs += 1;
                continue;
            }
            // SAFETY: the descriptor lies inside one chunk of the live region (checked); the
            // chunk belongs to the kernel side until its completion is posted below.
            let bytes =
                unsafe { std::slice::from_raw_parts(self.umem.base().as_ptr().add(d.addr as usize), d.len as usize) };
            sink(d.addr, bytes);
            self.comp.prod_write(done, d.addr);
            done += 1;
        }
        if n > 0 {
            self.tx.cons_release(n);
            self.comp.prod_submit(done);
        }
        self.stats.tx_sent += done as u64;
        n
    }

    /// Moves up to `max` transmitted frames of this port into `peer`'s RX, as a wire would.
    /// Returns how many were delivered.
    pub fn forward_to(&mut self, peer: &mut SimWire<'_>, max: u32) -> u32 {
        let mut delivered = 0;
        self.transmit(max, |b| {
            if peer.inject(b) {
                delivered += 1;
            }
        });
        delivered
    }

    /// Sets the TX ring's need_wakeup flag (copy mode keeps it set).
    pub fn set_tx_needs_wakeup(&self, on: bool) {
        self.tx.set_needs_wakeup(on);
    }

    /// Sets the fill ring's need_wakeup flag.
    pub fn set_fill_needs_wakeup(&self, on: bool) {
        self.fill.set_needs_wakeup(on);
    }

    /// TX kicks the port has issued so far.
    pub fn tx_kicks(&self) -> u64 {
        self.kicks.tx.load(Ordering::Relaxed)
    }

    /// RX kicks the port has issued so far.
    pub fn rx_kicks(&self) -> u64 {
        self.kicks.rx.load(Ordering::Relaxed)
    }

    /// What happened so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Chunks currently posted on the fill ring (owned by the simulated kernel).
    pub fn fill_pending(&mut self) -> u32 {
        self.fill.cons_pending()
    }

    /// Returns every chunk the simulated kernel still owns (fill ring entries) to `cache`, for
    /// accounting checks at the end of a test.
    pub fn drain_fill_into(&mut self, cache: &mut PoolCache<'u>) -> u32 {
        let n = self.fill.cons_pending();
        for i in 0..n {
            cache.push_addr(self.umem.chunk_of(self.fill.cons_read(i)));
        }
        self.fill.cons_release(n);
        n
    }
}

/// Convenience for tests: receive everything currently on `port`'s RX ring.
pub fn drain_rx<'u>(port: &mut RingPort<'u>, cache: &mut PoolCache<'u>, out: &mut FrameBuf<'u>) -> usize {
    use crate::port::Port;
    let mut total = 0;
    loop {
        let n = port.rx_burst(cache, out, out.remaining());
        total += n;
        if n == 0 || out.remaining() == 0 {
            return total;
        }
    }
}
