//! Insertion: a free entry plus a bucket slot, found directly, by reclaiming expired entries in
//! the key's two buckets, or by a bounded breadth-first cuckoo displacement.

use super::bucket::{other_bucket, Place, SLOTS};
use super::timeout::{is_expired, tick};
use super::{Entry, FlowIx, FlowKey, FlowTable, InsertError, TimeoutClass};
use crate::time::Instant;

/// Most buckets the displacement search visits for one insert (each at most once). It finds
/// any chain of up to 2 moves, and longer ones while the bound allows; 64 buckets cost at most
/// ~64 bucket lines and 64·8 queue compares, only when both candidate buckets are full.
pub const CUCKOO_NODES: usize = 64;

/// A bucket in the displacement search: reached from `parent` by moving the entry in the
/// parent's slot `slot` to this bucket (its other bucket).
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    bucket: usize,
    parent: u8,
    slot: u8,
}

const ROOT: u8 = u8::MAX;
const _: () = assert!(CUCKOO_NODES < ROOT as usize);

/// Index of the lowest set bit of `m`, if any.
#[inline]
pub(super) fn first(m: u32) -> Option<usize> {
    (m != 0).then(|| m.trailing_zeros() as usize)
}

impl<V> FlowTable<V> {
    /// Inserts `key` with `value`, last seen at `now`, in timeout class `class`.
    ///
    /// Refused with [`InsertError::Exists`] if the key is already in the table, and with
    /// [`InsertError::Full`] when there is no room (see the module docs for how room is made:
    /// expired entries in the key's buckets are reclaimed, live ones are never evicted).
    pub fn insert(&mut self, key: FlowKey, value: V, class: TimeoutClass, now: Instant) -> Result<FlowIx, InsertError> {
        let p = self.place_of(&key);
        if let Some(ix) = self.find_at(&key, p) {
            self.counters.exists += 1;
            return Err(InsertError::Exists(ix));
        }
        let Some(&ix) = self.free.last() else {
            self.counters.full += 1;
            return Err(InsertError::Full);
        };
        let now = tick(now);
        let Some((b, s)) = self.slot_for(p, now) else {
            self.counters.full += 1;
            self.counters.full_buckets += 1;
            return Err(InsertError::Full);
        };
        self.free.pop();
        let other = if b == p.prim { p.alt } else { p.prim };
        self.place_entry((b, s), p.sig, ix, b == p.prim, other);
        self.entries[ix as usize] = Some(Entry { key, last_seen: now, class, linked: true, value });
        self.counters.inserts += 1;
        Ok(FlowIx(ix))
    }

    /// An empty slot for a key at `p`: in its primary bucket, else its alternative, else one
    /// freed by reclaiming expired entries there, else one freed by displacement.
    fn slot_for(&mut self, p: Place, now: u32) -> Option<(usize, usize)> {
        for b in [p.prim, p.alt] {
            if let Some(s) = first(self.buckets[b].empties()) {
                return Some((b, s));
            }
        }
        self.reclaim_expired(p, now).or_else(|| self.displace(p))
    }

    /// Unlinks every entry of the (full) buckets of `p` that is past its timeout; they stay in
    /// their entry slots until `expire` hands them back. Returns the first slot freed.
    fn reclaim_expired(&mut self, p: Place, now: u32) -> Option<(usize, usize)> {
        let mut freed = None;
        for b in [p.prim, p.alt] {
            for s in 0..SLOTS {
                let ix = self.buckets[b].ix[s];
                let Some(e) = self.entries[ix as usize].as_mut() else { continue };
                if !is_expired(e.last_seen, self.timeout_ticks[e.class as usize], now) {
                    continue;
                }
                e.linked = false;
                self.clear_slot(b, s);
                self.reclaimed.push(ix);
                self.counters.reclaimed += 1;
                freed = freed.or(Some((b, s)));
            }
        }
        freed
    }

    /// Breadth-first search from the two (full) buckets of `p` for a bucket with an empty slot,
    /// through entries' other buckets; then moves the entries along the path, last move first
    /// (each move fills an empty slot, so no entry is ever unreachable), which empties a slot in
    /// one of `p`'s buckets. `None` if no path within [`CUCKOO_NODES`] buckets.
    fn displace(&mut self, p: Place) -> Option<(usize, usize)> {
        let mut q = [Node::default(); CUCKOO_NODES];
        q[0] = Node { bucket: p.prim, parent: ROOT, slot: 0 };
        q[1] = Node { bucket: p.alt, parent: ROOT, slot: 0 };
        let (mut head, mut len) = (0, 2);
        while head < len {
            let b = q[head].bucket;
            if let Some(s) = first(self.buckets[b].empties()) {
                return Some(self.shift_path(&q, head, s));
            }
            for s in 0..SLOTS {
                let child = other_bucket(b, self.buckets[b].sig(s), self.bucket_mask);
                if len < CUCKOO_NODES && !q[..len].iter().any(|n| n.bucket == child) {
                    q[len] = Node { bucket: child, parent: head as u8, slot: s as u8 };
                    len += 1;
                }
            }
            head += 1;
        }
        None
    }

    /// Moves entries along the search path ending at node `leaf`, whose bucket has the empty
    /// slot `free`; returns the slot emptied in the root bucket.
    fn shift_path(&mut self, q: &[Node], leaf: usize, free: usize) -> (usize, usize) {
        let (mut dst, mut n) = ((q[leaf].bucket, free), leaf);
        while q[n].parent != ROOT {
            let parent = q[n].parent as usize;
            let src = (q[parent].bucket, q[n].slot as usize);
            // The entry goes to its other bucket: from primary to alternative or back.
            let bucket = &self.buckets[src.0];
            let (sig, ix, was_alt) = (bucket.sig(src.1), bucket.ix[src.1], bucket.in_alt(src.1));
            self.clear_slot(src.0, src.1);
            self.place_entry(dst, sig, ix, was_alt, src.0);
            self.counters.displaced += 1;
            (dst, n) = (src, parent);
        }
        dst
    }
}
