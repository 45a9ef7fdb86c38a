//! The four AF_XDP rings, on the kernel's single-producer/single-consumer ring protocol.
//!
//! [`RingCore`] implements the protocol once, following `xdp-tools: headers/xdp/xsk.h`:
//! each side keeps *cached* copies of both indices and touches the shared ones only when the
//! cache says it must.
//! * A producer computes free slots as `cached_cons - cached_prod`, where `cached_cons` is kept
//!   `size` larger than the real consumer index so the common case needs no addition; when that
//!   is not enough it reloads `consumer` with **Acquire** (the consumer's reads of the slots it
//!   released happen-before our overwriting them). It publishes written slots by storing
//!   `producer` with **Release** (slot writes happen-before the consumer's Acquire load).
//! * A consumer computes available entries as `cached_prod - cached_cons` and reloads `producer`
//!   with **Acquire** only when that is zero (as libxdp does, to avoid bouncing the producer's
//!   cache line on every call); it frees slots by storing `consumer` with **Release**.
//! * Indices are free-running `u32`s (wrapping arithmetic); a slot is `idx & mask`.
//!
//! The typed shells fix the role and the element: [`FillRing`] (we produce chunk addresses),
//! [`CompRing`] (we consume sent addresses), [`RxRing`] (we consume descriptors into
//! [`Frame`]s), [`TxRing`] (we produce descriptors from frames). The simulated kernel in
//! [`crate::sim`] drives the opposite role of the very same `RingCore`, so tests exercise the
//! code that runs against the real kernel.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::frame::{Frame, FrameBuf};
use crate::pool::PoolCache;
use crate::sys::Mapping;
use crate::umem::Umem;

/// An AF_XDP descriptor (`struct xdp_desc`).
pub type XdpDesc = libc::xdp_desc;

/// Where a ring's memory comes from; kept alive by the ring.
#[derive(Debug)]
pub(crate) enum RingMem {
    /// `mmap` of an AF_XDP socket.
    Mmap(#[allow(dead_code)] Mapping),
    /// Heap memory shared with a simulated kernel.
    Heap(#[allow(dead_code)] Arc<HeapRingMem>),
}

/// Offsets of a ring's fields inside its memory (mirror of `struct xdp_ring_offset`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingOffsets {
    pub producer: u64,
    pub consumer: u64,
    pub flags: u64,
    pub desc: u64,
}

impl From<libc::xdp_ring_offset> for RingOffsets {
    fn from(o: libc::xdp_ring_offset) -> Self {
        RingOffsets { producer: o.producer, consumer: o.consumer, flags: o.flags, desc: o.desc }
    }
}

/// Heap memory laid out like a kernel ring: producer, consumer and flags on separate cache
/// lines, then the slot array.
#[derive(Debug)]
pub(crate) struct HeapRingMem {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: plain memory; all shared fields are accessed through atomics and the slot array
// through the ring protocol.
unsafe impl Send for HeapRingMem {}
// SAFETY: as above.
unsafe impl Sync for HeapRingMem {}

impl HeapRingMem {
    pub(crate) const OFFSETS: RingOffsets = RingOffsets { producer: 0, consumer: 64, flags: 128, desc: 192 };

    pub(crate) fn new(size: u32, elem: usize) -> Arc<HeapRingMem> {
        let len = Self::OFFSETS.desc as usize + size as usize * elem;
        let layout = std::alloc::Layout::from_size_align(len, 64).expect("ring layout");
        // SAFETY: non-zero size; zeroed memory is a valid initial state (indices 0, flags 0).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Arc::new(HeapRingMem { ptr, layout })
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for HeapRingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The ring protocol over raw shared memory. Either role may be driven; each ring instance is
/// used in exactly one role by its owner.
pub(crate) struct RingCore<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    slots: NonNull<T>,
    mask: u32,
    size: u32,
    cached_prod: u32,
    cached_cons: u32,
    _mem: RingMem,
}

// SAFETY: the ring is owned by one thread at a time (it is not Sync); the shared indices are
// atomics and slot accesses follow the acquire/release protocol above.
unsafe impl<T: Send> Send for RingCore<T> {}

/// Which side of the ring the owner plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Producer,
    Consumer,
}

impl<T: Copy> RingCore<T> {
    /// Builds a ring view over `mem`.
    ///
    /// # Safety
    /// `base` must point to memory (kept alive by `mem`) that holds, at the given offsets, the
    /// producer, consumer and flags `u32`s (4-byte aligned) and `size` slots of `T`; `size` must
    /// be a power of two; only one owner per role may exist.
    pub(crate) unsafe fn new(base: NonNull<u8>, off: RingOffsets, size: u32, mem: RingMem, role: Role) -> RingCore<T> {
        debug_assert!(size.is_power_of_two());
        // SAFETY: offsets lie within the mapping (caller contract).
        let (producer, consumer, flags, slots) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>(),
                base.add(off.consumer as usize).cast::<AtomicU32>(),
                base.add(off.flags as usize).cast::<AtomicU32>(),
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        let mut r = RingCore {
            producer,
            consumer,
            flags,
            slots,
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            _mem: mem,
        };
        r.cached_prod = r.prod().load(Ordering::Relaxed);
        r.cached_cons = r.cons().load(Ordering::Relaxed);
        if role == Role::Producer {
            r.cached_cons = r.cached_cons.wrapping_add(size);
        }
        r
    }

