//! [`Batch`]: one received burst and one verdict per frame.
//!
//! Frames and verdicts live in two parallel, fixed-capacity arrays allocated once per lcore
//! (the VPP layout: a vector of buffers beside a vector of next-nodes). Verdicts start as
//! `Drop(NoVerdict)` so a frame an app forgets is counted, never lost; an app that treats the
//! whole burst alike calls [`Batch::set_all`], which the dispatcher handles in bulk.

use nic::{Frame, FrameBuf};

use crate::app::{DropReason, Verdict};

/// A burst of frames with their verdicts.
pub struct Batch<'u> {
    pub(crate) frames: FrameBuf<'u>,
    verdicts: Box<[Verdict]>,
    uniform: Option<Verdict>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("len", &self.frames.len()).field("uniform", &self.uniform).finish()
    }
}

impl<'u> Batch<'u> {
    /// An empty batch for up to `cap` frames.
    pub fn with_capacity(cap: usize) -> Batch<'u> {
        Batch {
            frames: FrameBuf::with_capacity(cap),
            verdicts: vec![Verdict::Drop(DropReason::NoVerdict); cap].into_boxed_slice(),
            uniform: None,
        }
    }

    /// Number of frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the batch is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// The frames.
    #[inline]
    pub fn frames(&self) -> &[Frame<'u>] {
        self.frames.as_slice()
    }

    /// The frames, mutable (rewrite headers in place).
    #[inline]
    pub fn frames_mut(&mut self) -> &mut [Frame<'u>] {
        self.frames.as_mut_slice()
    }

    /// The frame buffer itself (to fill it in tests and benchmarks).
    #[inline]
    pub fn buf_mut(&mut self) -> &mut FrameBuf<'u> {
        &mut self.frames
    }

    /// Verdict of frame `i`.
    #[inline]
    pub fn verdict(&self, i: usize) -> Verdict {
        self.uniform.unwrap_or(self.verdicts[i])
    }

    /// Sets the verdict of frame `i`.
    #[inline]
    pub fn set_verdict(&mut self, i: usize, v: Verdict) {
        if let Some(u) = self.uniform.take() {
            self.verdicts[..self.frames.len()].fill(u);
        }
        self.verdicts[i] = v;
    }

    /// Gives every frame the same verdict (dispatched in bulk).
    #[inline]
    pub fn set_all(&mut self, v: Verdict) {
        self.uniform = Some(v);
    }

    /// Frames paired with their verdict slots.
    #[inline]
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&mut Frame<'u>, &mut Verdict)> {
        if let Some(u) = self.uniform.take() {
            self.verdicts[..self.frames.len()].fill(u);
        }
        let n = self.frames.len();
        self.frames.as_mut_slice().iter_mut().zip(self.verdicts[..n].iter_mut())
    }

    /// Resets verdicts for a fresh burst of `n` frames.
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.uniform = None;
        let n = self.frames.len();
        self.verdicts[..n].fill(Verdict::Drop(DropReason::NoVerdict));
    }

    /// The uniform verdict, if the app set one.
    #[inline]
    pub(crate) fn uniform(&self) -> Option<Verdict> {
        self.uniform
    }

    /// The per-frame verdicts of the current burst.
    #[inline]
    pub(crate) fn parts(&mut self) -> (&mut FrameBuf<'u>, &[Verdict]) {
        let n = self.frames.len();
        (&mut self.frames, &self.verdicts[..n])
    }

    /// Resets verdicts (public for tests and benchmarks that drive apps directly).
    pub fn reset_verdicts(&mut self) {
        self.reset();
    }
}
