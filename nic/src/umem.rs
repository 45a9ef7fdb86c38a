//! The UMEM: one memory region cut into equal chunks, plus the shared free list of chunks.
//!
//! One `Umem` serves every port of a process (sockets share it with `XDP_SHARED_UMEM`), so a
//! frame received on one port can be transmitted on another without a copy.
//!
//! # Ownership invariant
//! Every chunk address (a multiple of `frame_size` below `frame_count * frame_size`) is, at any
//! time, in exactly one of these places: the free list below, one lcore's
//! [`PoolCache`](crate::pool::PoolCache), one [`Frame`](crate::frame::Frame), or one of the
//! kernel-owned rings (fill, RX, TX, completion) of a socket on this UMEM. The free list is only
//! touched in bulk (a cache refills or flushes half its capacity at a time), which is why a
//! `Mutex<Vec<u64>>` is enough here, as in DPDK's mempool with per-lcore caches.

use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::mem::{Backing, Region};
use crate::sys::{XDP_PACKET_HEADROOM, XDP_UMEM_MIN_CHUNK_SIZE};

/// Geometry of a UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Chunk size in bytes: a power of two in 2048..=32768 (aligned mode).
    pub frame_size: u32,
    /// Number of chunks.
    pub frame_count: u32,
    /// Headroom the kernel reserves in front of received data (UMEM registration headroom).
    pub headroom: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }
    }
}

/// Why a UMEM could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UmemError {
    /// Bad geometry.
    #[error("invalid UMEM geometry: {0}")]
    Geometry(String),
    /// The region is smaller than `frame_count * frame_size`.
    #[error("region of {have} bytes is smaller than {need} bytes ({frames} frames of {size})")]
    TooSmall {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
        /// Frame count.
        frames: u32,
        /// Frame size.
        size: u32,
    },
}

/// One registered (or registrable) UMEM.
pub struct Umem {
    region: Region,
    cfg: UmemConfig,
    shift: u32,
    /// Offset of packet data inside a chunk for frames handed out by the pool (same place the
    /// kernel puts received data: UMEM headroom + `XDP_PACKET_HEADROOM`).
    data_off: u32,
    free: Mutex<Vec<u64>>,
    /// The socket on which the UMEM was registered (`XDP_UMEM_REG`); later sockets bind with
    /// `XDP_SHARED_UMEM` pointing at it. Kept alive as long as the UMEM.
    pub(crate) registration: Mutex<Option<Registration>>,
}

/// The socket that registered the UMEM and the bind flags every sharing socket inherits.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) zero_copy: bool,
    pub(crate) need_wakeup: bool,
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem").field("cfg", &self.cfg).field("backing", &self.region.backing()).finish()
    }
}

impl Umem {
    /// Cuts `region` into `cfg.frame_count` chunks of `cfg.frame_size`; all start free.
    pub fn new(region: Region, cfg: UmemConfig) -> Result<Umem, UmemError> {
        let fs = cfg.frame_size;
        if !fs.is_power_of_two() || !(XDP_UMEM_MIN_CHUNK_SIZE..=32768).contains(&fs) {
            return Err(UmemError::Geometry(format!("frame_size must be a power of two in 2048..=32768, got {fs}")));
        }
        if cfg.frame_count == 0 {
            return Err(UmemError::Geometry("frame_count must be > 0".into()));
        }
        let data_off = cfg.headroom + XDP_PACKET_HEADROOM;
        if data_off + 64 > fs {
            return Err(UmemError::Geometry(format!(
                "headroom {} leaves less than 64 bytes of data in a {fs}-byte frame",
                cfg.headroom
            )));
        }
        let need = cfg.frame_count as usize * fs as usize;
        if region.len() < need {
            return Err(UmemError::TooSmall { have: region.len(), need, frames: cfg.frame_count, size: fs });
        }
        let free = (0..cfg.frame_count as u64).rev().map(|i| i << fs.trailing_zeros()).collect();
        Ok(Umem {
            region,
            cfg,
            shift: fs.trailing_zeros(),
            data_off,
            free: Mutex::new(free),
            registration: Mutex::new(None),
        })
    }

