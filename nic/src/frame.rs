//! [`Frame`]: the exclusive handle to one UMEM chunk, and [`FrameBuf`], a fixed-capacity
//! vector of frames that never reallocates.
//!
//! A `Frame` is neither `Clone` nor `Copy`. It is created only by the pool (from the free list)
//! or by an RX ring (from a descriptor the kernel handed back), and it leaves only by being moved
//! into a TX/fill ring or back to the pool. Holding one therefore proves that no other core and
//! not the kernel uses the chunk, which is what makes [`Frame::data_mut`] a safe method.
//!
//! Dropping a `Frame` without returning it does not corrupt anything; it leaks one chunk until
//! the process ends. The engine's dispatch gives every frame of a burst a destination, and a
//! debug-build accounting check catches leaks.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::umem::Umem;

/// Exclusive handle to one UMEM chunk holding one packet.
#[must_use = "a dropped Frame leaks its UMEM chunk; send it, or free it to the pool"]
pub struct Frame<'u> {
    /// Start of the chunk.
    chunk: NonNull<u8>,
    /// UMEM offset of the chunk (multiple of `size`).
    addr: u64,
    /// Offset of the packet data inside the chunk.
    off: u16,
    /// Packet length.
    len: u16,
    /// Chunk size.
    size: u32,
    _umem: PhantomData<&'u Umem>,
}

// SAFETY: a Frame is the unique owner of its chunk (module invariant), so moving it to another
// thread moves that ownership; the UMEM memory outlives 'u.
unsafe impl Send for Frame<'_> {}
// SAFETY: shared references only allow reading the chunk, which no one else may write while
// this Frame exists.
unsafe impl Sync for Frame<'_> {}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame").field("addr", &self.addr).field("off", &self.off).field("len", &self.len).finish()
    }
}

impl<'u> Frame<'u> {
    /// Builds a frame for the chunk at UMEM offset `chunk_addr`.
    ///
    /// # Safety
    /// The caller transfers exclusive ownership of the chunk at `chunk_addr` of `umem` to the
    /// new frame (it came from the free list or from a kernel descriptor that returned it), and
    /// `off + len <= frame_size`, `chunk_addr` is a chunk start below the UMEM length.
    #[inline]
    pub(crate) unsafe fn from_chunk(umem: &'u Umem, chunk_addr: u64, off: u32, len: u32) -> Frame<'u> {
        debug_assert!(umem.is_chunk_addr(chunk_addr));
        debug_assert!(off + len <= umem.frame_size());
        // SAFETY: chunk_addr < region length (caller contract), so the offset pointer stays
        // inside the region allocation.
        let chunk = unsafe { umem.base().add(chunk_addr as usize) };
        Frame { chunk, addr: chunk_addr, off: off as u16, len: len as u16, size: umem.frame_size(), _umem: PhantomData }
    }

    /// Builds a frame from a kernel descriptor address (which includes the in-chunk offset).
    ///
    /// # Safety
    /// As [`Frame::from_chunk`]; `desc_addr` must be an address this process gave the kernel
    /// (fill ring) and got back on an RX ring.
    #[inline]
    pub(crate) unsafe fn from_desc(umem: &'u Umem, desc_addr: u64, len: u32) -> Frame<'u> {
        let chunk = umem.chunk_of(desc_addr);
        let off = (desc_addr - chunk) as u32;
        // SAFETY: forwarded caller contract.
        unsafe { Frame::from_chunk(umem, chunk, off, len.min(umem.frame_size() - off)) }
    }

    /// UMEM offset of the packet data: what goes into a TX descriptor.
    #[inline]
    pub fn desc_addr(&self) -> u64 {
        self.addr + self.off as u64
    }

    /// UMEM offset of the chunk.
    #[inline]
    pub fn chunk_addr(&self) -> u64 {
        self.addr
    }

    /// Packet length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the packet is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes available after the data offset (maximum packet length at the current offset).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.size as usize - self.off as usize
    }

    /// Bytes in front of the packet data (usable with [`Frame::push_front`]).
    #[inline]
    pub fn headroom(&self) -> usize {
        self.off as usize
    }

    /// The packet bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: off + len <= size (type invariant), the chunk is `size` bytes inside the live
        // UMEM region, and this Frame is its only owner.
        unsafe { std::slice::from_raw_parts(self.chunk.as_ptr().add(self.off as usize), self.len as usize) }
    }