    #[inline]
    fn prod(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and alive for the ring's lifetime (constructor contract).
        unsafe { self.producer.as_ref() }
    }

    #[inline]
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as in `prod`.
        unsafe { self.consumer.as_ref() }
    }

    #[inline]
    fn flags_word(&self) -> &AtomicU32 {
        // SAFETY: as in `prod`.
        unsafe { self.flags.as_ref() }
    }

    #[inline]
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Pointer to slot `idx` (masked).
    #[inline]
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size`, and the slot array holds `size` elements.
        unsafe { self.slots.as_ptr().add((idx & self.mask) as usize) }
    }

    // ----- producer role -----

    /// Free slots, refreshing the consumer index only if fewer than `want` are known free.
    #[inline]
    pub(crate) fn prod_free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        // Acquire: the consumer's reads of released slots happen before we overwrite them.
        self.cached_cons = self.cons().load(Ordering::Acquire).wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Writes `v` into the `i`-th slot after the producer index (not yet published).
    #[inline]
    pub(crate) fn prod_write(&mut self, i: u32, v: T) {
        debug_assert!(i < self.cached_cons.wrapping_sub(self.cached_prod), "write beyond reserved slots");
        let idx = self.cached_prod.wrapping_add(i);
        // SAFETY: the slot is free (caller reserved it via `prod_free`), so the consumer does
        // not read it; the pointer is in bounds (`slot`).
        unsafe { self.slot(idx).write(v) };
    }

    /// Publishes `n` written slots.
    #[inline]
    pub(crate) fn prod_submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        // Release: slot writes happen before the consumer sees the new producer index.
        self.prod().store(self.cached_prod, Ordering::Release);
    }

    /// Reads back the `i`-th of the last `n` published entries. Only valid while no consumer
    /// exists (rollback of a fill ring after a failed bind).
    pub(crate) fn peek_written(&self, n: u32, i: u32) -> T {
        debug_assert!(i < n && n <= self.size);
        // SAFETY: the slot is in bounds (`slot`) and was written by us; no consumer reads it.
        unsafe { self.slot(self.cached_prod.wrapping_sub(n).wrapping_add(i)).read() }
    }

    /// Entries published but not yet consumed by the other side.
    #[inline]
    pub(crate) fn prod_outstanding(&self) -> u32 {
        self.cached_prod.wrapping_sub(self.cons().load(Ordering::Acquire))
    }

    // ----- consumer role -----

    /// Entries available (at most `want`), refreshing the producer index only when none are
    /// known to be available.
    #[inline]
    pub(crate) fn cons_avail(&mut self, want: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n == 0 {
            // Acquire: the producer's slot writes happen before our reads.
            self.cached_prod = self.prod().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        n.min(want)
    }

    /// Exact number of entries available now (always reloads the producer index).
    pub(crate) fn cons_pending(&mut self) -> u32 {
        self.cached_prod = self.prod().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reads the `i`-th available entry.
    #[inline]
    pub(crate) fn cons_read(&self, i: u32) -> T {
        // SAFETY: entry i < cons_avail() was published by the producer (Acquire above) and not
        // yet released, so the producer does not write it; the pointer is in bounds.
        unsafe { self.slot(self.cached_cons.wrapping_add(i)).read() }
    }

    /// Releases `n` consumed entries back to the producer.
    #[inline]
    pub(crate) fn cons_release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        // Release: our slot reads happen before the producer may overwrite them.
        self.cons().store(self.cached_cons, Ordering::Release);
    }

    // ----- after use: reading a quiescent ring (see `port::reclaim`) -----

    /// Producer index as this side last knew it: everything it published (producer role), or
    /// the last value it loaded (consumer role).
    pub(crate) fn local_prod(&self) -> u32 {
        self.cached_prod
    }

    /// Consumer index as this side last knew it (consumer role: everything it released).
    pub(crate) fn local_cons(&self) -> u32 {
        self.cached_cons
    }

    /// The consumer index the other side has published.
    pub(crate) fn shared_cons(&self) -> u32 {
        self.cons().load(Ordering::Acquire)
    }

    /// The producer index the other side has published.
    pub(crate) fn shared_prod(&self) -> u32 {
        self.prod().load(Ordering::Acquire)
    }

    /// Reads the slot of absolute ring position `pos` (masked), whatever it holds now. Only
    /// meaningful for positions within the last `size` writes, and only once the other side
    /// no longer writes the ring.
    pub(crate) fn read_pos(&self, pos: u32) -> T {
        // SAFETY: the pointer is in bounds (`slot`) and `T` is plain data (`Copy`, any bit
        // pattern of a ring slot is a valid `u64`/`XdpDesc`); the caller guarantees no
        // concurrent writer.
        unsafe { self.slot(pos).read() }
    }

    // ----- flags -----

    /// Whether the kernel asked to be woken up (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.flags_word().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Sets or clears the wakeup flag (simulated kernel only).
    pub(crate) fn set_needs_wakeup(&self, on: bool) {
        let v = if on { libc::XDP_RING_NEED_WAKEUP } else { 0 };
        self.flags_word().store(v, Ordering::Relaxed);
    }
}

/// Fill ring: we give the kernel empty chunks to receive into.
pub struct FillRing {
    pub(crate) core: RingCore<u64>,
}

impl FillRing {
    /// Moves up to `want` chunks from `cache` (refilling it from the UMEM free list as needed)
    /// onto the ring with one publication; returns how many were posted.
    #[inline]
    pub fn refill(&mut self, cache: &mut PoolCache<'_>, want: u32) -> u32 {
        let free = self.core.prod_free(want).min(want);
        let mut n = 0u32;
        while n < free {
            let addrs = cache.top_addrs((free - n) as usize);
            if addrs.is_empty() {
                break;
            }
            let k = addrs.len() as u32;
            for (i, &a) in addrs.iter().enumerate() {
                self.core.prod_write(n + i as u32, a);
            }
            cache.consume_top(k as usize);
            n += k;
        }
        if n > 0 {
            self.core.prod_submit(n);
        }
        n
    }

    /// Slots not yet holding a chunk for the kernel.
    #[inline]
    pub fn free_slots(&mut self) -> u32 {
        self.core.prod_free(self.core.size())
    }

    /// Ring size.
    pub fn size(&self) -> u32 {
        self.core.size()
    }

    /// Whether the kernel wants a wakeup to pick up fill entries.
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.core.needs_wakeup()
    }
}

/// Completion ring: the kernel returns the addresses of frames it has sent.
pub struct CompRing {
    pub(crate) core: RingCore<u64>,
}

impl CompRing {
    /// Returns up to `max` completed chunks to `cache`; returns how many.
    #[inline]
    pub fn reap(&mut self, cache: &mut PoolCache<'_>, max: u32) -> u32 {
        let n = self.core.cons_avail(max);
        let umem = cache.umem();
        for i in 0..n {
            let a = self.core.cons_read(i);
            cache.push_addr(umem.chunk_of(a));
        }
        if n > 0 {
            self.core.cons_release(n);
        }
        n
    }

    /// Ring size.
    pub fn size(&self) -> u32 {
        self.core.size()
    }
}

/// RX ring: the kernel hands us filled chunks.
pub struct RxRing {
    pub(crate) core: RingCore<XdpDesc>,
    /// Descriptors outside the UMEM (never expected; counted and skipped, never dereferenced).
    pub(crate) invalid: u64,
}

impl RxRing {
    /// Takes up to `max` received frames into `out`; returns (frames, bytes).
    #[inline]
    pub fn recv_burst<'u>(&mut self, umem: &'u Umem, out: &mut FrameBuf<'u>, max: u32) -> (u32, u64) {
        let n = self.core.cons_avail(max.min(out.remaining() as u32));
        let limit = umem.region_len() as u64;
        let fs = umem.frame_size() as u64;
        let mut bytes = 0u64;
        for i in 0..n {
            let d = self.core.cons_read(i);
            if d.addr >= limit || (d.addr & (fs - 1)) + d.len as u64 > fs {
                self.invalid += 1;
                continue;
            }
            bytes += d.len as u64;
            // SAFETY: the address is inside the UMEM (checked) and is one we posted on the fill
            // ring; the kernel hands its ownership back through this descriptor.
            let f = unsafe { Frame::from_desc(umem, d.addr, d.len) };
            // Cannot fail: n <= out.remaining().
            let _ = out.push(f);
        }
        if n > 0 {
            self.core.cons_release(n);
        }
        (n, bytes)
    }

    /// Ring size.
    pub fn size(&self) -> u32 {
        self.core.size()
    }

    /// Descriptors that pointed outside the UMEM.
    pub fn invalid_descs(&self) -> u64 {
        self.invalid
    }
}

/// TX ring: we hand the kernel frames to send.
pub struct TxRing {
    pub(crate) core: RingCore<XdpDesc>,
}

impl TxRing {
    /// Posts as many frames from the front of `frames` as fit; they move to the kernel. Returns
    /// (frames, bytes) posted; frames that did not fit stay in `frames`.
    #[inline]
    pub fn send_burst(&mut self, frames: &mut FrameBuf<'_>) -> (u32, u64) {
        let want = frames.len() as u32;
        if want == 0 {
            return (0, 0);
        }
        let n = self.core.prod_free(want).min(want);
        let mut bytes = 0u64;
        for (i, f) in frames.as_slice()[..n as usize].iter().enumerate() {
            bytes += f.len() as u64;
            self.core.prod_write(i as u32, XdpDesc { addr: f.desc_addr(), len: f.len() as u32, options: 0 });
        }
        // The frames' ownership passes to the kernel with the descriptors: the handles go.
        frames.drain_front(n as usize).for_each(|_sent| {});
        if n > 0 {
            self.core.prod_submit(n);
        }
        (n, bytes)
    }

    /// Descriptors the kernel has not consumed yet.
    #[inline]
    pub fn outstanding(&self) -> u32 {
        self.core.prod_outstanding()
    }

    /// Whether the kernel wants a `sendto` to process the ring.
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.core.needs_wakeup()
    }

    /// Ring size.
    pub fn size(&self) -> u32 {
        self.core.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap_ring<T: Copy>(size: u32) -> (RingCore<T>, RingCore<T>) {
        let mem = HeapRingMem::new(size, std::mem::size_of::<T>());
        let base = mem.base();
        // SAFETY: the heap memory has the layout of `HeapRingMem::OFFSETS` with `size` slots.
        unsafe {
            (
                RingCore::new(base, HeapRingMem::OFFSETS, size, RingMem::Heap(mem.clone()), Role::Producer),
                RingCore::new(base, HeapRingMem::OFFSETS, size, RingMem::Heap(mem), Role::Consumer),
            )
        }
    }

    #[test]
    fn producer_consumer_wraps_many_times() {
        let (mut p, mut c) = heap_ring::<u64>(8);
        let mut next = 0u64;
        let mut expect = 0u64;
        for round in 0..1000u32 {
            let want = round % 11;
            let free = p.prod_free(want).min(want);
            for i in 0..free {
                p.prod_write(i, next + i as u64);
            }
            p.prod_submit(free);
            next += free as u64;
            let take = round % 7;
            let n = c.cons_avail(take);
            for i in 0..n {
                assert_eq!(c.cons_read(i), expect + i as u64);
            }
            c.cons_release(n);
            expect += n as u64;
            assert!(next - expect <= 8);
        }
        assert!(next > 1000);
    }

    #[test]
    fn full_ring_reports_no_free_slots_and_consumer_sees_nothing_when_empty() {
        let (mut p, mut c) = heap_ring::<u64>(4);
        assert_eq!(c.cons_avail(4), 0);
        assert_eq!(p.prod_free(4), 4);
        for i in 0..4 {
            p.prod_write(i, i as u64);
        }
        p.prod_submit(4);
        assert_eq!(p.prod_free(1), 0);
        assert_eq!(p.prod_outstanding(), 4);
        assert_eq!(c.cons_avail(10), 4);
        c.cons_release(2);
        assert_eq!(p.prod_free(1), 2);
        assert_eq!(p.prod_outstanding(), 2);
    }

    #[test]
    fn cross_thread_transfer_is_ordered() {
        let (mut p, mut c) = heap_ring::<u64>(64);
        const N: u64 = 200_000;
        let t = std::thread::spawn(move || {
            let mut sent = 0u64;
            while sent < N {
                let n = p.prod_free(16).min(16).min((N - sent) as u32);
                for i in 0..n {
                    p.prod_write(i, sent + i as u64);
                }
                p.prod_submit(n);
                sent += n as u64;
            }
        });
        let mut got = 0u64;
        while got < N {
            let n = c.cons_avail(32);
            for i in 0..n {
                assert_eq!(c.cons_read(i), got + i as u64);
            }
            c.cons_release(n);
            got += n as u64;
        }
        t.join().unwrap();
    }

    #[test]
    fn wakeup_flag_round_trips() {
        let (p, c) = heap_ring::<u64>(4);
        assert!(!c.needs_wakeup());
        p.set_needs_wakeup(true);
        assert!(c.needs_wakeup());
        p.set_needs_wakeup(false);
        assert!(!c.needs_wakeup());
    }
}