    /// Convenience: a heap-backed UMEM (tests, simulated ports, benchmarks).
    pub fn heap(cfg: UmemConfig) -> Result<Umem, UmemError> {
        let len = cfg.frame_count as usize * cfg.frame_size as usize;
        Umem::new(Region::heap(len.max(1)), cfg)
    }

    /// Geometry.
    pub fn config(&self) -> UmemConfig {
        self.cfg
    }

    /// Chunk size.
    pub fn frame_size(&self) -> u32 {
        self.cfg.frame_size
    }

    /// Number of chunks.
    pub fn frame_count(&self) -> u32 {
        self.cfg.frame_count
    }

    /// UMEM headroom.
    pub fn headroom(&self) -> u32 {
        self.cfg.headroom
    }

    /// Offset of data in chunks handed out by the pool.
    pub fn data_offset(&self) -> u32 {
        self.data_off
    }

    /// What the memory is made of.
    pub fn backing(&self) -> Backing {
        self.region.backing()
    }

    /// Chunks currently on the shared free list (not counting lcore caches, frames in use or
    /// chunks owned by the kernel).
    pub fn free_count(&self) -> usize {
        self.free.lock().expect("umem free list poisoned").len()
    }

    /// Whether a socket has registered this UMEM, and with which mode.
    pub fn is_registered(&self) -> bool {
        self.registration.lock().expect("umem registration poisoned").is_some()
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.region.as_ptr()
    }

    pub(crate) fn region_len(&self) -> usize {
        self.cfg.frame_count as usize * self.cfg.frame_size as usize
    }

    /// Moves up to `out.len()` chunk addresses from the free list into `out`; returns how many.
    pub(crate) fn take(&self, out: &mut [u64]) -> usize {
        let mut free = self.free.lock().expect("umem free list poisoned");
        let n = out.len().min(free.len());
        let start = free.len() - n;
        out[..n].copy_from_slice(&free[start..]);
        free.truncate(start);
        n
    }

    /// Returns chunk addresses to the free list.
    pub(crate) fn give(&self, addrs: &[u64]) {
        let mut free = self.free.lock().expect("umem free list poisoned");
        debug_assert!(free.len() + addrs.len() <= self.cfg.frame_count as usize, "more chunks freed than exist");
        debug_assert!(addrs.iter().all(|&a| self.is_chunk_addr(a)), "not a chunk address");
        free.extend_from_slice(addrs);
    }

    /// A copy of the free list (off the hot path: accounting after stop).
    pub(crate) fn free_snapshot(&self) -> Vec<u64> {
        self.free.lock().expect("umem free list poisoned").clone()
    }

    /// Whether `a` is the start of a chunk of this UMEM.
    pub(crate) fn is_chunk_addr(&self, a: u64) -> bool {
        a & ((1u64 << self.shift) - 1) == 0 && (a >> self.shift) < self.cfg.frame_count as u64
    }

    /// The chunk address containing UMEM offset `addr`.
    #[inline]
    pub(crate) fn chunk_of(&self, addr: u64) -> u64 {
        addr & !((1u64 << self.shift) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_checked() {
        let bad = UmemConfig { frame_size: 3000, frame_count: 4, headroom: 0 };
        assert!(matches!(Umem::heap(bad), Err(UmemError::Geometry(_))));
        let bad = UmemConfig { frame_size: 2048, frame_count: 4, headroom: 1800 };
        assert!(matches!(Umem::heap(bad), Err(UmemError::Geometry(_))));
        let small = Region::heap(4096);
        let cfg = UmemConfig { frame_size: 2048, frame_count: 4, headroom: 0 };
        assert!(matches!(Umem::new(small, cfg), Err(UmemError::TooSmall { .. })));
    }

    #[test]
    fn all_chunks_start_free_and_round_trip() {
        let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 8, headroom: 0 }).unwrap();
        assert_eq!(u.free_count(), 8);
        let mut out = [0u64; 5];
        assert_eq!(u.take(&mut out), 5);
        assert!(out.iter().all(|&a| u.is_chunk_addr(a)));
        assert_eq!(u.free_count(), 3);
        u.give(&out);
        assert_eq!(u.free_count(), 8);
        assert_eq!(u.chunk_of(2048 + 300), 2048);
        assert_eq!(u.data_offset(), 256);
    }
}