    /// The packet bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` guarantees no other borrow of this chunk exists.
        unsafe { std::slice::from_raw_parts_mut(self.chunk.as_ptr().add(self.off as usize), self.len as usize) }
    }

    /// All bytes from the data offset to the end of the chunk, writable (to build a packet
    /// before calling [`Frame::set_len`]).
    #[inline]
    pub fn buf_mut(&mut self) -> &mut [u8] {
        let cap = self.capacity();
        // SAFETY: off + cap == size, inside the chunk; exclusive as in `data_mut`.
        unsafe { std::slice::from_raw_parts_mut(self.chunk.as_ptr().add(self.off as usize), cap) }
    }

    /// Sets the packet length.
    ///
    /// # Panics
    /// If `len > capacity()`: that is a bug in the caller, not bad input.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "frame length {len} exceeds capacity {}", self.capacity());
        self.len = len as u16;
    }

    /// Grows the packet at the front by `n` bytes (encapsulation); returns the new front bytes,
    /// or `None` when the headroom is too small.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.off as usize {
            return None;
        }
        self.off -= n as u16;
        self.len += n as u16;
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front of the packet (decapsulation); `false` if too short.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.off += n as u16;
        self.len -= n as u16;
        true
    }

    /// Moves the data start to `off` bytes into the chunk, keeping the length when it fits
    /// (truncating otherwise). Contents are not moved.
    #[inline]
    pub fn set_data_offset(&mut self, off: usize) {
        assert!(off < self.size as usize, "offset {off} outside a {}-byte chunk", self.size);
        self.off = off as u16;
        let cap = self.capacity();
        if self.len as usize > cap {
            self.len = cap as u16;
        }
    }
}

/// A vector of frames with a capacity fixed at construction: `push` never reallocates (it
/// hands the frame back when full), so the hot path cannot allocate through it.
pub struct FrameBuf<'u> {
    frames: Vec<Frame<'u>>,
}

impl fmt::Debug for FrameBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBuf").field("len", &self.frames.len()).field("cap", &self.frames.capacity()).finish()
    }
}

impl<'u> FrameBuf<'u> {
    /// An empty buffer for up to `cap` frames (allocated once, here).
    pub fn with_capacity(cap: usize) -> FrameBuf<'u> {
        FrameBuf { frames: Vec::with_capacity(cap) }
    }

    /// Appends `f`, or gives it back when the buffer is full.
    #[inline]
    pub fn push(&mut self, f: Frame<'u>) -> Result<(), Frame<'u>> {
        if self.frames.len() == self.frames.capacity() {
            return Err(f);
        }
        self.frames.push(f);
        Ok(())
    }

    /// Removes the last frame.
    #[inline]
    pub fn pop(&mut self) -> Option<Frame<'u>> {
        self.frames.pop()
    }

    /// Number of frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether there are no frames.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Fixed capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Free slots.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.frames.capacity() - self.frames.len()
    }

    /// The frames.
    #[inline]
    pub fn as_slice(&self) -> &[Frame<'u>] {
        &self.frames
    }

    /// The frames, mutable (contents and lengths; the set of frames cannot change through this).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Frame<'u>] {
        &mut self.frames
    }

    /// Iterates over the frames.
    #[inline]
    pub fn iter(&self) -> std::slice::Iter<'_, Frame<'u>> {
        self.frames.iter()
    }

    /// Iterates mutably over the frames.
    #[inline]
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Frame<'u>> {
        self.frames.iter_mut()
    }

    /// Removes and yields every frame (the buffer keeps its capacity).
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, Frame<'u>> {
        self.frames.drain(..)
    }

    /// Removes and yields the first `n` frames, keeping the rest in order.
    #[inline]
    pub fn drain_front(&mut self, n: usize) -> std::vec::Drain<'_, Frame<'u>> {
        let n = n.min(self.frames.len());
        self.frames.drain(..n)
    }

    /// Moves all frames of `other` to the end of `self`, as many as fit; the rest stay in
    /// `other`. Returns how many moved.
    #[inline]
    pub fn append_from(&mut self, other: &mut FrameBuf<'u>) -> usize {
        let n = other.len().min(self.remaining());
        self.frames.extend(other.frames.drain(..n));
        n
    }

    /// Swaps the contents of two buffers (O(1)); capacities travel with the contents.
    #[inline]
    pub fn swap(&mut self, other: &mut FrameBuf<'u>) {
        std::mem::swap(&mut self.frames, &mut other.frames);
    }

    /// Mutable access to the frame at `i`.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Frame<'u>> {
        self.frames.get_mut(i)
    }

    /// Removes the frame at `i`, replacing it with the last one (O(1), order not kept).
    #[inline]
    pub fn swap_remove(&mut self, i: usize) -> Frame<'u> {
        self.frames.swap_remove(i)
    }
}

impl<'u> std::ops::Index<usize> for FrameBuf<'u> {
    type Output = Frame<'u>;
    #[inline]
    fn index(&self, i: usize) -> &Frame<'u> {
        &self.frames[i]
    }
}

impl<'u> std::ops::IndexMut<usize> for FrameBuf<'u> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Frame<'u> {
        &mut self.frames[i]
    }
}
