//! [`PoolCache`]: the per-lcore frame cache in front of the UMEM's shared free list.
//!
//! This is DPDK's mempool-with-per-lcore-cache design: each lcore allocates from and frees to
//! its own LIFO stack of chunk addresses (hot chunks are reused first), and only touches the
//! shared free list in bulk — it refills half its capacity when it runs dry and flushes half
//! when it overflows. Naming follows DPDK: `_bulk` is all-or-nothing, `_burst` is as many as
//! possible.
//!
//! A `PoolCache` is not `Sync` and is meant to be owned by exactly one lcore; it returns every
//! chunk it still holds to the shared list when dropped.

use std::fmt;

use crate::frame::{Frame, FrameBuf};
use crate::umem::Umem;

/// Counters of one cache (plain integers: the owning lcore publishes them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Bulk refills from the shared free list.
    pub refills: u64,
    /// Bulk flushes to the shared free list.
    pub flushes: u64,
    /// Allocation requests that could not be served (pool exhausted).
    pub alloc_failed: u64,
}

/// Per-lcore cache of free chunks.
pub struct PoolCache<'u> {
    umem: &'u Umem,
    stack: Box<[u64]>,
    len: usize,
    data_off: u32,
    stats: CacheStats,
}

impl fmt::Debug for PoolCache<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCache").field("len", &self.len).field("cap", &self.stack.len()).finish()
    }
}

/// Default cache capacity (chunks): 8 bursts of 64, as DPDK sizes caches to a few bursts.
pub const DEFAULT_CACHE_SIZE: usize = 512;

impl<'u> PoolCache<'u> {
    /// A cache of `capacity` chunks (at least 2) over `umem`. Starts empty.
    pub fn new(umem: &'u Umem, capacity: usize) -> PoolCache<'u> {
        let capacity = capacity.max(2);
        PoolCache {
            umem,
            stack: vec![0u64; capacity].into_boxed_slice(),
            len: 0,
            data_off: umem.data_offset(),
            stats: CacheStats::default(),
        }
    }

    /// The UMEM this cache draws from.
    pub fn umem(&self) -> &'u Umem {
        self.umem
    }

    /// Chunks held right now.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache holds no chunk.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.stack.len()
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Makes at least `n` chunks available if the shared list has them; returns how many are
    /// available afterwards (`>= n` on success).
    #[inline]
    fn ensure(&mut self, n: usize) -> usize {
        if self.len >= n {
            return self.len;
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&mut self, n: usize) -> usize {
        let cap = self.stack.len();
        // Fill up to half the capacity beyond what is asked, as DPDK does.
        let want = (n + cap / 2).min(cap) - self.len;
        let got = self.umem.take(&mut self.stack[self.len..self.len + want]);
        self.len += got;
        self.stats.refills += 1;
        self.len
    }

    #[cold]
    fn flush_half(&mut self) {
        let keep = self.stack.len() / 2;
        // Flush the bottom (least recently used) part and keep the hot top, as DPDK does.
        let excess = self.len - keep;
        self.umem.give(&self.stack[..excess]);
        self.stack.copy_within(excess..self.len, 0);
        self.len = keep;
        self.stats.flushes += 1;
    }

    /// Allocates one frame (data offset = UMEM headroom + 256, length 0).
    #[inline]
    pub fn alloc(&mut self) -> Option<Frame<'u>> {
        if self.ensure(1) == 0 {
            self.stats.alloc_failed += 1;
            return None;
        }
        self.len -= 1;
        let a = self.stack[self.len];
        // SAFETY: `a` came off this cache's stack, so this cache owned it exclusively (module
        // invariant of `Umem`); ownership moves to the frame. data_off < frame_size (Umem::new).
        Some(unsafe { Frame::from_chunk(self.umem, a, self.data_off, 0) })
    }

    /// Allocates exactly `n` frames of length `len` into `out`, or none at all (`false`).
    /// Fails too when `out` has fewer than `n` free slots.
    #[inline]
    pub fn alloc_bulk(&mut self, out: &mut FrameBuf<'u>, n: usize, len: u32) -> bool {
        if out.remaining() < n {
            self.stats.alloc_failed += n as u64;
            return false;
        }
        if n <= self.len {
            self.pop_into(out, n, len);
            return true;
        }
        let got = self.alloc_burst(out, n, len);
        if got < n {
            for _ in 0..got {
                if let Some(f) = out.pop() {
                    self.push_addr(f.chunk_addr());
                }
            }
            self.stats.alloc_failed += n as u64;
            return false;
        }
        true
    }

    /// Allocates up to `n` frames of length `len` into `out`; returns how many.
    #[inline]
    pub fn alloc_burst(&mut self, out: &mut FrameBuf<'u>, n: usize, len: u32) -> usize {
        let n = n.min(out.remaining());
        if n <= self.len {
            self.pop_into(out, n, len);
            return n;
        }
        let mut done = 0;
        while done < n {
            let step = (n - done).min(self.stack.len());
            let avail = self.ensure(step).min(step);
            if avail == 0 {
                break;
            }
            self.pop_into(out, avail, len);
            done += avail;
            if avail < step {
                break;
            }
        }
        done
    }

    #[inline]
    fn pop_into(&mut self, out: &mut FrameBuf<'u>, n: usize, len: u32) {
        debug_assert!(n <= self.len && n <= out.remaining());
        let len = len.min(self.umem.frame_size() - self.data_off);
        let start = self.len - n;
        for &a in self.stack[start..self.len].iter().rev() {
            // SAFETY: each address is owned by this cache (popped right here); off/len fit
            // (len clamped above).
            let f = unsafe { Frame::from_chunk(self.umem, a, self.data_off, len) };
            // Cannot fail: `out.remaining() >= n` was checked by both callers.
            let _ = out.push(f);
        }
        self.len = start;
    }

