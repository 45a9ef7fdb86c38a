//! Memory regions that back a UMEM.
//!
//! A [`Region`] is one contiguous, page-aligned, zero-initialised area that lives until it is
//! dropped. It comes from 2 MiB or 1 GiB hugepages (`mmap(MAP_HUGETLB)`), from normal pages, or
//! from the heap (tests and Miri: no syscalls). [`Region::map`] falls back from hugepages to
//! normal pages with a logged warning, so a machine without reserved hugepages still runs; the
//! backing actually obtained is reported by [`Region::backing`].

use std::alloc::Layout;
use std::fmt;
use std::io;
use std::ptr::NonNull;

/// Page size asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    /// 2 MiB hugepages (`MAP_HUGETLB | MAP_HUGE_2MB`).
    Huge2M,
    /// 1 GiB hugepages (`MAP_HUGETLB | MAP_HUGE_1GB`).
    Huge1G,
    /// Normal (4 KiB) pages.
    Normal,
}

impl PageSize {
    fn bytes(self) -> usize {
        match self {
            PageSize::Huge2M => 2 << 20,
            PageSize::Huge1G => 1 << 30,
            PageSize::Normal => 4096,
        }
    }
}

/// What a region is actually made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// 2 MiB hugepages.
    Huge2M,
    /// 1 GiB hugepages.
    Huge1G,
    /// Normal pages from `mmap`.
    Normal,
    /// A heap allocation (tests, simulated ports).
    Heap,
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backing::Huge2M => "hugepages-2M",
            Backing::Huge1G => "hugepages-1G",
            Backing::Normal => "normal-pages",
            Backing::Heap => "heap",
        })
    }
}

/// Why a region could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    /// `mmap` failed.
    #[error("mmap of {len} bytes with {page:?} pages failed: {source}")]
    Mmap {
        /// Requested length.
        len: usize,
        /// Requested page size.
        page: PageSize,
        /// The errno.
        source: io::Error,
    },
    /// Zero or absurd length.
    #[error("invalid region length {0}")]
    Length(usize),
}

/// A contiguous, page-aligned, zero-initialised memory area.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: a region is plain memory owned by this value; who may touch which bytes is decided by
// the frame-ownership rules of `Umem`/`Frame`, not by the region.
unsafe impl Send for Region {}
// SAFETY: as above; `Region` exposes only its address and length.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region").field("len", &self.len).field("backing", &self.backing).finish()
    }
}

const HEAP_ALIGN: usize = 4096;

impl Region {
    /// Maps `len` bytes (rounded up to the page size) with `page`; when hugepages cannot be had
    /// (none reserved, or too few), logs a warning and falls back to normal pages.
    pub fn map(len: usize, page: PageSize) -> Result<Region, MemError> {
        match Region::map_exact(len, page) {
            Ok(r) => Ok(r),
            Err(e) if page != PageSize::Normal => {
                tracing::warn!(
                    requested = ?page,
                    len,
                    error = %e,
                    "hugepages unavailable, falling back to normal pages (run ./hugepages.sh to reserve some)"
                );
                Region::map_exact(len, PageSize::Normal)
            }
            Err(e) => Err(e),
        }
    }

    /// Maps `len` bytes with exactly `page` pages, or fails.
    pub fn map_exact(len: usize, page: PageSize) -> Result<Region, MemError> {
        if len == 0 || len > (1usize << 46) {
            return Err(MemError::Length(len));
        }
        let pg = page.bytes();
        let len = len.div_ceil(pg) * pg;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        match page {
            PageSize::Huge2M => flags |= libc::MAP_HUGETLB | (21 << libc::MAP_HUGE_SHIFT),
            PageSize::Huge1G => flags |= libc::MAP_HUGETLB | (30 << libc::MAP_HUGE_SHIFT),
            PageSize::Normal => {}
        }
        // SAFETY: anonymous private mapping at a kernel-chosen address; result checked below.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(MemError::Mmap { len, page, source: io::Error::last_os_error() });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(MemError::Length(len))?;
        let backing = match page {
            PageSize::Huge2M => Backing::Huge2M,
            PageSize::Huge1G => Backing::Huge1G,
            PageSize::Normal => Backing::Normal,
        };
        Ok(Region { ptr, len, backing })
    }

    /// A zeroed, 4096-byte-aligned heap allocation: no syscalls, usable under Miri.
    pub fn heap(len: usize) -> Region {
        assert!(len > 0, "heap region of zero bytes");
        let len = len.div_ceil(HEAP_ALIGN) * HEAP_ALIGN;
        let layout = Layout::from_size_align(len, HEAP_ALIGN).expect("region layout");
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Region { ptr, len, backing: Backing::Heap }
    }

    /// Start address.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length in bytes (a multiple of the page size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true for a constructed region.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the region is made of.
    pub fn backing(&self) -> Backing {
        self.backing
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        match self.backing {
            Backing::Heap => {
                let layout = Layout::from_size_align(self.len, HEAP_ALIGN).expect("region layout");
                // SAFETY: allocated in `heap` with exactly this layout and not freed before.
                unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
            }
            _ => {
                // SAFETY: `ptr`/`len` describe a mapping created in `map_exact`, unmapped only here.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
        }
    }
}

/// Free hugepages of 2 MiB according to `/proc/meminfo` (`HugePages_Free`), if readable.
pub fn free_hugepages_2m() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let size_kb: u64 = field(&text, "Hugepagesize:")?;
    if size_kb != 2048 {
        return std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .ok()?
            .trim()
            .parse()
            .ok();
    }
    field(&text, "HugePages_Free:")
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_region_is_aligned_and_zeroed() {
        let r = Region::heap(10_000);
        assert_eq!(r.len(), 12_288);
        assert_eq!(r.as_ptr().as_ptr() as usize % 4096, 0);
        assert_eq!(r.backing(), Backing::Heap);
        // SAFETY: the region is 12288 readable bytes.
        let s = unsafe { std::slice::from_raw_parts(r.as_ptr().as_ptr(), r.len()) };
        assert!(s.iter().all(|&b| b == 0));
    }

    #[test]
    fn normal_mapping_rounds_up() {
        let r = Region::map_exact(5000, PageSize::Normal).expect("mmap");
        assert_eq!(r.len(), 8192);
        assert_eq!(r.backing(), Backing::Normal);
    }

    #[test]
    fn hugepage_request_falls_back_or_succeeds() {
        // Either hugepages are reserved (backing Huge2M) or we fall back to normal pages; both
        // are correct outcomes, but the reported backing must match reality.
        let free = free_hugepages_2m().unwrap_or(0);
        let r = Region::map(4 << 20, PageSize::Huge2M).expect("map with fallback");
        if free >= 2 {
            assert_eq!(r.backing(), Backing::Huge2M);
        } else {
            assert_eq!(r.backing(), Backing::Normal);
        }
        assert_eq!(r.len() % (2 << 20), 0);
    }

    #[test]
    fn zero_length_is_an_error() {
        assert!(matches!(Region::map_exact(0, PageSize::Normal), Err(MemError::Length(0))));
    }
}