    /// Returns one frame.
    #[inline]
    pub fn free(&mut self, f: Frame<'u>) {
        self.push_addr(f.chunk_addr());
    }

    /// Returns every frame of `frames` (which ends up empty).
    #[inline]
    pub fn free_burst(&mut self, frames: &mut FrameBuf<'u>) {
        for f in frames.drain() {
            self.push_addr(f.chunk_addr());
        }
    }

    /// Returns the frames yielded by `it`.
    #[inline]
    pub fn free_iter(&mut self, it: impl Iterator<Item = Frame<'u>>) {
        for f in it {
            self.push_addr(f.chunk_addr());
        }
    }

    /// Returns a chunk by address (completion ring reaping).
    #[inline]
    pub(crate) fn push_addr(&mut self, chunk: u64) {
        debug_assert!(self.umem.is_chunk_addr(chunk));
        if self.len == self.stack.len() {
            self.flush_half();
        }
        self.stack[self.len] = chunk;
        self.len += 1;
    }

    /// Takes up to `n` chunk addresses without building frames (fill-ring refill): ensures
    /// availability and returns the slice to copy from; the caller then calls
    /// [`PoolCache::consume_top`] with the number it used.
    #[inline]
    pub(crate) fn top_addrs(&mut self, n: usize) -> &[u64] {
        let n = n.min(self.stack.len());
        let avail = self.ensure(n).min(n);
        &self.stack[self.len - avail..self.len]
    }

    /// Drops the top `n` addresses, whose ownership the caller has passed on (to the kernel).
    #[inline]
    pub(crate) fn consume_top(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
    }

    /// Returns everything to the shared free list.
    pub fn flush(&mut self) {
        if self.len > 0 {
            self.umem.give(&self.stack[..self.len]);
            self.len = 0;
            self.stats.flushes += 1;
        }
    }
}

impl Drop for PoolCache<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umem::UmemConfig;

    fn umem(n: u32) -> Umem {
        Umem::heap(UmemConfig { frame_size: 2048, frame_count: n, headroom: 0 }).unwrap()
    }

    #[test]
    fn alloc_free_keeps_every_chunk_accounted() {
        let u = umem(64);
        let mut c = PoolCache::new(&u, 16);
        let mut out = FrameBuf::with_capacity(64);
        assert!(c.alloc_bulk(&mut out, 40, 60));
        assert_eq!(out.len(), 40);
        assert!(out.iter().all(|f| f.len() == 60 && f.headroom() == 256));
        // No duplicates among handed-out chunks.
        let mut addrs: Vec<u64> = out.iter().map(|f| f.chunk_addr()).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 40);
        assert_eq!(u.free_count() + c.len() + out.len(), 64);
        c.free_burst(&mut out);
        assert!(out.is_empty());
        assert_eq!(u.free_count() + c.len(), 64);
        drop(c);
        assert_eq!(u.free_count(), 64);
    }

    #[test]
    fn bulk_is_all_or_nothing_and_burst_is_best_effort() {
        let u = umem(10);
        let mut c = PoolCache::new(&u, 8);
        let mut out = FrameBuf::with_capacity(32);
        assert!(!c.alloc_bulk(&mut out, 11, 64));
        assert!(out.is_empty());
        assert_eq!(c.stats().alloc_failed, 11);
        assert_eq!(c.alloc_burst(&mut out, 32, 64), 10);
        assert!(c.alloc().is_none());
        c.free_burst(&mut out);
        assert_eq!(c.len() + u.free_count(), 10);
    }

    #[test]
    fn frame_data_is_writable_and_isolated() {
        let u = umem(4);
        let mut c = PoolCache::new(&u, 4);
        let mut a = c.alloc().unwrap();
        let mut b = c.alloc().unwrap();
        a.set_len(100);
        b.set_len(100);
        a.data_mut().fill(0xaa);
        b.data_mut().fill(0x55);
        assert!(a.data().iter().all(|&x| x == 0xaa));
        assert!(b.data().iter().all(|&x| x == 0x55));
        assert_eq!(a.capacity(), 2048 - 256);
        assert!(a.push_front(14).is_some());
        assert_eq!(a.len(), 114);
        assert!(a.pull_front(14));
        c.free(a);
        c.free(b);
    }

    #[test]
    fn overflow_flushes_half_to_the_shared_list() {
        let u = umem(64);
        let mut c = PoolCache::new(&u, 8);
        let mut out = FrameBuf::with_capacity(64);
        assert!(c.alloc_bulk(&mut out, 64, 0));
        assert_eq!((u.free_count(), c.len()), (0, 0));
        let flushes0 = c.stats().flushes;
        let freed: Vec<u64> = out.iter().map(|f| f.chunk_addr()).collect();
        c.free_burst(&mut out);
        // Frees 1..=8 fill the cache; the 9th finds it full and flushes half (4), and so does
        // every 4th free after that: frees 9, 13, …, 61 → 14 flushes of 4 chunks each.
        assert_eq!(c.stats().flushes - flushes0, 14);
        assert_eq!((u.free_count(), c.len()), (56, 8));
        // The cache kept the hot top: the last 8 chunks freed, handed out last-in first-out.
        for want in freed.iter().rev().take(8) {
            let f = c.alloc().expect("cached");
            assert_eq!(f.chunk_addr(), *want);
            assert!(out.push(f).is_ok());
        }
        assert_eq!((c.len(), c.stats().refills), (0, 8), "served from the cache, no refill");
        c.free_burst(&mut out);
    }
}
